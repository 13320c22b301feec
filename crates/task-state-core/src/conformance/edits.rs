//! Checks of the edits of one field: status and transitions, log lines, the result.

use super::support::*;
use crate::{TaskRepository, TaskStatus};

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
/// entry) and returns the record; otherwise it fails with [`Error::Conflict`](crate::Error::Conflict) carrying the
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

/// `transition` with an empty `from` is [`Error::InvalidInput`](crate::Error::InvalidInput) and changes nothing.
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
