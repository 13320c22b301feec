//! TTLs: no writer ever shortens one, and a TTL Redis would refuse is refused before any write.

mod common;

use std::time::Duration;

use common::{connect, fresh, settings};
use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::server_or_skip;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

/// A writer with a short TTL used to shorten the shared indexes (and records).
#[tokio::test]
async fn a_short_ttl_writer_never_shortens_a_ttl() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let long = connect(&server).await;
    let short = RedisTaskRepository::connect(
        RedisRepositorySettings::builder()
            .with_write_url(server.url())
            .with_ttl_seconds(2)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    long.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    short
        .save(TaskRecord::new("2", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    short
        .append_log("1", "from the short writer")
        .await
        .unwrap();
    let pttl = |key: &str| server.cli(&["PTTL", key]).parse::<i64>().unwrap();
    let day = 86_400_000;
    for key in [
        "task:1",
        "index:tasks",
        "index:service:render",
        "index:service:render:users",
        "index:service:render:user:bob",
        "index:user:bob",
    ] {
        assert!(
            pttl(key) > 80 * day,
            "{key} was shortened to {} ms",
            pttl(key)
        );
    }
    assert!(pttl("task:1:metadata") > pttl("task:1"));
    assert!(pttl("task:2") <= 2000);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The short-lived task is gone; the long-lived one is still listed.
    assert_eq!(server.cli(&["EXISTS", "task:2"]), "0");
    let ids = long.list_ids(&task_state_core::Scope::All).await.unwrap();
    assert!(ids.contains(&"1".to_owned()), "{ids:?}");
    let listed = long
        .list(&task_state_core::Scope::Service("render".into()))
        .await
        .unwrap();
    assert_eq!(listed.records.len(), 1);
    let users = long.list_users_by_service("render").await.unwrap();
    assert_eq!(users, ["bob"]);
}

/// A TTL that the settings accepted and Redis refused used to fail a script after
/// its first writes. The settings refuse it, and so does every script, before any write.
#[tokio::test]
async fn a_ttl_redis_would_refuse_is_refused_before_anything_is_written() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let err = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_ttl_seconds(10_000_000_000_000_000)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("DMS_REDIS_TASK_TTL_SECONDS")),
        "{err}"
    );
    assert!(settings(&server).ttl_seconds() > 0);

    repo.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    let before = server.cli(&["GET", "task:1"]);
    // The save script itself, moving the task to another user, with a TTL out of range.
    // (EVAL of its text: on Redis 7 the repository calls the library of functions instead,
    // and the script is not loaded.)
    let (body, _) = task_state_redis::script_source("save").unwrap();
    let moved = TaskRecord::new("1", "render", "carol", TaskStatus::Running).to_json();
    let reply = server.cli(&[
        "EVAL",
        body,
        "2",
        "task:1",
        "task:1:metadata",
        "10000000000000000",
        "1",
        "render",
        "carol",
        &moved,
    ]);
    assert!(reply.contains("TSINVALID"), "{reply}");
    assert_eq!(server.cli(&["GET", "task:1"]), before);
    assert_eq!(server.cli(&["SISMEMBER", "index:user:bob", "1"]), "1");
    assert_eq!(server.cli(&["EXISTS", "index:user:carol"]), "0");
}
