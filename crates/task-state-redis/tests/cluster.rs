//! The Redis backend on a real Redis Cluster: three primaries and three replicas on loopback
//! (`testing::RedisCluster`). See docs/cluster.md.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{concurrency, save_tasks_of_two_owners};
use futures::future::join_all;
use task_state_core::{BackendKind, Error, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{cluster_or_skip, command_calls, script_calls, RedisCluster};
use task_state_redis::{check, reconcile, CheckOptions, IndexDiff, Janitor, JanitorOptions};

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

use task_state_redis::{RedisRepositorySettings, RedisTaskRepository, WritePath};

fn settings_of(cluster: &RedisCluster) -> RedisRepositorySettings {
    settings_on(cluster, WritePath::default())
}

/// The settings of [`settings_of`] with mutations forced onto `path`.
fn settings_on(cluster: &RedisCluster, path: WritePath) -> RedisRepositorySettings {
    RedisRepositorySettings::builder()
        .with_write_url(cluster.url())
        .with_timezone("Asia/Seoul")
        .with_command_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(10))
        .with_write_path(path)
        .build()
        .unwrap()
}

async fn connect(cluster: &RedisCluster) -> RedisTaskRepository {
    connect_on(cluster, WritePath::default()).await
}

/// A repository whose mutations are forced onto `path`.
async fn connect_on(cluster: &RedisCluster, path: WritePath) -> RedisTaskRepository {
    RedisTaskRepository::connect(settings_on(cluster, path))
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

mod conformance {
    use super::common::raw;
    use super::*;
    task_state_core::conformance_tests!(suite_store, raw_records = raw);
}

/// One connection to each primary: a writer of its own.
async fn single_connection(cluster: &RedisCluster) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(cluster.url())
        .with_pool_size(1)
        .with_command_timeout(Duration::from_secs(30))
        .with_connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings).await.unwrap()
}

/// Task ids whose records are served by each of the three primaries, `per_primary` each.
fn ids_on_every_primary(cluster: &RedisCluster, per_primary: usize) -> Vec<String> {
    let mut by_primary: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for i in 0.. {
        let id = format!("c{i}");
        let primary = cluster.primary_of(&format!("task:{id}")).unwrap();
        let ids = by_primary.entry(primary).or_default();
        if ids.len() < per_primary {
            ids.push(id);
        }
        if by_primary.len() == 3 && by_primary.values().all(|ids| ids.len() == per_primary) {
            break;
        }
    }
    by_primary.into_values().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_writes_the_record_in_its_slot_then_its_metadata_and_indexes() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    // Loaded now, not beside the first mutation: an `FCALL` that meets no function counts.
    repo.load_scripts().await.unwrap();
    let ids = ids_on_every_primary(&cluster, 2);
    for id in &ids {
        repo.save(TaskRecord::new(
            id.as_str(),
            "render",
            "bob",
            TaskStatus::Pending,
        ))
        .await
        .unwrap();
        repo.set_status(id, TaskStatus::Running, Some("started"))
            .await
            .unwrap()
            .unwrap();
    }
    // The Python frontend's names, on whichever primary serves them.
    for id in &ids {
        let record = cluster.cli(&["GET", &format!("task:{id}")]);
        assert!(record.contains("\"status\":\"running\""), "{record}");
        assert_eq!(
            cluster.cli(&[
                "HMGET",
                &format!("task:{id}:metadata"),
                "service",
                "user_id"
            ]),
            "render\nbob"
        );
        let ttl: i64 = cluster
            .cli(&["PTTL", &format!("task:{id}")])
            .parse()
            .unwrap();
        let meta_ttl: i64 = cluster
            .cli(&["PTTL", &format!("task:{id}:metadata")])
            .parse()
            .unwrap();
        assert!(meta_ttl > ttl + 55_000, "{meta_ttl} vs {ttl}");
    }
    for index in [
        "index:tasks",
        "index:service:render",
        "index:service:render:user:bob",
        "index:user:bob",
    ] {
        assert_eq!(
            cluster.cli(&["SCARD", index]),
            ids.len().to_string(),
            "{index}"
        );
    }
    assert_eq!(
        cluster.cli(&["SMEMBERS", "index:service:render:users"]),
        "bob"
    );
    // No layout hint on a cluster: the metadata hash holds the owner only.
    assert_eq!(
        cluster.cli(&["HEXISTS", &format!("task:{}:metadata", ids[0]), "layout"]),
        "0"
    );
    // The records were written on every primary under `WATCH`, two mutations of two tasks
    // each, and the metadata and index sets by plain commands (issue 21): a script ran only
    // for the first save of each task, which wrote its metadata hash. Redis 6.2 has no
    // `PEXPIRE … GT`: its follow-ups are the scripts, one for the hash and one a set.
    let primaries = cluster.primaries();
    let per_primary: Vec<(u64, u64)> = primaries
        .iter()
        .map(|&i| {
            let node = cluster.node(i);
            (command_calls(node, "watch"), command_calls(node, "exec"))
        })
        .collect();
    assert!(per_primary.iter().all(|&n| n == (4, 4)), "{per_primary:?}");
    let scripts: u64 = primaries
        .iter()
        .map(|&i| script_calls(cluster.node(i)))
        .sum();
    let functions: u64 = primaries
        .iter()
        .map(|&i| command_calls(cluster.node(i), "fcall"))
        .sum();
    let follow_ups = if functions > 0 { 1 } else { 6 * 2 };
    assert_eq!(scripts, follow_ups * ids.len() as u64);
    // The status changes added nothing: the saves had put each task in its four sets and
    // its user in the service's user set. Their follow-ups read that from what the write
    // path's connections keep, each connection then making one round trip (`PING`) to read
    // the invalidations that arrived (not on Redis 6.2: the scripts there).
    let total = |command: &str| -> u64 {
        primaries
            .iter()
            .map(|&i| command_calls(cluster.node(i), command))
            .sum()
    };
    // (The scripts add the user only where missing; the plain follow-up of a new task
    // sends each `SADD`.)
    let added = if functions > 0 {
        5 * ids.len()
    } else {
        4 * ids.len() + 1
    };
    assert_eq!(total("sadd"), added as u64);
    if functions > 0 {
        assert!(total("ping") >= ids.len() as u64, "{}", total("ping"));
    }
    // A listing reads them back, grouped by slot, from every primary.
    let list = repo.list_by_service("render").await.unwrap();
    assert_eq!(list.records.len(), ids.len());
    assert!(list.unreadable.is_empty());
    // A move to another owner leaves the old indexes, the old user the user set.
    let mut moved = repo.get(&ids[0]).await.unwrap().unwrap();
    moved.service = "train".into();
    moved.user_id = "carol".into();
    repo.save(moved).await.unwrap();
    assert_eq!(
        cluster.cli(&["SISMEMBER", "index:service:render", &ids[0]]),
        "0"
    );
    assert_eq!(cluster.cli(&["SISMEMBER", "index:user:bob", &ids[0]]), "0");
    assert_eq!(
        cluster.cli(&["SISMEMBER", "index:service:train:user:carol", &ids[0]]),
        "1"
    );
    assert_eq!(
        cluster.cli(&["SMEMBERS", "index:service:train:users"]),
        "carol"
    );
    assert_eq!(cluster.cli(&["SISMEMBER", "index:tasks", &ids[0]]), "1");
    repo.delete(&ids[0]).await.unwrap();
    assert_eq!(cluster.cli(&["EXISTS", "index:service:train:users"]), "0");
    assert_eq!(
        cluster.cli(&["EXISTS", &format!("task:{}:metadata", ids[0])]),
        "0"
    );
    assert_eq!(cluster.cli(&["SISMEMBER", "index:tasks", &ids[0]]), "0");
}

