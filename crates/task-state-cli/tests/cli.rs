//! The `task-state` binary against private Redis servers: every command, the exit codes and
//! the output formats that scripts rely on.

#[macro_use]
mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use task_state_redis::testing::{free_port, RedisServer};

#[test]
fn create_takes_ids_from_the_sequence_and_get_shows_the_task() {
    let env = env_or_skip!();
    assert_eq!(env.ok(&["next-id", "--peek"]), "1\n");
    assert_eq!(
        env.ok(&["create", "--service", "render", "--user", "alice"]),
        "1\n"
    );
    let id = env.ok(&[
        "create",
        "--service",
        "render",
        "--user",
        "bob",
        "--param",
        "frames=240",
        "--param",
        "ratio=0.30000000000000004",
        "--param",
        r#"opts={"tags":["a","b"],"deep":{}}"#,
        "--param",
        "big=123456789012345678901234567890",
        "--priority",
        "high",
    ]);
    assert_eq!(id, "2\n");
    let record = env.ok(&["get", "2", "--json"]);
    assert!(
        record.contains(
            r#""parameters":{"frames":240,"ratio":0.30000000000000004,"opts":{"tags":["a","b"],"deep":{}},"big":123456789012345678901234567890}"#
        ),
        "{record}"
    );
    assert!(record.contains(r#""status":"pending""#));
    assert!(record.contains(r#""priority":"high""#));

    let view = env.ok(&["get", "2"]);
    for expected in ["render", "bob", "pending", "high", r#""frames":240"#] {
        assert!(view.contains(expected), "{expected} missing from\n{view}");
    }

    assert_eq!(
        env.ok(&[
            "create",
            "--service",
            "etl",
            "--user",
            "carol",
            "--id",
            "job-x"
        ]),
        "job-x\n"
    );
    // An explicit id does not take one from the sequence.
    assert_eq!(env.ok(&["next-id", "--peek"]), "3\n");
    assert_eq!(env.ok(&["next-id"]), "3\n");
    assert_eq!(env.ok(&["next-id", "--peek"]), "4\n");
}

#[test]
fn create_refuses_an_existing_id_with_exit_4() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u", "--id", "7"]);
    env.ok(&["status", "7", "running"]);
    let output = env.run(&["create", "--service", "s", "--user", "other", "--id", "7"]);
    assert_eq!(code(&output), 4);
    assert!(
        stderr(&output).contains(r#"task "7" already exists"#),
        "{}",
        stderr(&output)
    );
    assert_eq!(env.record("7")["user_id"], "u");
    assert_eq!(env.record("7")["status"], "running");
}

#[test]
fn get_json_prints_the_stored_bytes() {
    let env = env_or_skip!();
    // Written as the Python package writes it, with a field this version does not know and
    // the old `active_jobs` name: printed as stored, not as re-encoded.
    let stored = r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","parameters":{"retries":3,"ratio":0.30000000000000004,"big":123456789012345678901234567890,"empty":[],"obj":{}},"active_jobs":["slurm-500"],"created_at":"2025-11-17T10:00:16.515926+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":["2025-11-17T10:00:16.515926+09:00,worker started, ok","2025-11-17T10:00:17+09:00,한국어 ✓"],"result":{"pod_status":null,"launcher_output":"out"},"priority":"low","future_field":{"x":1}}"#;
    env.server.cli(&["SET", "task:5", stored]);
    env.server.cli(&["SADD", "index:tasks", "5"]);
    let output = env.run(&["get", "5", "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(output.stdout, format!("{stored}\n").into_bytes());

    let view = env.ok(&["get", "5"]);
    for expected in [
        "slurm-500",
        "worker started, ok",
        "한국어 ✓",
        "future_field",
        "out",
    ] {
        assert!(view.contains(expected), "{expected} missing from\n{view}");
    }
}

#[test]
fn get_json_of_an_unreadable_record_is_an_error() {
    let env = env_or_skip!();
    env.server.cli(&["SET", "task:6", "{not json"]);
    let output = env.run(&["get", "6", "--json"]);
    assert_eq!(code(&output), 1);
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("task:6"), "{}", stderr(&output));
}

#[test]
fn list_sorts_ids_numerically_and_filters() {
    let env = env_or_skip!();
    for (id, service, user) in [
        ("2", "render", "alice"),
        ("10", "render", "bob"),
        ("9", "etl", "alice"),
    ] {
        env.ok(&["create", "--service", service, "--user", user, "--id", id]);
    }
    env.ok(&["status", "10", "running"]);
    env.ok(&["status", "9", "failed"]);

    let ids_of = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        env.ok(&all)
            .lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                record["task_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(ids_of(&[]), ["2", "9", "10"]);
    assert_eq!(ids_of(&["--service", "render"]), ["2", "10"]);
    assert_eq!(ids_of(&["--user", "alice"]), ["2", "9"]);
    assert_eq!(ids_of(&["--service", "render", "--user", "bob"]), ["10"]);
    assert_eq!(
        ids_of(&["--status", "running", "--status", "failed"]),
        ["9", "10"]
    );
    assert_eq!(
        ids_of(&["--service", "etl", "--status", "running"]),
        Vec::<String>::new()
    );

    let table = env.ok(&["list"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("ID") && header.contains("STATUS"),
        "{table}"
    );
    assert_eq!(first_column(&table), ["2", "9", "10"]);
    let row_10 = table
        .lines()
        .find(|l| l.trim_start().starts_with("10 "))
        .unwrap();
    assert!(
        row_10.contains("running") && row_10.contains("bob"),
        "{row_10}"
    );
}

#[test]
fn list_streams_a_hundred_thousand_tasks() {
    let env = env_or_skip!();
    const N: usize = 100_000;
    // Loaded with `redis-cli --pipe`: a hundred thousand CLI calls would take minutes.
    let mut protocol = Vec::new();
    let mut command = |args: &[&str]| {
        write!(protocol, "*{}\r\n", args.len()).unwrap();
        for arg in args {
            write!(protocol, "${}\r\n{arg}\r\n", arg.len()).unwrap();
        }
    };
    for i in 1..=N {
        let id = i.to_string();
        let status = if i % 1000 == 0 {
            "completed"
        } else {
            "pending"
        };
        let record = format!(
            r#"{{"task_id":"{id}","service":"bulk","user_id":"u{}","status":"{status}","parameters":{{}},"jobs":[],"created_at":"2025-11-17T10:00:16+09:00","updated_at":"2025-11-17T10:00:16+09:00","logs":[],"result":{{"pod_status":null,"launcher_output":null}},"priority":"low"}}"#,
            i % 7
        );
        command(&["SET", &format!("task:{id}"), &record]);
        command(&["SADD", "index:tasks", &id]);
    }
    let mut pipe = Command::new("redis-cli")
        .args(["-p", &env.server.port().to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli");
    pipe.stdin.take().unwrap().write_all(&protocol).unwrap();
    assert!(pipe.wait().unwrap().success());

    let json = env.ok(&["list", "--json"]);
    let mut count = 0;
    let mut previous = 0u64;
    for line in json.lines() {
        let id: u64 = line[12..line[12..].find('"').unwrap() + 12]
            .parse()
            .unwrap();
        assert!(id > previous, "{id} after {previous}");
        previous = id;
        count += 1;
    }
    assert_eq!(count, N);

    let table = env.ok(&["list", "--status", "completed"]);
    let ids = first_column(&table);
    assert_eq!(ids.len(), N / 1000);
    assert_eq!(ids.first().map(String::as_str), Some("1000"));
    assert_eq!(ids.last().map(String::as_str), Some("100000"));
}

#[test]
fn list_reports_unreadable_records_and_lists_the_rest() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u", "--id", "1"]);
    env.ok(&["create", "--service", "s", "--user", "u", "--id", "3"]);
    env.server.cli(&["SET", "task:2", "{broken"]);
    env.server.cli(&["SADD", "index:tasks", "2"]);
    let output = env.run(&["list", "--json"]);
    assert_eq!(code(&output), 1);
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    let err = stderr(&output);
    assert!(err.contains("task:2"), "{err}");
    assert!(err.contains("1 record(s) could not be read"), "{err}");
}

#[test]
fn list_of_an_index_of_the_wrong_type_says_so() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "render", "--user", "zed"]);
    env.server.cli(&["DEL", "index:user:zed"]);
    env.server.cli(&["SET", "index:user:zed", "not a set"]);
    let output = env.run(&["list", "--user", "zed"]);
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(err.contains("index:user:zed"), "{err}");
    assert!(err.contains("wrong kind of value"), "{err}");
    assert!(!err.contains("could not be read"), "{err}");
}

#[test]
fn users_lists_the_users_of_a_service() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "render", "--user", "zoe"]);
    env.ok(&["create", "--service", "render", "--user", "adam"]);
    env.ok(&["create", "--service", "etl", "--user", "eve"]);
    assert_eq!(env.ok(&["users", "render"]), "adam\nzoe\n");
    assert_eq!(env.ok(&["users", "nobody"]), "");
}

#[test]
fn status_sets_the_status_and_logs_the_message() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "running", "--log", "worker started"]);
    assert_eq!(env.record("1")["status"], "running");
    assert_eq!(env.messages("1"), ["worker started"]);
    env.ok(&[
        "status",
        "1",
        "completed",
        "--if",
        "dispatching",
        "--if",
        "running",
    ]);
    assert_eq!(env.record("1")["status"], "completed");
}

