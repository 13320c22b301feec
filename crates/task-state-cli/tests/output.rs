//! What the `task-state` binary prints of stored data: control characters escaped for people
//! and exact in JSON, JSON records one a line, and `logs --follow` across a replaced task.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

/// A record as another writer may have stored it, with `text` in every stored string that
/// the human views show: owner names, a job, a parameter, the result, a field this version
/// does not know (name and value), a log entry that parses and one that does not.
fn record_with(id: &str, text: &str) -> Value {
    json!({
        "task_id": id,
        "service": format!("s{text}"),
        "user_id": format!("u{text}"),
        "status": "running",
        "parameters": {"p": format!("p{text}")},
        "jobs": [format!("j{text}")],
        "created_at": "2026-01-01T00:00:00+09:00",
        "updated_at": "2026-01-01T00:00:00+09:00",
        "logs": [format!("2026-01-01T00:00:00+09:00,m{text}"), format!("e{text}")],
        "result": {"pod_status": format!("ps{text}"), "launcher_output": format!("lo{text}")},
        "priority": "low",
        format!("x{text}"): format!("v{text}"),
    })
}

/// Stores `record` under its id, indexed where `list` looks, and its user among the users of
/// service `s` (a service name with control characters is refused by `users`).
fn plant(env: &Env, record: &Value) {
    let id = record["task_id"].as_str().unwrap();
    let user = argv_safe(record["user_id"].as_str().unwrap());
    env.server
        .cli(&["SET", &format!("task:{id}"), &record.to_string()]);
    env.server.cli(&["SADD", "index:tasks", id]);
    env.server.cli(&["SADD", "index:service:s:users", &user]);
}

/// `text` without NUL, which no command line can carry.
fn argv_safe(text: &str) -> String {
    text.replace('\0', "")
}

/// What a terminal acts on instead of showing (see docs/cli.md), line feed aside: the
/// oracle, written apart from the binary's own list.
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The human commands that show the stored text of task `id`.
fn human_views(id: &str) -> Vec<Vec<String>> {
    [
        vec!["get", id],
        vec!["get", id, "--color", "never"],
        vec!["list"],
        vec!["list", "--color", "never"],
        vec!["logs", id],
        vec!["users", "s"],
        vec!["delete", id, "--dry-run"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_owned).collect())
    .collect()
}

fn run_owned(env: &Env, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args)
}

#[test]
fn stored_control_characters_are_escaped_for_people_and_exact_in_json() {
    let env = env_or_skip!();
    // A window title, a screen wipe, a bell, a carriage return that overwrites the line, DEL,
    // the C1 CSI and a right-to-left override.
    let text = "\u{1b}]0;owned\u{7}\u{1b}[2J\r\t\u{7f}\u{9b}\u{202e}";
    let escaped = r"\x1b]0;owned\x07\x1b[2J\r\t\x7f\u{9b}\u{202e}";
    let record = record_with("1", text);
    plant(&env, &record);
    for args in human_views("1") {
        let output = run_owned(&env, &args);
        let shown = String::from_utf8(output.stdout.clone()).unwrap();
        let raw: Vec<char> = shown.chars().filter(|c| acts_on_terminal(*c)).collect();
        assert!(raw.is_empty(), "{args:?} printed {raw:?}:\n{shown}");
        assert!(
            shown.contains(escaped),
            "{args:?} exited {}:\n{shown}{}",
            code(&output),
            stderr(&output)
        );
        let err = stderr(&output);
        assert!(
            !err.chars().any(acts_on_terminal),
            "{args:?} wrote to stderr: {err:?}"
        );
    }
    let view = env.ok(&["get", "1"]);
    for field in ["s", "u", "j", "ps", "lo", "x", "m", "e"] {
        assert!(
            view.contains(&format!("{field}{escaped}")),
            "{field} of `get`:\n{view}"
        );
    }
    // JSON values (the parameters, a field this version does not know) are shown as their
    // JSON text, whose escapes stay; what JSON leaves raw is escaped.
    let json_text = r#""\u001b]0;owned\u0007\u001b[2J\r\t\x7f\u{9b}\u{202e}""#;
    for value in ["p", "v"] {
        let shown = json_text.replacen('"', &format!("\"{value}"), 1);
        assert!(view.contains(&shown), "{shown} not in `get`:\n{view}");
    }
    let listed = env.ok(&["list", "--json"]);
    let from_get: Value = serde_json::from_str(&env.ok(&["get", "1", "--json"])).unwrap();
    let from_list: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(from_get, record);
    assert_eq!(from_list["logs"], record["logs"]);
    assert_eq!(from_list["service"], record["service"]);
    assert_eq!(from_list[format!("x{text}")], record[format!("x{text}")]);
}