/// A save of a new task gives its metadata hash the headroom past the record that every
/// refresh gives (an hour at the default TTL), so the edits that follow leave the hash alone:
/// a write of it would end what the write path's connections keep of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tasks_metadata_gets_headroom_and_its_edits_leave_it_alone() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let record = TaskRecord::new("h1", "render", "bob", TaskStatus::Pending);
    repo.save(record).await.unwrap();
    let pttl = |key: &str| -> i64 { cluster.cli(&["PTTL", key]).parse().unwrap() };
    let (ttl, meta_ttl) = (pttl("task:h1"), pttl("task:h1:metadata"));
    // The grace period (60 s) and the headroom (an hour), less the time between the reads.
    assert!(meta_ttl > ttl + 60_000 + 3_500_000, "{meta_ttl} vs {ttl}");
    let meta_primary = cluster.node(cluster.primary_of("task:h1:metadata").unwrap());
    let before = command_calls(meta_primary, "pexpire") + command_calls(meta_primary, "hset");
    for line in ["a", "b", "c"] {
        repo.append_log("h1", line).await.unwrap().unwrap();
    }
    let after = command_calls(meta_primary, "pexpire") + command_calls(meta_primary, "hset");
    assert_eq!(after, before);
    assert_eq!(repo.get("h1").await.unwrap().unwrap().logs.len(), 3);
}

