//! The refresh of a task's indexes and metadata hash (issue #13): a write gives them headroom
//! past what its record needs, the writes that follow skip the refresh while that lasts, and
//! yet an index, the users set and the metadata hash outlive every record they describe, and
//! a foreign writer that shortens a TTL or removes a member is healed by the next mutation.
//! Short TTLs on a real server, waits with generous slack, no timing assertions.

mod common;

use std::time::{Duration, Instant};

use task_state_core::{TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip, RedisServer};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

/// The five index sets of task `id` of render/bob, with the member the task puts there.
fn indexes(id: &str) -> [(&'static str, String); 5] {
    [
        ("index:tasks", id.to_owned()),
        ("index:service:render", id.to_owned()),
        ("index:service:render:users", "bob".to_owned()),
        ("index:service:render:user:bob", id.to_owned()),
        ("index:user:bob", id.to_owned()),
    ]
}

/// One atomic look at a task: {record exists, metadata exists, each index holds the member,
/// PTTL of record, metadata and each index}.
const LOOK: &str = "local out = {redis.call('EXISTS', KEYS[1]), redis.call('EXISTS', KEYS[2])} \
    for i = 3, #KEYS do out[#out + 1] = redis.call('SISMEMBER', KEYS[i], ARGV[i - 2]) end \
    for i = 1, #KEYS do out[#out + 1] = redis.call('PTTL', KEYS[i]) end \
    return out";

struct Look {
    record: bool,
    metadata: bool,
    members: Vec<bool>,
    /// record, metadata, then the five indexes.
    pttl: Vec<i64>,
}

fn look(server: &RedisServer, id: &str) -> Look {
    let record = format!("task:{id}");
    let metadata = format!("task:{id}:metadata");
    let mut args = vec!["EVAL", LOOK, "7", &record, &metadata];
    let sets = indexes(id);
    for (key, _) in &sets {
        args.push(key);
    }
    for (_, member) in &sets {
        args.push(member);
    }
    let out: Vec<i64> = server
        .cli(&args)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(out.len(), 14, "{out:?}");
    Look {
        record: out[0] == 1,
        metadata: out[1] == 1,
        members: out[2..7].iter().map(|&m| m == 1).collect(),
        pttl: out[7..].to_vec(),
    }
}

async fn repo_with_ttl(server: &RedisServer, ttl: u64) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(server.url())
        .with_ttl_seconds(ttl)
        .with_command_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings)
        .await
        .expect("connect")
}

/// While a record exists, its metadata and each index hold it, and nothing it needs expires
/// before it: checked in one atomic step (a script), so that the order of reads is not a
/// question.
fn assert_covered(l: &Look, context: &str) {
    if !l.record {
        return;
    }
    assert!(
        l.metadata,
        "{context}: the metadata hash is gone before its record"
    );
    assert!(
        l.members.iter().all(|&m| m),
        "{context}: an index lost the task: {:?}",
        l.members
    );
    let record = l.pttl[0];
    for (i, &pttl) in l.pttl[1..].iter().enumerate() {
        assert!(
            pttl == -1 || (record != -1 && pttl >= record),
            "{context}: key {i} expires in {pttl} ms, before the record ({record} ms)"
        );
    }
}

/// The `n`th of the five mutations, in turn: append, status, result, jobs, save.
async fn mutate(repo: &RedisTaskRepository, n: usize) {
    match n % 5 {
        0 => assert!(repo.append_logs("1", &[format!("line {n}")]).await.unwrap()),
        1 => {
            let record = repo
                .set_status("1", TaskStatus::Running, Some("again"))
                .await;
            assert!(record.unwrap().is_some());
        }
        2 => {
            let record = repo.update_result("1", Some("ok"), None).await;
            assert!(record.unwrap().is_some());
        }
        3 => {
            let record = repo.set_jobs("1", &[format!("job{n}")]).await;
            assert!(record.unwrap().is_some());
        }
        _ => {
            let record = repo.get("1").await.unwrap().expect("the record");
            repo.save(record).await.unwrap();
        }
    }
}

