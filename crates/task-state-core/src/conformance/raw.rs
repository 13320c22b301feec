//! Checks on records that another writer left, planted with [`RawRecords`]: empty records,
//! missing timestamps, values kept as text.

use super::support::*;
use super::RawRecords;
use crate::{Error, Result, Scope, TaskRecord, TaskRepository, TaskStatus};

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

/// A task whose record key holds an empty string is missing for every mutation, as for
/// `get`: each answers as for a task that does not exist (`None`, `false`) and the key is left
/// as it was, `append_logs` of no message included; `create` takes the id.
pub async fn empty_stored_record_is_absent_to_mutations(
    repo: &dyn TaskRepository,
    raw: &dyn RawRecords,
) {
    const CHECK: &str = "empty_stored_record_is_absent_to_mutations";
    let id = "cf-raw-blank";
    raw.plant_raw(id, "").await;
    let none: Vec<(&str, Result<Option<TaskRecord>>)> = vec![
        ("append_log", repo.append_log(id, "x").await),
        (
            "set_status",
            repo.set_status(id, TaskStatus::Failed, Some("x")).await,
        ),
        (
            "transition",
            repo.transition(id, &[TaskStatus::Running], TaskStatus::Failed, None)
                .await,
        ),
        (
            "update_result",
            repo.update_result(id, Some("x"), None).await,
        ),
        ("set_jobs", repo.set_jobs(id, &["j".to_owned()]).await),
    ];
    for (operation, outcome) in none {
        assert!(
            matches!(outcome, Ok(None)),
            "{CHECK}: {operation} on an empty stored string must be Ok(None), got {outcome:?}"
        );
    }
    for messages in [Vec::new(), vec!["x".to_owned()]] {
        let appended = repo.append_logs(id, &messages).await;
        assert!(
            matches!(appended, Ok(false)),
            "{CHECK}: append_logs of {} messages on an empty stored string must be Ok(false), \
             got {appended:?}",
            messages.len()
        );
    }
    assert!(
        matches!(repo.get(id).await, Ok(None)),
        "{CHECK}: no mutation may have made a record of the empty string"
    );
    let created = repo
        .create(TaskRecord::new(
            id,
            "cf-blank-s",
            "cf-blank-u",
            TaskStatus::Pending,
        ))
        .await;
    assert!(
        matches!(created, Ok(ref record) if record.task_id == id),
        "{CHECK}: create must take the id of an empty stored string, got {created:?}"
    );
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

    lone_surrogates_where_decoded_are_refused(repo, raw, id, &record).await;
}

/// `record` (planted as `id`) with a lone surrogate escape where the model decodes a string is
/// [`Error::Decode`] for `get` and `append_log`, and the refused `append_log` writes nothing.
async fn lone_surrogates_where_decoded_are_refused(
    repo: &dyn TaskRepository,
    raw: &dyn RawRecords,
    id: &str,
    record: &str,
) {
    const CHECK: &str = "values_kept_as_text_hold_any_json";
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
