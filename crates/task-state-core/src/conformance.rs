//! The conformance suite: every sentence of the [`TaskRepository`] docs as a check that each
//! backend runs, so that the backends (and the in-memory fake) never drift apart.
//!
//! Each check is a `pub async fn` taking `&dyn TaskRepository` that panics with a message
//! naming the check and the broken promise. A backend's tests run each one as its own test,
//! or all of them with [`run_all`]:
//!
//! ```ignore
//! #[tokio::test]
//! async fn append_log_keeps_order_and_form() {
//!     let repo = MyRepository::for_tests().await;
//!     task_state_core::conformance::append_log_keeps_order_and_form(&repo).await;
//! }
//! ```
//!
//! The checks share nothing: each uses its own task ids, services and users (all starting
//! with `cf-`), so they may run one after another in one store. Only [`task_id_sequence`]
//! needs a store whose id counter was never used.
//!
//! The repository's clock and zone are unknown here, so timestamps are checked for their
//! form (they parse, they carry an offset, they are written as Python's `isoformat()` writes
//! them) and never for their value, except that `updated_at` must not go backwards.

use std::fmt::Debug;

/// The attribute that [`RawRecords`] implementations need, re-exported so that a backend's
/// tests need no dependency of their own for it.
pub use async_trait::async_trait;
use futures::future::join_all;
use futures::StreamExt;

use crate::{
    compare_task_ids, Error, LogEntry, Result, Scope, TaskRecord, TaskRepository,
    TaskRepositoryExt, TaskStatus, TaskTime, MAX_NAME_BYTES,
};

/// Generates the whole suite as tests: one `#[tokio::test]` per check on a fresh
/// repository, once on the repository itself and once through `Arc<dyn TaskRepository>`,
/// and [`run_all`] once. A backend's test file names an async function that makes a fresh
/// repository, returning `Some((guard, repo))` (the guard, such as a private server, lives
/// as long as the test) or `None` to skip:
///
/// ```ignore
/// async fn fresh() -> Option<((), MyRepository)> {
///     Some(((), MyRepository::default()))
/// }
/// task_state_core::conformance_tests!(fresh);
/// ```
///
/// The list of checks lives here only, so a new check runs on every backend at once.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@each $setup;
            task_id_sequence,
            save_and_get_round_trip,
            create_refuses_an_existing_task,
            resave_moves_between_listings,
            delete_removes_from_every_listing,
            set_status_with_and_without_log,
            transition_applies_or_conflicts,
            transition_rejects_empty_from,
            append_log_keeps_order_and_form,
            append_logs_appends_in_order,
            update_result_is_additive,
            set_jobs_replaces_jobs,
            missing_tasks_are_not_created,
            invalid_names_are_rejected,
            longest_names_are_accepted,
            list_by_ids_skips_and_reports,
            listings_are_sorted,
            stream_matches_list,
            unknown_fields_and_parameters_survive,
            concurrent_appends_keep_every_line,
            concurrent_result_updates_keep_both_fields,
            concurrent_transitions_have_one_winner,
            empty_log_entry_appends_nothing,
        );
    };
    ($setup:path, raw_records = $raw:path) => {
        $crate::conformance_tests!($setup);
        $crate::conformance_tests!(@raw $setup, $raw;
            empty_stored_record_is_none,
            empty_stored_record_is_absent_from_listings,
            values_kept_as_text_hold_any_json,
            missing_timestamps_read_as_now_in_the_zone,
        );
    };
    (@raw $setup:path, $raw:path; $($check:ident),* $(,)?) => {
        mod raw_records {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, repo)) = $setup().await else { return };
                    let raw = $raw(&_guard, &repo);
                    $crate::conformance::$check(&repo, &raw).await;
                }
            )*
        }
    };
    (@each $setup:path; $($check:ident),* $(,)?) => {
        mod direct {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, repo)) = $setup().await else { return };
                    $crate::conformance::$check(&repo).await;
                }
            )*
        }

        mod through_arc_dyn {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, repo)) = $setup().await else { return };
                    let repo: ::std::sync::Arc<dyn $crate::TaskRepository> =
                        ::std::sync::Arc::new(repo);
                    $crate::conformance::$check(&repo).await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn run_all_in_one_store() {
            let Some((_guard, repo)) = $setup().await else { return };
            $crate::conformance::run_all(&repo).await;
        }
    };
}

/// The hook of the checks that need a record no repository method would write: it stores
/// `text` under the record key of `task_id` (`task:{id}`) exactly as given, as another writer
/// might, bypassing the repository. Whether index entries come with it is up to the backend.
///
/// A backend's tests implement it on a small type of their own and name a function that
/// makes one from the fresh store, `fn(&guard, &repo) -> impl RawRecords`:
/// `task_state_core::conformance_tests!(fresh, raw_records = raw);`. The checks that take it
/// run only there (in a module `raw_records`), not in [`run_all`].
#[async_trait]
pub trait RawRecords: Send + Sync {
    /// Stores `text` as the record of `task_id`, byte for byte.
    async fn plant_raw(&self, task_id: &str, text: &str);
}

/// Runs every check, one after another, on one repository.
///
/// [`task_id_sequence`] runs first and needs a store whose id counter was never used.
pub async fn run_all(repo: &dyn TaskRepository) {
    task_id_sequence(repo).await;
    save_and_get_round_trip(repo).await;
    create_refuses_an_existing_task(repo).await;
    resave_moves_between_listings(repo).await;
    delete_removes_from_every_listing(repo).await;
    set_status_with_and_without_log(repo).await;
    transition_applies_or_conflicts(repo).await;
    transition_rejects_empty_from(repo).await;
    append_log_keeps_order_and_form(repo).await;
    append_logs_appends_in_order(repo).await;
    update_result_is_additive(repo).await;
    set_jobs_replaces_jobs(repo).await;
    missing_tasks_are_not_created(repo).await;
    invalid_names_are_rejected(repo).await;
    longest_names_are_accepted(repo).await;
    list_by_ids_skips_and_reports(repo).await;
    listings_are_sorted(repo).await;
    stream_matches_list(repo).await;
    unknown_fields_and_parameters_survive(repo).await;
    concurrent_appends_keep_every_line(repo).await;
    concurrent_result_updates_keep_both_fields(repo).await;
    concurrent_transitions_have_one_winner(repo).await;
    empty_log_entry_appends_nothing(repo).await;
}

/// `next_task_id` gives `"1"`, `"2"`, `"3"`, ... and `peek_next_task_id` gives `"1"` on a
/// fresh store, then the counter plus one, without taking it.
///
/// This is the one check that needs a fresh store: the counter must never have been used.
pub async fn task_id_sequence(repo: &dyn TaskRepository) {
    const CHECK: &str = "task_id_sequence";
    let peek = || async { ok(repo.peek_next_task_id().await, CHECK) };
    let next = || async { ok(repo.next_task_id().await, CHECK) };
    assert_eq!(peek().await, "1", "{CHECK}: peek on a fresh store");
    assert_eq!(peek().await, "1", "{CHECK}: peek must not take the id");
    assert_eq!(next().await, "1", "{CHECK}: first id");
    assert_eq!(peek().await, "2", "{CHECK}: peek after one id");
    assert_eq!(next().await, "2", "{CHECK}: second id");
    assert_eq!(next().await, "3", "{CHECK}: third id");
    assert_eq!(peek().await, "4", "{CHECK}: peek after three ids");
    assert_eq!(peek().await, "4", "{CHECK}: peek must not take the id");
}