#[test]
fn status_with_an_empty_log_appends_nothing() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "running", "--log", ""]);
    assert_eq!(env.record("1")["status"], "running");
    env.ok(&["status", "1", "completed", "--if", "running", "--log", ""]);
    assert_eq!(env.record("1")["status"], "completed");
    assert_eq!(
        env.messages("1"),
        Vec::<String>::new(),
        "as Python's `if log_entry:`"
    );
}

#[test]
fn status_if_another_status_is_a_conflict_naming_it() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "completed"]);
    let output = env.run(&[
        "status",
        "1",
        "cancel_requested",
        "--if",
        "pending",
        "--if",
        "running",
        "--log",
        "cancel",
    ]);
    assert_eq!(code(&output), 4);
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("completed"), "{err}");
    assert_eq!(env.record("1")["status"], "completed");
    assert!(
        env.messages("1").is_empty(),
        "nothing is written on a conflict"
    );
}

#[test]
fn log_appends_one_message() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["log", "1", "a, b\nand more"]);
    assert_eq!(env.messages("1"), ["a, b\nand more"]);
}

#[test]
fn log_dash_appends_each_line_of_stdin() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    // More lines than one batch, Windows line endings, Unicode, commas, and a last line
    // without a newline.
    let mut input = String::new();
    for i in 0..250 {
        input.push_str(&format!("line {i}, with comma\n"));
    }
    input.push_str("crlf line\r\n한국어 ✓\nlast without newline");
    let output = env.run_with_stdin(&["log", "1", "-"], input.as_bytes());
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let messages = env.messages("1");
    assert_eq!(messages.len(), 253);
    assert_eq!(messages[0], "line 0, with comma");
    assert_eq!(messages[249], "line 249, with comma");
    assert_eq!(
        &messages[250..],
        ["crlf line", "한국어 ✓", "last without newline"]
    );
}

#[test]
fn log_dash_sends_lines_while_the_writer_is_still_running() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    let mut child = env
        .command(&["log", "1", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\nsecond\n").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.messages("1").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "lines were not sent during a pause"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stdin.write_all(b"third\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert_eq!(env.messages("1"), ["first", "second", "third"]);
}

#[test]
fn log_dash_to_a_missing_task_exits_3() {
    let env = env_or_skip!();
    let output = env.run_with_stdin(&["log", "404", "-"], b"one\ntwo\n");
    assert_eq!(code(&output), 3);
    let output = env.run_with_stdin(&["log", "404", "-"], b"");
    assert_eq!(code(&output), 3);
}

#[test]
fn result_sets_only_the_given_fields() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["result", "1", "--pod-status", "phase=Running"]);
    let dir = std::env::temp_dir().join(format!("task-state-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("launcher.out");
    std::fs::write(&file, "line 1\nline 2 ✓\n").unwrap();
    env.ok(&[
        "result",
        "1",
        "--launcher-output-file",
        file.to_str().unwrap(),
    ]);
    let result = &env.record("1")["result"];
    assert_eq!(result["pod_status"], "phase=Running");
    assert_eq!(result["launcher_output"], "line 1\nline 2 ✓\n");
    env.ok(&["result", "1", "--launcher-output", "short"]);
    assert_eq!(env.record("1")["result"]["launcher_output"], "short");
    assert_eq!(env.record("1")["result"]["pod_status"], "phase=Running");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn jobs_replaces_the_job_ids() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["jobs", "1", "slurm-1", "slurm-2"]);
    assert_eq!(
        env.record("1")["jobs"],
        serde_json::json!(["slurm-1", "slurm-2"])
    );
    env.ok(&["jobs", "1", "k8s-9"]);
    assert_eq!(env.record("1")["jobs"], serde_json::json!(["k8s-9"]));
}

#[test]
fn delete_removes_the_task_from_get_list_and_users() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["create", "--service", "s", "--user", "v"]);
    env.ok(&["delete", "1"]);
    assert_eq!(code(&env.run(&["get", "1"])), 3);
    assert_eq!(first_column(&env.ok(&["list"])), ["2"]);
    assert_eq!(env.ok(&["users", "s"]), "v\n");
    assert_eq!(code(&env.run(&["delete", "1"])), 3);
}