/// An edit's follow-up reads the keys on the record's primary in the round trip of the
/// record's write (after `EXEC`), so that primary sees no round trip of the follow-up's own,
/// while every other primary that holds a key of the task sees one: a `PING` where the link
/// there keeps every reply (one link a primary here, warm after the first edit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_write_carries_the_follow_up_reads_on_its_primary() {
    let Some(cluster) = cluster() else { return };
    let repo = single_connection(&cluster).await;
    if task_state_redis::testing::server_major_version() < 7 {
        return; // Redis 6.2: the follow-ups are the scripts.
    }
    let indexes = task_state_core::layout::TaskIndexes::of("render", "bob");
    let [tasks, service, service_user, user] = indexes.task_sets();
    let sets = [tasks, service, &indexes.service_users, service_user, user];
    // A task whose record shares its primary with its metadata hash or an index set.
    let id = (0..)
        .map(|i| format!("k{i}"))
        .find(|id| {
            let primary = cluster.primary_of(&format!("task:{id}"));
            let meta = format!("task:{id}:metadata");
            let shared = sets.iter().any(|key| cluster.primary_of(key) == primary);
            shared || cluster.primary_of(&meta) == primary
        })
        .unwrap();
    let mut keys: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    keys.push(format!("task:{id}:metadata"));
    let record_primary = cluster.primary_of(&format!("task:{id}")).unwrap();
    let others: HashSet<usize> = keys
        .iter()
        .filter_map(|key| cluster.primary_of(key))
        .filter(|&p| p != record_primary)
        .collect();
    let record = TaskRecord::new(id.as_str(), "render", "bob", TaskStatus::Pending);
    repo.save(record).await.unwrap();
    repo.append_log(&id, "warm").await.unwrap().unwrap();
    let pings = |i: usize| command_calls(cluster.node(i), "ping");
    let before: Vec<u64> = cluster.primaries().into_iter().map(pings).collect();
    for n in 0..5 {
        let line = format!("line {n}");
        repo.append_log(&id, &line).await.unwrap().unwrap();
    }
    let after: Vec<u64> = cluster.primaries().into_iter().map(pings).collect();
    for (n, i) in cluster.primaries().into_iter().enumerate() {
        let made = after[n] - before[n];
        if i == record_primary {
            assert_eq!(made, 0, "the record's primary {i}");
        } else if others.contains(&i) {
            assert_eq!(made, 5, "primary {i}");
        }
    }
    let logs = repo.get(&id).await.unwrap().unwrap().logs;
    assert_eq!(logs.len(), 6, "{logs:?}");
    for key in sets {
        let member = if key == indexes.service_users {
            "bob"
        } else {
            id.as_str()
        };
        assert_eq!(cluster.cli(&["SISMEMBER", key, member]), "1", "{key}");
    }
}

/// On write path `script` a cluster runs every step as before issue 21: a script for the
/// record, one for the metadata hash and one for each index set, no `WATCH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_script_path_every_step_is_a_script() {
    let Some(cluster) = cluster() else { return };
    let repo = connect_on(&cluster, WritePath::Script).await;
    repo.load_scripts().await.unwrap();
    let ids = ids_on_every_primary(&cluster, 1);
    for id in &ids {
        let task = TaskRecord::new(id.as_str(), "render", "bob", TaskStatus::Pending);
        repo.save(task).await.unwrap();
        repo.append_log(id, "one").await.unwrap().unwrap();
    }
    let primaries = cluster.primaries();
    let total = |command: &str| -> u64 {
        primaries
            .iter()
            .map(|&i| command_calls(cluster.node(i), command))
            .sum()
    };
    assert_eq!(total("watch"), 0);
    let scripts: u64 = primaries
        .iter()
        .map(|&i| script_calls(cluster.node(i)))
        .sum();
    assert_eq!(scripts, 7 * 2 * ids.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_index_entry_or_metadata_is_put_back_by_the_next_mutation() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    repo.save(TaskRecord::new("7", "render", "bob", TaskStatus::Pending))
        .await
        .unwrap();
    // As a failure between the record and its follow-ups leaves it.
    cluster.cli(&["SREM", "index:user:bob", "7"]);
    cluster.cli(&["SREM", "index:service:render:users", "bob"]);
    cluster.cli(&["DEL", "task:7:metadata"]);
    assert_eq!(repo.list_by_user("bob").await.unwrap().records.len(), 0);
    repo.append_log("7", "again").await.unwrap().unwrap();
    assert_eq!(repo.list_by_user("bob").await.unwrap().records.len(), 1);
    assert_eq!(
        cluster.cli(&["SMEMBERS", "index:service:render:users"]),
        "bob"
    );
    assert_eq!(cluster.cli(&["HGET", "task:7:metadata", "user_id"]), "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_that_fails_after_the_record_applied_is_not_retryable() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    repo.save(TaskRecord::new("7", "render", "bob", TaskStatus::Pending))
        .await
        .unwrap();
    // Another writer broke an index set in another slot than the record's.
    cluster.cli(&["DEL", "index:user:bob"]);
    cluster.cli(&["SET", "index:user:bob", "not a set"]);
    let error = repo
        .set_status("7", TaskStatus::Running, Some("started"))
        .await
        .unwrap_err();
    // The record's change applied: repeating the call would log "started" twice.
    assert_eq!(
        error.backend_kind(),
        Some(BackendKind::ReplyLost { timed_out: false }),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("was applied"), "{error}");
    let record = repo.get("7").await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Running);
    assert_eq!(record.logs.len(), 1);
}

