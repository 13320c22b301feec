//! The checks of the `_ack` mutations ([`TaskRepository::set_status_ack`] and its kin): each
//! does what the mutation that returns the record does, and says only whether it applied.

use super::names::bad_names;
use super::support::{
    assert_log_entry, assert_stamped, assert_unchanged, fetch, ok, saved, strings,
};
use super::RawRecords;
use crate::{Error, Result, Scope, TaskRepository, TaskStatus};

/// Each `_ack` mutation of an existing task returns `Ok(true)` and writes what its
/// record-returning twin writes, stamping `updated_at`; `update_result_ack` with neither
/// field writes nothing and still says the task exists.
pub async fn ack_mutations_apply_and_say_so(repo: &dyn TaskRepository) {
    const CHECK: &str = "ack_mutations_apply_and_say_so";
    use TaskStatus::*;
    let id = "cf-ack-1";
    let before = saved(repo, id, "cf-ack-svc", "cf-ack-user", CHECK).await;

    let applied = repo.set_status_ack(id, Running, Some("started")).await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: set_status_ack must say it applied"
    );
    let running = fetch(repo, id, CHECK).await;
    assert_eq!(running.status, Running, "{CHECK}: set_status_ack's status");
    assert_eq!(running.logs.len(), 1, "{CHECK}: set_status_ack's log entry");
    assert_log_entry(&running.logs[0], "started", CHECK);
    assert_stamped(&before, &running, CHECK);

    let applied = repo.append_log_ack(id, "a line").await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: append_log_ack must say it applied"
    );
    let appended = fetch(repo, id, CHECK).await;
    assert_eq!(
        appended.logs.len(),
        2,
        "{CHECK}: append_log_ack appends one entry"
    );
    assert_eq!(
        appended.logs[0], running.logs[0],
        "{CHECK}: earlier entries kept"
    );
    assert_log_entry(&appended.logs[1], "a line", CHECK);
    assert_stamped(&running, &appended, CHECK);

    let applied = repo
        .update_result_ack(id, Some("phase=Running"), None)
        .await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: update_result_ack must say it applied"
    );
    let applied = repo.update_result_ack(id, None, Some("out")).await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: update_result_ack must say it applied"
    );
    let updated = fetch(repo, id, CHECK).await;
    assert_eq!(
        (
            updated.result.pod_status.as_deref(),
            updated.result.launcher_output.as_deref()
        ),
        (Some("phase=Running"), Some("out")),
        "{CHECK}: update_result_ack sets the fields given and keeps the others"
    );
    let applied = repo.update_result_ack(id, None, None).await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: update_result_ack with neither field must say the task exists"
    );
    assert_unchanged(repo, &updated, CHECK).await;

    let applied = repo.set_jobs_ack(id, &strings(&["j-1", "j-2"])).await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: set_jobs_ack must say it applied"
    );
    let with_jobs = fetch(repo, id, CHECK).await;
    assert_eq!(
        with_jobs.jobs,
        strings(&["j-1", "j-2"]),
        "{CHECK}: set_jobs_ack"
    );
    assert_stamped(&updated, &with_jobs, CHECK);

    let applied = repo
        .transition_ack(id, &[Running], Completed, Some("done"))
        .await;
    assert!(
        ok(applied, CHECK),
        "{CHECK}: transition_ack must say it applied"
    );
    let done = fetch(repo, id, CHECK).await;
    assert_eq!(done.status, Completed, "{CHECK}: transition_ack's status");
    assert_eq!(done.logs.len(), 3, "{CHECK}: transition_ack's log entry");
    assert_log_entry(&done.logs[2], "done", CHECK);
    assert_stamped(&with_jobs, &done, CHECK);
}