/// `save` stores the record whole and stamps `updated_at` (and nothing else); it returns the
/// record as stored, which `get` then returns; the task is in every listing of its service
/// and user, and the user in the service's user set. A second save replaces the record.
pub async fn save_and_get_round_trip(repo: &dyn TaskRepository) {
    const CHECK: &str = "save_and_get_round_trip";
    let (id, service, user) = ("cf-rt-1", "cf-rt-svc", "cf-rt-user");
    assert!(
        ok(repo.get(id).await, CHECK).is_none(),
        "{CHECK}: {id} exists before it was saved"
    );

    let mut record = new_record(id, service, user);
    record.status = TaskStatus::Running;
    record.parameters = parameters(r#"{"retries":3,"ratio":0.5}"#);
    record.jobs = vec!["slurm-500".to_owned()];
    record.logs = vec!["2001-02-03T04:05:06+09:00,registered".to_owned()];
    record.result.pod_status = Some("phase=Pending".to_owned());
    record.priority = crate::PriorityLevel::High;

    let saved = ok(repo.save(record.clone()).await, CHECK);
    assert_eq!(saved.created_at, record.created_at, "{CHECK}: created_at");
    assert_stamped(&record, &saved, CHECK);
    assert_ne!(
        saved.updated_at, record.updated_at,
        "{CHECK}: save must stamp updated_at"
    );
    let mut unstamped = saved.clone();
    unstamped.updated_at = record.updated_at;
    assert_eq!(
        unstamped, record,
        "{CHECK}: save changed more than updated_at"
    );
    assert_stored(repo, &saved, CHECK).await;
    assert_placed(repo, id, service, user, CHECK).await;
    assert_eq!(
        users(repo, service, CHECK).await,
        [user],
        "{CHECK}: users of {service}"
    );

    // A save replaces the record whole: fields left out of the new one are gone.
    let mut replacement = new_record(id, service, user);
    replacement.status = TaskStatus::Completed;
    let resaved = ok(repo.save(replacement.clone()).await, CHECK);
    assert_stamped(&saved, &resaved, CHECK);
    assert!(
        resaved.logs.is_empty() && resaved.jobs.is_empty() && resaved.parameters.is_empty(),
        "{CHECK}: a second save must replace the record whole, got {}",
        resaved.to_json()
    );
    assert_eq!(resaved.status, TaskStatus::Completed, "{CHECK}: status");
    assert_stored(repo, &resaved, CHECK).await;
    assert_placed(repo, id, service, user, CHECK).await;
}

/// `create` stores a new task as `save` does, and refuses an id that exists with
/// [`Error::AlreadyExists`], writing nothing; of concurrent creators of one id exactly one
/// wins.
pub async fn create_refuses_an_existing_task(repo: &dyn TaskRepository) {
    const CHECK: &str = "create_refuses_an_existing_task";
    let (id, service, user) = ("cf-cr-1", "cf-cr-svc", "cf-cr-user");
    let record = new_record(id, service, user);
    let created = ok(repo.create(record.clone()).await, CHECK);
    assert_stamped(&record, &created, CHECK);
    assert_stored(repo, &created, CHECK).await;
    assert_placed(repo, id, service, user, CHECK).await;

    let mut other = new_record(id, "cf-cr-other", "cf-cr-intruder");
    other.status = TaskStatus::Failed;
    match repo.create(other).await {
        Err(Error::AlreadyExists { task_id }) => {
            assert_eq!(task_id, id, "{CHECK}: error names the id")
        }
        other => panic!("{CHECK}: creating an existing id must be AlreadyExists, got {other:?}"),
    }
    assert_stored(repo, &created, CHECK).await;
    assert!(
        users(repo, "cf-cr-other", CHECK).await.is_empty(),
        "{CHECK}: a refused create must not touch the indexes"
    );
    assert_invalid(
        repo.create(new_record("cf:cr", service, user)).await,
        "create with a bad id",
    );

    let racers =
        (0..8).map(|i| repo.create(new_record("cf-cr-race", service, &format!("cf-cr-u{i}"))));
    let results = join_all(racers).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::AlreadyExists { .. })))
        .count();
    assert_eq!(
        (wins, refused),
        (1, 7),
        "{CHECK}: concurrent creates of one id"
    );
    assert_eq!(
        users(repo, service, CHECK).await.len(),
        2,
        "{CHECK}: only the winner's user joins the service"
    );
}

/// Re-saving a task under another user or service moves it: it leaves the old listings and
/// appears in the new ones. The old user stays in the service's user set while they have
/// another task there and leaves it when they have none.
pub async fn resave_moves_between_listings(repo: &dyn TaskRepository) {
    const CHECK: &str = "resave_moves_between_listings";
    let (a, b) = ("cf-move-a", "cf-move-b");
    let (s1, s2) = ("cf-move-s1", "cf-move-s2");
    let (u1, u2) = ("cf-move-u1", "cf-move-u2");
    saved(repo, a, s1, u1, CHECK).await;
    saved(repo, b, s1, u1, CHECK).await;
    assert_eq!(users(repo, s1, CHECK).await, [u1], "{CHECK}: users of {s1}");

    // a: (s1, u1) -> (s1, u2). u1 keeps b in s1.
    resave_as(repo, a, s1, u2, CHECK).await;
    assert_placed(repo, a, s1, u2, CHECK).await;
    assert_absent_from(repo, a, &[service_user(s1, u1), user_scope(u1)], CHECK).await;
    assert_placed(repo, b, s1, u1, CHECK).await;
    assert_eq!(
        users(repo, s1, CHECK).await,
        [u1, u2],
        "{CHECK}: {u1} still has {b} in {s1}"
    );

    // b: (s1, u1) -> (s2, u1). u1 has nothing left in s1.
    resave_as(repo, b, s2, u1, CHECK).await;
    assert_placed(repo, b, s2, u1, CHECK).await;
    assert_absent_from(repo, b, &[service(s1), service_user(s1, u1)], CHECK).await;
    assert_eq!(
        users(repo, s1, CHECK).await,
        [u2],
        "{CHECK}: {u1} has no task left in {s1}"
    );
    assert_eq!(users(repo, s2, CHECK).await, [u1], "{CHECK}: users of {s2}");

    // a: (s1, u2) -> (s2, u2). s1 is left empty.
    resave_as(repo, a, s2, u2, CHECK).await;
    assert_placed(repo, a, s2, u2, CHECK).await;
    assert_absent_from(repo, a, &[service(s1), service_user(s1, u2)], CHECK).await;
    assert!(
        users(repo, s1, CHECK).await.is_empty(),
        "{CHECK}: {s1} has no task left"
    );
    assert!(
        listing(repo, &service(s1), CHECK).await.is_empty(),
        "{CHECK}: {s1} has no task left"
    );
    assert_eq!(
        users(repo, s2, CHECK).await,
        [u1, u2],
        "{CHECK}: users of {s2}"
    );
    assert_eq!(
        listing(repo, &user_scope(u1), CHECK).await,
        [b],
        "{CHECK}: tasks of {u1}"
    );
    assert_eq!(
        listing(repo, &user_scope(u2), CHECK).await,
        [a],
        "{CHECK}: tasks of {u2}"
    );
}

/// `delete` removes the record and the task from every listing and returns `true`; deleting
/// it again (or any missing task) returns `false`; the user leaves the service's user set
/// with their last task there; mutations of the deleted task return `None` and create
/// nothing.
pub async fn delete_removes_from_every_listing(repo: &dyn TaskRepository) {
    const CHECK: &str = "delete_removes_from_every_listing";
    let (a, b, c) = ("cf-del-a", "cf-del-b", "cf-del-c");
    let (s, u1, u2) = ("cf-del-svc", "cf-del-u1", "cf-del-u2");
    saved(repo, a, s, u1, CHECK).await;
    saved(repo, b, s, u1, CHECK).await;
    saved(repo, c, s, u2, CHECK).await;

    assert!(ok(repo.delete(a).await, CHECK), "{CHECK}: delete {a}");
    assert!(
        ok(repo.get(a).await, CHECK).is_none(),
        "{CHECK}: {a} still readable"
    );
    assert_absent_from(repo, a, &every_scope(s, u1), CHECK).await;
    assert_eq!(
        users(repo, s, CHECK).await,
        [u1, u2],
        "{CHECK}: {u1} still has {b}"
    );
    assert!(
        !ok(repo.delete(a).await, CHECK),
        "{CHECK}: a second delete of {a} must return false"
    );
    assert!(
        !ok(repo.delete("cf-del-never").await, CHECK),
        "{CHECK}: deleting a task that never existed must return false"
    );

    // Mutations of the deleted task must not bring it back.
    assert!(ok(repo.append_log(a, "late").await, CHECK).is_none());
    assert!(ok(repo.set_status(a, TaskStatus::Running, None).await, CHECK).is_none());
    assert!(
        ok(repo.get(a).await, CHECK).is_none(),
        "{CHECK}: a mutation recreated {a}"
    );
    assert_absent_from(repo, a, &every_scope(s, u1), CHECK).await;

    assert!(ok(repo.delete(b).await, CHECK), "{CHECK}: delete {b}");
    assert_eq!(
        users(repo, s, CHECK).await,
        [u2],
        "{CHECK}: {u1} has no task left in {s}"
    );
    assert!(ok(repo.delete(c).await, CHECK), "{CHECK}: delete {c}");
    assert!(
        users(repo, s, CHECK).await.is_empty(),
        "{CHECK}: {s} has no task left"
    );
    assert!(
        listing(repo, &service(s), CHECK).await.is_empty(),
        "{CHECK}: {s} has no task left"
    );
}

/// `set_status` sets any status; with a log entry it appends one entry
/// `<timestamp>,<message>`, without one it leaves the logs alone; it stamps `updated_at` and
/// returns the record that `get` then returns.
pub async fn set_status_with_and_without_log(repo: &dyn TaskRepository) {
    const CHECK: &str = "set_status_with_and_without_log";
    let id = "cf-status-1";
    let before = saved(repo, id, "cf-status-svc", "cf-status-user", CHECK).await;

    let running = some(
        repo.set_status(id, TaskStatus::Running, None).await,
        CHECK,
        id,
    );
    assert_eq!(running.status, TaskStatus::Running, "{CHECK}: status");
    assert_eq!(running.logs, before.logs, "{CHECK}: no log entry was given");
    assert_stamped(&before, &running, CHECK);
    assert_stored(repo, &running, CHECK).await;

    let message = "failed, exit code 3\nsee output";
    let failed = some(
        repo.set_status(id, TaskStatus::Failed, Some(message)).await,
        CHECK,
        id,
    );
    assert_eq!(failed.status, TaskStatus::Failed, "{CHECK}: status");
    assert_eq!(failed.logs.len(), 1, "{CHECK}: one log entry was given");
    assert_log_entry(&failed.logs[0], message, CHECK);
    assert_stamped(&running, &failed, CHECK);
    assert_stored(repo, &failed, CHECK).await;

    // set_status is unconditional: even a terminal status can be left.
    let pending = some(
        repo.set_status(id, TaskStatus::Pending, None).await,
        CHECK,
        id,
    );
    assert_eq!(pending.status, TaskStatus::Pending, "{CHECK}: status");
    assert_eq!(pending.logs, failed.logs, "{CHECK}: logs");
    assert_stored(repo, &pending, CHECK).await;
}

