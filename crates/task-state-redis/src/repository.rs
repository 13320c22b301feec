//! [`RedisTaskRepository`]: the [`TaskRepository`] on Redis.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::{KeysInterface, Pool};
use task_state_core::{
    compare_task_ids, validate_name, validate_task_id, validate_transition_from, Clock, Error,
    Result, Scope, SystemClock, TaskList, TaskRecord, TaskRepository, TaskStatus, TaskTime,
    Unreadable,
};
use tracing::field::Empty;

use crate::cluster;
use crate::connection::{close_pool, connect_pool};
use crate::execution::{Executor, ExpiredCleanup, Topology};
use crate::keys;
use crate::reads;
use crate::replies::int_pair;
use crate::scan;
use crate::scripts::SCRIPTS;
use crate::settings::RedisRepositorySettings;

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
    /// The writer pool and the way scripts run on it; shared by the repositories made from
    /// this one.
    exec: Executor,
    reader: Pool,
    /// The reader is the writer pool: close it once.
    shared: bool,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RedisTaskRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTaskRepository")
            .field("settings", self.settings())
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
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
        Ok(Self::on_pools(writer, reader, shared, settings))
    }

    /// The repository on pools already connected: writes (and scripts) on `writer`, reads on
    /// `reader`, which is the writer's pool when `shared`.
    pub(crate) fn on_pools(
        writer: Pool,
        reader: Pool,
        shared: bool,
        settings: RedisRepositorySettings,
    ) -> Self {
        RedisTaskRepository {
            inner: Arc::new(Inner {
                exec: Executor::new(writer, settings),
                reader,
                shared,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// The same repository with another clock, for tests that fix "now".
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        let inner = &self.inner;
        RedisTaskRepository {
            inner: Arc::new(Inner {
                exec: inner.exec.clone(),
                reader: inner.reader.clone(),
                shared: inner.shared,
                clock,
            }),
        }
    }

    /// The same repository reading from the writer: for a caller that must read its own
    /// write back at once, where the read URL points at a replica that may lag.
    pub fn reading_from_writer(&self) -> Self {
        let inner = &self.inner;
        match inner.exec.topology() {
            // On a cluster both pools read from the primaries already.
            Topology::Cluster => self.clone(),
            Topology::SingleNode => RedisTaskRepository {
                inner: Arc::new(Inner {
                    exec: inner.exec.clone(),
                    reader: inner.exec.writer().clone(),
                    shared: true,
                    clock: inner.clock.clone(),
                }),
            },
        }
    }

    /// The settings the repository was connected with.
    pub fn settings(&self) -> &RedisRepositorySettings {
        self.inner.exec.settings()
    }

    /// True when the repository is connected to a Redis Cluster (`redis-cluster://`).
    pub fn is_cluster(&self) -> bool {
        self.inner.exec.topology() == Topology::Cluster
    }

    /// The writer and the way commands run on it, for the tools of this crate.
    pub(crate) fn exec(&self) -> &Executor {
        &self.inner.exec
    }

    /// The writer pool, for this crate's tools (the expiry listener, the consistency check)
    /// that need commands beyond the repository's. Outside the crate, only behind the
    /// feature `fred-escape-hatch` ([`raw_writer`](Self::raw_writer)).
    pub(crate) fn writer(&self) -> &Pool {
        self.inner.exec.writer()
    }

    /// The reader pool.
    pub(crate) fn reader(&self) -> &Pool {
        &self.inner.reader
    }

    /// Closes both pools (the one pool, when reads share the writer's). Commands issued
    /// afterwards fail.
    pub async fn close(&self) {
        let timeout = self.settings().command_timeout();
        close_pool(self.writer(), timeout).await;
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
        let exec = self.exec();
        if exec.topology() == Topology::Cluster {
            return cluster::handle_expired(exec, task_id).await;
        }
        let reply = self
            .eval(
                &SCRIPTS.remove,
                task_id,
                vec![task_id.to_owned(), "expired".to_owned()],
            )
            .await?;
        let (removed, had_metadata) = int_pair(&reply);
        if removed < 0 && !scan::record_held(exec, task_id).await? {
            // An empty string, which is no record, but `remove.lua` counts every key: the
            // cleanup in steps, each checked again (docs/cluster.md), as on a cluster.
            return cluster::handle_expired(exec, task_id).await;
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
        self.exec().load_scripts().await
    }

    pub(crate) fn now(&self) -> TaskTime {
        TaskTime::now(self.inner.clock.as_ref(), self.settings().zone())
    }

    /// The record stored under `key`; a timestamp it lacks reads as now in the configured
    /// zone ([`TaskRecord::from_stored`]).
    pub(crate) fn decode(&self, key: &str, json: &[u8]) -> Result<TaskRecord> {
        let zone = self.settings().zone();
        TaskRecord::from_stored(key, json, self.inner.clock.as_ref(), zone)
    }
}

/// What opens an id of [`TaskRepository::list_ids`] that stands for an index member that is
/// not UTF-8, followed by its escaped bytes: a control character, which no task id has, so
/// that [`TaskRepository::list_by_ids`] reports it as unreadable (named by its escaped
/// bytes) and a caller that does not know the mark rejects it as an invalid id.
const NOT_UTF8: char = '\u{0}';

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
        self.remove(task_id).await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, %status, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn set_status<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        let extra = self.status_args(&[], status, log_entry);
        self.mutate_record(&SCRIPTS.set_status, task_id, &[], extra)
            .await
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
        validate_task_id(task_id)?;
        let extra = self.status_args(from, to, log_entry);
        self.mutate_record(&SCRIPTS.set_status, task_id, from, extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn append_log(&self, task_id: &str, message: &str) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        let entries = self.entries([message]);
        self.mutate_record(&SCRIPTS.append_log, task_id, &[], entries)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, lines = messages.len(), script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn append_logs(&self, task_id: &str, messages: &[String]) -> Result<bool> {
        validate_task_id(task_id)?;
        if messages.is_empty() {
            // On the writer, as a write would be: a lagging replica may not have the task yet.
            // An empty string is no record, as for every read; a key of another type is
            // refused as an append to it would be.
            let key = keys::record(task_id);
            let exec = self.exec();
            let length: i64 = exec
                .redirected(|| exec.writer().next().strlen(&key))
                .await
                .map_err(|e| exec.read_error(e, &key, "string"))?;
            return Ok(length > 0);
        }
        let entries = self.entries(messages);
        self.mutate_ack(&SCRIPTS.append_log, task_id, &[], entries)
            .await
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
        let extra = Self::result_args(pod_status, launcher_output);
        self.mutate_record(&SCRIPTS.update_result, task_id, &[], extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, jobs = jobs.len(), script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn set_jobs(&self, task_id: &str, jobs: &[String]) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        let extra = self.jobs_args(jobs)?;
        self.mutate_record(&SCRIPTS.set_jobs, task_id, &[], extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, %status, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn set_status_ack<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<bool> {
        validate_task_id(task_id)?;
        let extra = self.status_args(&[], status, log_entry);
        self.mutate_ack(&SCRIPTS.set_status, task_id, &[], extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, to = %to, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn transition_ack<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<bool> {
        validate_transition_from(from)?;
        validate_task_id(task_id)?;
        let extra = self.status_args(from, to, log_entry);
        self.mutate_ack(&SCRIPTS.set_status, task_id, from, extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn append_log_ack(&self, task_id: &str, message: &str) -> Result<bool> {
        validate_task_id(task_id)?;
        let entries = self.entries([message]);
        self.mutate_ack(&SCRIPTS.append_log, task_id, &[], entries)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn update_result_ack<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<bool> {
        validate_task_id(task_id)?;
        if pod_status.is_none() && launcher_output.is_none() {
            return Ok(self.get(task_id).await?.is_some());
        }
        let extra = Self::result_args(pod_status, launcher_output);
        self.mutate_ack(&SCRIPTS.update_result, task_id, &[], extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(task_id = task_id, jobs = jobs.len(), script = Empty, elapsed_ms = Empty), err(level = "debug"))]
    async fn set_jobs_ack(&self, task_id: &str, jobs: &[String]) -> Result<bool> {
        validate_task_id(task_id)?;
        let extra = self.jobs_args(jobs)?;
        self.mutate_ack(&SCRIPTS.set_jobs, task_id, &[], extra)
            .await
    }

    #[tracing::instrument(level = "info", skip_all, fields(?scope), err(level = "debug"))]
    async fn list_ids(&self, scope: &Scope) -> Result<Vec<String>> {
        scope.validate()?;
        let (mut ids, not_utf8) = reads::set_members(
            self.exec(),
            self.inner.reader.next(),
            &keys::scope_index(scope),
        )
        .await?;
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
        let decode = |key: &str, json: &[u8]| self.decode(key, json);
        reads::read_records(
            self.exec(),
            self.inner.reader.next(),
            &valid,
            decode,
            &mut list,
        )
        .await?;
        list.records
            .sort_by(|a, b| compare_task_ids(&a.task_id, &b.task_id));
        Ok(list)
    }

    #[tracing::instrument(level = "info", skip_all, fields(service = service), err(level = "debug"))]
    async fn list_users_by_service(&self, service: &str) -> Result<Vec<String>> {
        validate_name("service", service)?;
        let key = keys::service_users(service);
        let (mut users, not_utf8) =
            reads::set_members(self.exec(), self.inner.reader.next(), &key).await?;
        for member in not_utf8 {
            tracing::warn!(key, member, "skipped a user that is not UTF-8");
        }
        users.sort();
        Ok(users)
    }

    #[tracing::instrument(level = "info", skip_all, err(level = "debug"))]
    async fn next_task_id(&self) -> Result<String> {
        let exec = self.exec();
        let id: i64 = exec
            .redirected(|| exec.on_writer(|client| client.incr(keys::SEQUENCE)))
            .await
            .map_err(|e| {
                exec.fail(e)
                    .counting(keys::SEQUENCE, "taking the next task id")
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
            .map_err(|e| self.exec().read_error(e, keys::SEQUENCE, "string"))?;
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
