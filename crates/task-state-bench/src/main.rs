//! `task-state-bench`: throughput and latency of every repository operation on Redis,
//! against the limit `redis-benchmark` reaches on the same server, with the scale figures
//! and the targets of the benchmarks issue. See `docs/benchmarks.md`.

use anyhow::Result;
use clap::Parser;
use task_state_bench::report;
use task_state_bench::suite::{self, Options};

/// Benchmarks task-state on Redis against redis-benchmark's limit.
#[derive(Debug, Parser)]
#[command(name = "task-state-bench", version)]
struct Cli {
    /// Redis URL; by default a private redis-server is started (and stopped).
    #[arg(long)]
    url: Option<String>,
    /// Operations in flight, and redis-benchmark's -c.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Connections in each repository pool [default: concurrency / 4, at least 1].
    #[arg(long)]
    pool_size: Option<usize>,
    /// Operations per measured operation, and redis-benchmark's -n
    /// [default: 20000, 3000 with --quick].
    #[arg(long)]
    ops: Option<usize>,
    /// Tasks to stream [default: 100000, 10000 with --quick].
    #[arg(long)]
    stream_tasks: Option<usize>,
    /// Records a round trip when streaming.
    #[arg(long, default_value_t = 500)]
    stream_batch: usize,
    /// Rounds of each operation and limit, interleaved; the median round is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Tokio worker threads [default: one a CPU].
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Tasks to list with list_all.
    #[arg(long, default_value_t = 5000)]
    list_tasks: usize,
    /// A smaller run for iterating.
    #[arg(long)]
    quick: bool,
    /// Run only these operations and phases, comma-separated: get, set_status, append_log,
    /// append_log_record, update_result, transition, python, list, scale, stream (save always
    /// runs).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// One JSON object a line instead of a table.
    #[arg(long)]
    json: bool,
    /// Allow emptying a non-empty database given by --url.
    #[arg(long)]
    flush: bool,
    /// Skip redis-benchmark.
    #[arg(long)]
    no_limit: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Instead of the suite: the same operations on a private server and on a private
    /// three-primary Redis Cluster, with each primary's share of the work.
    #[arg(long)]
    cluster: bool,
    /// Instead of the suite: the instructions each operation costs inside a private
    /// redis-server run under valgrind's callgrind, one call at a time (--ops calls of each,
    /// default 300; --only limits the rows), next to a plain SET of the same record.
    #[arg(long)]
    instructions: bool,
    /// Instead of the suite: issue 21's write paths under callgrind, at ~1 KiB, ~100 KiB and
    /// ~1 MiB: GET+SET of the record, every mutation by the script and by the repository's
    /// optimistic write path (`auto`) (with --prototypes, the bench's prototypes too); with
    /// --valkey-server, the same on Valkey (--ops calls at ~1 KiB, default 100; --only limits
    /// the rows). `--instructions --write-paths` is the same. With --cluster: on a cluster of
    /// three primaries under callgrind instead (the scripts and `auto`).
    #[arg(long)]
    write_paths: bool,
    /// --write-paths: the prototypes of crate::write_path as well.
    #[arg(long)]
    prototypes: bool,
    /// A valkey-server (8.1 or later) for the SET IFEQ rows of --write-paths.
    #[arg(long)]
    valkey_server: Option<String>,
    /// Instead of the suite: 16 writers (--concurrency) append 25 lines each to one task with
    /// the optimistic prototype (WATCH; IFEQ with --ifeq, on a Valkey 8.1 server), falling
    /// back to the script after --max-attempts raced attempts, on a private server. With
    /// --instructions: under callgrind, with 0 (the script alone), 1 and 3 attempts.
    #[arg(long)]
    contention: bool,
    /// --contention with SET IFEQ instead of WATCH.
    #[arg(long)]
    ifeq: bool,
    /// --contention with the repository's `append_log` on write path `ifeq` (one
    /// optimistic attempt, then the script) and on the scripts alone, instead of the
    /// prototype, on a private server of TASK_STATE_REDIS_SERVER (default redis-server).
    #[arg(long)]
    repository: bool,
    /// --contention: optimistic attempts of a write before it goes to the script.
    #[arg(long, default_value_t = 3)]
    max_attempts: usize,
    /// Internal: stream every task of --url and print what it took, as JSON.
    #[arg(long, hide = true)]
    stream_probe: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.enable_all().build()?.block_on(run(cli))
}

/// Runs what `cli` asks for: one of the runs instead of the suite, or the suite.
async fn run(cli: Cli) -> Result<()> {
    let pool_size = cli.pool_size.unwrap_or(cli.concurrency.div_ceil(4)).max(1);
    if cli.stream_probe {
        stream_probe(&cli, pool_size).await
    } else if cli.instructions && !cli.contention && !cli.write_paths {
        instructions(&cli).await
    } else if cli.write_paths {
        write_paths(&cli).await
    } else if cli.contention && cli.repository {
        repository_contention(&cli).await
    } else if cli.contention {
        contention(&cli).await
    } else if cli.cluster {
        cluster(&cli, pool_size).await
    } else {
        suite(cli, pool_size).await
    }
}

/// `--stream-probe`: streams every task of `--url` and prints what it took, as JSON.
async fn stream_probe(cli: &Cli, pool_size: usize) -> Result<()> {
    let url = cli.url.as_deref().unwrap_or("redis://127.0.0.1:6379/0");
    let figures = suite::stream_probe(url, pool_size, cli.stream_batch).await?;
    println!("{figures}");
    Ok(())
}