/// `transition` applies when the current status is one of `from` (with its optional log
/// entry) and returns the record; otherwise it fails with [`Error::Conflict`] carrying the
/// current status and the allowed ones, and changes nothing (not even `updated_at`).
pub async fn transition_applies_or_conflicts(repo: &dyn TaskRepository) {
    const CHECK: &str = "transition_applies_or_conflicts";
    use TaskStatus::*;
    let id = "cf-trans-1";
    let before = saved(repo, id, "cf-trans-svc", "cf-trans-user", CHECK).await;

    let running = some(
        repo.transition(id, &[Pending, Dispatching], Running, Some("started"))
            .await,
        CHECK,
        id,
    );
    assert_eq!(running.status, Running, "{CHECK}: allowed transition");
    assert_eq!(running.logs.len(), 1, "{CHECK}: one log entry was given");
    assert_log_entry(&running.logs[0], "started", CHECK);
    assert_stamped(&before, &running, CHECK);
    assert_stored(repo, &running, CHECK).await;

    let refused = repo
        .transition(id, &[Pending], Cancelled, Some("must not appear"))
        .await;
    assert_conflict(refused, id, Running, &[Pending], CHECK);
    assert_unchanged(repo, &running, CHECK).await;

    let completed = some(
        repo.transition(id, &[Running], Completed, None).await,
        CHECK,
        id,
    );
    assert_eq!(completed.status, Completed, "{CHECK}: allowed transition");
    assert_eq!(
        completed.logs, running.logs,
        "{CHECK}: no log entry was given"
    );
    assert_stamped(&running, &completed, CHECK);
    assert_stored(repo, &completed, CHECK).await;

    // The frontend's "cancel unless already finished".
    let unfinished = [Pending, Dispatching, Running];
    let refused = repo
        .transition(id, &unfinished, CancelRequested, None)
        .await;
    assert_conflict(refused, id, Completed, &unfinished, CHECK);
    assert_unchanged(repo, &completed, CHECK).await;
}

/// `transition` with an empty `from` is [`Error::InvalidInput`] and changes nothing.
pub async fn transition_rejects_empty_from(repo: &dyn TaskRepository) {
    const CHECK: &str = "transition_rejects_empty_from";
    let id = "cf-trans-empty";
    let before = saved(repo, id, "cf-trans-svc", "cf-trans-user", CHECK).await;
    assert_invalid(
        repo.transition(id, &[], TaskStatus::Running, Some("x"))
            .await,
        CHECK,
    );
    assert_unchanged(repo, &before, CHECK).await;
    assert_invalid(
        repo.transition("cf-trans-missing", &[], TaskStatus::Running, None)
            .await,
        CHECK,
    );
}

/// `append_log` appends `<timestamp>,<message>` after the existing entries and returns the
/// record; the timestamp is in `isoformat()` form with an offset; messages with commas,
/// newlines and any Unicode (or empty ones) come back unchanged; `updated_at` never goes
/// backwards.
pub async fn append_log_keeps_order_and_form(repo: &dyn TaskRepository) {
    const CHECK: &str = "append_log_keeps_order_and_form";
    let id = "cf-log-1";
    let mut record = new_record(id, "cf-log-svc", "cf-log-user");
    let existing = "2001-02-03T04:05:06.789012+09:00,registered";
    record.logs.push(existing.to_owned());
    let mut last = ok(repo.save(record).await, CHECK);

    let messages = [
        "first",
        "a, b, c",
        "line1\nline2\r\n",
        "한국어 ✓ émoji 🎉",
        "",
        ",leading comma",
        "  spaced \t out  ",
        "{\"json\": [1, 2]}",
    ];
    for (n, message) in messages.iter().enumerate() {
        let next = some(repo.append_log(id, message).await, CHECK, id);
        assert_eq!(next.logs.len(), n + 2, "{CHECK}: one entry per append");
        assert_eq!(
            next.logs[..n + 1],
            last.logs[..],
            "{CHECK}: earlier entries changed"
        );
        assert_log_entry(&next.logs[n + 1], message, CHECK);
        assert_stamped(&last, &next, CHECK);
        last = next;
    }
    assert_stored(repo, &last, CHECK).await;
    assert_eq!(last.logs[0], existing, "{CHECK}: the first entry changed");
}

/// `append_logs` appends all messages in order in one step and returns `true`; an empty
/// slice changes nothing (not even `updated_at`) and still returns `true` for an existing
/// task; a missing task gives `false`.
pub async fn append_logs_appends_in_order(repo: &dyn TaskRepository) {
    const CHECK: &str = "append_logs_appends_in_order";
    let id = "cf-logs-1";
    let before = ok(repo.append_log(id, "x").await, CHECK);
    assert!(before.is_none(), "{CHECK}: append_log created {id}");
    let before = saved(repo, id, "cf-logs-svc", "cf-logs-user", CHECK).await;

    let messages = strings(&["one", "two, with comma", "three\nlines\n", "넷 ✓"]);
    assert!(
        ok(repo.append_logs(id, &messages).await, CHECK),
        "{CHECK}: append_logs on an existing task"
    );
    let after = fetch(repo, id, CHECK).await;
    assert_eq!(after.logs.len(), messages.len(), "{CHECK}: entries");
    for (entry, message) in after.logs.iter().zip(&messages) {
        assert_log_entry(entry, message, CHECK);
    }
    assert_stamped(&before, &after, CHECK);

    let more = strings(&["five"]);
    assert!(ok(repo.append_logs(id, &more).await, CHECK));
    let last = fetch(repo, id, CHECK).await;
    assert_eq!(last.logs[..4], after.logs[..], "{CHECK}: earlier entries");
    assert_log_entry(&last.logs[4], "five", CHECK);

    assert!(
        ok(repo.append_logs(id, &[]).await, CHECK),
        "{CHECK}: an empty append_logs on an existing task returns true"
    );
    assert_unchanged(repo, &last, CHECK).await;

    for batch in [more, Vec::new()] {
        assert!(
            !ok(repo.append_logs("cf-logs-missing", &batch).await, CHECK),
            "{CHECK}: append_logs on a missing task returns false"
        );
    }
    assert!(
        ok(repo.get("cf-logs-missing").await, CHECK).is_none(),
        "{CHECK}: append_logs created a task"
    );
}

/// `update_result` sets only the fields given (an empty string included) and keeps the other;
/// with neither given it writes nothing and returns the record unchanged, `updated_at`
/// included.
pub async fn update_result_is_additive(repo: &dyn TaskRepository) {
    const CHECK: &str = "update_result_is_additive";
    let id = "cf-result-1";
    let before = saved(repo, id, "cf-result-svc", "cf-result-user", CHECK).await;

    let pod = some(
        repo.update_result(id, Some("phase=Running"), None).await,
        CHECK,
        id,
    );
    assert_eq!(pod.result.pod_status.as_deref(), Some("phase=Running"));
    assert_eq!(pod.result.launcher_output, None, "{CHECK}: launcher_output");
    assert_stamped(&before, &pod, CHECK);
    assert_stored(repo, &pod, CHECK).await;

    let output = "stdout, stderr\n한국어 ✓\n";
    let both = some(repo.update_result(id, None, Some(output)).await, CHECK, id);
    assert_eq!(
        both.result.pod_status.as_deref(),
        Some("phase=Running"),
        "{CHECK}: pod_status must be kept"
    );
    assert_eq!(both.result.launcher_output.as_deref(), Some(output));
    assert_stamped(&pod, &both, CHECK);

    let replaced = some(
        repo.update_result(id, Some("{\"phase\":\"Succeeded\"}"), None)
            .await,
        CHECK,
        id,
    );
    assert_eq!(
        replaced.result.pod_status.as_deref(),
        Some("{\"phase\":\"Succeeded\"}")
    );
    assert_eq!(
        replaced.result.launcher_output.as_deref(),
        Some(output),
        "{CHECK}: launcher_output must be kept"
    );

    let emptied = some(repo.update_result(id, None, Some("")).await, CHECK, id);
    assert_eq!(
        emptied.result.launcher_output.as_deref(),
        Some(""),
        "{CHECK}: an empty string is a value, not absence"
    );
    assert_stored(repo, &emptied, CHECK).await;

    let untouched = some(repo.update_result(id, None, None).await, CHECK, id);
    assert_eq!(
        untouched.to_json(),
        emptied.to_json(),
        "{CHECK}: update_result with neither field must return the record unchanged"
    );
    assert_unchanged(repo, &emptied, CHECK).await;
}

