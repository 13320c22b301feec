//! The provider's lifecycle on private servers: the notification check, the first sweep at
//! start-up, close and reconnect, the health check, the runtime status; and a repository on
//! pools the application built.

use std::time::{Duration, Instant};

use fred::prelude::{Builder, ClientLike, Config};
use task_state_core::{Error, Scope, TaskRecord, TaskRepository, TaskStatus, Zone};
use task_state_redis::testing::{server_or_skip_with, RedisServer};
use task_state_redis::{
    NotificationCheck, RedisRepositoryProvider, RedisRepositorySettings,
    RedisRepositorySettingsBuilder, RedisTaskRepository,
};

fn builder(server: &RedisServer) -> RedisRepositorySettingsBuilder {
    RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_connect_timeout(Duration::from_secs(2))
        .with_command_timeout(Duration::from_secs(2))
}

fn provider(server: &RedisServer) -> RedisRepositoryProvider {
    RedisRepositoryProvider::new(builder(server).build().unwrap())
}

/// Polls `done` every 50 ms for up to `limit`.
async fn eventually(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done().await
}

#[tokio::test]
async fn notifications_are_required_unless_relaxed() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let strict = provider(&server);
    let err = strict.start().await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("notify-keyspace-events")
            && m.contains("DMS_REDIS_REQUIRE_KEYEVENT_NOTIFICATIONS")),
        "{err:?}"
    );
    let status = strict.runtime_status().await;
    assert!(!status.connected, "nothing stays open after the refusal");
    assert!(status.listener.is_none());

    let relaxed = RedisRepositoryProvider::new(
        builder(&server)
            .with_require_keyevent_notifications(false)
            .build()
            .unwrap(),
    );
    relaxed.start().await.unwrap();
    let status = relaxed.runtime_status().await;
    assert!(
        matches!(status.notifications, NotificationCheck::Missing { ref reason } if reason.contains("notify-keyspace-events")),
        "{status:?}"
    );
    assert!(!status.notifications_required);
    assert!(status.listener.is_some(), "the listener runs all the same");
    relaxed.close().await;

    server.cli(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    let strict = provider(&server);
    strict.start().await.unwrap();
    assert_eq!(
        strict.runtime_status().await.notifications,
        NotificationCheck::Enabled
    );
    strict.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sweep_runs_at_start_up() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    // Index entries of a task whose record is gone, as a missed expiry event leaves them.
    server.cli(&["SADD", "index:tasks", "ghost", "kept"]);
    server.cli(&["SADD", "index:user:u", "ghost"]);
    server.cli(&["SET", "task:kept", "{}"]);
    let provider = RedisRepositoryProvider::new(
        builder(&server)
            .with_reconcile_interval(Duration::from_secs(3600))
            .build()
            .unwrap(),
    );
    let repo = provider.start().await.unwrap();
    let swept = eventually(Duration::from_secs(10), async || {
        provider
            .runtime_status()
            .await
            .reconciler
            .is_some_and(|r| r.runs >= 1)
    })
    .await;
    assert!(swept, "a sweep at start-up, not after an hour");
    let status = provider.runtime_status().await.reconciler.unwrap();
    assert_eq!(status.members_removed, 2, "{status:?}");
    assert_eq!(status.interval_seconds, 3600);
    assert_eq!(status.last_error, None);
    assert_eq!(repo.list_ids(&Scope::All).await.unwrap(), ["kept"]);
    assert_eq!(server.cli(&["EXISTS", "index:user:u"]), "0");
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sweep_is_reported_until_one_succeeds() {
    let Some(mut server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let provider = RedisRepositoryProvider::new(
        builder(&server)
            .with_reconcile_interval(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    provider.start().await.unwrap();
    let reconciler = async || provider.runtime_status().await.reconciler.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || reconciler().await.runs
            >= 1)
        .await
    );
    server.kill();
    let failed = eventually(Duration::from_secs(15), async || {
        reconciler().await.last_error.is_some()
    })
    .await;
    assert!(failed, "{:?}", reconciler().await);
    server.restart().unwrap();
    server.cli(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    let cleared = eventually(Duration::from_secs(20), async || {
        reconciler().await.last_error.is_none()
    })
    .await;
    assert!(
        cleared,
        "a good sweep clears last_error: {:?}",
        reconciler().await
    );
    provider.close().await;
}

#[tokio::test]
async fn close_then_repository_connects_afresh() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let provider = provider(&server);
    let old = provider.start().await.unwrap();
    old.save(TaskRecord::new("1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    assert!(provider.runtime_status().await.connected);
    provider.close().await;
    let status = provider.runtime_status().await;
    assert!(!status.connected && status.listener.is_none() && status.reconciler.is_none());
    assert!(
        matches!(old.get("1").await, Err(Error::Backend { .. })),
        "a repository handed out before close is closed"
    );

    let new = provider.repository().await.unwrap();
    assert_eq!(new.get("1").await.unwrap().unwrap().task_id, "1");
    assert!(provider.runtime_status().await.connected);
    assert!(
        provider.runtime_status().await.listener.is_none(),
        "repository() alone starts no listener"
    );
    provider.start().await.unwrap();
    assert!(provider.runtime_status().await.listener.is_some());
    provider.close().await;
}

#[tokio::test]
async fn ping_fails_with_a_backend_error_once_the_server_is_gone() {
    let Some(mut server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let provider = provider(&server);
    provider.start().await.unwrap();
    provider.ping().await.unwrap();
    server.kill();
    let started = Instant::now();
    let err = provider.ping().await.unwrap_err();
    assert!(
        matches!(err, Error::Backend { ref message, .. } if message.contains("writer")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "within the command timeout"
    );
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_status_serializes_with_the_counters() {
    let Some(server) = server_or_skip_with(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    let provider = provider(&server);
    provider.start().await.unwrap();
    let short = RedisTaskRepository::connect(builder(&server).with_ttl_seconds(1).build().unwrap())
        .await
        .unwrap();
    short
        .save(TaskRecord::new("1", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    let cleaned = eventually(Duration::from_secs(5), async || {
        provider
            .runtime_status()
            .await
            .listener
            .is_some_and(|l| l.cleanups == 1)
    })
    .await;
    assert!(cleaned, "{:?}", provider.runtime_status().await);
    let json = serde_json::to_value(provider.runtime_status().await).unwrap();
    assert_eq!(json["connected"], true);
    assert_eq!(json["notifications"]["state"], "enabled");
    assert_eq!(json["listener"]["cleanups"], 1, "{json}");
    assert_eq!(json["listener"]["task_messages"], 1, "{json}");
    assert!(json["listener"]["last_message_at"].is_string(), "{json}");
    assert_eq!(json["reconciler"]["interval_seconds"], 300, "{json}");
    assert!(json["reconciler"]["runs"].as_u64().unwrap() >= 1, "{json}");
    short.close().await;
    provider.close().await;
}

#[tokio::test]
async fn a_repository_on_the_applications_pools() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}/3", server.port());
    let pool = Builder::from_config(Config::from_url(&url).unwrap())
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap();
    let repo =
        RedisTaskRepository::from_pools(pool.clone(), pool, 120, Zone::named("UTC").unwrap())
            .unwrap();
    assert_eq!(repo.settings().write_url().to_string(), url);
    assert_eq!(repo.settings().ttl_seconds(), 120);
    let saved = repo
        .save(TaskRecord::new("9", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    assert!(saved.updated_at.to_string().ends_with("+00:00"), "UTC");
    assert_eq!(server.cli(&["-n", "3", "TTL", "task:9"]), "120");
    assert!(repo.get("9").await.unwrap().is_some());
    assert!(matches!(
        RedisTaskRepository::from_pools(
            repo.raw_reader().clone(),
            repo.raw_writer().clone(),
            0,
            Zone::utc()
        ),
        Err(Error::Config(_))
    ));
    repo.close().await;
}
