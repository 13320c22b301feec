//! [`Janitor`]: the expiry listener and the reconciler, composed once. The provider, `task-state
//! janitor` and `task-state console --janitor` all run this one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use task_state_core::jiff::Timestamp;
use task_state_core::{Error, Result};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::expiry::{check_notifications, lock, ExpiryListener, ExpiryStats};
use crate::reconciler::{reconcile, ReconcileStats};
use crate::repository::RedisTaskRepository;

/// How a [`Janitor`] runs.
///
/// ```
/// use std::time::Duration;
/// use task_state_redis::JanitorOptions;
///
/// let options = JanitorOptions {
///     require_notifications: false,
///     reconcile_interval: Duration::from_secs(60),
///     ..JanitorOptions::default()
/// };
/// assert_eq!(options.event_buffer, 16_384);
/// ```
#[derive(Debug, Clone)]
pub struct JanitorOptions {
    /// Fail at start when `notify-keyspace-events` lacks `E` and `x` (or `A`), or cannot be
    /// read. When false, only a warning is logged (managed Redis often forbids CONFIG GET),
    /// and the reconciler alone cleans up after expired tasks. Default true.
    pub require_notifications: bool,
    /// How often the reconciler sweeps the indexes; zero disables it (no sweep at start,
    /// none after a lag or a reconnection either). Default 300 s.
    pub reconcile_interval: Duration,
    /// Expired-key events buffered between the connection and the cleanup (default 16,384).
    /// When a burst overflows it, the lost events are counted in [`ExpiryStats::lagged`]
    /// and a reconciler sweep cleans what they named.
    pub event_buffer: usize,
}

