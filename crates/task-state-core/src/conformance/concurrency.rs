//! Checks of concurrent writers to one task: no write is lost, one transition wins.

use futures::future::join_all;

use super::support::*;
use crate::{Error, LogEntry, TaskRepository, TaskStatus};

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