#[tokio::test]
async fn indexes_outlive_records_across_writes_that_skip_the_refresh() {
    let Some(server) = server_or_skip() else {
        return;
    };
    // A TTL of 10 s: a refresh gives 1 s of headroom, so writes every 40 ms for 3 s skip
    // most refreshes and make a few.
    let repo = repo_with_ttl(&server, 10).await;
    repo.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    let (mut skipped, mut refreshed) = (0, 0);
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let before = look(&server, "1");
        mutate(&repo, n).await;
        let after = look(&server, "1");
        assert!(after.record, "write {n}: the record is gone");
        assert_covered(&after, &format!("after write {n}"));
        // The index:tasks TTL rose: refreshed; else the write skipped it.
        if after.pttl[2] > before.pttl[2] {
            refreshed += 1;
        } else {
            skipped += 1;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(
        skipped > 0,
        "no write skipped the refresh ({refreshed} refreshed)"
    );
    assert!(
        refreshed > 0,
        "no write refreshed the indexes ({skipped} skipped)"
    );
    println!("{n} writes: {refreshed} refreshed the indexes, {skipped} skipped");

    // No more writes: until the record expires, everything it needs is still there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = look(&server, "1");
        assert_covered(&l, "while expiring");
        if !l.record {
            break;
        }
        assert!(Instant::now() < deadline, "the record never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_foreign_writer_shortening_a_ttl_or_removing_a_member_is_healed_by_the_next_mutation() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let repo = repo_with_ttl(&server, 3600).await;
    repo.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    assert!(repo.append_logs("1", &["first".into()]).await.unwrap());
    let sets = indexes("1");
    // Each of these is what another writer may do between two of ours; the next mutation
    // (of every kind, in turn) must undo it.
    let changes = (0..5).flat_map(|i| [("shorten", i), ("remove", i), ("python", i)]);
    for (n, (what, key_index)) in changes.enumerate() {
        let (key, member) = &sets[key_index];
        match what {
            "shorten" => {
                server.cli(&["PEXPIRE", key, "5000"]);
            }
            "remove" => {
                server.cli(&["SREM", key, member]);
            }
            // The Python package gives every set exactly its own TTL on each save: the same
            // second as the record, without our margin.
            _ => {
                server.cli(&["EXPIRE", key, "3600"]);
                server.cli(&["EXPIRE", "task:1", "3600"]);
            }
        }
        mutate(&repo, n).await;
        let l = look(&server, "1");
        assert_covered(&l, &format!("{what} {key}, then mutation {n}"));
        // The margin of one second is back, not only "as long as the record".
        assert!(
            l.pttl[2 + key_index] >= l.pttl[0] + 900,
            "{what} {key}: {} ms, record {} ms",
            l.pttl[2 + key_index],
            l.pttl[0]
        );
    }

    // A metadata hash shortened, or rewritten without the layout hint and with a short
    // TTL, as a writer with another TTL leaves it, is refreshed too.
    server.cli(&["PEXPIRE", "task:1:metadata", "5000"]);
    assert!(repo
        .append_logs("1", &["after shorten".into()])
        .await
        .unwrap());
    assert_covered(&look(&server, "1"), "metadata shortened");
    server.cli(&["DEL", "task:1:metadata"]);
    server.cli(&[
        "HSET",
        "task:1:metadata",
        "service",
        "render",
        "user_id",
        "bob",
    ]);
    server.cli(&["EXPIRE", "task:1:metadata", "10"]);
    assert!(repo
        .append_logs("1", &["after rewrite".into()])
        .await
        .unwrap());
    let l = look(&server, "1");
    assert_covered(&l, "metadata rewritten");
    assert!(l.pttl[1] >= l.pttl[0] + 59_000, "metadata {} ms", l.pttl[1]);
}

/// The writes that skip the refresh write less: fewer write commands reach the server.
#[tokio::test]
async fn a_write_within_the_headroom_writes_only_the_record_and_the_hint() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let repo = repo_with_ttl(&server, 3600).await;
    repo.save(TaskRecord::new("1", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    assert!(repo.append_logs("1", &["first".into()]).await.unwrap());
    server.cli(&["CONFIG", "RESETSTAT"]);
    for i in 0..10 {
        assert!(repo.append_logs("1", &[format!("l{i}")]).await.unwrap());
    }
    let calls = |command: &str| task_state_redis::testing::command_calls(&server, command);
    assert_eq!(calls("pexpire"), 0, "the indexes were refreshed again");
    assert_eq!(calls("sadd"), 0, "members were added again");
    assert_eq!(calls("set"), 10);
}