async fn writers(cluster: &RedisCluster, n: usize) -> Vec<RedisTaskRepository> {
    join_all((0..n).map(|_| single_connection(cluster))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_keep_all_3200_lines_in_order() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let writers = writers(&cluster, 16).await;
    concurrency::sixteen_writers_keep_all_3200_lines_in_order(&repo, writers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_keep_both_result_fields_on_100_tasks() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let mut writers = writers(&cluster, 2).await;
    let (b, a) = (writers.pop().unwrap(), writers.pop().unwrap());
    concurrency::two_writers_keep_both_result_fields_on_100_tasks(&repo, a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_concurrent_transition_wins() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let writers = writers(&cluster, 8).await;
    concurrency::exactly_one_concurrent_transition_wins(&repo, writers).await;
}

/// A writer that appends numbered lines to each of its tasks in turn, each line sent once
/// (never retried), until stopped.
struct AppendStream {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The lines acknowledged, as (task, line).
    acked: Arc<Mutex<Vec<(String, usize)>>>,
    /// The lines that failed, with the error.
    writer: tokio::task::JoinHandle<Vec<(String, usize, String)>>,
}

impl AppendStream {
    /// Saves the tasks `ids` and starts appending to them.
    async fn start(repo: &RedisTaskRepository, ids: &[String]) -> Self {
        for id in ids {
            repo.save(TaskRecord::new(id.as_str(), "s", "u", TaskStatus::Running))
                .await
                .unwrap();
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (repo, ids) = (repo.clone(), ids.to_vec());
        let (stopped, acks) = (stop.clone(), acked.clone());
        let writer = tokio::spawn(async move {
            let mut failed = Vec::new();
            let mut n = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                for id in &ids {
                    match repo.append_logs(id, &[format!("line {n}")]).await {
                        Ok(true) => acks.lock().unwrap().push((id.clone(), n)),
                        Ok(false) => panic!("task {id} vanished"),
                        Err(e) => {
                            failed.push((id.clone(), n, e.to_string()));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            failed
        });
        AppendStream {
            stop,
            acked,
            writer,
        }
    }

    /// How many lines were acknowledged so far.
    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops it: the lines acknowledged and those that failed.
    async fn finish(self) -> (Vec<(String, usize)>, Vec<(String, usize, String)>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let failed = self.writer.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        (acked, failed)
    }
}

/// The line numbers in a task's log, each once; panics on a duplicate.
async fn lines_of(repo: &RedisTaskRepository, id: &str) -> HashSet<usize> {
    let record = repo.get(id).await.unwrap().unwrap();
    let mut seen = HashSet::new();
    for entry in record.log_entries() {
        let n: usize = entry
            .message
            .strip_prefix("line ")
            .unwrap()
            .parse()
            .unwrap();
        assert!(seen.insert(n), "line {n} of task {id} applied twice");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_a_primary_dies_and_none_is_applied_twice() {
    let Some(mut cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let ids = ids_on_every_primary(&cluster, 1);
    let stream = AppendStream::start(&repo, &ids).await;
    let acked = stream.acked.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = cluster.primary_of(&format!("task:{}", ids[0])).unwrap();
    cluster.kill(victim);
    let killed_at = Instant::now();
    let before = acked.lock().unwrap().len();
    // Writes resume by themselves: on the dead primary's slots too, once its replica took over.
    let resumed = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done: HashSet<String> = acked.lock().unwrap()[before..]
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        if ids.iter().all(|id| done.contains(id)) && killed_at.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "writes to every task resumed {:?} after the kill",
                killed_at.elapsed()
            );
            break true;
        }
        if killed_at.elapsed() > Duration::from_secs(60) {
            break false;
        }
    };
    // A few more writes on the new topology.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acked, failed) = stream.finish().await;
    eprintln!("{} writes failed during the failover", failed.len());
    assert!(
        resumed,
        "writes did not resume within 60 s; failures: {:?}",
        &failed[..failed.len().min(5)]
    );
    cluster.wait_ok(Duration::from_secs(30)).unwrap();
    assert!(!cluster.primaries().contains(&victim));
    let failed_lines: HashSet<(String, usize)> =
        failed.iter().map(|(id, n, _)| (id.clone(), *n)).collect();
    for id in &ids {
        let lines = lines_of(&repo, id).await;
        for (_, n) in acked.iter().filter(|(i, _)| i == id) {
            assert!(lines.contains(n), "acknowledged line {n} of task {id} lost");
        }
        for n in &lines {
            let sent =
                acked.contains(&(id.clone(), *n)) || failed_lines.contains(&(id.clone(), *n));
            assert!(sent, "line {n} of task {id} was never sent");
        }
    }
    // The dead node comes back as a replica of the one that took over.
    cluster.restart(victim).unwrap();
    cluster.wait_ok(Duration::from_secs(30)).unwrap();
    repo.append_log(&ids[0], "after the restart")
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_moved_between_primaries_under_writes_lose_nothing() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let ids = ids_on_every_primary(&cluster, 2);
    let stream = AppendStream::start(&repo, &ids).await;
    // Each record's slot, and the slot of index:tasks, to the next primary and on, twice.
    let mut keys: Vec<String> = ids.iter().map(|id| format!("task:{id}")).collect();
    keys.push("index:tasks".to_owned());
    let mover = tokio::task::spawn_blocking(move || {
        for _ in 0..2 {
            for key in &keys {
                let slot = cluster.slot_of(key);
                let from = cluster.primary_of(key).unwrap();
                let primaries = cluster.primaries();
                let at = primaries.iter().position(|&p| p == from).unwrap();
                let to = primaries[(at + 1) % primaries.len()];
                cluster.move_slot(slot, to).unwrap();
                assert_eq!(cluster.primary_of(key), Some(to));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    });
    let before = stream.acked_count();
    let cluster = mover.await.unwrap();
    // Writes ran all through the moves (each move waits 50 ms; how many depends on the
    // machine's speed, so the bound is low).
    let during = stream.acked_count() - before;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (acked, failed) = stream.finish().await;
    assert!(
        failed.is_empty(),
        "writes failed while slots moved: {failed:?}"
    );
    assert!(during >= 20, "only {during} writes while the slots moved");
    for id in &ids {
        let lines = lines_of(&repo, id).await;
        let sent: HashSet<usize> = acked
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(lines, sent, "task {id}");
    }
    let report = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.records, ids.len() as u64);
    drop(cluster);
}

/// The user check of alice, across the slots of her services.
async fn check_alice(
    repo: &RedisTaskRepository,
    repair: bool,
) -> task_state_redis::UserIndexReport {
    let options = task_state_redis::UserCheckOptions {
        service: None,
        repair,
    };
    task_state_redis::check_user(repo, "alice", options)
        .await
        .unwrap()
}

/// Moves the slot of each of `keys` to the primary after the one serving it.
fn move_to_next_primary(cluster: &RedisCluster, keys: &[String]) {
    cluster.move_slots_to_next_primary(keys).unwrap();
}

/// A follower's reads of a record's ranges (one transaction) reach the primary of
/// its slot, also after the slot moved since the last read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_ranges_are_read_from_the_slots_primary_also_after_it_moved() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let ids = ids_on_every_primary(&cluster, 1);
    for id in &ids {
        repo.save(TaskRecord::new(id, "render", "alice", TaskStatus::Running))
            .await
            .unwrap();
    }
    let read_all = || async {
        for id in &ids {
            // The ranges first: after the move, the first read of the slot is answered MOVED.
            let ranges = repo
                .record_ranges(id, &[(0, 9), (10, usize::MAX)])
                .await
                .unwrap();
            let whole = repo.get_raw(id).await.unwrap().unwrap();
            assert_eq!(ranges.concat(), whole, "task {id}");
        }
    };
    read_all().await;
    let keys: Vec<String> = ids.iter().map(|id| format!("task:{id}")).collect();
    move_to_next_primary(&cluster, &keys);
    read_all().await;
}

/// The check, its repair, the user check, the reconciler and listings read keys whose slots
/// moved since the repository's clients last wrote there (their slot maps are stale: each
/// read is answered `MOVED`, which the writer's scripts hand back to the repository).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_the_check_and_the_reconciler_follow_slots_moved_since_the_last_write() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    save_tasks_of_two_owners(&repo, 10).await;
    let mut layout: Vec<String> = [
        "index:tasks",
        "index:service:render",
        "index:service:train",
        "index:service:render:users",
        "index:service:train:users",
        "index:service:render:user:alice",
        "index:service:train:user:bob",
        "index:user:alice",
        "index:user:bob",
    ]
    .map(str::to_owned)
    .to_vec();
    for i in 0..10 {
        layout.push(format!("task:{i}"));
        layout.push(format!("task:{i}:metadata"));
    }
    move_to_next_primary(&cluster, &layout);
    let clean = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(clean.is_consistent(), "{clean:?}");
    assert_eq!(clean.records, 10);

    cluster.cli(&["SREM", "index:service:render", "0"]);
    cluster.cli(&["SREM", "index:user:bob", "1"]);
    move_to_next_primary(&cluster, &layout);
    let found = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    assert_eq!(
        found.indexes["index:service:render"].missing, 1,
        "{found:?}"
    );
    assert_eq!(found.repaired, 2, "{found:?}");
    assert_eq!(
        cluster.cli(&["SISMEMBER", "index:service:render", "0"]),
        "1"
    );

    cluster.cli(&["SREM", "index:user:alice", "2"]);
    move_to_next_primary(&cluster, &layout);
    let user = check_alice(&repo, true).await;
    assert_eq!(user.missing_in_user_index, ["2"]);
    assert_eq!(user.repaired, Some(1));

    cluster.cli(&["DEL", "task:4"]);
    cluster.cli(&["DEL", "task:4:metadata"]);
    move_to_next_primary(&cluster, &layout);
    let removed = reconcile(&repo).await.unwrap();
    // index:tasks, the service index, the user's service index and the user index.
    assert_eq!(removed, 4);
    move_to_next_primary(&cluster, &layout);
    let listed = repo.list_all().await.unwrap();
    assert_eq!(listed.records.len(), 9);
    assert!(listed.unreadable.is_empty(), "{:?}", listed.unreadable);
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.is_consistent(), "{after:?}");
}

/// While the nodes disagree on who serves a slot (in a real move, until gossip reaches the
/// node fred reads the slot map from: a replica, say; longer on a busy machine), every read
/// of its keys is answered `MOVED` however often fred reads the map again. The check's and
/// the reconciler's reads wait for the nodes to agree, within the command timeout, instead
/// of giving up after fred's three sends ("Too many failed write attempts").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_the_check_and_the_reconciler_wait_while_the_nodes_disagree_on_a_slot() {
    let Some(cluster) = cluster() else { return };
    let cluster = Arc::new(cluster);
    let repo = connect(&cluster).await;
    save_tasks_of_two_owners(&repo, 10).await;
    // The nodes agree again 2 s after the move (the command timeout is 10 s).
    let disagree = |key: &str| {
        let slot = cluster.slot_of(key);
        let primaries = cluster.primaries();
        let at = primaries
            .iter()
            .position(|&p| Some(p) == cluster.primary_of(key))
            .unwrap();
        let to = primaries[(at + 1) % primaries.len()];
        assert!(cluster.move_slot_but_tell_target_later(slot, to).unwrap());
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(2));
            cluster.tell_target(slot, to)
        })
    };

    let agreed = disagree("index:service:render");
    let report = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    agreed.await.unwrap().unwrap();
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.records, 10);

    cluster.cli(&["DEL", "task:4"]);
    cluster.cli(&["DEL", "task:4:metadata"]);
    let agreed = disagree("index:tasks");
    let removed = reconcile(&repo).await.unwrap();
    agreed.await.unwrap().unwrap();
    // index:tasks, the service index, the user's service index and the user index.
    assert_eq!(removed, 4);
}

