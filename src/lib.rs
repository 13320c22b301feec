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

/// The README's code, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
