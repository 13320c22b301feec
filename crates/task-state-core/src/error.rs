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
    /// // The same answer as `is_retryable`, which also covers connection failures.
    /// let e = Error::Refused {
    ///     reason: Refusal::Loading,
    ///     message: "reading task:1: LOADING Redis is loading the dataset in memory".into(),
    /// };
    /// assert!(retry_later(&e) && e.is_retryable());
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
    /// The storage backend failed: connection refused, timeout, authentication, ... The
    /// [`BackendKind`] says which, and whether a mutation may have been applied; the
    /// predicates [`is_connection`](Error::is_connection), [`is_timeout`](Error::is_timeout),
    /// [`is_retryable`](Error::is_retryable) and [`is_reply_lost`](Error::is_reply_lost) read
    /// it.
    #[error("backend: {message}")]
    Backend {
        /// What kind of failure it was.
        kind: BackendKind,
        /// What failed, without any password.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// What kind of failure an [`Error::Backend`] is: what a caller can do about it depends on
/// whether the command could have reached the server.
///
/// | kind | [`is_connection`] | [`is_timeout`] | [`is_retryable`] | what to do |
/// | --- | --- | --- | --- | --- |
/// | [`Connect`](BackendKind::Connect) | yes | when `timed_out` | yes | retry with back-off; alert when it lasts |
/// | [`Disconnected`](BackendKind::Disconnected) | yes | no | yes | retry with back-off: nothing was sent or changed |
/// | [`Timeout`](BackendKind::Timeout) | no | yes | yes | retry (a read); if it lasts the server is overloaded or stalled |
/// | [`ReplyLost`](BackendKind::ReplyLost) | when not `timed_out` | when `timed_out` | **no** | read the task back to learn whether the change happened, then decide |
/// | [`Auth`](BackendKind::Auth) | no | no | no | fix the credentials or the ACL |
/// | [`Other`](BackendKind::Other) | no | no | no | a bug or an unexpected server: report it |
///
/// [`is_connection`]: Error::is_connection
/// [`is_timeout`]: Error::is_timeout
/// [`is_retryable`]: Error::is_retryable
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// No connection could be made: refused, unreachable, a name that does not resolve, a
    /// failed TLS handshake, or (`timed_out`) no answer to the handshake within the connect
    /// timeout. Nothing was sent.
    Connect {
        /// The connect timeout ran out (a server that accepts and never answers), as opposed
        /// to a refusal.
        timed_out: bool,
    },
    /// No usable connection: a read whose connection was down or broke while it waited, or
    /// a mutation that found no connection within the command timeout and so was never sent.
    /// Nothing changed: repeating the call is safe.
    Disconnected,
    /// A read got no reply within the command timeout. Repeating it is safe.
    Timeout,
    /// A mutation's command was sent, or may have been, and its reply never came: the
    /// command timeout ran out (`timed_out`) or the connection broke. **It may have been
    /// applied**, and the backend does not send it again (a second `append_log` would
    /// write the line twice). Read the task back to find out. (A mutation that found no
    /// connection to send it on is [`Disconnected`](BackendKind::Disconnected) instead.)
    ReplyLost {
        /// The command timeout ran out, as opposed to the connection breaking.
        timed_out: bool,
    },
    /// The server refused the credentials, or the user lacks a permission.
    Auth,
    /// Anything else: a protocol error, an unexpected reply, a backend of one's own.
    Other,
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
    /// A [`Error::Backend`] error of kind [`BackendKind::Other`] with a message and no
    /// source.
    pub fn backend(message: impl Into<String>) -> Self {
        Error::backend_of(BackendKind::Other, message)
    }

    /// A [`Error::Backend`] error of `kind` with a message and no source.
    pub fn backend_of(kind: BackendKind, message: impl Into<String>) -> Self {
        Error::Backend {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The [`BackendKind`] of an [`Error::Backend`]; `None` for every other variant.
    pub fn backend_kind(&self) -> Option<BackendKind> {
        match self {
            Error::Backend { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True when the connection is the problem: none could be made
    /// ([`BackendKind::Connect`]), or it was down or broke during the call
    /// ([`BackendKind::Disconnected`], [`BackendKind::ReplyLost`] without a timeout). The
    /// server may be down, restarting or failing over, or the network between is broken.
    /// Whether to repeat the call is [`is_retryable`](Error::is_retryable)'s answer.
    ///
    /// ```
    /// use task_state_core::{BackendKind, Error};
    /// let e = Error::backend_of(BackendKind::Connect { timed_out: false }, "connection refused");
    /// assert!(e.is_connection() && e.is_retryable() && !e.is_timeout());
    /// ```
    pub fn is_connection(&self) -> bool {
        matches!(
            self.backend_kind(),
            Some(
                BackendKind::Connect { .. }
                    | BackendKind::Disconnected
                    | BackendKind::ReplyLost { timed_out: false }
            )
        )
    }

    /// True when a time limit ran out: the connect timeout ([`BackendKind::Connect`] with
    /// `timed_out`) or the command timeout ([`BackendKind::Timeout`] for a read,
    /// [`BackendKind::ReplyLost`] with `timed_out` for a mutation). The server is
    /// overloaded, stalled (a long script, `DEBUG SLEEP`, `CLIENT PAUSE`), or unreachable
    /// without a refusal (a firewall that drops packets). A longer timeout only helps the
    /// first.
    ///
    /// ```
    /// use task_state_core::{BackendKind, Error};
    /// let e = Error::backend_of(BackendKind::ReplyLost { timed_out: true }, "no reply in 10s");
    /// assert!(e.is_timeout() && !e.is_retryable());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.backend_kind(),
            Some(
                BackendKind::Connect { timed_out: true }
                    | BackendKind::Timeout
                    | BackendKind::ReplyLost { timed_out: true }
            )
        )
    }

    /// True when the same call, repeated after a pause, is safe and may succeed: nothing was
    /// changed, and the cause may pass. That is a failure to connect, a read that lost its
    /// connection or timed out, a mutation that found no connection and was not sent, and a
    /// transient refusal ([`Refusal::is_transient`]: busy,
    /// loading, not enough replicas, primary down; the command did not run).
    ///
    /// False for a mutation whose reply was lost ([`is_reply_lost`](Error::is_reply_lost)):
    /// it may have been applied. False for refusals that need a change first (out of memory,
    /// a read-only replica), for bad credentials, for bad input, a missing task, a conflict,
    /// an unreadable record and bad settings: repeating those gives the same answer.
    ///
    /// Retry with a back-off and a bound; a retry of a read after a `Disconnected` waits for
    /// the client's own reconnection.
    ///
    /// ```
    /// use std::time::Duration;
    /// use task_state_core::{Error, Result, TaskRecord, TaskRepository};
    ///
    /// async fn get_patiently(repo: &dyn TaskRepository, id: &str) -> Result<Option<TaskRecord>> {
    ///     let mut pause = Duration::from_millis(100);
    ///     for _ in 0..5 {
    ///         match repo.get(id).await {
    ///             Err(e) if e.is_retryable() => tokio::time::sleep(pause).await,
    ///             other => return other,
    ///         }
    ///         pause *= 2;
    ///     }
    ///     repo.get(id).await
    /// }
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Refused { reason, .. } => reason.is_transient(),
            Error::Backend { kind, .. } => matches!(
                kind,
                BackendKind::Connect { .. } | BackendKind::Disconnected | BackendKind::Timeout
            ),
            _ => false,
        }
    }

    /// True for a mutation whose command was sent (or may have been) and whose reply never
    /// came ([`BackendKind::ReplyLost`]): it may or may not have been applied. Do not repeat
    /// it blindly: read the task back and compare. A status change shows in the record's
    /// `status`, a log line in its `logs` (look for the message), a result in `result`; a
    /// `save` or `create` left the record or not; a lost `next_task_id` at worst skipped an
    /// id, so taking another is safe.
    ///
    /// ```
    /// use task_state_core::{Result, TaskRepository, TaskStatus};
    ///
    /// async fn mark_running(repo: &dyn TaskRepository, id: &str) -> Result<()> {
    ///     match repo.set_status(id, TaskStatus::Running, None).await {
    ///         Err(e) if e.is_reply_lost() => {
    ///             // Applied or not? The record says (once the server answers again).
    ///             let now = repo.get(id).await?;
    ///             if now.map(|r| r.status) != Some(TaskStatus::Running) {
    ///                 repo.set_status(id, TaskStatus::Running, None).await?;
    ///             }
    ///             Ok(())
    ///         }
    ///         other => other.map(|_| ()),
    ///     }
    /// }
    /// ```
    pub fn is_reply_lost(&self) -> bool {
        matches!(self.backend_kind(), Some(BackendKind::ReplyLost { .. }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_kind_answers_the_predicates_as_its_table_says() {
        // (kind, is_connection, is_timeout, is_retryable, is_reply_lost)
        let table = [
            (
                BackendKind::Connect { timed_out: false },
                true,
                false,
                true,
                false,
            ),
            (
                BackendKind::Connect { timed_out: true },
                true,
                true,
                true,
                false,
            ),
            (BackendKind::Disconnected, true, false, true, false),
            (BackendKind::Timeout, false, true, true, false),
            (
                BackendKind::ReplyLost { timed_out: true },
                false,
                true,
                false,
                true,
            ),
            (
                BackendKind::ReplyLost { timed_out: false },
                true,
                false,
                false,
                true,
            ),
            (BackendKind::Auth, false, false, false, false),
            (BackendKind::Other, false, false, false, false),
        ];
        for (kind, connection, timeout, retryable, lost) in table {
            let e = Error::backend_of(kind, "x");
            assert_eq!(e.backend_kind(), Some(kind));
            assert_eq!(e.is_connection(), connection, "{kind:?}");
            assert_eq!(e.is_timeout(), timeout, "{kind:?}");
            assert_eq!(e.is_retryable(), retryable, "{kind:?}");
            assert_eq!(e.is_reply_lost(), lost, "{kind:?}");
        }
    }

    #[test]
    fn refusals_are_retryable_when_transient_and_other_errors_never() {
        for reason in Refusal::ALL {
            let e = Error::Refused {
                reason,
                message: String::new(),
            };
            assert_eq!(e.is_retryable(), reason.is_transient(), "{reason:?}");
            assert!(!e.is_connection() && !e.is_timeout() && !e.is_reply_lost());
        }
        let others = [
            Error::NotFound {
                task_id: "1".into(),
            },
            Error::Config("x".into()),
            Error::decode("task:1", "bad"),
            Error::backend("unexpected reply"),
        ];
        for e in others {
            assert!(
                !e.is_retryable() && !e.is_connection() && !e.is_timeout(),
                "{e:?}"
            );
        }
        assert!(!Error::Refused {
            reason: Refusal::OutOfMemory,
            message: String::new()
        }
        .is_retryable());
        assert!(!Error::Refused {
            reason: Refusal::ReadOnlyReplica,
            message: String::new()
        }
        .is_retryable());
    }
}
