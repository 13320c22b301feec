//! The checks of the `_ack` mutations ([`TaskRepository::set_status_ack`] and its kin): each
//! does what the mutation that returns the record does, and says only whether it applied.

use super::names::bad_names;
use super::support::{
    assert_log_entry, assert_stamped, assert_unchanged, fetch, ok, saved, strings,
};
use super::RawRecords;
use crate::{Error, Result, Scope, TaskRecord, TaskRepository, TaskStatus};

/// Each `_ack` mutation of an existing task returns `Ok(true)` and writes what its
/// record-returning twin writes, stamping `updated_at`; `update_result_ack` with neither
/// field writes nothing and still says the task exists.
///
/// The mutations run one after the other on one task, each step a check of its own that
/// starts from the record the step before left.
pub async fn ack_mutations_apply_and_say_so(repo: &dyn TaskRepository) {
    let id = "cf-ack-1";
    let before = saved(repo, id, "cf-ack-svc", "cf-ack-user", APPLY).await;
    let running = set_status_ack_applies(repo, &before).await;
    let appended = append_log_ack_applies(repo, &running).await;
    let updated = update_result_ack_applies(repo, &appended).await;
    let with_jobs = set_jobs_ack_applies(repo, &updated).await;
    transition_ack_applies(repo, &with_jobs).await;
}

/// The check whose name the steps of [`ack_mutations_apply_and_say_so`] report under.
const APPLY: &str = "ack_mutations_apply_and_say_so";

/// `set_status_ack` to running with a log entry says it applied, sets the status, appends
/// the entry and stamps `updated_at`; returns the record it left.
async fn set_status_ack_applies(repo: &dyn TaskRepository, before: &TaskRecord) -> TaskRecord {
    let id = before.task_id.as_str();
    let applied = repo
        .set_status_ack(id, TaskStatus::Running, Some("started"))
        .await;
    assert_applied(applied, "set_status_ack");
    let running = fetch(repo, id, APPLY).await;
    assert_eq!(
        running.status,
        TaskStatus::Running,
        "{APPLY}: set_status_ack's status"
    );
    assert_eq!(running.logs.len(), 1, "{APPLY}: set_status_ack's log entry");
    assert_log_entry(&running.logs[0], "started", APPLY);
    assert_stamped(before, &running, APPLY);
    running
}

/// `append_log_ack` (after [`set_status_ack_applies`]) says it applied, appends one entry
/// after the one there, and stamps `updated_at`; returns the record it left.
async fn append_log_ack_applies(repo: &dyn TaskRepository, running: &TaskRecord) -> TaskRecord {
    let id = running.task_id.as_str();
    let applied = repo.append_log_ack(id, "a line").await;
    assert_applied(applied, "append_log_ack");
    let appended = fetch(repo, id, APPLY).await;
    assert_eq!(
        appended.logs.len(),
        2,
        "{APPLY}: append_log_ack appends one entry"
    );
    assert_eq!(
        appended.logs[0], running.logs[0],
        "{APPLY}: earlier entries kept"
    );
    assert_log_entry(&appended.logs[1], "a line", APPLY);
    assert_stamped(running, &appended, APPLY);
    appended
}

/// `update_result_ack` says it applied for each field given, sets those fields and keeps the
/// other; with neither field it still says the task exists and writes nothing. Returns the
/// record it left.
async fn update_result_ack_applies(repo: &dyn TaskRepository, before: &TaskRecord) -> TaskRecord {
    let id = before.task_id.as_str();
    let applied = repo
        .update_result_ack(id, Some("phase=Running"), None)
        .await;
    assert_applied(applied, "update_result_ack");
    let applied = repo.update_result_ack(id, None, Some("out")).await;
    assert_applied(applied, "update_result_ack");
    let updated = fetch(repo, id, APPLY).await;
    assert_eq!(
        (
            updated.result.pod_status.as_deref(),
            updated.result.launcher_output.as_deref()
        ),
        (Some("phase=Running"), Some("out")),
        "{APPLY}: update_result_ack sets the fields given and keeps the others"
    );
    let applied = repo.update_result_ack(id, None, None).await;
    assert!(
        ok(applied, APPLY),
        "{APPLY}: update_result_ack with neither field must say the task exists"
    );
    assert_unchanged(repo, &updated, APPLY).await;
    updated
}

/// `set_jobs_ack` says it applied, sets the jobs and stamps `updated_at`; returns the record
/// it left.
async fn set_jobs_ack_applies(repo: &dyn TaskRepository, updated: &TaskRecord) -> TaskRecord {
    let id = updated.task_id.as_str();
    let applied = repo.set_jobs_ack(id, &strings(&["j-1", "j-2"])).await;
    assert_applied(applied, "set_jobs_ack");
    let with_jobs = fetch(repo, id, APPLY).await;
    assert_eq!(
        with_jobs.jobs,
        strings(&["j-1", "j-2"]),
        "{APPLY}: set_jobs_ack"
    );
    assert_stamped(updated, &with_jobs, APPLY);
    with_jobs
}

/// `transition_ack` from running (the status [`set_status_ack_applies`] set) to completed,
/// with a log entry, says it applied, sets the status, appends the third entry and stamps
/// `updated_at`.
async fn transition_ack_applies(repo: &dyn TaskRepository, with_jobs: &TaskRecord) {
    use TaskStatus::*;
    let id = with_jobs.task_id.as_str();
    let applied = repo
        .transition_ack(id, &[Running], Completed, Some("done"))
        .await;
    assert_applied(applied, "transition_ack");
    let done = fetch(repo, id, APPLY).await;
    assert_eq!(done.status, Completed, "{APPLY}: transition_ack's status");
    assert_eq!(done.logs.len(), 3, "{APPLY}: transition_ack's log entry");
    assert_log_entry(&done.logs[2], "done", APPLY);
    assert_stamped(with_jobs, &done, APPLY);
}

/// `outcome`, of `operation` on a task that exists, is `Ok(true)`.
#[track_caller]
fn assert_applied(outcome: Result<bool>, operation: &str) {
    assert!(
        ok(outcome, APPLY),
        "{APPLY}: {operation} must say it applied"
    );
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
