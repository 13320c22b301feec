//! The `task-state` binary against private Redis servers: every command, the exit codes and
//! the output formats that scripts rely on.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use task_state_redis::testing::{free_port, server_or_skip, RedisServer};

const BIN: &str = env!("CARGO_BIN_EXE_task-state");

/// A private Redis, and the binary pointed at it through `DMS_*` as a deployment would be.
struct Env {
    server: RedisServer,
}

impl Env {
    fn start() -> Option<Self> {
        server_or_skip().map(|server| Env { server })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bare_command(args);
        cmd.env("DMS_REDIS_WRITE_URL", self.server.url());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run task-state")
    }

    fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn task-state");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "task-state {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn record(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(self.ok(&["get", id, "--json"]).trim()).unwrap()
    }

    fn messages(&self, id: &str) -> Vec<String> {
        self.record(id)["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().split_once(',').unwrap().1.to_owned())
            .collect()
    }
}

/// The binary with no `DMS_*` variable from the environment of the test run.
fn bare_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DMS_REDIS_WRITE_URL",
        "DMS_REDIS_READ_URL",
        "DMS_REDIS_TASK_TTL_SECONDS",
        "DMS_TIMEZONE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1").args(args);
    cmd
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The first column of each table row after the header.
fn first_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

macro_rules! env_or_skip {
    () => {
        match Env::start() {
            Some(env) => env,
            None => return,
        }
    };
}

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
        "--priority",
        "high",
    ]);
    assert_eq!(id, "2\n");
    let record = env.ok(&["get", "2", "--json"]);
    assert!(
        record.contains(
            r#""parameters":{"frames":240,"ratio":0.30000000000000004,"opts":{"tags":["a","b"],"deep":{}}}"#
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

#[test]
fn logs_follow_prints_new_entries_until_the_task_is_terminal() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["status", "1", "running", "--log", "started"]);
    let mut child = env
        .command(&["logs", "1", "--follow", "--interval", "0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    env.ok(&["log", "1", "midway"]);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        child.try_wait().unwrap().is_none(),
        "--follow must keep going while the task runs"
    );
    env.ok(&["status", "1", "completed", "--log", "done"]);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        stderr(&output)
    );
    let out = String::from_utf8(output.stdout).unwrap();
    let messages: Vec<&str> = out.lines().map(|l| l.split_once("  ").unwrap().1).collect();
    assert_eq!(messages, ["started", "midway", "done"]);
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
    let deadline = Instant::now() + Duration::from_secs(4);
    while first_column(&env.ok(&["list"])).contains(&short) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !first_column(&env.ok(&["list"])).contains(&short),
        "not cleaned"
    );
    assert_eq!(
        env.server
            .cli(&["SISMEMBER", "index:service:render", &short]),
        "0"
    );
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
