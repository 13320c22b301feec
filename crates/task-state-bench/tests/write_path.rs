//! The prototypes of issue 21's write paths against a real server: the same edits by
//! today's scripts and by a prototype leave byte-identical records, the same index sets and
//! the same owner in the metadata hash; a refused transition writes nothing; no TTL is
//! shortened; concurrent writers lose no line. The `SET IFEQ` cases run where the server
//! has it (Valkey 8.1: `TASK_STATE_REDIS_SERVER=…/valkey-server`), and are skipped elsewhere.

use std::sync::Arc;

use task_state_bench::admin;
use task_state_bench::fixtures;
use task_state_bench::write_path::{Attempt, Edit, Editor, Guard};
use task_state_core::{Error, ManualClock, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip, RedisServer};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

async fn repository(url: &str, clock: &Arc<ManualClock>) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(url)
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings)
        .await
        .unwrap()
        .with_clock(clock.clone())
}

async fn editor(url: &str, clock: &Arc<ManualClock>, lean: bool) -> Editor {
    let ttl = task_state_core::layout::DEFAULT_TTL_SECONDS;
    Editor::connect(url, ttl, fixtures::zone().clone())
        .await
        .unwrap()
        .with_clock(clock.clone())
        .lean(lean)
}

async fn text(repo: &RedisTaskRepository, name: &'static str, args: &[&str]) -> Option<String> {
    let reply = admin::command(repo.raw_writer(), name, args).await.unwrap();
    admin::text(&reply)
}

/// Members of a set, sorted.
async fn members(repo: &RedisTaskRepository, key: &str) -> Vec<String> {
    let reply = admin::command(repo.raw_writer(), "SMEMBERS", &[key])
        .await
        .unwrap();
    let fred::prelude::Value::Array(items) = reply else {
        panic!("SMEMBERS {key}: {reply:?}")
    };
    let mut names: Vec<String> = items.iter().filter_map(admin::text).collect();
    names.sort();
    names
}

/// Whether the server has `SET … IFEQ`.
async fn has_ifeq(repo: &RedisTaskRepository) -> bool {
    admin::command(repo.raw_writer(), "SET", &["probe", "a", "IFEQ", "b"])
        .await
        .is_ok()
}

/// The mutations of the differential test, in order, as the repository and as an edit.
fn edits() -> Vec<Edit> {
    vec![
        Edit::Status {
            to: TaskStatus::Running,
            from: Vec::new(),
            entry: Some("started".to_owned()),
        },
        Edit::Append(vec!["line one".to_owned(), "line \"two\" é".to_owned()]),
        Edit::Result {
            pod_status: Some("phase=Running".to_owned()),
            launcher_output: None,
        },
        Edit::Result {
            pod_status: None,
            launcher_output: Some("rows=5000".to_owned()),
        },
        Edit::Jobs(vec!["job-1".to_owned(), "job-2".to_owned()]),
        Edit::Status {
            to: TaskStatus::Completed,
            from: vec![TaskStatus::Running],
            entry: None,
        },
    ]
}

async fn by_script(repo: &RedisTaskRepository, id: &str, edit: &Edit) {
    match edit {
        Edit::Status { to, from, entry } if from.is_empty() => {
            repo.set_status(id, *to, entry.as_deref()).await.unwrap();
        }
        Edit::Status { to, from, entry } => {
            repo.transition(id, from, *to, entry.as_deref())
                .await
                .unwrap();
        }
        Edit::Append(lines) => assert!(repo.append_logs(id, lines).await.unwrap()),
        Edit::Result {
            pod_status,
            launcher_output,
        } => {
            repo.update_result(id, pod_status.as_deref(), launcher_output.as_deref())
                .await
                .unwrap();
        }
        Edit::Jobs(jobs) => {
            repo.set_jobs(id, jobs).await.unwrap();
        }
        Edit::Save(record) => {
            repo.save((**record).clone()).await.unwrap();
        }
    }
}

