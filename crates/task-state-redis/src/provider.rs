//! [`RedisRepositoryProvider`]: the lifecycle of the Python package's provider — connect,
//! check the server, run the expiry listener and the reconciler, report, close.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{ClientLike, Pool};
use serde::Serialize;
use task_state_core::jiff::Timestamp;
use task_state_core::{Error, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::expiry::{
    check_notifications, reconcile, ExpiryListener, ExpiryOptions, ExpiryStats, ReconcileStats,
};
use crate::repository::RedisTaskRepository;
use crate::settings::RedisRepositorySettings;

/// How often the reconciler looks whether the listener reconnected or fell behind, each of
/// which calls for a sweep (events published meanwhile are lost).
const LISTENER_POLL: Duration = Duration::from_secs(1);

/// One object for a service's whole use of Redis, as the Python package's
/// `RedisRepositoryProvider` and the FastAPI lifespan it serves:
///
/// - [`start`](Self::start) at start-up: connects both pools (pinging each), checks that the
///   server publishes expired-key events (required unless
///   `DMS_REDIS_REQUIRE_KEYEVENT_NOTIFICATIONS=false`), starts the expiry listener and the
///   reconciler (`DMS_REDIS_RECONCILE_INTERVAL_SECONDS`, default 300; its first sweep runs at
///   once);
/// - [`repository`](Self::repository) hands out the repository (connecting on first use,
///   without the listener, for tools that need none);
/// - [`ping`](Self::ping) for a health check, [`runtime_status`](Self::runtime_status) for
///   an admin endpoint;
/// - [`close`](Self::close) at shutdown; a later `repository()` or `start()` connects afresh.
///
/// ```no_run
/// # async fn run() -> task_state_core::Result<()> {
/// use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
/// use task_state_redis::{RedisRepositoryProvider, RedisRepositorySettings};
///
/// let provider = RedisRepositoryProvider::new(RedisRepositorySettings::from_env()?);
/// let repo = provider.start().await?;
/// repo.save(TaskRecord::new("7", "render", "alice", TaskStatus::Pending)).await?;
/// provider.ping().await?;
/// let status = provider.runtime_status().await;
/// println!("{}", serde_json::to_string(&status).unwrap());
/// provider.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisRepositoryProvider {
    settings: RedisRepositorySettings,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    repo: Option<RedisTaskRepository>,
    background: Option<Background>,
    notifications: NotificationCheck,
}

/// The listener and the reconciler, running.
#[derive(Debug)]
struct Background {
    listener: Arc<ExpiryListener>,
    reconciler: Option<Reconciler>,
}

#[derive(Debug)]
struct Reconciler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<Mutex<ReconcileStats>>,
}

/// What the check of `notify-keyspace-events` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NotificationCheck {
    /// Not checked yet: the provider has not been started.
    #[default]
    NotChecked,
    /// Expired-key events are published (`E` and `x`, or `A`).
    Enabled,
    /// The flags are missing; the provider was told not to require them, so the reconciler
    /// alone cleans up after expired tasks.
    Missing {
        /// What the server said.
        reason: String,
    },
    /// The flags could not be read (managed services often forbid `CONFIG GET`).
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// A snapshot of the provider for an admin endpoint; serializes to JSON with
/// [serde](https://serde.rs). Times are RFC 3339 strings in UTC.
///
/// ```
/// let status = task_state_redis::RuntimeStatus::default();
/// let json = serde_json::to_value(&status).unwrap();
/// assert_eq!(json["connected"], false);
/// assert_eq!(json["notifications"]["state"], "not_checked");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuntimeStatus {
    /// Whether the pools are connected (by `start` or `repository`).
    pub connected: bool,
    /// Whether the notifications are required by the settings.
    pub notifications_required: bool,
    /// What the start-up check found.
    pub notifications: NotificationCheck,
    /// The expiry listener's counters, while it runs.
    pub listener: Option<ListenerStatus>,
    /// The reconciler's counters, while it runs (`None` also when its interval is zero).
    pub reconciler: Option<ReconcilerStatus>,
}

/// The listener's counters in the runtime status: [`ExpiryStats`], which serializes with
/// `last_message_at` as an RFC 3339 string.
pub type ListenerStatus = ExpiryStats;