/// A repository whose records live 1 s.
async fn short_lived(cluster: &RedisCluster) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(cluster.url())
        .with_ttl_seconds(1)
        .build()
        .unwrap();
    RedisTaskRepository::connect(settings).await.unwrap()
}

/// The expiry listener with the reconciler off: what is cleaned, the events cleaned.
async fn listener_alone(repo: &RedisTaskRepository) -> Janitor {
    let options = JanitorOptions {
        reconcile_interval: Duration::ZERO,
        ..JanitorOptions::default()
    };
    Janitor::start(repo.clone(), options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_listener_cleans_indexes_of_tasks_expiring_on_every_primary() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let short = short_lived(&cluster).await;
    let listener = listener_alone(&repo).await;
    // A long-lived task keeps the indexes alive; the short ones' records live on every
    // primary and expire within a second.
    repo.save(TaskRecord::new(
        "keep",
        "render",
        "bob",
        TaskStatus::Running,
    ))
    .await
    .unwrap();
    let ids = ids_on_every_primary(&cluster, 3);
    for id in &ids {
        short
            .save(TaskRecord::new(
                id.as_str(),
                "render",
                "bob",
                TaskStatus::Running,
            ))
            .await
            .unwrap();
    }
    assert_eq!(
        cluster.cli(&["SCARD", "index:tasks"]),
        (ids.len() + 1).to_string()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let clean = loop {
        let sizes: Vec<String> = [
            "index:tasks",
            "index:service:render",
            "index:service:render:user:bob",
            "index:user:bob",
        ]
        .iter()
        .map(|k| cluster.cli(&["SCARD", k]))
        .collect();
        let metadata_left = ids
            .iter()
            .filter(|id| cluster.cli(&["EXISTS", &format!("task:{id}:metadata")]) == "1")
            .count();
        if sizes.iter().all(|s| s == "1") && metadata_left == 0 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stats = listener.stats();
    assert!(clean, "indexes not cleaned: {stats:?}");
    assert!(stats.cleanups >= ids.len() as u64, "{stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
    assert_eq!(cluster.cli(&["SMEMBERS", "index:tasks"]), "keep");
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_and_repairs_damage_across_slots_and_the_reconciler_prunes() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    save_tasks_of_two_owners(&repo, 60).await;
    let clean = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(clean.is_consistent(), "{clean:?}");
    assert_eq!(clean.records, 60);

    cluster.cli(&["SREM", "index:service:render", "0", "2"]); // 2 missing
    cluster.cli(&["SREM", "index:service:train:users", "bob"]); // 1 missing user
    cluster.cli(&["SADD", "index:tasks", "ghost1", "ghost2"]); // 2 extra
    cluster.cli(&["SADD", "index:service:render:users", "carol"]); // 1 extra user
    cluster.cli(&["DEL", "task:3:metadata"]); // metadata missing
    cluster.cli(&["HSET", "task:5:metadata", "user_id", "mallory"]); // metadata wrong
    cluster.cli(&["DEL", "task:7"]); // record gone: 4 extra entries, orphan metadata
    let found = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    let diff = |key: &str| found.indexes.get(key).copied().unwrap_or_default();
    assert_eq!(
        diff("index:service:render"),
        IndexDiff {
            missing: 2,
            extra: 0
        }
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
        diff("index:user:bob"),
        IndexDiff {
            missing: 0,
            extra: 1
        }
    );
    assert_eq!(found.metadata_mismatch, 2);
    assert_eq!(found.orphan_metadata, 1);
    assert_eq!(found.records, 59);

    let repaired = check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .unwrap();
    assert!(repaired.repaired > 0, "{repaired:?}");
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.is_consistent(), "{after:?}");
    assert_eq!(after.records, 59);
    assert_eq!(cluster.cli(&["HGET", "task:5:metadata", "user_id"]), "bob");

    // The frontend script's check of one user's index, across the slots of its services.
    cluster.cli(&["SREM", "index:user:alice", "4"]);
    cluster.cli(&["SADD", "index:user:alice", "ghost3"]);
    let user = check_alice(&repo, false).await;
    assert_eq!(user.services, ["render"]);
    assert_eq!(user.missing_in_user_index, ["4"]);
    assert_eq!(user.extra_in_user_index, ["ghost3"]);
    let user = check_alice(&repo, true).await;
    assert_eq!(user.repaired, Some(2));
    assert_eq!(cluster.cli(&["SISMEMBER", "index:user:alice", "4"]), "1");
    assert_eq!(
        cluster.cli(&["SISMEMBER", "index:user:alice", "ghost3"]),
        "0"
    );

    // The reconciler prunes ids whose record is gone, from sets on every primary.
    for i in [10, 11, 20, 21] {
        cluster.cli(&["DEL", &format!("task:{i}")]);
    }
    let removed = reconcile(&repo).await.unwrap();
    // index:tasks, the service index, the user's service index and the user index of each.
    assert_eq!(removed, 16);
    assert_eq!(repo.list_all().await.unwrap().records.len(), 55);
    assert_eq!(cluster.cli(&["SISMEMBER", "index:user:alice", "10"]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_starts_on_a_cluster_and_checks_every_primary() {
    let Some(cluster) = cluster() else { return };
    let provider = task_state_redis::RedisRepositoryProvider::new(settings_of(&cluster));
    let repo = provider.start().await.unwrap();
    assert!(repo.is_cluster());
    provider.ping().await.unwrap();
    repo.save(TaskRecord::new("p1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    provider.close().await;
    // One primary without expired-key events: the provider refuses to start, naming it.
    let primary = cluster.primaries()[1];
    cluster
        .node(primary)
        .cli(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    let provider = task_state_redis::RedisRepositoryProvider::new(settings_of(&cluster));
    match provider.start().await {
        Err(Error::Config(message)) => {
            assert!(message.contains("notify-keyspace-events"), "{message}");
            let port = cluster.node(primary).port().to_string();
            assert!(message.contains(&port), "{message}");
        }
        other => panic!("{other:?}"),
    }
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_on_the_applications_own_cluster_pools() {
    use fred::prelude::{Builder, ClientLike, Config};
    let Some(cluster) = cluster() else { return };
    let config = Config::from_url(&cluster.url()).unwrap();
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.max_command_attempts = 1;
            c.max_redirections = 0;
        })
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap();
    let repo =
        RedisTaskRepository::from_pools(pool.clone(), pool, 3600, task_state_core::Zone::utc())
            .unwrap();
    assert!(repo.is_cluster());
    assert!(repo
        .settings()
        .write_url()
        .to_string()
        .starts_with("redis-cluster://127.0.0.1:"));
    for id in ids_on_every_primary(&cluster, 1) {
        repo.save(TaskRecord::new(id.as_str(), "s", "u", TaskStatus::Pending))
            .await
            .unwrap();
    }
    assert_eq!(repo.list_all().await.unwrap().records.len(), 3);
    repo.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_listener_subscribes_on_a_node_added_later() {
    let Some(mut cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    let listener = listener_alone(&repo).await;
    assert_eq!(listener.nodes(), 6);
    let added = tokio::task::spawn_blocking(move || {
        let added = cluster.add_node().unwrap();
        cluster
            .move_slot(cluster.slot_of("task:late"), added)
            .unwrap();
        (cluster, added)
    });
    let (cluster, added) = added.await.unwrap();
    assert_eq!(cluster.primary_of("task:late"), Some(added));
    let deadline = Instant::now() + Duration::from_secs(30);
    while listener.nodes() < 7 {
        assert!(Instant::now() < deadline, "the new node was not subscribed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    repo.save(TaskRecord::new(
        "keep",
        "render",
        "bob",
        TaskStatus::Running,
    ))
    .await
    .unwrap();
    let short = short_lived(&cluster).await;
    short
        .save(TaskRecord::new(
            "late",
            "render",
            "bob",
            TaskStatus::Running,
        ))
        .await
        .unwrap();
    // On a cluster the cleanup runs in steps (indexes, then the metadata): wait for the
    // last one, not the first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.cli(&["SISMEMBER", "index:user:bob", "late"]) == "1"
        || cluster.cli(&["EXISTS", "task:late:metadata"]) == "1"
    {
        assert!(
            Instant::now() < deadline,
            "not cleaned: {:?}",
            listener.stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(listener.stats().failures, 0, "{:?}", listener.stats());
    assert_eq!(cluster.cli(&["SMEMBERS", "index:tasks"]), "keep");
    listener.stop().await;
}

/// Odd records across slots: owner names that cannot be key parts are unreadable and never
/// planned into keys, an empty-string record is no record (its entries and metadata are
/// repaired, the reconciler prunes its ids), a member that is no task id is extra; the
/// repair goes past all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_reconciler_on_odd_records_across_slots() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    save_tasks_of_two_owners(&repo, 10).await;
    let odd = |id: &str, service: &str, user: &str| {
        let mut record = TaskRecord::new(id, "s", "u", TaskStatus::Running);
        record.service = service.to_owned();
        record.user_id = user.to_owned();
        record.to_json()
    };
    cluster.cli(&["SET", "task:101", &odd("101", "a:user:b", "u")]);
    cluster.cli(&["SET", "task:102", &odd("102", "s", "x:y")]);
    cluster.cli(&["SET", "task:3", "", "KEEPTTL"]);
    cluster.cli(&["SET", "task:4", "", "KEEPTTL"]);
    cluster.cli(&["SADD", "index:tasks", ""]);
    cluster.cli(&["SREM", "index:tasks", "6"]);

    let found = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert_eq!((found.records, found.unreadable), (8, 2), "{found:?}");
    assert_eq!(found.orphan_metadata, 2);
    assert_eq!(found.indexes["index:tasks"].extra, 3, "3, 4 and \"\"");
    assert_eq!(found.indexes["index:tasks"].missing, 1, "6");
    assert!(!found
        .indexes
        .keys()
        .any(|k| k.contains(":a:") || k.contains("x:y")));

    // bob's 3 in four sets, alice's 4 in four, and "".
    assert_eq!(reconcile(&repo).await.unwrap(), 9);
    check(&repo, CheckOptions { repair: true }, |_| {})
        .await
        .expect("the repair goes past every odd record");
    let after = check(&repo, CheckOptions::default(), |_| {}).await.unwrap();
    assert!(after.indexes.is_empty(), "{after:?}");
    assert_eq!((after.orphan_metadata, after.metadata_mismatch), (0, 0));
    assert_eq!(after.unreadable, 2);
    for key in [
        "index:service:a:user:b",
        "index:user:x:y",
        "index:service:a",
    ] {
        assert_eq!(cluster.cli(&["EXISTS", key]), "0", "{key} written");
    }
    assert_eq!(cluster.cli(&["EXISTS", "task:3:metadata"]), "0");
}

/// A task whose metadata and record name different owners (`common/owners.rs`), on a
/// cluster: every owner's indexes are cleaned, and names that cannot be keys build none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_of_the_metadata_and_of_the_record_are_both_cleaned() {
    let Some(cluster) = cluster() else { return };
    let repo = connect(&cluster).await;
    common::owners::delete_cleans_the_indexes_of_the_metadata_and_of_the_record(&repo).await;
    common::owners::save_moves_out_of_the_indexes_of_the_metadata_and_of_the_record(&repo).await;
    common::owners::metadata_names_that_cannot_be_keys_build_no_key(&repo).await;
}

/// On a cluster too, a delete reads and changes no TTL of the sets it leaves non-empty, on
/// the default path (plain `SREM`s) and on the scripts (`cluster_index.lua`): a set short of
/// the setting stays short, one beyond it keeps its longer TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_leaves_the_ttls_of_the_sets_it_leaves_non_empty() {
    let Some(cluster) = cluster() else { return };
    for path in [WritePath::Auto, WritePath::Script] {
        let repo = connect_on(&cluster, path).await;
        repo.load_scripts().await.unwrap();
        common::a_delete_leaves_the_set_ttls(&repo, |args| cluster.cli(args)).await;
        repo.close().await;
    }
}
