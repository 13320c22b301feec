//! Running commands on the writer: [`Executor::exec`] runs a named script by `FCALL` (or
//! `EVALSHA` on Redis 6.2), loading it when the server lost it, and waits out a cluster's
//! redirections; the single-node or cluster way ([`Topology`]) is chosen once, when the
//! repository is made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fred::prelude::{
    ClientLike, Error as FredError, ErrorKind, FunctionInterface, LuaInterface, Pool, Value,
};
use task_state_core::{Error, Result};

use crate::errors::{RedisFailure, Said, NOT_SENT};
use crate::scripts::{Script, LIBRARY};
use crate::settings::RedisRepositorySettings;

/// The kind of deployment the repository talks to, chosen once from the write URL: each
/// operation that differs between the two takes its way from this value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (or a Sentinel group's primary): a mutation is one script on all its keys.
    SingleNode,
    /// A Redis Cluster (`redis-cluster://`): a mutation runs on the record's slot, then its
    /// follow-ups on the others' (docs/cluster.md), each sent again while redirected.
    Cluster,
}

impl Topology {
    /// The topology of the settings' write URL.
    pub(crate) fn of(settings: &RedisRepositorySettings) -> Topology {
        if settings.write_url().is_cluster() {
            Topology::Cluster
        } else {
            Topology::SingleNode
        }
    }
}

/// What [`RedisTaskRepository::handle_task_expired`](crate::RedisTaskRepository::handle_task_expired)
/// did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredCleanup {
    /// The record still exists: nothing was done.
    pub record_exists: bool,
    /// Index entries (or the metadata hash) were removed.
    pub removed: bool,
    /// The metadata hash was there to say which indexes to clean.
    pub had_metadata: bool,
}

/// The writer pool with what running a command on it needs: the settings (timeouts, TTL,
/// the URLs whose passwords errors must not show), whether the server has Redis Functions,
/// and the [`Topology`]. Clones share the pool and what was learnt of the server.
#[derive(Clone)]
pub(crate) struct Executor {
    writer: Pool,
    settings: RedisRepositorySettings,
    /// False once the server answered that it has no FCALL (Redis before 7.0): scripts then
    /// run with EVALSHA.
    functions: Arc<AtomicBool>,
    topology: Topology,
}

impl Executor {
    pub(crate) fn new(writer: Pool, settings: RedisRepositorySettings) -> Self {
        Executor {
            topology: Topology::of(&settings),
            writer,
            settings,
            functions: Arc::new(AtomicBool::new(true)),
        }
    }

    pub(crate) fn writer(&self) -> &Pool {
        &self.writer
    }

    pub(crate) fn settings(&self) -> &RedisRepositorySettings {
        &self.settings
    }

    pub(crate) fn topology(&self) -> Topology {
        self.topology
    }

    /// The store's TTL in seconds, as a script argument.
    pub(crate) fn ttl(&self) -> String {
        self.settings.ttl_seconds().to_string()
    }

    /// Whether the server may have Redis Functions, so Redis 7.0's `PEXPIRE … GT` and `NX`
    /// too: false once it answered that it has no `FCALL` (Redis 6.2).
    pub(crate) fn may_have_functions(&self) -> bool {
        self.functions.load(Ordering::Relaxed)
    }

    /// The error of a failed write of task `task_id` that may have applied (a script, or an
    /// optimistic edit's `EXEC` or `SET`), classified as the script's are.
    pub(crate) fn script_error(&self, e: fred::error::Error, task_id: &str) -> Error {
        let record = crate::keys::record(task_id);
        self.fail(e)
            .scripting((&record, "string"), format!("updating task {task_id:?}"))
            .into()
    }

    /// The store's TTL in milliseconds.
    pub(crate) fn ttl_ms(&self) -> u64 {
        self.settings.ttl_seconds() * 1000
    }

