//! The `task-state` binary against a real Redis Cluster (three primaries, three replicas on
//! loopback): every command through `redis-cluster://` URLs, as a deployment would run it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use task_state_redis::testing::{cluster_or_skip, RedisCluster};

const BIN: &str = env!("CARGO_BIN_EXE_task-state");

fn command(cluster: &RedisCluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DMS_REDIS_READ_URL")
        .env_remove("RUST_LOG")
        .env("DMS_REDIS_WRITE_URL", cluster.url())
        .stdin(Stdio::null());
    cmd
}

fn run(cluster: &RedisCluster, args: &[&str]) -> Output {
    command(cluster, args).output().expect("run task-state")
}

fn ok(cluster: &RedisCluster, args: &[&str]) -> String {
    let output = run(cluster, args);
    assert!(
        output.status.success(),
        "task-state {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn every_command_works_on_a_cluster() {
    let Some(cluster) = cluster_or_skip(&["--notify-keyspace-events", "Ex"]) else {
        return;
    };
    assert_eq!(ok(&cluster, &["next-id", "--peek"]), "1\n");
    for user in ["alice", "bob", "alice"] {
        ok(&cluster, &["create", "--service", "render", "--user", user]);
    }
    assert_eq!(ok(&cluster, &["next-id"]), "4\n");
    ok(&cluster, &["status", "1", "running", "--log", "started"]);
    ok(&cluster, &["log", "1", "frame 1 done"]);
    ok(&cluster, &["result", "1", "--pod-status", "Running"]);
    ok(&cluster, &["jobs", "1", "slurm-9"]);
    let record: serde_json::Value =
        serde_json::from_str(ok(&cluster, &["get", "1", "--json"]).trim()).unwrap();
    assert_eq!(record["status"], "running");
    assert_eq!(record["result"]["pod_status"], "Running");
    assert_eq!(record["jobs"], serde_json::json!(["slurm-9"]));
    let logs = ok(&cluster, &["logs", "1"]);
    assert!(
        logs.contains("started") && logs.contains("frame 1 done"),
        "{logs}"
    );
    let conflict = run(&cluster, &["status", "1", "cancelled", "--if", "pending"]);
    assert!(!conflict.status.success());
    let listed = ok(
        &cluster,
        &["list", "--service", "render", "--user", "alice"],
    );
    assert!(
        listed.contains('1') && listed.contains('3') && !listed.contains("bob"),
        "{listed}"
    );
    assert_eq!(ok(&cluster, &["users", "render"]), "alice\nbob\n");
    assert_eq!(run(&cluster, &["fsck"]).status.code(), Some(0));
    // An index entry lost, as a failure between a record and its follow-ups leaves it.
    cluster.cli(&["SREM", "index:user:bob", "2"]);
    assert_eq!(run(&cluster, &["fsck"]).status.code(), Some(1));
    ok(&cluster, &["fsck", "--repair"]);
    assert_eq!(run(&cluster, &["fsck"]).status.code(), Some(0));
    ok(&cluster, &["delete", "2"]);
    assert_eq!(ok(&cluster, &["users", "render"]), "alice\n");
    assert_eq!(cluster.cli(&["EXISTS", "task:2:metadata"]), "0");

    // The janitor cleans a task that expires, wherever its keys are.
    let mut janitor = command(&cluster, &["janitor", "--reconcile-interval", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It hears an expiry only once subscribed on the primary that serves the record.
    let subscribed = |i: usize| {
        let reply = cluster
            .node(i)
            .cli(&["PUBSUB", "NUMSUB", "__keyevent@0__:expired"]);
        reply.lines().nth(1).is_some_and(|n| n.trim() != "0")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.primaries().into_iter().all(subscribed) {
        assert!(
            Instant::now() < deadline,
            "the janitor did not subscribe on every primary"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let short = ok(
        &cluster,
        &[
            "--ttl",
            "1",
            "create",
            "--service",
            "render",
            "--user",
            "alice",
        ],
    );
    let short = short.trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The cleanup's steps on a cluster are separate commands: wait for the last one read.
    while (cluster.cli(&["SISMEMBER", "index:service:render", &short]) == "1"
        || cluster.cli(&["SISMEMBER", "index:user:alice", &short]) == "1")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        cluster.cli(&["SISMEMBER", "index:service:render", &short]),
        "0"
    );
    assert_eq!(cluster.cli(&["SISMEMBER", "index:user:alice", &short]), "0");
    let status = Command::new("kill")
        .args(["-TERM", &janitor.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = janitor.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the janitor did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut janitor.stderr.take().unwrap(), &mut log).unwrap();
    assert!(exit.success(), "{exit:?}: {log}");
    assert!(log.contains("cleanups=1"), "{log}");
}
