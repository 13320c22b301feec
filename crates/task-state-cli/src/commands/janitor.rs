//! `janitor`: the expiry listener and the reconciler in the foreground until SIGINT or
//! SIGTERM.

use std::time::Duration;

use task_state_redis::{Janitor, JanitorOptions, RedisTaskRepository};

use crate::failure::Failure;

/// Runs until a signal, logging the counters every `stats_interval`, then stops cleanly
/// and logs them once more.
pub(crate) async fn run(
    repo: &RedisTaskRepository,
    reconcile_interval: Duration,
    allow_missing_notifications: bool,
    stats_interval: Duration,
) -> Result<(), Failure> {
    let janitor = start(repo, reconcile_interval, allow_missing_notifications).await?;
    tracing::info!(
        write_url = %repo.settings().write_url(),
        reconcile_interval_s = reconcile_interval.as_secs(),
        "janitor running: cleaning expired tasks' index entries"
    );
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + stats_interval, stats_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = wait_for_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = ticks.tick() => log_counters(&janitor, "janitor counters"),
        }
    }
    tracing::info!("stopping");
    log_counters(&janitor, "janitor stopped");
    janitor.stop().await;
    Ok(())
}

/// The janitor on `repo` as the flags `--reconcile-interval` and
/// `--allow-missing-notifications` ask, for `janitor` and `console --janitor`.
pub(super) async fn start(
    repo: &RedisTaskRepository,
    reconcile_interval: Duration,
    allow_missing_notifications: bool,
) -> Result<Janitor, task_state_core::Error> {
    let options = JanitorOptions {
        require_notifications: !allow_missing_notifications,
        reconcile_interval,
        ..JanitorOptions::default()
    };
    Janitor::start(repo.clone(), options).await
}

/// One line with every counter, totals since the start.
fn log_counters(janitor: &Janitor, what: &str) {
    let stats = janitor.stats();
    let sweeps = janitor.reconcile_stats();
    tracing::info!(
        messages = stats.messages,
        task_messages = stats.task_messages,
        cleanups = stats.cleanups,
        metadata_missing = stats.metadata_missing,
        failures = stats.failures,
        reconnects = stats.reconnects,
        sweeps = sweeps.runs,
        swept = sweeps.members_removed,
        "{what}"
    );
}

pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
