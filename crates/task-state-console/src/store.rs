//! What the console reads from: the repository (timed by the metrics decorator), and, on
//! Redis, the repository itself for the health check and the consistency check.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{ClientLike, Pool};
use task_state_core::TaskRepository;
use task_state_redis::{mask_url_passwords, ExpiryListener, RedisTaskRepository};

/// The backend behind the console.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// Every page's reads and writes go through this one, so that they are counted.
    pub(crate) repo: Arc<dyn TaskRepository>,
    /// The Redis repository, when the backend is Redis: its pools for `/healthz`, and the
    /// consistency check.
    pub(crate) redis: Option<RedisTaskRepository>,
    /// The expiry listener and reconciler, when they run in this process.
    pub(crate) janitor: Option<Arc<ExpiryListener>>,
}

impl Store {
    /// Pings the writer and the reader pool; `Ok` at once on a backend without pools.
    ///
    /// # Errors
    /// A message naming the pool that did not answer, without any password.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        let timeout = redis.settings().command_timeout();
        ping_pool(redis.writer(), "writer", timeout).await?;
        ping_pool(redis.reader(), "reader", timeout).await
    }
}

async fn ping_pool(pool: &Pool, name: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, pool.next().ping::<String>(None)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(mask_url_passwords(&format!(
            "the {name} pool does not answer: {}",
            e.details()
        ))),
        Err(_) => Err(format!("the {name} pool gave no answer within {timeout:?}")),
    }
}
