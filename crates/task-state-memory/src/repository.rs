//! [`InMemoryTaskRepository`]: the [`TaskRepository`] contract on the [`Store`].

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use task_state_core::jiff::{SignedDuration, Timestamp};
use task_state_core::{
    compare_task_ids, format_log_entry_at, validate_name, validate_record, validate_task_id,
    validate_transition_from, Clock, Error, Result, Scope, TaskList, TaskRecord, TaskRepository,
    TaskStatus, TaskTime, Unreadable, Zone,
};

use crate::builder::InMemoryTaskRepositoryBuilder;
use crate::store::{Owner, Store};
use task_state_core::layout::{record_key, scope_index, service_users};
use task_state_core::JobsField;

/// A [`TaskRepository`] in memory, with the keys, indexes, id counter and expiry of the
/// Redis layout. Clones share the same data.
///
/// Every operation runs under one mutex, so each mutation is atomic. Expiry is lazy: each
/// operation first drops what has expired by the clock and cleans the index entries of
/// expired records, as the Redis backend's expiry listener does.
#[derive(Clone)]
pub struct InMemoryTaskRepository {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Mutex<Store>>,
    ttl: Duration,
    zone: Zone,
    clock: Arc<dyn Clock>,
    jobs_field: JobsField,
}

impl Default for InMemoryTaskRepository {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl fmt::Debug for InMemoryTaskRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryTaskRepository")
            .field("ttl", &self.inner.ttl)
            .field("zone", &self.inner.zone)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl InMemoryTaskRepository {
    /// An empty repository with the defaults: TTL [`crate::DEFAULT_TTL`], zone
    /// `Asia/Seoul`, the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder to choose the TTL, zone and clock.
    pub fn builder() -> InMemoryTaskRepositoryBuilder {
        InMemoryTaskRepositoryBuilder::default()
    }

    pub(crate) fn from_builder(builder: InMemoryTaskRepositoryBuilder) -> Self {
        InMemoryTaskRepository {
            inner: Arc::new(Inner {
                store: Arc::new(Mutex::new(Store::default())),
                ttl: builder.ttl,
                zone: builder.zone,
                clock: builder.clock,
                jobs_field: builder.jobs_field,
            }),
        }
    }

    /// How long a task lives after its last write.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The same store, written with another TTL: for tests of writers that share one store
    /// with different TTLs (no write shortens a TTL another writer gave).
    ///
    /// ```
    /// use std::time::Duration;
    /// use task_state_memory::InMemoryTaskRepository;
    /// let long = InMemoryTaskRepository::new();
    /// let short = long.with_ttl(Duration::from_secs(2));
    /// assert_eq!(short.ttl(), Duration::from_secs(2));
    /// ```
    pub fn with_ttl(&self, ttl: Duration) -> Self {
        let inner = &self.inner;
        InMemoryTaskRepository {
            inner: Arc::new(Inner {
                store: inner.store.clone(),
                ttl: ttl.min(Duration::from_secs(
                    task_state_core::layout::MAX_TTL_SECONDS,
                )),
                zone: inner.zone.clone(),
                clock: inner.clock.clone(),
                jobs_field: inner.jobs_field,
            }),
        }
    }

    /// The zone of the timestamps written.
    pub fn zone(&self) -> &Zone {
        &self.inner.zone
    }

    /// For tests: stores `json` as the record of `task_id` exactly as given (malformed text
    /// included), indexed under `service` and `user_id` as a save would index it. This is
    /// how a test shows what happens to a record that another writer garbled.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id, service or user id.
    pub fn insert_raw(
        &self,
        task_id: &str,
        service: &str,
        user_id: &str,
        json: &str,
    ) -> Result<()> {
        validate_task_id(task_id)?;
        validate_name("service", service)?;
        validate_name("user id", user_id)?;
        let owner = Owner {
            service: service.to_owned(),
            user_id: user_id.to_owned(),
        };
        self.with_store(|store, now| {
            store.put(task_id, json.to_owned(), owner, now, self.ttl_span());
        });
        Ok(())
    }

    /// For tests: every live key of the layout, sorted (`index:tasks`, `task:7`,
    /// `task:7:metadata`, `task:id:sequence`, ...).
    pub fn keys(&self) -> Vec<String> {
        self.with_store(|store, _| store.keys())
    }

    /// For tests: how long `key` has left to live, as Redis's `PTTL` tells; `None` when the
    /// key does not exist or never expires (the id counter).
    pub fn key_ttl(&self, key: &str) -> Option<Duration> {
        self.with_store(|store, now| {
            let left = store.expires_at(key)?.duration_since(now);
            Duration::try_from(left).ok()
        })
    }

    fn ttl_span(&self) -> SignedDuration {
        SignedDuration::try_from(self.inner.ttl).unwrap_or(SignedDuration::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // Every write to the store is a few map updates made after all checks and encoding,
        // so a panic elsewhere cannot leave it half-changed: go on with it.
        self.inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the lock on a store from which what has expired by now is gone. The
    /// clock is read under the lock, so that one write's `updated_at` never precedes an
    /// earlier write's.
    fn with_store<T>(&self, f: impl FnOnce(&mut Store, Timestamp) -> T) -> T {
        let mut store = self.lock();
        let now = self.inner.clock.now();
        store.expire(now);
        f(&mut store, now)
    }

    /// Stores `record` whole, stamped, in its indexes; with `only_if_absent`, refuses an id
    /// that has a record (`save` and `create`).
    fn store_record(&self, mut record: TaskRecord, only_if_absent: bool) -> Result<TaskRecord> {
        validate_record(&record)?;
        let owner = Owner::of(&record);
        self.with_store(|store, now| {
            if only_if_absent
                && store
                    .record(&record.task_id)
                    .is_some_and(|json| !json.is_empty())
            {
                return Err(Error::AlreadyExists {
                    task_id: record.task_id.clone(),
                });
            }
            record.updated_at = TaskTime::from_timestamp(now, &self.inner.zone);
            record.adopt_jobs_field(self.inner.jobs_field);
            store.put(
                &record.task_id,
                record.to_json(),
                owner,
                now,
                self.ttl_span(),
            );
            Ok(())
        })?;
        Ok(record)
    }

    /// Reads the record of `task_id`, lets `change` edit it (given the time to stamp), and
    /// writes it back stamped when `change` says it changed something. `None` when the task
    /// does not exist; an error from `change` leaves the store untouched.
    fn mutate(
        &self,
        task_id: &str,
        change: impl FnOnce(&mut TaskRecord, TaskTime) -> Result<bool>,
    ) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        self.with_store(|store, now| {
            let Some(mut record) = read(store, task_id, now, &self.inner.zone)? else {
                return Ok(None);
            };
            let stamp = TaskTime::from_timestamp(now, &self.inner.zone);
            if !change(&mut record, stamp)? {
                return Ok(Some(record));
            }
            record.updated_at = stamp;
            record.adopt_jobs_field(self.inner.jobs_field);
            let owner = stored_owner(task_id, &record)?;
            store.put(task_id, record.to_json(), owner, now, self.ttl_span());
            Ok(Some(record))
        })
    }
}

/// The decoded record of `task_id`, if there is one. An empty string is none, as the Python
/// package reads it. A timestamp the record lacks reads as `now` (the instant the operation
/// read under the lock) in `zone`, as the Redis backend reads it.
fn read(store: &Store, task_id: &str, now: Timestamp, zone: &Zone) -> Result<Option<TaskRecord>> {
    store
        .record(task_id)
        .filter(|json| !json.is_empty())
        .map(|json| TaskRecord::from_stored(&record_key(task_id), json.as_bytes(), &At(now), zone))
        .transpose()
}

/// A clock that stands at one instant: the one an operation read under the lock.
#[derive(Debug)]
struct At(Timestamp);

impl Clock for At {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// The log entry to append: none for `None` or an empty one, as Python's `if log_entry:`.
fn non_empty(log_entry: Option<&str>) -> Option<&str> {
    log_entry.filter(|message| !message.is_empty())
}

/// The owner of a record read back, whose names become keys again.
fn stored_owner(task_id: &str, record: &TaskRecord) -> Result<Owner> {
    validate_name("service", &record.service)
        .and_then(|()| validate_name("user id", &record.user_id))
        .map_err(|e| Error::decode(record_key(task_id), e.to_string()))?;
    Ok(Owner::of(record))
}

#[async_trait]
impl TaskRepository for InMemoryTaskRepository {
    async fn save(&self, record: TaskRecord) -> Result<TaskRecord> {
        self.store_record(record, false)
    }

    async fn create(&self, record: TaskRecord) -> Result<TaskRecord> {
        self.store_record(record, true)
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>> {
        validate_task_id(task_id)?;
        // An empty stored string is no record, as Python's `if not raw: return None`.
        self.with_store(|store, now| match store.record(task_id) {
            Some("") => Ok(None),
            _ => read(store, task_id, now, &self.inner.zone),
        })
    }

    async fn delete(&self, task_id: &str) -> Result<bool> {
        validate_task_id(task_id)?;
        Ok(self.with_store(|store, _| store.remove(task_id)))
    }

    async fn set_status<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        self.mutate(task_id, |record, now| {
            record.status = status;
            record
                .logs
                .extend(non_empty(log_entry).map(|message| format_log_entry_at(message, now)));
            Ok(true)
        })
    }

    async fn transition<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        validate_transition_from(from)?;
        self.mutate(task_id, |record, now| {
            if !from.contains(&record.status) {
                return Err(Error::Conflict {
                    task_id: task_id.to_owned(),
                    current: record.status,
                    expected: from.to_vec(),
                });
            }
            record.status = to;
            record
                .logs
                .extend(non_empty(log_entry).map(|message| format_log_entry_at(message, now)));
            Ok(true)
        })
    }

    async fn append_log(&self, task_id: &str, message: &str) -> Result<Option<TaskRecord>> {
        self.mutate(task_id, |record, now| {
            record.logs.push(format_log_entry_at(message, now));
            Ok(true)
        })
    }

    async fn append_logs(&self, task_id: &str, messages: &[String]) -> Result<bool> {
        if messages.is_empty() {
            validate_task_id(task_id)?;
            return Ok(self.with_store(|store, _| {
                store.record(task_id).is_some_and(|json| !json.is_empty())
            }));
        }
        let appended = self.mutate(task_id, |record, now| {
            record.logs.extend(
                messages
                    .iter()
                    .map(|message| format_log_entry_at(message, now)),
            );
            Ok(!messages.is_empty())
        })?;
        Ok(appended.is_some())
    }

    async fn update_result<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<Option<TaskRecord>> {
        self.mutate(task_id, |record, _| {
            if let Some(pod_status) = pod_status {
                record.result.pod_status = Some(pod_status.to_owned());
            }
            if let Some(launcher_output) = launcher_output {
                record.result.launcher_output = Some(launcher_output.to_owned());
            }
            Ok(pod_status.is_some() || launcher_output.is_some())
        })
    }

    async fn set_jobs(&self, task_id: &str, jobs: &[String]) -> Result<Option<TaskRecord>> {
        self.mutate(task_id, |record, _| {
            record.jobs = jobs.to_vec();
            Ok(true)
        })
    }

    async fn list_ids(&self, scope: &Scope) -> Result<Vec<String>> {
        scope.validate()?;
        let mut ids = self.with_store(|store, _| store.members(&scope_index(scope)));
        ids.sort_by(|a, b| compare_task_ids(a, b));
        Ok(ids)
    }

    async fn list_by_ids(&self, task_ids: &[String]) -> Result<TaskList> {
        let mut ids: Vec<&String> = task_ids.iter().collect();
        ids.sort_by(|a, b| compare_task_ids(a, b));
        let mut list = TaskList::default();
        self.with_store(|store, now| {
            for task_id in ids {
                let outcome = validate_task_id(task_id)
                    .and_then(|()| read(store, task_id, now, &self.inner.zone));
                match outcome {
                    Ok(Some(record)) => list.records.push(record),
                    Ok(None) => {}
                    Err(error) => list.unreadable.push(Unreadable {
                        task_id: task_id.clone(),
                        error,
                    }),
                }
            }
        });
        Ok(list)
    }

    async fn list_users_by_service(&self, service: &str) -> Result<Vec<String>> {
        validate_name("service", service)?;
        Ok(self.with_store(|store, _| store.members(&service_users(service))))
    }

    async fn next_task_id(&self) -> Result<String> {
        Ok(self.with_store(|store, _| store.next_id()).to_string())
    }

    async fn peek_next_task_id(&self) -> Result<String> {
        Ok(self.with_store(|store, _| store.peek_id()).to_string())
    }
}
