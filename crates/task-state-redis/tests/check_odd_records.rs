//! The consistency check, its repair, the reconciler and the listing on records and names
//! that other tools leave: owner names that cannot be key parts, empty-string records,
//! index members that are no task id, and keys and members that are not UTF-8.

mod common;

use common::{fresh, save_tasks_of_two_owners};
use proptest::prelude::*;
use task_state_core::{Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::RedisServer;
use task_state_redis::{check, reconcile, CheckOptions, IndexDiff, NotUtf8, Repair};

/// The JSON of a task `id` of `service` and `user`, written as another tool would.
fn record_of(id: &str, service: &str, user: &str) -> String {
    let mut record = TaskRecord::new(id, "s", "u", TaskStatus::Running);
    record.service = service.to_owned();
    record.user_id = user.to_owned();
    record.to_json()
}

/// Owner names that cannot be part of a key: empty, and with `:` (which would build
/// `index:service:a:user:b`, service `a`'s index of user `b`, and `index:user:x:y`).
const BAD_OWNERS: [(&str, &str, &str); 3] = [
    ("100", "", "u"),
    ("101", "a:user:b", "u"),
    ("102", "s", "x:y"),
];

fn plant_bad_owners(server: &RedisServer) {
    for (id, service, user) in BAD_OWNERS {
        server.cli(&["SET", &format!("task:{id}"), &record_of(id, service, user)]);
    }
}

/// Keys that a repair planning from the bad owners' names would write.
const KEYS_OF_BAD_NAMES: [&str; 6] = [
    "index:service:",
    "index:service::users",
    "index:service:a:user:b",
    "index:service:a:user:b:users",
    "index:user:x:y",
    "index:service:s:user:x:y",
];

/// A byte string that is not UTF-8, stored with a script so that no client re-encodes it:
/// `SADD index:tasks "\xff"`, `SET task:\xfe <record>`.
fn plant_not_utf8(server: &RedisServer) {
    server.cli(&[
        "EVAL",
        "redis.call('SADD', KEYS[1], string.char(255)); \
         redis.call('SET', 'task:' .. string.char(254), ARGV[1]); return 1",
        "1",
        "index:tasks",
        &record_of("x", "s", "u"),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_names_that_cannot_be_key_parts_are_unreadable_and_never_planned_into_keys() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 6).await;
    plant_bad_owners(&server);
    // A valid task to repair, whatever SCAN order puts before it.
    server.cli(&["SREM", "index:tasks", "5"]);

    let found = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert_eq!(found.unreadable, 3, "{found:?}");
    let mut named: Vec<&str> = found
        .unreadable_examples
        .iter()
        .map(|(key, _)| key.as_str())
        .collect();
    named.sort();
    assert_eq!(named, ["task:100", "task:101", "task:102"]);
    assert!(found
        .unreadable_examples
        .iter()
        .all(|(_, reason)| reason.contains("must not")));
    assert_eq!(
        found.indexes.keys().collect::<Vec<_>>(),
        ["index:tasks"],
        "only the valid task's index: {found:?}"
    );
    assert_eq!(
        found.repairs,
        [Repair::Reindex {
            task_id: "5".into(),
            add_to: vec!["index:tasks".into()],
            metadata: false,
        }]
    );
    assert!(!found.is_consistent());

    let repaired = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .expect("the repair goes past records it cannot read");
    assert_eq!(repaired.repaired, 1, "{repaired:?}");
    assert_eq!(server.cli(&["SISMEMBER", "index:tasks", "5"]), "1");
    for key in KEYS_OF_BAD_NAMES {
        assert_eq!(server.cli(&["EXISTS", key]), "0", "{key} written");
    }
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.indexes.is_empty(), "{after:?}");
    assert_eq!(after.unreadable, 3);
    assert!(
        !after.is_consistent(),
        "unreadable records are no consistency"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_string_record_is_absent_and_its_entries_and_metadata_are_repaired() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 6).await;
    server.cli(&["SET", "task:2", "", "KEEPTTL"]);
    server.cli(&["SET", "task:3", "", "KEEPTTL"]);

    let listed = repo.list_all().await.unwrap();
    assert_eq!(listed.ids(), ["0", "1", "4", "5"]);
    assert!(listed.unreadable.is_empty(), "{:?}", listed.unreadable);

    let found = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert_eq!((found.records, found.unreadable), (4, 0), "{found:?}");
    let extra = |n| IndexDiff {
        missing: 0,
        extra: n,
    };
    assert_eq!(found.indexes["index:tasks"], extra(2));
    assert_eq!(found.indexes["index:user:alice"], extra(1));
    assert_eq!(found.indexes["index:service:train:user:bob"], extra(1));
    assert_eq!(found.orphan_metadata, 2);

    // The reconciler prunes them as ids without a record.
    assert_eq!(reconcile(&repo).await.unwrap(), 8);
    let pruned = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(pruned.indexes.is_empty(), "{pruned:?}");
    assert_eq!(pruned.orphan_metadata, 2);

    let repaired = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    assert_eq!(repaired.repaired, 2, "{repaired:?}");
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.is_consistent(), "{after:?}");
    assert_eq!(server.cli(&["EXISTS", "task:2:metadata"]), "0");
    // The string itself is left as found: nothing reads it as a task.
    assert_eq!(server.cli(&["EXISTS", "task:2"]), "1");
    assert_eq!(repo.get("2").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_cleanup_of_an_empty_string_record_cleans_its_entries() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 2).await;
    server.cli(&["SET", "task:1", "", "KEEPTTL"]);
    let cleanup = repo.handle_task_expired("1").await.unwrap();
    assert!(!cleanup.record_exists && cleanup.removed, "{cleanup:?}");
    assert_eq!(server.cli(&["SISMEMBER", "index:service:train", "1"]), "0");
    assert_eq!(server.cli(&["EXISTS", "task:1:metadata"]), "0");
    assert_eq!(server.cli(&["EXISTS", "index:service:train:users"]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_that_are_no_task_id_are_extra_and_removed() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 2).await;
    server.cli(&["SADD", "index:tasks", "", "0:metadata"]);
    server.cli(&["SADD", "index:service:render:users", ""]);
    // list warns about them; the check agrees.
    let listed = repo.list_all().await.unwrap();
    assert_eq!(listed.unreadable.len(), 2, "{listed:?}");
    let found = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert_eq!(found.indexes["index:tasks"].extra, 2, "{found:?}");
    assert_eq!(found.indexes["index:service:render:users"].extra, 1);
    check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.is_consistent(), "{after:?}");
    // The reconciler removes them too.
    server.cli(&["SADD", "index:tasks", ""]);
    server.cli(&["SADD", "index:service:render:users", "a:b"]);
    assert_eq!(reconcile(&repo).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_members_that_are_not_utf8_are_named_by_check_and_list() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 2).await;
    plant_not_utf8(&server);

    let listed = repo.list_all().await.unwrap();
    assert_eq!(listed.ids(), ["0", "1"]);
    assert!(
        matches!(
            listed.unreadable.as_slice(),
            [u] if matches!(&u.error, Error::Decode { key, .. } if key == "task:\\xff")
        ),
        "{:?}",
        listed.unreadable
    );

    let found = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    assert_eq!(found.not_utf8, 2, "{found:?}");
    let mut named = found.not_utf8_examples.clone();
    named.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        named,
        [
            NotUtf8 {
                key: "index:tasks".into(),
                member: Some("\\xff".into()),
            },
            NotUtf8 {
                key: "task:\\xfe".into(),
                member: None,
            },
        ]
    );
    assert!(!found.is_consistent());
    // Never repaired: an operator decides.
    assert_eq!(server.cli(&["SCARD", "index:tasks"]), "3");
}

