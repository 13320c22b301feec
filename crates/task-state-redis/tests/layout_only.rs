//! The consistency check, its repair and the reconciler touch only keys of the layout, and
//! never a key because its type is wrong: they report it and go on.

mod common;

use common::fresh;
use fred::prelude::{ClientLike, Value};
use fred::types::CustomCommand;
use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::{check, reconcile, CheckOptions, RedisTaskRepository};

/// A key's `DUMP` (`None` when it does not exist) and its TTL in seconds.
async fn raw(repo: &RedisTaskRepository, key: &str) -> (Option<Vec<u8>>, i64) {
    let client = repo.raw_writer().next();
    let command = |name: &'static str| CustomCommand::new_static(name, None::<u16>, false);
    let dump: Value = client.custom(command("DUMP"), vec![key]).await.unwrap();
    let ttl: i64 = client.custom(command("TTL"), vec![key]).await.unwrap();
    (dump.as_bytes().map(<[u8]>::to_vec), ttl)
}

/// Keys named like the layout's, in the same database, that are not part of it: sets whose
/// members are no task ids, sets under names with too many parts, and keys of other types.
const FOREIGN: &[&str] = &[
    "index:recent-searches",
    "index:service:a:b:c",
    "index:service:a:user:b:c",
    "index:user:x:y",
    "index:service::users",
    "index:user:",
    "index:tasks:archive",
    "index:hash",
    "index:list",
];

async fn plant_foreign(server: &task_state_redis::testing::RedisServer) {
    for key in &FOREIGN[..7] {
        server.cli(&["SADD", key, "1", "ghost", "alice"]);
        server.cli(&["EXPIRE", key, "5000"]);
    }
    server.cli(&["HSET", "index:hash", "ghost", "1"]);
    server.cli(&["RPUSH", "index:list", "ghost", "1"]);
}

async fn snapshot(
    repo: &RedisTaskRepository,
    keys: &[&str],
) -> Vec<(String, Option<Vec<u8>>, i64)> {
    let mut out = Vec::new();
    for key in keys {
        let (dump, ttl) = raw(repo, key).await;
        assert!(dump.is_some(), "{key} exists");
        out.push((key.to_string(), dump, ttl));
    }
    out
}

fn assert_same(
    before: &[(String, Option<Vec<u8>>, i64)],
    after: &[(String, Option<Vec<u8>>, i64)],
) {
    for ((key, dump, ttl), (_, dump_after, ttl_after)) in before.iter().zip(after) {
        assert!(dump == dump_after, "{key} changed");
        assert!(
            (ttl - ttl_after).abs() <= 2,
            "{key}: TTL {ttl} became {ttl_after}"
        );
    }
}

#[tokio::test]
async fn the_reconciler_and_the_repair_leave_foreign_index_keys_alone() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    repo.save(TaskRecord::new("1", "render", "alice", TaskStatus::Running))
        .await
        .unwrap();
    server.cli(&["SADD", "index:tasks", "gone"]);
    plant_foreign(&server).await;
    let before = snapshot(&repo, FOREIGN).await;

    let removed = reconcile(&repo).await.unwrap();
    assert_eq!(removed, 1, "only the id of index:tasks without a record");
    assert_same(&before, &snapshot(&repo, FOREIGN).await);

    let found = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    for key in FOREIGN {
        assert!(!found.indexes.contains_key(*key), "{key}: {found:?}");
    }
    assert_same(&before, &snapshot(&repo, FOREIGN).await);
    let again = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(again.is_consistent(), "{again:?}");
}

#[tokio::test]
async fn keys_of_the_wrong_type_are_reported_and_never_touched() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    let owners = [
        ("1", "alice"),
        ("2", "bob"),
        ("3", "carol"),
        ("4", "dave"),
        ("5", "erin"),
    ];
    for (id, user) in owners {
        repo.save(TaskRecord::new(id, "render", user, TaskStatus::Running))
            .await
            .unwrap();
    }
    // An index that records name, a metadata hash, a record, and a user index that the
    // service's user set names, each replaced by a key of another type. Task 4 also misses
    // its index:tasks entry, which the repair cannot give back without writing dave's index;
    // task 5's missing entry it must still repair.
    server.cli(&["DEL", "index:user:alice"]);
    server.cli(&["SET", "index:user:alice", "not a set", "EX", "5000"]);
    server.cli(&["DEL", "task:2:metadata"]);
    server.cli(&["RPUSH", "task:2:metadata", "not a hash"]);
    server.cli(&["DEL", "task:3"]);
    server.cli(&["HSET", "task:3", "not", "a string"]);
    server.cli(&["DEL", "index:service:render:user:dave"]);
    server.cli(&["ZADD", "index:service:render:user:dave", "1", "4"]);
    server.cli(&["SREM", "index:tasks", "4", "5"]);
    let wrong = [
        ("index:user:alice", "set", "string"),
        ("task:2:metadata", "hash", "list"),
        ("task:3", "string", "hash"),
        ("index:service:render:user:dave", "set", "zset"),
    ];
    let keys: Vec<&str> = wrong.iter().map(|(k, _, _)| *k).collect();
    let before = snapshot(&repo, &keys).await;

    let found = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    for (key, expected, actual) in wrong {
        let entry = found
            .wrong_type
            .get(key)
            .unwrap_or_else(|| panic!("{key} not reported: {found:?}"));
        assert_eq!((entry.expected, entry.found.as_str()), (expected, actual));
    }
    assert_eq!(found.wrong_type.len(), 4, "{found:?}");
    assert!(!found.is_consistent());
    assert_eq!(
        found.missing(),
        2,
        "4 and 5 are not in index:tasks: {found:?}"
    );

    let repaired = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    assert_eq!(repaired.wrong_type, found.wrong_type);
    assert_same(&before, &snapshot(&repo, &keys).await);
    assert_eq!(server.cli(&["SISMEMBER", "index:tasks", "5"]), "1");
    assert_eq!(server.cli(&["SISMEMBER", "index:tasks", "4"]), "0");
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert_eq!(after.wrong_type, found.wrong_type);
    assert_eq!(after.missing(), 1, "{after:?}");
    assert_eq!(after.extra(), 0, "{after:?}");

    // The reconciler goes on past them too.
    server.cli(&["SADD", "index:tasks", "gone"]);
    assert_eq!(reconcile(&repo).await.unwrap(), 1);
    assert_same(&before, &snapshot(&repo, &keys).await);
}
