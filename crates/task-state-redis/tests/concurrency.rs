//! No lost update: concurrent writers on separate connections against a real Redis. The
//! checks are in `common/concurrency.rs`, shared with the cluster tests.

mod common;

use std::time::Duration;

use common::{concurrency, fresh};
use futures::future::join_all;
use task_state_redis::testing::RedisServer;
use task_state_redis::{KeptRecords, RedisRepositorySettings, RedisTaskRepository};

async fn single_connection(server: &RedisServer) -> RedisTaskRepository {
    keeping(server, KeptRecords::default()).await
}

/// A writer of pool size one whose connections keep the records they write as `kept` says.
async fn keeping(server: &RedisServer, kept: KeptRecords) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_pool_size(1)
        .with_command_timeout(Duration::from_secs(30))
        .with_kept_records(kept)
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings).await.unwrap()
}

async fn writers(server: &RedisServer, n: usize) -> Vec<RedisTaskRepository> {
    join_all((0..n).map(|_| single_connection(server))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_keep_all_3200_lines_in_order() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let writers = writers(&server, 16).await;
    concurrency::sixteen_writers_keep_all_3200_lines_in_order(&repo, writers).await;
}

/// The same with every record kept on the writers' connections: each edit of one writer
/// ends what the fifteen others keep, and none of them may edit a text it kept before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_that_keep_the_record_keep_all_3200_lines_in_order() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let every = KeptRecords {
        from_bytes: 0,
        ..KeptRecords::default()
    };
    let writers = join_all((0..16).map(|_| keeping(&server, every))).await;
    concurrency::sixteen_writers_keep_all_3200_lines_in_order(&repo, writers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_keep_both_result_fields_on_100_tasks() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let (a, b) = (
        single_connection(&server).await,
        single_connection(&server).await,
    );
    concurrency::two_writers_keep_both_result_fields_on_100_tasks(&repo, a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_concurrent_transition_wins() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let writers = writers(&server, 8).await;
    concurrency::exactly_one_concurrent_transition_wins(&repo, writers).await;
}
