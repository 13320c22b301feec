//! The Redis backend of task-state, on [fred](https://docs.rs/fred) pools.
//!
//! Records, metadata hashes and index sets are kept in the layout of the DMS frontend's
//! Python `task_state` package, so Rust workers and the Python frontend share one store.
//! Unlike that package, every mutation is one Lua script (`src/lua/*.lua`), so concurrent
//! writers never lose each other's updates, and a log append costs the same on a task with
//! ten thousand log lines as on a new one.
//!
//! ```no_run
//! # async fn run() -> task_state_core::Result<()> {
//! use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
//! use task_state_redis::{RedisRepositoryProvider, RedisRepositorySettings};
//!
//! let provider = RedisRepositoryProvider::new(RedisRepositorySettings::from_env()?);
//! let repo = provider.repository().await?;
//! repo.save(TaskRecord::new("external-1", "analytics", "alice", TaskStatus::Pending)).await?;
//! repo.set_status("external-1", TaskStatus::Running, Some("worker started")).await?;
//! repo.update_result("external-1", Some("phase=Running"), Some("streamed output")).await?;
//! repo.set_status("external-1", TaskStatus::Completed, Some("worker finished")).await?;
//! provider.close().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod check;
mod cluster;
mod expiry;
mod keys;
mod positions;
mod provider;
mod redact;
mod repository;
mod scan;
mod scripts;
mod settings;
#[cfg(feature = "test-support")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-support")))]
pub mod testing;

pub use check::{
    check, check_user, plan_user_repair, CheckOptions, CheckPhase, CheckProgress, CheckReport,
    IndexDiff, NotUtf8, Repair, UserCheckOptions, UserIndexReport, UserRepairPlan, WrongTypeKey,
};
pub use expiry::{
    check_notifications, reconcile, ExpiryListener, ExpiryOptions, ExpiryStats, ReconcileStats,
};
pub use provider::{
    ListenerStatus, NotificationCheck, ReconcilerStatus, RedisRepositoryProvider, RuntimeStatus,
};
pub use redact::mask_url_passwords;
pub use repository::{ExpiredCleanup, RedisTaskRepository, BATCH_SIZE};
pub use scripts::{function_library, lua_library, script_source};
pub use settings::{
    RedisRepositorySettings, RedisRepositorySettingsBuilder, RedisUrl, DEFAULT_RECONCILE_INTERVAL,
    DEFAULT_TTL_SECONDS, READ_URL_VAR, RECONCILE_INTERVAL_VAR, REQUIRE_NOTIFICATIONS_VAR,
    TIMEZONE_VAR, TLS_CA_FILE_VAR, TTL_VAR, WRITE_URL_VAR,
};
