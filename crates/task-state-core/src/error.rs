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
