//! The write-path rows on a Redis Cluster of three primaries, each under callgrind
//! (`task-state-bench --write-paths --cluster`): the instructions of a call summed over the
//! primaries, next to a `GET`+`SET` of the same record on its primary.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fred::prelude::{Expiration, KeysInterface};
use task_state_core::{layout, TaskRepository};
use task_state_redis::{RedisTaskRepository, WritePath};

use super::callgrind::{count_all, Callgrind};
use super::{call_design, calls_at, Design, InstructionRow, Op, MUTATIONS, SIZES};
use crate::fixtures;

/// How long the nodes under valgrind may take to agree that the cluster is up.
const FORMING: Duration = Duration::from_secs(180);

/// Three primaries of `binary` under callgrind, serving a third of the slots each.
fn start_cluster(binary: &str) -> Result<Vec<Callgrind>> {
    // Under valgrind a node answers the bus slowly: a long node timeout keeps the others
    // from declaring it failed.
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-node-timeout",
        "120000",
        "--cluster-config-file",
        "nodes.conf",
    ];
    let nodes = (0..3)
        .map(|_| Callgrind::start_with_args(binary, &args))
        .collect::<Result<Vec<_>>>()?;
    let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
    for (node, (first, last)) in nodes.iter().zip(ranges) {
        let (first, last) = (first.to_string(), last.to_string());
        cli(node.port(), &["CLUSTER", "ADDSLOTSRANGE", &first, &last])?;
    }
    for node in &nodes[1..] {
        let port = node.port().to_string();
        cli(nodes[0].port(), &["CLUSTER", "MEET", "127.0.0.1", &port])?;
    }
    let started = Instant::now();
    while !nodes.iter().all(|node| {
        cli(node.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
        })
    }) {
        ensure!(
            started.elapsed() < FORMING,
            "the cluster under callgrind did not form"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(nodes)
}

/// `redis-cli -p port args…`, its output.
fn cli(port: u16, args: &[&str]) -> Result<String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .context("running redis-cli")?;
    if !output.status.success() {
        bail!(
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The write-path rows on a cluster of `binary`: at each size, `get+set` and every mutation
/// by the cluster scripts (`script`) and by the repository's default path (`optimistic`:
/// the record under `WATCH` on its primary, then the metadata and index scripts), each on
/// fresh tasks edited once the same way before the count, the instructions summed over the
/// three primaries. Rows are named `<mutation>/<design>@<size> cluster` (`cluster valkey`
/// with `server_name` `valkey`); `only` selects
/// them by prefix. `tasks` calls at ~1 KiB, fewer at the larger sizes (as
/// [`super::run_write_paths`]).
///
/// # Errors
/// When valgrind or redis-cli is missing, the cluster does not form, or a call fails.
pub async fn run_write_paths_cluster(
    binary: &str,
    server_name: Option<&str>,
    tasks: usize,
    only: Option<&[String]>,
) -> Result<Vec<InstructionRow>> {
    let nodes = start_cluster(binary)?;
    let mut url = format!("redis-cluster://127.0.0.1:{}", nodes[0].port());
    url.push_str(&format!("?node=127.0.0.1:{}", nodes[1].port()));
    url.push_str(&format!("&node=127.0.0.1:{}", nodes[2].port()));
    let repos = [
        crate::suite::connect_with(&url, 1, WritePath::Script).await?,
        crate::suite::connect_with(&url, 1, WritePath::Auto).await?,
    ];
    repos[0].load_scripts().await?;
    let place = match server_name {
        Some(server) => format!("cluster {server}"),
        None => "cluster".to_owned(),
    };
    let idle = count_all(&nodes, async { Ok(()) }).await?;
    let mut rows = vec![InstructionRow {
        op: format!("idle {place}"),
        calls: 1,
        per_call: idle as f64,
        record_bytes: 0.0,
        note: "a count with no call on the three primaries: their timers and the toggles"
            .to_owned(),
    }];
    let mut plan = vec![("get+set".to_owned(), Design::GetSet, Op::Get)];
    for &(name, op) in MUTATIONS {
        for design in [Design::Script, Design::Built] {
            plan.push((format!("{name}/{}", design.name()), design, op));
        }
    }
    for &(size, logs) in SIZES {
        let count = calls_at(tasks, logs);
        for (name, design, op) in &plan {
            let name = format!("{name}@{size} {place}");
            if only.is_some_and(|o| !o.iter().any(|w| name.starts_with(w.as_str()))) {
                continue;
            }
            let prefix = name.replace(['@', ' ', '/', '+'], "-");
            let ids: Vec<String> = (0..count).map(|n| format!("{prefix}-{n}")).collect();
            let (total, bytes) = count_row(&nodes, &repos, *design, *op, &ids, logs).await?;
            rows.push(InstructionRow {
                op: name,
                calls: count,
                per_call: total as f64 / count as f64,
                record_bytes: bytes / count as f64,
                note: match design {
                    Design::Built => "the record under WATCH on its primary, then the follow-ups",
                    other => other.note(),
                }
                .to_owned(),
            });
        }
    }
    for repo in &repos {
        repo.close().await;
    }
    Ok(rows)
}

/// The instructions the primaries execute for a call of `op` in `design` on each of `ids`
/// (tasks of `logs` log entries, saved and, but for a delete and the `GET`+`SET`, edited
/// once the same way before the count), and the records' bytes before the calls (summed).
async fn count_row(
    nodes: &[Callgrind],
    repos: &[RedisTaskRepository; 2],
    design: Design,
    op: Op,
    ids: &[String],
    logs: usize,
) -> Result<(u64, f64)> {
    let client = repos[0].raw_writer().next();
    let mut bytes = 0.0;
    for (n, id) in ids.iter().enumerate() {
        repos[0]
            .save(fixtures::record_with_logs(id, n, logs))
            .await?;
        if !matches!(design, Design::GetSet) && op != Op::Delete {
            call_design(design, op, repos, None, (id, n, logs)).await?;
        }
        let length: i64 = client.strlen(layout::record_key(id)).await?;
        bytes += length as f64;
    }
    // A delete edits no task before the count: three others first (their keys on every
    // primary), so that the count holds no client's first use (connections, scripts).
    if op == Op::Delete {
        for n in 0..3 {
            let id = format!("{}-warm-{n}", ids.first().map_or("", String::as_str));
            repos[0]
                .save(fixtures::record_with_logs(&id, n, logs))
                .await?;
            call_design(design, op, repos, None, (&id, n, logs)).await?;
        }
    }
    let total = count_all(nodes, async {
        for (n, id) in ids.iter().enumerate() {
            if design == Design::GetSet {
                let key = layout::record_key(id);
                let text: String = client.get(&key).await?;
                let () = client
                    .set(&key, text, Some(Expiration::KEEPTTL), None, false)
                    .await?;
            } else {
                call_design(design, op, repos, None, (id, n, logs)).await?;
            }
        }
        Ok(())
    })
    .await?;
    Ok((total, bytes))
}
