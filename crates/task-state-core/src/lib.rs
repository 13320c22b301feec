//! The core of task-state: the task model, the [`TaskRepository`] trait that every backend
//! implements, the one [`Error`] type, and the timestamp and log-entry formats of the DMS
//! frontend's Python `task_state` package.
//!
//! ```
//! use task_state_core::{format_log_entry_at, TaskRecord, TaskStatus, TaskTime, Zone};
//!
//! let zone = Zone::named("Asia/Seoul")?;
//! let now = TaskTime::from_timestamp("2025-11-17T01:00:16.515926Z".parse().unwrap(), &zone);
//! let mut record = TaskRecord::new_at("5", "render", "bob", TaskStatus::Running, now);
//! record.logs.push(format_log_entry_at("worker started", now));
//! assert!(record.to_json().contains(r#""logs":["2025-11-17T10:00:16.515926+09:00,worker started"]"#));
//! # Ok::<(), task_state_core::Error>(())
//! ```
//!
//! Features:
//! - `mock`: `MockTaskRepository`, a [mockall](https://docs.rs/mockall) mock of the trait.
//! - `conformance`: the conformance suite (`task_state_core::conformance`) that each backend's
//!   tests run.
//! - `time`: `From<TaskTime> for time::OffsetDateTime` and
//!   `TryFrom<time::OffsetDateTime> for TaskTime` (microseconds; see the impls).
#![cfg_attr(
    feature = "mock",
    doc = r#"
A downstream unit test with the mock:

```
use std::sync::Arc;
use task_state_core::{MockTaskRepository, TaskRepository};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut repo = MockTaskRepository::new();
    repo.expect_append_log()
        .withf(|id, message| id == "7" && message == "hello")
        .times(1)
        .returning(|_, _| Ok(None));
    let repo: Arc<dyn TaskRepository> = Arc::new(repo);
    assert!(repo.append_log("7", "hello").await.unwrap().is_none());
}
```
"#
)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod layout;
mod log;
mod model;
pub mod raw;
mod repository;
mod time;
#[cfg(feature = "time")]
mod time_compat;
mod validate;

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

pub use error::{BackendKind, BoxError, Error, Refusal, Result};
pub use log::{format_log_entry, format_log_entry_at, format_log_entry_with, LogEntry};
pub use model::{
    json_string, JobsField, PriorityLevel, RecordHead, TaskRecord, TaskResult, TaskStatus,
};
pub use raw::RawMap;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use repository::MockTaskRepository;
pub use repository::{Scope, TaskList, TaskRepository, TaskRepositoryExt, Unreadable};
pub use time::{
    Clock, ManualClock, ParseTimeError, SystemClock, TaskTime, Zone, DEFAULT_TIMEZONE, TIMEZONE_VAR,
};
pub use validate::{
    compare_task_ids, validate_name, validate_record, validate_task_id, validate_transition_from,
    MAX_NAME_BYTES,
};

/// The jiff crate, whose `Timestamp` the [`Clock`] returns.
pub use jiff;
/// The serde_json crate, whose `RawValue` holds each value of the parameters and unknown fields
/// ([`RawMap`]). task-state enables only its `raw_value` feature.
pub use serde_json;