/// `set_jobs` replaces the job ids (an empty slice clears them), stamps `updated_at` and
/// returns the record that `get` then returns.
pub async fn set_jobs_replaces_jobs(repo: &dyn TaskRepository) {
    const CHECK: &str = "set_jobs_replaces_jobs";
    let id = "cf-jobs-1";
    let before = saved(repo, id, "cf-jobs-svc", "cf-jobs-user", CHECK).await;
    let jobs = strings(&["slurm-500", "k8s/job-2", "잡-3"]);
    let with = some(repo.set_jobs(id, &jobs).await, CHECK, id);
    assert_eq!(with.jobs, jobs, "{CHECK}: jobs");
    assert_stamped(&before, &with, CHECK);
    assert_stored(repo, &with, CHECK).await;

    let fewer = strings(&["slurm-501"]);
    let replaced = some(repo.set_jobs(id, &fewer).await, CHECK, id);
    assert_eq!(replaced.jobs, fewer, "{CHECK}: set_jobs replaces");
    assert_stored(repo, &replaced, CHECK).await;

    let cleared = some(repo.set_jobs(id, &[]).await, CHECK, id);
    assert!(cleared.jobs.is_empty(), "{CHECK}: set_jobs(&[]) clears");
    assert_stamped(&replaced, &cleared, CHECK);
    assert_stored(repo, &cleared, CHECK).await;
}

/// Every mutation of a task that does not exist returns `None` (or `false`) without error,
/// `transition` included (no conflict), and creates nothing: `get` stays `None` and the
/// listings stay as they were.
pub async fn missing_tasks_are_not_created(repo: &dyn TaskRepository) {
    const CHECK: &str = "missing_tasks_are_not_created";
    let id = "cf-missing-1";
    let all_before = listing(repo, &Scope::All, CHECK).await;

    assert!(ok(repo.get(id).await, CHECK).is_none(), "{CHECK}: get");
    assert!(
        ok(
            repo.set_status(id, TaskStatus::Running, Some("x")).await,
            CHECK
        )
        .is_none(),
        "{CHECK}: set_status"
    );
    assert!(
        ok(
            repo.transition(id, &[TaskStatus::Pending], TaskStatus::Running, None)
                .await,
            CHECK
        )
        .is_none(),
        "{CHECK}: transition"
    );
    assert!(
        ok(repo.append_log(id, "x").await, CHECK).is_none(),
        "{CHECK}: append_log"
    );
    assert!(
        !ok(repo.append_logs(id, &strings(&["x", "y"])).await, CHECK),
        "{CHECK}: append_logs"
    );
    assert!(
        ok(repo.update_result(id, Some("p"), Some("o")).await, CHECK).is_none(),
        "{CHECK}: update_result"
    );
    assert!(
        ok(repo.update_result(id, None, None).await, CHECK).is_none(),
        "{CHECK}: update_result with neither field"
    );
    assert!(
        ok(repo.set_jobs(id, &strings(&["j"])).await, CHECK).is_none(),
        "{CHECK}: set_jobs"
    );
    assert!(!ok(repo.delete(id).await, CHECK), "{CHECK}: delete");

    assert!(
        ok(repo.get(id).await, CHECK).is_none(),
        "{CHECK}: a mutation created {id}"
    );
    let list = ok(repo.list_by_ids(&strings(&[id])).await, CHECK);
    assert!(
        list.records.is_empty() && list.unreadable.is_empty(),
        "{CHECK}: list_by_ids of a missing task: {list:?}"
    );
    assert_eq!(
        listing(repo, &Scope::All, CHECK).await,
        all_before,
        "{CHECK}: list_all changed"
    );
}

/// Task ids, services and user ids that are empty, contain `:` or a control character, or
/// are longer than [`MAX_NAME_BYTES`] bytes are [`Error::InvalidInput`] for every method
/// (listings, streams and `list_by_ids` included), and nothing is written.
pub async fn invalid_names_are_rejected(repo: &dyn TaskRepository) {
    const CHECK: &str = "invalid_names_are_rejected";
    let (id, s, u) = ("cf-val-1", "cf-val-svc", "cf-val-user");
    let existing = saved(repo, "cf-val-existing", s, u, CHECK).await;
    let all_before = listing(repo, &Scope::All, CHECK).await;

    for bad in bad_names() {
        let what = format!("{CHECK} ({bad:?})");
        let what = what.as_str();
        let one = strings(&["x"]);
        assert_invalid(repo.save(new_record(&bad, s, u)).await, what);
        assert_invalid(repo.save(new_record(id, &bad, u)).await, what);
        assert_invalid(repo.save(new_record(id, s, &bad)).await, what);
        assert_invalid(repo.get(&bad).await, what);
        assert_invalid(repo.delete(&bad).await, what);
        assert_invalid(
            repo.set_status(&bad, TaskStatus::Running, Some("x")).await,
            what,
        );
        assert_invalid(
            repo.transition(&bad, &[TaskStatus::Pending], TaskStatus::Running, None)
                .await,
            what,
        );
        assert_invalid(repo.append_log(&bad, "x").await, what);
        assert_invalid(repo.append_logs(&bad, &one).await, what);
        assert_invalid(repo.append_logs(&bad, &[]).await, what);
        assert_invalid(repo.update_result(&bad, Some("p"), None).await, what);
        assert_invalid(repo.update_result(&bad, None, None).await, what);
        assert_invalid(repo.set_jobs(&bad, &one).await, what);

        let scopes = [
            service(&bad),
            service_user(&bad, u),
            service_user(s, &bad),
            user_scope(&bad),
        ];
        for scope in &scopes {
            assert_invalid(repo.list_ids(scope).await, what);
            assert_invalid(repo.list(scope).await, what);
            let first = repo.stream(scope.clone(), 10).next().await;
            assert!(
                matches!(first, Some(Err(Error::InvalidInput { .. }))),
                "{what}: stream({scope:?}) must yield Error::InvalidInput first, got {first:?}"
            );
        }
        assert_invalid(repo.list_by_service(&bad).await, what);
        assert_invalid(repo.list_by_service_and_user(&bad, u).await, what);
        assert_invalid(repo.list_by_service_and_user(s, &bad).await, what);
        assert_invalid(repo.list_by_user(&bad).await, what);
        assert_invalid(repo.list_users_by_service(&bad).await, what);

        let list = ok(repo.list_by_ids(std::slice::from_ref(&bad)).await, what);
        assert!(list.records.is_empty(), "{what}: list_by_ids records");
        assert!(
            matches!(
                list.unreadable.as_slice(),
                [report] if report.task_id == bad && matches!(report.error, Error::InvalidInput { .. })
            ),
            "{what}: list_by_ids must report the id as Error::InvalidInput: {list:?}"
        );
    }

    assert!(
        ok(repo.get(id).await, CHECK).is_none(),
        "{CHECK}: a rejected save wrote {id}"
    );
    assert_eq!(
        listing(repo, &Scope::All, CHECK).await,
        all_before,
        "{CHECK}: list_all changed"
    );
    assert_eq!(users(repo, s, CHECK).await, [u], "{CHECK}: users of {s}");
    assert_eq!(
        listing(repo, &user_scope(u), CHECK).await,
        [existing.task_id.as_str()],
        "{CHECK}: tasks of {u}"
    );
    assert_unchanged(repo, &existing, CHECK).await;
}

/// Names of exactly [`MAX_NAME_BYTES`] bytes (multi-byte characters counted in bytes) are
/// accepted for the task id, the service and the user id.
pub async fn longest_names_are_accepted(repo: &dyn TaskRepository) {
    const CHECK: &str = "longest_names_are_accepted";
    let id = format!("cf-long-{}", "9".repeat(MAX_NAME_BYTES - 8));
    let service = format!("cf-long-{}", "s".repeat(MAX_NAME_BYTES - 8));
    // 168 three-byte characters and 8 ASCII bytes: 512 bytes.
    let user = format!("cf-long-{}", "한".repeat((MAX_NAME_BYTES - 8) / 3));
    assert_eq!(id.len(), MAX_NAME_BYTES);
    assert_eq!(user.len(), MAX_NAME_BYTES);
    let record = saved(repo, &id, &service, &user, CHECK).await;
    assert_stored(repo, &record, CHECK).await;
    assert_placed(repo, &id, &service, &user, CHECK).await;
    assert!(
        ok(repo.append_log(&id, "long").await, CHECK).is_some(),
        "{CHECK}: append_log"
    );
    assert!(ok(repo.delete(&id).await, CHECK), "{CHECK}: delete");
    assert!(ok(repo.get(&id).await, CHECK).is_none(), "{CHECK}: deleted");
}

