//! The Redis backend on a real Redis Cluster: three primaries and three replicas on loopback
//! (`testing::RedisCluster`). See docs/cluster.md.

use std::time::Duration;

use task_state_redis::testing::{cluster_or_skip, RedisCluster};

fn cluster() -> Option<RedisCluster> {
    cluster_or_skip(&["--notify-keyspace-events", "Ex"])
}

#[test]
fn the_test_cluster_has_three_primaries_serving_every_slot() {
    let Some(cluster) = cluster() else { return };
    assert_eq!(cluster.primaries().len(), 3);
    let served: usize = cluster
        .primaries()
        .into_iter()
        .flat_map(|i| cluster.slots_of(i))
        .map(|r| r.count())
        .sum();
    assert_eq!(served, 16_384);
    assert!(cluster.primary_of("task:1").is_some());
    cluster.wait_ok(Duration::from_secs(5)).unwrap();
}

mod common;

use fred::prelude::KeysInterface;
use task_state_core::conformance::{async_trait, RawRecords};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

fn settings_of(cluster: &RedisCluster) -> RedisRepositorySettings {
    RedisRepositorySettings::builder()
        .with_write_url(cluster.url())
        .with_timezone("Asia/Seoul")
        .with_command_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn connect(cluster: &RedisCluster) -> RedisTaskRepository {
    RedisTaskRepository::connect(settings_of(cluster))
        .await
        .expect("connect to the cluster")
}

/// A repository on a fresh cluster, for the conformance suite.
async fn suite_store() -> Option<(RedisCluster, RedisTaskRepository)> {
    let cluster = cluster()?;
    let repo = connect(&cluster).await;
    assert!(repo.is_cluster());
    Some((cluster, repo))
}

/// Plants raw records with a plain `SET`, as another writer would.
struct Raw(RedisTaskRepository);

#[async_trait]
impl RawRecords for Raw {
    async fn plant_raw(&self, task_id: &str, text: &str) {
        self.0
            .writer()
            .next()
            .set::<(), _, _>(format!("task:{task_id}"), text, None, None, false)
            .await
            .expect("plant a raw record");
    }
}

fn raw<G>(_: &G, repo: &RedisTaskRepository) -> Raw {
    Raw(repo.clone())
}

mod conformance {
    use super::*;
    task_state_core::conformance_tests!(suite_store, raw_records = raw);
}
