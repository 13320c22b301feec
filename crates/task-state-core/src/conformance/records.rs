//! Checks of the whole record: ids, save, create, delete and moves between listings, the
//! job list, and mutations of missing tasks.

use futures::future::join_all;

use super::support::*;
use crate::{Error, Scope, TaskRecord, TaskRepository, TaskStatus};

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

/// Records made with [`TaskRecord::new`] (or read without a job list) are stored with the job
/// list named as the repository is configured (`field`: `DMS_TASK_JOBS_FIELD`), by `save` and
/// `create` alike, and keep that name through `set_jobs`; a record that already names its
/// list `jobs` or `active_jobs` keeps that name whatever the setting.
///
/// Not in [`run_all`](super::run_all): it needs to know the repository's setting. Run it once per setting.
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
