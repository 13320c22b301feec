//! An operator console in the browser, and Prometheus metrics, for task-state.
//!
//! [`Console`] serves server-rendered pages (an overview, the task list, a task with its log
//! followed live, the users of a service, the consistency check), `/metrics` in the
//! Prometheus text format and `/healthz`, from any [`TaskRepository`]; on Redis it adds the
//! health check of both pools, the consistency check and, when the janitor runs in the same
//! process, its counters. Everything it serves is in the binary. Writes are off unless
//! [`ConsoleConfig::allow_writes`] is set, and then need an operator's token
//! ([`OperatorToken`], from `TASK_STATE_CONSOLE_TOKEN`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use task_state_console::{Backend, Console, ConsoleConfig};
//! use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
//!
//! let repo = RedisTaskRepository::connect(RedisRepositorySettings::from_env()?).await?;
//! let console = Console::new(ConsoleConfig::default(), Backend::redis(repo))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! console.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! In tests, [`Console::router`] answers requests without a socket, here on the in-memory
//! backend:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use task_state_console::{Backend, Console, ConsoleConfig};
//! use tower::ServiceExt;
//!
//! let repo = Arc::new(task_state_memory::InMemoryTaskRepository::default());
//! let console = Console::new(ConsoleConfig::default(), Backend::any(repo)).unwrap();
//! let request = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
//! let response = console.router().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
//! # }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod auth;
mod check_job;
mod config;
mod counts;
mod fields;
mod listing;
mod live;
mod metrics;
mod pages;
mod routes;
mod store;
mod tail;
mod text;

use std::future::Future;
use std::sync::{Arc, RwLock};

use task_state_core::{Result, TaskRepository};
use task_state_redis::{Janitor, RedisTaskRepository};

pub use config::{ConsoleConfig, OperatorToken, MIN_SECRET_LEN, TOKEN_VAR};
pub use tail::{LogRead, LogTail};

/// The store a console reads: any repository, or Redis with its extras.
#[derive(Debug, Clone)]
pub struct Backend {
    repo: Arc<dyn TaskRepository>,
    redis: Option<RedisTaskRepository>,
    janitor: Option<Arc<Janitor>>,
}

impl Backend {
    /// Any repository (the in-memory one, say): no health check of pools, no consistency
    /// check.
    pub fn any(repo: Arc<dyn TaskRepository>) -> Self {
        Backend {
            repo,
            redis: None,
            janitor: None,
        }
    }

    /// Redis: `/healthz` pings both pools and the check page runs the consistency check.
    pub fn redis(repo: RedisTaskRepository) -> Self {
        Backend {
            repo: Arc::new(repo.clone()),
            redis: Some(repo),
            janitor: None,
        }
    }

    /// The [`Janitor`] (expiry listener and reconciler) that runs in this process: the
    /// overview shows its counters and `/metrics` exports them. The caller still stops it
    /// ([`Janitor::stop`] takes `&self`, so its own `Arc` will do).
    pub fn with_janitor(mut self, janitor: Arc<Janitor>) -> Self {
        self.janitor = Some(janitor);
        self
    }
}

/// The console: its configuration, its backend and what it has learnt (the last count of
/// the tasks, the last consistency check, the open sessions). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Console {
    app: Arc<App>,
}

/// The state every handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: ConsoleConfig,
    pub(crate) store: store::Store,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) counts: RwLock<CountState>,
    pub(crate) check: check_job::CheckJob,
    pub(crate) sessions: auth::Sessions,
    /// One permit for each status scan of the task list that may run
    /// ([`ConsoleConfig::max_status_scans`]); a scan holds it inside the handler's future, so
    /// a client that leaves (the future is dropped) ends the scan and frees the permit.
    pub(crate) scans: tokio::sync::Semaphore,
    /// The followers of live logs, one per task, and the bound on open streams.
    pub(crate) followers: Arc<live::Followers>,
    /// Becomes true when the server shuts down, so that the followed logs end: a graceful
    /// shutdown waits for every connection, and an event stream would never end by itself.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

/// The last count of the tasks, and the error of the last attempt when it failed.
#[derive(Debug, Default)]
pub(crate) struct CountState {
    pub(crate) counts: Option<counts::Counts>,
    pub(crate) error: Option<String>,
}

impl Console {
    /// A console over `backend`.
    ///
    /// # Errors
    /// [`task_state_core::Error::Config`] when the configuration cannot work
    /// ([`ConsoleConfig::validate`]).
    pub fn new(config: ConsoleConfig, backend: Backend) -> Result<Self> {
        config.validate()?;
        let metrics = metrics::Metrics::new();
        if let Some(janitor) = &backend.janitor {
            metrics.add_janitor(janitor.clone());
        }
        let repo: Arc<dyn TaskRepository> = Arc::new(metrics::MeteredRepository::new(
            backend.repo,
            metrics.clone(),
        ));
        let store = store::Store {
            repo,
            redis: backend.redis,
            janitor: backend.janitor,
        };
        let scans = tokio::sync::Semaphore::new(config.max_status_scans);
        let followers = Arc::new(live::Followers::new(
            config.max_live_streams,
            config.live_fallback_poll,
        ));
        Ok(Console {
            app: Arc::new(App {
                config,
                store,
                metrics,
                counts: RwLock::new(CountState::default()),
                check: check_job::CheckJob::default(),
                sessions: auth::Sessions::default(),
                scans,
                followers,
                stopping: tokio::sync::watch::Sender::new(false),
            }),
        })
    }

    /// The HTTP routes, for [`axum::serve()`] or for tests (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        routes::router(self.app.clone())
    }

    /// Counts the tasks now (as the background refresh does every
    /// [`ConsoleConfig::metrics_interval`]), for the overview and `task_state_tasks`.
    ///
    /// # Errors
    /// The backend's error when the count failed; the previous count stays.
    pub async fn refresh_counts(&self) -> Result<()> {
        self.app.refresh_counts().await
    }

    /// Serves on `listener` until `shutdown` completes, counting the tasks in the background
    /// meanwhile.
    ///
    /// # Errors
    /// [`std::io::ErrorKind::InvalidInput`] before serving anything when the listener's
    /// address is refused by [`ConsoleConfig::validate_listen`] (not loopback, and any host
    /// would be answered); otherwise when the server fails to accept connections.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.app
            .config
            .validate_listen(listener.local_addr()?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let refresher = tokio::spawn(self.app.clone().refresh_forever());
        let app = self.app.clone();
        let shutdown = async move {
            shutdown.await;
            app.stopping.send_replace(true);
        };
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        refresher.abort();
        served
    }
}

impl App {
    async fn refresh_counts(&self) -> Result<()> {
        let outcome = counts::count(self.store.repo.as_ref()).await;
        let mut state = self.counts.write().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(counts) => {
                counts::publish(
                    &self.metrics,
                    state.counts.as_ref(),
                    &counts,
                    self.config.top_services,
                );
                state.counts = Some(counts);
                state.error = None;
                Ok(())
            }
            Err(e) => {
                self.metrics.refresh_failures.inc();
                tracing::warn!(error = %e, "counting the tasks failed");
                state.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn refresh_forever(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.config.metrics_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // A failure is logged and kept for the overview; the next tick tries again.
            let _ = self.refresh_counts().await;
        }
    }
}