/// Every edit by the script in database 0 and by the prototype in database 1, on the same
/// record at the same clock: the records stay byte for byte the same, and so do the
/// index sets and the metadata's owner.
async fn same_as_the_scripts(server: &RedisServer, guard: Guard, lean: bool) {
    let clock = Arc::new(ManualClock::new(fixtures::fixed_time().timestamp()));
    let url = server.url();
    let other = url.replace("/0", "/1");
    let scripts = repository(&url, &clock).await;
    let prototype = repository(&other, &clock).await;
    if guard == Guard::IfEq && !has_ifeq(&prototype).await {
        eprintln!("skipped: the server has no SET IFEQ");
        return;
    }
    let editor = editor(&other, &clock, lean).await;
    let record = fixtures::record_with_logs("7", 3, 4);
    scripts.save(record.clone()).await.unwrap();
    prototype.save(record).await.unwrap();
    for edit in edits() {
        clock.advance(std::time::Duration::from_millis(1_500));
        by_script(&scripts, "7", &edit).await;
        let outcome = editor.attempt("7", &edit, guard).await.unwrap();
        assert_eq!(outcome, Attempt::Applied, "{edit:?}");
        let expected = text(&scripts, "GET", &["task:7"]).await.unwrap();
        let found = text(&prototype, "GET", &["task:7"]).await.unwrap();
        assert_eq!(found, expected, "after {edit:?}");
    }
    for key in [
        "index:tasks",
        "index:service:export",
        "index:service:export:users",
        "index:service:export:user:user03",
        "index:user:user03",
    ] {
        assert_eq!(members(&prototype, key).await, members(&scripts, key).await);
        assert_eq!(members(&prototype, key).await.len(), 1, "{key}");
    }
    for field in ["service", "user_id"] {
        let args = ["task:7:metadata", field];
        let expected = text(&scripts, "HGET", &args).await;
        assert_eq!(text(&prototype, "HGET", &args).await, expected);
    }
    editor.close().await;
}

#[tokio::test]
async fn watch_edits_leave_what_the_scripts_leave() {
    let Some(server) = server_or_skip() else {
        return;
    };
    same_as_the_scripts(&server, Guard::Watch, false).await;
}

#[tokio::test]
async fn lean_watch_edits_leave_what_the_scripts_leave() {
    let Some(server) = server_or_skip() else {
        return;
    };
    same_as_the_scripts(&server, Guard::Watch, true).await;
}

#[tokio::test]
async fn ifeq_edits_leave_what_the_scripts_leave() {
    let Some(server) = server_or_skip() else {
        return;
    };
    same_as_the_scripts(&server, Guard::IfEq, false).await;
}

/// A transition from a status the task is not in writes nothing, as the script refuses it.
#[tokio::test]
async fn a_refused_transition_writes_nothing() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(fixtures::fixed_time().timestamp()));
    let repo = repository(&server.url(), &clock).await;
    let editor = editor(&server.url(), &clock, false).await;
    repo.save(fixtures::task_record("3", 3)).await.unwrap();
    let before = text(&repo, "GET", &["task:3"]).await;
    let edit = Edit::Status {
        to: TaskStatus::Completed,
        from: vec![TaskStatus::Pending],
        entry: Some("done".to_owned()),
    };
    clock.advance(std::time::Duration::from_secs(2));
    let outcome = editor.attempt("3", &edit, Guard::Watch).await.unwrap();
    assert_eq!(outcome, Attempt::Refused("running".to_owned()));
    assert_eq!(text(&repo, "GET", &["task:3"]).await, before);
    let script = repo
        .transition(
            "3",
            &[TaskStatus::Pending],
            TaskStatus::Completed,
            Some("done"),
        )
        .await;
    assert!(matches!(script, Err(Error::Conflict { .. })), "{script:?}");
    let missing = editor.attempt("404", &edit, Guard::Watch).await.unwrap();
    assert_eq!(missing, Attempt::Missing);
    editor.close().await;
}

/// A record whose TTL is longer than the setting keeps it.
#[tokio::test]
async fn an_edit_never_shortens_the_ttl() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(fixtures::fixed_time().timestamp()));
    let repo = repository(&server.url(), &clock).await;
    let editor = editor(&server.url(), &clock, false).await;
    repo.save(fixtures::task_record("5", 5)).await.unwrap();
    let ten_years = "315360000000";
    admin::command(repo.raw_writer(), "PEXPIRE", &["task:5", ten_years])
        .await
        .unwrap();
    let edit = Edit::Append(vec!["kept".to_owned()]);
    let outcome = editor.attempt("5", &edit, Guard::Watch).await.unwrap();
    assert_eq!(outcome, Attempt::Applied);
    let pttl: i64 = text(&repo, "PTTL", &["task:5"])
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(pttl > 315_000_000_000, "PTTL {pttl}");
    editor.close().await;
}

/// Eight writers on one task, each write falling back to the script after two raced
/// attempts: every line is there once, each writer's in order (the run checks it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_line() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let outcome = task_state_bench::contention::run(&server.url(), Guard::Watch, 8, 10, 2)
        .await
        .unwrap();
    assert_eq!(outcome.kept, 80);
    let writes: usize = outcome.attempts.values().sum();
    assert_eq!(writes, 80);
    assert!(outcome.attempts.keys().all(|n| (1..=3).contains(n)));
}
