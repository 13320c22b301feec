//! The same operations on one Redis node and on a three-primary Redis Cluster
//! (`task-state-bench --cluster`): throughput, the server time each operation costs, and the
//! share of the commands each primary served (`INFO commandstats` on every node). See
//! `docs/cluster.md`.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use task_state_core::{TaskRepository, TaskStatus};
use task_state_redis::testing::{RedisCluster, RedisServer};
use task_state_redis::{RedisTaskRepository, WritePath};

use crate::admin::{parse_commandstats, CommandStat};
use crate::fixtures;
use crate::stats;
use crate::suite::connect_with;

/// One operation on one topology.
#[derive(Debug, Clone)]
pub struct SpreadRow {
    /// The operation (`save`, `set_status`, ...).
    pub op: String,
    /// `1 node` or `cluster`.
    pub topology: &'static str,
    /// Operations a second, over the whole run.
    pub ops_per_sec: f64,
    /// Median latency, in microseconds.
    pub p50_us: f64,
    /// Server time an operation cost, over every node, in microseconds: the time of its
    /// scripts (`EVALSHA`), or of its `GET` for `get`.
    pub server_us_per_op: f64,
    /// Scripts (`GET`s for `get`) an operation sent: 1 on one node; on a cluster the
    /// record's script and its follow-ups.
    pub commands_per_op: f64,
    /// Per primary (by port): the share of those scripts (or `GET`s) it ran, and its server
    /// time per operation in microseconds.
    pub per_primary: Vec<(u16, f64, f64)>,
}

/// Calls of `command` and the microseconds they took, on one node. A script's time
/// includes the commands it runs (which `INFO commandstats` also counts on their own), so
/// only the top-level command is counted.
fn usage(stats: &[CommandStat], command: &str) -> (u64, u64) {
    crate::admin::find_stat(stats, command).map_or((0, 0), |s| (s.calls, s.usec))
}

/// The nodes of a topology, to read their statistics with `redis-cli`.
trait Nodes {
    fn primaries(&self) -> Vec<&RedisServer>;
}

impl Nodes for RedisServer {
    fn primaries(&self) -> Vec<&RedisServer> {
        vec![self]
    }
}

impl Nodes for RedisCluster {
    fn primaries(&self) -> Vec<&RedisServer> {
        RedisCluster::primaries(self)
            .into_iter()
            .map(|i| self.node(i))
            .collect()
    }
}

async fn measure_on<F, Fut>(
    nodes: &dyn Nodes,
    topology: &'static str,
    op: &str,
    command: &str,
    ops: usize,
    concurrency: usize,
    f: F,
) -> Result<SpreadRow>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    for node in nodes.primaries() {
        node.cli(&["CONFIG", "RESETSTAT"]);
    }
    let m = stats::measure_shared(ops, concurrency, Arc::new(f))
        .await
        .with_context(|| op.to_owned())?;
    let per_node: Vec<(u16, Vec<CommandStat>)> = nodes
        .primaries()
        .into_iter()
        .map(|n| {
            (
                n.port(),
                parse_commandstats(&n.cli(&["INFO", "commandstats"])),
            )
        })
        .collect();
    let total_commands: u64 = per_node.iter().map(|(_, s)| usage(s, command).0).sum();
    let total_usec: u64 = per_node.iter().map(|(_, s)| usage(s, command).1).sum();
    let n = m.ops.max(1) as f64;
    Ok(SpreadRow {
        op: op.to_owned(),
        topology,
        ops_per_sec: m.ops_per_sec(),
        p50_us: m.p50_us(),
        server_us_per_op: total_usec as f64 / n,
        commands_per_op: total_commands as f64 / n,
        per_primary: per_node
            .iter()
            .map(|(port, s)| {
                let (calls, usec) = usage(s, command);
                (
                    *port,
                    calls as f64 / total_commands.max(1) as f64,
                    usec as f64 / n,
                )
            })
            .collect(),
    })
}

/// One operation of the run: on the repository, task id, index.
type Operation = fn(RedisTaskRepository, String, usize) -> BoxFuture<'static, Result<()>>;

