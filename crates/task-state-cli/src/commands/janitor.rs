//! `janitor`: the expiry listener and the reconciler in the foreground until SIGINT or
//! SIGTERM.

use std::time::Duration;

use task_state_redis::{ExpiryListener, ExpiryOptions, RedisTaskRepository};

use crate::failure::Failure;

/// Runs until a signal, then stops cleanly and logs the counters.
pub(crate) async fn run(
    repo: &RedisTaskRepository,
    reconcile_interval: Duration,
    allow_missing_notifications: bool,
) -> Result<(), Failure> {
    let options = ExpiryOptions {
        require_notifications: !allow_missing_notifications,
        reconcile_interval,
        ..ExpiryOptions::default()
    };
    let listener = ExpiryListener::start(repo.clone(), options).await?;
    tracing::info!(
        write_url = %repo.settings().write_url(),
        reconcile_interval_s = reconcile_interval.as_secs(),
        "janitor running: cleaning expired tasks' index entries"
    );
    wait_for_signal().await;
    tracing::info!("stopping");
    let stats = listener.stats();
    let sweeps = listener.reconcile_stats();
    listener.stop().await;
    tracing::info!(
        messages = stats.messages,
        task_messages = stats.task_messages,
        cleanups = stats.cleanups,
        metadata_missing = stats.metadata_missing,
        failures = stats.failures,
        reconnects = stats.reconnects,
        sweeps = sweeps.runs,
        swept = sweeps.members_removed,
        "janitor stopped"
    );
    Ok(())
}

async fn wait_for_signal() {
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
