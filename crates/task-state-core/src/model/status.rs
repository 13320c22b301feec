//! A task's status and priority, with their wire names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a task is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Registered, not yet handed to a scheduler.
    Pending,
    /// Being handed to a scheduler.
    Dispatching,
    /// Running.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Someone asked for the task to stop.
    CancelRequested,
    /// Stopped on request.
    Cancelled,
}

impl TaskStatus {
    /// All seven statuses, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::Dispatching,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::CancelRequested,
        TaskStatus::Cancelled,
    ];

    /// The wire name: `pending`, `cancel_requested`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Dispatching => "dispatching",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::CancelRequested => "cancel_requested",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// True for the statuses a task never leaves by itself: completed, failed, cancelled.
    ///
    /// ```
    /// use task_state_core::TaskStatus;
    /// assert!(TaskStatus::Failed.is_terminal());
    /// assert!(!TaskStatus::CancelRequested.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = Error;

    /// Parses a wire name.
    fn from_str(s: &str) -> Result<Self> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                field: "status",
                value: s.chars().take(64).collect(),
                reason: "expected one of pending, dispatching, running, completed, failed, \
                         cancel_requested, cancelled"
                    .to_owned(),
            })
    }
}

/// A task's scheduling priority.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PriorityLevel {
    /// The default.
    #[default]
    Low,
    /// Ahead of low.
    High,
}

impl PriorityLevel {
    /// The wire name: `low` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            PriorityLevel::Low => "low",
            PriorityLevel::High => "high",
        }
    }
}

impl fmt::Display for PriorityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PriorityLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "low" => Ok(PriorityLevel::Low),
            "high" => Ok(PriorityLevel::High),
            _ => Err(Error::InvalidInput {
                field: "priority",
                value: s.chars().take(64).collect(),
                reason: "expected low or high".to_owned(),
            }),
        }
    }
}