#[test]
fn missing_tasks_exit_3_with_one_line() {
    let env = env_or_skip!();
    for args in [
        &["get", "404"][..],
        &["get", "404", "--json"],
        &["status", "404", "running"],
        &["status", "404", "running", "--if", "pending"],
        &["log", "404", "hello"],
        &["result", "404", "--pod-status", "x"],
        &["jobs", "404", "j1"],
        &["delete", "404"],
        &["logs", "404"],
        &["logs", "404", "--follow"],
    ] {
        let output = env.run(args);
        assert_eq!(code(&output), 3, "{args:?}: {}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("404") && err.contains("not found"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    for args in [
        &[
            "create",
            "--service",
            "s",
            "--user",
            "u",
            "--param",
            "x=not json",
        ][..],
        &[
            "create",
            "--service",
            "s",
            "--user",
            "u",
            "--param",
            "novalue",
        ],
        &[
            "create",
            "--service",
            "s",
            "--user",
            "u",
            "--priority",
            "urgent",
        ],
        &["create", "--service", "s"],
        &["create", "--service", "a:b", "--user", "u"],
        &["status", "1", "bogus"],
        &["status", "1", "running", "--if", "bogus"],
        &["list", "--status", "weird"],
        &["result", "1"],
        &[
            "result",
            "1",
            "--launcher-output",
            "a",
            "--launcher-output-file",
            "f",
        ],
        &["jobs", "1"],
        &["get"],
        &["get", "7:metadata"],
        &["no-such-command"],
    ] {
        let output = env.run(args);
        assert_eq!(code(&output), 2, "{args:?}: {}", stderr(&output));
    }
    // Nothing was created by the rejected calls, nor an id taken.
    assert_eq!(env.ok(&["next-id", "--peek"]), "2\n");
}

#[test]
fn logs_prints_the_entries() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["log", "1", "first, entry"]);
    env.ok(&["log", "1", "second"]);
    let out = env.ok(&["logs", "1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with("  first, entry"), "{out}");
    assert!(lines[1].ends_with("  second"), "{out}");
}

/// `logs 1 --follow --interval 0.1`, running.
fn follow_task_1(env: &Env) -> Child {
    env.command(&["logs", "1", "--follow", "--interval", "0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The messages `follow` printed once it ended with exit 0.
fn followed_messages(mut follow: Child) -> Vec<String> {
    let status = wait_with_deadline(&mut follow, Duration::from_secs(10));
    let output = follow.wait_with_output().unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        stderr(&output)
    );
    let out = String::from_utf8(output.stdout).unwrap();
    out.lines()
        .map(|l| l.split_once("  ").unwrap().1.to_owned())
        .collect()
}

#[test]
fn logs_follow_prints_new_entries_until_the_task_is_terminal() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "running", "--log", "started"]);
    let mut child = follow_task_1(&env);
    std::thread::sleep(Duration::from_millis(400));
    env.ok(&["log", "1", "midway"]);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        child.try_wait().unwrap().is_none(),
        "--follow must keep going while the task runs"
    );
    env.ok(&["status", "1", "completed", "--log", "done"]);
    assert_eq!(followed_messages(child), ["started", "midway", "done"]);
}

#[test]
fn logs_follow_reads_the_record_whole_once_then_only_its_tail() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "running", "--log", "started"]);
    let long = "x".repeat(50_000);
    env.ok(&["log", "1", &long]);
    env.server.cli(&["CONFIG", "RESETSTAT"]);
    let child = follow_task_1(&env);
    std::thread::sleep(Duration::from_millis(400));
    env.ok(&["log", "1", "midway, \"quoted\""]);
    std::thread::sleep(Duration::from_millis(400));
    env.ok(&["status", "1", "completed", "--log", "done"]);
    assert_eq!(
        followed_messages(child),
        ["started", long.as_str(), "midway, \"quoted\"", "done"]
    );
    let stats = env.server.cli(&["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_getrange:calls="),
        "the tail is read by GETRANGE: {stats}"
    );
    // Reading the 50 KB record at every 0.1 s would be 400 KB in 0.8 s; the writes' own
    // replies are in the figure too.
    let info = env.server.cli(&["INFO", "stats"]);
    let out: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(out < 250_000, "{out} bytes out of Redis");
}

/// The lines `reader` gives, as they come.
fn lines_as_they_come(
    reader: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(reader)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Where the server publishes keyspace notifications, `logs --follow` reads the log again at
/// each write: polling once an hour, it still shows every entry, each one before the next
/// is written, and ends with the task.
#[test]
fn logs_follow_is_woken_by_each_write_where_keyspace_notifications_are_on() {
    let Some(server) =
        task_state_redis::testing::server_or_skip_with(&["--notify-keyspace-events", "K$"])
    else {
        return;
    };
    let env = Env { server };
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "running", "--log", "started"]);
    let mut follow = env
        .command(&["logs", "1", "--follow", "--interval", "3600"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_as_they_come(follow.stdout.take().unwrap());
    // The deadline only ends a failing test: a poll would come after an hour.
    let mut shown = |written: &str| {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = follow.kill();
                panic!("{written:?} was not shown before the next poll")
            });
        assert_eq!(messages_of(&line), [written]);
    };
    shown("started");
    for n in 1..=3 {
        let entry = format!("entry {n}");
        env.ok(&["log", "1", &entry]);
        shown(&entry);
    }
    env.ok(&["status", "1", "completed", "--log", "done"]);
    shown("done");
    let status = wait_with_deadline(&mut follow, Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "follow ends with the task"
    );
}

