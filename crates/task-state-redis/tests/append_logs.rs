//! `append_logs`: many messages in one call, and the call with none, which asks the writer
//! whether the task exists without writing.

mod common;

use common::fresh;
use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::server_or_skip;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

/// Any number of messages in one append (7,999 and more once failed in Lua's `unpack`).
#[tokio::test]
async fn thousands_of_messages_in_one_append() {
    let Some((_server, repo)) = fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    let messages: Vec<String> = (0..20_000).map(|i| format!("line {i}")).collect();
    assert!(repo.append_logs("1", &messages).await.unwrap());
    let record = repo.get("1").await.unwrap().unwrap();
    assert_eq!(record.logs.len(), 20_000);
    assert!(record.logs[19_999].ends_with(",line 19999"));
}

#[tokio::test]
async fn append_logs_of_nothing_asks_the_writer_whether_the_task_exists() {
    let Some(writer) = server_or_skip() else {
        return;
    };
    // A reader that has not seen the write yet, as a lagging replica.
    let reader = server_or_skip().unwrap();
    let settings = RedisRepositorySettings::builder()
        .with_write_url(writer.url())
        .with_read_url(reader.url())
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings).await.unwrap();
    repo.save(TaskRecord::new("1", "render", "alice", TaskStatus::Running))
        .await
        .unwrap();
    assert!(repo.append_logs("1", &[]).await.unwrap());
    assert!(!repo.append_logs("2", &[]).await.unwrap());
}

/// With no message, an empty stored string is no task, as for every read (`false`, the key
/// untouched), and a key of another type is refused as an append to it would be.
#[tokio::test]
async fn append_logs_of_nothing_reads_an_empty_string_as_no_task_and_names_a_wrong_type() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    server.cli(&["SET", "task:1", ""]);
    assert!(!repo.append_logs("1", &[]).await.unwrap());
    assert_eq!(server.cli(&["GET", "task:1"]), "");
    server.cli(&["RPUSH", "task:2", "x"]);
    for messages in [Vec::new(), vec!["line".to_owned()]] {
        let err = repo.append_logs("2", &messages).await.unwrap_err();
        assert!(
            matches!(err, Error::WrongType { ref key, expected: "string" } if key == "task:2"),
            "{} messages: {err:?}",
            messages.len()
        );
    }
    assert_eq!(server.cli(&["LRANGE", "task:2", "0", "-1"]), "x");
}
