//! [`RedisRepositoryProvider`]: the lifecycle of the Python package's provider — connect,
//! check the server, run the expiry listener and the reconciler, report, close.

use serde::Serialize;
use task_state_core::{Error, Result};

use crate::expiry::ExpiryStats;
use crate::janitor::{Janitor, JanitorOptions, NotificationCheck};
use crate::reconciler::ReconcileStats;
use crate::repository::RedisTaskRepository;
use crate::settings::RedisRepositorySettings;

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
    /// The expiry listener and the reconciler, once started.
    janitor: Option<Janitor>,
    notifications: NotificationCheck,
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
        if state.janitor.is_some() {
            return Ok(repo);
        }
        let required = self.settings.require_keyevent_notifications();
        let (check, _) = NotificationCheck::of(&repo).await;
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
        state.notifications = check.clone();
        let interval = self.settings.reconcile_interval();
        let options = JanitorOptions {
            reconcile_interval: interval,
            ..JanitorOptions::default()
        };
        match Janitor::start_checked(repo.clone(), options, check).await {
            Ok(janitor) => state.janitor = Some(janitor),
            Err(e) => {
                self.shut(&mut state).await;
                return Err(e);
            }
        }
        tracing::info!(
            write_url = %self.settings.write_url(),
            reconcile_interval = ?interval,
            "task-state provider started"
        );
        Ok(repo)
    }

    /// Pings the writer and the reader pool ([`RedisTaskRepository::ping`]), connecting
    /// first when not connected.
    ///
    /// # Errors
    /// [`Error::Backend`] naming the pool that did not answer within the command timeout.
    pub async fn ping(&self) -> Result<()> {
        self.repository().await?.ping().await
    }

    /// What the provider is doing: connected or not, the notification check, and the
    /// listener's and the reconciler's counters.
    pub async fn runtime_status(&self) -> RuntimeStatus {
        let state = self.state.lock().await;
        let janitor = state.janitor.as_ref();
        RuntimeStatus {
            connected: state.repo.is_some(),
            notifications_required: self.settings.require_keyevent_notifications(),
            notifications: state.notifications.clone(),
            listener: janitor.map(Janitor::stats),
            reconciler: janitor
                .filter(|j| !j.reconcile_interval().is_zero())
                .map(ReconcilerStatus::of),
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
        if let Some(janitor) = state.janitor.take() {
            janitor.stop().await;
        }
        if let Some(repo) = state.repo.take() {
            repo.close().await;
        }
        state.notifications = NotificationCheck::NotChecked;
    }
}

impl ReconcilerStatus {
    fn of(janitor: &Janitor) -> Self {
        let s: ReconcileStats = janitor.reconcile_stats();
        ReconcilerStatus {
            interval_seconds: janitor.reconcile_interval().as_secs(),
            runs: s.runs,
            members_removed: s.members_removed,
            last_run_at: s.last_run_at.map(|t| t.to_string()),
            last_error: s.last_error,
        }
    }
}
