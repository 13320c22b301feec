//! The concurrency checks, shared by the single-node tests (`concurrency.rs`) and the
//! cluster tests (`cluster.rs`): each takes a repository to read with and writers on
//! connections of their own.

use std::sync::Arc;

use futures::future::join_all;
use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::RedisTaskRepository;

/// 16 writers append 200 lines each to one task, half with `append_log`, half with
/// `append_logs`: all 3,200 lines are there, each writer's in its order.
pub async fn sixteen_writers_keep_all_3200_lines_in_order(
    repo: &RedisTaskRepository,
    writers: Vec<RedisTaskRepository>,
) {
    assert_eq!(writers.len(), 16);
    repo.save(TaskRecord::new("1", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    let tasks = writers.into_iter().enumerate().map(|(w, writer)| {
        tokio::spawn(async move {
            for i in 0..200 {
                // Half single appends that return the record, half lean ones.
                if i % 2 == 0 {
                    writer
                        .append_log("1", &format!("w{w} line {i}"))
                        .await
                        .unwrap()
                        .unwrap();
                } else {
                    assert!(writer
                        .append_logs("1", &[format!("w{w} line {i}")])
                        .await
                        .unwrap());
                }
            }
        })
    });
    for task in join_all(tasks).await {
        task.unwrap();
    }
    let record = repo.get("1").await.unwrap().unwrap();
    assert_eq!(record.logs.len(), 3200);
    for w in 0..16 {
        let prefix = format!("w{w} line ");
        let mine: Vec<usize> = record
            .log_entries()
            .filter_map(|e| e.message.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
            .collect();
        assert_eq!(mine, (0..200).collect::<Vec<_>>(), "writer {w}");
    }
}

/// Two writers set different result fields of the same 100 tasks: both fields stay.
pub async fn two_writers_keep_both_result_fields_on_100_tasks(
    repo: &RedisTaskRepository,
    a: RedisTaskRepository,
    b: RedisTaskRepository,
) {
    for i in 0..100 {
        repo.save(TaskRecord::new(
            i.to_string(),
            "s",
            "u",
            TaskStatus::Running,
        ))
        .await
        .unwrap();
    }
    let pods = tokio::spawn(async move {
        for i in 0..100 {
            a.update_result(&i.to_string(), Some(&format!("pod {i}")), None)
                .await
                .unwrap();
        }
    });
    let outputs = tokio::spawn(async move {
        for i in 0..100 {
            b.update_result(&i.to_string(), None, Some(&format!("output {i}")))
                .await
                .unwrap();
        }
    });
    pods.await.unwrap();
    outputs.await.unwrap();
    let list = repo.list_all().await.unwrap();
    assert_eq!(list.records.len(), 100);
    for record in list.records {
        let i = &record.task_id;
        assert_eq!(record.result.pod_status, Some(format!("pod {i}")));
        assert_eq!(record.result.launcher_output, Some(format!("output {i}")));
    }
}

/// In 5 rounds, 8 writers race to cancel a running task conditionally: exactly one wins
/// (and logs), the others get `Conflict` naming the new status.
pub async fn exactly_one_concurrent_transition_wins(
    repo: &RedisTaskRepository,
    writers: Vec<RedisTaskRepository>,
) {
    assert_eq!(writers.len(), 8);
    let writers = Arc::new(writers);
    for round in 0..5 {
        let id = format!("t{round}");
        repo.save(TaskRecord::new(id.as_str(), "s", "u", TaskStatus::Running))
            .await
            .unwrap();
        let attempts = (0..writers.len()).map(|w| {
            let id = id.clone();
            let writers = writers.clone();
            tokio::spawn(async move {
                writers[w]
                    .transition(
                        &id,
                        &[TaskStatus::Running],
                        TaskStatus::CancelRequested,
                        Some(&format!("cancel by {w}")),
                    )
                    .await
            })
        });
        let results: Vec<_> = join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let wins = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
        let conflicts = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(Error::Conflict {
                        current: TaskStatus::CancelRequested,
                        ..
                    })
                )
            })
            .count();
        assert_eq!((wins, conflicts), (1, 7), "{results:?}");
        let record = repo.get(&id).await.unwrap().unwrap();
        assert_eq!(record.status, TaskStatus::CancelRequested);
        assert_eq!(record.logs.len(), 1, "only the winner logs");
    }
}
