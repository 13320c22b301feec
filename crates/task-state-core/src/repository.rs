//! The repository contract that every backend implements.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::model::{TaskRecord, TaskStatus};

/// Which index a listing reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every task (`index:tasks`).
    All,
    /// The tasks of one service (`index:service:{service}`).
    Service(String),
    /// The tasks of one user in one service (`index:service:{service}:user:{user_id}`).
    ServiceUser {
        /// The service.
        service: String,
        /// The user.
        user_id: String,
    },
    /// The tasks of one user across services (`index:user:{user_id}`).
    User(String),
}

impl Scope {
    /// Checks the names in the scope.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad service or user id.
    pub fn validate(&self) -> Result<()> {
        match self {
            Scope::All => Ok(()),
            Scope::Service(service) => crate::validate_name("service", service),
            Scope::ServiceUser { service, user_id } => {
                crate::validate_name("service", service)?;
                crate::validate_name("user id", user_id)
            }
            Scope::User(user_id) => crate::validate_name("user id", user_id),
        }
    }
}

/// A record that a listing could not read, and why.
#[derive(Debug)]
pub struct Unreadable {
    /// The task id whose record is bad.
    pub task_id: String,
    /// What is wrong: usually [`Error::Decode`] or [`Error::WrongType`], naming the key.
    pub error: Error,
}

/// The result of a listing: the records that could be read, in task id order
/// ([`crate::compare_task_ids`]), and those that could not.
///
/// One bad record never fails a whole listing: it lands in [`TaskList::unreadable`].
#[derive(Debug, Default)]
pub struct TaskList {
    /// The records read.
    pub records: Vec<TaskRecord>,
    /// The ids whose records exist but could not be read.
    pub unreadable: Vec<Unreadable>,
}

impl TaskList {
    /// The ids of the records read, in order.
    pub fn ids(&self) -> Vec<&str> {
        self.records.iter().map(|r| r.task_id.as_str()).collect()
    }
}

impl IntoIterator for TaskList {
    type Item = TaskRecord;
    type IntoIter = std::vec::IntoIter<TaskRecord>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

/// Task state storage, in the layout of the Python `task_state` package.
///
/// The contract, which the conformance suite (`conformance` feature) checks on every backend:
///
/// - Task ids, services and user ids are checked with [`crate::validate_name`] before
///   anything is written or read; a bad one is [`Error::InvalidInput`] and changes nothing.
/// - Every mutation is atomic: it applies whole or not at all, and concurrent mutations of one
///   task never lose each other's changes (no log line, no result field is lost).
/// - Every mutation stamps `updated_at` with the repository's clock in its zone and refreshes
///   the task's expiry (the TTL) and that of its indexes.
/// - Mutations of a task that does not exist return `Ok(None)` (or `Ok(false)`) and create
///   nothing.
/// - A listing returns the readable records in task id order and reports the unreadable ones
///   in [`TaskList::unreadable`]; ids in an index whose record is gone (expired) are skipped.
/// - Each mutation that returns the record has an `_ack` twin (provided, so implementing it is
///   optional) that returns only whether it applied, for callers that drop the record; it
///   behaves as the mutation in every other way.
///
/// Applications hold an `Arc<dyn TaskRepository>` and choose the backend at start-up.
///
/// ```
/// # async fn run(repo: std::sync::Arc<dyn task_state_core::TaskRepository>) -> task_state_core::Result<()> {
/// use task_state_core::{TaskRecord, TaskStatus};
/// repo.save(TaskRecord::new("7", "render", "alice", TaskStatus::Pending)).await?;
/// repo.set_status("7", TaskStatus::Running, Some("worker started")).await?;
/// repo.append_log("7", "processed input").await?;
/// repo.update_result("7", Some("phase=Running"), None).await?;
/// let record = repo.get("7").await?.expect("saved above");
/// assert_eq!(record.logs.len(), 2);
/// # Ok(()) }
/// ```
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TaskRepository: Send + Sync + Debug + 'static {
    /// Stores `record` whole, stamping `updated_at`, and puts the task in the indexes of its
    /// service and user. Re-saving a task under another service or user moves it: it leaves
    /// the old indexes, and the old user leaves the service's user set when no task of theirs
    /// is left there. Returns the record as stored.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id, service or user id.
    async fn save(&self, record: TaskRecord) -> Result<TaskRecord>;

    /// Stores `record` as [`TaskRepository::save`] does, but only when no task with its id
    /// exists, in one atomic step: two creators of the same id never both succeed.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when a record with that id exists (nothing is written);
    /// [`Error::InvalidInput`] for a bad task id, service or user id.
    async fn create(&self, record: TaskRecord) -> Result<TaskRecord>;

