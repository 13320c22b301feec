//! task-state: task lifecycle state shared with the DMS frontend's Python `task_state`
//! package. This facade re-exports the core and, behind features, the backends.
#![warn(missing_docs)]

pub use task_state_core::*;