#[test]
fn logs_follow_of_a_finished_task_exits_at_once() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "failed", "--log", "boom"]);
    let started = Instant::now();
    let out = env.ok(&["logs", "1", "--follow"]);
    assert!(out.ends_with("  boom\n"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn flags_override_the_environment() {
    let env = env_or_skip!();
    // The variables point nowhere useful; the flags win.
    let mut cmd = bare_command(&[
        "--write-url",
        &env.server.url(),
        "--ttl",
        "100",
        "--timezone",
        "America/New_York",
        "create",
        "--service",
        "s",
        "--user",
        "u",
    ]);
    cmd.env("DMS_REDIS_WRITE_URL", "redis://127.0.0.1:1/0")
        .env("DMS_REDIS_TASK_TTL_SECONDS", "5000")
        .env("DMS_TIMEZONE", "Asia/Seoul");
    let output = cmd.output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let ttl: u64 = env.server.cli(&["TTL", "task:1"]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 100, "ttl {ttl}");
    let created = env.record("1")["created_at"].as_str().unwrap().to_owned();
    assert!(
        created.ends_with("-05:00") || created.ends_with("-04:00"),
        "{created}"
    );
}

#[test]
fn a_missing_write_url_is_an_error_naming_the_variable() {
    let output = bare_command(&["get", "1"]).output().unwrap();
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("DMS_REDIS_WRITE_URL"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_server_is_one_line_without_the_password() {
    let port = free_port().unwrap();
    let password = "hunter2-very-secret";
    let url = format!("redis://worker:{password}@127.0.0.1:{port}/0");
    let by_flag = bare_command(&["--write-url", &url, "--timeout", "1", "get", "1"]);
    let mut by_env = bare_command(&["--timeout", "1", "list"]);
    by_env.env("DMS_REDIS_WRITE_URL", &url);
    for mut cmd in [by_flag, by_env] {
        let started = Instant::now();
        let output = cmd.output().unwrap();
        assert_eq!(code(&output), 1);
        assert!(output.stdout.is_empty());
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("task-state: "), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains(password), "{err}");
        assert!(started.elapsed() < Duration::from_secs(8));
    }
}

#[test]
fn writes_refused_by_the_server_exit_5_naming_the_cause() {
    let env = env_or_skip!();
    let id = env.ok(&["create", "--service", "render", "--user", "alice"]);
    let id = id.trim();
    let before = env.ok(&["get", id, "--json"]);
    env.server
        .cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    env.server.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    for args in [
        vec!["log", id, "a line"],
        vec!["status", id, "running"],
        vec!["result", id, "--pod-status", "phase=Running"],
        vec!["jobs", id, "slurm-1"],
        vec!["create", "--service", "render", "--user", "bob"],
    ] {
        let output = env.run(&args);
        let err = stderr(&output);
        assert_eq!(code(&output), 5, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("out of memory"), "{args:?}: {err}");
        assert!(err.contains("OOM"), "{args:?}: {err}");
        assert!(!err.contains("wrong kind"), "{args:?}: {err}");
    }
    env.server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(env.ok(&["get", id, "--json"]), before);
}

#[test]
fn fsck_reports_repairs_and_exits_by_what_remains() {
    let env = env_or_skip!();
    for user in ["alice", "bob", "alice"] {
        env.ok(&["create", "--service", "render", "--user", user]);
    }
    assert_eq!(code(&env.run(&["fsck"])), 0);
    env.server.cli(&["SREM", "index:user:alice", "1"]);
    env.server.cli(&["SADD", "index:tasks", "ghost"]);
    let found = env.run(&["fsck"]);
    assert_eq!(code(&found), 1, "{}", stderr(&found));
    let table = String::from_utf8_lossy(&found.stdout).into_owned();
    assert!(table.contains("index:user:alice"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(row("missing index entries"), "1", "{table}");
    assert_eq!(row("extra index entries"), "1", "{table}");
    assert!(
        stderr(&found).contains("1 missing and 1 extra"),
        "{}",
        stderr(&found)
    );
    assert_eq!(stderr(&found).lines().count(), 1);

    let repaired = env.run(&["fsck", "--repair"]);
    assert_eq!(code(&repaired), 0, "{}", stderr(&repaired));
    assert!(String::from_utf8_lossy(&repaired.stdout).contains("after repair: consistent"));
    assert_eq!(code(&env.run(&["fsck"])), 0);
    assert_eq!(env.server.cli(&["SISMEMBER", "index:user:alice", "1"]), "1");
}

#[test]
fn fsck_reports_keys_of_the_wrong_type_and_never_repairs_them() {
    let env = env_or_skip!();
    for user in ["alice", "bob"] {
        env.ok(&["create", "--service", "render", "--user", user]);
    }
    env.server.cli(&["DEL", "index:user:alice"]);
    env.server.cli(&["RPUSH", "index:user:alice", "1"]);
    env.server.cli(&["SREM", "index:user:bob", "2"]);
    for args in [&["fsck"][..], &["fsck", "--repair"]] {
        let found = env.run(args);
        assert_eq!(code(&found), 1, "{}", stderr(&found));
        let table = String::from_utf8_lossy(&found.stdout).into_owned();
        let row = table
            .lines()
            .find(|l| l.contains("index:user:alice"))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(row.contains("set") && row.contains("list"), "{row}");
        assert!(
            table
                .lines()
                .any(|l| l.trim_start().starts_with("keys of the wrong type")
                    && l.trim_end().ends_with('1')),
            "{table}"
        );
        assert!(
            stderr(&found).contains("1 keys of the wrong type"),
            "{}",
            stderr(&found)
        );
        assert_eq!(
            env.server.cli(&["LRANGE", "index:user:alice", "0", "-1"]),
            "1"
        );
    }
    // The rest was repaired.
    assert_eq!(env.server.cli(&["SISMEMBER", "index:user:bob", "2"]), "1");
}

fn json_of(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.trim().lines().count(), 1, "one object: {text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn fsck_user_compares_the_user_index_with_the_service_indexes() {
    let env = env_or_skip!();
    for (service, user) in [
        ("render", "alice"),
        ("render", "alice"),
        ("train", "alice"),
        ("render", "bob"),
    ] {
        env.ok(&["create", "--service", service, "--user", user]);
    }
    assert_eq!(code(&env.run(&["fsck", "--user", "alice"])), 0);
    let clean = env.run(&["fsck", "--user", "alice", "--json"]);
    assert_eq!(code(&clean), 0, "{}", stderr(&clean));
    assert_eq!(
        json_of(&clean),
        serde_json::json!({
            "user_id": "alice",
            "services": ["render", "train"],
            "user_index_count": 3,
            "service_union_count": 3,
            "missing_in_user_index": [],
            "extra_in_user_index": [],
        })
    );

    env.server.cli(&["SREM", "index:user:alice", "1"]);
    env.server
        .cli(&["SADD", "index:user:alice", "ghost", "4", "10"]);
    let bob_before = env
        .server
        .cli(&["SMEMBERS", "index:service:render:user:bob"]);
    let found = env.run(&["fsck", "--user", "alice", "--json"]);
    assert_eq!(code(&found), 1, "{}", stderr(&found));
    assert_eq!(
        json_of(&found),
        serde_json::json!({
            "user_id": "alice",
            "services": ["render", "train"],
            "user_index_count": 5,
            "service_union_count": 3,
            "missing_in_user_index": ["1"],
            "extra_in_user_index": ["4", "10", "ghost"],
        })
    );
    let scoped = env.run(&["fsck", "--user", "alice", "--service", "train", "--json"]);
    assert_eq!(code(&scoped), 1);
    let scoped = json_of(&scoped);
    assert_eq!(scoped["services"], serde_json::json!(["train"]));
    assert_eq!(scoped["service_union_count"], 1);
    assert_eq!(
        scoped["extra_in_user_index"],
        serde_json::json!(["2", "4", "10", "ghost"])
    );
    let table = env.run(&["fsck", "--user", "alice"]);
    assert_eq!(code(&table), 1);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("ghost") && text.contains("render, train"),
        "{text}"
    );

    // The repair puts 1 back and removes what has no record or another owner; a short
    // --ttl never shortens the index's TTL.
    let ttl_before: i64 = env
        .server
        .cli(&["TTL", "index:user:alice"])
        .parse()
        .unwrap();
    let repaired = env.run(&[
        "--ttl", "100", "fsck", "--user", "alice", "--repair", "--json",
    ]);
    assert_eq!(code(&repaired), 0, "{}", stderr(&repaired));
    let repaired = json_of(&repaired);
    assert_eq!(repaired["missing_in_user_index"], serde_json::json!(["1"]));
    assert_eq!(repaired["repaired"], 4);
    let mut members: Vec<String> = env
        .server
        .cli(&["SMEMBERS", "index:user:alice"])
        .lines()
        .map(str::to_owned)
        .collect();
    members.sort();
    assert_eq!(members, ["1", "2", "3"]);
    let ttl_after: i64 = env
        .server
        .cli(&["TTL", "index:user:alice"])
        .parse()
        .unwrap();
    assert!(ttl_after >= ttl_before - 2, "{ttl_before} -> {ttl_after}");
    assert_eq!(
        env.server
            .cli(&["SMEMBERS", "index:service:render:user:bob"]),
        bob_before,
        "only index:user:alice is repaired"
    );
    assert_eq!(code(&env.run(&["fsck", "--user", "alice"])), 0);
    assert_eq!(code(&env.run(&["fsck"])), 0, "the whole store agrees");

    // A user index that is gone altogether is rebuilt with the configured TTL.
    env.server.cli(&["DEL", "index:user:alice"]);
    let rebuilt = env.run(&["--ttl", "1000", "fsck", "--user", "alice", "--repair"]);
    assert_eq!(code(&rebuilt), 0, "{}", stderr(&rebuilt));
    assert_eq!(env.server.cli(&["SCARD", "index:user:alice"]), "3");
    let ttl: i64 = env
        .server
        .cli(&["TTL", "index:user:alice"])
        .parse()
        .unwrap();
    assert!((990..=1000).contains(&ttl), "{ttl}");
}

#[test]
fn fsck_json_prints_one_object() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "render", "--user", "alice"]);
    let clean = env.run(&["fsck", "--json"]);
    assert_eq!(code(&clean), 0, "{}", stderr(&clean));
    let clean = json_of(&clean);
    assert_eq!(clean["consistent"], true);
    assert_eq!(clean["records"], 1);
    env.server.cli(&["SADD", "index:tasks", "ghost"]);
    env.server.cli(&["DEL", "index:service:render:users"]);
    env.server.cli(&["SET", "index:service:render:users", "x"]);
    let found = env.run(&["fsck", "--json", "--repair"]);
    assert_eq!(code(&found), 1, "{}", stderr(&found));
    let found = json_of(&found);
    assert_eq!(found["consistent"], false);
    assert_eq!(found["indexes"]["index:tasks"]["extra"], 1);
    assert_eq!(
        found["wrong_type"]["index:service:render:users"],
        serde_json::json!({"expected": "set", "found": "string"})
    );
    assert!(found["repaired"].as_u64().unwrap() >= 1);
    assert_eq!(found["after_repair"]["consistent"], false);
    assert_eq!(found["after_repair"]["extra"], 0);
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn janitor_cleans_expired_tasks_and_stops_on_sigterm() {
    let Some(server) =
        task_state_redis::testing::server_or_skip_with(&["--notify-keyspace-events", "Ex"])
    else {
        return;
    };
    let env = Env { server };
    let mut janitor = env
        .command(&["janitor", "--reconcile-interval", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let short = env.ok(&[
        "--ttl",
        "1",
        "create",
        "--service",
        "render",
        "--user",
        "alice",
    ]);
    env.ok(&["create", "--service", "render", "--user", "alice"]); // keeps the indexes alive
    let short = short.trim().to_owned();
    // A listing skips an expired record at once; the index entry goes only when the janitor
    // has handled the expiry, so wait for that.
    let indexed = || {
        env.server
            .cli(&["SISMEMBER", "index:service:render", &short])
            == "1"
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while indexed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!indexed(), "the janitor did not clean the index entry");
    assert!(!first_column(&env.ok(&["list"])).contains(&short));
    signal(&janitor, "-TERM");
    let status = wait_with_deadline(&mut janitor, Duration::from_secs(5)).expect("janitor stops");
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut janitor.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("janitor stopped"), "{log}");
    assert!(log.contains("cleanups=1"), "{log}");
}

#[test]
fn janitor_needs_keyspace_events_unless_told_otherwise() {
    let env = env_or_skip!();
    let refused = env.run(&["janitor"]);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("notify-keyspace-events"),
        "{}",
        stderr(&refused)
    );
    let mut janitor = env
        .command(&["janitor", "--allow-missing-notifications"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        janitor.try_wait().unwrap().is_none(),
        "janitor exited early"
    );
    signal(&janitor, "-INT");
    let status = wait_with_deadline(&mut janitor, Duration::from_secs(5)).expect("janitor stops");
    assert!(status.success(), "{status:?}");
}

// Timeouts, connections and commands sent ----------------------------------------------

#[test]
fn a_silent_server_times_out_within_the_timeout() {
    // Accepts connections and never answers, as a hung server or a black-holing proxy does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let url = format!("redis://127.0.0.1:{port}/0");
    let started = Instant::now();
    let output = bare_command(&["--write-url", &url, "--timeout", "5", "get", "1"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.starts_with("task-state: backend: cannot connect to"),
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("within 5s"), "{err}");
    // About the 5 s asked for; the bound leaves room for a loaded machine.
    assert!(took >= Duration::from_millis(4_500), "{took:?}");
    assert!(took < Duration::from_secs(9), "{took:?}");
}

#[test]
fn a_url_flag_without_a_scheme_gets_a_hint_naming_the_flag() {
    for (flag, url) in [
        ("--write-url", "127.0.0.1:6379"),
        ("--write-url", "localhost:6379"),
        ("--read-url", "replica:6379"),
    ] {
        let mut cmd = bare_command(&[flag, url, "get", "1"]);
        cmd.env("DMS_REDIS_WRITE_URL", "redis://127.0.0.1:1/0");
        let output = cmd.output().unwrap();
        assert_eq!(code(&output), 1);
        let err = stderr(&output);
        assert!(err.contains(&format!("{flag}: ")), "{err}");
        assert!(err.contains("redis://host:port"), "{err}");
        assert!(!err.contains("DMS_REDIS"), "{err}");
    }
}

/// Every command's `calls` in `INFO commandstats`, and the connections received so far.
fn server_counters(server: &RedisServer) -> (std::collections::BTreeMap<String, u64>, u64) {
    let mut calls = std::collections::BTreeMap::new();
    for line in server.cli(&["INFO", "commandstats"]).lines() {
        let Some(rest) = line.trim().strip_prefix("cmdstat_") else {
            continue;
        };
        let (name, stats) = rest.split_once(':').unwrap();
        let n = stats
            .strip_prefix("calls=")
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        calls.insert(name.to_owned(), n);
    }
    let connections = server
        .cli(&["INFO", "stats"])
        .lines()
        .find_map(|l| l.trim().strip_prefix("total_connections_received:"))
        .and_then(|n| n.parse().ok())
        .unwrap();
    (calls, connections)
}

#[test]
fn one_get_opens_one_connection_and_sends_a_few_commands() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "render", "--user", "alice"]);
    let (before, connections_before) = server_counters(&env.server);
    assert_eq!(env.ok(&["status", "1"]), "pending\n");
    let (after, connections_after) = server_counters(&env.server);
    let mut sent = std::collections::BTreeMap::new();
    for (name, n) in &after {
        let delta = n - before.get(name).copied().unwrap_or(0);
        if delta > 0 {
            sent.insert(name.clone(), delta);
        }
    }
    // The two INFO calls of the first reading show in the second, and so do the two
    // redis-cli connections of the second reading.
    *sent.get_mut("info").unwrap() -= 2;
    sent.retain(|_, n| *n > 0);
    let total: u64 = sent.values().sum();
    assert_eq!(connections_after - connections_before - 2, 1, "{sent:?}");
    assert!(!sent.contains_key("script|load"), "{sent:?}");
    assert_eq!(sent.get("get"), Some(&1), "{sent:?}");
    // PING, SELECT, CLIENT ID and INFO of the client's handshake, the GET, the QUIT.
    assert!(total <= 6, "{total} commands: {sent:?}");
}

// CLI habits -----------------------------------------------------------------------------

#[test]
fn global_flags_have_their_own_help_heading() {
    for args in [&["--help"][..], &["get", "--help"], &["logs", "--help"]] {
        let help = String::from_utf8(bare_command(args).output().unwrap().stdout).unwrap();
        let heading = help.find("\nGlobal options:\n").expect(&help);
        for flag in ["--write-url", "--read-url", "--timeout", "--color"] {
            let at = help.find(flag).expect(flag);
            assert!(at > heading, "{flag} is not under Global options:\n{help}");
        }
    }
}

/// The indented lines after `Examples:` in `--help`.
fn help_examples() -> Vec<String> {
    let help = String::from_utf8(bare_command(&["--help"]).output().unwrap().stdout).unwrap();
    let start = help.find("\nExamples:\n").expect("an Examples section");
    help[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn the_help_examples_work_when_pasted_into_a_shell() {
    let env = env_or_skip!();
    let examples = help_examples();
    assert!(examples.len() >= 5, "{examples:?}");
    assert!(
        examples[0].starts_with("export DMS_REDIS_WRITE_URL=redis://"),
        "{examples:?}"
    );
    // Pasted as they are, but pointed at the private server.
    let mut script = format!("set -eu\nexport DMS_REDIS_WRITE_URL={}\n", env.server.url());
    for line in &examples[1..] {
        script.push_str(line);
        script.push('\n');
    }
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("DMS_REDIS_READ_URL")
        .output()
        .expect("bash is needed for this test");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.contains("running\n"), "{out}");
    assert!(out.contains("frame 2 done\n"), "{out}");
    assert_eq!(env.record("1")["status"], "completed");
    assert_eq!(env.record("1")["parameters"]["scene"], "forest");

    // The `--param` examples of `create --help`, pasted too.
    let help =
        String::from_utf8(bare_command(&["create", "--help"]).output().unwrap().stdout).unwrap();
    let params = help
        .split("quoted for the shell:")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect(&help)
        .trim()
        .to_owned();
    let script = format!(
        "set -eu\nexport DMS_REDIS_WRITE_URL={}\ntask-state create --service s --user u {params}",
        env.server.url()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{script}\n{}", stderr(&output));
    let id = String::from_utf8(output.stdout).unwrap();
    let record = env.record(id.trim());
    assert_eq!(record["parameters"]["frames"], 240, "{record}");
    assert_eq!(record["parameters"]["name"], "a b", "{record}");
    assert_eq!(record["parameters"]["opts"]["x"][0], 1, "{record}");
}

/// Runs `command` (a shell line) on a pseudo-terminal with `script`, and gives what the
/// terminal showed, with `\r\n` as `\n`.
fn on_terminal(env: &Env, command: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", command, "/dev/null"])
        .env("DMS_REDIS_WRITE_URL", env.server.url())
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("this test needs `script` (util-linux, Debian package bsdutils): {e}")
    });
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n")
}

/// `text` without its ANSI escape sequences (`ESC [ … letter`).
fn without_colour(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn tables_keep_their_rows_when_the_terminal_reports_width_0() {
    let env = env_or_skip!();
    env.ok(&[
        "create",
        "--service",
        "a-rather-long-service-name",
        "--user",
        "a-rather-long-user-name",
    ]);
    env.ok(&["jobs", "1", "slurm-123456789"]);
    // Coloured, as on any terminal: the colour codes are taken out before looking.
    let shown = without_colour(&on_terminal(
        &env,
        &format!("stty cols 0 rows 0; {BIN} list"),
        &[],
    ));
    let row = shown
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no row for task 1 in\n{shown}"));
    for cell in [
        "a-rather-long-service-name",
        "a-rather-long-user-name",
        "pending",
        "slurm-123456789",
    ] {
        assert!(row.contains(cell), "{cell} not on one line in\n{shown}");
    }
}

#[test]
fn colour_follows_the_flag_the_terminal_and_no_color() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    let escape = "\x1b[";
    // Into a pipe: only with --color always.
    let piped = |args: &[&str], no_color: Option<&str>| {
        let mut cmd = env.command(args);
        cmd.env_remove("NO_COLOR");
        if let Some(value) = no_color {
            cmd.env("NO_COLOR", value);
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    assert!(!piped(&["list"], None).contains(escape));
    assert!(piped(&["--color", "always", "list"], Some("1")).contains(escape));
    assert!(!piped(&["--color", "never", "list"], None).contains(escape));
    // On a terminal: colour unless NO_COLOR is set and not empty.
    let list = format!("{BIN} list");
    assert!(on_terminal(&env, &list, &[]).contains(escape));
    assert!(on_terminal(&env, &list, &[("NO_COLOR", "")]).contains(escape));
    assert!(!on_terminal(&env, &list, &[("NO_COLOR", "1")]).contains(escape));
    assert!(!on_terminal(&env, &format!("{BIN} --color never list"), &[]).contains(escape));
    // clap's own help follows the flag too.
    let help =
        |args: &[&str]| String::from_utf8(env.command(args).output().unwrap().stdout).unwrap();
    assert!(help(&["--color", "always", "--help"]).contains(escape));
    assert!(!help(&["--help"]).contains(escape));
}

#[test]
fn status_without_a_new_status_prints_the_current_one() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    assert_eq!(env.ok(&["status", "1"]), "pending\n");
    env.ok(&["status", "1", "running"]);
    assert_eq!(env.ok(&["status", "1"]), "running\n");
    assert_eq!(code(&env.run(&["status", "2"])), 3);
    // --log and --if change a status: without one they are a usage error.
    let usage = env.run(&["status", "1", "--log", "hello"]);
    assert_eq!(code(&usage), 2, "{}", stderr(&usage));
    assert_eq!(code(&env.run(&["status", "1", "--if", "pending"])), 2);
    assert!(env.messages("1").is_empty());
}

#[test]
fn completions_and_the_man_page_need_no_redis() {
    let bash = bare_command(&["completions", "bash"]).output().unwrap();
    assert_eq!(code(&bash), 0, "{}", stderr(&bash));
    let bash = String::from_utf8(bash.stdout).unwrap();
    assert!(bash.contains("-F _task__state"), "{bash}");
    assert!(bash.contains("--write-url"));
    let zsh = String::from_utf8(
        bare_command(&["completions", "zsh"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(zsh.starts_with("#compdef task-state"), "{zsh}");
    let man = bare_command(&["man"]).output().unwrap();
    assert_eq!(code(&man), 0, "{}", stderr(&man));
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH task-state"),
        "{man}"
    );
    assert!(man.contains(".TH task-state"), "{man}");
    assert!(man.contains("fsck"));
    assert_eq!(
        code(&bare_command(&["completions", "klingon"]).output().unwrap()),
        2
    );
}

/// A record with three entries an hour apart, written as the Python package writes it.
fn plant_hourly_logs(env: &Env) {
    let stored = r#"{"task_id":"1","service":"s","user_id":"u","status":"running","parameters":{},"jobs":[],"created_at":"2026-01-01T00:00:00+09:00","updated_at":"2026-01-01T02:00:00+09:00","logs":["2026-01-01T00:00:00+09:00,zero","2026-01-01T01:00:00+09:00,one","2026-01-01T02:00:00+09:00,two"],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;
    env.server.cli(&["SET", "task:1", stored]);
    env.server.cli(&["SADD", "index:tasks", "1"]);
}

#[test]
fn logs_tail_and_since_select_entries() {
    let env = env_or_skip!();
    plant_hourly_logs(&env);
    let logs = |args: &[&str]| {
        let mut all = vec!["logs", "1"];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    assert_eq!(messages_of(&logs(&[])), ["zero", "one", "two"]);
    assert_eq!(messages_of(&logs(&["--tail", "2"])), ["one", "two"]);
    assert_eq!(messages_of(&logs(&["--tail", "0"])), Vec::<&str>::new());
    assert_eq!(messages_of(&logs(&["--tail", "9"])), ["zero", "one", "two"]);
    assert_eq!(
        messages_of(&logs(&["--since", "2026-01-01T01:00:00+09:00"])),
        ["one", "two"]
    );
    // The same moment in UTC, and half an hour later.
    assert_eq!(
        messages_of(&logs(&["--since", "2025-12-31T16:30:00Z"])),
        ["two"]
    );
    assert_eq!(
        messages_of(&logs(&["--since", "2025-12-31T15:00:00Z", "--tail", "1"])),
        ["two"]
    );
    // An age: the entries are months old.
    assert_eq!(messages_of(&logs(&["--since", "1h"])), Vec::<&str>::new());
    let bad = env.run(&["logs", "1", "--since", "yesterday"]);
    assert_eq!(code(&bad), 2);
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}

#[test]
fn logs_follow_prints_only_new_entries_and_survives_a_server_restart() {
    // Persisted, so that the task is still there when the server is back.
    let Some(server) = task_state_redis::testing::server_or_skip_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]) else {
        return;
    };
    let mut env = Env { server };
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["log", "1", "old"]);
    let mut follow = env
        .command(&[
            "--timeout",
            "2",
            "logs",
            "1",
            "--follow",
            "--tail",
            "1",
            "--interval",
            "0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    env.ok(&["log", "1", "before"]);
    std::thread::sleep(Duration::from_millis(500));
    env.server.restart().expect("the server comes back");
    // Down for a while: the follower sees errors and waits them out.
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["log", "1", "after"]);
    env.ok(&["status", "1", "completed", "--log", "done"]);
    let status = wait_with_deadline(&mut follow, Duration::from_secs(15)).expect("follow ends");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut follow.stdout.take().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert_eq!(
        messages_of(&out),
        ["old", "before", "after", "done"],
        "{err}"
    );
}

#[test]
fn logs_follow_waits_out_a_server_that_is_down() {
    let Some(server) = task_state_redis::testing::server_or_skip_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]) else {
        return;
    };
    let mut env = Env { server };
    env.ok(&["create", "--service", "s", "--user", "u"]);
    let mut follow = env
        .command(&[
            "--timeout",
            "1",
            "logs",
            "1",
            "--follow",
            "--interval",
            "0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    env.server.kill();
    // Longer than the command timeout: reads fail, and are tried again.
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(follow.try_wait().unwrap().is_none(), "follow gave up");
    env.server.restart().expect("the server comes back");
    env.ok(&["status", "1", "failed", "--log", "boom"]);
    let status = wait_with_deadline(&mut follow, Duration::from_secs(15)).expect("follow ends");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut follow.stdout.take().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert_eq!(messages_of(&out), ["boom"], "{err}");
    assert!(err.contains("lost Redis, still following"), "{err}");
    assert!(err.contains("Redis is back"), "{err}");
}

#[test]
fn fsck_tells_inconsistent_from_could_not_check() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    assert_eq!(code(&env.run(&["fsck"])), 0);
    // An unreadable record is a problem, not a pass.
    env.server.cli(&["SET", "task:1", "{not json"]);
    let unreadable = env.run(&["fsck"]);
    assert_eq!(code(&unreadable), 1, "{}", stderr(&unreadable));
    assert!(
        stderr(&unreadable).contains("1 unreadable records"),
        "{}",
        stderr(&unreadable)
    );
    // No server: the check could not be done.
    let port = free_port().unwrap();
    let unchecked = bare_command(&[
        "--write-url",
        &format!("redis://127.0.0.1:{port}/0"),
        "--timeout",
        "1",
        "fsck",
    ])
    .output()
    .unwrap();
    assert_eq!(code(&unchecked), 6, "{}", stderr(&unchecked));
    assert!(
        stderr(&unchecked).contains("cannot connect"),
        "{}",
        stderr(&unchecked)
    );
}

#[test]
fn delete_dry_run_says_what_would_go_and_deletes_nothing() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "render", "--user", "alice"]);
    env.ok(&["create", "--service", "render", "--user", "alice"]);
    let plan = env.ok(&["delete", "1", "--dry-run"]);
    for expected in [
        "would delete task \"1\"",
        "task:1\n",
        "task:1:metadata",
        "index:tasks",
        "index:service:render\n",
        "index:user:alice",
        "index:service:render:user:alice",
    ] {
        assert!(plan.contains(expected), "{expected} missing from\n{plan}");
    }
    // Task 2 keeps alice in the service's users.
    assert!(!plan.contains(":users"), "{plan}");
    assert_eq!(env.record("1")["status"], "pending");
    assert_eq!(env.server.cli(&["SISMEMBER", "index:tasks", "1"]), "1");
    env.ok(&["delete", "2"]);
    let last = env.ok(&["delete", "1", "--dry-run"]);
    assert!(
        last.contains("alice of index:service:render:users"),
        "{last}"
    );
    assert_eq!(code(&env.run(&["delete", "9", "--dry-run"])), 3);
    assert_eq!(env.record("1")["task_id"], "1");
}