/// Control characters and the characters around them, more often than `any::<String>()`
/// would pick them.
fn stored_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{61c}\\u{200e}\\u{200f}\\u{2028}\\u{2029}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}a\\\\{}ü한 ]{1,12}",
        any::<String>(),
    ]
}

/// Whatever a writer stored, no character that a terminal acts on reaches stdout from a
/// human view, and JSON gives it back exactly.
#[test]
fn no_stored_text_reaches_the_terminal_raw() {
    let env = env_or_skip!();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(24));
    let checked = runner.run(&stored_text(), |text| {
        env.server.cli(&["FLUSHALL"]);
        let record = record_with("1", &text);
        plant(&env, &record);
        for args in human_views("1") {
            let shown = String::from_utf8(run_owned(&env, &args).stdout).unwrap();
            let raw: Vec<char> = shown.chars().filter(|c| acts_on_terminal(*c)).collect();
            prop_assert!(raw.is_empty(), "{:?} printed {:?}", args, raw);
        }
        let from_get: Value = serde_json::from_str(&env.ok(&["get", "1", "--json"])).unwrap();
        prop_assert_eq!(&from_get, &record);
        let listed = env.ok(&["list", "--json"]);
        prop_assert_eq!(listed.lines().count(), 1);
        let from_list: Value = serde_json::from_str(&listed).unwrap();
        prop_assert_eq!(&from_list["logs"], &record["logs"]);
        prop_assert_eq!(&from_list["user_id"], &record["user_id"]);
        Ok(())
    });
    if let Err(e) = checked {
        panic!("{e}");
    }
}

/// A record as a tool that pretty-prints stores it: indented, over several lines, with
/// white space inside strings, escapes and numbers that a re-encoding would change.
const PRETTY: &str = "{\n  \"task_id\": \"3\",\n  \"service\": \"render\",\n  \"user_id\": \"bob\",\n  \"status\": \"running\",\n  \"parameters\": {\n    \"scene\": \"forest,  night\\n\\\"two\\\"\",\n    \"big\": 123456789012345678901234567890,\n    \"huge\": 1e400,\n    \"list\": [\n      1,\n      2\n    ]\n  },\r\n  \"jobs\": [],\n  \"created_at\": \"2026-01-01T00:00:00+09:00\",\n  \"updated_at\": \"2026-01-01T00:00:00+09:00\",\n  \"logs\": [\n    \"2026-01-01T00:00:00+09:00,a  b\\u00e9\"\n  ],\n  \"result\": {\"pod_status\": null, \"launcher_output\": null},\n  \"priority\": \"low\"\n}\n";

/// [`PRETTY`] without the white space between its tokens, everything else as stored.
const PRETTY_ON_ONE_LINE: &str = r#"{"task_id":"3","service":"render","user_id":"bob","status":"running","parameters":{"scene":"forest,  night\n\"two\"","big":123456789012345678901234567890,"huge":1e400,"list":[1,2]},"jobs":[],"created_at":"2026-01-01T00:00:00+09:00","updated_at":"2026-01-01T00:00:00+09:00","logs":["2026-01-01T00:00:00+09:00,a  b\u00e9"],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#;

