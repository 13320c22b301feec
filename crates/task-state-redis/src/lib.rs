//! The Redis backend of task-state, on [fred](https://docs.rs/fred) pools.
//!
//! Records, metadata hashes and index sets are kept in the layout of the DMS frontend's
//! Python `task_state` package, so Rust workers and the Python frontend share one store.
//! Unlike that package, every mutation is atomic: one Lua script (`src/lua/*.lua`), or, on request, the
//! same edit made by the client and written under `WATCH`/`MULTI`/`EXEC` or `SET … IFEQ`
//! with the script after a conflict ([`WritePath`]), so concurrent writers never lose each
//! other's updates, and a log append costs the same on a task with
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
mod connection;
mod errors;
mod execution;
mod expiry;
mod hint;
mod janitor;
mod keys;
mod mutations;
mod provider;
mod raw;
mod reads;
mod reconciler;
mod record_writes;
mod redact;
mod redis_url;
mod replies;
mod repository;
mod scan;
mod scripts;
mod settings;
#[cfg(feature = "test-support")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-support")))]
pub mod testing;
mod ttl;
mod write;

pub use check::{
    check, check_user, plan_user_repair, CheckOptions, CheckPhase, CheckProgress, CheckReport,
    IndexDiff, NotUtf8, Repair, UserCheckOptions, UserIndexReport, UserRepairPlan, WrongTypeKey,
};
pub use execution::ExpiredCleanup;
pub use expiry::{check_notifications, ExpiryStats};
pub use janitor::{Janitor, JanitorOptions, NotificationCheck};
pub use provider::{ListenerStatus, ReconcilerStatus, RedisRepositoryProvider, RuntimeStatus};
pub use reconciler::{reconcile, ReconcileStats};
pub use record_writes::RecordWrites;
pub use redact::mask_url_passwords;
pub use repository::{RedisTaskRepository, BATCH_SIZE};
pub use scripts::{function_library, lua_library, script_source};
pub use settings::{
    KeptRecords, RedisRepositorySettings, RedisRepositorySettingsBuilder, RedisUrl, WritePath,
    DEFAULT_RECONCILE_INTERVAL, DEFAULT_TTL_SECONDS, READ_URL_VAR, RECONCILE_INTERVAL_VAR,
    REQUIRE_NOTIFICATIONS_VAR, TIMEZONE_VAR, TLS_CA_FILE_VAR, TTL_VAR, WRITE_PATH_VAR,
    WRITE_URL_VAR,
};
