//! The Redis layout and bytes, checked against records in the Python package's format.

mod common;

use common::{clock, fresh, fresh_on, with_clock};
use fred::prelude::KeysInterface;
use task_state_core::{Error, Scope, TaskRecord, TaskRepository, TaskStatus};

/// A record of task 1 as the Python package writes it, with no logs or jobs yet.
const PYTHON: &str = r#"{"task_id":"1","service":"render","user_id":"bob","status":"running","parameters":{"ratio":0.30000000000000004},"jobs":[],"created_at":"2025-11-17T10:00:16.515926+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":[],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;

const SPEC_EXAMPLE: &str = r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","parameters":{"retries":3,"ratio":0.30000000000000004},"jobs":["slurm-500"],"created_at":"2025-11-17T10:00:16.515926+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":["2025-11-17T10:00:16.515926+09:00,worker started"],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;

/// Plants a record as the Python package writes it: record, metadata, indexes.
fn plant(
    server: &task_state_redis::testing::RedisServer,
    id: &str,
    service: &str,
    user: &str,
    json: &str,
) {
    server.cli(&["SET", &format!("task:{id}"), json, "EX", "7776000"]);
    server.cli(&[
        "HSET",
        &format!("task:{id}:metadata"),
        "service",
        service,
        "user_id",
        user,
    ]);
    for key in [
        "index:tasks".to_owned(),
        format!("index:service:{service}"),
        format!("index:service:{service}:user:{user}"),
        format!("index:user:{user}"),
    ] {
        server.cli(&["SADD", &key, id]);
    }
    server.cli(&["SADD", &format!("index:service:{service}:users"), user]);
}

