//! A small HTTP service on the task store, as the DMS frontend runs one with FastAPI: the
//! provider starts with the server (connects, checks keyspace notifications, starts the
//! expiry listener and the reconciler) and closes after a graceful shutdown on SIGINT or
//! SIGTERM.
//!
//! ```text
//! DMS_REDIS_WRITE_URL=redis://127.0.0.1:6379/0 cargo run --example service
//! curl -s localhost:8080/healthz
//! curl -s -XPOST localhost:8080/tasks -H 'content-type: application/json' \
//!      -d '{"service":"render","user_id":"alice","parameters":{"frames":240}}'
//! curl -s localhost:8080/tasks/1
//! curl -s localhost:8080/admin/metrics
//! ```
//!
//! `DMS_SERVICE_ADDR` sets the address (default `127.0.0.1:8080`). Without
//! `DMS_REDIS_WRITE_URL` it refuses to start: a service never falls back to memory.

mod app;

use std::sync::Arc;

use task_state::redis::{RedisRepositoryProvider, RedisRepositorySettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    let provider = Arc::new(RedisRepositoryProvider::new(
        RedisRepositorySettings::from_env()?,
    ));
    let addr = std::env::var("DMS_SERVICE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    app::run(listener, provider, shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes and systemd send).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