/// Every key with its type and value (`DUMP`, as redis-cli prints it) and whether it has a
/// TTL: what a dry run must leave as it was.
fn store_snapshot(server: &RedisServer) -> std::collections::BTreeMap<String, (String, bool)> {
    server
        .cli(&["KEYS", "*"])
        .lines()
        .filter(|key| !key.is_empty())
        .map(|key| {
            let dump = server.cli(&["DUMP", key]);
            let ttl: i64 = server.cli(&["PTTL", key]).parse().unwrap();
            (key.to_owned(), (dump, ttl > 0))
        })
        .collect()
}

#[test]
fn fsck_repair_dry_run_lists_the_repairs_and_changes_nothing() {
    let env = env_or_skip!();
    for user in ["alice", "bob"] {
        env.ok(&["create", "--service", "render", "--user", user]);
    }
    env.server.cli(&["SREM", "index:user:alice", "1"]);
    env.server.cli(&["SADD", "index:tasks", "ghost"]);
    env.server.cli(&["DEL", "task:2:metadata"]);
    env.server.cli(&[
        "HSET",
        "task:9:metadata",
        "service",
        "render",
        "user_id",
        "carol",
    ]);
    let before = store_snapshot(&env.server);

    let dry = env.run(&["fsck", "--repair", "--dry-run"]);
    assert_eq!(code(&dry), 1, "still inconsistent: {}", stderr(&dry));
    let text = String::from_utf8_lossy(&dry.stdout).into_owned();
    for expected in [
        "the repair would:",
        "reindex task 1: add to index:user:alice\n",
        "reindex task 2: rewrite task:2:metadata",
        "remove from index:tasks: ghost",
        "clean task:9:metadata and the index entries it names",
        "dry run: nothing was changed",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    assert!(!text.contains("repaired:"), "{text}");
    assert_eq!(
        store_snapshot(&env.server),
        before,
        "a dry run changed the store"
    );

    let json = env.run(&["fsck", "--repair", "--dry-run", "--json"]);
    assert_eq!(code(&json), 1);
    let object = json_of(&json);
    assert_eq!(object["dry_run"], true);
    assert_eq!(object["repaired"], 0);
    assert!(object.get("after_repair").is_none(), "{object}");
    let repairs = object["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 4, "{object}");
    assert!(repairs.contains(&serde_json::json!({
        "action": "remove_from_index", "key": "index:tasks", "members": ["ghost"]
    })));
    assert!(repairs.contains(&serde_json::json!({
        "action": "reindex", "task_id": "1", "add_to": ["index:user:alice"], "metadata": false
    })));
    assert_eq!(store_snapshot(&env.server), before);

    // The repair then does what the dry run listed.
    let repaired = env.run(&["fsck", "--repair"]);
    assert_eq!(code(&repaired), 0, "{}", stderr(&repaired));
    assert_eq!(env.server.cli(&["SISMEMBER", "index:user:alice", "1"]), "1");
    assert_eq!(env.server.cli(&["SISMEMBER", "index:tasks", "ghost"]), "0");
    assert_eq!(env.server.cli(&["EXISTS", "task:9:metadata"]), "0");
    let clean = env.run(&["fsck", "--repair", "--dry-run"]);
    assert_eq!(code(&clean), 0, "{}", stderr(&clean));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("would change nothing"));
    // --dry-run means nothing without --repair.
    assert_eq!(code(&env.run(&["fsck", "--dry-run"])), 2);
}

#[test]
fn fsck_user_repair_dry_run_lists_the_ids_and_changes_nothing() {
    let env = env_or_skip!();
    for (service, user) in [("render", "alice"), ("render", "alice"), ("render", "bob")] {
        env.ok(&["create", "--service", service, "--user", user]);
    }
    env.server.cli(&["SREM", "index:user:alice", "1"]);
    // 3 is bob's (removed), ghost has no record (removed).
    env.server.cli(&["SADD", "index:user:alice", "3", "ghost"]);
    let before = store_snapshot(&env.server);
    let dry = env.run(&["fsck", "--user", "alice", "--repair", "--dry-run"]);
    assert_eq!(code(&dry), 1, "{}", stderr(&dry));
    let text = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(text.contains("add to index:user:alice: 1\n"), "{text}");
    assert!(
        text.contains("remove from index:user:alice: 3 ghost\n"),
        "{text}"
    );
    assert!(text.contains("dry run: nothing was changed"), "{text}");
    let json = json_of(&env.run(&["fsck", "--user", "alice", "--repair", "--dry-run", "--json"]));
    assert_eq!(
        json["would_repair"],
        serde_json::json!({"add": ["1"], "remove": ["3", "ghost"]})
    );
    assert!(json.get("repaired").is_none(), "{json}");
    assert_eq!(
        store_snapshot(&env.server),
        before,
        "a dry run changed the store"
    );
    assert_eq!(code(&env.run(&["fsck", "--user", "alice", "--repair"])), 0);
    assert_eq!(
        env.server
            .cli(&["SMEMBERS", "index:user:alice"])
            .lines()
            .count(),
        2
    );
}

// Tracing ----------------------------------------------------------------------------------

#[test]
fn rust_log_sets_what_is_logged_on_stderr() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    let quiet = env.run(&["get", "1"]);
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    let mut cmd = env.command(&["get", "1"]);
    cmd.env("RUST_LOG", "debug");
    let debug = cmd.output().unwrap();
    assert_eq!(code(&debug), 0);
    assert!(stderr(&debug).contains("connecting"), "{}", stderr(&debug));
    assert!(!String::from_utf8_lossy(&debug.stdout).contains("connecting"));
    let mut cmd = env.command(&["get", "1"]);
    cmd.env("RUST_LOG", "task_state=notalevel");
    let bad = cmd.output().unwrap();
    assert_eq!(code(&bad), 2);
    assert!(stderr(&bad).contains("RUST_LOG"), "{}", stderr(&bad));
}

