//! Tasks whose metadata hash and record name different owners, on one node. The checks are in
//! `common/owners.rs`, shared with the cluster tests.

mod common;

use common::{fresh, owners};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cleans_the_indexes_of_the_metadata_and_of_the_record() {
    let Some((_server, repo)) = fresh().await else {
        return;
    };
    owners::delete_cleans_the_indexes_of_the_metadata_and_of_the_record(&repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_moves_out_of_the_indexes_of_the_metadata_and_of_the_record() {
    let Some((_server, repo)) = fresh().await else {
        return;
    };
    owners::save_moves_out_of_the_indexes_of_the_metadata_and_of_the_record(&repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_names_that_cannot_be_keys_build_no_key() {
    let Some((_server, repo)) = fresh().await else {
        return;
    };
    owners::metadata_names_that_cannot_be_keys_build_no_key(&repo).await;
}
