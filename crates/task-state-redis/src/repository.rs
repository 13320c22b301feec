//! [`RedisTaskRepository`]: the [`TaskRepository`] on Redis.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, FunctionInterface, KeysInterface,
    LuaInterface, Pool, ReconnectPolicy, ServerConfig, Value,
};
use task_state_core::{
    compare_task_ids, format_log_entry_at, json_string, validate_name, validate_record,
    validate_task_id, validate_transition_from, BackendKind, Clock, Error, Refusal, Result, Scope,
    SystemClock, TaskList, TaskRecord, TaskRepository, TaskStatus, TaskTime, Unreadable, Zone,
};
use tracing::field::Empty;

use crate::keys;
use crate::scan;
use crate::scripts::{Script, LIBRARY, SCRIPTS};
use crate::settings::{RedisRepositorySettings, RedisUrl};

/// How many records one MGET fetches (and set members one SSCAN asks for): small enough
/// that no single command keeps Redis busy for long.
pub const BATCH_SIZE: usize = scan::PAGE;

/// The Redis backend: records, metadata and indexes in the layout of the Python
/// `task_state` package, every mutation one Lua script.
///
/// Commands on the writer pool are sent at most once: fred re-sends a command that was in
/// flight when a connection dropped, and a script that ran but whose reply was lost must not
/// run twice. Such a mutation returns an error of kind
/// [`BackendKind::ReplyLost`](task_state_core::BackendKind::ReplyLost)
/// ([`Error::is_reply_lost`]): it may or may not have been applied. A mutation is handed to
/// the client only once a connection is up; one that finds none within the command timeout
/// is [`BackendKind::Disconnected`](task_state_core::BackendKind::Disconnected), not sent, and
/// safe to retry ([`Error::is_retryable`]).
///
/// Writes go to the writer pool, reads (`get`, listings, `peek_next_task_id`) to the reader
/// pool, which may point at a replica. Clones share the pools.
///
/// ```no_run
/// # async fn run() -> task_state_core::Result<()> {
/// use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
/// use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
///
/// let settings = RedisRepositorySettings::builder()
///     .with_write_url("redis://127.0.0.1:6379/0")
///     .build()?;
/// let repo = RedisTaskRepository::connect(settings).await?;
/// let id = repo.next_task_id().await?;
/// repo.save(TaskRecord::new(id.as_str(), "render", "alice", TaskStatus::Pending)).await?;
/// repo.append_logs(&id, &["line 1".to_owned(), "line 2".to_owned()]).await?;
/// repo.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTaskRepository {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Pool,
    reader: Pool,
    /// The reader is the writer pool: close it once.
    shared: bool,
    settings: RedisRepositorySettings,
    clock: Arc<dyn Clock>,
    /// False once the server answered that it has no FCALL (Redis before 7.0): scripts then
    /// run with EVALSHA. Shared by the repositories made from this one.
    functions: Arc<std::sync::atomic::AtomicBool>,
}

impl fmt::Debug for RedisTaskRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTaskRepository")
            .field("settings", &self.inner.settings)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// What a mutation script answered.
enum Outcome {
    Missing,
    Conflict(String),
    Done(Option<String>),
}

impl RedisTaskRepository {
    /// Connects a writer pool to the write URL and, when the read URL differs, a reader
    /// pool to the read URL. Both pools reconnect by themselves after a dropped connection,
    /// with exponential back-off; a command waits for the reconnection at most the command
    /// timeout.
    ///
    /// When the read URL is the write URL (the default), reads share the writer pool, so a
    /// short-lived caller opens one connection (at [`pool_size`] 1), not two. Reads then
    /// follow the writer's rule of sending a command at most once: a read whose connection
    /// dropped mid-flight returns an error instead of being re-sent.
    ///
    /// Scripts are loaded on first use (the first `FCALL` that meets `Function not found`
    /// loads the library of functions and calls again; on Redis 6.2 the first `EVALSHA`
    /// that meets `NOSCRIPT` loads its script); [`load_scripts`](Self::load_scripts) loads
    /// them all up front for a long-running process that prefers to pay that cost at start.
    ///
    /// [`pool_size`]: RedisRepositorySettings::pool_size
    ///
    /// # Errors
    /// [`Error::Backend`] when a server cannot be reached within the connect timeout or
    /// refuses the credentials; [`Error::Config`] for a URL the client library rejects.
    /// The connect timeout bounds the whole call: a server that accepts the connection and
    /// never answers gives the error after that time, not later. Nothing stays open after an
    /// error.
    pub async fn connect(settings: RedisRepositorySettings) -> Result<Self> {
        let writer = connect_pool(settings.write_url(), &settings, 1).await?;
        // On a cluster, reads get a pool of their own even on the same URL: the writer's
        // commands are sent once, and fred follows MOVED and ASK only by sending again.
        let shared =
            settings.read_url() == settings.write_url() && !settings.write_url().is_cluster();
        let reader = if shared {
            writer.clone()
        } else {
            match connect_pool(settings.read_url(), &settings, 3).await {
                Ok(reader) => reader,
                Err(e) => {
                    close_pool(&writer, settings.command_timeout()).await;
                    return Err(e);
                }
            }
        };
        Ok(RedisTaskRepository {
            inner: Arc::new(Inner {
                writer,
                reader,
                shared,
                settings,
                clock: Arc::new(SystemClock),
                functions: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            }),
        })
    }

    /// A repository on pools the application already has, as the Python package's
    /// `RedisTaskRepository(reader, writer, ttl_seconds=, tzinfo=)`: writes go to `writer`,
    /// reads to `reader` (pass the same pool twice for one server). Nothing is sent yet: the
    /// pools should be connected (`init`), and scripts are loaded on first use.
    ///
    /// The settings it reports ([`settings`](Self::settings)) carry the pools' server
    /// addresses and credentials, so that the expiry listener can open its own connection to
    /// the same server, and the default timeouts. The writer pool should be built with
    /// `max_command_attempts = 1`, as [`connect`](Self::connect) does, so that a mutation
    /// whose reply was lost is never sent twice. [`close`](Self::close) quits both pools.
    ///
    /// On a Redis Cluster (both pools clustered), the writer pool should also have
    /// `max_redirections = 0`: fred follows a redirection only by sending the command again,
    /// so the repository follows it itself (see `docs/cluster.md`); the reader pool may
    /// keep fred's defaults.
    ///
    /// ```no_run
    /// # async fn run() -> task_state_core::Result<()> {
    /// use fred::prelude::{Builder, ClientLike, Config};
    /// use task_state_core::Zone;
    /// use task_state_redis::RedisTaskRepository;
    ///
    /// let config = Config::from_url("redis://127.0.0.1:6379/0").unwrap();
    /// let pool = Builder::from_config(config).build_pool(4).unwrap();
    /// pool.init().await.unwrap();
    /// let repo = RedisTaskRepository::from_pools(pool.clone(), pool, 86_400, Zone::utc())?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a TTL of zero, a pool of a kind this backend does not support
    /// (a unix socket), or a clustered pool with one that is not.
    pub fn from_pools(reader: Pool, writer: Pool, ttl_seconds: u64, zone: Zone) -> Result<Self> {
        let settings = RedisRepositorySettings::builder()
            .with_write_url(url_of(&writer.next().client_config())?)
            .with_read_url(url_of(&reader.next().client_config())?)
            .with_ttl_seconds(ttl_seconds)
            .with_timezone(zone.name())
            .build()?;
        Ok(RedisTaskRepository {
            inner: Arc::new(Inner {
                writer,
                reader,
                shared: false,
                settings,
                clock: Arc::new(SystemClock),
                functions: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            }),
        })
    }

