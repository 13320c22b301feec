//! Shared by the Redis backend's test files.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use task_state_core::ManualClock;
use task_state_redis::testing::{server_or_skip, RedisServer};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

/// A repository on a fresh private server, with the system clock.
pub async fn fresh() -> Option<(RedisServer, RedisTaskRepository)> {
    let server = server_or_skip()?;
    let repo = connect(&server).await;
    Some((server, repo))
}

/// A repository on `server`, zone Asia/Seoul.
pub async fn connect(server: &RedisServer) -> RedisTaskRepository {
    RedisTaskRepository::connect(settings(server))
        .await
        .expect("connect to the private redis-server")
}

pub fn settings(server: &RedisServer) -> RedisRepositorySettings {
    RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_timezone("Asia/Seoul")
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A clock at 2025-11-17T10:00:16.515926+09:00.
pub fn clock() -> ManualClock {
    ManualClock::new("2025-11-17T01:00:16.515926Z".parse().unwrap())
}

pub fn with_clock(repo: &RedisTaskRepository, clock: &ManualClock) -> RedisTaskRepository {
    repo.with_clock(Arc::new(clock.clone()))
}