/// `list_by_ids` returns the existing records in task id order whatever the order asked,
/// skips ids without a record, and reports invalid ids in `unreadable` as
/// [`Error::InvalidInput`] without failing; an empty slice gives an empty list.
pub async fn list_by_ids_skips_and_reports(repo: &dyn TaskRepository) {
    const CHECK: &str = "list_by_ids_skips_and_reports";
    let (s, u) = ("cf-ids-svc", "cf-ids-user");
    for id in ["cf-ids-b", "cf-ids-a", "cf-ids-c"] {
        saved(repo, id, s, u, CHECK).await;
    }
    let asked = strings(&[
        "cf-ids-c",
        "cf-ids-missing",
        "bad:id",
        "cf-ids-a",
        "",
        "cf-ids-b",
    ]);
    let list = ok(repo.list_by_ids(&asked).await, CHECK);
    assert_eq!(
        list.ids(),
        ["cf-ids-a", "cf-ids-b", "cf-ids-c"],
        "{CHECK}: records"
    );
    let mut reported: Vec<&str> = list
        .unreadable
        .iter()
        .map(|u| {
            assert!(
                matches!(u.error, Error::InvalidInput { .. }),
                "{CHECK}: {:?} reported as {:?}, expected Error::InvalidInput",
                u.task_id,
                u.error
            );
            u.task_id.as_str()
        })
        .collect();
    reported.sort_unstable();
    assert_eq!(reported, ["", "bad:id"], "{CHECK}: unreadable");

    let empty = ok(repo.list_by_ids(&[]).await, CHECK);
    assert!(
        empty.records.is_empty() && empty.unreadable.is_empty(),
        "{CHECK}: list_by_ids(&[])"
    );
}

/// Every listing (`list_ids`, `list`, `list_all`, `list_by_service`,
/// `list_by_service_and_user`, `list_by_user`, `list_by_ids`) is in task id order
/// ([`compare_task_ids`]: numeric ids by value first, then the others by text), and
/// `list_users_by_service` is sorted.
pub async fn listings_are_sorted(repo: &dyn TaskRepository) {
    const CHECK: &str = "listings_are_sorted";
    let (s, u) = ("cf-sort-svc", "cf-sort-user");
    let expected = ["7779", "77710", "777100", "cf-sort-a", "cf-sort-b"];
    for id in ["777100", "cf-sort-b", "7779", "cf-sort-a", "77710"] {
        saved(repo, id, s, u, CHECK).await;
    }
    for scope in [service(s), service_user(s, u), user_scope(u)] {
        assert_eq!(
            listing(repo, &scope, CHECK).await,
            expected,
            "{CHECK}: {scope:?}"
        );
        assert_eq!(
            ok(repo.list_ids(&scope).await, CHECK),
            expected,
            "{CHECK}: list_ids({scope:?})"
        );
    }
    let all = listing(repo, &Scope::All, CHECK).await;
    let ours: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|id| expected.contains(id))
        .collect();
    assert_eq!(ours, expected, "{CHECK}: list_all");
    let shuffled = strings(&["cf-sort-b", "77710", "cf-sort-a", "777100", "7779"]);
    assert_eq!(
        ok(repo.list_by_ids(&shuffled).await, CHECK).ids(),
        expected,
        "{CHECK}: list_by_ids"
    );

    let users_service = "cf-sort-users";
    for (n, user) in ["cf-zed", "cf-amy", "cf-mia"].into_iter().enumerate() {
        saved(
            repo,
            &format!("cf-sort-user-{n}"),
            users_service,
            user,
            CHECK,
        )
        .await;
    }
    assert_eq!(
        users(repo, users_service, CHECK).await,
        ["cf-amy", "cf-mia", "cf-zed"],
        "{CHECK}: list_users_by_service"
    );
}

/// `TaskRepositoryExt::stream` yields the same records, in the same order, as the listing
/// of the same scope, whatever the batch size (0 counts as 1).
pub async fn stream_matches_list(repo: &dyn TaskRepository) {
    const CHECK: &str = "stream_matches_list";
    let (s, u) = ("cf-stream-svc", "cf-stream-user");
    for id in [
        "cf-stream-3",
        "cf-stream-1",
        "cf-stream-5",
        "cf-stream-2",
        "cf-stream-4",
    ] {
        saved(repo, id, s, u, CHECK).await;
    }
    ok(repo.append_log("cf-stream-2", "changed").await, CHECK);
    for scope in [Scope::All, service(s), service_user(s, u), user_scope(u)] {
        let listed = ok(repo.list(&scope).await, CHECK).records;
        for batch in [0, 1, 2, 3, 1000] {
            let streamed: Vec<TaskRecord> = repo
                .stream(scope.clone(), batch)
                .map(|item| ok(item, CHECK))
                .collect()
                .await;
            assert_eq!(
                streamed, listed,
                "{CHECK}: stream({scope:?}, {batch}) differs from list"
            );
        }
    }
    let empty: Vec<Result<TaskRecord>> = repo.stream(service("cf-stream-none"), 10).collect().await;
    assert!(empty.is_empty(), "{CHECK}: stream of an empty index");
}

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

    let one = strings(&["more, output"]);
    use TaskStatus::*;
    let steps: Vec<(&str, Option<TaskRecord>)> = vec![
        (
            "set_status",
            ok(repo.set_status(id, Running, Some("go")).await, CHECK),
        ),
        (
            "transition",
            ok(
                repo.transition(id, &[Running], Completed, Some("done"))
                    .await,
                CHECK,
            ),
        ),
        (
            "append_log",
            ok(repo.append_log(id, "한국어, ✓").await, CHECK),
        ),
        ("append_logs", {
            assert!(ok(repo.append_logs(id, &one).await, CHECK));
            None
        }),
        (
            "update_result",
            ok(repo.update_result(id, Some("pod"), None).await, CHECK),
        ),
        (
            "update_result",
            ok(repo.update_result(id, None, Some("out")).await, CHECK),
        ),
        (
            "update_result",
            ok(repo.update_result(id, None, None).await, CHECK),
        ),
        (
            "set_jobs",
            ok(repo.set_jobs(id, &strings(&["j-1"])).await, CHECK),
        ),
    ];
    for (step, returned) in steps {
        if let Some(returned) = returned {
            assert_kept(&returned, step, CHECK);
        }
    }
    let last = fetch(repo, id, CHECK).await;
    assert_kept(&last, "every mutation", CHECK);
    assert_eq!(last.logs.len(), 4, "{CHECK}: logs");
    let resaved = ok(repo.save(last).await, CHECK);
    assert_kept(&resaved, "a second save", CHECK);
    assert_kept(&fetch(repo, id, CHECK).await, "a second save", CHECK);

    let id = "cf-keep-active";
    let json = format!(
        r#"{{"task_id":"{id}","service":"{s}","user_id":"{u}","status":"running","parameters":{{}},"active_jobs":["a-1"],"created_at":"2001-02-03T04:05:06+09:00","updated_at":"2001-02-03T04:05:06+09:00","logs":[],"result":{{"pod_status":null,"launcher_output":null}},"priority":"high"}}"#
    );
    let record = TaskRecord::from_json(&json).expect("the check's own record parses");
    ok(repo.save(record).await, CHECK);
    ok(repo.append_log(id, "x").await, CHECK);
    let with_jobs = some(
        repo.set_jobs(id, &strings(&["a-2", "a-3"])).await,
        CHECK,
        id,
    );
    let stored = fetch(repo, id, CHECK).await;
    assert_eq!(stored, with_jobs, "{CHECK}: get after set_jobs");
    assert_eq!(stored.jobs, ["a-2", "a-3"], "{CHECK}: active_jobs");
    assert_eq!(
        stored.jobs_field(),
        "active_jobs",
        "{CHECK}: a record read with active_jobs must be written back with it: {}",
        stored.to_json()
    );
}

/// 16 concurrent writers appending 100 lines each to one task (half with `append_log`, half
/// with `append_logs` in batches of 10) keep all 1,600 lines, each writer's lines in its own
/// order.
pub async fn concurrent_appends_keep_every_line(repo: &dyn TaskRepository) {
    const CHECK: &str = "concurrent_appends_keep_every_line";
    const WRITERS: usize = 16;
    const LINES: usize = 100;
    let id = "cf-conc-log";
    saved(repo, id, "cf-conc-svc", "cf-conc-user", CHECK).await;

    let writers = (0..WRITERS).map(|w| async move {
        let lines: Vec<String> = (0..LINES)
            .map(|n| format!("writer {w:02}, line {n:03}"))
            .collect();
        if w % 2 == 0 {
            for line in &lines {
                let appended = ok(repo.append_log(id, line).await, CHECK);
                assert!(appended.is_some(), "{CHECK}: append_log lost the task");
            }
        } else {
            for batch in lines.chunks(10) {
                assert!(ok(repo.append_logs(id, batch).await, CHECK));
            }
        }
    });
    join_all(writers).await;

    let record = fetch(repo, id, CHECK).await;
    assert_eq!(
        record.logs.len(),
        WRITERS * LINES,
        "{CHECK}: lines were lost or duplicated"
    );
    let mut seen = vec![Vec::new(); WRITERS];
    for entry in &record.logs {
        let parsed = LogEntry::parse(entry)
            .unwrap_or_else(|e| panic!("{CHECK}: unreadable log entry {entry:?}: {e}"));
        let (writer, line) = parsed
            .message
            .strip_prefix("writer ")
            .and_then(|rest| rest.split_once(", line "))
            .unwrap_or_else(|| panic!("{CHECK}: foreign log entry {entry:?}"));
        let writer: usize = writer.parse().expect("writer number");
        let line: usize = line.parse().expect("line number");
        seen[writer].push(line);
    }
    let in_order: Vec<usize> = (0..LINES).collect();
    for (writer, lines) in seen.iter().enumerate() {
        assert_eq!(
            lines, &in_order,
            "{CHECK}: writer {writer}'s lines are missing or out of order"
        );
    }
}

