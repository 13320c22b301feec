//! The check that fields a writer does not know, and parameters, survive every mutation.

use super::support::*;
use crate::{TaskRecord, TaskRepository, TaskStatus};

/// Fields unknown to this version and `parameters` (long floats, integers beyond 2^64,
/// tiny exponents, nested values, empty `[]` and `{}`, Unicode) survive every mutation byte
/// for byte, and a record read with `active_jobs` keeps that field name when written back.
pub async fn unknown_fields_and_parameters_survive(repo: &dyn TaskRepository) {
    const CHECK: &str = "unknown_fields_and_parameters_survive";
    let (s, u) = ("cf-keep-svc", "cf-keep-user");
    let id = "cf-keep-1";
    let json = format!(
        r#"{{"task_id":"{id}","service":"{s}","user_id":"{u}","status":"pending","parameters":{PARAMETERS},"jobs":[],"created_at":"2001-02-03T04:05:06.789012+09:00","updated_at":"2001-02-03T04:05:06.789012+09:00","logs":[],"result":{{"pod_status":null,"launcher_output":null}},"priority":"low",{EXTRA}}}"#
    );
    let record = TaskRecord::from_json(&json).expect("the check's own record parses");
    let saved = ok(repo.save(record).await, CHECK);
    assert_kept(&saved, "save", CHECK);
    assert_stored(repo, &saved, CHECK).await;
    every_mutation_keeps_them(repo, id, CHECK).await;
    active_jobs_keeps_its_name(repo, s, u, CHECK).await;
}

/// Each mutation of task `id` (saved with [`PARAMETERS`] and [`EXTRA`]) keeps both, in what
/// it returns and in what it stores; so does a second save.
async fn every_mutation_keeps_them(repo: &dyn TaskRepository, id: &str, check: &str) {
    let one = strings(&["more, output"]);
    use TaskStatus::*;
    let steps: Vec<(&str, Option<TaskRecord>)> = vec![
        (
            "set_status",
            ok(repo.set_status(id, Running, Some("go")).await, check),
        ),
        (
            "transition",
            ok(
                repo.transition(id, &[Running], Completed, Some("done"))
                    .await,
                check,
            ),
        ),
        (
            "append_log",
            ok(repo.append_log(id, "한국어, ✓").await, check),
        ),
        ("append_logs", {
            assert!(ok(repo.append_logs(id, &one).await, check));
            None
        }),
        (
            "update_result",
            ok(repo.update_result(id, Some("pod"), None).await, check),
        ),
        (
            "update_result",
            ok(repo.update_result(id, None, Some("out")).await, check),
        ),
        (
            "update_result",
            ok(repo.update_result(id, None, None).await, check),
        ),
        (
            "set_jobs",
            ok(repo.set_jobs(id, &strings(&["j-1"])).await, check),
        ),
    ];
    for (step, returned) in steps {
        if let Some(returned) = returned {
            assert_kept(&returned, step, check);
        }
    }
    let last = fetch(repo, id, check).await;
    assert_kept(&last, "every mutation", check);
    assert_eq!(last.logs.len(), 4, "{check}: logs");
    let resaved = ok(repo.save(last).await, check);
    assert_kept(&resaved, "a second save", check);
    assert_kept(&fetch(repo, id, check).await, "a second save", check);
}

/// A record read with `active_jobs` is written back with that name.
async fn active_jobs_keeps_its_name(repo: &dyn TaskRepository, s: &str, u: &str, check: &str) {
    let id = "cf-keep-active";
    let json = format!(
        r#"{{"task_id":"{id}","service":"{s}","user_id":"{u}","status":"running","parameters":{{}},"active_jobs":["a-1"],"created_at":"2001-02-03T04:05:06+09:00","updated_at":"2001-02-03T04:05:06+09:00","logs":[],"result":{{"pod_status":null,"launcher_output":null}},"priority":"high"}}"#
    );
    let record = TaskRecord::from_json(&json).expect("the check's own record parses");
    ok(repo.save(record).await, check);
    ok(repo.append_log(id, "x").await, check);
    let with_jobs = some(
        repo.set_jobs(id, &strings(&["a-2", "a-3"])).await,
        check,
        id,
    );
    let stored = fetch(repo, id, check).await;
    assert_eq!(stored, with_jobs, "{check}: get after set_jobs");
    assert_eq!(stored.jobs, ["a-2", "a-3"], "{check}: active_jobs");
    assert_eq!(
        stored.jobs_field(),
        "active_jobs",
        "{check}: a record read with active_jobs must be written back with it: {}",
        stored.to_json()
    );
}
