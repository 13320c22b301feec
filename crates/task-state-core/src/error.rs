//! The one error type of task-state.

use crate::model::TaskStatus;

/// A boxed error that a backend reports as the cause of [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in task-state.
///
/// Match on the variant to tell bad input from a missing task, a lost race, an unreadable
/// record or a backend fault. Messages are lowercase and name the task id or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task id, service, user id or other argument was rejected before anything was written.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which argument: `task id`, `service`, `user id`, ...
        field: &'static str,
        /// The rejected value, shortened when long.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The task does not exist. Repository mutations return `Ok(None)` instead; this variant
    /// serves callers (such as the CLI) that need to treat a missing task as an error.
    #[error("task {task_id:?} not found")]
    NotFound {
        /// The task that was asked for.
        task_id: String,
    },
    /// [`crate::TaskRepository::create`] found a task with that id already.
    #[error("task {task_id:?} already exists")]
    AlreadyExists {
        /// The id that is taken.
        task_id: String,
    },
    /// A conditional transition found the task in a status it was not allowed to leave.
    #[error(
        "task {task_id:?} is {current}, not one of {}",
        list_statuses(expected)
    )]
    Conflict {
        /// The task whose transition was refused.
        task_id: String,
        /// The status the task has now.
        current: TaskStatus,
        /// The statuses the caller allowed.
        expected: Vec<TaskStatus>,
    },
    /// A stored value could not be read as a task record (or as the layout expects).
    #[error("cannot decode {key}: {reason}")]
    Decode {
        /// The Redis key (or memory slot) that holds the bad value.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key of the layout holds a value of another type than the layout says.
    #[error("key {key} holds the wrong kind of value (expected {expected})")]
    WrongType {
        /// The offending key.
        key: String,
        /// What the layout expects there (`string`, `set`, `hash`).
        expected: &'static str,
    },
    /// The server refused the command for a reason of its own state, not of the data: it is
    /// out of memory, a read-only replica, short of replicas, busy with a script, loading its
    /// data set, or a replica whose primary is down. The command did not run (a script stops
    /// at its first write, before anything was written), so the store is as it was; what to
    /// do depends on the [`Refusal`].
    ///
    /// ```
    /// use task_state_core::{Error, Refusal};
    ///
    /// fn retry_later(e: &Error) -> bool {
    ///     matches!(e, Error::Refused { reason, .. } if reason.is_transient())
    /// }
    /// let e = Error::Refused {
    ///     reason: Refusal::Loading,
    ///     message: "reading task:1: LOADING Redis is loading the dataset in memory".into(),
    /// };
    /// assert!(retry_later(&e));
    /// assert_eq!(e.to_string(), "the server refused: it is loading its data set \
    ///     (reading task:1: LOADING Redis is loading the dataset in memory)");
    /// ```
    #[error("the server refused: {reason} ({message})")]
    Refused {
        /// Why the server refused.
        reason: Refusal,
        /// What was refused and the server's own words, without any password.
        message: String,
    },
    /// Settings that cannot work: a missing variable, a malformed URL, an unknown time zone.
    #[error("configuration: {0}")]
    Config(String),
    /// The storage backend failed: connection refused, timeout, authentication, ...
    #[error("backend: {message}")]
    Backend {
        /// What failed, without any password.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// Why a server refused a command ([`Error::Refused`]), from the error code of its reply.
///
/// Each variant says what a caller should do. The transient ones
/// ([`Refusal::is_transient`]) pass by themselves and are worth a retry after a pause; the
/// others need an operator (or a failover) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// `OOM`: used memory is above `maxmemory` and the eviction policy cannot (or may not)
    /// free any. Do not retry in a loop: an operator must raise `maxmemory`, choose an
    /// eviction policy, or delete data (deletes are still accepted).
    OutOfMemory,
    /// `READONLY`: the write URL points at a read-only replica, as after a failover that
    /// demoted the old primary. Point the write URL at the primary (or at Sentinel, which
    /// follows failovers), then retry.
    ReadOnlyReplica,
    /// `NOREPLICAS`: the primary has fewer connected replicas than its
    /// `min-replicas-to-write`. Retry after a pause; when it lasts, an operator must bring
    /// the replicas back (or lower the setting).
    NotEnoughReplicas,
    /// `BUSY`: another client's script has run longer than `busy-reply-threshold`
    /// (`lua-time-limit` before Redis 7). Retry after a pause; a script that never ends needs
    /// an operator's `SCRIPT KILL`.
    BusyScript,
    /// `LOADING`: the server is loading its data set after a start or a full resync. Retry
    /// after a pause.
    Loading,
    /// `MASTERDOWN`: a replica that lost its primary and is told not to serve stale data
    /// (`replica-serve-stale-data no`). Retry after a pause: Sentinel or the operator brings
    /// a primary back.
    PrimaryDown,
}

impl Refusal {
    /// Every refusal, in declaration order.
    pub const ALL: [Refusal; 6] = [
        Refusal::OutOfMemory,
        Refusal::ReadOnlyReplica,
        Refusal::NotEnoughReplicas,
        Refusal::BusyScript,
        Refusal::Loading,
        Refusal::PrimaryDown,
    ];

    /// The error code that Redis opens its reply with: `OOM`, `READONLY`, `NOREPLICAS`,
    /// `BUSY`, `LOADING`, `MASTERDOWN`.
    ///
    /// ```
    /// use task_state_core::Refusal;
    /// assert_eq!(Refusal::OutOfMemory.code(), "OOM");
    /// assert_eq!(Refusal::from_code("READONLY"), Some(Refusal::ReadOnlyReplica));
    /// ```
    pub fn code(self) -> &'static str {
        match self {
            Refusal::OutOfMemory => "OOM",
            Refusal::ReadOnlyReplica => "READONLY",
            Refusal::NotEnoughReplicas => "NOREPLICAS",
            Refusal::BusyScript => "BUSY",
            Refusal::Loading => "LOADING",
            Refusal::PrimaryDown => "MASTERDOWN",
        }
    }

    /// The refusal whose error code is `code` (exactly, as Redis spells it).
    pub fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// True for the refusals that pass by themselves (busy, loading, not enough replicas,
    /// primary down): a retry after a pause may succeed. Out of memory and a read-only
    /// replica need a change of configuration first.
    pub fn is_transient(self) -> bool {
        !matches!(self, Refusal::OutOfMemory | Refusal::ReadOnlyReplica)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::OutOfMemory => "it is out of memory",
            Refusal::ReadOnlyReplica => "it is a read-only replica",
            Refusal::NotEnoughReplicas => "it has not enough replicas",
            Refusal::BusyScript => "it is busy running a script",
            Refusal::Loading => "it is loading its data set",
            Refusal::PrimaryDown => "its primary is down",
        })
    }
}

fn list_statuses(statuses: &[TaskStatus]) -> String {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    format!("[{}]", names.join(", "))
}

impl Error {
    /// A [`Error::Backend`] error with a message and no source.
    pub fn backend(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// A [`Error::Decode`] error for `key`.
    pub fn decode(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Decode {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