/// Concurrent `update_result` calls setting different fields of one task keep both fields
/// (checked on 20 tasks at once).
pub async fn concurrent_result_updates_keep_both_fields(repo: &dyn TaskRepository) {
    const CHECK: &str = "concurrent_result_updates_keep_both_fields";
    const TASKS: usize = 20;
    let ids: Vec<String> = (0..TASKS).map(|n| format!("cf-conc-result-{n}")).collect();
    for id in &ids {
        saved(repo, id, "cf-conc-svc", "cf-conc-user", CHECK).await;
    }
    let updates = ids.iter().flat_map(|id| {
        let pod = async move {
            ok(
                repo.update_result(id, Some(&format!("pod of {id}")), None)
                    .await,
                CHECK,
            )
        };
        let output = async move {
            ok(
                repo.update_result(id, None, Some(&format!("output of {id}")))
                    .await,
                CHECK,
            )
        };
        [
            futures::future::Either::Left(pod),
            futures::future::Either::Right(output),
        ]
    });
    for updated in join_all(updates).await {
        assert!(updated.is_some(), "{CHECK}: update_result lost a task");
    }
    for id in &ids {
        let record = fetch(repo, id, CHECK).await;
        assert_eq!(
            record.result.pod_status.as_deref(),
            Some(format!("pod of {id}").as_str()),
            "{CHECK}: pod_status of {id} was lost"
        );
        assert_eq!(
            record.result.launcher_output.as_deref(),
            Some(format!("output of {id}").as_str()),
            "{CHECK}: launcher_output of {id} was lost"
        );
    }
}

