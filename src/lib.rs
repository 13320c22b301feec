//! task-state: task lifecycle state shared with the DMS frontend's Python `task_state`
//! package. This facade re-exports the core and, behind features, the backends.
//!
//! - `memory` (default): [`memory`], the in-memory backend (`task-state-memory`).
//! - `redis` (default): [`redis`], the Redis backend (`task-state-redis`).
#![warn(missing_docs)]

pub use task_state_core::*;

/// The in-memory backend.
#[cfg(feature = "memory")]
pub use task_state_memory as memory;

/// The Redis backend.
#[cfg(feature = "redis")]
pub use task_state_redis as redis;

/// The repository the environment asks for: Redis when `DMS_REDIS_WRITE_URL` is set (with
/// the other `DMS_*` variables, as [`redis::RedisRepositorySettings::from_env`] reads them),
/// else the in-memory backend, which keeps nothing beyond the process: the embedded default
/// for a service run without Redis, and for tests.
///
/// # Errors
/// [`Error::Config`] for bad `DMS_*` values, [`Error::Backend`] when Redis cannot be reached.
///
/// ```no_run
/// # async fn run() -> task_state::Result<()> {
/// let repo = task_state::repository_from_env().await?;
/// let id = repo.next_task_id().await?;
/// # Ok(()) }
/// ```
#[cfg(all(feature = "memory", feature = "redis"))]
pub async fn repository_from_env() -> Result<std::sync::Arc<dyn TaskRepository>> {
    let configured = std::env::var_os(redis::WRITE_URL_VAR).is_some_and(|url| !url.is_empty());
    if configured {
        let settings = redis::RedisRepositorySettings::from_env()?;
        let repo = redis::RedisTaskRepository::connect(settings).await?;
        Ok(std::sync::Arc::new(repo))
    } else {
        Ok(std::sync::Arc::new(
            memory::InMemoryTaskRepository::default(),
        ))
    }
}

/// The README's code, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
