//! What the checks share: records to start from, assertions that name the check, and
//! listings read through every method and checked for order.

use std::fmt::Debug;

use crate::{
    compare_task_ids, Error, LogEntry, Result, Scope, TaskRecord, TaskRepository, TaskStatus,
    TaskTime,
};

pub(super) const PARAMETERS: &str = r#"{"ratio":0.30000000000000004,"big":12345678901234567890,"tiny":-1e-300,"nested":{"a":[1,[2,{"b":null}]],"c":{"d":"e"}},"empty_list":[],"empty_map":{},"text":"한국어 ✓ \"quoted\" \\ back","huge":123456789012345678901234567890}"#;

pub(super) const EXTRA: &str =
    r#""owner_team":{"name":"vision","ids":[1,2.50]},"retry_policy":null,"labels":["a","ü"]"#;

/// The ids as owned strings.
pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) fn parameters(json: &str) -> crate::RawMap {
    json.parse().expect("the check's own parameters parse")
}

/// A time long before any test runs, so that a stamped `updated_at` differs from it.
pub(super) fn old_time() -> TaskTime {
    "2001-02-03T04:05:06.789012+09:00"
        .parse()
        .expect("valid timestamp")
}

pub(super) fn new_record(task_id: &str, service: &str, user_id: &str) -> TaskRecord {
    TaskRecord::new_at(task_id, service, user_id, TaskStatus::Pending, old_time())
}

#[track_caller]
pub(super) fn ok<T>(result: Result<T>, check: &str) -> T {
    result.unwrap_or_else(|e| panic!("{check}: unexpected error: {e} ({e:?})"))
}

#[track_caller]
pub(super) fn some(result: Result<Option<TaskRecord>>, check: &str, task_id: &str) -> TaskRecord {
    ok(result, check).unwrap_or_else(|| panic!("{check}: {task_id} should exist"))
}

#[track_caller]
pub(super) fn assert_invalid<T: Debug>(result: Result<T>, what: &str) {
    assert!(
        matches!(result, Err(Error::InvalidInput { .. })),
        "{what}: expected Error::InvalidInput, got {result:?}"
    );
}

#[track_caller]
pub(super) fn assert_conflict(
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
pub(super) fn assert_stamped(before: &TaskRecord, after: &TaskRecord, check: &str) {
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
pub(super) fn assert_log_entry(entry: &str, message: &str, check: &str) {
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
pub(super) fn assert_kept(record: &TaskRecord, after: &str, check: &str) {
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

pub(super) async fn saved(
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
pub(super) async fn resave_as(
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

pub(super) async fn fetch(repo: &dyn TaskRepository, task_id: &str, check: &str) -> TaskRecord {
    ok(repo.get(task_id).await, check).unwrap_or_else(|| panic!("{check}: {task_id} should exist"))
}

/// `get` returns exactly `record`.
pub(super) async fn assert_stored(repo: &dyn TaskRepository, record: &TaskRecord, check: &str) {
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
pub(super) async fn assert_unchanged(repo: &dyn TaskRepository, before: &TaskRecord, check: &str) {
    let now = fetch(repo, &before.task_id, check).await;
    assert_eq!(
        now.to_json(),
        before.to_json(),
        "{check}: the record changed although nothing should have been written"
    );
}

pub(super) fn service(service: &str) -> Scope {
    Scope::Service(service.to_owned())
}

pub(super) fn service_user(service: &str, user_id: &str) -> Scope {
    Scope::ServiceUser {
        service: service.to_owned(),
        user_id: user_id.to_owned(),
    }
}

pub(super) fn user_scope(user_id: &str) -> Scope {
    Scope::User(user_id.to_owned())
}

pub(super) fn every_scope(s: &str, u: &str) -> [Scope; 4] {
    [Scope::All, service(s), service_user(s, u), user_scope(u)]
}

/// The ids of one listing read through its named method (`list_all`, `list_by_service`,
/// ...), checked against `list_ids` and for order, and every record checked to belong there.
pub(super) async fn listing(repo: &dyn TaskRepository, scope: &Scope, check: &str) -> Vec<String> {
    listing_and_index(repo, scope, check).await.0
}

/// [`listing`], and the ids of `list_ids`.
pub(super) async fn listing_and_index(
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

pub(super) async fn users(repo: &dyn TaskRepository, service: &str, check: &str) -> Vec<String> {
    ok(repo.list_users_by_service(service).await, check)
}

/// The task is in the four listings of its service and user.
pub(super) async fn assert_placed(
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

pub(super) async fn assert_absent_from(
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