/// Of 16 concurrent transitions out of `pending` (to different statuses), exactly one
/// applies; every other one fails with [`Error::Conflict`] carrying the winner's status,
/// and only the winner's log entry is written.
pub async fn concurrent_transitions_have_one_winner(repo: &dyn TaskRepository) {
    const CHECK: &str = "concurrent_transitions_have_one_winner";
    use TaskStatus::*;
    let id = "cf-conc-trans";
    saved(repo, id, "cf-conc-svc", "cf-conc-user", CHECK).await;
    let targets = [
        Dispatching,
        Running,
        Completed,
        Failed,
        CancelRequested,
        Cancelled,
    ];
    let attempts = (0..16).map(|n| {
        let to = targets[n % targets.len()];
        async move {
            let message = format!("attempt {n}");
            (
                to,
                message.clone(),
                repo.transition(id, &[Pending], to, Some(&message)).await,
            )
        }
    });
    let outcomes = join_all(attempts).await;

    let winners: Vec<(TaskStatus, String)> = outcomes
        .iter()
        .filter_map(|(to, message, outcome)| match outcome {
            Ok(Some(record)) => {
                assert_eq!(record.status, *to, "{CHECK}: winner's status");
                Some((*to, message.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{CHECK}: exactly one transition must win: {outcomes:?}"
    );
    let (status, message) = &winners[0];
    for (_, _, outcome) in &outcomes {
        if !matches!(outcome, Ok(Some(_))) {
            assert!(
                matches!(outcome, Err(Error::Conflict { current, .. }) if current == status),
                "{CHECK}: a losing transition must be Error::Conflict with current {status}, got {outcome:?}"
            );
        }
    }
    let record = fetch(repo, id, CHECK).await;
    assert_eq!(record.status, *status, "{CHECK}: final status");
    assert_eq!(record.logs.len(), 1, "{CHECK}: only the winner logs");
    assert_log_entry(&record.logs[0], message, CHECK);
}

/// An empty `log_entry` (`Some("")`) appends nothing, as Python's `if log_entry:`: neither
/// `set_status` nor `transition` writes an entry for it, while both still change the status
/// and stamp `updated_at`; a non-empty entry is still appended.
pub async fn empty_log_entry_appends_nothing(repo: &dyn TaskRepository) {
    const CHECK: &str = "empty_log_entry_appends_nothing";
    use TaskStatus::*;
    let id = "cf-emptylog-1";
    let before = saved(repo, id, "cf-emptylog-svc", "cf-emptylog-user", CHECK).await;

    let running = some(repo.set_status(id, Running, Some("")).await, CHECK, id);
    assert_eq!(
        running.status, Running,
        "{CHECK}: set_status still sets the status"
    );
    assert_eq!(
        running.logs, before.logs,
        "{CHECK}: set_status with \"\" appends nothing"
    );
    assert_stamped(&before, &running, CHECK);
    assert_stored(repo, &running, CHECK).await;

    let done = some(
        repo.transition(id, &[Running], Completed, Some("")).await,
        CHECK,
        id,
    );
    assert_eq!(done.status, Completed, "{CHECK}: transition still applies");
    assert_eq!(
        done.logs, before.logs,
        "{CHECK}: transition with \"\" appends nothing"
    );
    assert_stamped(&running, &done, CHECK);
    assert_stored(repo, &done, CHECK).await;

    let logged = some(repo.set_status(id, Failed, Some(" ")).await, CHECK, id);
    assert_eq!(
        logged.logs.len(),
        1,
        "{CHECK}: a blank but non-empty entry is appended"
    );
    assert_log_entry(&logged.logs[0], " ", CHECK);
}

/// `get` of a record key that holds an empty string is `Ok(None)`, as Python's
/// `if not raw: return None`, while a non-empty text that is not a record is
/// [`Error::Decode`] naming the key.
pub async fn empty_stored_record_is_none(repo: &dyn TaskRepository, raw: &dyn RawRecords) {
    const CHECK: &str = "empty_stored_record_is_none";
    let id = "cf-raw-empty";
    raw.plant_raw(id, "not a record").await;
    let garbled = repo.get(id).await;
    assert!(
        matches!(garbled, Err(Error::Decode { ref key, .. }) if key == "task:cf-raw-empty"),
        "{CHECK}: a planted non-record must be Error::Decode naming task:{id}, got {garbled:?}"
    );
    raw.plant_raw(id, "").await;
    let empty = repo.get(id).await;
    assert!(
        matches!(empty, Ok(None)),
        "{CHECK}: an empty stored string must read as no record, got {empty:?}"
    );
}

/// A task whose record key came to hold an empty string (while its index entries stay) is
/// absent from every listing, as for `get`: neither listed nor reported unreadable, as
/// Python's listing skips it.
pub async fn empty_stored_record_is_absent_from_listings(
    repo: &dyn TaskRepository,
    raw: &dyn RawRecords,
) {
    const CHECK: &str = "empty_stored_record_is_absent_from_listings";
    let id = "cf-raw-emptied";
    saved(repo, id, "cf-emptied-s", "cf-emptied-u", CHECK).await;
    raw.plant_raw(id, "").await;
    let by_ids = ok(repo.list_by_ids(&[id.to_owned()]).await, CHECK);
    assert!(
        by_ids.records.is_empty() && by_ids.unreadable.is_empty(),
        "{CHECK}: list_by_ids must skip an empty stored string, got {by_ids:?}"
    );
    for scope in every_scope("cf-emptied-s", "cf-emptied-u") {
        let list = match &scope {
            Scope::All => repo.list_all().await,
            other => repo.list(other).await,
        };
        let list = ok(list, CHECK);
        assert!(
            !list.ids().contains(&id) && !list.unreadable.iter().any(|u| u.task_id == id),
            "{CHECK}: {scope:?} must neither list nor report {id}, got {list:?}"
        );
    }
}

/// A record whose `created_at` and `updated_at` are missing or `null` reads them as now in
/// the repository's zone (the Python model's default in `DMS_TIMEZONE`), both the same
/// instant, with the offset that the repository's own stamps carry; a save of what was read
/// stores that time, and so does a mutation: the task reads the same `created_at` afterwards.
pub async fn missing_timestamps_read_as_now_in_the_zone(
    repo: &dyn TaskRepository,
    raw: &dyn RawRecords,
) {
    const CHECK: &str = "missing_timestamps_read_as_now_in_the_zone";
    let stamped = ok(
        repo.save(TaskRecord::new("cf-tz-0", "s", "u", TaskStatus::Pending))
            .await,
        CHECK,
    );
    // The repository's zone, as its own stamp shows it.
    let offset = stamped.updated_at.offset();
    let planted = |id: &str, times: &str| {
        format!(r#"{{"task_id":"{id}","service":"s","user_id":"u","status":"running"{times}}}"#)
    };
    raw.plant_raw("cf-tz-1", &planted("cf-tz-1", "")).await;
    let nulls = r#","created_at":null,"updated_at":null"#;
    raw.plant_raw("cf-tz-2", &planted("cf-tz-2", nulls)).await;
    for id in ["cf-tz-1", "cf-tz-2"] {
        let read = some(repo.get(id).await, CHECK, id);
        assert_eq!(read.created_at.offset(), offset, "{CHECK}: {id} created_at");
        assert_eq!(read.updated_at, read.created_at, "{CHECK}: {id} updated_at");
    }

    let read = some(repo.get("cf-tz-1").await, CHECK, "cf-tz-1");
    ok(repo.save(read.clone()).await, CHECK);
    let saved = some(repo.get("cf-tz-1").await, CHECK, "cf-tz-1");
    assert_eq!(
        saved.created_at, read.created_at,
        "{CHECK}: a save stores the created_at read"
    );

    let edited = some(repo.append_log("cf-tz-2", "edited").await, CHECK, "cf-tz-2");
    assert_eq!(
        edited.created_at.offset(),
        offset,
        "{CHECK}: created_at after an edit"
    );
    let again = some(repo.get("cf-tz-2").await, CHECK, "cf-tz-2");
    assert_eq!(
        again.created_at, edited.created_at,
        "{CHECK}: an edit stores the created_at it returned"
    );
}

/// The model keeps the values of `parameters`, of unknown members and of a result's other
/// members as text ([`crate::RawMap`]): a record another writer left with numbers past `f64`
/// (`1e400`), `-0`, `1E+2`, lone surrogate escapes (`"\ud800"`) or nesting 10,000 levels deep
/// in those values reads, and every mutation keeps their bytes. A lone surrogate escape where
/// the model decodes a string (a key of the record, of its parameters or of its result, or a
/// member it knows) makes the record [`Error::Decode`], for reads and mutations alike.
///
/// The records are planted with [`RawRecords::plant_raw`] and owned by service `s`, user `u`.
pub async fn values_kept_as_text_hold_any_json(repo: &dyn TaskRepository, raw: &dyn RawRecords) {
    const CHECK: &str = "values_kept_as_text_hold_any_json";
    let id = "cf-raw-text";
    let deep = format!("{}-0{}", "[{\"k\":".repeat(5_000), "}]".repeat(5_000));
    let params = format!(
        r#"{{"huge":1e400,"neg":-0,"e":1E+2,"big":-123456789012345678901234567890,"lone":"\ud800 \uDFFF","deep":{deep},"in":{{"\udc00":[1.50]}}}}"#
    );
    let result_extra = r#"{"exit":"\udc00","code":1e-400}"#;
    let extra = format!(r#"{{"later":{deep},"x":"\ud83d"}}"#);
    let record = format!(
        r#"{{"task_id":"{id}","service":"s","user_id":"u","status":"running","parameters":{params},"jobs":[],"created_at":"2001-02-03T04:05:06+09:00","updated_at":"2001-02-03T04:05:06+09:00","logs":[],"result":{{"pod_status":null,"launcher_output":null,{}}},"priority":"low",{}}}"#,
        &result_extra[1..result_extra.len() - 1],
        &extra[1..extra.len() - 1],
    );
    raw.plant_raw(id, &record).await;
    let kept = |record: &TaskRecord, after: &str| {
        assert_eq!(
            record.parameters.to_string(),
            params,
            "{CHECK}: parameters changed by {after}"
        );
        assert_eq!(
            record.result.extra.to_string(),
            result_extra,
            "{CHECK}: the result's other members changed by {after}"
        );
        assert_eq!(
            record.extra.to_string(),
            extra,
            "{CHECK}: unknown members changed by {after}"
        );
    };
    let got = ok(repo.get(id).await, CHECK).expect("the planted record reads");
    assert_eq!(got.to_json(), record, "{CHECK}: the record as planted");
    use TaskStatus::*;
    let steps: Vec<(&str, Option<TaskRecord>)> = vec![
        ("append_log", ok(repo.append_log(id, "x").await, CHECK)),
        (
            "set_status",
            ok(repo.set_status(id, Completed, Some("done")).await, CHECK),
        ),
        (
            "update_result",
            ok(repo.update_result(id, Some("pod"), None).await, CHECK),
        ),
        (
            "set_jobs",
            ok(repo.set_jobs(id, &strings(&["j"])).await, CHECK),
        ),
        ("get", ok(repo.get(id).await, CHECK)),
    ];
    for (after, record) in steps {
        let record = record.unwrap_or_else(|| panic!("{CHECK}: {after} found no record"));
        kept(&record, after);
    }

    let lone_where_decoded = [
        record.replace(r#""task_id":"#, r#""\ud800":1,"task_id":"#),
        record.replace(r#""huge":"#, r#""\ud800":1,"huge":"#),
        record.replace(r#""exit":"#, r#""\udc00":1,"exit":"#),
        record.replace(r#""status":"running""#, r#""status":"running\ud800""#),
        record.replace(
            r#""logs":[]"#,
            r#""logs":["2001-02-03T04:05:06+09:00,\udc00"]"#,
        ),
        record.replace(r#""pod_status":null"#, r#""pod_status":"\ud800""#),
    ];
    for bad in &lone_where_decoded {
        raw.plant_raw(id, bad).await;
        let read = repo.get(id).await;
        assert!(
            matches!(read, Err(Error::Decode { .. })),
            "{CHECK}: a lone surrogate where the model decodes a string must be Error::Decode, \
             got {read:?}"
        );
        let edit = repo.append_log(id, "x").await;
        assert!(
            matches!(edit, Err(Error::Decode { .. })),
            "{CHECK}: append_log on such a record must be Error::Decode, got {edit:?}"
        );
        assert!(
            matches!(repo.get(id).await, Err(Error::Decode { .. })),
            "{CHECK}: a refused append_log changed the record"
        );
    }
}

// ----------------------------------------------------------------------------------------
// Helpers

const PARAMETERS: &str = r#"{"ratio":0.30000000000000004,"big":12345678901234567890,"tiny":-1e-300,"nested":{"a":[1,[2,{"b":null}]],"c":{"d":"e"}},"empty_list":[],"empty_map":{},"text":"한국어 ✓ \"quoted\" \\ back","huge":123456789012345678901234567890}"#;
const EXTRA: &str =
    r#""owner_team":{"name":"vision","ids":[1,2.50]},"retry_policy":null,"labels":["a","ü"]"#;

/// The ids as owned strings.
fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn parameters(json: &str) -> crate::RawMap {
    json.parse().expect("the check's own parameters parse")
}

fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        "a:b".to_owned(),
        "7:metadata".to_owned(),
        "tab\there".to_owned(),
        "newline\n".to_owned(),
        "del\u{7f}".to_owned(),
        "x".repeat(MAX_NAME_BYTES + 1),
        // 171 characters, 513 bytes: the limit is in bytes.
        "한".repeat(171),
    ]
}

/// A time long before any test runs, so that a stamped `updated_at` differs from it.
fn old_time() -> TaskTime {
    "2001-02-03T04:05:06.789012+09:00"
        .parse()
        .expect("valid timestamp")
}

fn new_record(task_id: &str, service: &str, user_id: &str) -> TaskRecord {
    TaskRecord::new_at(task_id, service, user_id, TaskStatus::Pending, old_time())
}

#[track_caller]
fn ok<T>(result: Result<T>, check: &str) -> T {
    result.unwrap_or_else(|e| panic!("{check}: unexpected error: {e} ({e:?})"))
}

#[track_caller]
fn some(result: Result<Option<TaskRecord>>, check: &str, task_id: &str) -> TaskRecord {
    ok(result, check).unwrap_or_else(|| panic!("{check}: {task_id} should exist"))
}

#[track_caller]
fn assert_invalid<T: Debug>(result: Result<T>, what: &str) {
    assert!(
        matches!(result, Err(Error::InvalidInput { .. })),
        "{what}: expected Error::InvalidInput, got {result:?}"
    );
}

#[track_caller]
fn assert_conflict(
    result: Result<Option<TaskRecord>>,
    task_id: &str,
    current: TaskStatus,
    expected: &[TaskStatus],
    check: &str,
) {
    match &result {
        Err(Error::Conflict {
            task_id: id,
            current: found,
            expected: allowed,
        }) => {
            assert_eq!(id, task_id, "{check}: Conflict names the task");
            assert_eq!(
                *found, current,
                "{check}: Conflict carries the current status"
            );
            assert_eq!(
                allowed, expected,
                "{check}: Conflict carries the allowed statuses"
            );
        }
        other => panic!("{check}: expected Error::Conflict, got {other:?}"),
    }
}

/// `updated_at` has an offset and did not go backwards.
#[track_caller]
fn assert_stamped(before: &TaskRecord, after: &TaskRecord, check: &str) {
    assert!(
        after.updated_at.offset().is_some(),
        "{check}: updated_at {} has no offset",
        after.updated_at
    );
    assert!(
        after.updated_at.timestamp() >= before.updated_at.timestamp(),
        "{check}: updated_at went backwards, from {} to {}",
        before.updated_at,
        after.updated_at
    );
}

/// `entry` is `<timestamp>,<message>`, the timestamp in `isoformat()` form with an offset.
#[track_caller]
fn assert_log_entry(entry: &str, message: &str, check: &str) {
    let parsed = LogEntry::parse(entry)
        .unwrap_or_else(|e| panic!("{check}: log entry {entry:?} does not parse: {e}"));
    assert_eq!(parsed.message, message, "{check}: log message changed");
    let stamp = &entry[..entry.len() - message.len() - 1];
    assert!(
        parsed.at.offset().is_some(),
        "{check}: log timestamp {stamp:?} has no offset"
    );
    assert_eq!(
        parsed.at.to_string(),
        stamp,
        "{check}: log timestamp {stamp:?} is not in isoformat() form"
    );
}

/// Parameters and unknown fields are exactly those of the check's record.
#[track_caller]
fn assert_kept(record: &TaskRecord, after: &str, check: &str) {
    let parameters = serde_json::to_string(&record.parameters).unwrap_or_default();
    assert_eq!(
        parameters, PARAMETERS,
        "{check}: parameters changed by {after}"
    );
    let extra = serde_json::to_string(&record.extra).unwrap_or_default();
    assert_eq!(
        extra,
        format!("{{{EXTRA}}}"),
        "{check}: unknown fields changed by {after}"
    );
    assert!(
        record.to_json().contains(PARAMETERS),
        "{check}: parameters changed by {after}"
    );
}

async fn saved(
    repo: &dyn TaskRepository,
    task_id: &str,
    service: &str,
    user_id: &str,
    check: &str,
) -> TaskRecord {
    ok(
        repo.save(new_record(task_id, service, user_id)).await,
        check,
    )
}

/// Reads the task and saves it back under another service and user.
async fn resave_as(
    repo: &dyn TaskRepository,
    task_id: &str,
    service: &str,
    user_id: &str,
    check: &str,
) {
    let mut record = fetch(repo, task_id, check).await;
    record.service = service.to_owned();
    record.user_id = user_id.to_owned();
    let moved = ok(repo.save(record.clone()).await, check);
    assert_eq!(
        (moved.service.as_str(), moved.user_id.as_str()),
        (service, user_id),
        "{check}: save returned another owner"
    );
    assert_stored(repo, &moved, check).await;
}

async fn fetch(repo: &dyn TaskRepository, task_id: &str, check: &str) -> TaskRecord {
    ok(repo.get(task_id).await, check).unwrap_or_else(|| panic!("{check}: {task_id} should exist"))
}

/// `get` returns exactly `record`.
async fn assert_stored(repo: &dyn TaskRepository, record: &TaskRecord, check: &str) {
    let stored = fetch(repo, &record.task_id, check).await;
    assert_eq!(
        stored.to_json(),
        record.to_json(),
        "{check}: get differs from the record returned"
    );
    assert_eq!(
        &stored, record,
        "{check}: get differs from the record returned"
    );
}

/// Nothing about the task changed, `updated_at` included.
async fn assert_unchanged(repo: &dyn TaskRepository, before: &TaskRecord, check: &str) {
    let now = fetch(repo, &before.task_id, check).await;
    assert_eq!(
        now.to_json(),
        before.to_json(),
        "{check}: the record changed although nothing should have been written"
    );
}

fn service(service: &str) -> Scope {
    Scope::Service(service.to_owned())
}

fn service_user(service: &str, user_id: &str) -> Scope {
    Scope::ServiceUser {
        service: service.to_owned(),
        user_id: user_id.to_owned(),
    }
}

fn user_scope(user_id: &str) -> Scope {
    Scope::User(user_id.to_owned())
}

fn every_scope(s: &str, u: &str) -> [Scope; 4] {
    [Scope::All, service(s), service_user(s, u), user_scope(u)]
}

/// The ids of one listing read through its named method (`list_all`, `list_by_service`,
/// ...), checked against `list_ids` and for order, and every record checked to belong there.
async fn listing(repo: &dyn TaskRepository, scope: &Scope, check: &str) -> Vec<String> {
    listing_and_index(repo, scope, check).await.0
}

/// [`listing`], and the ids of `list_ids`.
async fn listing_and_index(
    repo: &dyn TaskRepository,
    scope: &Scope,
    check: &str,
) -> (Vec<String>, Vec<String>) {
    let list = match scope {
        Scope::All => repo.list_all().await,
        Scope::Service(s) => repo.list_by_service(s).await,
        Scope::ServiceUser { service, user_id } => {
            repo.list_by_service_and_user(service, user_id).await
        }
        Scope::User(u) => repo.list_by_user(u).await,
    };
    let list = ok(list, check);
    let index = ok(repo.list_ids(scope).await, check);
    assert!(
        index.is_sorted_by(|a, b| compare_task_ids(a, b).is_le()),
        "{check}: list_ids({scope:?}) is not in task id order: {index:?}"
    );
    let ids: Vec<String> = list.ids().into_iter().map(str::to_owned).collect();
    assert!(
        ids.is_sorted_by(|a, b| compare_task_ids(a, b).is_le()),
        "{check}: listing {scope:?} is not in task id order: {ids:?}"
    );
    for record in &list.records {
        let belongs = match scope {
            Scope::All => true,
            Scope::Service(s) => &record.service == s,
            Scope::ServiceUser { service, user_id } => {
                &record.service == service && &record.user_id == user_id
            }
            Scope::User(u) => &record.user_id == u,
        };
        assert!(
            belongs,
            "{check}: {} ({}, {}) listed under {scope:?}",
            record.task_id, record.service, record.user_id
        );
        assert!(
            index.contains(&record.task_id),
            "{check}: {} listed under {scope:?} but not in list_ids",
            record.task_id
        );
    }
    (ids, index)
}

async fn users(repo: &dyn TaskRepository, service: &str, check: &str) -> Vec<String> {
    ok(repo.list_users_by_service(service).await, check)
}

/// The task is in the four listings of its service and user.
async fn assert_placed(
    repo: &dyn TaskRepository,
    task_id: &str,
    service: &str,
    user_id: &str,
    check: &str,
) {
    for scope in every_scope(service, user_id) {
        let ids = listing(repo, &scope, check).await;
        assert!(
            ids.iter().any(|id| id == task_id),
            "{check}: {task_id} missing from {scope:?}: {ids:?}"
        );
    }
    assert!(
        users(repo, service, check)
            .await
            .iter()
            .any(|u| u == user_id),
        "{check}: {user_id} missing from the users of {service}"
    );
}

async fn assert_absent_from(
    repo: &dyn TaskRepository,
    task_id: &str,
    scopes: &[Scope],
    check: &str,
) {
    for scope in scopes {
        let (ids, index) = listing_and_index(repo, scope, check).await;
        assert!(
            !ids.iter().any(|id| id == task_id),
            "{check}: {task_id} still listed under {scope:?}"
        );
        assert!(
            !index.iter().any(|id| id == task_id),
            "{check}: {task_id} still in list_ids({scope:?})"
        );
    }
}

/// Records made with [`TaskRecord::new`] (or read without a job list) are stored with the job
/// list named as the repository is configured (`field`: `DMS_TASK_JOBS_FIELD`), by `save` and
/// `create` alike, and keep that name through `set_jobs`; a record that already names its
/// list `jobs` or `active_jobs` keeps that name whatever the setting.
///
/// Not in [`run_all`]: it needs to know the repository's setting. Run it once per setting.
pub async fn new_records_use_the_jobs_field(repo: &dyn TaskRepository, field: crate::JobsField) {
    let check = "new_records_use_the_jobs_field";
    let named = |record: &TaskRecord| record.jobs_field();
    let saved = ok(repo.save(new_record("cf-jf-1", "cf-jf", "u")).await, check);
    assert_eq!(named(&saved), field.as_str(), "{check}: save");
    assert_eq!(
        named(&fetch(repo, "cf-jf-1", check).await),
        field.as_str(),
        "{check}"
    );
    ok(
        repo.create(new_record("cf-jf-2", "cf-jf", "u")).await,
        check,
    );
    let jobs = strings(&["slurm-1"]);
    let updated = some(repo.set_jobs("cf-jf-2", &jobs).await, check, "cf-jf-2");
    assert_eq!(named(&updated), field.as_str(), "{check}: set_jobs");
    assert_eq!(updated.jobs, jobs, "{check}");
    for (id, name) in [("cf-jf-3", "jobs"), ("cf-jf-4", "active_jobs")] {
        let json = format!(
            r#"{{"task_id":"{id}","service":"cf-jf","user_id":"u","status":"pending","{name}":["a"]}}"#
        );
        let record = ok(TaskRecord::from_json(&json), check);
        ok(repo.save(record).await, check);
        let updated = some(repo.set_jobs(id, &jobs).await, check, id);
        assert_eq!(named(&updated), name, "{check}: a record keeps its name");
        assert_eq!(updated.jobs, jobs, "{check}");
    }
}