/// `fsck --repair` on a store with every kind of odd record at once repairs all it can, and
/// what remains is exactly what it cannot repair: the records it cannot read and the names
/// that are not UTF-8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repair_of_a_store_with_every_odd_record_leaves_only_what_it_cannot_read() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 20).await;
    plant_bad_owners(&server);
    plant_not_utf8(&server);
    server.cli(&["SET", "task:7", "", "KEEPTTL"]);
    server.cli(&["SET", "task:8", "{not json", "KEEPTTL"]);
    server.cli(&["SADD", "index:tasks", "", "ghost"]);
    server.cli(&["SADD", "index:service:a:user:b", "101"]);
    for id in ["3", "12", "19"] {
        server.cli(&["SREM", "index:tasks", id]);
        server.cli(&["DEL", &format!("task:{id}:metadata")]);
    }

    check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .expect("the repair never stops at an odd record");
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.indexes.is_empty(), "{after:?}");
    assert_eq!(after.metadata_mismatch, 0);
    assert_eq!(after.orphan_metadata, 0);
    assert!(after.wrong_type.is_empty());
    // task:100..102 and task:8
    assert_eq!(after.unreadable, 4, "{after:?}");
    assert_eq!(after.not_utf8, 2, "{after:?}");
    for key in KEYS_OF_BAD_NAMES {
        if key != "index:service:a:user:b" {
            assert_eq!(server.cli(&["EXISTS", key]), "0", "{key} written");
        }
    }
    // Left as found: the record that names it cannot be read, so it cannot be judged.
    assert_eq!(server.cli(&["SMEMBERS", "index:service:a:user:b"]), "101");
}

