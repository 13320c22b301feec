//! The janitor: the expiry listener and the reconciler composed once. It cleans an expired
//! task's indexes from the notification, its sweep catches a task whose notification was
//! missed, and it stops when asked.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::connect;
use task_state_core::{layout, Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip_with, RedisServer};
use task_state_redis::{Janitor, JanitorOptions, NotificationCheck, RedisTaskRepository};

/// How many of the task's five index entries are there (four id sets and the service's
/// user set).
fn index_entries(server: &RedisServer, id: &str, service: &str, user: &str) -> usize {
    let sets = [
        (layout::TASK_INDEX.to_owned(), id),
        (layout::service_index(service), id),
        (layout::service_user_index(service, user), id),
        (layout::user_index(user), id),
        (layout::service_users(service), user),
    ];
    sets.iter()
        .filter(|(key, member)| server.cli(&["SISMEMBER", key, member]) == "1")
        .count()
}

/// Saves a running task of its own service and user, then makes its record expire now.
async fn expire(repo: &RedisTaskRepository, server: &RedisServer, id: &str) {
    let (service, user) = (format!("s-{id}"), format!("u-{id}"));
    repo.save(TaskRecord::new(id, &service, &user, TaskStatus::Running))
        .await
        .unwrap();
    assert_eq!(index_entries(server, id, &service, &user), 5);
    server.cli(&["PEXPIRE", &layout::record_key(id), "1"]);
}

/// Waits up to `limit` for `done`.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn cleaned(server: &RedisServer, id: &str) -> bool {
    index_entries(server, id, &format!("s-{id}"), &format!("u-{id}")) == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_cleans_an_expired_tasks_indexes() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = connect(&server).await;
    let options = JanitorOptions {
        reconcile_interval: Duration::ZERO,
        ..JanitorOptions::default()
    };
    let janitor = Janitor::start(repo.clone(), options).await.unwrap();
    assert_eq!(janitor.notifications(), &NotificationCheck::Enabled);
    assert_eq!(janitor.nodes(), 1);
    expire(&repo, &server, "1").await;
    assert!(
        eventually(Duration::from_secs(5), || cleaned(&server, "1")).await,
        "{:?}",
        janitor.stats()
    );
    let stats = janitor.stats();
    assert_eq!((stats.task_messages, stats.cleanups), (1, 1), "{stats:?}");
    assert_eq!(
        janitor.reconcile_stats().runs,
        0,
        "the listener alone cleaned it"
    );
    assert_eq!(server.cli(&["EXISTS", &layout::metadata_key("1")]), "0");
    janitor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_catches_a_task_whose_notification_was_missed() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = connect(&server).await;
    // Expired while no janitor listened: its event is lost.
    expire(&repo, &server, "missed").await;
    assert!(
        eventually(Duration::from_secs(5), || {
            server.cli(&["EXISTS", &layout::record_key("missed")]) == "0"
        })
        .await
    );
    assert!(!cleaned(&server, "missed"));
    let options = JanitorOptions {
        reconcile_interval: Duration::from_secs(3600),
        ..JanitorOptions::default()
    };
    let janitor = Janitor::start(repo.clone(), options).await.unwrap();
    // The id leaves its four sets; the user leaves the service's user set in the same sweep
    // only when SCAN happens to reach that set after the user's own index.
    let id_sets_clean = || {
        let in_sets = index_entries(&server, "missed", "s-missed", "u-missed");
        let user_listed =
            server.cli(&["SISMEMBER", &layout::service_users("s-missed"), "u-missed"]);
        in_sets == usize::from(user_listed == "1")
    };
    assert!(
        eventually(Duration::from_secs(10), || janitor.reconcile_stats().runs
            == 1)
        .await,
        "{:?}",
        janitor.reconcile_stats()
    );
    assert!(id_sets_clean(), "the sweep at start cleans it");
    let sweeps = janitor.reconcile_stats();
    assert!((4..=5).contains(&sweeps.members_removed), "{sweeps:?}");
    assert!(sweeps.last_run_at.is_some() && sweeps.last_error.is_none());
    assert_eq!(janitor.stats().cleanups, 0, "no event named it");
    janitor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_the_periodic_sweep_cleans_up() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let repo = connect(&server).await;
    let refused = Janitor::start(repo.clone(), JanitorOptions::default()).await;
    assert!(
        matches!(refused, Err(Error::Config(ref m)) if m.contains("notify-keyspace-events")),
        "{refused:?}"
    );
    let options = JanitorOptions {
        require_notifications: false,
        reconcile_interval: Duration::from_millis(300),
        ..JanitorOptions::default()
    };
    let janitor = Janitor::start(repo.clone(), options).await.unwrap();
    assert!(
        matches!(janitor.notifications(), NotificationCheck::Missing { reason } if reason.contains("notify-keyspace-events")),
        "{:?}",
        janitor.notifications()
    );
    expire(&repo, &server, "quiet").await;
    assert!(
        eventually(Duration::from_secs(10), || cleaned(&server, "quiet")).await,
        "{:?}",
        janitor.reconcile_stats()
    );
    assert!(janitor.reconcile_stats().runs >= 2);
    assert_eq!(janitor.stats().messages, 0);
    janitor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_stops_when_asked_even_while_shared() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = connect(&server).await;
    let options = JanitorOptions {
        reconcile_interval: Duration::from_millis(200),
        ..JanitorOptions::default()
    };
    let janitor = Arc::new(Janitor::start(repo.clone(), options).await.unwrap());
    let subscribers = || server.cli(&["PUBSUB", "NUMSUB", "__keyevent@0__:expired"]);
    assert!(subscribers().ends_with('1'), "{}", subscribers());
    let other_holder = janitor.clone();
    assert!(
        eventually(Duration::from_secs(5), || janitor.reconcile_stats().runs
            >= 1)
        .await
    );

    janitor.stop().await;
    let sweeps = janitor.reconcile_stats().runs;
    assert!(subscribers().ends_with('0'), "{}", subscribers());
    expire(&repo, &server, "after").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        index_entries(&server, "after", "s-after", "u-after"),
        5,
        "nothing cleans once stopped"
    );
    assert_eq!(janitor.reconcile_stats().runs, sweeps, "no sweep either");
    assert_eq!(janitor.stats().task_messages, 0);
    // A second stop, from the other holder, does nothing.
    other_holder.stop().await;
}