/// `transition_ack` from statuses that do not hold the current one is [`Error::Conflict`]
/// carrying the current status and the allowed ones, and writes nothing; an empty `from` and
/// a bad task id are [`Error::InvalidInput`] for every `_ack` mutation.
pub async fn ack_mutations_refuse_as_the_others_do(repo: &dyn TaskRepository) {
    const CHECK: &str = "ack_mutations_refuse_as_the_others_do";
    use TaskStatus::*;
    let id = "cf-ack-2";
    let before = saved(repo, id, "cf-ack-svc", "cf-ack-user", CHECK).await;

    let refused = repo.transition_ack(id, &[Running], Failed, Some("x")).await;
    match &refused {
        Err(Error::Conflict {
            task_id,
            current,
            expected,
        }) => assert_eq!(
            (task_id.as_str(), *current, expected.as_slice()),
            (id, Pending, [Running].as_slice()),
            "{CHECK}: Conflict names the task, its status and the allowed ones"
        ),
        other => panic!("{CHECK}: transition_ack expected Error::Conflict, got {other:?}"),
    }
    assert_unchanged(repo, &before, CHECK).await;

    let empty_from = repo.transition_ack(id, &[], Failed, None).await;
    assert_invalid(empty_from, CHECK, "transition_ack with an empty from");
    for bad in bad_names() {
        let bad = bad.as_str();
        let outcomes: [(&str, Result<bool>); 5] = [
            (
                "set_status_ack",
                repo.set_status_ack(bad, Running, None).await,
            ),
            (
                "transition_ack",
                repo.transition_ack(bad, &[Pending], Running, None).await,
            ),
            ("append_log_ack", repo.append_log_ack(bad, "x").await),
            (
                "update_result_ack",
                repo.update_result_ack(bad, Some("p"), None).await,
            ),
            (
                "set_jobs_ack",
                repo.set_jobs_ack(bad, &strings(&["j"])).await,
            ),
        ];
        for (operation, outcome) in outcomes {
            assert_invalid(outcome, CHECK, &format!("{operation} of {bad:?}"));
        }
    }
    assert_unchanged(repo, &before, CHECK).await;
}

/// Each `_ack` mutation of a task that does not exist returns `Ok(false)` and creates
/// nothing.
pub async fn ack_mutations_of_missing_tasks_are_false(repo: &dyn TaskRepository) {
    const CHECK: &str = "ack_mutations_of_missing_tasks_are_false";
    let id = "cf-ack-missing";
    assert_all_false(repo, id, CHECK).await;
    assert!(
        ok(repo.get(id).await, CHECK).is_none(),
        "{CHECK}: a mutation created {id}"
    );
    let ids = ok(repo.list_ids(&Scope::All).await, CHECK);
    assert!(
        !ids.iter().any(|listed| listed == id),
        "{CHECK}: a mutation listed {id}"
    );
}

/// A task whose record key holds an empty string is missing for every `_ack` mutation, as
/// for the others: each returns `Ok(false)` and the key is left as it was.
pub async fn empty_stored_record_is_absent_to_ack_mutations(
    repo: &dyn TaskRepository,
    raw: &dyn RawRecords,
) {
    const CHECK: &str = "empty_stored_record_is_absent_to_ack_mutations";
    let id = "cf-raw-ack-blank";
    raw.plant_raw(id, "").await;
    assert_all_false(repo, id, CHECK).await;
    assert!(
        ok(repo.get(id).await, CHECK).is_none(),
        "{CHECK}: no mutation may have made a record of the empty string"
    );
}

/// Every `_ack` mutation of `id` (a task that does not exist) is `Ok(false)`.
async fn assert_all_false(repo: &dyn TaskRepository, id: &str, check: &str) {
    use TaskStatus::*;
    let outcomes: [(&str, Result<bool>); 6] = [
        (
            "set_status_ack",
            repo.set_status_ack(id, Running, Some("x")).await,
        ),
        (
            "transition_ack",
            repo.transition_ack(id, &[Pending], Running, None).await,
        ),
        ("append_log_ack", repo.append_log_ack(id, "x").await),
        (
            "update_result_ack",
            repo.update_result_ack(id, Some("p"), Some("o")).await,
        ),
        (
            "update_result_ack with neither field",
            repo.update_result_ack(id, None, None).await,
        ),
        (
            "set_jobs_ack",
            repo.set_jobs_ack(id, &strings(&["j"])).await,
        ),
    ];
    for (operation, outcome) in outcomes {
        assert!(
            matches!(outcome, Ok(false)),
            "{check}: {operation} of a task that does not exist must be Ok(false), got {outcome:?}"
        );
    }
}

#[track_caller]
fn assert_invalid(result: Result<bool>, check: &str, what: &str) {
    assert!(
        matches!(result, Err(Error::InvalidInput { .. })),
        "{check}: {what}: expected Error::InvalidInput, got {result:?}"
    );
}