#[test]
fn json_of_a_record_stored_over_several_lines_is_one_line() {
    let env = env_or_skip!();
    env.server.cli(&["SET", "task:3", PRETTY]);
    env.server.cli(&["SADD", "index:tasks", "3"]);
    assert_eq!(
        env.server.cli(&["STRLEN", "task:3"]),
        PRETTY.len().to_string()
    );
    assert_eq!(
        env.ok(&["get", "3", "--json"]),
        format!("{PRETTY_ON_ONE_LINE}\n")
    );
    // `list --json` re-encodes the record, but keeps each parameter's text: one line too.
    env.ok(&["create", "--service", "etl", "--user", "carol", "--id", "4"]);
    let listed = env.ok(&["list", "--json"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].contains(r#""parameters":{"scene":"forest,  night\n\"two\"","big":123456789012345678901234567890,"huge":1e400,"list":[1,2]}"#),
        "{listed}"
    );
    assert!(lines[1].starts_with(r#"{"task_id":"4","#), "{listed}");
    // The human view shows the parameters on their row, compact as well.
    let view = env.ok(&["get", "3"]);
    assert!(
        view.lines()
            .any(|l| l.trim_start().starts_with("parameters") && l.ends_with(r#""list":[1,2]}"#)),
        "{view}"
    );
}

/// A `logs --follow` of task `id` running in the background, read line by line.
struct Follower {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    messages: Vec<String>,
}

impl Follower {
    fn start(env: &Env, id: &str) -> Self {
        let mut child = env
            .command(&["logs", id, "--follow", "--interval", "0.05"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Follower {
            child,
            lines,
            messages: Vec::new(),
        }
    }

    /// Reads what it prints until it has printed `message`: it has read the record that
    /// holds it.
    fn read_until(&mut self, message: &str) {
        while self.messages.last().map(String::as_str) != Some(message) {
            let line = self
                .lines
                .next()
                .unwrap_or_else(|| panic!("it stopped before printing {message:?}"))
                .unwrap();
            self.messages.push(messages_of(&line)[0].to_owned());
        }
    }

    /// Waits for it to stop; its exit code, every message it printed and its stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(60));
        for line in self.lines {
            self.messages
                .push(messages_of(&line.unwrap())[0].to_owned());
        }
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.and_then(|s| s.code()), self.messages, err)
    }
}

fn entries(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix} {i}")).collect()
}

#[test]
fn logs_follow_shows_a_replaced_task_from_its_first_entry() {
    let env = env_or_skip!();
    // (entries before, entries of the record that replaces it, created at another time)
    let cases = [
        (3, entries("new", 2), false),
        (2, entries("new", 4), false),
        (2, entries("new", 2), false),
        // Its log begins as the old one did: only `created_at` tells them apart.
        (1, entries("new", 1), true),
    ];
    for (n, (old, new, recreated)) in cases.into_iter().enumerate() {
        let id = (n + 1).to_string();
        env.ok(&["create", "--service", "s", "--user", "u", "--id", &id]);
        let piped = env.run_with_stdin(
            &["log", &id, "-"],
            entries("old", old).join("\n").as_bytes(),
        );
        assert_eq!(code(&piped), 0, "{}", stderr(&piped));
        let mut follower = Follower::start(&env, &id);
        follower.read_until(&format!("old {old}"));
        let mut again = env.record(&id);
        let mut logs: Vec<Value> = new
            .iter()
            .map(|m| json!(format!("2026-01-01T00:00:00+09:00,{m}")))
            .collect();
        if recreated {
            again["created_at"] = json!("2026-01-01T00:00:00+09:00");
            logs.splice(..0, again["logs"].as_array().unwrap().clone());
        }
        again["logs"] = json!(logs);
        // Deleted and created again between two reads: one SET does both at once.
        env.server
            .cli(&["SET", &format!("task:{id}"), &again.to_string()]);
        env.ok(&["status", &id, "completed", "--log", "done"]);
        let (code, messages, err) = follower.finish();
        assert_eq!(code, Some(0), "{err}");
        let mut expected = entries("old", old);
        if recreated {
            expected.extend(entries("old", old));
        }
        expected.extend(new);
        expected.push("done".to_owned());
        assert_eq!(messages, expected, "case {n}: {err}");
        let why = if recreated {
            "(created_at 2026-01-01T00:00:00+09:00)"
        } else {
            "(its log no longer begins with the entries shown)"
        };
        assert!(
            err.contains(&format!("task \"{id}\" was replaced {why}")),
            "case {n}: {err}"
        );
    }
}

#[test]
fn logs_follow_of_a_task_deleted_meanwhile_exits_3() {
    let env = env_or_skip!();
    env.ok(&["create", "--service", "s", "--user", "u"]);
    env.ok(&["log", "1", "first"]);
    let mut follower = Follower::start(&env, "1");
    follower.read_until("first");
    env.ok(&["delete", "1"]);
    let (code, messages, err) = follower.finish();
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(messages, ["first"]);
    assert!(
        err.contains(r#"task "1" was deleted while followed"#),
        "{err}"
    );
}