/// [`ReconcileStats`] in a serializable form, with the interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReconcilerStatus {
    /// Seconds between sweeps.
    pub interval_seconds: u64,
    /// Sweeps run, the one at start-up included.
    pub runs: u64,
    /// Index members removed over all sweeps.
    pub members_removed: u64,
    /// When the last sweep ended.
    pub last_run_at: Option<String>,
    /// The error of the last sweep; cleared by a sweep that succeeds.
    pub last_error: Option<String>,
}

impl RedisRepositoryProvider {
    /// A provider that has not connected yet.
    pub fn new(settings: RedisRepositorySettings) -> Self {
        RedisRepositoryProvider {
            settings,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The settings it connects with.
    pub fn settings(&self) -> &RedisRepositorySettings {
        &self.settings
    }

    /// The repository, connecting (and pinging both servers) on the first call and on the
    /// first call after [`close`](Self::close). It does not start the listener; see
    /// [`start`](Self::start).
    ///
    /// # Errors
    /// As [`RedisTaskRepository::connect`]; a later call tries again.
    pub async fn repository(&self) -> Result<RedisTaskRepository> {
        let mut state = self.state.lock().await;
        self.connected(&mut state).await
    }

    /// Connects (as [`repository`](Self::repository)), checks `notify-keyspace-events`,
    /// starts the expiry listener and, unless its interval is zero, the reconciler, whose
    /// first sweep starts at once. Calling it again while started only returns the
    /// repository.
    ///
    /// # Errors
    /// [`Error::Config`] when the server does not publish expired-key events, or they cannot
    /// be checked, and the settings require them (the default); [`Error::Backend`] when the
    /// server cannot be reached or the listener cannot subscribe. Nothing it opened stays
    /// open after an error.
    pub async fn start(&self) -> Result<RedisTaskRepository> {
        let mut state = self.state.lock().await;
        let repo = self.connected(&mut state).await?;
        if state.background.is_some() {
            return Ok(repo);
        }
        let required = self.settings.require_keyevent_notifications();
        let check = match check_notifications(&repo).await {
            Ok(()) => NotificationCheck::Enabled,
            Err(Error::Config(reason)) => NotificationCheck::Missing { reason },
            Err(e) => NotificationCheck::Unreadable {
                reason: e.to_string(),
            },
        };
        match &check {
            NotificationCheck::Missing { reason } | NotificationCheck::Unreadable { reason }
                if required =>
            {
                let reason = format!(
                    "{reason} (set {} to false to start without expiry events)",
                    crate::settings::REQUIRE_NOTIFICATIONS_VAR
                );
                self.shut(&mut state).await;
                return Err(Error::Config(reason));
            }
            NotificationCheck::Missing { reason } | NotificationCheck::Unreadable { reason } => {
                tracing::warn!(
                    reason = reason.as_str(),
                    "expired-key events are not available; the reconciler alone cleans up"
                );
            }
            _ => {}
        }
        state.notifications = check;
        let options = ExpiryOptions {
            // Checked above, and the provider runs the reconciler itself.
            require_notifications: false,
            reconcile_interval: Duration::ZERO,
            ..ExpiryOptions::default()
        };
        let listener = match ExpiryListener::start(repo.clone(), options).await {
            Ok(listener) => Arc::new(listener),
            Err(e) => {
                self.shut(&mut state).await;
                return Err(e);
            }
        };
        let interval = self.settings.reconcile_interval();
        let reconciler = (!interval.is_zero())
            .then(|| Reconciler::start(repo.clone(), listener.clone(), interval));
        state.background = Some(Background {
            listener,
            reconciler,
        });
        tracing::info!(
            write_url = %self.settings.write_url(),
            reconcile_interval = ?interval,
            "task-state provider started"
        );
        Ok(repo)
    }

    /// Pings the writer and the reader pool, connecting first when not connected.
    ///
    /// # Errors
    /// [`Error::Backend`] naming the pool and the server that did not answer within the
    /// command timeout.
    pub async fn ping(&self) -> Result<()> {
        let repo = self.repository().await?;
        let timeout = self.settings.command_timeout();
        ping_pool(repo.writer(), "writer", self.settings.write_url(), timeout).await?;
        ping_pool(repo.reader(), "reader", self.settings.read_url(), timeout).await
    }

    /// What the provider is doing: connected or not, the notification check, and the
    /// listener's and the reconciler's counters.
    pub async fn runtime_status(&self) -> RuntimeStatus {
        let state = self.state.lock().await;
        let background = state.background.as_ref();
        RuntimeStatus {
            connected: state.repo.is_some(),
            notifications_required: self.settings.require_keyevent_notifications(),
            notifications: state.notifications.clone(),
            listener: background.map(|b| b.listener.stats()),
            reconciler: background
                .and_then(|b| b.reconciler.as_ref())
                .map(|r| r.status(self.settings.reconcile_interval())),
        }
    }

    /// Stops the reconciler and the listener and closes the connections, if any; a later
    /// [`repository`](Self::repository) or [`start`](Self::start) connects afresh.
    /// Repositories handed out before fail from now on.
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        self.shut(&mut state).await;
    }

    async fn connected(&self, state: &mut State) -> Result<RedisTaskRepository> {
        if let Some(repo) = &state.repo {
            return Ok(repo.clone());
        }
        let repo = RedisTaskRepository::connect(self.settings.clone()).await?;
        state.repo = Some(repo.clone());
        Ok(repo)
    }

    async fn shut(&self, state: &mut State) {
        if let Some(background) = state.background.take() {
            if let Some(reconciler) = background.reconciler {
                reconciler.stop().await;
            }
            match Arc::try_unwrap(background.listener) {
                Ok(listener) => listener.stop().await,
                Err(_) => tracing::warn!("expiry listener still shared; not stopped"),
            }
        }
        if let Some(repo) = state.repo.take() {
            repo.close().await;
        }
        state.notifications = NotificationCheck::NotChecked;
    }
}

async fn ping_pool(
    pool: &Pool,
    name: &str,
    url: &crate::settings::RedisUrl,
    timeout: Duration,
) -> Result<()> {
    match tokio::time::timeout(timeout, pool.next().ping::<String>(None)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Backend {
            kind: crate::repository::kind_of(&e, false),
            message: format!("ping of the {name} pool at {url} failed: {}", e.details()),
            source: Some(Box::new(e)),
        }),
        Err(_) => Err(Error::backend_of(
            task_state_core::BackendKind::Timeout,
            format!("ping of the {name} pool at {url}: no answer within {timeout:?}"),
        )),
    }
}