    /// The task's record, or `None` when there is none. An empty stored string counts as no
    /// record, as in Python (`if not raw: return None`).
    ///
    /// # Errors
    /// [`Error::Decode`] when the stored record cannot be read, [`Error::WrongType`] when the
    /// key holds another type, both naming the key.
    async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>>;

    /// Removes the record, its metadata and its index entries (and the user from the
    /// service's user set when it was their last task there). Returns whether a record or
    /// index entry existed. Deleting a missing task succeeds with `false`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id.
    async fn delete(&self, task_id: &str) -> Result<bool>;

    /// Sets the status and, when `log_entry` is given, appends it as a log entry. An empty
    /// `log_entry` (`Some("")`) appends nothing, as Python's `if log_entry:`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id.
    async fn set_status<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>>;

    /// Sets the status to `to` only if the current status is one of `from`, atomically (with
    /// the optional log entry, which appends nothing when empty, as in
    /// [`TaskRepository::set_status`]). The frontend's "cancel unless already finished" is
    /// `transition(id, &[Pending, Dispatching, Running], CancelRequested, ..)`.
    ///
    /// # Errors
    /// [`Error::Conflict`] carrying the current status when it is not one of `from`;
    /// [`Error::InvalidInput`] for a bad task id or an empty `from`.
    async fn transition<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<Option<TaskRecord>>;

    /// Appends one log entry, stamped now, and returns the updated record.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id.
    async fn append_log(&self, task_id: &str, message: &str) -> Result<Option<TaskRecord>>;

    /// Appends log entries in order, all stamped now, in one atomic step, without sending or
    /// returning the record: the cheap way to stream output into a task's log. Returns
    /// `false` when the task does not exist. An empty `messages` changes nothing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id.
    async fn append_logs(&self, task_id: &str, messages: &[String]) -> Result<bool>;

    /// Sets the given result fields and leaves the others as they are. With neither given,
    /// nothing is written and the current record is returned.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id.
    async fn update_result<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<Option<TaskRecord>>;

    /// Replaces the task's scheduler job ids.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad task id.
    async fn set_jobs(&self, task_id: &str, jobs: &[String]) -> Result<Option<TaskRecord>>;

    /// [`TaskRepository::set_status`] for a caller that does not need the record: `true` when
    /// it applied, `false` when the task does not exist. A backend may then spare sending and
    /// decoding the record (on Redis the script answers without it); by default it calls
    /// `set_status` and drops the record.
    ///
    /// ```
    /// # async fn run(repo: &dyn task_state_core::TaskRepository) -> task_state_core::Result<()> {
    /// use task_state_core::TaskStatus;
    /// if !repo.set_status_ack("7", TaskStatus::Running, Some("worker started")).await? {
    ///     eprintln!("no task 7");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`TaskRepository::set_status`].
    async fn set_status_ack<'a>(
        &self,
        task_id: &str,
        status: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<bool> {
        Ok(self.set_status(task_id, status, log_entry).await?.is_some())
    }

