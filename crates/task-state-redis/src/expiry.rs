//! Expiry cleanup: a listener for Redis's `expired` events and a periodic reconciler.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, ClientLike, EventInterface, PubsubInterface, ReconnectPolicy, Value};
use fred::types::CustomCommand;
use task_state_core::jiff::Timestamp;
use task_state_core::{validate_name, Error, Result};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use crate::check::IndexKind;
use crate::keys;
use crate::repository::{scrub, RedisTaskRepository};
use crate::scan;
use crate::scripts::SCRIPTS;

/// How the expiry listener runs.
#[derive(Debug, Clone)]
pub struct ExpiryOptions {
    /// Fail at start when `notify-keyspace-events` lacks `E` and `x` (or `A`), or cannot be
    /// read. When false, only a warning is logged (managed Redis often forbids CONFIG GET).
    pub require_notifications: bool,
    /// How often the reconciler sweeps the indexes; zero disables it. Default 300 s.
    pub reconcile_interval: Duration,
    /// Expired-key events buffered between the connection and the cleanup (default 16,384).
    /// When a burst overflows it, the lost events are counted in
    /// [`ExpiryStats::lagged`] and a reconciler sweep cleans what they named.
    pub event_buffer: usize,
}

impl Default for ExpiryOptions {
    fn default() -> Self {
        ExpiryOptions {
            require_notifications: true,
            reconcile_interval: Duration::from_secs(300),
            event_buffer: 16_384,
        }
    }
}

/// What the listener has done, like the Python package's listener stats.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExpiryStats {
    /// Expired-key events received.
    pub messages: u64,
    /// Of those, events for task records (`task:{id}`).
    pub task_messages: u64,
    /// Tasks whose index entries were cleaned.
    pub cleanups: u64,
    /// Tasks whose metadata hash was gone, so only `index:tasks` could be cleaned.
    pub metadata_missing: u64,
    /// Cleanups that failed.
    pub failures: u64,
    /// Reconnections of the subscriber.
    pub reconnects: u64,
    /// Events lost because the listener fell behind (a reconciler sweep follows).
    pub lagged: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// When the last event arrived.
    #[serde(serialize_with = "as_text")]
    pub last_message_at: Option<Timestamp>,
}

fn as_text<S: serde::Serializer>(at: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.collect_str(at),
        None => serializer.serialize_none(),
    }
}

/// What the reconciler has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Sweeps run.
    pub runs: u64,
    /// Index members removed over all sweeps.
    pub members_removed: u64,
    /// When the last sweep ended.
    pub last_run_at: Option<Timestamp>,
    /// The last error.
    pub last_error: Option<String>,
}

/// Removes, from every index set of the layout, the ids whose record no longer exists, and
/// from every `index:service:{s}:users` set the users without tasks there: SCAN over
/// `index:*`, then SSCAN and one small atomic script per page of 500 members, so Redis is
/// never blocked for long and no set is held in memory. Returns the number of members
/// removed.
///
/// Only keys of the layout are touched (`index:tasks`, `index:service:{s}`,
/// `index:service:{s}:users`, `index:service:{s}:user:{u}`, `index:user:{u}` with valid
/// names): another application's `index:recent-searches` in the same database is left
/// alone. A key of the wrong type is never touched either: it is logged and skipped (the
/// consistency check reports it).
///
/// # Errors
/// [`Error::Backend`] (or [`Error::Refused`]) when Redis fails.
pub async fn reconcile(repo: &RedisTaskRepository) -> Result<u64> {
    let mut removed = 0;
    let mut pages = scan::KeyPages::new(repo, "index:*", "set");
    while let Some(keys) = pages.next().await? {
        for key in keys {
            let Some(kind) = crate::check::classify(&key) else {
                continue; // not a key of the layout
            };
            let service = match kind {
                IndexKind::Users(service) => Some(service),
                _ => None,
            };
            removed += prune_index(repo, &key, service.as_deref()).await?;
        }
    }
    Ok(removed)
}