impl Reconciler {
    /// Sweeps at once, then every `interval`, and as soon as the listener has reconnected or
    /// fallen behind.
    fn start(repo: RedisTaskRepository, listener: Arc<ExpiryListener>, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let stats = Arc::new(Mutex::new(ReconcileStats::default()));
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            let missed = |s: &ExpiryStats| (s.reconnects, s.lagged);
            let mut seen = missed(&listener.stats());
            loop {
                let outcome = reconcile(&repo).await;
                {
                    let mut s = lock(&shared);
                    s.runs += 1;
                    s.last_run_at = Some(Timestamp::now());
                    match outcome {
                        Ok(n) => {
                            s.members_removed += n;
                            s.last_error = None;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reconciler sweep failed");
                            s.last_error = Some(e.to_string());
                        }
                    }
                }
                let next = tokio::time::Instant::now() + interval;
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        _ = tokio::time::sleep_until(next) => break,
                        _ = tokio::time::sleep(LISTENER_POLL) => {
                            let now = missed(&listener.stats());
                            if now != seen {
                                seen = now;
                                break;
                            }
                        }
                    }
                }
            }
        });
        Reconciler { stop, task, stats }
    }

    fn status(&self, interval: Duration) -> ReconcilerStatus {
        let s = lock(&self.stats).clone();
        ReconcilerStatus {
            interval_seconds: interval.as_secs(),
            runs: s.runs,
            members_removed: s.members_removed,
            last_run_at: s.last_run_at.map(|t| t.to_string()),
            last_error: s.last_error,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        // A sweep in progress is cut short; the next start sweeps again.
        self.task.abort();
        let _ = self.task.await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