#[tokio::test]
async fn reads_python_records() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let records = [
        ("5", SPEC_EXAMPLE.to_owned()),
        (
            "6",
            SPEC_EXAMPLE
                .replace(r#""task_id":"5""#, r#""task_id":"6""#)
                .replace(
                    "2025-11-17T10:00:16.515926+09:00\",\"updated_at",
                    "2025-03-09T01:59:59.999999-05:00\",\"updated_at",
                )
                .replace(r#""user_id":"bob""#, r#""user_id":"김철수""#)
                .replace(
                    r#""retries":3"#,
                    r#""retries":123456789012345678901234567890,"note":"ünïcødé ✓","e":[],"o":{}"#,
                ),
        ),
    ];
    for (id, json) in &records {
        let user = if *id == "6" { "김철수" } else { "bob" };
        plant(&server, id, "render", user, json);
    }
    let got = repo.get("5").await.unwrap().unwrap();
    assert_eq!(got.status, TaskStatus::Running);
    assert_eq!(got.to_json(), records[0].1);
    let got = repo.get("6").await.unwrap().unwrap();
    assert_eq!(got.user_id, "김철수");
    assert_eq!(
        got.created_at.to_string(),
        "2025-03-09T01:59:59.999999-05:00"
    );
    assert_eq!(got.to_json(), records[1].1);
    for status in TaskStatus::ALL {
        let json = SPEC_EXAMPLE
            .replace("\"running\"", &format!("\"{status}\""))
            .replace(r#""task_id":"5""#, r#""task_id":"7""#);
        plant(&server, "7", "render", "bob", &json);
        assert_eq!(repo.get("7").await.unwrap().unwrap().status, status);
    }
    let list = repo.list_by_service("render").await.unwrap();
    assert_eq!(list.ids(), ["5", "6", "7"]);
    assert_eq!(
        repo.list_users_by_service("render").await.unwrap(),
        ["bob", "김철수"]
    );
}

#[tokio::test]
async fn writes_python_bytes_and_every_key_of_the_layout() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let clock = clock();
    let repo = with_clock(&repo, &clock);
    let mut record = TaskRecord::from_json(SPEC_EXAMPLE).unwrap();
    record.logs.clear();
    record.jobs.clear();
    let saved = repo.save(record).await.unwrap();
    assert_eq!(
        saved.updated_at.to_string(),
        "2025-11-17T10:00:16.515926+09:00"
    );
    let expected = SPEC_EXAMPLE
        .replace(r#""jobs":["slurm-500"]"#, r#""jobs":[]"#)
        .replace(
            r#""updated_at":"2025-11-17T10:00:16+09:00""#,
            r#""updated_at":"2025-11-17T10:00:16.515926+09:00""#,
        )
        .replace(
            r#""logs":["2025-11-17T10:00:16.515926+09:00,worker started"]"#,
            r#""logs":[]"#,
        );
    assert_eq!(server.cli(&["GET", "task:5"]), expected);

    clock.advance(std::time::Duration::from_micros(484_074)); // 10:00:17 exactly
    repo.set_status("5", TaskStatus::Completed, Some("worker finished, ok"))
        .await
        .unwrap();
    repo.set_jobs("5", &["slurm-500".to_owned(), "slurm-501".to_owned()])
        .await
        .unwrap();
    repo.update_result("5", Some("{\"phase\":\"Succeeded\"}"), None)
        .await
        .unwrap();
    let expected = expected
        .replace(r#""status":"running""#, r#""status":"completed""#)
        .replace(r#""jobs":[]"#, r#""jobs":["slurm-500","slurm-501"]"#)
        .replace(
            r#""updated_at":"2025-11-17T10:00:16.515926+09:00""#,
            r#""updated_at":"2025-11-17T10:00:17+09:00""#,
        )
        .replace(
            r#""logs":[]"#,
            r#""logs":["2025-11-17T10:00:17+09:00,worker finished, ok"]"#,
        )
        .replace(
            r#""pod_status":null"#,
            r#""pod_status":"{\"phase\":\"Succeeded\"}""#,
        );
    assert_eq!(server.cli(&["GET", "task:5"]), expected);
    assert_eq!(repo.get("5").await.unwrap().unwrap().to_json(), expected);

    let types = [
        ("task:5", "string"),
        ("task:5:metadata", "hash"),
        ("index:tasks", "set"),
        ("index:service:render", "set"),
        ("index:service:render:users", "set"),
        ("index:service:render:user:bob", "set"),
        ("index:user:bob", "set"),
    ];
    for (key, kind) in types {
        assert_eq!(server.cli(&["TYPE", key]), kind, "{key}");
        let ttl: i64 = server.cli(&["TTL", key]).parse().unwrap();
        // The metadata outlives the record by 60 s, an index by a one-second margin; both
        // are given an hour of headroom (a tenth of the TTL, at most an hour), so that the
        // writes that follow need not refresh them.
        let (expected_ttl, headroom) = if key.ends_with(":metadata") {
            (7_776_060, 3_600)
        } else if key.starts_with("index:") {
            (7_776_001, 3_600)
        } else {
            (7_776_000, 0)
        };
        assert!(
            (expected_ttl + headroom - 5..=expected_ttl + headroom).contains(&ttl),
            "{key} ttl {ttl}"
        );
    }
    assert_eq!(
        server.cli(&["HGET", "task:5:metadata", "service"]),
        "render"
    );
    assert_eq!(server.cli(&["HGET", "task:5:metadata", "user_id"]), "bob");
    assert_eq!(repo.next_task_id().await.unwrap(), "1");
    assert_eq!(server.cli(&["TYPE", "task:id:sequence"]), "string");
    assert_eq!(server.cli(&["TTL", "task:id:sequence"]), "-1");
}

#[tokio::test]
async fn mutations_keep_every_other_byte() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let params = r#"{"a":0.30000000000000004,"b":12345678901234567890,"c":-1e-300,"d":[],"e":{},"f":[1,[2,{"g":null}]],"h":"q\"uo,te]\\"}"#;
    let json = SPEC_EXAMPLE
        .replace(r#"{"retries":3,"ratio":0.30000000000000004}"#, params)
        .replace(
            r#","priority":"low"}"#,
            r#","priority":"low","future":{"x":[1.50,{}],"y":[]}}"#,
        );
    plant(&server, "5", "render", "bob", &json);
    // Python-written first (slow path), then ours (fast path), then a mix.
    for round in 0..3 {
        repo.append_log(
            "5",
            &format!("round {round}, with \"quotes\" and ]brackets["),
        )
        .await
        .unwrap();
        repo.append_logs("5", &["x".to_owned(), "y\nz".to_owned()])
            .await
            .unwrap();
        repo.update_result("5", None, Some("out\u{1}put"))
            .await
            .unwrap();
        repo.set_status("5", TaskStatus::Running, None)
            .await
            .unwrap();
        repo.set_jobs("5", &[]).await.unwrap();
        let stored = server.cli(&["GET", "task:5"]);
        assert!(
            stored.contains(&format!(r#""parameters":{params},"#)),
            "{stored}"
        );
        assert!(
            stored.ends_with(r#","priority":"low","future":{"x":[1.50,{}],"y":[]}}"#),
            "{stored}"
        );
        let record = repo.get("5").await.unwrap().unwrap();
        let python_lines = usize::from(round == 2);
        assert_eq!(record.logs.len(), 1 + 3 * (round + 1) + python_lines);
        assert_eq!(
            record.logs[0],
            "2025-11-17T10:00:16.515926+09:00,worker started"
        );
        assert_eq!(
            record.result.launcher_output.as_deref(),
            Some("out\u{1}put")
        );
        assert_eq!(record.result.pod_status, None);
        assert!(record.jobs.is_empty());
        let messages: Vec<String> = record.log_entries().map(|e| e.message).collect();
        assert_eq!(
            &messages[messages.len() - 3..],
            [
                format!("round {round}, with \"quotes\" and ]brackets["),
                "x".into(),
                "y\nz".into()
            ]
        );
        if round == 1 {
            // A write of the Python package in between: the remembered layout no longer fits.
            let mut record = TaskRecord::from_json(&stored).unwrap();
            record
                .logs
                .push("2025-11-17T10:00:16+09:00,python wrote this".to_owned());
            server.cli(&["SET", "task:5", &record.to_json(), "KEEPTTL"]);
        }
    }
    let record = repo.get("5").await.unwrap().unwrap();
    assert!(record
        .logs
        .iter()
        .any(|l| l.ends_with(",python wrote this")));
    assert_eq!(record.logs.len(), 1 + 9 + 1);
}

#[tokio::test]
async fn records_without_optional_members_gain_them() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    plant(
        &server,
        "9",
        "s",
        "u",
        r#"{"task_id":"9","service":"s","user_id":"u","status":"pending"}"#,
    );
    repo.append_log("9", "first").await.unwrap();
    repo.update_result("9", Some("p"), None).await.unwrap();
    repo.set_jobs("9", &["j".to_owned()]).await.unwrap();
    let record = repo.get("9").await.unwrap().unwrap();
    assert_eq!(record.logs.len(), 1);
    assert_eq!(record.result.pod_status.as_deref(), Some("p"));
    assert_eq!(record.jobs, ["j"]);
    plant(
        &server,
        "10",
        "s",
        "u",
        r#"{"task_id":"10","service":"s","user_id":"u","status":"pending","logs":null,"result":null,"active_jobs":["a"]}"#,
    );
    repo.append_log("10", "first").await.unwrap();
    repo.update_result("10", None, Some("o")).await.unwrap();
    repo.set_jobs("10", &["b".to_owned()]).await.unwrap();
    let record = repo.get("10").await.unwrap().unwrap();
    assert_eq!(record.logs.len(), 1);
    assert_eq!(record.result.launcher_output.as_deref(), Some("o"));
    assert_eq!(record.jobs, ["b"]);
    assert_eq!(record.jobs_field(), "active_jobs");
    assert!(server
        .cli(&["GET", "task:10"])
        .contains(r#""active_jobs":["b"]"#));
}

#[tokio::test]
async fn bad_records_give_typed_errors_and_stay_unchanged() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    plant(&server, "1", "s", "u", r#"{"task_id":"1","service":"s","#);
    plant(
        &server,
        "2",
        "s",
        "u",
        &SPEC_EXAMPLE.replace(r#""task_id":"5""#, r#""task_id":"2""#),
    );
    server.cli(&["DEL", "task:3"]);
    server.cli(&["HSET", "task:3", "not", "a record"]);
    server.cli(&["SADD", "index:service:s", "3"]);
    plant(
        &server,
        "4",
        "s",
        "u",
        r#"{"task_id":"4","service":"s","user_id":"u","status":"exploded"}"#,
    );

    assert!(matches!(repo.get("1").await, Err(Error::Decode { ref key, .. }) if key == "task:1"));
    assert!(
        matches!(repo.get("3").await, Err(Error::WrongType { ref key, .. }) if key == "task:3")
    );
    assert!(matches!(repo.get("4").await, Err(Error::Decode { ref key, .. }) if key == "task:4"));
    let list = repo.list(&Scope::Service("s".into())).await.unwrap();
    assert_eq!(list.ids(), ["2"]);
    let mut bad: Vec<(&str, bool)> = list
        .unreadable
        .iter()
        .map(|u| {
            (
                u.task_id.as_str(),
                matches!(u.error, Error::WrongType { .. }),
            )
        })
        .collect();
    bad.sort();
    assert_eq!(bad, [("1", false), ("3", true), ("4", false)]);

    let before = server.cli(&["GET", "task:1"]);
    assert!(
        matches!(repo.append_log("1", "x").await, Err(Error::Decode { ref key, .. }) if key == "task:1")
    );
    assert!(matches!(
        repo.set_status("1", TaskStatus::Failed, None).await,
        Err(Error::Decode { .. })
    ));
    assert_eq!(server.cli(&["GET", "task:1"]), before);
    assert!(
        matches!(repo.append_log("3", "x").await, Err(Error::WrongType { ref key, .. }) if key == "task:3")
    );
    assert!(matches!(
        repo.save(TaskRecord::new("3", "s", "u", TaskStatus::Pending)).await,
        Err(Error::WrongType { ref key, .. }) if key == "task:3"
    ));
    assert_eq!(server.cli(&["HGET", "task:3", "not"]), "a record");
    // A wrong-typed index makes the mutation fail before it writes anything.
    server.cli(&["SET", "index:user:zed", "oops"]);
    let err = repo
        .save(TaskRecord::new("8", "s", "zed", TaskStatus::Pending))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, .. } if key == "index:user:zed"),
        "{err:?}"
    );
    assert_eq!(server.cli(&["EXISTS", "task:8"]), "0");
    assert!(matches!(
        repo.list(&Scope::User("zed".into())).await,
        Err(Error::WrongType { .. })
    ));
}

#[tokio::test]
async fn no_remembered_position_is_trusted_after_another_writer() {
    // The scripts' layout hint (the optimistic edits write none).
    let Some((server, repo)) = fresh_on(task_state_redis::WritePath::Script).await else {
        return;
    };
    repo.save(TaskRecord::new("1", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    let batch: Vec<String> = (0..500).map(|i| format!("line {i} \\ \"q\" ]")).collect();
    for _ in 0..4 {
        assert!(repo.append_logs("1", &batch).await.unwrap());
    }
    // Older versions remembered where the logs ended without a digest; such a hint is never
    // trusted, and is replaced by one with a SHA1 over the record (of version 3: with where
    // the status stands).
    server.cli(&["HSET", "task:1:metadata", "layout", "99,98,20,40"]);
    repo.append_logs("1", &["more".to_owned()]).await.unwrap();
    let hint = server.cli(&["HGET", "task:1:metadata", "layout"]);
    assert!(hint.starts_with("v3\u{1f}"), "{hint:?}");
    // A hint that another writer changed is not trusted either.
    let forged = format!("{}\u{1f}eve", hint.strip_suffix("\u{1f}u").unwrap());
    server.cli(&["HSET", "task:1:metadata", "layout", &forged]);
    repo.append_logs("1", &["more".to_owned()]).await.unwrap();
    assert_eq!(server.cli(&["EXISTS", "index:user:eve"]), "0");
    let record = repo.get("1").await.unwrap().unwrap();
    assert_eq!(record.logs.len(), 2002);

    // Another writer stores a record of the same length whose last member before the tail
    // is an array that ends where the logs ended.
    let stored = server.cli(&["GET", "task:1"]);
    let mut other = TaskRecord::from_json(&stored).unwrap();
    let removed = other.logs.pop().unwrap();
    let pad = serde_json::to_string(&removed).unwrap().len() + 1;
    other
        .parameters
        .insert("pad", "x".repeat(pad - r#""pad":"""#.len()));
    let other_json = other.to_json();
    assert_eq!(other_json.len(), stored.len());
    server.cli(&["SET", "task:1", &other_json, "KEEPTTL"]);
    repo.append_logs("1", &["after".to_owned()]).await.unwrap();
    let record = repo.get("1").await.unwrap().unwrap();
    assert_eq!(record.logs.len(), 2002);
    assert!(record.logs.last().unwrap().ends_with(",after"));
    assert!(record.parameters.contains_key("pad"));
}

/// A save leaves a layout hint (where its encoder put updated_at, the status and the last log
/// entry), so that the next edit need not scan the record; a record another writer stored
/// after the save, of the same length and with its logs where the hint says, is not trusted.
#[tokio::test]
async fn a_save_leaves_a_hint_that_only_its_own_record_passes() {
    // The script's save: an optimistic one writes no hint (docs/redis.md).
    let Some((server, repo)) = fresh_on(task_state_redis::WritePath::Script).await else {
        return;
    };
    let mut record = TaskRecord::new("1", "s", "u", TaskStatus::Pending);
    record.logs = vec!["one".into(), "two".into()];
    repo.save(record.clone()).await.unwrap();
    let hint = server.cli(&["HGET", "task:1:metadata", "layout"]);
    let parts: Vec<&str> = hint.split('\u{1f}').collect();
    assert_eq!(parts.len(), 9, "{hint:?}");
    assert_eq!((parts[0], parts[7], parts[8]), ("v3", "s", "u"));
    // The client's SHA1 is the one the scripts compute (lib/hint.lua), so the hint is trusted.
    let digest = server.cli(&[
        "EVAL",
        "return redis.sha1hex(redis.sha1hex(ARGV[1]) .. '\\31' .. ARGV[2])",
        "0",
        &server.cli(&["GET", "task:1"]),
        &parts[2..].join("\u{1f}"),
    ]);
    assert_eq!(digest, parts[1]);
    let changed = repo
        .set_status("1", TaskStatus::Running, Some("three"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.status, TaskStatus::Running);
    assert_eq!(changed.logs.len(), 3);
    assert_eq!(repo.get("1").await.unwrap().unwrap(), changed);

    // Saved again, then rewritten by another writer with the same length: the logs array
    // moved into the parameters and an unknown array stands where the logs ended.
    repo.save(record.clone()).await.unwrap();
    let stored = server.cli(&["GET", "task:1"]);
    let logs = r#""logs":["one","two"]"#;
    let swapped = stored.replacen(logs, r#""logz":["one","two"]"#, 1);
    assert_eq!(swapped.len(), stored.len());
    server.cli(&["SET", "task:1", &swapped, "KEEPTTL"]);
    repo.append_logs("1", &["after".to_owned()]).await.unwrap();
    let text = server.cli(&["GET", "task:1"]);
    assert!(text.contains(r#""logz":["one","two"]"#), "{text}");
    let read = repo.get("1").await.unwrap().unwrap();
    let messages: Vec<String> = read.log_entries().map(|e| e.message).collect();
    assert_eq!(messages, ["after"]);

    // A record without a log entry leaves no hint (it says where the last one ends).
    repo.save(TaskRecord::new("2", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    assert_eq!(server.cli(&["HEXISTS", "task:2:metadata", "layout"]), "0");
}

#[tokio::test]
async fn an_edit_takes_the_owner_from_the_record_not_the_metadata() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("1", "s", "bob", TaskStatus::Running))
        .await
        .unwrap();
    repo.append_logs("1", &["first".to_owned()]).await.unwrap();
    // A damaged metadata hash must not lead the next append astray.
    server.cli(&["HSET", "task:1:metadata", "user_id", "mallory"]);
    server.cli(&["SADD", "index:user:mallory", "1"]);
    repo.append_logs("1", &["second".to_owned()]).await.unwrap();
    assert_eq!(server.cli(&["HGET", "task:1:metadata", "user_id"]), "bob");
    assert_eq!(server.cli(&["EXISTS", "index:user:mallory"]), "0");
    assert_eq!(server.cli(&["SISMEMBER", "index:user:bob", "1"]), "1");
    let record = repo.get("1").await.unwrap().unwrap();
    let messages: Vec<String> = record.log_entries().map(|e| e.message).collect();
    assert_eq!(messages, ["first", "second"]);
}

/// A delete reads and changes no TTL of the sets it leaves non-empty: the members left were
/// written by writes that extended them (Python's `_cleanup_user_index` sets them to its
/// TTL, shortening a longer one).
#[tokio::test]
async fn delete_leaves_the_ttls_of_the_sets_it_leaves_non_empty() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    common::a_delete_leaves_the_set_ttls(&repo, |args| server.cli(args)).await;
}

/// The scripts scan the values the model keeps as text without recursion, so a record nested
/// 100,000 levels deep in its parameters (200 KB of brackets) is edited like any other, and
/// those bytes stay as they were.
#[tokio::test]
async fn values_nested_100_000_levels_deep_are_edited_around_and_kept() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let deep = format!("{}1e400{}", "[".repeat(100_000), "]".repeat(100_000));
    let parameters = format!(r#""parameters":{{"retries":{deep},"ratio":0.30000000000000004}}"#);
    let json = SPEC_EXAMPLE.replace(
        r#""parameters":{"retries":3,"ratio":0.30000000000000004}"#,
        &parameters,
    );
    // The metadata and indexes as Python leaves them; the record is too long for redis-cli.
    plant(&server, "5", "render", "bob", "{}");
    let client = repo.raw_writer().next();
    let _: () = client
        .set("task:5", json.as_str(), None, None, false)
        .await
        .unwrap();
    let record = repo.append_log("5", "deep").await.unwrap().unwrap();
    assert_eq!(record.parameters["retries"].get(), deep);
    let stored: String = client.get("task:5").await.unwrap();
    assert!(stored.contains(&parameters));
    assert_eq!(stored.len(), record.to_json().len());
    assert!(stored.contains(",deep\"],\"result\""));
}

/// White space inside an empty logs array used to give `[ ,"<entry>"]`.
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
        plant(&server, &id, "render", "bob", &json);
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

/// Another writer's record of the same length, whose unknown array ends where the
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

/// A record the model cannot decode used to be changed, then reported as failed.
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
        plant(&server, "1", "render", "bob", &json);
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

/// With both `jobs` and `active_jobs`, set_jobs used to write one and get to show
/// the other.
#[tokio::test]
async fn jobs_and_active_jobs_together_stay_one_list() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let json = PYTHON.replace(r#""jobs":[]"#, r#""jobs":["old"],"active_jobs":["old"]"#);
    plant(&server, "1", "render", "bob", &json);
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

/// The id counter past `i64::MAX` and below zero, as Python's `int(...) + 1` counts.
#[tokio::test]
async fn peek_next_task_id_counts_past_i64_max_as_python_does() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    server.cli(&["SET", "task:id:sequence", "9223372036854775807"]);
    assert_eq!(
        repo.peek_next_task_id().await.unwrap(),
        "9223372036854775808"
    );
    server.cli(&["SET", "task:id:sequence", "-5"]);
    assert_eq!(repo.peek_next_task_id().await.unwrap(), "-4");
}
