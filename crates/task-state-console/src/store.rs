//! What the console reads from: the repository (timed by the metrics decorator), and, on
//! Redis, the repository itself for the health check and the consistency check.

use std::sync::Arc;

use task_state_core::TaskRepository;
use task_state_redis::{mask_url_passwords, Janitor, RedisTaskRepository};

/// The backend behind the console.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// Every page's reads and writes go through this one, so that they are counted.
    pub(crate) repo: Arc<dyn TaskRepository>,
    /// The Redis repository, when the backend is Redis: its pools for `/healthz`, and the
    /// consistency check.
    pub(crate) redis: Option<RedisTaskRepository>,
    /// The janitor (expiry listener and reconciler), when it runs in this process.
    pub(crate) janitor: Option<Arc<Janitor>>,
}

impl Store {
    /// Pings the writer and the reader pool; `Ok` at once on a backend without pools.
    ///
    /// # Errors
    /// A message naming the pool that did not answer, without any password or URL.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        redis.ping().await.map_err(|e| match e {
            task_state_core::Error::Backend { message, .. } => mask_url_passwords(&message),
            other => mask_url_passwords(&other.to_string()),
        })
    }
}
