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