/// Prunes one index set, SSCAN page by page: for `index:service:{service}:users` (with
/// `service`) the users without tasks there, else the ids without a record.
async fn prune_index(repo: &RedisTaskRepository, key: &str, service: Option<&str>) -> Result<u64> {
    let mode = match service {
        Some(service) => format!("users:{service}"),
        None => "tasks".to_owned(),
    };
    let mut removed = 0;
    let mut cursor = "0".to_owned();
    loop {
        let scan::Page {
            next,
            items: mut members,
            not_utf8,
        } = match scan::members_page(repo.writer().next(), key, &cursor).await {
            Ok(page) => page,
            Err(e) if scan::is_wrong_type(&e) => {
                tracing::warn!(key, "reconciler: key of the wrong type left alone");
                return Ok(removed);
            }
            Err(e) => return Err(repo.backend(e, &format!("scanning {key}"))),
        };
        for member in &not_utf8 {
            // No name of the layout is: the check reports it, an operator decides.
            tracing::warn!(
                key,
                member,
                "reconciler: a member that is not UTF-8 left alone"
            );
        }
        if let Some(service) = service {
            members = users_to_prune(repo, service, members).await?;
        }
        if !members.is_empty() && repo.is_cluster() {
            // The records are in other slots: check, remove, check again (docs/cluster.md).
            removed += crate::cluster::prune(repo, key, service, members).await?;
        } else if !members.is_empty() {
            let mut args = Vec::with_capacity(members.len() + 1);
            args.push(mode.clone());
            args.extend(members);
            match repo
                .eval_keys(&SCRIPTS.prune, vec![key.to_owned()], args)
                .await
            {
                Ok(Value::Integer(n)) => removed += n.max(0) as u64,
                Ok(_) => {}
                // A user index that became a key of another type meanwhile: the script
                // stopped at its SCARD, before any SREM.
                Err(e) if e.details().contains("WRONGTYPE") => {
                    tracing::warn!(key, "reconciler: a user index of the wrong type left alone");
                }
                Err(e) => return Err(repo.backend(e, &format!("pruning {key}"))),
            }
        }
        if next == "0" {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// The users (of `index:service:{service}:users`) whose task index there is empty, and the
/// members that are no user id (`""`, `a:b`: no task can have them), for the script to check
/// again and remove; a user whose index has the wrong type is left alone.
async fn users_to_prune(
    repo: &RedisTaskRepository,
    service: &str,
    users: Vec<String>,
) -> Result<Vec<String>> {
    let (users, mut out): (Vec<String>, Vec<String>) = users
        .into_iter()
        .partition(|user| validate_name("user id", user).is_ok());
    let keys: Vec<String> = users
        .iter()
        .map(|user| keys::service_user_index(service, user))
        .collect();
    let counts = scan::per_key_each(repo.writer().next(), "SCARD", keys.clone())
        .await
        .map_err(|e| repo.backend(e, "checking users"))?;
    for ((user, key), count) in users.into_iter().zip(&keys).zip(counts) {
        match count {
            Ok(0) => out.push(user),
            Ok(_) => {}
            Err(e) if scan::is_wrong_type(&e) => {
                tracing::warn!(
                    key = key.as_str(),
                    "reconciler: key of the wrong type left alone"
                );
            }
            Err(e) => return Err(repo.backend(e, "checking users")),
        }
    }
    Ok(out)
}

/// Checks that Redis publishes expired-key events (`notify-keyspace-events` with `E` and
/// `x`, or `A`).
///
/// # Errors
/// [`Error::Config`] when the flags are missing, [`Error::Backend`] when CONFIG GET fails.
pub async fn check_notifications(repo: &RedisTaskRepository) -> Result<()> {
    let client = repo.writer().next();
    if repo.is_cluster() {
        // Every primary publishes its own keys' events: each must be configured.
        let primaries = fred::prelude::ClusterInterface::cached_cluster_state(client)
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        for node in primaries {
            notifications_on(repo, &client.with_cluster_node(node.clone()))
                .await
                .map_err(|e| match e {
                    Error::Config(message) => Error::Config(format!("{node}: {message}")),
                    other => other,
                })?;
        }
        return Ok(());
    }
    notifications_on(repo, client).await
}

async fn notifications_on<C: ClientLike>(repo: &RedisTaskRepository, client: &C) -> Result<()> {
    let reply: Value = client
        .custom(
            CustomCommand::new_static("CONFIG", None::<u16>, false),
            vec!["GET".to_owned(), "notify-keyspace-events".to_owned()],
        )
        .await
        .map_err(|e| repo.backend(e, "reading notify-keyspace-events"))?;
    let flags = match reply {
        Value::Array(items) => items.get(1).and_then(scan::text).unwrap_or_default(),
        Value::Map(map) => map
            .inner()
            .values()
            .next()
            .and_then(scan::text)
            .unwrap_or_default(),
        _ => String::new(),
    };
    if flags.contains('E') && (flags.contains('x') || flags.contains('A')) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "notify-keyspace-events is {flags:?}: expiry cleanup needs E and x (or A), \
             e.g. CONFIG SET notify-keyspace-events Ex"
        )))
    }
}

/// The running expiry listener and reconciler. Stop it with [`ExpiryListener::stop`].
#[derive(Debug)]
pub struct ExpiryListener {
    stop: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// One subscriber, or on a cluster one a node.
    subscribers: Arc<Mutex<Vec<SubscriberClient>>>,
    stats: Arc<Mutex<ExpiryStats>>,
    reconcile_stats: Arc<Mutex<ReconcileStats>>,
}

