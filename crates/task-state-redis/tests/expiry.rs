//! Tasks that really expire: the listener cleans their index entries, and the reconciler
//! catches what the listener missed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::connect;
use task_state_core::{Error, Scope, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip, server_or_skip_with};
use task_state_redis::{
    reconcile, Janitor, JanitorOptions, RedisRepositorySettings, RedisTaskRepository,
};

async fn short_lived(url: &str) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(url)
        .with_ttl_seconds(1)
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings).await.unwrap()
}

/// Saves `count` tasks ("0", "1", ...) that expire after 1 s, then one long-lived task
/// ("keep") of the same service and user, saved last with the default TTL, which keeps the
/// index sets themselves alive. Returns the short-lived repository.
async fn expiring_tasks(url: &str, count: usize) -> RedisTaskRepository {
    let repo = short_lived(url).await;
    let saves = (0..count).map(|i| {
        let repo = repo.clone();
        async move {
            repo.save(TaskRecord::new(
                i.to_string(),
                "s",
                "u",
                TaskStatus::Running,
            ))
            .await
            .unwrap()
        }
    });
    futures::future::join_all(saves).await;
    let long = RedisTaskRepository::connect(
        RedisRepositorySettings::builder()
            .with_write_url(url)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    long.save(TaskRecord::new("keep", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    repo
}

async fn index_members(repo: &RedisTaskRepository) -> usize {
    let mut n = 0;
    for scope in [
        Scope::All,
        Scope::Service("s".into()),
        Scope::ServiceUser {
            service: "s".into(),
            user_id: "u".into(),
        },
        Scope::User("u".into()),
    ] {
        n += repo.list_ids(&scope).await.unwrap().len();
    }
    n + repo.list_users_by_service("s").await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_cleans_expired_tasks_within_a_second() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = short_lived(&server.url()).await;
    let options = JanitorOptions {
        reconcile_interval: Duration::ZERO,
        ..Default::default()
    };
    let listener = Janitor::start(repo.clone(), options).await.unwrap();
    let repo = expiring_tasks(&server.url(), 5).await;
    assert_eq!(index_members(&repo).await, 6 * 4 + 1);
    // Records expire after 1 s; Redis reports an expiry within ~100 ms of it (active
    // cycle), and the cleanup must follow within a second.
    let expired_at = Instant::now() + Duration::from_secs(1);
    while listener.stats().cleanups < 5 && Instant::now() < expired_at + Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = Instant::now().saturating_duration_since(expired_at);
    assert!(
        late < Duration::from_millis(1200),
        "cleaned {late:?} after expiry"
    );
    assert_eq!(
        index_members(&repo).await,
        4 + 1,
        "only the long-lived task is left"
    );
    assert_eq!(repo.list_ids(&Scope::All).await.unwrap(), ["keep"]);
    let stats = listener.stats();
    assert_eq!(stats.task_messages, 5, "{stats:?}");
    assert_eq!(stats.cleanups, 5, "{stats:?}");
    assert_eq!(stats.failures, 0);
    assert!(stats.last_message_at.is_some());
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_cleans_what_no_listener_saw() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let repo = expiring_tasks(&server.url(), 5).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let removed = reconcile(&repo).await.unwrap();
    assert_eq!(removed, 5 * 4, "task ids from the four task indexes");
    assert_eq!(repo.list_ids(&Scope::All).await.unwrap(), ["keep"]);
    assert_eq!(repo.list_users_by_service("s").await.unwrap(), ["u"]);
    repo.delete("keep").await.unwrap();
    assert_eq!(index_members(&repo).await, 0);
}

#[tokio::test]
async fn keyspace_events_must_be_on_unless_told_otherwise() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let repo = short_lived(&server.url()).await;
    let err = Janitor::start(repo.clone(), JanitorOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("notify-keyspace-events")),
        "{err:?}"
    );
    let listener = Janitor::start(
        repo,
        JanitorOptions {
            require_notifications: false,
            reconcile_interval: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_resumes_after_a_restart() {
    let Some(mut server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = short_lived(&server.url()).await;
    let listener = Janitor::start(
        repo.clone(),
        JanitorOptions {
            reconcile_interval: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while listener.stats().reconnects == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listener.stats().reconnects >= 1);
    let mut saved = false;
    for _ in 0..50 {
        if repo
            .save(TaskRecord::new("1", "s", "u", TaskStatus::Running))
            .await
            .is_ok()
        {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved);
    let deadline = Instant::now() + Duration::from_secs(4);
    while listener.stats().cleanups == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listener.stats().cleanups, 1, "{:?}", listener.stats());
    assert_eq!(index_members(&repo).await, 0);
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_falls_behind_says_so_and_sweeps() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let repo = short_lived(&server.url()).await;
    // A buffer of 4 events for a burst of 400 expiries: it must overflow.
    let options = JanitorOptions {
        reconcile_interval: Duration::from_secs(3600),
        event_buffer: 4,
        ..Default::default()
    };
    let listener = Janitor::start(repo.clone(), options).await.unwrap();
    // The sweep at start, on an empty store, before the burst.
    let deadline = Instant::now() + Duration::from_secs(10);
    while listener.reconcile_stats().runs == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listener.reconcile_stats().runs, 1, "one sweep at start");
    let repo = expiring_tasks(&server.url(), 400).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while repo.list_ids(&Scope::All).await.unwrap().len() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(repo.list_ids(&Scope::All).await.unwrap(), ["keep"]);
    let stats = listener.stats();
    assert!(stats.lagged > 0, "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("fell behind"),
        "{stats:?}"
    );
    // The sweep runs beside the listener and counts itself when it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while listener.reconcile_stats().runs < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sweeps = listener.reconcile_stats();
    assert!(sweeps.runs >= 2, "a lag triggers a sweep: {sweeps:?}");
    assert_eq!(index_members(&repo).await, 4 + 1);
    listener.stop().await;
}

/// The reconciler prunes an index page by page (each SSCAN page followed by its prune
/// script), never holding the whole set.
#[tokio::test]
async fn the_reconciler_prunes_a_set_page_by_page() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let repo = connect(&server).await;
    // Loaded up front, so that MONITOR does not show a NOSCRIPT retry.
    repo.load_scripts().await.unwrap();
    let ghosts: Vec<String> = (0..2_000).map(|i| format!("ghost{i}")).collect();
    let mut args = vec!["SADD", "index:tasks"];
    args.extend(ghosts.iter().map(String::as_str));
    server.cli(&args);

    // MONITOR shows the order of the commands: an SSCAN page, its prune script, the next
    // page, ... rather than every page first.
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "MONITOR"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    assert_eq!(reconcile(&repo).await.unwrap(), 2_000);
    server.cli(&["ECHO", "reconciled"]);
    let mut order = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for line in lines {
        let line = line.unwrap();
        if line.contains("\"reconciled\"") || Instant::now() > deadline {
            break;
        }
        let upper = line.to_ascii_uppercase();
        if upper.contains("\"SSCAN\"") {
            order.push('s');
        } else if upper.contains("\"EVALSHA\"") || upper.contains("\"FCALL\"") {
            order.push('e');
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let order: String = order.into_iter().collect();
    assert!(order.len() >= 4, "several pages: {order}");
    assert!(order.starts_with("se"), "{order}");
    assert!(
        !order.contains("ee"),
        "one prune script after each page: {order}"
    );
    assert_eq!(server.cli(&["SCARD", "index:tasks"]), "0");
}