#[test]
fn fred_log_messages_are_logged_through_tracing() {
    let env = env_or_skip!();
    let mut cmd = env.command(&["next-id"]);
    cmd.env("RUST_LOG", "fred=debug,task_state_redis=info");
    let output = cmd.output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let log = stderr(&output);
    // fred's own words, through the `log` crate, with the level tracing gives them.
    assert!(
        log.contains("DEBUG") && log.contains("Initializing router"),
        "{log}"
    );
    // And the backend's own events at the level asked for.
    assert!(log.contains("connected to Redis"), "{log}");
    assert!(
        !log.contains("script not on the server"),
        "debug of the backend: {log}"
    );
}

#[test]
fn janitor_logs_its_counters_with_timestamps() {
    let Some(server) =
        task_state_redis::testing::server_or_skip_with(&["--notify-keyspace-events", "Ex"])
    else {
        return;
    };
    let env = Env { server };
    let mut janitor = env
        .command(&[
            "janitor",
            "--reconcile-interval",
            "0",
            "--stats-interval",
            "0.5",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_800));
    signal(&janitor, "-TERM");
    let status = wait_with_deadline(&mut janitor, Duration::from_secs(5)).expect("janitor stops");
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut janitor.stderr.take().unwrap(), &mut log).unwrap();
    let counters: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("janitor counters"))
        .collect();
    assert!(counters.len() >= 2, "{log}");
    assert!(counters[0].contains("cleanups=0"), "{log}");
    for line in log.lines() {
        // 2026-12-02T07:31:10.123456Z  INFO ...
        let stamp = line.split_whitespace().next().unwrap_or_default();
        assert!(
            stamp.len() >= 20 && stamp.as_bytes()[4] == b'-' && stamp.contains('T'),
            "no timestamp: {line}"
        );
    }
}

