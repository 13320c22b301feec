//! With `DMS_TIMEZONE=UTC`, a record made with `TaskRecord::new` and saved through a repository
//! configured from the environment has every timestamp in UTC, as Python's `now()` gives them.
//! (Its own test binary: it sets process environment variables.)

use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::server_or_skip;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

#[tokio::test]
async fn dms_timezone_applies_to_new_records_and_every_write() {
    let Some(server) = server_or_skip() else {
        return;
    };
    // This binary has no other test that reads the environment.
    std::env::set_var("DMS_TIMEZONE", "UTC");
    std::env::set_var("DMS_REDIS_WRITE_URL", server.url());
    let repo = RedisTaskRepository::connect(RedisRepositorySettings::from_env().unwrap())
        .await
        .unwrap();
    let record = TaskRecord::new("1", "render", "bob", TaskStatus::Pending);
    assert!(record.created_at.to_string().ends_with("+00:00"));
    repo.save(record).await.unwrap();
    repo.set_status("1", TaskStatus::Running, Some("started"))
        .await
        .unwrap();
    let stored = repo.get("1").await.unwrap().unwrap();
    assert!(stored.created_at.to_string().ends_with("+00:00"));
    assert!(stored.updated_at.to_string().ends_with("+00:00"));
    for entry in stored.log_entries() {
        assert!(entry.at.to_string().ends_with("+00:00"), "{entry:?}");
    }
    assert_eq!(stored.logs.len(), 1);
}
