//! Writes that a real server refuses (out of memory, not enough replicas, a read-only
//! replica, a busy script, a load in progress, a primary that is down) come back as
//! `Error::Refused` naming the reason, never as a key of the wrong type, and leave the store
//! exactly as it was.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{connect, settings};
use fred::prelude::{ClientLike, Value};
use fred::types::CustomCommand;
use task_state_core::{Error, Refusal, TaskRecord, TaskRepository, TaskStatus};
use task_state_redis::testing::{server_or_skip_with, RedisServer};
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

/// Every key with its type and value (set members and hash fields sorted, so that two
/// servers holding the same data compare equal) and its remaining TTL in ms.
async fn snapshot(repo: &RedisTaskRepository) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    let client = repo.raw_writer().next();
    let command = |name: &'static str| CustomCommand::new_static(name, None::<u16>, false);
    let keys: Value = client.custom(command("KEYS"), vec!["*"]).await.unwrap();
    let Value::Array(keys) = keys else {
        panic!("KEYS answered {keys:?}")
    };
    let mut out = BTreeMap::new();
    for key in keys {
        let key = key.as_bytes().unwrap().to_vec();
        let kind: String = client
            .custom(command("TYPE"), vec![key.clone()])
            .await
            .unwrap();
        let read = match kind.as_str() {
            "string" => "GET",
            "set" => "SMEMBERS",
            "hash" => "HGETALL",
            _ => "DUMP",
        };
        let value: Value = client
            .custom(command(read), vec![key.clone()])
            .await
            .unwrap();
        let mut parts: Vec<Vec<u8>> = match value {
            Value::Array(items) => items
                .chunks(if kind == "hash" { 2 } else { 1 })
                .map(|pair| {
                    pair.iter()
                        .flat_map(|v| v.as_bytes().unwrap().to_vec())
                        .collect()
                })
                .collect(),
            Value::Map(map) => map
                .inner()
                .into_iter()
                .map(|(k, v)| [k.as_bytes().to_vec(), v.as_bytes().unwrap().to_vec()].concat())
                .collect(),
            other => vec![other.as_bytes().unwrap().to_vec()],
        };
        parts.sort();
        let mut content = kind.into_bytes();
        for part in parts {
            content.push(0);
            content.extend(part);
        }
        let ttl: i64 = client
            .custom(command("PTTL"), vec![key.clone()])
            .await
            .unwrap();
        out.insert(key, (content, ttl));
    }
    out
}