    /// The same repository with another clock, for tests that fix "now".
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        let inner = &self.inner;
        RedisTaskRepository {
            inner: Arc::new(Inner {
                writer: inner.writer.clone(),
                reader: inner.reader.clone(),
                shared: inner.shared,
                settings: inner.settings.clone(),
                clock,
                functions: inner.functions.clone(),
            }),
        }
    }

    /// The same repository reading from the writer: for a caller that must read its own
    /// write back at once, where the read URL points at a replica that may lag.
    pub fn reading_from_writer(&self) -> Self {
        if self.is_cluster() {
            // On a cluster both pools read from the primaries already.
            return self.clone();
        }
        let inner = &self.inner;
        RedisTaskRepository {
            inner: Arc::new(Inner {
                writer: inner.writer.clone(),
                reader: inner.writer.clone(),
                shared: true,
                settings: inner.settings.clone(),
                clock: inner.clock.clone(),
                functions: inner.functions.clone(),
            }),
        }
    }

    /// The settings the repository was connected with.
    pub fn settings(&self) -> &RedisRepositorySettings {
        &self.inner.settings
    }

    /// The writer pool, for tools (the expiry listener, the consistency check) that need
    /// commands beyond the repository's.
    ///
    /// Its clients send a command once, and on a Redis Cluster follow no redirection: a
    /// script must not run twice, so the repository retries only what the server refused
    /// unrun. For a command that may safely be sent again, pass options that allow it, for
    /// example `client.with_options(&Options { max_redirections: Some(5), max_attempts:
    /// Some(3), ..Default::default() })` (fred's `ClientLike::with_options`).
    pub fn writer(&self) -> &Pool {
        &self.inner.writer
    }

    /// The reader pool.
    pub fn reader(&self) -> &Pool {
        &self.inner.reader
    }

    /// Closes both pools (the one pool, when reads share the writer's). Commands issued
    /// afterwards fail.
    pub async fn close(&self) {
        let timeout = self.inner.settings.command_timeout();
        close_pool(&self.inner.writer, timeout).await;
        if !self.inner.shared {
            close_pool(&self.inner.reader, timeout).await;
        }
    }

    /// Cleans the index entries of a task whose record has expired, using its metadata
    /// hash, as the Python package's `handle_task_expired` does, atomically. Does nothing
    /// (and returns `Ok(false)`) while the record still exists; an empty string is no record
    /// (as for every read): its index entries and metadata are cleaned, the string left.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id, [`Error::WrongType`] when a key of the
    /// layout has the wrong type.
    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    pub async fn handle_task_expired(&self, task_id: &str) -> Result<ExpiredCleanup> {
        validate_task_id(task_id)?;
        if self.is_cluster() {
            return crate::cluster::handle_expired(self, task_id).await;
        }
        let reply = self
            .eval(
                &SCRIPTS.remove,
                task_id,
                vec![task_id.to_owned(), "expired".to_owned(), self.ttl()],
            )
            .await?;
        let (removed, had_metadata) = int_pair(&reply);
        if removed < 0 && !self.holds_record(task_id).await? {
            // An empty string, which is no record, but `remove.lua` counts every key: the
            // cleanup in steps, each checked again (docs/cluster.md), as on a cluster.
            return crate::cluster::handle_expired(self, task_id).await;
        }
        Ok(ExpiredCleanup {
            record_exists: removed < 0,
            removed: removed > 0,
            had_metadata: had_metadata > 0,
        })
    }

    /// Loads every script into the writer's server, for a long-running process that wants
    /// the first mutation to take one round trip: the library of Redis Functions with
    /// `FUNCTION LOAD` (Redis 7.0 and later, where the repository calls them with `FCALL`),
    /// and each script with `SCRIPT LOAD` (for EVALSHA, which Redis 6.2 runs). Not needed for
    /// correctness: [`connect`](Self::connect) leaves them to be loaded on first use.
    ///
    /// ```no_run
    /// # async fn run() -> task_state_core::Result<()> {
    /// use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};
    ///
    /// let settings = RedisRepositorySettings::from_env()?;
    /// let repo = RedisTaskRepository::connect(settings).await?;
    /// repo.load_scripts().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Backend`] naming the script that could not be loaded.
    pub async fn load_scripts(&self) -> Result<()> {
        let client = self.inner.writer.next();
        if self.inner.functions.load(Ordering::Relaxed) {
            match client
                .function_load_cluster::<Value, _>(true, LIBRARY.body.as_str())
                .await
            {
                Err(e) if is_unknown_command(&e) => {
                    self.inner.functions.store(false, Ordering::Relaxed)
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
                .script_load_cluster::<String, _>(script.body)
                .await
                .map_err(|e| self.backend(e, &format!("loading script {}", script.name)))?;
        }
        Ok(())
    }

    fn now(&self) -> TaskTime {
        TaskTime::now(self.inner.clock.as_ref(), self.inner.settings.zone())
    }

    fn ttl(&self) -> String {
        self.inner.settings.ttl_seconds().to_string()
    }

    /// The record stored under `key`; a timestamp it lacks reads as now in the configured
    /// zone ([`TaskRecord::from_stored`]).
    fn decode(&self, key: &str, json: &[u8]) -> Result<TaskRecord> {
        let zone = self.inner.settings.zone();
        TaskRecord::from_stored(key, json, self.inner.clock.as_ref(), zone)
    }

    /// Runs a script on the writer (FCALL, or EVALSHA on Redis 6.2), loading it when the
    /// server lost it.
    async fn eval(&self, script: &Script, task_id: &str, args: Vec<String>) -> Result<Value> {
        let keys = vec![keys::record(task_id), keys::metadata(task_id)];
        self.eval_keys(script, keys, args)
            .await
            .map_err(|e| self.script_error(e, task_id))
    }

    /// Runs a script on the writer (FCALL, or EVALSHA on Redis 6.2), loading it when the
    /// server lost it.
    pub(crate) async fn eval_keys(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> std::result::Result<Value, FredError> {
        let started = std::time::Instant::now();
        let attempt = |keys: Vec<String>, args: Vec<String>| {
            self.on_writer(move |client| async move {
                if self.inner.functions.load(Ordering::Relaxed) {
                    match self.fcall(client, script, &keys, &args).await {
                        // Redis before 7.0: EVALSHA from now on (the server ran nothing).
                        Err(e) if is_unknown_command(&e) => {
                            tracing::info!(server = ?client.active_connections(), "no Redis Functions on the server (FCALL unknown): scripts run with EVALSHA");
                            self.inner.functions.store(false, Ordering::Relaxed);
                        }
                        other => return other,
                    }
                }
                let first = client
                    .evalsha::<Value, _, _, _>(script.sha.as_str(), keys.clone(), args.clone())
                    .await;
                match first {
                    Err(e) if e.details().starts_with("NOSCRIPT") => {
                        tracing::debug!(script = script.name, server = ?client.active_connections(), "script not on the server (NOSCRIPT): loading it");
                        // On a cluster, on every primary (a new primary after a failover has none).
                        client.script_load_cluster::<String, _>(script.body).await?;
                        client
                            .evalsha::<Value, _, _, _>(script.sha.as_str(), keys, args)
                            .await
                    }
                    other => other,
                }
            })
        };
        // On one node the keys and arguments (a whole record, for a save) are not copied
        // for retries that cannot happen: only a cluster redirects.
        let result = if self.is_cluster() {
            crate::cluster::redirected(self, || attempt(keys.clone(), args.clone())).await
        } else {
            attempt(keys, args).await
        };
        note_script(script, started);
        result
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
            Err(e) if is_function_missing(&e) => {
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

    /// Runs a mutation on a writer client once one is connected, all within the command
    /// timeout. fred queues a command while it reconnects and writes it afterwards, so a
    /// command handed to it during an outage could not be told apart, when it fails, from
    /// one whose reply was lost: handed over only once a connection is up, a mutation that
    /// found none within the timeout is known not to have been sent ([`NOT_SENT`],
    /// [`BackendKind::Disconnected`]).
    async fn on_writer<'a, T, F, Fut>(&'a self, command: F) -> std::result::Result<T, FredError>
    where
        F: FnOnce(&'a fred::clients::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, FredError>>,
    {
        let budget = self.inner.settings.command_timeout();
        let deadline = tokio::time::Instant::now() + budget;
        let client = loop {
            let client = self.inner.writer.next_connected();
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

    /// Runs one of the record-editing scripts with the common arguments.
    async fn mutate(
        &self,
        script: &Script,
        task_id: &str,
        want_record: bool,
        extra: Vec<String>,
    ) -> Result<Outcome> {
        let mut args = Vec::with_capacity(3 + extra.len());
        args.push(self.ttl());
        args.push(json_string(&self.now().to_string()));
        args.push(if want_record { "record" } else { "ack" }.to_owned());
        args.extend(extra);
        let reply = if self.is_cluster() {
            crate::cluster::edit(self, script, task_id, args).await?
        } else {
            self.eval(script, task_id, args).await?
        };
        let mut items = match reply {
            Value::Array(items) => items.into_iter(),
            other => {
                return Err(Error::backend(format!(
                    "unexpected reply from script {}: {other:?}",
                    script.name
                )))
            }
        };
        let code = items.next().and_then(|v| scan::text(&v));
        let payload = items.next().and_then(|v| scan::text(&v));
        match code.as_deref() {
            Some("missing") => Ok(Outcome::Missing),
            Some("conflict") => Ok(Outcome::Conflict(payload.unwrap_or_default())),
            Some("applied") => Ok(Outcome::Done(payload.filter(|p| !p.is_empty()))),
            _ => Err(Error::backend(format!(
                "unexpected reply from script {}",
                script.name
            ))),
        }
    }

    /// A mutation that returns the updated record.
    async fn mutate_record(
        &self,
        script: &Script,
        task_id: &str,
        extra: Vec<String>,
    ) -> Result<Option<TaskRecord>> {
        match self.mutate(script, task_id, true, extra).await? {
            Outcome::Missing => Ok(None),
            Outcome::Done(Some(json)) => self
                .decode(&keys::record(task_id), json.as_bytes())
                .map(Some),
            Outcome::Done(None) => Err(Error::backend("script returned no record")),
            Outcome::Conflict(current) => Err(conflict(task_id, &current, &[])),
        }
    }

    fn entries(&self, messages: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
        let now = self.now();
        messages
            .into_iter()
            .map(|m| json_string(&format_log_entry_at(m.as_ref(), now)))
            .collect()
    }

    async fn status_change(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&str>,
    ) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut extra = vec![json_string(to.as_str()), allowed.join(" ")];
        extra.extend(self.entries(log_entry.filter(|m| !m.is_empty())));
        match self
            .mutate(&SCRIPTS.set_status, task_id, true, extra)
            .await?
        {
            Outcome::Missing => Ok(None),
            Outcome::Conflict(current) => Err(conflict(task_id, &current, from)),
            Outcome::Done(Some(json)) => self
                .decode(&keys::record(task_id), json.as_bytes())
                .map(Some),
            Outcome::Done(None) => Err(Error::backend("script returned no record")),
        }
    }

    /// `save.lua` in `mode` `save` or `create`.
    async fn store(&self, mut record: TaskRecord, mode: &str) -> Result<TaskRecord> {
        validate_record(&record)?;
        record.updated_at = self.now();
        record.adopt_jobs_field(self.inner.settings.jobs_field());
        if self.is_cluster() {
            if crate::cluster::store(self, &record, mode).await? {
                return Ok(record);
            }
            return Err(Error::AlreadyExists {
                task_id: record.task_id,
            });
        }
        let json = record.to_json();
        // Where the members of a quick edit stand: the save leaves a layout hint with them.
        let hint = crate::positions::save_hint(&json, &record.service, &record.user_id);
        let args = vec![
            self.ttl(),
            record.task_id.clone(),
            record.service.clone(),
            record.user_id.clone(),
            json,
            mode.to_owned(),
            hint,
        ];
        let reply = self.eval(&SCRIPTS.save, &record.task_id, args).await?;
        if scan::text(&reply).as_deref() == Some("EXISTS") {
            return Err(Error::AlreadyExists {
                task_id: record.task_id,
            });
        }
        Ok(record)
    }

    /// The stored bytes of a task's record, exactly as they are, or `None`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id, [`Error::WrongType`] when the key holds
    /// another type.
    pub async fn get_raw(&self, task_id: &str) -> Result<Option<Vec<u8>>> {
        validate_task_id(task_id)?;
        let key = keys::record(task_id);
        let value: Value = self
            .inner
            .reader
            .next()
            .get(&key)
            .await
            .map_err(|e| self.read_error(e, &key, "string"))?;
        match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
            Value::Bytes(b) => Ok(Some(b.to_vec())),
            other => Err(Error::decode(key, format!("unexpected value {other:?}"))),
        }
    }

    /// Whether `task:{id}` holds a record, on the writer (see [`scan::holds_record`]).
    pub(crate) async fn holds_record(&self, task_id: &str) -> Result<bool> {
        let key = keys::record(task_id);
        let held = scan::holds_record(self.inner.writer.next(), [key.clone()])
            .await
            .map_err(|e| self.backend(e, &format!("reading {key}")))?;
        Ok(held.first().copied().unwrap_or(false))
    }

    /// Every member of a set, SSCAN by SSCAN, without duplicates; then those that are not
    /// UTF-8, [escaped](scan::escaped).
    pub(crate) async fn scan_set(&self, key: &str) -> Result<(Vec<String>, Vec<String>)> {
        let client = self.inner.reader.next();
        let mut seen = HashSet::new();
        let mut members = Vec::new();
        let mut not_utf8 = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let page = scan::members_page(client, key, &cursor)
                .await
                .map_err(|e| self.read_error(e, key, "set"))?;
            for member in page.items {
                if seen.insert(member.clone()) {
                    members.push(member);
                }
            }
            not_utf8.extend(page.not_utf8);
            if page.next == "0" {
                not_utf8.sort();
                not_utf8.dedup();
                return Ok((members, not_utf8));
            }
            cursor = page.next;
        }
    }

    /// The error for a failed command that changes nothing (a read, or a repair that checks
    /// before it writes): [`Error::Refused`] when the server refused it for a reason of its
    /// own state (out of memory, read-only, ...), else [`Error::Backend`].
    pub(crate) fn backend(&self, e: FredError, context: &str) -> Error {
        self.failed(e, context, false)
    }

    /// As [`backend`](Self::backend), for a mutation: a timeout or a broken connection is
    /// [`BackendKind::ReplyLost`], since the command may have run.
    fn backend_write(&self, e: FredError, context: &str) -> Error {
        self.failed(e, context, true)
    }

    fn failed(&self, e: FredError, context: &str, mutation: bool) -> Error {
        let urls = [
            self.inner.settings.write_url(),
            self.inner.settings.read_url(),
        ];
        if let Some(refused) = refused(&e, context, &urls) {
            return refused;
        }
        Error::Backend {
            kind: kind_of(&e, mutation),
            message: scrub(&format!("{context}: {}", describe(&e)), &urls),
            source: Some(Box::new(e)),
        }
    }

    pub(crate) fn read_error(&self, e: FredError, key: &str, expected: &'static str) -> Error {
        if e.details().starts_with("WRONGTYPE") {
            return Error::WrongType {
                key: key.to_owned(),
                expected,
            };
        }
        self.backend(e, &format!("reading {key}"))
    }

    pub(crate) fn script_error(&self, e: FredError, task_id: &str) -> Error {
        self.script_error_at(
            e,
            (&keys::record(task_id), "string"),
            &format!("updating task {task_id:?}"),
        )
    }

    /// The error of a failed script that may have written (a mutation or a repair): the
    /// typed error it raised ([`typed_script_error`]), [`Error::WrongType`] of `first` (its
    /// first key, which holds `expected`) for a bare `WRONGTYPE`, else as
    /// [`backend_write`](Self::backend_write) with `context`.
    pub(crate) fn script_error_at(
        &self,
        e: FredError,
        (first, expected): (&str, &'static str),
        context: &str,
    ) -> Error {
        if let Some(error) = typed_script_error(e.details()) {
            return error;
        }
        if e.details().contains("WRONGTYPE") {
            return Error::WrongType {
                key: first.to_owned(),
                expected,
            };
        }
        self.backend_write(e, context)
    }
}

/// What opens an id of [`TaskRepository::list_ids`] that stands for an index member that is
/// not UTF-8, followed by its escaped bytes: a control character, which no task id has, so
/// that [`TaskRepository::list_by_ids`] reports it as unreadable (named by its escaped
/// bytes) and a caller that does not know the mark rejects it as an invalid id.
const NOT_UTF8: char = '\u{0}';

/// The refusal that a server's error reply names, with the server's words from its code on
/// (without the ` script: …` that Redis 7 appends). The code opens a command's own reply, and
/// a script's on Redis 7 (`OOM command not allowed … script: …`); Redis 6.2 wraps an error
/// raised inside a script (`Error running script (call to f_…): @user_script:12:
/// @user_script: 12: -OOM command not allowed …`), so a code is also found as a word after a
/// space or a `-`.
fn refusal(details: &str) -> Option<(Refusal, &str)> {
    let starts = std::iter::once(0).chain(
        details
            .char_indices()
            .filter(|(_, c)| *c == ' ' || *c == '-')
            .map(|(i, _)| i + 1),
    );
    for start in starts {
        let rest = &details[start..];
        let word = rest.split(' ').next().unwrap_or_default();
        if let Some(refusal) = Refusal::from_code(word) {
            let words = rest.split(" script: ").next().unwrap_or(rest);
            return Some((refusal, words.trim_end()));
        }
    }
    None
}

/// [`Error::Refused`] for an error that is a refusal, with the context and without any
/// password of `urls`.
fn refused(e: &FredError, context: &str, urls: &[&RedisUrl]) -> Option<Error> {
    let (reason, words) = refusal(e.details())?;
    Some(Error::Refused {
        reason,
        message: scrub(&format!("{context}: {words}"), urls),
    })
}

/// The typed error a script raised with `fail(kind, key, detail)` (see `lua/lib/errors.lua`):
/// `TSWRONGTYPE\x1f<key>\x1f<expected>\x1f`, `TSDECODE\x1f<key>\x1f<reason>\x1f` or
/// `TSINVALID\x1f<argument>\x1f<reason>\x1f`,
/// wherever in the message Redis put it.
pub(crate) fn typed_script_error(details: &str) -> Option<Error> {
    for kind in ["TSWRONGTYPE", "TSDECODE", "TSINVALID"] {
        let Some(start) = details.find(&format!("{kind}\x1f")) else {
            continue;
        };
        let mut fields = details[start + kind.len() + 1..].split('\x1f');
        let key = fields.next()?.to_owned();
        let detail = fields.next().unwrap_or_default();
        return Some(if kind == "TSWRONGTYPE" {
            Error::WrongType {
                key,
                expected: match detail {
                    "hash" => "hash",
                    "set" => "set",
                    _ => "string",
                },
            }
        } else if kind == "TSINVALID" {
            Error::InvalidInput {
                field: match key.as_str() {
                    "ttl" => "ttl",
                    "jobs field" => "jobs field",
                    _ => "script argument",
                },
                value: String::new(),
                reason: detail.to_owned(),
            }
        } else {
            Error::Decode {
                key,
                reason: detail.to_owned(),
            }
        });
    }
    None
}

/// What [`RedisTaskRepository::handle_task_expired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredCleanup {
    /// The record still exists: nothing was done.
    pub record_exists: bool,
    /// Index entries (or the metadata hash) were removed.
    pub removed: bool,
    /// The metadata hash was there to say which indexes to clean.
    pub had_metadata: bool,
}

/// The URL that reaches the server of a client configuration: the inverse of
/// [`client_config`] for a single server or a Sentinel group.
fn url_of(config: &Config) -> Result<String> {
    #[cfg(feature = "tls")]
    let tls = config.tls.is_some();
    #[cfg(not(feature = "tls"))]
    let tls = false;
    let scheme = if tls { "rediss" } else { "redis" };
    let (scheme, first, query) = match &config.server {
        ServerConfig::Centralized { server } => (scheme.to_owned(), server, String::new()),
        ServerConfig::Sentinel {
            hosts,
            service_name,
            password,
            ..
        } => {
            let first = hosts
                .first()
                .ok_or_else(|| Error::Config("a Sentinel pool without hosts".to_owned()))?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("sentinelServiceName", service_name);
            for host in &hosts[1..] {
                query.append_pair("node", &format!("{}:{}", host.host, host.port));
            }
            if let Some(password) = password {
                query.append_pair("sentinelPassword", password);
            }
            (format!("{scheme}-sentinel"), first, query.finish())
        }
        ServerConfig::Clustered { hosts, .. } => {
            let first = hosts
                .first()
                .ok_or_else(|| Error::Config("a cluster pool without hosts".to_owned()))?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for host in &hosts[1..] {
                query.append_pair("node", &format!("{}:{}", host.host, host.port));
            }
            (format!("{scheme}-cluster"), first, query.finish())
        }
        // Unix sockets, when another crate turns on fred's feature for them.
        #[allow(unreachable_patterns)]
        _ => {
            return Err(Error::Config(
                "only pools on one server, a Sentinel group or a cluster are supported".to_owned(),
            ))
        }
    };
    let mut url = url::Url::parse(&format!("{scheme}://{}:{}/", first.host, first.port))
        .map_err(|e| Error::Config(format!("the pool's server address: {e}")))?;
    if let Some(user) = &config.username {
        let _ = url.set_username(user);
    }
    if let Some(password) = &config.password {
        let _ = url.set_password(Some(password));
    }
    url.set_path(&config.database.unwrap_or(0).to_string());
    if !query.is_empty() {
        url.set_query(Some(&query));
    }
    Ok(url.into())
}

/// The client configuration for `url`: what fred reads from the URL, with the CA file of the
/// settings as the TLS trust roots when one is set.
pub(crate) fn client_config(url: &RedisUrl, settings: &RedisRepositorySettings) -> Result<Config> {
    #[allow(unused_mut)]
    let mut config = Config::from_url(url.expose())
        .map_err(|e| Error::Config(scrub(&format!("{url}: {}", describe(&e)), &[url])))?;
    #[cfg(feature = "tls")]
    if let (Some(path), Some(_)) = (settings.tls_ca_file(), config.tls.as_ref()) {
        config.tls = Some(tls_with_roots(path)?.into());
    }
    #[cfg(not(feature = "tls"))]
    let _ = settings;
    Ok(config)
}

#[cfg(feature = "tls")]
fn tls_with_roots(path: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |reason: String| {
        Error::Config(format!(
            "{}: {}: {reason}",
            crate::settings::TLS_CA_FILE_VAR,
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// `attempts`: how often a command may be sent; 1 on the writer, whose commands must not be
/// re-sent after a dropped connection.
pub(crate) async fn connect_pool(
    url: &RedisUrl,
    settings: &RedisRepositorySettings,
    attempts: u32,
) -> Result<Pool> {
    let config = client_config(url, settings)?;
    let connect_timeout = settings.connect_timeout();
    let command_timeout = settings.command_timeout();
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = connect_timeout;
            c.max_command_attempts = attempts;
            if attempts == 1 && url.is_cluster() {
                // A redirection then comes back as an error the repository retries
                // itself (the server did not run the command): see `cluster::redirected`.
                c.max_redirections = 0;
            }
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build_pool(settings.pool_size())
        .map_err(|e| Error::Config(scrub(&format!("{url}: {}", describe(&e)), &[url])))?;
    let fail = |message: String, source: Option<FredError>| {
        let context = format!("connecting to {url}");
        if let Some(refused) = source.as_ref().and_then(|e| refused(e, &context, &[url])) {
            return refused;
        }
        let kind = match source.as_ref().map(|e| kind_of(e, false)) {
            Some(BackendKind::Auth) => BackendKind::Auth,
            Some(BackendKind::Timeout) | None => BackendKind::Connect { timed_out: true },
            Some(_) => BackendKind::Connect { timed_out: false },
        };
        Error::Backend {
            kind,
            message: scrub(&message, &[url]),
            source: source.map(|e| Box::new(e) as task_state_core::BoxError),
        }
    };
    // `connect_pool` hands back each client's connection task, so that a pool that never
    // connected can be stopped at once: a QUIT to a server that does not answer would wait
    // for another timeout (fred's `init` keeps no handle once its future is dropped).
    let tasks = pool.connect_pool();
    // fred's handshake (PING or HELLO/AUTH, SELECT, CLIENT ID, INFO) has run when the pool
    // reports itself connected, so no PING of our own is needed.
    let connected = tokio::time::timeout(connect_timeout, async {
        tokio::select! {
            result = pool.wait_for_connect() => result,
            () = all_connected(&pool) => Ok(()),
        }
    })
    .await;
    let result = match connected {
        Err(_) => Err(fail(
            format!("cannot connect to {url} within {connect_timeout:?}"),
            None,
        )),
        // fred's own handshake timeout is the same length: the same message either way.
        Ok(Err(e)) if *e.kind() == ErrorKind::Timeout => Err(fail(
            format!("cannot connect to {url} within {connect_timeout:?}"),
            Some(e),
        )),
        Ok(Err(e)) => Err(fail(
            format!("cannot connect to {url}: {}", describe(&e)),
            Some(e),
        )),
        Ok(Ok(())) => Ok(()),
    };
    match result {
        Ok(()) => {
            log_connection_events(&pool, url);
            tracing::info!(%url, size = pool.size(), "connected to Redis");
            Ok(pool)
        }
        Err(e) => {
            for task in tasks {
                task.abort();
            }
            Err(e)
        }
    }
}

/// Logs a connected pool's connection events: a lost connection (a warning, once per
/// outage; the failed attempts after it at debug), the reconnection (info, with how long the
/// connection was down), and a reconnection to another server than before (a warning), as
/// after a Sentinel failover. The listeners end with the pool's clients.
fn log_connection_events(pool: &Pool, url: &RedisUrl) {
    use fred::interfaces::EventInterface;
    use std::sync::{Mutex, PoisonError};
    /// The pool's link, shared by its clients: one warning when the first loses its
    /// connection, one line when the last is back.
    struct Link {
        server: Option<fred::types::config::Server>,
        down: HashSet<usize>,
        down_since: Option<std::time::Instant>,
    }
    let link = Arc::new(Mutex::new(Link {
        server: pool.active_connections().into_iter().next(),
        down: HashSet::new(),
        down_since: None,
    }));
    for (i, client) in pool.clients().iter().enumerate() {
        let (on_error, error_url, watched) = (link.clone(), url.clone(), client.clone());
        // Detached: each listener ends when its client is dropped.
        drop(client.on_error(move |(error, server)| {
            let url = &error_url;
            // `close` (QUIT) ends the connection on purpose.
            if watched.state() == fred::types::ClientState::Disconnecting {
                return std::future::ready(Ok(()));
            }
            let error = scrub(error.details(), &[url]);
            let server = server.map(|s| s.to_string()).unwrap_or_default();
            let mut link = on_error.lock().unwrap_or_else(PoisonError::into_inner);
            if link.down.is_empty() {
                link.down_since = Some(std::time::Instant::now());
                tracing::warn!(%url, server, error, "connection to Redis lost; reconnecting");
            } else {
                tracing::debug!(%url, server, error, client = i, "connection to Redis failed");
            }
            link.down.insert(i);
            std::future::ready(Ok(()))
        }));
        let (link, url) = (link.clone(), url.clone());
        drop(client.on_reconnect(move |server| {
            let mut link = link.lock().unwrap_or_else(PoisonError::into_inner);
            link.down.remove(&i);
            if let Some(before) = link.server.replace(server.clone()).filter(|b| *b != server) {
                tracing::warn!(%url, from = %before, to = %server, "reconnected to another server than before (a failover)");
            }
            match link.down_since.filter(|_| link.down.is_empty()) {
                Some(since) => {
                    link.down_since = None;
                    let down_ms = since.elapsed().as_millis() as u64;
                    tracing::info!(%url, %server, down_ms, "reconnected to Redis");
                }
                None => tracing::debug!(%url, %server, client = i, "client reconnected"),
            }
            std::future::ready(Ok(()))
        }));
    }
}

/// Returns once every client of `pool` is connected. fred's `wait_for_connect` reads a
/// client's state and then subscribes to its connect event: a connection made between the two
/// is never announced to it, and it waits forever (seen on a loaded machine). Watching the
/// state as well closes that gap; `wait_for_connect` still reports a failed first attempt.
async fn all_connected(pool: &Pool) {
    while !pool.clients().iter().all(|client| client.is_connected()) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// QUITs a pool, waiting at most `timeout` (a stalled server may never answer the QUIT).
async fn close_pool(pool: &Pool, timeout: std::time::Duration) {
    let _ = tokio::time::timeout(timeout, pool.quit()).await;
}

/// Records on the operation's span (see the `instrument` attributes of the trait's methods)
/// which script ran and how long it took, NOSCRIPT reload included.
fn note_script(script: &Script, started: std::time::Instant) {
    let span = tracing::Span::current();
    span.record("script", script.name);
    span.record("elapsed_ms", started.elapsed().as_secs_f64() * 1e3);
}

/// The error of a mutation that found no connection within the command timeout, and so was
/// never handed to fred (see `RedisTaskRepository::on_writer`).
const NOT_SENT: &str = "no connection within the command timeout; not sent";

/// What kind of failure a command's error is. A mutation is handed to fred only on a
/// connected client, so for a mutation every timeout or broken connection may have come after
/// the write: [`BackendKind::ReplyLost`]. (fred may still queue it, if the connection drops
/// just then, and write it after a reconnection.)
pub(crate) fn kind_of(e: &FredError, mutation: bool) -> BackendKind {
    if e.details() == NOT_SENT {
        return BackendKind::Disconnected;
    }
    let auth = ["NOAUTH", "WRONGPASS", "NOPERM"]
        .iter()
        .any(|code| e.details().starts_with(code));
    match e.kind() {
        ErrorKind::Auth => BackendKind::Auth,
        _ if auth => BackendKind::Auth,
        ErrorKind::Timeout if mutation => BackendKind::ReplyLost { timed_out: true },
        ErrorKind::IO | ErrorKind::Canceled if mutation => {
            BackendKind::ReplyLost { timed_out: false }
        }
        ErrorKind::Timeout => BackendKind::Timeout,
        ErrorKind::IO | ErrorKind::Canceled => BackendKind::Disconnected,
        _ => BackendKind::Other,
    }
}

fn describe(e: &FredError) -> String {
    // fred shows an io::Error with its Debug form; its message is what a person needs.
    if let Some(start) = e.details().find("message: \"") {
        let rest = &e.details()[start + 10..];
        if let Some(end) = rest.find('"') {
            return rest[..end].to_owned();
        }
    }
    match e.kind() {
        ErrorKind::Timeout => format!("timed out ({})", e.details()),
        ErrorKind::Auth => format!("authentication failed ({})", e.details()),
        _ => e.details().to_owned(),
    }
}

/// Removes any password of `urls` that a message might carry: the password of every URL in
/// it, whatever its length, and the passwords of `urls` wherever else they appear, when they
/// are long enough (3 bytes) not to mask ordinary words.
pub(crate) fn scrub(message: &str, urls: &[&RedisUrl]) -> String {
    let mut message = crate::redact::mask_url_passwords(message);
    for url in urls {
        if let Ok(parsed) = url::Url::parse(url.expose()) {
            if let Some(password) = parsed.password().filter(|p| p.len() >= 3) {
                message = message.replace(password, "***");
                if let Ok(decoded) = urlencoding_decode(password) {
                    message = message.replace(&decoded, "***");
                }
            }
        }
    }
    message
}

fn urlencoding_decode(text: &str) -> std::result::Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

fn int_pair(value: &Value) -> (i64, i64) {
    let int = |v: Option<&Value>| match v {
        Some(Value::Integer(i)) => *i,
        Some(other) => scan::text(other).and_then(|s| s.parse().ok()).unwrap_or(0),
        None => 0,
    };
    match value {
        Value::Array(items) => (int(items.first()), int(items.get(1))),
        _ => (0, 0),
    }
}

fn conflict(task_id: &str, current: &str, expected: &[TaskStatus]) -> Error {
    match current.parse::<TaskStatus>() {
        Ok(current) => Error::Conflict {
            task_id: task_id.to_owned(),
            current,
            expected: expected.to_vec(),
        },
        Err(_) => Error::decode(keys::record(task_id), format!("unknown status {current:?}")),
    }
}

#[async_trait]
impl TaskRepository for RedisTaskRepository {
    #[tracing::instrument(level = "info", skip_all, fields(task_id = %record.task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn save(&self, record: TaskRecord) -> Result<TaskRecord> {
        self.store(record, "save").await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = %record.task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn create(&self, record: TaskRecord) -> Result<TaskRecord> {
        self.store(record, "create").await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id), err(level = "debug"))]
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>> {
        match self.get_raw(task_id).await? {
            // An empty string is no record, as Python's `if not raw: return None`.
            None => Ok(None),
            Some(bytes) if bytes.is_empty() => Ok(None),
            Some(bytes) => self.decode(&keys::record(task_id), &bytes).map(Some),
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn delete(&self, task_id: &str) -> Result<bool> {
        validate_task_id(task_id)?;
        if self.is_cluster() {
            return crate::cluster::delete(self, task_id).await;
        }
        let reply = self
            .eval(
                &SCRIPTS.remove,
                task_id,
                vec![task_id.to_owned(), "delete".to_owned(), self.ttl()],
            )
            .await?;
        Ok(int_pair(&reply).0 > 0)
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, %status, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn set_status<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        self.status_change(task_id, &[], status, log_entry).await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, to = %to, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn transition<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        validate_transition_from(from)?;
        self.status_change(task_id, from, to, log_entry).await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn append_log(&self, task_id: &str, message: &str) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        let entries = self.entries([message]);
        self.mutate_record(&SCRIPTS.append_log, task_id, entries)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, lines = messages.len(), script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn append_logs(&self, task_id: &str, messages: &[String]) -> Result<bool> {
        validate_task_id(task_id)?;
        if messages.is_empty() {
            // On the writer, as a write would be: a lagging replica may not have the task yet.
            let key = keys::record(task_id);
            let exists: i64 =
                crate::cluster::redirected(self, || self.inner.writer.next().exists(&key))
                    .await
                    .map_err(|e| self.backend(e, &format!("reading {key}")))?;
            return Ok(exists > 0);
        }
        let entries = self.entries(messages);
        match self
            .mutate(&SCRIPTS.append_log, task_id, false, entries)
            .await?
        {
            Outcome::Missing => Ok(false),
            _ => Ok(true),
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn update_result<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        if pod_status.is_none() && launcher_output.is_none() {
            return self.get(task_id).await;
        }
        let encode = |v: Option<&str>| v.map(json_string).unwrap_or_default();
        let extra = vec![encode(pod_status), encode(launcher_output)];
        self.mutate_record(&SCRIPTS.update_result, task_id, extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, jobs = jobs.len(), script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn set_jobs(&self, task_id: &str, jobs: &[String]) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        let jobs = task_state_core::serde_json::to_string(jobs)
            .map_err(|e| Error::backend(format!("encoding job ids: {e}")))?;
        let field = self.inner.settings.jobs_field().as_str().to_owned();
        self.mutate_record(&SCRIPTS.set_jobs, task_id, vec![jobs, field])
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(?scope), err(level = "debug"))]
    async fn list_ids(&self, scope: &Scope) -> Result<Vec<String>> {
        scope.validate()?;
        let (mut ids, not_utf8) = self.scan_set(&keys::scope_index(scope)).await?;
        // Given, marked, so that `list_by_ids` reports each as unreadable instead of the
        // listing leaving it out unsaid.
        ids.extend(not_utf8.into_iter().map(|m| format!("{NOT_UTF8}{m}")));
        ids.sort_by(|a, b| compare_task_ids(a, b));
        Ok(ids)
    }

    #[tracing::instrument(level = "info", skip_all, fields(tasks = task_ids.len()), err(level = "debug"))]
    async fn list_by_ids(&self, task_ids: &[String]) -> Result<TaskList> {
        let mut list = TaskList::default();
        let mut valid = Vec::with_capacity(task_ids.len());
        for id in task_ids {
            if let Some(escaped) = id.strip_prefix(NOT_UTF8) {
                list.unreadable.push(Unreadable {
                    task_id: id.clone(),
                    error: Error::decode(
                        keys::record(escaped),
                        "the task id in the index is not UTF-8",
                    ),
                });
                continue;
            }
            match validate_task_id(id) {
                Ok(()) => valid.push(id.as_str()),
                Err(error) => list.unreadable.push(Unreadable {
                    task_id: id.clone(),
                    error,
                }),
            }
        }
        let client = self.inner.reader.next();
        for chunk in valid.chunks(BATCH_SIZE) {
            let keys: Vec<String> = chunk.iter().map(|id| keys::record(id)).collect();
            // On a cluster the records are in many slots: one GET each, pipelined.
            let values: Vec<Value> = if self.is_cluster() {
                crate::cluster::get_each(client, keys.clone()).await
            } else {
                client.mget(keys.clone()).await
            }
            .map_err(|e| self.backend(e, "reading records"))?;
            let mut absent = Vec::new();
            for ((id, key), value) in chunk.iter().zip(&keys).zip(values) {
                let decoded = match value {
                    Value::Null => {
                        absent.push((*id, key));
                        continue;
                    }
                    // No record, as for `get`: Python's listing skips it too.
                    Value::String(s) if s.is_empty() => continue,
                    Value::Bytes(b) if b.is_empty() => continue,
                    Value::String(s) => self.decode(key, s.as_bytes()),
                    Value::Bytes(b) => self.decode(key, &b),
                    other => Err(Error::decode(
                        key.clone(),
                        format!("unexpected value {other:?}"),
                    )),
                };
                match decoded {
                    Ok(record) => list.records.push(record),
                    Err(error) => list.unreadable.push(Unreadable {
                        task_id: (*id).to_owned(),
                        error,
                    }),
                }
            }
            // MGET answers nil both for a missing key and for a key of another type.
            if !absent.is_empty() {
                let keys: Vec<String> = absent.iter().map(|(_, key)| (*key).clone()).collect();
                let exists = scan::per_key(client, "EXISTS", keys)
                    .await
                    .map_err(|e| self.backend(e, "checking keys"))?;
                for ((id, key), exists) in absent.iter().zip(exists) {
                    if exists > 0 {
                        list.unreadable.push(Unreadable {
                            task_id: (*id).to_owned(),
                            error: Error::WrongType {
                                key: (*key).clone(),
                                expected: "string",
                            },
                        });
                    }
                }
            }
        }
        list.records
            .sort_by(|a, b| compare_task_ids(&a.task_id, &b.task_id));
        Ok(list)
    }

    #[tracing::instrument(level = "info", skip_all, fields(service = service), err(level = "debug"))]
    async fn list_users_by_service(&self, service: &str) -> Result<Vec<String>> {
        validate_name("service", service)?;
        let key = keys::service_users(service);
        let (mut users, not_utf8) = self.scan_set(&key).await?;
        for member in not_utf8 {
            tracing::warn!(key, member, "skipped a user that is not UTF-8");
        }
        users.sort();
        Ok(users)
    }

    #[tracing::instrument(level = "info", skip_all, err(level = "debug"))]
    async fn next_task_id(&self) -> Result<String> {
        let id: i64 = crate::cluster::redirected(self, || {
            self.on_writer(|client| client.incr(keys::SEQUENCE))
        })
        .await
        .map_err(|e| match e.details() {
            d if d.starts_with("WRONGTYPE") || d.contains("not an integer") => {
                Error::decode(keys::SEQUENCE, d.to_owned())
            }
            _ => self.backend_write(e, "taking the next task id"),
        })?;
        Ok(id.to_string())
    }

    #[tracing::instrument(level = "info", skip_all, err(level = "debug"))]
    async fn peek_next_task_id(&self) -> Result<String> {
        let value: Option<String> = self
            .inner
            .reader
            .next()
            .get(keys::SEQUENCE)
            .await
            .map_err(|e| self.read_error(e, keys::SEQUENCE, "string"))?;
        match value {
            None => Ok("1".to_owned()),
            Some(text) => {
                // Python's `int(raw) + 1` has no upper limit: one past i64::MAX (which INCR
                // stops at) is still an answer.
                let current: i128 = text.trim().parse().map_err(|_| {
                    Error::decode(keys::SEQUENCE, format!("{text:?} is not an integer"))
                })?;
                let next = current.checked_add(1).ok_or_else(|| {
                    Error::decode(keys::SEQUENCE, format!("{text:?} is out of range"))
                })?;
                Ok(next.to_string())
            }
        }
    }
}

/// The server's answer to a function it does not have (`ERR Function not found`).
fn is_function_missing(e: &FredError) -> bool {
    e.details().contains("Function not found")
}

/// The server's answer to a command it does not know, as Redis 6.2 answers `FCALL`.
fn is_unknown_command(e: &FredError) -> bool {
    e.details().to_ascii_lowercase().contains("unknown command")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_errors_are_typed_whatever_redis_wraps_around_them() {
        let redis7 = "TSDECODE\x1ftask:1\x1fnot a JSON object\x1f script: 9a, on @user_script:12.";
        let redis62 = "Error running script (call to f_9a): @user_script:12: \
                       TSWRONGTYPE\x1findex:user:a b\x1fset\x1f";
        assert!(matches!(
            typed_script_error(redis7),
            Some(Error::Decode { ref key, ref reason }) if key == "task:1" && reason == "not a JSON object"
        ));
        assert!(matches!(
            typed_script_error(redis62),
            Some(Error::WrongType { ref key, expected: "set" }) if key == "index:user:a b"
        ));
        assert!(typed_script_error("ERR something else").is_none());
    }

    #[test]
    fn failures_are_classified_by_what_the_command_may_have_done() {
        let e = |kind, details: &str| FredError::new(kind, details.to_owned());
        let timeout = e(ErrorKind::Timeout, "Request timed out.");
        let closed = e(ErrorKind::IO, "Connection closed.");
        assert_eq!(kind_of(&timeout, false), BackendKind::Timeout);
        assert_eq!(
            kind_of(&timeout, true),
            BackendKind::ReplyLost { timed_out: true }
        );
        assert_eq!(kind_of(&closed, false), BackendKind::Disconnected);
        assert_eq!(
            kind_of(&closed, true),
            BackendKind::ReplyLost { timed_out: false }
        );
        // Never handed to the client: not sent, whatever the command.
        let not_sent = e(ErrorKind::Canceled, NOT_SENT);
        assert_eq!(kind_of(&not_sent, true), BackendKind::Disconnected);
        for details in [
            "NOAUTH Authentication required.",
            "NOPERM this user has no permissions",
        ] {
            assert_eq!(
                kind_of(&e(ErrorKind::Unknown, details), true),
                BackendKind::Auth
            );
        }
        assert_eq!(
            kind_of(&e(ErrorKind::Protocol, "bad frame"), true),
            BackendKind::Other
        );
    }

    #[test]
    fn short_passwords_are_scrubbed_without_mangling_the_message() {
        let url = RedisUrl::parse("redis://worker:ab@127.0.0.1:1/0").unwrap();
        let message = "cannot connect to redis://worker:ab@127.0.0.1:1/0: a tab about ab";
        assert_eq!(
            scrub(message, &[&url]),
            "cannot connect to redis://worker:***@127.0.0.1:1/0: a tab about ab"
        );
        let long = RedisUrl::parse("redis://:hunter22@h/0").unwrap();
        assert_eq!(scrub("auth hunter22 failed", &[&long]), "auth *** failed");
    }

    #[test]
    fn refusals_are_found_wherever_redis_puts_their_code() {
        let cases = [
            // A command's own reply.
            ("LOADING Redis is loading the dataset in memory", Refusal::Loading),
            ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", Refusal::BusyScript),
            ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", Refusal::PrimaryDown),
            // Raised inside a script, Redis 7.
            ("OOM command not allowed when used memory > 'maxmemory'. script: 9a, on @user_script:486.", Refusal::OutOfMemory),
            ("READONLY You can't write against a read only replica. script: 9a, on @user_script:486.", Refusal::ReadOnlyReplica),
            // Raised inside a script, Redis 6.2.
            ("ERR Error running script (call to f_9a): @user_script:247: @user_script: 247: -NOREPLICAS Not enough good replicas to write.", Refusal::NotEnoughReplicas),
            ("Error running script (call to f_9a): @user_script:1: @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.", Refusal::OutOfMemory),
        ];
        for (details, want) in cases {
            let (found, words) = refusal(details).unwrap_or_else(|| panic!("{details}"));
            assert_eq!(found, want, "{details}");
            assert!(words.starts_with(want.code()), "{words}");
            assert!(!words.contains("script: 9a"), "{words}");
        }
        for other in [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR value is not an integer or out of range",
            "BUSYKEY Target key name already exists.",
            "NOSCRIPT No matching script. Please use EVAL.",
            "ERR Error running script (call to f_9a): @user_script:1: TSDECODE\x1ftask:1\x1fOOM\x1f",
        ] {
            assert!(refusal(other).is_none(), "{other}");
        }
    }
}
