//! An in-memory [`TaskRepository`](task_state_core::TaskRepository) for tests and local
//! runs, laid out like the Redis store: the record JSON under `task:{id}`, its metadata, the
//! five index sets, the users of each service, the id counter, and expiry (90 days after the
//! last write by default) against an injectable clock.
//!
//! It passes the same conformance suite as the Redis backend, so code tested against it
//! behaves the same on Redis.
//!
//! ```
//! use std::sync::Arc;
//! use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
//! use task_state_memory::InMemoryTaskRepository;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> task_state_core::Result<()> {
//! let repo: Arc<dyn TaskRepository> = Arc::new(InMemoryTaskRepository::default());
//! let id = repo.next_task_id().await?;
//! repo.save(TaskRecord::new(&id, "render", "alice", TaskStatus::Pending)).await?;
//! repo.set_status(&id, TaskStatus::Running, Some("worker started")).await?;
//! repo.update_result(&id, Some("phase=Running"), None).await?;
//!
//! let record = repo.get(&id).await?.expect("saved above");
//! assert_eq!(record.status, TaskStatus::Running);
//! assert!(record.logs[0].ends_with(",worker started"));
//! assert_eq!(repo.list_by_service("render").await?.ids(), [id.as_str()]);
//! # Ok(()) }
//! ```
//!
//! Time is injectable: with a [`ManualClock`](task_state_core::ManualClock), timestamps and
//! expiry follow the clock you move.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use task_state_core::{ManualClock, TaskRecord, TaskRepository, TaskStatus, Zone};
//! use task_state_memory::InMemoryTaskRepository;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> task_state_core::Result<()> {
//! let clock = ManualClock::new("2025-11-17T01:00:16.515926Z".parse().unwrap());
//! let repo = InMemoryTaskRepository::builder()
//!     .ttl(Duration::from_secs(60))
//!     .zone(Zone::named("Asia/Seoul")?)
//!     .clock(Arc::new(clock.clone()))
//!     .build();
//! let saved = repo.save(TaskRecord::new("7", "render", "bob", TaskStatus::Pending)).await?;
//! assert_eq!(saved.updated_at.to_string(), "2025-11-17T10:00:16.515926+09:00");
//!
//! clock.advance(Duration::from_secs(60));
//! assert!(repo.get("7").await?.is_none());
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod repository;
mod store;

pub use builder::{InMemoryTaskRepositoryBuilder, DEFAULT_TTL};
pub use repository::InMemoryTaskRepository;
