//! High availability on real topologies: a primary, a replica and three Sentinels on
//! loopback (`testing::SentinelTopology`). Writes go to the primary and reads to the replica;
//! after the primary is killed, Sentinel promotes the replica and the repository and the
//! expiry listener follow it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use task_state_core::{Scope, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{command_calls, script_calls, topology_or_skip, SentinelTopology};
use task_state_redis::{Janitor, JanitorOptions, RedisRepositorySettings, RedisTaskRepository};

/// How long the Sentinels may take to find the replica and each other.
const READY: Duration = Duration::from_secs(20);
/// Down after 1 s, an election, a promotion: a few seconds on loopback. Generous, since
/// other tests share the machine.
const FAILOVER: Duration = Duration::from_secs(15);

async fn connect(write_url: &str, read_url: &str, ttl_seconds: u64) -> RedisTaskRepository {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(write_url)
        .with_read_url(read_url)
        .with_ttl_seconds(ttl_seconds)
        .with_connect_timeout(Duration::from_secs(2))
        .with_command_timeout(Duration::from_secs(2))
        .with_pool_size(2)
        .build()
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        RedisTaskRepository::connect(settings),
    )
    .await
    .expect("connect in time")
    .expect("connect through Sentinel")
}

fn ready(topology: &SentinelTopology) {
    topology.wait_ready(READY).expect("the sentinels are ready");
}

