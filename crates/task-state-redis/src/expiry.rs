//! The expiry listener: subscriptions to Redis's `expired` events (on a cluster, one a node,
//! and new nodes watched for), the cleanup of each expired task, and a call for a sweep
//! whenever events may have been lost. The [`Janitor`](crate::Janitor) runs it beside the
//! reconciler.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, ClientLike, EventInterface, PubsubInterface, ReconnectPolicy, Value};
use fred::types::CustomCommand;
use task_state_core::jiff::Timestamp;
use task_state_core::{Error, Result};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use crate::errors::scrub;
use crate::execution::Topology;
use crate::keys;
use crate::repository::RedisTaskRepository;
use crate::scan;
use crate::settings::RedisRepositorySettings;

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

/// Checks that Redis publishes expired-key events (`notify-keyspace-events` with `E` and
/// `x`, or `A`).
///
/// # Errors
/// [`Error::Config`] when the flags are missing, [`Error::Backend`] when CONFIG GET fails.
pub async fn check_notifications(repo: &RedisTaskRepository) -> Result<()> {
    let client = repo.writer().next();
    if repo.exec().topology() == Topology::Cluster {
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
    let flags = notification_flags(repo, client).await?;
    if flags.contains('E') && (flags.contains('x') || flags.contains('A')) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "notify-keyspace-events is {flags:?}: expiry cleanup needs E and x (or A), \
             e.g. CONFIG SET notify-keyspace-events Ex"
        )))
    }
}

/// The server's `notify-keyspace-events` flags, read with `CONFIG GET` on `client`.
///
/// # Errors
/// [`Error::Backend`] (or [`Error::Refused`]) when `CONFIG GET` fails or is refused.
pub(crate) async fn notification_flags<C: ClientLike>(
    repo: &RedisTaskRepository,
    client: &C,
) -> Result<String> {
    let reply: Value = client
        .custom(
            CustomCommand::new_static("CONFIG", None::<u16>, false),
            vec!["GET".to_owned(), "notify-keyspace-events".to_owned()],
        )
        .await
        .map_err(|e| repo.exec().backend(e, "reading notify-keyspace-events"))?;
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
    Ok(flags)
}

/// The running listener; the [`Janitor`](crate::Janitor) owns it.
#[derive(Debug)]
pub(crate) struct ExpiryListener {
    stop: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// One subscriber, or on a cluster one a node.
    subscribers: Arc<Mutex<Vec<SubscriberClient>>>,
    stats: Arc<Mutex<ExpiryStats>>,
}

impl ExpiryListener {
    /// Subscribes to `__keyevent@{db}__:expired` on the write URL's server (on a cluster, on
    /// every node, and on nodes added later) and starts cleaning: for every expired
    /// `task:{id}` it calls [`RedisTaskRepository::handle_task_expired`]. It resubscribes
    /// after a disconnect or a restart, and notifies `sweep_now` whenever events may have
    /// been lost (a reconnection, a lag past `event_buffer`, a node subscribed late).
    ///
    /// # Errors
    /// [`Error::Backend`] when it cannot subscribe; nothing stays open then.
    pub(crate) async fn start(
        repo: RedisTaskRepository,
        event_buffer: usize,
        sweep_now: Arc<Notify>,
    ) -> Result<Self> {
        let settings = repo.settings().clone();
        let url = settings.write_url();
        let config = crate::connection::client_config(url, &settings)?;
        // Keyspace events are node-local: on a cluster, one subscriber on every node
        // (docs/cluster.md).
        let configs = match repo.exec().topology() {
            Topology::Cluster => crate::cluster::node_configs(repo.exec(), &config).await?,
            Topology::SingleNode => vec![config.clone()],
        };
        let channel = format!("__keyevent@{}__:expired", url.database());
        let known = configs.iter().map(server_of).collect();
        let subscribers = subscribe_all(&settings, event_buffer, configs, &channel).await?;

        let (stop, _) = watch::channel(false);
        let shared = Listening {
            repo: repo.clone(),
            stats: Arc::new(Mutex::new(ExpiryStats::default())),
            sweep_now,
            stopped: stop.subscribe(),
        };
        let stats = shared.stats.clone();
        let mut tasks = Vec::new();
        for subscriber in &subscribers {
            tasks.extend(shared.listen(subscriber));
        }
        let subscribers = Arc::new(Mutex::new(subscribers));
        let tasks = Arc::new(Mutex::new(tasks));
        if repo.exec().topology() == Topology::Cluster {
            // Nodes added to the cluster later: looked for every NODE_REFRESH.
            let watch = NodeWatch {
                shared,
                subscribers: subscribers.clone(),
                tasks: tasks.clone(),
                settings,
                event_buffer,
                config,
                channel,
                known,
            };
            let watcher = tokio::spawn(watch.run(stop.subscribe()));
            lock(&tasks).push(watcher);
        }
        Ok(ExpiryListener {
            stop,
            tasks,
            subscribers,
            stats,
        })
    }

    /// The listener's counters.
    pub(crate) fn stats(&self) -> ExpiryStats {
        lock(&self.stats).clone()
    }

    /// How many servers it is subscribed on.
    pub(crate) fn nodes(&self) -> usize {
        lock(&self.subscribers).len()
    }

    /// Stops listening and closes the subscriber connections; a second call does nothing.
    pub(crate) async fn stop(&self) {
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
    settings: &RedisRepositorySettings,
    event_buffer: usize,
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
            p.broadcast_channel_capacity = event_buffer.max(1);
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

/// One subscriber on each of `configs`; none left open after an error.
async fn subscribe_all(
    settings: &RedisRepositorySettings,
    event_buffer: usize,
    configs: Vec<fred::prelude::Config>,
    channel: &str,
) -> Result<Vec<SubscriberClient>> {
    let mut subscribers: Vec<SubscriberClient> = Vec::new();
    for config in configs {
        match subscribe(settings, event_buffer, config, channel).await {
            Ok(subscriber) => subscribers.push(subscriber),
            Err(e) => {
                for subscriber in &subscribers {
                    let _ = subscriber.quit().await;
                }
                return Err(e);
            }
        }
    }
    Ok(subscribers)
}

/// The listener's watch for nodes added to a cluster after it started.
struct NodeWatch {
    shared: Listening,
    subscribers: Arc<Mutex<Vec<SubscriberClient>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    settings: RedisRepositorySettings,
    event_buffer: usize,
    config: fred::prelude::Config,
    channel: String,
    /// The nodes subscribed on, by (host, port).
    known: std::collections::HashSet<(String, u16)>,
}

impl NodeWatch {
    /// Every NODE_REFRESH, subscribes on the nodes not yet known, until `stopped`.
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(NODE_REFRESH) => {}
            }
            let Ok(configs) =
                crate::cluster::node_configs(self.shared.repo.exec(), &self.config).await
            else {
                continue;
            };
            for node in configs {
                let server = server_of(&node);
                if self.known.contains(&server) {
                    continue;
                }
                match subscribe(&self.settings, self.event_buffer, node, &self.channel).await {
                    Ok(subscriber) => {
                        tracing::info!(node = %server.0, port = server.1, "expiry listener subscribed on a new node");
                        lock(&self.tasks).extend(self.shared.listen(&subscriber));
                        lock(&self.subscribers).push(subscriber);
                        self.known.insert(server);
                        // Its events before the subscription are lost.
                        self.shared.sweep_now.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "expiry listener: cannot subscribe on a new node yet");
                    }
                }
            }
        }
    }
}