#[test]
fn jobs_field_names_the_job_list_of_new_records() {
    let env = env_or_skip!();
    let id = env.ok(&[
        "--jobs-field",
        "active_jobs",
        "create",
        "--service",
        "render",
        "--user",
        "bob",
    ]);
    let id = id.trim();
    let record = env.record(id);
    assert!(record.get("active_jobs").is_some(), "{record}");
    assert!(record.get("jobs").is_none(), "{record}");
    // From the environment too; a record that has a name keeps it.
    let output = env
        .command(&["jobs", id, "slurm-1"])
        .env("DMS_TASK_JOBS_FIELD", "jobs")
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let record = env.record(id);
    assert_eq!(record["active_jobs"], serde_json::json!(["slurm-1"]));
    assert!(record.get("jobs").is_none(), "{record}");
    let bad = env.run(&["--jobs-field", "tasks", "get", id]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
}

/// The record of task `id` with `service` and `user`, as another tool might write it.
fn record_json(id: &str, service: &str, user: &str) -> String {
    serde_json::json!({
        "task_id": id, "service": service, "user_id": user, "status": "running",
        "parameters": {}, "jobs": [], "created_at": "2026-01-01T00:00:00+09:00",
        "updated_at": "2026-01-01T00:00:00+09:00", "logs": [],
        "result": {"pod_status": null, "launcher_output": null}
    })
    .to_string()
}

#[test]
fn fsck_json_verdict_and_exit_status_are_one_fact() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "render", "--user", "alice"]);
    env.server.cli(&["SET", "task:9", "{not json"]);
    let output = env.run(&["fsck", "--json"]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let found = json_of(&output);
    assert_eq!(found["consistent"], false, "{found}");
    assert_eq!(found["unreadable"], 1);
    let repaired = env.run(&["fsck", "--json", "--repair"]);
    assert_eq!(code(&repaired), 1, "{}", stderr(&repaired));
    assert_eq!(json_of(&repaired)["after_repair"]["consistent"], false);
    let text = env.run(&["fsck", "--repair"]);
    assert_eq!(code(&text), 1);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("after repair: still inconsistent"),
        "{stdout}"
    );
}