/// One oddity a task of the mixed store gets.
#[derive(Debug, Clone, Copy)]
enum Odd {
    /// Left as saved.
    Valid,
    /// Its record rewritten with an owner name that cannot be part of a key.
    BadOwner(&'static str, &'static str),
    /// Its record key set to an empty string.
    EmptyString,
    /// Its record key set to a text that is not JSON.
    NotJson,
    /// A member that is no task id added to its user's index.
    NoTaskIdMember,
    /// A member that is not UTF-8 added to `index:tasks`.
    NotUtf8Member,
    /// Its entry in its service's index removed.
    MissingEntry,
    /// Its metadata hash deleted.
    MissingMetadata,
}

fn odd() -> impl Strategy<Value = Odd> {
    prop_oneof![
        Just(Odd::Valid),
        Just(Odd::BadOwner("", "u")),
        Just(Odd::BadOwner("a:user:b", "u")),
        Just(Odd::BadOwner("s", "x:y")),
        Just(Odd::BadOwner("s", "")),
        Just(Odd::EmptyString),
        Just(Odd::NotJson),
        Just(Odd::NoTaskIdMember),
        Just(Odd::NotUtf8Member),
        Just(Odd::MissingEntry),
        Just(Odd::MissingMetadata),
    ]
}

/// Plants `odd` on the saved task `id` of `service` and `user`; returns how many unreadable
/// records and how many names that are not UTF-8 it leaves for the check to report.
fn plant(server: &RedisServer, id: &str, (service, user): (&str, &str), odd: Odd) -> (u64, u64) {
    let record_key = format!("task:{id}");
    match odd {
        Odd::Valid => (0, 0),
        Odd::BadOwner(s, u) => {
            server.cli(&["SET", &record_key, &record_of(id, s, u), "KEEPTTL"]);
            (1, 0)
        }
        Odd::EmptyString => {
            server.cli(&["SET", &record_key, "", "KEEPTTL"]);
            (0, 0)
        }
        Odd::NotJson => {
            server.cli(&["SET", &record_key, "{", "KEEPTTL"]);
            (1, 0)
        }
        Odd::NoTaskIdMember => {
            server.cli(&["SADD", &format!("index:user:{user}"), &format!("{id}:x")]);
            (0, 0)
        }
        Odd::NotUtf8Member => {
            server.cli(&[
                "EVAL",
                "return redis.call('SADD', KEYS[1], string.char(255) .. ARGV[1])",
                "1",
                "index:tasks",
                id,
            ]);
            (0, 1)
        }
        Odd::MissingEntry => {
            server.cli(&["SREM", &format!("index:service:{service}"), id]);
            (0, 0)
        }
        Odd::MissingMetadata => {
            server.cli(&["DEL", &format!("{record_key}:metadata")]);
            (0, 0)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// Whatever mix of odd records a store holds, the repair never stops at one, and what
    /// remains after it is exactly what it cannot repair: the unreadable records and the
    /// names that are not UTF-8.
    #[test]
    fn the_repair_of_any_mix_of_odd_records_leaves_exactly_what_it_cannot_read(
        odds in proptest::collection::vec(odd(), 1..24)
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let Some((server, repo)) = fresh().await else { return };
            save_tasks_of_two_owners(&repo, odds.len()).await;
            let (mut unreadable, mut not_utf8) = (0, 0);
            for (i, odd) in odds.iter().enumerate() {
                let owner = if i % 2 == 0 { ("render", "alice") } else { ("train", "bob") };
                let (u, n) = plant(&server, &i.to_string(), owner, *odd);
                unreadable += u;
                not_utf8 += n;
            }
            check(&repo, CheckOptions { repair: true }, |_| {})
                .await
                .expect("the repair never stops at an odd record");
            let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
            let context = format!("{odds:?}: {after:?}");
            assert!(after.indexes.is_empty(), "{context}");
            assert_eq!((after.metadata_mismatch, after.orphan_metadata), (0, 0), "{context}");
            assert!(after.wrong_type.is_empty(), "{context}");
            assert_eq!((after.unreadable, after.not_utf8), (unreadable, not_utf8), "{context}");
            assert_eq!(after.is_consistent(), unreadable + not_utf8 == 0, "{context}");
            for key in KEYS_OF_BAD_NAMES {
                assert_eq!(server.cli(&["EXISTS", key]), "0", "{context}: {key} written");
            }
        });
    }
}
