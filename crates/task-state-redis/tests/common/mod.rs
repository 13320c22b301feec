//! Shared by the Redis backend's test files.
#![allow(dead_code, unreachable_pub)]

pub mod concurrency;
pub mod owners;

use std::sync::Arc;
use std::time::Duration;

use task_state_core::{ManualClock, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip, test_redis_or_skip, RedisServer, TestRedis};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository, WritePath};

/// A repository on a fresh private server, with the system clock.
pub async fn fresh() -> Option<(RedisServer, RedisTaskRepository)> {
    let server = server_or_skip()?;
    let repo = connect(&server).await;
    Some((server, repo))
}

/// A repository on a fresh private server whose mutations are forced onto `path`.
pub async fn fresh_on(path: WritePath) -> Option<(RedisServer, RedisTaskRepository)> {
    let server = server_or_skip()?;
    let repo = connect_on(&server, path).await;
    Some((server, repo))
}

/// A repository on `server` whose mutations are forced onto `path`.
pub async fn connect_on(server: &RedisServer, path: WritePath) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_timezone("Asia/Seoul")
        .with_command_timeout(Duration::from_secs(5))
        .with_write_path(path)
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings).await.unwrap()
}

/// A repository for the conformance suite: on the server of `TASK_STATE_TEST_REDIS_URL`
/// when it is set (one test at a time, flushed), else on a fresh private server.
pub async fn suite_store() -> Option<(TestRedis, RedisTaskRepository)> {
    let redis = test_redis_or_skip().await?;
    let repo = RedisTaskRepository::connect(settings_for(&redis.url()))
        .await
        .expect("connect to the test Redis");
    Some((redis, repo))
}

/// [`suite_store`] with mutations forced onto `path`.
pub async fn suite_store_on(path: WritePath) -> Option<(TestRedis, RedisTaskRepository)> {
    let redis = test_redis_or_skip().await?;
    let settings = RedisRepositorySettings::builder()
        .with_write_url(redis.url())
        .with_timezone("Asia/Seoul")
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(10))
        .with_write_path(path)
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings)
        .await
        .expect("connect to the test Redis");
    Some((redis, repo))
}

/// Saves running tasks `0..count`: the even ids of alice in `render`, the odd ones of bob in
/// `train`.
pub async fn save_tasks_of_two_owners(repo: &RedisTaskRepository, count: usize) {
    for i in 0..count {
        let (service, user) = if i % 2 == 0 {
            ("render", "alice")
        } else {
            ("train", "bob")
        };
        let record = TaskRecord::new(i.to_string(), service, user, TaskStatus::Running);
        repo.save(record).await.unwrap();
    }
}

/// A repository on `server`, zone Asia/Seoul.
pub async fn connect(server: &RedisServer) -> RedisTaskRepository {
    RedisTaskRepository::connect(settings(server))
        .await
        .expect("connect to the private redis-server")
}

pub fn settings(server: &RedisServer) -> RedisRepositorySettings {
    settings_for(&server.url())
}

pub fn settings_for(url: &str) -> RedisRepositorySettings {
    RedisRepositorySettings::builder()
        .with_write_url(url)
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

/// Plants raw records with a plain `SET` on the writer, as another writer would: the hook of
/// the conformance suite's raw-record checks.
pub struct Raw(pub RedisTaskRepository);

#[task_state_core::conformance::async_trait]
impl task_state_core::conformance::RawRecords for Raw {
    async fn plant_raw(&self, task_id: &str, text: &str) {
        use fred::prelude::KeysInterface;
        self.0
            .raw_writer()
            .next()
            .set::<(), _, _>(format!("task:{task_id}"), text, None, None, false)
            .await
            .expect("plant a raw record");
    }
}

/// [`Raw`] for `conformance_tests!(…, raw_records = raw)`.
pub fn raw<G>(_: &G, repo: &RedisTaskRepository) -> Raw {
    Raw(repo.clone())
}

/// Saves tasks 1 and 2 of one owner, shortens `index:tasks` to 100 s and gives the other
/// sets 90,000,000 s (more than the setting), deletes task 1 and checks through `cli` (a
/// `redis-cli` of the server) that every set lost it and kept its TTL; then deletes task 2.
pub async fn a_delete_leaves_the_set_ttls(
    repo: &RedisTaskRepository,
    cli: impl Fn(&[&str]) -> String,
) {
    let sets = [
        "index:tasks",
        "index:service:s",
        "index:service:s:users",
        "index:service:s:user:u",
        "index:user:u",
    ];
    for id in ["1", "2"] {
        repo.save(TaskRecord::new(id, "s", "u", TaskStatus::Running))
            .await
            .unwrap();
    }
    cli(&["EXPIRE", "index:tasks", "100"]);
    for key in &sets[1..] {
        cli(&["EXPIRE", key, "90000000"]);
    }
    assert!(repo.delete("1").await.unwrap());
    for key in sets {
        let ttl: i64 = cli(&["TTL", key]).parse().unwrap();
        let range = if key == "index:tasks" {
            90..=100
        } else {
            89_999_990..=90_000_000
        };
        assert!(range.contains(&ttl), "{key}: {ttl}");
        assert_eq!(cli(&["SISMEMBER", key, "1"]), "0", "{key}");
    }
    assert!(repo.delete("2").await.unwrap());
}