/// The same keys and values, and TTLs that only ran down (by at most `slack`).
fn assert_unchanged(
    before: &BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
    after: &BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
    slack: Duration,
) {
    let names = |m: &BTreeMap<Vec<u8>, _>| -> Vec<String> {
        m.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    assert_eq!(names(before), names(after), "the same keys");
    for (key, (dump, ttl)) in before {
        let (dump_after, ttl_after) = &after[key];
        let name = String::from_utf8_lossy(key);
        assert!(dump == dump_after, "{name} changed");
        if *ttl < 0 {
            assert_eq!(ttl, ttl_after, "{name}: TTL changed");
        } else {
            let ran_down = ttl - ttl_after;
            assert!(
                ran_down >= 0 && ran_down <= slack.as_millis() as i64,
                "{name}: TTL {ttl} ms became {ttl_after} ms"
            );
        }
    }
}

/// Task "1" with a log line and a job, task "2" of another user.
async fn seed(repo: &RedisTaskRepository) {
    let mut first = TaskRecord::new("1", "render", "alice", TaskStatus::Pending);
    first.jobs = vec!["slurm-1".into()];
    repo.save(first).await.unwrap();
    repo.append_log("1", "queued").await.unwrap();
    repo.save(TaskRecord::new("2", "render", "bob", TaskStatus::Running))
        .await
        .unwrap();
    repo.next_task_id().await.unwrap();
}

/// Every write of the repository, each with the error it returned. Out of memory, Redis
/// still takes deletes (`SREM`, `DEL`), which free memory, so `all` leaves out a delete and a
/// save that moves a task (tested on their own there).
async fn every_write(repo: &RedisTaskRepository, all: bool) -> Vec<(&'static str, Error)> {
    let mut changed = TaskRecord::new("2", "render", "bob", TaskStatus::Completed);
    changed.logs = vec!["2025-11-17T10:00:16+09:00,done".into()];
    let mut moved = TaskRecord::new("2", "train", "carol", TaskStatus::Running);
    moved.logs = vec!["2025-11-17T10:00:16+09:00,moved".into()];
    let jobs = ["slurm-2".to_owned()];
    let lines = ["a".to_owned(), "b".to_owned()];
    let mut errors = vec![
        ("save", repo.save(changed).await.map(|_| ())),
        (
            "create",
            repo.create(TaskRecord::new("9", "render", "alice", TaskStatus::Pending))
                .await
                .map(|_| ()),
        ),
        (
            "set_status",
            repo.set_status("1", TaskStatus::Running, Some("started"))
                .await
                .map(|_| ()),
        ),
        (
            "transition",
            repo.transition("1", &[TaskStatus::Pending], TaskStatus::Running, None)
                .await
                .map(|_| ()),
        ),
        ("append_log", repo.append_log("1", "line").await.map(|_| ())),
        (
            "append_logs",
            repo.append_logs("1", &lines).await.map(|_| ()),
        ),
        (
            "update_result",
            repo.update_result("1", Some("phase=Running"), None)
                .await
                .map(|_| ()),
        ),
        ("set_jobs", repo.set_jobs("1", &jobs).await.map(|_| ())),
        ("next_task_id", repo.next_task_id().await.map(|_| ())),
    ];
    if all {
        errors.push(("save moving the task", repo.save(moved).await.map(|_| ())));
        errors.push(("delete", repo.delete("1").await.map(|_| ())));
    }
    errors
        .into_iter()
        .map(|(name, result)| match result {
            Ok(()) => panic!("{name} succeeded on a server that refuses writes"),
            Err(e) => (name, e),
        })
        .collect()
}

fn assert_refused(errors: &[(&str, Error)], want: Refusal) {
    for (name, error) in errors {
        assert!(
            matches!(error, Error::Refused { reason, .. } if *reason == want),
            "{name}: {error:?}"
        );
        // Out of memory and a read-only replica need a change first; the others pass.
        assert_eq!(
            error.is_retryable(),
            want.is_transient(),
            "{name}: {error:?}"
        );
        assert!(
            !error.is_reply_lost() && !error.is_connection(),
            "{name}: {error:?}"
        );
        let shown = error.to_string();
        assert!(shown.contains(want.code()), "{name}: {shown}");
        assert!(!shown.contains("wrong kind"), "{name}: {shown}");
    }
}

#[tokio::test]
async fn out_of_memory_is_refused_and_nothing_is_written() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let repo = connect(&server).await;
    seed(&repo).await;
    let before = snapshot(&repo).await;
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]);

    let errors = every_write(&repo, false).await;
    assert_eq!(errors.len(), 9);
    assert_refused(&errors, Refusal::OutOfMemory);
    // Reads still work.
    assert_eq!(repo.get("1").await.unwrap().unwrap().logs.len(), 1);

    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_unchanged(&before, &snapshot(&repo).await, Duration::from_secs(5));
    // A save that moves a task writes the record first, so it is refused whole; deletes free
    // memory, so Redis lets them through even when out of memory.
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let moved = TaskRecord::new("1", "train", "carol", TaskStatus::Running);
    let refused = repo.save(moved).await;
    assert!(
        matches!(
            refused,
            Err(Error::Refused {
                reason: Refusal::OutOfMemory,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(server.cli(&["EXISTS", "index:user:carol"]), "0");
    assert_eq!(repo.get("1").await.unwrap().unwrap().service, "render");
    assert!(repo.delete("1").await.unwrap());
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert!(repo.get("1").await.unwrap().is_none());
}

#[tokio::test]
async fn not_enough_replicas_is_refused_and_nothing_is_written() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let repo = connect(&server).await;
    seed(&repo).await;
    let before = snapshot(&repo).await;
    server.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);

    let errors = every_write(&repo, true).await;
    assert_eq!(errors.len(), 11);
    assert_refused(&errors, Refusal::NotEnoughReplicas);

    server.cli(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
    assert_unchanged(&before, &snapshot(&repo).await, Duration::from_secs(5));
}

/// Waits until `replica` has loaded what its primary had.
fn wait_for_sync(replica: &RedisServer, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica.cli(&["EXISTS", key]) != "1" {
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_read_only_replica_behind_the_write_url_is_refused() {
    let Some(primary) = server_or_skip_with(&[]) else {
        return;
    };
    let primary_repo = connect(&primary).await;
    seed(&primary_repo).await;
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]).unwrap();
    wait_for_sync(&replica, "task:2");
    let repo = connect(&replica).await;
    let before = snapshot(&repo).await;
    let primary_before = snapshot(&primary_repo).await;

    let errors = every_write(&repo, true).await;
    assert_eq!(errors.len(), 11);
    assert_refused(&errors, Refusal::ReadOnlyReplica);

    assert_unchanged(&before, &snapshot(&repo).await, Duration::from_secs(5));
    assert_unchanged(
        &primary_before,
        &snapshot(&primary_repo).await,
        Duration::from_secs(5),
    );
}

#[tokio::test]
async fn a_replica_without_its_primary_is_refused_when_it_may_not_serve_stale_data() {
    let Some(primary) = server_or_skip_with(&[]) else {
        return;
    };
    let primary_repo = connect(&primary).await;
    seed(&primary_repo).await;
    let port = primary.port().to_string();
    let args = [
        "--replicaof",
        "127.0.0.1",
        &port,
        "--replica-serve-stale-data",
        "no",
    ];
    let replica = RedisServer::start_with(&args).unwrap();
    wait_for_sync(&replica, "task:2");
    let writer = server_or_skip_with(&[]).unwrap();
    let settings = RedisRepositorySettings::builder()
        .with_write_url(writer.url())
        .with_read_url(replica.url())
        .with_command_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let repo = RedisTaskRepository::connect(settings.clone())
        .await
        .unwrap();
    drop(primary_repo);
    drop(primary);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:down")
    {
        assert!(
            Instant::now() < deadline,
            "the replica still sees its primary"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = repo.get("2").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                reason: Refusal::PrimaryDown,
                ..
            }
        ),
        "{err:?}"
    );
    let err = repo.peek_next_task_id().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                reason: Refusal::PrimaryDown,
                ..
            }
        ),
        "{err:?}"
    );
    // Connecting pings the reader, which Redis 7 refuses too (6.2 answers it).
    if let Err(err) = RedisTaskRepository::connect(settings).await {
        assert!(
            matches!(
                err,
                Error::Refused {
                    reason: Refusal::PrimaryDown,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_busy_script_is_refused_and_nothing_is_written() {
    // lua-time-limit is the name Redis 6.2 knows; Redis 7 takes it as busy-reply-threshold.
    let Some(server) = server_or_skip_with(&["--lua-time-limit", "100"]) else {
        return;
    };
    let repo = connect(&server).await;
    seed(&repo).await;
    let before = snapshot(&repo).await;
    let mut busy = Command::new("redis-cli")
        .args(["-p", &server.port().to_string()])
        .args(["EVAL", "while true do end", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.cli(&["PING"]).starts_with("BUSY") {
        assert!(
            Instant::now() < deadline,
            "the script did not make Redis busy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let errors = every_write(&repo, true).await;
    assert_eq!(errors.len(), 11);
    assert_refused(&errors, Refusal::BusyScript);
    let err = repo.get("1").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                reason: Refusal::BusyScript,
                ..
            }
        ),
        "{err:?}"
    );

    assert_eq!(server.cli(&["SCRIPT", "KILL"]), "OK");
    busy.wait().unwrap();
    assert_unchanged(&before, &snapshot(&repo).await, Duration::from_secs(5));
}

#[tokio::test]
async fn a_server_loading_its_data_is_refused_and_nothing_is_written() {
    // A replica that loads its primary's data slowly (200 ms a key, big uncompressed values)
    // answers LOADING between keys (every 2 MB read) for several seconds.
    let Some(primary) = server_or_skip_with(&["--rdbcompression", "no"]) else {
        return;
    };
    let primary_repo = connect(&primary).await;
    seed(&primary_repo).await;
    primary.cli(&[
        "EVAL",
        "for i = 1, 60 do redis.call('SET', 'ballast:' .. i, string.rep('x', 524288)) end",
        "0",
    ]);
    let before = snapshot(&primary_repo).await;
    let loading =
        RedisServer::start_with(&["--key-load-delay", "200000", "--rdbcompression", "no"]).unwrap();
    let repo = connect(&loading).await;
    loading.cli(&["REPLICAOF", "127.0.0.1", &primary.port().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !loading.cli(&["GET", "task:1"]).starts_with("LOADING") {
        assert!(Instant::now() < deadline, "the server did not say LOADING");
        std::thread::sleep(Duration::from_millis(20));
    }

    let is_loading = |e: &Error| {
        matches!(
            e,
            Error::Refused {
                reason: Refusal::Loading,
                ..
            }
        )
    };
    // A script that writes: EVALSHA (Redis 6.2) is refused for the loading; FCALL of a
    // function that may write is refused first for being sent to a replica (Redis 7 checks a
    // function's flags before the loading). Either names a real cause.
    let is_refused_script = |e: &Error| {
        is_loading(e)
            || matches!(
                e,
                Error::Refused {
                    reason: Refusal::ReadOnlyReplica,
                    ..
                }
            )
    };
    let err = repo.append_log("1", "line").await.unwrap_err();
    assert!(is_refused_script(&err), "{err:?}");
    let err = repo
        .set_status("1", TaskStatus::Running, None)
        .await
        .unwrap_err();
    assert!(is_refused_script(&err), "{err:?}");
    let err = repo.get("1").await.unwrap_err();
    assert!(is_loading(&err), "{err:?}");
    // (A plain write command such as INCR is refused first for being sent to a replica.)
    let err = repo.peek_next_task_id().await.unwrap_err();
    assert!(is_loading(&err), "{err:?}");
    // Connecting pings, which a loading server refuses too.
    let err = RedisTaskRepository::connect(settings(&loading))
        .await
        .unwrap_err();
    assert!(is_loading(&err), "{err:?}");
    assert!(
        loading.cli(&["GET", "task:1"]).starts_with("LOADING"),
        "the checks ran while it was loading"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    while loading.cli(&["PING"]) != "PONG" {
        assert!(
            Instant::now() < deadline,
            "the server did not finish loading"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_unchanged(&before, &snapshot(&repo).await, Duration::from_secs(60));
}

#[tokio::test]
async fn a_real_wrongtype_is_still_named_with_its_key() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let repo = connect(&server).await;
    seed(&repo).await;
    server.cli(&["DEL", "index:user:alice"]);
    server.cli(&["SET", "index:user:alice", "not a set"]);
    let err = repo.append_log("1", "line").await.unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, expected: "set" } if key == "index:user:alice"),
        "{err:?}"
    );
    server.cli(&["DEL", "task:2:metadata"]);
    server.cli(&["SET", "task:2:metadata", "not a hash"]);
    let err = repo.append_log("2", "line").await.unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, expected: "hash" } if key == "task:2:metadata"),
        "{err:?}"
    );
}
