//! Tasks whose metadata hash and record name different owners, shared by the single-node
//! tests (`owners.rs`) and the cluster tests (`cluster.rs`). Another writer stored a record
//! of another owner (and indexed it there) without updating the metadata hash, or left a
//! metadata hash whose names cannot be parts of keys: a delete or a save cleans the indexes of
//! every owner the task was indexed under, and never builds a key from such names. Each check
//! has ids and services of its own: the cluster test runs them in one store.

use fred::prelude::{HashesInterface, KeysInterface, SetsInterface};
use task_state_core::layout::{self, TaskIndexes};
use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::RedisTaskRepository;

async fn members(repo: &RedisTaskRepository, key: &str) -> Vec<String> {
    let mut members: Vec<String> = repo.raw_writer().next().smembers(key).await.unwrap();
    members.sort();
    members
}

async fn save_as(repo: &RedisTaskRepository, id: &str, service: &str, user: &str) {
    let record = TaskRecord::new(id, service, user, TaskStatus::Running);
    repo.save(record).await.unwrap();
}

/// Another writer writes `service` and `user` into task `id`'s metadata hash.
async fn name_in_metadata(repo: &RedisTaskRepository, id: &str, service: &str, user: &str) {
    let fields = vec![("service", service), ("user_id", user)];
    let key = layout::metadata_key(id);
    let _: () = repo.raw_writer().next().hset(key, fields).await.unwrap();
}

async fn holds(repo: &RedisTaskRepository, key: &str, member: &str) -> bool {
    members(repo, key).await.iter().any(|m| m == member)
}

/// Another writer stores task `id`'s record as one of `service` and `user` and indexes it
/// there, as the Python package's save does, leaving the metadata hash as it was.
async fn store_as_another_writer(repo: &RedisTaskRepository, id: &str, service: &str, user: &str) {
    let client = repo.raw_writer().next();
    let record = TaskRecord::new(id, service, user, TaskStatus::Running);
    let _: () = client
        .set(layout::record_key(id), record.to_json(), None, None, false)
        .await
        .unwrap();
    let indexes = TaskIndexes::of(service, user);
    for key in indexes.task_sets() {
        let _: () = client.sadd(key, id).await.unwrap();
    }
    let _: () = client.sadd(&indexes.service_users, user).await.unwrap();
}

/// Asserts that none of the four sets of (`service`, `user`) that hold task ids holds `id`.
async fn assert_left(repo: &RedisTaskRepository, id: &str, service: &str, user: &str) {
    for key in TaskIndexes::of(service, user).task_sets() {
        if key != layout::TASK_INDEX {
            assert!(!holds(repo, key, id).await, "{id} still in {key}");
        }
    }
}

/// Asserts that the task is in the five indexes of (`service`, `user`).
async fn assert_in(repo: &RedisTaskRepository, id: &str, service: &str, user: &str) {
    let indexes = TaskIndexes::of(service, user);
    for key in indexes.task_sets() {
        assert!(holds(repo, key, id).await, "{id} not in {key}");
    }
    assert!(holds(repo, &indexes.service_users, user).await);
}

/// A task saved by alice in `own-a`, then stored by another writer as bob's in `own-b`
/// (where bob has another task): `delete` takes it out of both owners' indexes; alice, who
/// has no task left in `own-a`, leaves its user set; bob, who has, stays.
pub async fn delete_cleans_the_indexes_of_the_metadata_and_of_the_record(
    repo: &RedisTaskRepository,
) {
    save_as(repo, "own-1", "own-a", "alice").await;
    save_as(repo, "own-2", "own-b", "bob").await;
    store_as_another_writer(repo, "own-1", "own-b", "bob").await;

    assert!(repo.delete("own-1").await.unwrap());

    assert!(!holds(repo, layout::TASK_INDEX, "own-1").await);
    assert_left(repo, "own-1", "own-a", "alice").await;
    assert_left(repo, "own-1", "own-b", "bob").await;
    assert!(members(repo, &layout::service_users("own-a"))
        .await
        .is_empty());
    assert_in(repo, "own-2", "own-b", "bob").await;
    let client = repo.raw_writer().next();
    for key in [layout::record_key("own-1"), layout::metadata_key("own-1")] {
        let left: i64 = client.exists(&key).await.unwrap();
        assert_eq!(left, 0, "{key} is left");
    }
}