/// `--instructions`: each operation's instructions inside a redis-server under callgrind.
async fn instructions(cli: &Cli) -> Result<()> {
    let tasks = cli.ops.unwrap_or(300).max(1);
    let rows = task_state_bench::instructions::run(tasks, cli.only.as_deref()).await?;
    task_state_bench::instructions::print_table(&rows);
    Ok(())
}

/// `--write-paths`: issue 21's write paths under callgrind, on redis-server and, with
/// `--valkey-server`, on Valkey.
async fn write_paths(cli: &Cli) -> Result<()> {
    use task_state_bench::instructions::{self, Design};
    let tasks = cli.ops.unwrap_or(100).max(1);
    let only = cli.only.as_deref();
    // The designs measured on a server, the prototypes given (measured with --prototypes).
    let designs = |prototypes: [Design; 2]| {
        let mut designs = vec![Design::Script, Design::Built, Design::BuiltAmidSaves];
        if cli.prototypes {
            designs.extend(prototypes);
        }
        designs
    };
    let binary = task_state_redis::testing::server_binary();
    if cli.cluster {
        let mut rows = instructions::run_write_paths_cluster(&binary, None, tasks, only).await?;
        if let Some(valkey) = &cli.valkey_server {
            let valkey_rows =
                instructions::run_write_paths_cluster(valkey, Some("valkey"), tasks, only).await?;
            rows.extend(valkey_rows);
        }
        instructions::print_write_paths(&rows);
        return Ok(());
    }
    let redis = designs([Design::Watch, Design::WatchLean]);
    let mut rows = instructions::run_write_paths(&binary, None, &redis, tasks, only).await?;
    if let Some(valkey) = &cli.valkey_server {
        let designs = designs([Design::IfEq, Design::IfEqLean]);
        let valkey_rows =
            instructions::run_write_paths(valkey, Some("valkey"), &designs, tasks, only).await?;
        rows.extend(valkey_rows);
    }
    instructions::print_write_paths(&rows);
    Ok(())
}

/// `--contention --repository`: the repository's `append_log` under contention, on the
/// scripts alone and on the default write path (optimistic at every size, on the crate's
/// own connections).
async fn repository_contention(cli: &Cli) -> Result<()> {
    use task_state_redis::WritePath;
    let writers = cli.concurrency.max(1);
    // TASK_STATE_REDIS_SERVER names another server binary (a valkey-server).
    let servers = [task_state_redis::testing::RedisServer::start()?];
    for server in &servers {
        for path in [WritePath::Script, WritePath::Auto] {
            let outcome =
                task_state_bench::contention::run_repository(&server.url(), path, writers, 25)
                    .await?;
            println!("{path} on {}:", server.url());
            task_state_bench::contention::print(&outcome);
        }
    }
    Ok(())
}

/// `--contention`: the optimistic prototype's appends under contention, on a private
/// server; with `--instructions`, under callgrind.
async fn contention(cli: &Cli) -> Result<()> {
    use task_state_bench::write_path::Guard;
    let guard = if cli.ifeq { Guard::IfEq } else { Guard::Watch };
    let writers = cli.concurrency.max(1);
    if cli.instructions {
        let rows = task_state_bench::instructions::run_contention(writers, &[0, 1, 3]).await?;
        for (outcome, per_line) in rows {
            task_state_bench::contention::print(&outcome);
            println!("  server instructions per line written: {per_line:.0}");
        }
        return Ok(());
    }
    // A private server: the run empties its database.
    let server = task_state_redis::testing::RedisServer::start()?;
    let outcome =
        task_state_bench::contention::run(&server.url(), guard, writers, 25, cli.max_attempts)
            .await?;
    task_state_bench::contention::print(&outcome);
    Ok(())
}

/// `--cluster`: the operations on a private server and on a private Redis Cluster.
async fn cluster(cli: &Cli, pool_size: usize) -> Result<()> {
    let ops = cli.ops.unwrap_or(if cli.quick { 3_000 } else { 20_000 });
    let rows = task_state_bench::spread::run(ops, cli.concurrency.max(1), pool_size).await?;
    task_state_bench::spread::print_table(&rows);
    Ok(())
}

/// The suite, with the options `cli` gives, its results printed as a table or as JSON.
async fn suite(cli: Cli, pool_size: usize) -> Result<()> {
    let quiet = cli.quiet;
    let json = cli.json;
    let options = suite_options(cli, pool_size);
    if pool_size * 4 < options.concurrency && !quiet {
        eprintln!(
            "[bench] note: pool size {pool_size} is below concurrency / 4 ({})",
            options.concurrency.div_ceil(4)
        );
    }
    let results = suite::run(&options).await?;
    if json {
        report::print_json(&results);
    } else {
        report::print_table(&results);
    }
    Ok(())
}

/// The suite's options: those of `--quick` or the standard run, with what `cli` sets.
fn suite_options(cli: Cli, pool_size: usize) -> Options {
    let base = if cli.quick {
        Options::quick()
    } else {
        Options::standard()
    };
    Options {
        url: cli.url,
        concurrency: cli.concurrency.max(1),
        pool_size,
        ops: cli.ops.unwrap_or(base.ops),
        stream_tasks: cli.stream_tasks.unwrap_or(base.stream_tasks),
        stream_batch: cli.stream_batch.max(1),
        list_tasks: cli.list_tasks,
        flush: cli.flush,
        rounds: cli.rounds.max(1),
        only: cli.only,
        limit: !cli.no_limit,
        progress: !cli.quiet,
        ..base
    }
}
