//! [`RedisRepositoryProvider`]: connect once, hand out the repository, close.

use tokio::sync::OnceCell;

use task_state_core::Result;

use crate::repository::RedisTaskRepository;
use crate::settings::RedisRepositorySettings;

/// Connects on first use and closes on request, as the Python package's
/// `RedisRepositoryProvider`.
///
/// ```no_run
/// # async fn run() -> task_state_core::Result<()> {
/// use task_state_redis::{RedisRepositoryProvider, RedisRepositorySettings};
/// let provider = RedisRepositoryProvider::new(RedisRepositorySettings::from_env()?);
/// let repo = provider.repository().await?;
/// # let _ = repo;
/// provider.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisRepositoryProvider {
    settings: RedisRepositorySettings,
    repository: OnceCell<RedisTaskRepository>,
}

impl RedisRepositoryProvider {
    /// A provider that has not connected yet.
    pub fn new(settings: RedisRepositorySettings) -> Self {
        RedisRepositoryProvider {
            settings,
            repository: OnceCell::new(),
        }
    }

    /// The repository, connecting (and pinging both servers) on the first call.
    ///
    /// # Errors
    /// As [`RedisTaskRepository::connect`]; a later call tries again.
    pub async fn repository(&self) -> Result<RedisTaskRepository> {
        self.repository
            .get_or_try_init(|| RedisTaskRepository::connect(self.settings.clone()))
            .await
            .cloned()
    }

    /// Closes the connections, if any were made.
    pub async fn close(&self) {
        if let Some(repo) = self.repository.get() {
            repo.close().await;
        }
    }
}