/// The same task saved again, now as carol's in `mv-c`: it leaves the indexes of alice in
/// `mv-a` (the metadata's owner) and of bob in `mv-b` (the record's), and both leave the
/// user sets of their services; saved back as alice's, it leaves bob's indexes.
pub async fn save_moves_out_of_the_indexes_of_the_metadata_and_of_the_record(
    repo: &RedisTaskRepository,
) {
    save_as(repo, "own-3", "mv-a", "alice").await;
    store_as_another_writer(repo, "own-3", "mv-b", "bob").await;

    save_as(repo, "own-3", "mv-c", "carol").await;

    assert_in(repo, "own-3", "mv-c", "carol").await;
    assert_left(repo, "own-3", "mv-a", "alice").await;
    assert_left(repo, "own-3", "mv-b", "bob").await;
    assert!(members(repo, &layout::service_users("mv-a"))
        .await
        .is_empty());
    assert!(members(repo, &layout::service_users("mv-b"))
        .await
        .is_empty());

    store_as_another_writer(repo, "own-3", "mv-b", "bob").await;
    // The metadata names carol: a save as alice's leaves carol's and bob's indexes.
    save_as(repo, "own-3", "mv-a", "alice").await;
    assert_in(repo, "own-3", "mv-a", "alice").await;
    assert_left(repo, "own-3", "mv-b", "bob").await;
    assert_left(repo, "own-3", "mv-c", "carol").await;
    let owner: Vec<Option<String>> = repo
        .raw_writer()
        .next()
        .hmget(layout::metadata_key("own-3"), vec!["service", "user_id"])
        .await
        .unwrap();
    assert_eq!(owner, [Some("mv-a".to_owned()), Some("alice".to_owned())]);
}

/// A metadata hash whose service holds `:` (`own-x:user:eve`, which would name eve's index in
/// `own-x`) or whose user is empty names no owner: an edit, a save and a delete clean the
/// indexes of the owner the record names and touch no key built from those names.
pub async fn metadata_names_that_cannot_be_keys_build_no_key(repo: &RedisTaskRepository) {
    let client = repo.raw_writer().next();
    // Sets that hold the ids, at the keys such names would build.
    let decoys = [
        "index:service:own-x:user:eve",
        "index:user:mallory",
        "index:user:",
    ];
    for (id, service, user) in [
        ("own-4", "own-x:user:eve", "mallory"),
        ("own-5", "own-d", ""),
    ] {
        save_as(repo, id, "own-d", "dave").await;
        for key in decoys {
            let _: () = client.sadd(key, id).await.unwrap();
        }
        name_in_metadata(repo, id, service, user).await;
    }

    // An edit rewrites the metadata and keeps the task in its record's indexes.
    repo.append_log("own-4", "edited").await.unwrap().unwrap();
    assert_in(repo, "own-4", "own-d", "dave").await;
    // A save to another owner leaves the record owner's indexes.
    save_as(repo, "own-5", "own-e", "erin").await;
    assert_in(repo, "own-5", "own-e", "erin").await;
    assert_left(repo, "own-5", "own-d", "dave").await;
    // Metadata with such names again: a delete cleans by the record.
    name_in_metadata(repo, "own-5", "own-x:user:eve", "mallory").await;
    assert!(repo.delete("own-5").await.unwrap());
    assert_left(repo, "own-5", "own-e", "erin").await;
    assert!(!holds(repo, layout::TASK_INDEX, "own-5").await);

    for key in decoys {
        assert_eq!(
            members(repo, key).await,
            ["own-4", "own-5"],
            "{key} was touched"
        );
    }
}
