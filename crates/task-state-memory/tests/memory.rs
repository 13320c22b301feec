//! What only the in-memory backend can show: the key layout, expiry by the clock, the
//! timestamps it writes, and records planted malformed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use task_state_core::jiff::Timestamp;
use task_state_core::{
    Clock, Error, ManualClock, Scope, TaskRecord, TaskRepository, TaskRepositoryExt, TaskStatus,
    TaskTime, Zone,
};
use task_state_memory::{InMemoryTaskRepository, DEFAULT_TTL};

const TTL: Duration = Duration::from_secs(3600);

fn start() -> Timestamp {
    "2025-11-17T01:00:16.515926Z".parse().unwrap()
}

fn with_clock(clock: &ManualClock) -> InMemoryTaskRepository {
    InMemoryTaskRepository::builder()
        .ttl(TTL)
        .zone(Zone::named("Asia/Seoul").unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
}

fn record(id: &str, service: &str, user: &str) -> TaskRecord {
    let at: TaskTime = "2001-02-03T04:05:06+09:00".parse().unwrap();
    TaskRecord::new_at(id, service, user, TaskStatus::Pending, at)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_save_writes_the_keys_of_the_redis_layout_with_their_ttls() {
    let clock = ManualClock::new(start());
    let repo = with_clock(&clock);
    repo.save(record("7", "render", "bob")).await.unwrap();
    assert_eq!(
        repo.keys(),
        [
            "index:service:render",
            "index:service:render:user:bob",
            "index:service:render:users",
            "index:tasks",
            "index:user:bob",
            "task:7",
            "task:7:metadata",
        ]
    );
    assert_eq!(repo.key_ttl("task:7"), Some(TTL));
    assert_eq!(repo.key_ttl("task:7:metadata"), Some(TTL + secs(60)));
    for key in repo.keys().iter().filter(|k| k.starts_with("index:")) {
        assert_eq!(repo.key_ttl(key), Some(TTL), "{key}");
    }
    assert_eq!(repo.key_ttl("task:8"), None);

    repo.next_task_id().await.unwrap();
    assert!(repo.keys().contains(&"task:id:sequence".to_owned()));
    assert_eq!(
        repo.key_ttl("task:id:sequence"),
        None,
        "the counter never expires"
    );
}

#[tokio::test]
async fn the_default_ttl_is_ninety_days() {
    assert_eq!(DEFAULT_TTL, secs(7_776_000));
    let repo = InMemoryTaskRepository::default();
    assert_eq!(repo.ttl(), DEFAULT_TTL);
    assert_eq!(repo.zone().name(), "Asia/Seoul");
    repo.save(record("1", "s", "u")).await.unwrap();
    let left = repo.key_ttl("task:1").unwrap();
    assert!(
        left <= DEFAULT_TTL && left > DEFAULT_TTL - secs(60),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_record_expires_after_the_ttl_and_the_cleanup_removes_its_index_entries() {
    let clock = ManualClock::new(start());
    let repo = with_clock(&clock);
    repo.save(record("7", "render", "bob")).await.unwrap();
    repo.save(record("8", "render", "amy")).await.unwrap();
    // The metadata outlives the record by 60 s, so that the cleanup can still read it.
    assert_eq!(repo.key_ttl("task:7"), Some(TTL));
    assert_eq!(repo.key_ttl("task:7:metadata"), Some(TTL + secs(60)));

    clock.advance(TTL - secs(1));
    repo.append_log("8", "keeps 8 alive")
        .await
        .unwrap()
        .unwrap();
    assert!(
        repo.get("7").await.unwrap().is_some(),
        "alive 1 s before the ttl"
    );

    clock.advance(secs(1));
    assert!(repo.get("7").await.unwrap().is_none(), "gone at the ttl");
    assert_eq!(repo.list_ids(&Scope::All).await.unwrap(), ["8"]);
    assert_eq!(repo.list_by_service("render").await.unwrap().ids(), ["8"]);
    assert_eq!(repo.list_users_by_service("render").await.unwrap(), ["amy"]);
    assert!(repo
        .list_ids(&Scope::User("bob".into()))
        .await
        .unwrap()
        .is_empty());
    assert!(
        !repo
            .keys()
            .iter()
            .any(|k| k.starts_with("task:7") || k.contains("bob")),
        "the cleanup leaves nothing of task 7: {:?}",
        repo.keys()
    );
    assert!(!repo.delete("7").await.unwrap(), "nothing left to delete");
}

#[tokio::test]
async fn every_write_refreshes_the_ttls() {
    let clock = ManualClock::new(start());
    let repo = with_clock(&clock);
    repo.save(record("7", "render", "bob")).await.unwrap();
    for step in 0..3 {
        clock.advance(TTL - secs(10));
        match step {
            0 => assert!(repo.append_log("7", "still here").await.unwrap().is_some()),
            1 => assert!(repo
                .update_result("7", Some("p"), None)
                .await
                .unwrap()
                .is_some()),
            _ => assert!(repo
                .set_status("7", TaskStatus::Running, None)
                .await
                .unwrap()
                .is_some()),
        }
        assert_eq!(repo.key_ttl("task:7"), Some(TTL), "step {step}");
        assert_eq!(repo.key_ttl("task:7:metadata"), Some(TTL + secs(60)));
        assert_eq!(repo.key_ttl("index:service:render:user:bob"), Some(TTL));
    }
    clock.advance(TTL - secs(1));
    assert_eq!(repo.list_by_user("bob").await.unwrap().ids(), ["7"]);
}

#[tokio::test]
async fn an_index_lives_as_long_as_its_latest_write() {
    let clock = ManualClock::new(start());
    let repo = with_clock(&clock);
    repo.save(record("1", "render", "bob")).await.unwrap();
    clock.advance(secs(100));
    repo.save(record("2", "render", "bob")).await.unwrap();

    clock.advance(TTL - secs(100));
    assert_eq!(repo.list_by_service("render").await.unwrap().ids(), ["2"]);
    assert_eq!(repo.list_ids(&Scope::All).await.unwrap(), ["2"]);
    assert_eq!(repo.list_users_by_service("render").await.unwrap(), ["bob"]);
    assert_eq!(repo.key_ttl("index:service:render"), Some(secs(100)));

    clock.advance(secs(100));
    assert!(repo
        .list_users_by_service("render")
        .await
        .unwrap()
        .is_empty());
    assert!(repo.keys().is_empty(), "{:?}", repo.keys());
}

#[tokio::test]
async fn a_zero_ttl_expires_at_once() {
    let clock = ManualClock::new(start());
    let repo = InMemoryTaskRepository::builder()
        .ttl(Duration::ZERO)
        .clock(Arc::new(clock))
        .build();
    repo.save(record("1", "s", "u")).await.unwrap();
    assert!(repo.get("1").await.unwrap().is_none());
    assert!(repo.list_all().await.unwrap().records.is_empty());
}

#[tokio::test]
async fn timestamps_come_from_the_clock_in_the_zone() {
    let clock = ManualClock::new(start());
    let repo = with_clock(&clock);
    let saved = repo.save(record("5", "render", "bob")).await.unwrap();
    assert_eq!(
        saved.updated_at.to_string(),
        "2025-11-17T10:00:16.515926+09:00"
    );
    assert_eq!(saved.created_at.to_string(), "2001-02-03T04:05:06+09:00");

    clock.set("2025-11-17T01:00:17Z".parse().unwrap());
    let running = repo
        .set_status("5", TaskStatus::Running, Some("worker started"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        running.to_json(),
        r#"{"task_id":"5","service":"render","user_id":"bob","status":"running","parameters":{},"jobs":[],"created_at":"2001-02-03T04:05:06+09:00","updated_at":"2025-11-17T10:00:17+09:00","logs":["2025-11-17T10:00:17+09:00,worker started"],"result":{"pod_status":null,"launcher_output":null},"priority":"low"}"#
    );
    assert_eq!(repo.get("5").await.unwrap().unwrap(), running);

    let new_york = InMemoryTaskRepository::builder()
        .zone(Zone::named("America/New_York").unwrap())
        .clock(Arc::new(ManualClock::new(
            "2025-03-09T06:59:59.999999Z".parse().unwrap(),
        )))
        .build();
    new_york.save(record("1", "s", "u")).await.unwrap();
    let logged = new_york.append_log("1", "a, b").await.unwrap().unwrap();
    assert_eq!(logged.logs, ["2025-03-09T01:59:59.999999-05:00,a, b"]);
}

#[tokio::test]
async fn a_malformed_record_is_reported_without_failing_the_listing() {
    let repo = InMemoryTaskRepository::default();
    repo.save(record("1", "render", "bob")).await.unwrap();
    repo.insert_raw("2", "render", "bob", r#"{"task_id":"2","status":"#)
        .unwrap();
    repo.save(record("3", "render", "bob")).await.unwrap();

    let list = repo.list_by_service("render").await.unwrap();
    assert_eq!(list.ids(), ["1", "3"]);
    assert_eq!(list.unreadable.len(), 1);
    assert_eq!(list.unreadable[0].task_id, "2");
    assert!(
        matches!(&list.unreadable[0].error, Error::Decode { key, .. } if key == "task:2"),
        "{:?}",
        list.unreadable[0].error
    );
    assert!(list.unreadable[0].error.to_string().contains("task:2"));

    let got = repo.get("2").await;
    assert!(
        matches!(&got, Err(Error::Decode { key, .. }) if key == "task:2"),
        "{got:?}"
    );
    let appended = repo.append_log("2", "x").await;
    assert!(
        matches!(appended, Err(Error::Decode { .. })),
        "{appended:?}"
    );

    let streamed: Vec<_> = repo.stream(Scope::All, 1).collect().await;
    assert_eq!(streamed.len(), 3);
    assert_eq!(streamed[0].as_ref().unwrap().task_id, "1");
    assert!(matches!(&streamed[1], Err(Error::Decode { key, .. }) if key == "task:2"));
    assert_eq!(streamed[2].as_ref().unwrap().task_id, "3");

    assert!(
        repo.delete("2").await.unwrap(),
        "a malformed record can be deleted"
    );
    assert!(repo.list_all().await.unwrap().unreadable.is_empty());
}

#[tokio::test]
async fn a_planted_record_is_stored_as_given() {
    let repo = InMemoryTaskRepository::default();
    let json = r#"{"task_id":"9","service":"s","user_id":"u","status":"pending","parameters":{"x":1.0},"extra_field":[1]}"#;
    repo.insert_raw("9", "s", "u", json).unwrap();
    let record = repo.get("9").await.unwrap().unwrap();
    assert_eq!(record.parameters["x"].to_string(), "1.0");
    assert_eq!(
        repo.list_by_service_and_user("s", "u").await.unwrap().ids(),
        ["9"]
    );
    let bad = repo.insert_raw("9", "a:b", "u", json);
    assert!(
        matches!(
            bad,
            Err(Error::InvalidInput {
                field: "service",
                ..
            })
        ),
        "{bad:?}"
    );
}

#[tokio::test]
async fn clones_share_the_data() {
    let repo = InMemoryTaskRepository::default();
    let copy = repo.clone();
    repo.save(record("1", "s", "u")).await.unwrap();
    assert!(copy.get("1").await.unwrap().is_some());
    assert_eq!(copy.next_task_id().await.unwrap(), "1");
    assert_eq!(repo.peek_next_task_id().await.unwrap(), "2");
    let debug = format!("{repo:?}");
    assert!(
        debug.starts_with("InMemoryTaskRepository") && debug.contains("Asia/Seoul"),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_many_threads_lose_nothing() {
    let repo = InMemoryTaskRepository::default();
    repo.save(record("1", "s", "u")).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    repo.append_log("1", &format!("{w}-{n}"))
                        .await
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let logs = repo.get("1").await.unwrap().unwrap().logs;
    assert_eq!(logs.len(), 400);
    for w in 0..8 {
        let mine: Vec<String> = logs
            .iter()
            .filter_map(|l| l.split_once(',').map(|(_, m)| m.to_owned()))
            .filter(|m| m.starts_with(&format!("{w}-")))
            .collect();
        let expected: Vec<String> = (0..50).map(|n| format!("{w}-{n}")).collect();
        assert_eq!(mine, expected);
    }
}

/// A clock that panics once, while the repository holds its lock.
#[derive(Debug)]
struct PanicOnce(AtomicBool);

impl Clock for PanicOnce {
    fn now(&self) -> Timestamp {
        if self.0.swap(false, Ordering::SeqCst) {
            panic!("clock failure");
        }
        start()
    }
}

#[tokio::test]
async fn a_panic_under_the_lock_does_not_disable_the_repository() {
    let clock = Arc::new(PanicOnce(AtomicBool::new(true)));
    let failing = InMemoryTaskRepository::builder().clock(clock).build();
    let copy = failing.clone();
    let outcome = tokio::spawn(async move { copy.append_log("1", "x").await }).await;
    assert!(outcome.unwrap_err().is_panic());
    failing.save(record("1", "s", "u")).await.unwrap();
    assert_eq!(failing.list_all().await.unwrap().ids(), ["1"]);
}

/// No write shortens a TTL: a writer with a short TTL on the same store leaves the shared
/// indexes (and the records it touches) the longer TTL another writer gave them.
#[tokio::test]
async fn a_short_ttl_writer_never_shortens_a_ttl() {
    use std::sync::Arc;
    use std::time::Duration;
    use task_state_core::{ManualClock, TaskRecord, TaskRepository, TaskStatus};
    use task_state_memory::InMemoryTaskRepository;

    let clock = ManualClock::new("2025-11-17T01:00:16Z".parse().unwrap());
    let long = InMemoryTaskRepository::builder()
        .ttl(Duration::from_secs(3600))
        .clock(Arc::new(clock.clone()))
        .build();
    let short = long.with_ttl(Duration::from_secs(2));
    long.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    short
        .save(TaskRecord::new("2", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    short
        .append_log("1", "from the short writer")
        .await
        .unwrap();
    for key in [
        "task:1",
        "index:tasks",
        "index:service:render",
        "index:service:render:users",
        "index:service:render:user:bob",
        "index:user:bob",
    ] {
        let left = long.key_ttl(key).unwrap();
        assert!(left > Duration::from_secs(3500), "{key}: {left:?}");
    }
    assert!(long.key_ttl("task:1:metadata").unwrap() > long.key_ttl("task:1").unwrap());
    assert!(long.key_ttl("task:2").unwrap() <= Duration::from_secs(2));
    clock.advance(Duration::from_secs(3));
    assert!(long.get("2").await.unwrap().is_none());
    let listed = long
        .list(&task_state_core::Scope::Service("render".into()))
        .await
        .unwrap();
    assert_eq!(listed.records.len(), 1);
    assert_eq!(long.list_users_by_service("render").await.unwrap(), ["bob"]);
    // Deleting task 1 leaves no empty index behind, and expiry cleaned task 2.
    assert!(long.delete("1").await.unwrap());
    assert_eq!(long.keys(), Vec::<String>::new());
}

/// Issue #13: across many writes spread over more than a TTL, and then while the record runs
/// out, the task's five indexes and its metadata outlive its record at every step of a
/// manual clock (the Redis backend's refresh with headroom is tested in its `refresh.rs`).
#[tokio::test]
async fn indexes_and_metadata_outlive_the_record_at_every_step_of_the_clock() {
    let clock = ManualClock::new(start());
    let repo = with_clock(&clock).with_ttl(secs(10));
    repo.save(record("1", "render", "bob")).await.unwrap();
    let sets = [
        "index:tasks",
        "index:service:render",
        "index:service:render:users",
        "index:service:render:user:bob",
        "index:user:bob",
    ];
    let check = |repo: &InMemoryTaskRepository, step: &str| {
        let Some(record) = repo.key_ttl("task:1") else {
            return false;
        };
        let metadata = repo.key_ttl("task:1:metadata").expect("metadata alive");
        assert!(
            metadata >= record,
            "{step}: metadata {metadata:?}, record {record:?}"
        );
        for key in sets {
            let left = repo
                .key_ttl(key)
                .unwrap_or_else(|| panic!("{step}: {key} gone"));
            assert!(left >= record, "{step}: {key} {left:?}, record {record:?}");
        }
        true
    };
    for n in 0..100 {
        clock.advance(Duration::from_millis(300));
        match n % 4 {
            0 => assert!(repo.append_logs("1", &[format!("l{n}")]).await.unwrap()),
            1 => {
                repo.set_status("1", TaskStatus::Running, Some("x"))
                    .await
                    .unwrap();
            }
            2 => {
                repo.update_result("1", Some("p"), None).await.unwrap();
            }
            _ => {
                repo.set_jobs("1", &[format!("j{n}")]).await.unwrap();
            }
        }
        assert!(
            check(&repo, &format!("write {n}")),
            "write {n}: record gone"
        );
        for scope in [
            Scope::All,
            Scope::Service("render".into()),
            Scope::User("bob".into()),
            Scope::ServiceUser {
                service: "render".into(),
                user_id: "bob".into(),
            },
        ] {
            assert_eq!(repo.list_ids(&scope).await.unwrap(), ["1"], "write {n}");
        }
    }
    let mut steps = 0;
    while check(&repo, "expiring") {
        clock.advance(Duration::from_millis(100));
        steps += 1;
        assert!(steps < 200, "the record never expired");
    }
    assert!(repo.get("1").await.unwrap().is_none());
    assert!(repo.list_ids(&Scope::All).await.unwrap().is_empty());
}