    /// [`TaskRepository::transition`] for a caller that does not need the record: `true` when
    /// it applied, `false` when the task does not exist (see
    /// [`TaskRepository::set_status_ack`]).
    ///
    /// # Errors
    /// As [`TaskRepository::transition`]: [`Error::Conflict`] carrying the current status
    /// when it is not one of `from`.
    async fn transition_ack<'a>(
        &self,
        task_id: &str,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&'a str>,
    ) -> Result<bool> {
        Ok(self
            .transition(task_id, from, to, log_entry)
            .await?
            .is_some())
    }

    /// [`TaskRepository::append_log`] for a caller that does not need the record: `true` when
    /// it applied, `false` when the task does not exist (see
    /// [`TaskRepository::set_status_ack`]).
    ///
    /// # Errors
    /// As [`TaskRepository::append_log`].
    async fn append_log_ack(&self, task_id: &str, message: &str) -> Result<bool> {
        Ok(self.append_log(task_id, message).await?.is_some())
    }

    /// [`TaskRepository::update_result`] for a caller that does not need the record: `true`
    /// when the task exists (and, with a field given, the update applied), `false` when it
    /// does not (see [`TaskRepository::set_status_ack`]).
    ///
    /// # Errors
    /// As [`TaskRepository::update_result`].
    async fn update_result_ack<'a>(
        &self,
        task_id: &str,
        pod_status: Option<&'a str>,
        launcher_output: Option<&'a str>,
    ) -> Result<bool> {
        Ok(self
            .update_result(task_id, pod_status, launcher_output)
            .await?
            .is_some())
    }

    /// [`TaskRepository::set_jobs`] for a caller that does not need the record: `true` when
    /// it applied, `false` when the task does not exist (see
    /// [`TaskRepository::set_status_ack`]).
    ///
    /// # Errors
    /// As [`TaskRepository::set_jobs`].
    async fn set_jobs_ack(&self, task_id: &str, jobs: &[String]) -> Result<bool> {
        Ok(self.set_jobs(task_id, jobs).await?.is_some())
    }

    /// The ids in one index, in task id order. The index may still hold ids whose record
    /// has expired; [`TaskRepository::list_by_ids`] skips those. A member the backend cannot
    /// read as text (on Redis, one that is not UTF-8) is given as an id that no task has
    /// (its escaped bytes behind a NUL character), which [`TaskRepository::list_by_ids`]
    /// reports in [`TaskList::unreadable`], so that no listing leaves it out unsaid.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name in `scope`.
    async fn list_ids(&self, scope: &Scope) -> Result<Vec<String>>;

    /// The records of `task_ids`, in task id order, skipping ids without a record and
    /// reporting unreadable ones in [`TaskList::unreadable`]. Invalid ids are reported there
    /// too, as [`Error::InvalidInput`].
    ///
    /// # Errors
    /// Only backend failures.
    async fn list_by_ids(&self, task_ids: &[String]) -> Result<TaskList>;

    /// The users who have tasks in `service`, sorted.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad service.
    async fn list_users_by_service(&self, service: &str) -> Result<Vec<String>>;

    /// Takes the next id of the task id sequence: `"1"` first, then `"2"`, ...
    ///
    /// # Errors
    /// Only backend failures.
    async fn next_task_id(&self) -> Result<String>;

    /// The id that [`TaskRepository::next_task_id`] would give next, without taking it.
    ///
    /// # Errors
    /// Only backend failures.
    async fn peek_next_task_id(&self) -> Result<String>;

    /// The records of one index.
    ///
    /// # Errors
    /// As [`TaskRepository::list_ids`].
    async fn list(&self, scope: &Scope) -> Result<TaskList> {
        let ids = self.list_ids(scope).await?;
        self.list_by_ids(&ids).await
    }

    /// Every task.
    ///
    /// # Errors
    /// Only backend failures.
    async fn list_all(&self) -> Result<TaskList> {
        self.list(&Scope::All).await
    }

    /// The tasks of one service.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad service.
    async fn list_by_service(&self, service: &str) -> Result<TaskList> {
        self.list(&Scope::Service(service.to_owned())).await
    }

    /// The tasks of one user in one service.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad service or user id.
    async fn list_by_service_and_user(&self, service: &str, user_id: &str) -> Result<TaskList> {
        self.list(&Scope::ServiceUser {
            service: service.to_owned(),
            user_id: user_id.to_owned(),
        })
        .await
    }

    /// The tasks of one user across services.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad user id.
    async fn list_by_user(&self, user_id: &str) -> Result<TaskList> {
        self.list(&Scope::User(user_id.to_owned())).await
    }
}