impl ExpiryListener {
    /// Subscribes to `__keyevent@{db}__:expired` on the write URL's server and starts
    /// cleaning: for every expired `task:{id}` it calls
    /// [`RedisTaskRepository::handle_task_expired`]. It resubscribes after a disconnect or a
    /// restart, and runs the reconciler every `reconcile_interval` and after it fell behind.
    ///
    /// # Errors
    /// [`Error::Config`] when keyspace events are off (unless
    /// `require_notifications` is false), [`Error::Backend`] when it cannot subscribe.
    pub async fn start(repo: RedisTaskRepository, options: ExpiryOptions) -> Result<Self> {
        if let Err(e) = check_notifications(&repo).await {
            if options.require_notifications {
                return Err(e);
            }
            tracing::warn!(error = %e, "expiry events may not arrive; the reconciler will catch up");
        }
        let settings = repo.settings().clone();
        let url = settings.write_url();
        let config = crate::repository::client_config(url, &settings)?;
        // Keyspace events are node-local: on a cluster, one subscriber on every node
        // (docs/cluster.md).
        let configs = if repo.is_cluster() {
            crate::cluster::node_configs(&repo, &config).await?
        } else {
            vec![config.clone()]
        };
        let channel = format!("__keyevent@{}__:expired", url.database());
        let mut subscribers: Vec<SubscriberClient> = Vec::new();
        let mut known = std::collections::HashSet::new();
        for config in configs {
            known.insert(server_of(&config));
            match subscribe(&settings, &options, config, &channel).await {
                Ok(subscriber) => subscribers.push(subscriber),
                Err(e) => {
                    for subscriber in &subscribers {
                        let _ = subscriber.quit().await;
                    }
                    return Err(e);
                }
            }
        }

        let (stop, _) = watch::channel(false);
        let shared = Listening {
            repo: repo.clone(),
            stats: Arc::new(Mutex::new(ExpiryStats::default())),
            sweep_now: Arc::new(Notify::new()),
            stopped: stop.subscribe(),
        };
        let stats = shared.stats.clone();
        let sweep_now = shared.sweep_now.clone();
        let reconcile_stats = Arc::new(Mutex::new(ReconcileStats::default()));

        let mut tasks = Vec::new();
        for subscriber in &subscribers {
            tasks.extend(shared.listen(subscriber));
        }
        let subscribers = Arc::new(Mutex::new(subscribers));
        let tasks = Arc::new(Mutex::new(tasks));
        if repo.is_cluster() {
            // Nodes added to the cluster later: looked for every NODE_REFRESH.
            let shared = shared.clone();
            let (subscribers, all_tasks) = (subscribers.clone(), tasks.clone());
            let (settings, options) = (settings.clone(), options.clone());
            let mut stopped = stop.subscribe();
            let watcher = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        _ = tokio::time::sleep(NODE_REFRESH) => {}
                    }
                    let Ok(configs) = crate::cluster::node_configs(&shared.repo, &config).await
                    else {
                        continue;
                    };
                    for node in configs {
                        let server = server_of(&node);
                        if known.contains(&server) {
                            continue;
                        }
                        match subscribe(&settings, &options, node, &channel).await {
                            Ok(subscriber) => {
                                tracing::info!(node = %server.0, port = server.1, "expiry listener subscribed on a new node");
                                lock(&all_tasks).extend(shared.listen(&subscriber));
                                lock(&subscribers).push(subscriber);
                                known.insert(server);
                                // Its events before the subscription are lost.
                                shared.sweep_now.notify_one();
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "expiry listener: cannot subscribe on a new node yet");
                            }
                        }
                    }
                }
            });
            lock(&tasks).push(watcher);
        }

        let interval = options.reconcile_interval;
        if !interval.is_zero() {
            let repo = repo.clone();
            let rstats = reconcile_stats.clone();
            let mut stopped = stop.subscribe();
            lock(&tasks).push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        _ = tokio::time::sleep(interval) => {}
                        _ = sweep_now.notified() => {}
                    }
                    let outcome = reconcile(&repo).await;
                    let mut s = lock(&rstats);
                    s.runs += 1;
                    s.last_run_at = Some(Timestamp::now());
                    match outcome {
                        Ok(n) => s.members_removed += n,
                        Err(e) => {
                            tracing::warn!(error = %e, "reconciler sweep failed");
                            s.last_error = Some(e.to_string());
                        }
                    }
                }
            }));
        }
        Ok(ExpiryListener {
            stop,
            tasks,
            subscribers,
            stats,
            reconcile_stats,
        })
    }

    /// The listener's counters.
    pub fn stats(&self) -> ExpiryStats {
        lock(&self.stats).clone()
    }

    /// The reconciler's counters.
    pub fn reconcile_stats(&self) -> ReconcileStats {
        lock(&self.reconcile_stats).clone()
    }

    /// How many servers it is subscribed on: 1, or on a Redis Cluster every node (primaries
    /// and replicas) that answered when it started or since (it looks for new nodes every
    /// 5 s).
    pub fn nodes(&self) -> usize {
        lock(&self.subscribers).len()
    }

    /// Stops listening and sweeping, and closes the subscriber connections.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        let subscribers = std::mem::take(&mut *lock(&self.subscribers));
        for subscriber in &subscribers {
            let _ = subscriber.quit().await;
        }
    }
}