#[test]
fn fsck_repair_skips_owner_names_that_cannot_be_key_parts_and_repairs_the_rest() {
    let env = env_or_skip!();
    for id in ["1", "2", "3"] {
        env.ok(&["create", "--service", "s", "--user", "u", "--id", id]);
    }
    env.server
        .cli(&["SET", "task:101", &record_json("101", "a:user:b", "u")]);
    env.server
        .cli(&["SET", "task:102", &record_json("102", "", "u")]);
    env.server.cli(&["SREM", "index:tasks", "2"]);
    let planned = env.run(&["fsck", "--repair", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&planned.stdout);
    assert!(!stdout.contains("index:service:a"), "{stdout}");
    assert!(
        stdout.contains("reindex task 2: add to index:tasks"),
        "{stdout}"
    );
    let output = env.run(&["fsck", "--repair"]);
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "not 6: {err}");
    assert!(!err.contains("TSDECODE"), "{err}");
    assert!(err.contains("2 unreadable records"), "{err}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("unreadable task:101"), "{stdout}");
    assert_eq!(env.server.cli(&["SISMEMBER", "index:tasks", "2"]), "1");
    assert_eq!(env.server.cli(&["EXISTS", "index:service:a:user:b"]), "0");
}

#[test]
fn list_and_fsck_both_name_what_is_not_utf8() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u", "--id", "1"]);
    env.server.cli(&[
        "EVAL",
        "return redis.call('SADD', KEYS[1], string.char(255))",
        "1",
        "index:tasks",
    ]);
    let listed = env.run(&["list"]);
    let err = stderr(&listed);
    assert_eq!(code(&listed), 1, "{err}");
    assert!(err.contains("task:\\xff"), "{err}");
    let checked = env.run(&["fsck"]);
    assert_eq!(code(&checked), 1, "{}", stderr(&checked));
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains("not UTF-8: member \\xff of index:tasks"),
        "{stdout}"
    );
}
