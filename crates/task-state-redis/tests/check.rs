//! The consistency check finds every kind of disagreement, repairs it, and finds nothing
//! afterwards.

mod common;

use common::{fresh, save_tasks_of_two_owners};
use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::{check, CheckOptions, CheckPhase, IndexDiff};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_and_repairs_every_kind_of_damage() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    save_tasks_of_two_owners(&repo, 300).await;
    let clean = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(clean.is_consistent(), "{clean:?}");
    assert_eq!(clean.records, 300);

    // Damage, as crashes of the Python package's non-atomic writes leave it.
    server.cli(&["SREM", "index:service:render", "0", "2"]); // 2 missing
    server.cli(&["SREM", "index:user:bob", "1"]); // 1 missing
    server.cli(&["SREM", "index:service:train:users", "bob"]); // 1 missing user
    server.cli(&["SADD", "index:tasks", "ghost1", "ghost2"]); // 2 extra
    server.cli(&["SADD", "index:service:render:user:alice", "ghost1"]); // 1 extra
    server.cli(&["SADD", "index:service:render:users", "carol"]); // 1 extra user
    server.cli(&["DEL", "task:3:metadata"]); // metadata missing
    server.cli(&["HSET", "task:5:metadata", "user_id", "mallory"]); // metadata wrong
    server.cli(&["DEL", "task:7"]); // record gone: 4 extra entries + an orphan metadata hash
                                    // A record moved to another service by a writer that did not fix the indexes.
    let moved = repo.get("9").await.unwrap().unwrap();
    let mut moved = moved;
    moved.service = "render".into();
    moved.user_id = "alice".into();
    server.cli(&["SET", "task:9", &moved.to_json(), "KEEPTTL"]);
    server.cli(&["SET", "task:11", "{not json", "KEEPTTL"]); // unreadable

    let mut phases = Vec::new();
    let found = check(&repo, CheckOptions::default(), |p| {
        if phases.last() != Some(&p.phase) {
            phases.push(p.phase);
        }
    })
    .await
    .unwrap();
    assert_eq!(
        phases,
        [
            CheckPhase::Records,
            CheckPhase::Indexes,
            CheckPhase::Metadata
        ]
    );
    let diff = |key: &str| found.indexes.get(key).copied().unwrap_or_default();
    assert_eq!(
        diff("index:service:render"),
        IndexDiff {
            missing: 3,
            extra: 0
        },
        "0, 2 and moved 9"
    );
    assert_eq!(
        diff("index:user:bob"),
        IndexDiff {
            missing: 1,
            extra: 2
        },
        "1 missing; 7 and 9 extra"
    );
    assert_eq!(
        diff("index:service:train:users"),
        IndexDiff {
            missing: 1,
            extra: 0
        }
    );
    assert_eq!(
        diff("index:tasks"),
        IndexDiff {
            missing: 0,
            extra: 3
        },
        "ghosts and 7"
    );
    assert_eq!(
        diff("index:service:render:user:alice"),
        IndexDiff {
            missing: 1,
            extra: 1
        }
    );
    assert_eq!(
        diff("index:service:render:users"),
        IndexDiff {
            missing: 0,
            extra: 1
        }
    );
    assert_eq!(
        diff("index:service:train"),
        IndexDiff {
            missing: 0,
            extra: 2
        },
        "7 and 9"
    );
    assert_eq!(
        diff("index:service:train:user:bob"),
        IndexDiff {
            missing: 0,
            extra: 2
        }
    );
    assert_eq!(found.metadata_mismatch, 3, "3 missing, 5 wrong, 9 moved");
    assert_eq!(found.orphan_metadata, 1);
    assert_eq!(found.unreadable, 1);
    assert_eq!(found.unreadable_examples[0].0, "task:11");
    assert_eq!(found.repaired, 0, "a check without repair writes nothing");
    assert!(!found.is_consistent());

    let repaired = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    assert_eq!(repaired.indexes, found.indexes);
    assert!(repaired.repaired >= found.missing() + found.extra());
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(
        after.indexes.is_empty() && after.metadata_mismatch == 0 && after.orphan_metadata == 0,
        "{after:?}"
    );
    assert!(
        !after.is_consistent(),
        "an unreadable record is in the verdict"
    );
    assert_eq!(
        after.unreadable, 1,
        "an unreadable record is reported, never touched"
    );
    assert_eq!(server.cli(&["GET", "task:11"]), "{not json");
    // bob had the 150 odd ids: 7 was deleted, 9 moved to alice, 11 is unreadable.
    let bob = repo.list_by_user("bob").await.unwrap();
    assert_eq!((bob.records.len(), bob.unreadable.len()), (147, 1));
    assert!(repo.list_users_by_service("render").await.unwrap() == ["alice"]);
    assert_eq!(server.cli(&["HGET", "task:5:metadata", "user_id"]), "bob");
    assert_eq!(server.cli(&["EXISTS", "task:7:metadata"]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_walks_a_large_store_in_pages() {
    let Some((server, repo)) = fresh().await else {
        return;
    };
    // 20,000 tasks written the fast way, as the Python package lays them out.
    let mut script = String::new();
    for i in 0..20_000 {
        let record = TaskRecord::new(
            i.to_string(),
            "bulk",
            format!("u{}", i % 50),
            TaskStatus::Pending,
        );
        let user = &record.user_id;
        script.push_str(&format!(
            "SET task:{i} '{}'\nHSET task:{i}:metadata service bulk user_id {user}\nSADD index:tasks {i}\nSADD index:service:bulk {i}\nSADD index:service:bulk:users {user}\nSADD index:service:bulk:user:{user} {i}\nSADD index:user:{user} {i}\n",
            record.to_json()
        ));
    }
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    server.cli(&["SREM", "index:user:u7", "7"]);
    let mut calls = 0;
    let report = check(&repo, CheckOptions::default(), |_| calls += 1)
        .await
        .unwrap();
    assert_eq!(report.records, 20_000);
    assert_eq!(report.missing(), 1);
    assert!(calls > 40, "progress after every page, got {calls}");
}
