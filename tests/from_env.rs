//! `repository_from_env` is Redis or an error, as Python's `from_env`;
//! `repository_from_env_or_memory` falls back to memory on purpose. One test in its own
//! binary, since it changes the process environment.

use task_state::redis::testing::server_or_skip;
use task_state::{Error, TaskRecord, TaskStatus};

#[tokio::test]
async fn the_environment_chooses_the_backend() {
    let Some(server) = server_or_skip() else {
        return;
    };
    for var in [
        "DMS_REDIS_READ_URL",
        "DMS_REDIS_TASK_TTL_SECONDS",
        "DMS_TIMEZONE",
    ] {
        std::env::remove_var(var);
    }

    std::env::set_var("DMS_REDIS_WRITE_URL", server.url());
    let redis = task_state::repository_from_env().await.unwrap();
    redis
        .save(TaskRecord::new("1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    assert_eq!(server.cli(&["EXISTS", "task:1"]), "1", "saved in Redis");
    let chosen = task_state::repository_from_env_or_memory().await.unwrap();
    assert!(chosen.get("1").await.unwrap().is_some(), "Redis when set");

    std::env::set_var("DMS_TIMEZONE", "Nowhere/Atlantis");
    let bad = task_state::repository_from_env().await;
    assert!(matches!(bad, Err(Error::Config(ref m)) if m.contains("DMS_TIMEZONE")));
    std::env::remove_var("DMS_TIMEZONE");

    std::env::remove_var("DMS_REDIS_WRITE_URL");
    let missing = task_state::repository_from_env().await;
    assert!(
        matches!(missing, Err(Error::Config(ref m)) if m == "DMS_REDIS_WRITE_URL is required"),
        "no silent fallback: {missing:?}"
    );

    let memory = task_state::repository_from_env_or_memory().await.unwrap();
    assert!(
        memory.get("1").await.unwrap().is_none(),
        "a fresh in-memory store"
    );
    memory
        .save(TaskRecord::new("2", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    assert_eq!(server.cli(&["EXISTS", "task:2"]), "0", "not in Redis");
    assert!(format!("{memory:?}").contains("InMemory"), "{memory:?}");
}