/// `cmdstat_get` + `cmdstat_mget` on a server.
fn reads(server: &task_state_redis::testing::RedisServer) -> u64 {
    command_calls(server, "get") + command_calls(server, "mget")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_primary_and_reads_to_the_replica() {
    // A password on the servers but none on the Sentinels: the URL's credentials are for
    // the servers only (fred's `sentinel-auth`).
    let Some(topology) = topology_or_skip(&[], Some("s3cret-ha")) else {
        return;
    };
    ready(&topology);
    let (primary, replica) = (&topology.primary, &topology.replica);
    let repo = connect(&topology.sentinel_url(), &topology.url_of(replica), 3600).await;
    // Loaded up front so that each mutation below is one script call (FCALL, or EVALSHA on
    // Redis 6.2), not a miss and then again.
    repo.load_scripts().await.unwrap();
    assert_eq!(command_calls(replica, "script|load"), 0);

    // Each mutation is one script call (the default write path), on the primary that
    // Sentinel names.
    let writes = |server| script_calls(server) + command_calls(server, "exec");
    let calls_before = writes(primary);
    repo.save(TaskRecord::new("ha-1", "s", "u", TaskStatus::Pending))
        .await
        .unwrap();
    repo.set_status("ha-1", TaskStatus::Running, Some("started"))
        .await
        .unwrap();
    repo.append_logs("ha-1", &["one".to_owned(), "two".to_owned()])
        .await
        .unwrap();
    assert_eq!(writes(primary) - calls_before, 3);
    // (The replica runs the primary's writes as MULTI/EXEC blocks of their effects.)
    assert_eq!(script_calls(replica), 0, "no script ran on the replica");

    // The replica gets the writes asynchronously; wait for them before counting reads.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !replica.cli(&["GET", "task:ha-1"]).contains("two") {
        assert!(
            Instant::now() < deadline,
            "the replica never got the record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (primary_reads, replica_reads) = (reads(primary), reads(replica));
    for _ in 0..5 {
        let record = repo
            .get("ha-1")
            .await
            .unwrap()
            .expect("read on the replica");
        assert_eq!(record.status, TaskStatus::Running);
    }
    let listed = repo.list(&Scope::User("u".into())).await.unwrap();
    assert_eq!(listed.records.len(), 1);
    assert_eq!(reads(primary), primary_reads, "no read reached the primary");
    assert!(
        reads(replica) >= replica_reads + 6,
        "5 GETs and an MGET on the replica: {} -> {}",
        replica_reads,
        reads(replica)
    );

    // reading_from_writer(): the same repository reading on the primary.
    let (primary_reads, replica_reads) = (reads(primary), reads(replica));
    let own = repo.reading_from_writer();
    assert!(own.get("ha-1").await.unwrap().is_some());
    assert!(
        reads(primary) > primary_reads,
        "the read ran on the primary"
    );
    assert_eq!(reads(replica), replica_reads, "the replica saw no read");

    // A Sentinel read URL reads from the primary that Sentinel names (fred discovers only
    // primaries through Sentinel).
    let sentinel_reader = connect(&topology.sentinel_url(), &topology.sentinel_url(), 3600).await;
    let (primary_reads, replica_reads) = (reads(primary), reads(replica));
    assert!(sentinel_reader.get("ha-1").await.unwrap().is_some());
    assert!(reads(primary) > primary_reads);
    assert_eq!(reads(replica), replica_reads);

    sentinel_reader.close().await;
    repo.close().await;
}

/// Which of the numbered messages a record's log holds, and how often.
fn logged(record: &TaskRecord) -> HashMap<u64, usize> {
    let mut seen = HashMap::new();
    for entry in &record.logs {
        if let Some(n) = entry
            .split_once(",ha-write-")
            .and_then(|(_, n)| n.parse::<u64>().ok())
        {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

#[derive(Default)]
struct Outcomes {
    ok: Vec<(u64, Instant)>,
    failed: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_writes_and_expiry_cleanup_go_on_on_the_new_primary() {
    writes_go_on_after_a_failover(false).await;
}

/// The same with a record longer than 8 KiB, which the default write path edits
/// optimistically (`WATCH` … `EXEC` on connections of its own), before and after the
/// failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_optimistic_edits_of_a_long_record_go_on_on_the_new_primary() {
    writes_go_on_after_a_failover(true).await;
}

/// A writer appends numbered lines while the primary is killed and Sentinel promotes the
/// replica: writes resume on the new primary, none is applied twice, none acknowledged is
/// lost, and the expiry listener follows. With `long`, the task's record is made longer
/// than 8 KiB first.
async fn writes_go_on_after_a_failover(long: bool) {
    let Some(mut topology) = topology_or_skip(&["--notify-keyspace-events", "Ex"], None) else {
        return;
    };
    ready(&topology);
    let url = topology.sentinel_url();
    let repo = connect(&url, &url, 3600).await;
    let options = JanitorOptions {
        reconcile_interval: Duration::ZERO,
        ..Default::default()
    };
    let listener = Janitor::start(repo.clone(), options).await.unwrap();
    repo.save(TaskRecord::new("ha-log", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    if long {
        repo.append_logs("ha-log", &["x".repeat(9_000)])
            .await
            .unwrap();
    }

    // One writer appending numbered messages, counting what it was told.
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (repo, outcomes, stop) = (repo.clone(), outcomes.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let message = format!("ha-write-{n}");
                let result = repo.append_logs("ha-log", &[message]).await;
                {
                    let mut o = outcomes.lock().unwrap();
                    match result {
                        Ok(true) => o.ok.push((n, Instant::now())),
                        Ok(false) => panic!("the task vanished"),
                        Err(_) => o.failed.push(n),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !outcomes.lock().unwrap().ok.is_empty(),
        "writes before the failover"
    );

    let killed_at = Instant::now();
    topology.primary.kill();
    let new_primary = topology.replica.port();
    let promoted = tokio::task::block_in_place(|| topology.wait_for_primary(new_primary, FAILOVER));
    let promoted_at = Instant::now();
    assert!(
        promoted,
        "Sentinel did not promote the replica within {FAILOVER:?}"
    );

    // The repository goes on writing: a write succeeds on the promoted server, within the
    // failover time plus one reconnection back-off (at most 2 s). (A write acknowledged just
    // after the kill was still answered by the old primary, so count from the promotion.)
    let deadline = killed_at + FAILOVER + Duration::from_secs(5);
    let resumed = loop {
        let first_after = outcomes
            .lock()
            .unwrap()
            .ok
            .iter()
            .find(|(_, at)| *at > promoted_at)
            .map(|(_, at)| *at);
        if let Some(at) = first_after {
            break at - killed_at;
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("writes resumed {resumed:?} after the primary was killed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer stops")
        .expect("the writer did not panic");

    // Each mutation applied at most once, and every acknowledged one is there.
    let record = repo
        .reading_from_writer()
        .get("ha-log")
        .await
        .unwrap()
        .expect("the record survived the failover");
    let seen = logged(&record);
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let after_promotion = outcomes
        .ok
        .iter()
        .filter(|(_, at)| *at > promoted_at)
        .count();
    assert!(after_promotion > 0);
    if long {
        // The promoted server had edits made optimistically: each starts with a `WATCH`,
        // which no script sends and no replication carries, so all of them came after the
        // promotion (the default path's `WATCH` edits, on Redis and on Valkey).
        let promoted = &topology.replica;
        assert!(
            command_calls(promoted, "watch") > script_calls(promoted),
            "watch {}, scripts {}",
            command_calls(promoted, "watch"),
            script_calls(promoted)
        );
        assert!(record.to_json().len() > 9_000);
    }
    for (n, times) in &seen {
        assert_eq!(*times, 1, "message {n} applied {times} times");
    }
    let acknowledged: HashSet<u64> = outcomes.ok.iter().map(|(n, _)| *n).collect();
    let lost: Vec<&u64> = acknowledged
        .iter()
        .filter(|n| !seen.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(seen.len() >= acknowledged.len());
    assert!(
        seen.keys()
            .all(|n| acknowledged.contains(n) || outcomes.failed.contains(n)),
        "only messages that were sent are logged"
    );
    eprintln!(
        "{} acknowledged, {} failed ({} of those applied), {} after the promotion",
        acknowledged.len(),
        outcomes.failed.len(),
        outcomes
            .failed
            .iter()
            .filter(|n| seen.contains_key(n))
            .count(),
        after_promotion,
    );

    // The expiry listener follows the new primary: a task saved now with a 1 s TTL is
    // cleaned from its indexes by the listener, resubscribed on the promoted server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while listener.stats().reconnects == 0 {
        assert!(
            Instant::now() < deadline,
            "the expiry listener did not reconnect: {:?}",
            listener.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let short = connect(&url, &url, 1).await;
    short
        .save(TaskRecord::new("ha-short", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    // Saved with the long TTL, this one keeps the index sets themselves alive.
    repo.save(TaskRecord::new("ha-keep", "s", "u", TaskStatus::Running))
        .await
        .unwrap();
    let indexed = |id: &str| topology.replica.cli(&["SISMEMBER", "index:tasks", id]) == "1";
    assert!(indexed("ha-short"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while indexed("ha-short") {
        assert!(
            Instant::now() < deadline,
            "the listener did not clean the expired task: {:?}",
            listener.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = listener.stats();
    assert_eq!(stats.task_messages, 1, "{stats:?}");
    assert_eq!(stats.cleanups, 1, "{stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
    let mut ids = repo.list_ids(&Scope::All).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["ha-keep", "ha-log"]);

    listener.stop().await;
    short.close().await;
    repo.close().await;
}