macro_rules! forward_repository {
    ($($wrapper:ident),*) => {$(
        #[async_trait]
        impl<T: TaskRepository + ?Sized> TaskRepository for $wrapper<T> {
            async fn save(&self, record: TaskRecord) -> Result<TaskRecord> {
                (**self).save(record).await
            }
            async fn create(&self, record: TaskRecord) -> Result<TaskRecord> {
                (**self).create(record).await
            }
            async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>> {
                (**self).get(task_id).await
            }
            async fn delete(&self, task_id: &str) -> Result<bool> {
                (**self).delete(task_id).await
            }
            async fn set_status<'a>(
                &self,
                task_id: &str,
                status: TaskStatus,
                log_entry: Option<&'a str>,
            ) -> Result<Option<TaskRecord>> {
                (**self).set_status(task_id, status, log_entry).await
            }
            async fn transition<'a>(
                &self,
                task_id: &str,
                from: &[TaskStatus],
                to: TaskStatus,
                log_entry: Option<&'a str>,
            ) -> Result<Option<TaskRecord>> {
                (**self).transition(task_id, from, to, log_entry).await
            }
            async fn append_log(&self, task_id: &str, message: &str) -> Result<Option<TaskRecord>> {
                (**self).append_log(task_id, message).await
            }
            async fn append_logs(&self, task_id: &str, messages: &[String]) -> Result<bool> {
                (**self).append_logs(task_id, messages).await
            }
            async fn update_result<'a>(
                &self,
                task_id: &str,
                pod_status: Option<&'a str>,
                launcher_output: Option<&'a str>,
            ) -> Result<Option<TaskRecord>> {
                (**self).update_result(task_id, pod_status, launcher_output).await
            }
            async fn set_jobs(&self, task_id: &str, jobs: &[String]) -> Result<Option<TaskRecord>> {
                (**self).set_jobs(task_id, jobs).await
            }
            async fn set_status_ack<'a>(
                &self,
                task_id: &str,
                status: TaskStatus,
                log_entry: Option<&'a str>,
            ) -> Result<bool> {
                (**self).set_status_ack(task_id, status, log_entry).await
            }
            async fn transition_ack<'a>(
                &self,
                task_id: &str,
                from: &[TaskStatus],
                to: TaskStatus,
                log_entry: Option<&'a str>,
            ) -> Result<bool> {
                (**self).transition_ack(task_id, from, to, log_entry).await
            }
            async fn append_log_ack(&self, task_id: &str, message: &str) -> Result<bool> {
                (**self).append_log_ack(task_id, message).await
            }
            async fn update_result_ack<'a>(
                &self,
                task_id: &str,
                pod_status: Option<&'a str>,
                launcher_output: Option<&'a str>,
            ) -> Result<bool> {
                (**self).update_result_ack(task_id, pod_status, launcher_output).await
            }
            async fn set_jobs_ack(&self, task_id: &str, jobs: &[String]) -> Result<bool> {
                (**self).set_jobs_ack(task_id, jobs).await
            }
            async fn list_ids(&self, scope: &Scope) -> Result<Vec<String>> {
                (**self).list_ids(scope).await
            }
            async fn list_by_ids(&self, task_ids: &[String]) -> Result<TaskList> {
                (**self).list_by_ids(task_ids).await
            }
            async fn list_users_by_service(&self, service: &str) -> Result<Vec<String>> {
                (**self).list_users_by_service(service).await
            }
            async fn next_task_id(&self) -> Result<String> {
                (**self).next_task_id().await
            }
            async fn peek_next_task_id(&self) -> Result<String> {
                (**self).peek_next_task_id().await
            }
            async fn list(&self, scope: &Scope) -> Result<TaskList> {
                (**self).list(scope).await
            }
        }
    )*};
}

forward_repository!(Arc, Box);

/// Streaming listings for every [`TaskRepository`], `dyn` ones included.
pub trait TaskRepositoryExt: TaskRepository {
    /// Streams the records of one index in task id order, `batch` records a round trip, so
    /// that a store of any size is listed with only the ids and one batch in memory. An
    /// unreadable record comes as an `Err` item naming its key, and the stream goes on.
    ///
    /// ```
    /// # async fn run(repo: &dyn task_state_core::TaskRepository) -> task_state_core::Result<()> {
    /// use futures::StreamExt;
    /// use task_state_core::{Scope, TaskRepositoryExt};
    /// let mut records = repo.stream(Scope::All, 500);
    /// while let Some(item) = records.next().await {
    ///     match item {
    ///         Ok(record) => println!("{} {}", record.task_id, record.status),
    ///         Err(e) => eprintln!("skipped: {e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    fn stream(&self, scope: Scope, batch: usize) -> BoxStream<'_, Result<TaskRecord>> {
        struct State {
            scope: Option<Scope>,
            ids: Vec<String>,
            next: usize,
            buffer: VecDeque<Result<TaskRecord>>,
        }
        let batch = batch.max(1);
        let state = State {
            scope: Some(scope),
            ids: Vec::new(),
            next: 0,
            buffer: VecDeque::new(),
        };
        Box::pin(futures::stream::unfold(
            state,
            move |mut state| async move {
                loop {
                    if let Some(item) = state.buffer.pop_front() {
                        return Some((item, state));
                    }
                    if let Some(scope) = state.scope.take() {
                        match self.list_ids(&scope).await {
                            Ok(ids) => state.ids = ids,
                            Err(e) => return Some((Err(e), state)),
                        }
                    }
                    if state.next >= state.ids.len() {
                        return None;
                    }
                    let end = (state.next + batch).min(state.ids.len());
                    let chunk = &state.ids[state.next..end];
                    state.next = end;
                    match self.list_by_ids(chunk).await {
                        Ok(list) => {
                            state.buffer.extend(list.records.into_iter().map(Ok));
                            state
                                .buffer
                                .extend(list.unreadable.into_iter().map(|u| Err(u.error)));
                        }
                        Err(e) => state.buffer.push_back(Err(e)),
                    }
                }
            },
        ))
    }
}

impl<T: TaskRepository + ?Sized> TaskRepositoryExt for T {}