/// The operations, by name, with the top-level command whose statistics they are read by.
const OPERATIONS: [(&str, &str, Operation); 5] = [
    ("save", crate::admin::SCRIPT, |r, id, i| {
        Box::pin(async move {
            r.save(fixtures::task_record(&id, i)).await?;
            Ok(())
        })
    }),
    ("set_status", crate::admin::SCRIPT, |r, id, _| {
        Box::pin(async move {
            r.set_status(&id, TaskStatus::Running, Some("running"))
                .await?;
            Ok(())
        })
    }),
    ("append_log", crate::admin::SCRIPT, |r, id, _| {
        Box::pin(async move {
            r.append_logs(&id, &["a line of output".to_owned()]).await?;
            Ok(())
        })
    }),
    ("update_result", crate::admin::SCRIPT, |r, id, _| {
        Box::pin(async move {
            r.update_result(&id, Some("Running"), None).await?;
            Ok(())
        })
    }),
    ("get", "get", |r, id, _| {
        Box::pin(async move {
            r.get(&id).await?;
            Ok(())
        })
    }),
];

/// `save` of `ops` new tasks, then `set_status`, `append_log`, `update_result` and `get` on
/// them, `ops` operations each with `concurrency` in flight, on `repo` whose servers are
/// `nodes`.
async fn operations(
    repo: &RedisTaskRepository,
    nodes: &dyn Nodes,
    topology: &'static str,
    ops: usize,
    concurrency: usize,
) -> Result<Vec<SpreadRow>> {
    let mut rows = Vec::new();
    for (name, command, op) in OPERATIONS {
        let r = repo.clone();
        let row = measure_on(nodes, topology, name, command, ops, concurrency, move |i| {
            op(r.clone(), (i + 1).to_string(), i)
        })
        .await?;
        rows.push(row);
    }
    Ok(rows)
}

/// Runs the operations on a private server and on a private three-primary cluster (both
/// started and stopped here), `ops` each with `concurrency` in flight and `pool_size`
/// connections a pool, on the scripts (`WritePath::Script`): what is counted is the
/// server's time in them. (`--write-paths --cluster` counts the default path's
/// instructions.) `DMS_REDIS_WRITE_PATH` sets another path, for its throughput (the server
/// time then counts only the scripts that still run).
///
/// # Errors
/// When a server cannot be started or an operation fails.
pub async fn run(ops: usize, concurrency: usize, pool_size: usize) -> Result<Vec<SpreadRow>> {
    let path = match std::env::var(task_state_redis::WRITE_PATH_VAR) {
        Ok(name) => name.parse()?,
        Err(_) => WritePath::Script,
    };
    let mut rows = Vec::new();
    {
        let server = RedisServer::start()?;
        let repo = connect_with(&server.url(), pool_size, path).await?;
        rows.extend(operations(&repo, &server, "1 node", ops, concurrency).await?);
        repo.close().await;
    }
    let cluster = RedisCluster::start(&[])?;
    let repo = connect_with(&cluster.url(), pool_size, path).await?;
    rows.extend(operations(&repo, &cluster, "cluster", ops, concurrency).await?);
    repo.close().await;
    Ok(rows)
}

/// Prints the rows as a table.
pub fn print_table(rows: &[SpreadRow]) {
    println!(
        "{:<14} {:<8} {:>9} {:>8} {:>11} {:>8}  per primary: share of commands, server µs/op",
        "operation", "on", "ops/s", "p50 µs", "server µs", "cmds/op"
    );
    for row in rows {
        let spread: Vec<String> = row
            .per_primary
            .iter()
            .map(|(port, share, us)| format!("{port}: {:>4.1}% {us:>5.1}", share * 100.0))
            .collect();
        println!(
            "{:<14} {:<8} {:>9.0} {:>8.0} {:>11.1} {:>8.2}  {}",
            row.op,
            row.topology,
            row.ops_per_sec,
            row.p50_us,
            row.server_us_per_op,
            row.commands_per_op,
            spread.join("  ")
        );
    }
}
