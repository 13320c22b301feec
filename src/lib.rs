//! task-state: task lifecycle state shared with the DMS frontend's Python `task_state`
//! package. This facade re-exports the core and, behind features, the backends, so that a
//! downstream crate needs this one dependency.
//!
//! - `memory` (default): [`memory`], the in-memory backend (`task-state-memory`).
//! - `redis` (default): [`redis`], the Redis backend (`task-state-redis`); `tls` (default)
//!   adds `rediss://` URLs.
//! - `mock`: `MockTaskRepository`, a mockall mock of [`TaskRepository`].
//! - `conformance`: `conformance` and `conformance_tests!`, the suite every backend passes,
//!   to run on a backend of one's own.
//! - `time`: conversions between `TaskTime` and `time::OffsetDateTime`.
//! - `test-support`: `redis::testing`, private `redis-server` processes for tests.
//! - `tzdb-bundle`: embed the IANA tz database, for systems without `/usr/share/zoneinfo`
//!   (the system's database is used where there is one; see [`Zone`]).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use task_state_core::*;

/// The in-memory backend.
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use task_state_memory as memory;

/// The Redis backend.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use task_state_redis as redis;

/// The Redis repository the `DMS_*` variables describe, as Python's
/// `RedisRepositorySettings.from_env()`: `DMS_REDIS_WRITE_URL` is required, and the other
/// variables are read as [`redis::RedisRepositorySettings::from_env`] reads them. It never
/// falls back to a store in memory; [`repository_from_env_or_memory`] does, on purpose.
///
/// # Errors
/// [`Error::Config`] (`DMS_REDIS_WRITE_URL is required`, or naming the bad variable),
/// [`Error::Backend`] when Redis cannot be reached.
///
/// ```no_run
/// # async fn run() -> task_state::Result<()> {
/// let repo = task_state::repository_from_env().await?;
/// let id = repo.next_task_id().await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub async fn repository_from_env() -> Result<std::sync::Arc<dyn TaskRepository>> {
    let settings = redis::RedisRepositorySettings::from_env()?;
    let repo = redis::RedisTaskRepository::connect(settings).await?;
    Ok(std::sync::Arc::new(repo))
}

/// Redis as [`repository_from_env`] when `DMS_REDIS_WRITE_URL` is set, else the in-memory
/// backend, which keeps nothing beyond the process: for examples, tests and local runs.
/// It logs (tracing, at `info`) which backend it chose, and for Redis the URL without its
/// password. A production service calls [`repository_from_env`], which fails instead.
///
/// # Errors
/// As [`repository_from_env`] when the variable is set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> task_state::Result<()> {
/// std::env::remove_var("DMS_REDIS_WRITE_URL");
/// let repo = task_state::repository_from_env_or_memory().await?;
/// assert!(format!("{repo:?}").contains("InMemory"));
/// # Ok(()) }
/// ```
#[cfg(all(feature = "memory", feature = "redis"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "memory", feature = "redis"))))]
pub async fn repository_from_env_or_memory() -> Result<std::sync::Arc<dyn TaskRepository>> {
    let configured = std::env::var(redis::WRITE_URL_VAR).is_ok_and(|url| !url.trim().is_empty());
    if configured {
        let repo = repository_from_env().await?;
        tracing::info!(backend = "redis", ?repo, "task-state backend chosen: Redis");
        Ok(repo)
    } else {
        tracing::info!(
            backend = "memory",
            "task-state backend chosen: in memory ({} is unset; nothing is kept)",
            redis::WRITE_URL_VAR
        );
        Ok(std::sync::Arc::new(
            memory::InMemoryTaskRepository::default(),
        ))
    }
}

/// The README's code, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