/// How often the listener on a Redis Cluster looks for nodes added since it started.
const NODE_REFRESH: Duration = Duration::from_secs(5);

/// The host and port of a one-server configuration.
fn server_of(config: &fred::prelude::Config) -> (String, u16) {
    match &config.server {
        fred::prelude::ServerConfig::Centralized { server } => {
            (server.host.to_string(), server.port)
        }
        _ => (String::new(), 0),
    }
}

/// What the task of every subscription shares.
#[derive(Clone)]
struct Listening {
    repo: RedisTaskRepository,
    stats: Arc<Mutex<ExpiryStats>>,
    sweep_now: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

impl Listening {
    /// The tasks that keep `subscriber` subscribed and clean up after its events.
    fn listen(&self, subscriber: &SubscriberClient) -> [JoinHandle<()>; 2] {
        let mut events = subscriber.keyspace_event_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let resubscriber = subscriber.manage_subscriptions();
        let Listening {
            repo,
            stats,
            sweep_now,
            mut stopped,
        } = self.clone();
        let listener = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    reconnect = reconnects.recv() => {
                        if reconnect.is_ok() {
                            lock(&stats).reconnects += 1;
                            tracing::info!("expiry listener reconnected");
                            sweep_now.notify_one();
                        }
                    }
                    event = events.recv() => match event {
                        Ok(event) => handle_event(&repo, &stats, &event.operation, &event.key.as_str_lossy()).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let mut s = lock(&stats);
                            s.lagged += n;
                            s.last_error = Some(format!("fell behind by {n} events"));
                            tracing::warn!(lost = n, "expiry listener fell behind; reconciling");
                            sweep_now.notify_one();
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            lock(&stats).last_error = Some("event channel closed".to_owned());
                            tracing::error!("expiry listener: event channel closed");
                            break;
                        }
                    }
                }
            }
        });
        [resubscriber, listener]
    }
}

/// A subscriber to `channel` on the server of `config`, connected and subscribed.
async fn subscribe(
    settings: &crate::RedisRepositorySettings,
    options: &ExpiryOptions,
    config: fred::prelude::Config,
    channel: &str,
) -> Result<SubscriberClient> {
    let url = settings.write_url();
    let subscriber = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = settings.connect_timeout();
            c.internal_command_timeout = settings.connect_timeout();
        })
        .with_performance_config(|p| {
            p.default_command_timeout = settings.command_timeout();
            p.broadcast_channel_capacity = options.event_buffer.max(1);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build_subscriber_client()
        .map_err(|e| Error::Config(scrub(&format!("{url}: {}", e.details()), &[url])))?;
    let fail = |message: String| {
        Error::backend(scrub(
            &format!("expiry listener on {url}: {message}"),
            &[url],
        ))
    };
    match tokio::time::timeout(settings.connect_timeout(), subscriber.init()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(fail(e.details().to_owned())),
        Err(_) => {
            let _ = subscriber.quit().await;
            return Err(fail("cannot connect in time".to_owned()));
        }
    }
    if let Err(e) = subscriber.subscribe(channel).await {
        let _ = subscriber.quit().await;
        return Err(fail(e.details().to_owned()));
    }
    Ok(subscriber)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle_event(repo: &RedisTaskRepository, stats: &Mutex<ExpiryStats>, op: &str, key: &str) {
    {
        let mut s = lock(stats);
        s.messages += 1;
        s.last_message_at = Some(Timestamp::now());
    }
    let Some(keys::LayoutKey::Record(task_id)) = keys::LayoutKey::parse(key) else {
        return; // task:{id}:metadata, task:id:sequence, ...
    };
    if op != "expired" {
        return;
    }
    let task_id = task_id.as_str();
    lock(stats).task_messages += 1;
    match repo.handle_task_expired(task_id).await {
        Ok(cleanup) => {
            let mut s = lock(stats);
            if cleanup.removed {
                s.cleanups += 1;
            }
            if !cleanup.had_metadata && !cleanup.record_exists {
                s.metadata_missing += 1;
            }
        }
        Err(e) => {
            tracing::warn!(task_id, error = %e, "expiry cleanup failed");
            let mut s = lock(stats);
            s.failures += 1;
            s.last_error = Some(e.to_string());
        }
    }
}
