//! One test for each defect class of the write path found by trying the backend as other
//! writers and a refusing server would (issue #10); each failed before the scripts were
//! rewritten.

mod common;

use std::time::Duration;

use common::{connect, fresh, settings};
use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::server_or_skip;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

const PYTHON: &str = r#"{"task_id":"1","service":"render","user_id":"bob","status":"running","parameters":{"ratio":0.30000000000000004},"jobs":[],"created_at":"2025-11-17T10:00:16.515926+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":[],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;

fn plant(server: &task_state_redis::testing::RedisServer, id: &str, json: &str) {
    server.cli(&["SET", &format!("task:{id}"), json, "EX", "3600"]);
    server.cli(&[
        "HSET",
        &format!("task:{id}:metadata"),
        "service",
        "render",
        "user_id",
        "bob",
    ]);
}

/// Defect 1: white space inside an empty logs array used to give `[ ,"<entry>"]`.
#[tokio::test]
async fn white_space_in_empty_arrays_gives_valid_json() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    for (i, logs) in [
        r#""logs":[ ]"#,
        "\"logs\":[\n]",
        r#""logs" : [ ]"#,
        "\"logs\":[\t\r\n ]",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("{}", i + 1);
        let json = PYTHON
            .replace(r#""task_id":"1""#, &format!(r#""task_id":"{id}""#))
            .replace(r#""logs":[]"#, logs);
        plant(&server, &id, &json);
        let record = repo.append_log(&id, "first").await.unwrap().unwrap();
        assert_eq!(record.logs.len(), 1, "{logs}");
        let stored = server.cli(&["GET", &format!("task:{id}")]);
        let value: serde_json::Value = serde_json::from_str(&stored).expect("valid JSON");
        assert!(
            value["logs"][0].as_str().unwrap().ends_with(",first"),
            "{stored}"
        );
    }
}

/// Defect 2: another writer's record of the same length, whose unknown array ends where the
/// logs ended, used to get the entry appended to that array.
#[tokio::test]
async fn an_array_ending_where_the_logs_ended_does_not_take_the_entry() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    let messages = [
        "first message, long enough to be cut",
        "second message, long enough too",
    ];
    for message in messages {
        repo.append_log("1", message).await.unwrap();
    }
    let stored = server.cli(&["GET", "task:1"]);
    // `...","<second>"]` becomes `..."],"tags":["<second, 9 bytes shorter>"]`: the same
    // length, and the array closes at the same byte.
    let logs_end = stored.find(r#"],"result""#).unwrap();
    let first_end = stored[..logs_end].rfind(r#"",""#).unwrap();
    let second = &stored[first_end + 3..logs_end - 1];
    let shortened = &second[..second.len() - 9];
    let foreign = format!(
        r#"{}"],"tags":["{}"{}"#,
        &stored[..first_end],
        shortened,
        &stored[logs_end..]
    );
    assert_eq!(foreign.len(), stored.len());
    assert_eq!(foreign.find(r#"],"result""#), Some(logs_end));
    server.cli(&["SET", "task:1", &foreign, "KEEPTTL"]);
    let record = repo.append_log("1", "third").await.unwrap().unwrap();
    let messages: Vec<String> = record.log_entries().map(|e| e.message).collect();
    assert_eq!(messages, [messages_first(), "third".to_owned()]);
    assert_eq!(
        record.extra.get_as::<Vec<String>>("tags").unwrap(),
        Some(vec![shortened.to_owned()])
    );
}

fn messages_first() -> String {
    "first message, long enough to be cut".to_owned()
}

/// Defect 3: a writer with a short TTL used to shorten the shared indexes (and records).
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

/// Defect 4: a record the model cannot decode used to be changed, then reported as failed.
#[tokio::test]
async fn a_record_the_model_cannot_decode_is_never_changed() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let broken = [
        PYTHON.replace(r#""status":"running""#, r#""status":"exploded""#),
        PYTHON.replace(
            r#""created_at":"2025-11-17T10:00:16.515926+09:00""#,
            r#""created_at":"soon""#,
        ),
        PYTHON.replace(r#""priority":"low""#, r#""priority":"urgent""#),
        PYTHON.replace(r#""logs":[]"#, r#""logs":["a",1]"#),
        PYTHON.replace(r#""jobs":[]"#, r#""jobs":{}"#),
        PYTHON.replace(
            r#""result":{"pod_status":null,"launcher_output":null}"#,
            r#""result":{"pod_status":7}"#,
        ),
    ];
    for json in broken {
        plant(&server, "1", &json);
        let results = [
            repo.append_log("1", "x").await.map(|_| ()),
            repo.append_logs("1", &["x".to_owned()]).await.map(|_| ()),
            repo.set_status("1", TaskStatus::Failed, Some("x"))
                .await
                .map(|_| ()),
            repo.transition("1", &[TaskStatus::Running], TaskStatus::Failed, None)
                .await
                .map(|_| ()),
            repo.update_result("1", Some("x"), None).await.map(|_| ()),
            repo.set_jobs("1", &["j".to_owned()]).await.map(|_| ()),
        ];
        for result in results {
            assert!(
                matches!(result, Err(Error::Decode { ref key, .. }) if key == "task:1"),
                "{result:?} on {json}"
            );
        }
        assert_eq!(server.cli(&["GET", "task:1"]), json, "the record changed");
    }
}

/// Defect 5: with both `jobs` and `active_jobs`, set_jobs used to write one and get to show
/// the other.
#[tokio::test]
async fn jobs_and_active_jobs_together_stay_one_list() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let json = PYTHON.replace(r#""jobs":[]"#, r#""jobs":["old"],"active_jobs":["old"]"#);
    plant(&server, "1", &json);
    let record = repo
        .set_jobs("1", &["slurm-7".to_owned()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.jobs, ["slurm-7"]);
    assert_eq!(repo.get("1").await.unwrap().unwrap().jobs, ["slurm-7"]);
    let stored: serde_json::Value = serde_json::from_str(&server.cli(&["GET", "task:1"])).unwrap();
    assert_eq!(stored["jobs"], serde_json::json!(["slurm-7"]));
    assert_eq!(stored["active_jobs"], serde_json::json!(["slurm-7"]));
}

/// Defect 7: 7,999 or more messages in one append used to fail in Lua's unpack.
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

/// Defect 9: a TTL that the settings accepted and Redis refused used to fail a script after
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
