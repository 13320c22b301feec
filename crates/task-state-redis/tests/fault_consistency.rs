//! Faults in the middle of a stream of mutations: every mutation either completed or
//! returned an error, none is half applied (the consistency check finds nothing), and the
//! repository and the expiry listener recover by themselves.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip_with, RedisServer};
use task_state_redis::{
    check, CheckOptions, Janitor, JanitorOptions, RedisRepositorySettings, RedisTaskRepository,
};

async fn repository(server: &RedisServer, ttl: u64) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_ttl_seconds(ttl)
        .with_command_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings).await.unwrap()
}

/// Mutates 40 tasks (moving them between services and users, logging, deleting) until told
/// to stop; returns (successes, errors).
fn mutation_stream(
    repo: RedisTaskRepository,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let id = (i % 40).to_string();
            let outcome = match i % 5 {
                0 | 1 => repo
                    .save(TaskRecord::new(
                        id.as_str(),
                        format!("s{}", i % 3),
                        format!("u{}", i % 4),
                        TaskStatus::Pending,
                    ))
                    .await
                    .map(|_| ()),
                2 => repo
                    .append_logs(&id, &[format!("line {i}")])
                    .await
                    .map(|_| ()),
                3 => repo
                    .set_status(&id, TaskStatus::Running, Some("go"))
                    .await
                    .map(|_| ()),
                _ => repo.delete(&id).await.map(|_| ()),
            };
            match outcome {
                Ok(()) => ok += 1,
                Err(_) => {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            i += 1;
        }
        (ok, failed)
    })
}

async fn assert_consistent(repo: &RedisTaskRepository) {
    // The repository must have reconnected by now.
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        match check(repo, CheckOptions::default(), |_| {}).await {
            Ok(report) => break report,
            Err(e) if Instant::now() < deadline => {
                eprintln!("check not possible yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no reconnection: {e}"),
        }
    };
    assert!(report.records > 0, "{report:?}");
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.unreadable, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_in_the_middle_leave_nothing_half_applied() {
    let Some(mut server) = server_or_skip_with(&["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let repo = repository(&server, 3600).await;
    let stop = Arc::new(AtomicBool::new(false));
    let stream = mutation_stream(repo.clone(), stop.clone());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.restart().unwrap(); // SIGKILL, then start again on the same data
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = stream.await.unwrap();
    assert!(
        ok > 50,
        "the stream made progress: {ok} ok, {failed} failed"
    );
    assert_consistent(&repo).await;
    repo.save(TaskRecord::new("after", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_leave_nothing_half_applied() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = repository(&server, 3600).await;
    let short = repository(&server, 1).await;
    let listener = Janitor::start(
        short.clone(),
        JanitorOptions {
            reconcile_interval: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = mutation_stream(repo.clone(), stop.clone());
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, _failed) = stream.await.unwrap();
    assert!(ok > 50, "the stream made progress: {ok}");
    assert_consistent(&repo).await;

    // The listener came back and still cleans expired tasks.
    let deadline = Instant::now() + Duration::from_secs(5);
    while listener.stats().reconnects == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listener.stats().reconnects >= 1, "{:?}", listener.stats());
    short
        .save(TaskRecord::new("brief", "s0", "u0", TaskStatus::Pending))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while listener.stats().cleanups == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = listener.stats();
    assert_eq!((stats.task_messages, stats.cleanups), (1, 1), "{stats:?}");
    assert_eq!(server.cli(&["EXISTS", "task:brief:metadata"]), "0");
    listener.stop().await;
}