    /// Runs `script` on the writer with `keys` and `args`: `FCALL` of its function, or
    /// `EVALSHA` on Redis 6.2, loading the library or the script when the server lost it,
    /// sent again while a cluster redirects it (the server ran nothing then). Records on the
    /// operation's span which script ran and how long it took.
    ///
    /// This is the one place where a mutation runs its script.
    pub(crate) async fn exec(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> std::result::Result<Value, RedisFailure> {
        let started = std::time::Instant::now();
        let attempt = |keys: Vec<String>, args: Vec<String>| {
            self.on_writer(move |client| self.run_on(client, script, keys, args))
        };
        let result = match self.topology {
            // On one node the keys and arguments (a whole record, for a save) are not copied
            // for retries that cannot happen: only a cluster redirects.
            Topology::SingleNode => attempt(keys, args).await,
            Topology::Cluster => {
                Box::pin(self.redirected(|| attempt(keys.clone(), args.clone()))).await
            }
        };
        note_script(script, started);
        result.map_err(|e| self.fail(e))
    }

    /// One try of [`exec`](Self::exec) on a connected writer client.
    async fn run_on(
        &self,
        client: &fred::clients::Client,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> std::result::Result<Value, FredError> {
        if self.functions.load(Ordering::Relaxed) {
            match self.fcall(client, script, &keys, &args).await {
                // Redis before 7.0: EVALSHA from now on (the server ran nothing).
                Err(e) if Said::of(&e) == Said::UnknownCommand => {
                    tracing::info!(server = ?client.active_connections(), "no Redis Functions on the server (FCALL unknown): scripts run with EVALSHA");
                    self.functions.store(false, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let first = client
            .evalsha::<Value, _, _, _>(script.sha.as_str(), keys.clone(), args.clone())
            .await;
        match first {
            Err(e) if Said::of(&e) == Said::NoScript => {
                tracing::debug!(script = script.name, server = ?client.active_connections(), "script not on the server (NOSCRIPT): loading it");
                // On a cluster, on every primary (a new primary after a failover has none).
                client
                    .script_load_cluster::<String, _>(script.body.as_str())
                    .await?;
                client
                    .evalsha::<Value, _, _, _>(script.sha.as_str(), keys, args)
                    .await
            }
            other => other,
        }
    }

    /// Calls `script`'s function of the [`LIBRARY`], loading the library (on every primary of
    /// a cluster) when the server does not have it, as after a restart without persistence.
    async fn fcall(
        &self,
        client: &fred::clients::Client,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> std::result::Result<Value, FredError> {
        let function = script.function();
        let first = client
            .fcall::<Value, _, _, _>(function.as_str(), keys.to_vec(), args.to_vec())
            .await;
        match first {
            Err(e) if Said::of(&e) == Said::FunctionMissing => {
                tracing::debug!(script = script.name, library = LIBRARY.name, server = ?client.active_connections(), "library of functions not on the server (Function not found): loading it");
                // REPLACE: a primary that has the library already (same name, same text)
                // keeps it as it was.
                client
                    .function_load_cluster::<Value, _>(true, LIBRARY.body.as_str())
                    .await?;
                client
                    .fcall::<Value, _, _, _>(function.as_str(), keys.to_vec(), args.to_vec())
                    .await
            }
            other => other,
        }
    }

    /// Loads the library of functions (unless the server has none) and every script into
    /// the writer's server: see `RedisTaskRepository::load_scripts`.
    pub(crate) async fn load_scripts(&self) -> Result<()> {
        let client = self.writer.next();
        if self.functions.load(Ordering::Relaxed) {
            match client
                .function_load_cluster::<Value, _>(true, LIBRARY.body.as_str())
                .await
            {
                Err(e) if Said::of(&e) == Said::UnknownCommand => {
                    self.functions.store(false, Ordering::Relaxed)
                }
                Err(e) => {
                    return Err(self.backend(e, &format!("loading functions {}", LIBRARY.name)))
                }
                Ok(_) => {}
            }
        }
        for script in crate::scripts::all_scripts() {
            // On a cluster, on every primary.
            client
                .script_load_cluster::<String, _>(script.body.as_str())
                .await
                .map_err(|e| self.backend(e, &format!("loading script {}", script.name)))?;
        }
        Ok(())
    }

    /// Runs a mutation on a writer client once one is connected, all within the command
    /// timeout. fred queues a command while it reconnects and writes it afterwards, so a
    /// command handed to it during an outage could not be told apart, when it fails, from
    /// one whose reply was lost: handed over only once a connection is up, a mutation that
    /// found none within the timeout is known not to have been sent ([`NOT_SENT`],
    /// [`BackendKind::Disconnected`](task_state_core::BackendKind::Disconnected)).
    pub(crate) async fn on_writer<'a, T, F, Fut>(
        &'a self,
        command: F,
    ) -> std::result::Result<T, FredError>
    where
        F: FnOnce(&'a fred::clients::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, FredError>>,
    {
        let budget = self.settings.command_timeout();
        let deadline = tokio::time::Instant::now() + budget;
        let client = loop {
            let client = self.writer.next_connected();
            if client.is_connected() {
                break client;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(FredError::new(ErrorKind::Canceled, NOT_SENT));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        match tokio::time::timeout_at(deadline, command(client)).await {
            Ok(result) => result,
            Err(_) => Err(FredError::new(
                ErrorKind::Timeout,
                format!("no reply within {budget:?}"),
            )),
        }
    }

    /// Runs `op` again while the cluster redirects it (see [`Said::Redirected`]: the server
    /// did not run it, so sending it again cannot apply it twice), pausing 10 ms to 200 ms
    /// between tries, for at most the command timeout. A `MOVED` makes fred read the slot
    /// map again, but from one node (the lowest address among the seeds and the primaries it
    /// knew), which may be a replica or a primary that hears of a slot's move only by gossip,
    /// tens to hundreds of milliseconds later, more on a busy machine: the pauses give it
    /// that time. During an `ASK` (a slot being migrated) the tries go on until the slot has
    /// moved. On a single node, `op` runs once.
    pub(crate) async fn redirected<T, F, Fut>(&self, op: F) -> std::result::Result<T, FredError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, FredError>>,
    {
        let cluster = self.topology == Topology::Cluster;
        retry_redirected(cluster, self.settings.command_timeout(), op).await
    }

    /// `e`, read once, whose messages will not show the passwords of the settings' URLs.
    pub(crate) fn fail(&self, e: FredError) -> RedisFailure {
        RedisFailure::new(e, &[self.settings.write_url(), self.settings.read_url()])
    }

    /// The error for a failed command that changes nothing (a read, or a repair that checks
    /// before it writes): [`Error::Refused`] when the server refused it for a reason of its
    /// own state (out of memory, read-only, ...), else [`Error::Backend`].
    pub(crate) fn backend(&self, e: FredError, context: &str) -> Error {
        self.fail(e).reading(context).into()
    }

    /// The error for a failed read of `key`, which should hold `expected`.
    pub(crate) fn read_error(&self, e: FredError, key: &str, expected: &'static str) -> Error {
        self.fail(e).reading_key(key, expected).into()
    }
}

/// How long [`redirected_on`] retries on a client whose pool has no command timeout of its
/// own (fred's default): the settings' default command timeout.
const RETRY_WITHOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`Executor::redirected`] for a client of the repository's pools, which knows whether it
/// is on a cluster and has the repository's command timeout (`connect_pool` sets fred's
/// `default_command_timeout` to it).
pub(crate) async fn redirected_on<C, T, F, Fut>(
    client: &C,
    op: F,
) -> std::result::Result<T, FredError>
where
    C: ClientLike,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, FredError>>,
{
    let timeout = match client.perf_config().default_command_timeout {
        t if t.is_zero() => RETRY_WITHOUT_TIMEOUT,
        t => t,
    };
    retry_redirected(client.is_clustered(), timeout, op).await
}

async fn retry_redirected<T, F, Fut>(
    cluster: bool,
    timeout: std::time::Duration,
    mut op: F,
) -> std::result::Result<T, FredError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, FredError>>,
{
    if !cluster {
        return op().await;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match op().await {
            Err(e)
                if Said::of(&e) == Said::Redirected
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Records on the operation's span (see the `instrument` attributes of the trait's methods)
/// which script ran and how long it took, NOSCRIPT reload included.
fn note_script(script: &Script, started: std::time::Instant) {
    let span = tracing::Span::current();
    span.record("script", script.name);
    span.record("elapsed_ms", started.elapsed().as_secs_f64() * 1e3);
}