impl Default for JanitorOptions {
    fn default() -> Self {
        JanitorOptions {
            require_notifications: true,
            reconcile_interval: Duration::from_secs(300),
            event_buffer: 16_384,
        }
    }
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
    /// The flags are missing; the janitor was told not to require them, so the reconciler
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

impl NotificationCheck {
    /// Checks the server of `repo` ([`check_notifications`]); the error is the reason when
    /// the flags are missing or unreadable.
    pub(crate) async fn of(repo: &RedisTaskRepository) -> (Self, Option<Error>) {
        match check_notifications(repo).await {
            Ok(()) => (NotificationCheck::Enabled, None),
            Err(Error::Config(reason)) => {
                let check = NotificationCheck::Missing {
                    reason: reason.clone(),
                };
                (check, Some(Error::Config(reason)))
            }
            Err(e) => {
                let reason = e.to_string();
                (NotificationCheck::Unreadable { reason }, Some(e))
            }
        }
    }
}

/// The expiry listener and the reconciler of one store, running: what keeps the indexes
/// clean of tasks whose record has expired.
///
/// - The listener subscribes to `__keyevent@{db}__:expired` (on a Redis Cluster on every
///   node, and on nodes added later) and, for every expired `task:{id}`, runs
///   [`RedisTaskRepository::handle_task_expired`]; it resubscribes by itself after a
///   disconnect or a restart.
/// - The reconciler ([`reconcile`]) sweeps at once when the janitor starts
///   (events published while no janitor ran are lost), then every
///   [`reconcile_interval`](JanitorOptions::reconcile_interval), and as soon as the listener
///   may have missed events: after a reconnection, when it fell behind, when it subscribed
///   on a new node.
///
/// [`stop`](Self::stop) ends both and closes the listener's connections; it takes `&self`,
/// so a janitor shared in an `Arc` (by a console and its `main`, say) is stopped by whoever
/// holds it.
///
/// ```no_run
/// # async fn run() -> task_state_core::Result<()> {
/// use task_state_redis::{Janitor, JanitorOptions, RedisRepositorySettings, RedisTaskRepository};
///
/// let repo = RedisTaskRepository::connect(RedisRepositorySettings::from_env()?).await?;
/// let janitor = Janitor::start(repo, JanitorOptions::default()).await?;
/// tokio::time::sleep(std::time::Duration::from_secs(3600)).await; // serving meanwhile
/// let (cleaned, sweeps) = (janitor.stats().cleanups, janitor.reconcile_stats().runs);
/// println!("{cleaned} expired tasks cleaned, {sweeps} sweeps");
/// janitor.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Janitor {
    listener: ExpiryListener,
    notifications: NotificationCheck,
    reconcile_interval: Duration,
    reconcile_stats: Arc<Mutex<ReconcileStats>>,
    stop: watch::Sender<bool>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl Janitor {
    /// Checks that the server publishes expired-key events, subscribes, and starts the
    /// reconciler (unless its interval is zero), whose first sweep starts at once.
    ///
    /// # Errors
    /// When `require_notifications` is set (the default): [`Error::Config`] when
    /// `notify-keyspace-events` lacks the flags, [`Error::Backend`] when they cannot be read.
    /// Always: [`Error::Backend`] when the listener cannot subscribe. Nothing it opened stays
    /// open after an error.
    pub async fn start(repo: RedisTaskRepository, options: JanitorOptions) -> Result<Self> {
        let (notifications, error) = NotificationCheck::of(&repo).await;
        if let Some(e) = error {
            if options.require_notifications {
                return Err(e);
            }
            tracing::warn!(error = %e, "expiry events may not arrive; the reconciler will catch up");
        }
        Self::start_checked(repo, options, notifications).await
    }

    /// As [`start`](Self::start), with the notifications already checked by the caller (the
    /// provider, which words its own refusal): `require_notifications` is not looked at.
    pub(crate) async fn start_checked(
        repo: RedisTaskRepository,
        options: JanitorOptions,
        notifications: NotificationCheck,
    ) -> Result<Self> {
        let sweep_now = Arc::new(Notify::new());
        let listener =
            ExpiryListener::start(repo.clone(), options.event_buffer, sweep_now.clone()).await?;
        let (stop, stopped) = watch::channel(false);
        let reconcile_stats = Arc::new(Mutex::new(ReconcileStats::default()));
        let interval = options.reconcile_interval;
        let sweeper = (!interval.is_zero()).then(|| {
            let sweeps = Sweeps {
                repo,
                interval,
                sweep_now,
                stats: reconcile_stats.clone(),
            };
            tokio::spawn(sweeps.run(stopped))
        });
        Ok(Janitor {
            listener,
            notifications,
            reconcile_interval: interval,
            reconcile_stats,
            stop,
            sweeper: Mutex::new(sweeper),
        })
    }

    /// The listener's counters.
    pub fn stats(&self) -> ExpiryStats {
        self.listener.stats()
    }

    /// The reconciler's counters (all zero when its interval is zero).
    pub fn reconcile_stats(&self) -> ReconcileStats {
        lock(&self.reconcile_stats).clone()
    }

    /// The interval between sweeps it was started with; zero when the reconciler is off.
    pub fn reconcile_interval(&self) -> Duration {
        self.reconcile_interval
    }

    /// What the check of `notify-keyspace-events` found when it started.
    pub fn notifications(&self) -> &NotificationCheck {
        &self.notifications
    }

    /// How many servers the listener is subscribed on: 1, or on a Redis Cluster every node
    /// (primaries and replicas) that answered when it started or since (it looks for new
    /// nodes every 5 s).
    pub fn nodes(&self) -> usize {
        self.listener.nodes()
    }

    /// Stops the reconciler (a sweep in progress is cut short; the next start sweeps again)
    /// and the listener, and closes the listener's connections. Calling it again does
    /// nothing.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let sweeper = lock(&self.sweeper).take();
        if let Some(sweeper) = sweeper {
            sweeper.abort();
            let _ = sweeper.await;
        }
        self.listener.stop().await;
    }
}

/// The reconciler's loop.
struct Sweeps {
    repo: RedisTaskRepository,
    interval: Duration,
    /// Notified by the listener when events may have been lost.
    sweep_now: Arc<Notify>,
    stats: Arc<Mutex<ReconcileStats>>,
}

impl Sweeps {
    /// Sweeps at once, then every `interval` and whenever `sweep_now` is notified, counting
    /// in `stats`, until `stopped`.
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        loop {
            let outcome = reconcile(&self.repo).await;
            {
                let mut s = lock(&self.stats);
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
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.sweep_now.notified() => {}
            }
        }
    }
}
