//! The benchmark run: the operations, the `redis-benchmark` limit, the scale figures, and
//! the targets of the issue.
//!
//! The run owns its database: it empties it before each phase (operations, listing,
//! scale, streaming) and at the end, so that every listing sees exactly the tasks it made.

mod operations;
mod scale;
mod streaming;

pub use streaming::stream_probe;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use task_state_core::{
    format_log_entry_at, json_string, layout, SystemClock, TaskRepository, TaskTime,
};
use task_state_redis::testing::RedisServer;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

use crate::admin;
use crate::fixtures::{self, LOG_MESSAGE};
use crate::limit::{self, LimitFigure};
use crate::report::{Results, Row, Target};
use crate::stats::{self, measure, Measurement};

/// What to run, and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server; `None` starts a private `redis-server`.
    pub url: Option<String>,
    /// Operations in flight (and `redis-benchmark -c`).
    pub concurrency: usize,
    /// Connections in each of the repository's pools.
    pub pool_size: usize,
    /// Operations per measured operation (and `redis-benchmark -n`).
    pub ops: usize,
    /// Tasks in the store for the `list_all` benchmark.
    pub list_tasks: usize,
    /// How many `list_all` calls to time.
    pub list_runs: usize,
    /// Tasks in the store for the streaming benchmark.
    pub stream_tasks: usize,
    /// Records a round trip when streaming.
    pub stream_batch: usize,
    /// Log entries of the tasks that the scale figures append to.
    pub scale_sizes: Vec<usize>,
    /// Appends timed at each scale size, one at a time.
    pub scale_ops: usize,
    /// Saves in flight when filling the store for listing and streaming.
    pub fill_concurrency: usize,
    /// Empty a non-empty database given by `url` (a private server is always empty).
    pub flush: bool,
    /// Run `redis-benchmark` for the limit.
    pub limit: bool,
    /// Rounds of each operation (and of its limit), interleaved; the median is reported.
    pub rounds: usize,
    /// Progress on stderr.
    pub progress: bool,
    /// Run only these operations and phases (`get`, `append_log`, ..., `list`, `scale`,
    /// `stream`); `save` always runs, to make the tasks the others work on.
    pub only: Option<Vec<String>>,
}

impl Options {
    /// The default run: 20,000 operations each at 16 in flight, 100,000 streamed tasks.
    pub fn standard() -> Self {
        Options {
            url: None,
            concurrency: 16,
            pool_size: 4,
            ops: 20_000,
            list_tasks: 5_000,
            list_runs: 40,
            stream_tasks: 100_000,
            stream_batch: 500,
            scale_sizes: vec![0, 1_000, 10_000],
            scale_ops: 2_000,
            fill_concurrency: 64,
            flush: false,
            limit: true,
            rounds: 3,
            progress: true,
            only: None,
        }
    }

    /// A smaller run for iterating: 3,000 operations, 10,000 streamed tasks.
    pub fn quick() -> Self {
        Options {
            ops: 3_000,
            list_runs: 10,
            stream_tasks: 10_000,
            scale_ops: 500,
            ..Self::standard()
        }
    }
}

fn task_id(i: usize) -> String {
    (i + 1).to_string()
}

/// `f(repo, i)` as a benchmark operation over a shared repository.
fn on<F, Fut>(repo: &RedisTaskRepository, f: F) -> impl Fn(usize) -> Fut + Send + Sync + 'static
where
    F: Fn(RedisTaskRepository, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let repo = repo.clone();
    move |i| f(repo.clone(), i)
}

fn row(op: &str, m: &Measurement, concurrency: usize) -> Row {
    Row::new(op, m.ops_per_sec(), m.p50_us(), m.p99_us(), concurrency).with("ops", m.ops)
}

fn limit_row(op: &str, figure: &LimitFigure, concurrency: usize) -> Row {
    Row::new(op, figure.rps, figure.p50_us, figure.p99_us, concurrency)
}

const LIMIT_TASK: &str = "limit-append";

/// The most calls of a round of the append script's limit ([`Run::limit_appends`]).
const LIMIT_APPENDS: usize = 1_000;

/// Whether `command` (a `redis-benchmark` command) appends to [`LIMIT_TASK`].
fn appends_to_limit_task(command: &[String]) -> bool {
    let key = layout::record_key(LIMIT_TASK);
    command.contains(&key)
}

struct Bench {
    row: Row,
    limit: Option<LimitFigure>,
    limit_rounds: Vec<f64>,
}

struct Run<'a> {
    options: &'a Options,
    url: String,
    repo: RedisTaskRepository,
    results: Results,
}

impl Run<'_> {
    fn progress(&self, message: &str) {
        if self.options.progress {
            eprintln!("[bench] {message}");
        }
    }

    fn wants(&self, name: &str) -> bool {
        self.options
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }

    fn admin(&self) -> &fred::prelude::Pool {
        self.repo.raw_writer()
    }

    async fn fresh(&self) -> Result<()> {
        admin::flushdb(self.admin()).await
    }

    /// Saves `count` typical tasks with ids `1..=count`, many in flight.
    async fn fill(&self, count: usize) -> Result<Measurement> {
        measure(
            count,
            self.options.fill_concurrency,
            on(&self.repo, |repo, i| async move {
                repo.save(fixtures::task_record(&task_id(i), i)).await?;
                Ok(())
            }),
        )
        .await
    }

    /// A round of `redis-benchmark` running `command` (none where the options want no
    /// limit): `--ops` calls, or for the append script [`Run::limit_appends`] calls on its
    /// task saved afresh.
    async fn limit(&self, command: &[String]) -> Result<Option<LimitFigure>> {
        if !self.options.limit {
            return Ok(None);
        }
        let calls = if appends_to_limit_task(command) {
            self.repo.save(fixtures::task_record(LIMIT_TASK, 0)).await?;
            self.limit_appends()
        } else {
            self.options.ops
        };
        limit::run(&self.url, self.options.concurrency, calls, command).map(Some)
    }

    /// The calls of a round of the append script's limit: each reads the whole record,
    /// so its one task grows by at most [`LIMIT_APPENDS`] entries a round (it is saved
    /// afresh before each), not by `--ops`, which would make the round quadratic.
    fn limit_appends(&self) -> usize {
        self.options.ops.min(LIMIT_APPENDS)
    }

    /// Runs `op` in `rounds` rounds of `ops` operations, `concurrency` in flight, with
    /// `limit` (a `redis-benchmark` command) after each round, so that both see the same
    /// machine; keeps the median round of each. `command` names the top-level Redis command
    /// whose server-side time per call goes into the row.
    async fn bench<F, Fut>(
        &self,
        name: &str,
        command: &str,
        op: F,
        limit: Option<&[String]>,
    ) -> Result<Bench>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let (n, c) = (self.options.ops, self.options.concurrency);
        let op = Arc::new(op);
        let mut rounds = Vec::new();
        let mut limits = Vec::new();
        for round in 1..=self.options.rounds {
            self.progress(&format!("{name}: round {round}, {n} ops, {c} in flight"));
            admin::reset_stats(self.admin()).await?;
            let m = stats::measure_shared(n, c, Arc::clone(&op))
                .await
                .with_context(|| name.to_owned())?;
            let server = admin::commandstats(self.admin()).await?;
            rounds.push((m, server));
            if let Some(command) = limit {
                if let Some(figure) = self.limit(command).await? {
                    limits.push(figure);
                }
            }
        }
        let throughputs: Vec<f64> = rounds.iter().map(|(m, _)| m.ops_per_sec()).collect();
        let (m, server) =
            rounds.swap_remove(stats::median_index(&throughputs).context("no round")?);
        let limit_rps: Vec<f64> = limits.iter().map(|l| l.rps).collect();
        let limit = stats::median_index(&limit_rps).map(|i| limits[i]);
        let found = admin::find_stat(&server, command);
        let server_us = found.map(admin::CommandStat::usec_per_call);
        let command = found.map_or(command, |s| s.name.as_str()).to_owned();
        Ok(Bench {
            row: row(name, &m, c)
                .with(
                    "rounds_ops_per_sec",
                    throughputs.iter().map(|t| t.round()).collect::<Vec<_>>(),
                )
                .with("server_us_per_call", server_us.unwrap_or(0.0))
                .with("server_command", command),
            limit,
            limit_rounds: limit_rps,
        })
    }

    /// Pushes `ours` and, when measured, the limit's row; returns our fraction of it.
    fn push_with_limit(
        &mut self,
        ours: Row,
        limit: Option<LimitFigure>,
        limit_rounds: Vec<f64>,
        limit_op: &str,
        what: &str,
    ) -> Option<f64> {
        let ops_per_sec = ours.ops_per_sec;
        let name = ours.op.clone();
        self.results.rows.push(ours);
        let figure = limit?;
        let fraction = ops_per_sec / figure.rps;
        self.results.rows.push(
            limit_row(limit_op, &figure, self.options.concurrency)
                .with("rounds_ops_per_sec", limit_rounds)
                .with("fraction", fraction)
                .note(format!("{what}; {name} reaches {:.0}%", 100.0 * fraction)),
        );
        Some(fraction)
    }

    /// The `redis-benchmark` command that runs the append_log script as `append_logs` runs
    /// it with one message, on a task of its own (it appends to that one task every time;
    /// [`Run::limit`] saves it afresh before each round): its function with FCALL where the
    /// server has Redis Functions (7.0 and later), as the repository calls it, else the
    /// script with EVALSHA.
    async fn script_command(&self) -> Result<Option<Vec<String>>> {
        if !self.options.limit {
            return Ok(None);
        }
        let (_, library, function) =
            task_state_redis::function_library("append_log").context("no append_log function")?;
        let head = if admin::function_load(self.admin(), library).await.is_ok() {
            vec!["FCALL".to_owned(), function]
        } else {
            let (body, sha) =
                task_state_redis::script_source("append_log").context("no append_log script")?;
            let loaded = admin::script_load(self.admin(), body).await?;
            ensure!(loaded == sha, "SCRIPT LOAD gave {loaded}, expected {sha}");
            vec!["EVALSHA".to_owned(), loaded]
        };
        let now = TaskTime::now(&SystemClock, self.repo.settings().zone());
        Ok(Some(
            head.into_iter()
                .chain([
                    "2".to_owned(),
                    layout::record_key(LIMIT_TASK),
                    layout::metadata_key(LIMIT_TASK),
                    self.repo.settings().ttl_seconds().to_string(),
                    json_string(&now.to_string()),
                    "ack".to_owned(),
                    json_string(&format_log_entry_at(LOG_MESSAGE, now)),
                ])
                .collect(),
        ))
    }

    /// Checks that `redis-benchmark`'s appends landed: the limit ran the real thing.
    async fn check_limit_task(&self) -> Result<()> {
        if !self.options.limit {
            return Ok(());
        }
        let logs = self
            .repo
            .get(LIMIT_TASK)
            .await?
            .context("limit task gone")?
            .logs
            .len();
        let expected = fixtures::INITIAL_LOGS + self.limit_appends();
        ensure!(
            logs == expected,
            "redis-benchmark's appends did not land: {logs} log entries, expected {expected}"
        );
        Ok(())
    }
}

/// Connects a repository to `url` with `pool_size` connections a pool, on the write path
/// that `DMS_REDIS_WRITE_PATH` names (the repository's default where it is unset).
///
/// # Errors
/// When the server cannot be reached, or the variable names no write path.
pub async fn connect(url: &str, pool_size: usize) -> Result<RedisTaskRepository> {
    let path = match std::env::var(task_state_redis::WRITE_PATH_VAR) {
        Ok(name) => name.parse()?,
        Err(_) => task_state_redis::WritePath::default(),
    };
    connect_with(url, pool_size, path).await
}

/// [`connect`] with mutations on write path `path` (`DMS_REDIS_WRITE_PATH` sets the one of
/// [`connect`]: `script` measures the scripts, as before issue 21).
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect_with(
    url: &str,
    pool_size: usize,
    path: task_state_redis::WritePath,
) -> Result<RedisTaskRepository> {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(url)
        .with_pool_size(pool_size)
        .with_command_timeout(Duration::from_secs(60))
        .with_write_path(path)
        .build()?;
    Ok(RedisTaskRepository::connect(settings).await?)
}

fn fraction_target(name: &str, fraction: Option<f64>, goal: f64) -> Target {
    Target {
        name: name.to_owned(),
        shown: fraction.map_or("-".to_owned(), |f| format!("{:.0}%", 100.0 * f)),
        value: fraction,
        goal: format!(">= {:.0}%", 100.0 * goal),
        pass: fraction.map(|f| f >= goal),
    }
}

/// Runs every benchmark and checks the targets.
///
/// # Errors
/// When a server cannot be started or reached, an operation fails, or a database given by
/// URL holds keys and `flush` is not set.
pub async fn run(options: &Options) -> Result<Results> {
    let server = match &options.url {
        Some(_) => None,
        None => Some(RedisServer::start().context("starting a private redis-server")?),
    };
    let url = match (&options.url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url(),
        (None, None) => unreachable!("a server was started"),
    };
    let repo = connect(&url, options.pool_size).await?;
    let keys = admin::dbsize(repo.raw_writer()).await?;
    if keys > 0 && !options.flush {
        bail!(
            "the database holds {keys} keys; the benchmark empties it: pass --flush to allow that"
        );
    }
    let limit = options.limit && limit::available();
    let options = &Options {
        limit,
        ..options.clone()
    };
    let mut run = Run {
        options,
        url,
        repo,
        results: Results::default(),
    };
    run.describe(server.is_some()).await?;
    let figures = run.phases().await?;
    run.fresh().await?;
    run.repo.close().await;
    run.results.targets = figures.targets(options.stream_tasks);
    drop(server);
    Ok(run.results)
}

/// The figures of a run that its targets are checked on; `None` (or empty) where a phase
/// did not run or measure them.
struct Figures {
    /// `get`'s fraction of the `GET` limit.
    get_fraction: Option<f64>,
    /// `append_log`'s fraction of the script's limit.
    append_fraction: Option<f64>,
    /// `append_log`'s multiple of the Python package's.
    python_ratio: Option<f64>,
    /// The appends at each scale size of log entries.
    scale: Vec<(usize, Measurement)>,
    /// The streaming client's peak memory, in MiB.
    peak_mib: Option<f64>,
    /// The longest Redis command while streaming, in microseconds.
    max_command_us: Option<i64>,
}

impl Run<'_> {
    /// Puts what the run ran on into the results' context: the server (`private`: started
    /// by the run) and its version, the concurrency, the pools, the operations, the CPUs and
    /// whether the limit is measured.
    async fn describe(&mut self, private: bool) -> Result<()> {
        let version = admin::redis_version(self.admin()).await?;
        let options = self.options;
        let context = &mut self.results.context;
        context.insert("redis_version".into(), json!(version));
        context.insert(
            "server".into(),
            json!(if private {
                "private redis-server"
            } else {
                "--url"
            }),
        );
        context.insert("concurrency".into(), json!(options.concurrency));
        context.insert("pool_size".into(), json!(options.pool_size));
        context.insert("ops".into(), json!(options.ops));
        context.insert(
            "cpus".into(),
            json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
        );
        context.insert(
            "limit".into(),
            json!(if options.limit {
                "redis-benchmark"
            } else {
                "not measured"
            }),
        );
        Ok(())
    }

    /// Runs the phases the options want, in order: the operations, the Python baseline,
    /// the listing, the scale figures and the streaming.
    async fn phases(&mut self) -> Result<Figures> {
        let (get_fraction, append_fraction) = self.operations().await?;
        let python_ratio = if self.wants("python") {
            self.python_baseline().await?
        } else {
            None
        };
        if self.wants("list") {
            self.listing().await?;
        }
        let scale = if self.wants("scale") {
            self.scale().await?
        } else {
            Vec::new()
        };
        let (peak_mib, max_command_us) = if self.wants("stream") {
            let (peak, max) = self.streaming().await?;
            (Some(peak), Some(max))
        } else {
            (None, None)
        };
        Ok(Figures {
            get_fraction,
            append_fraction,
            python_ratio,
            scale,
            peak_mib,
            max_command_us,
        })
    }
}

impl Figures {
    /// The targets of the issue, checked on these figures; the streaming ones only count
    /// when `stream_tasks` is the full 100,000.
    fn targets(&self, stream_tasks: usize) -> Vec<Target> {
        let p50 = |size: usize| {
            self.scale
                .iter()
                .find(|(s, _)| *s == size)
                .map(|(_, m)| (m.p50_us(), m.p99_us()))
        };
        let ratio = match (p50(0), p50(10_000)) {
            (Some((a50, a99)), Some((b50, b99))) => Some((b50 / a50, b99 / a99)),
            _ => None,
        };
        let full_stream = stream_tasks >= 100_000;
        let shown = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let (python_ratio, peak_mib, max_command_us) =
            (self.python_ratio, self.peak_mib, self.max_command_us);
        vec![
            // Shown, not judged: the limit's one task grows from ~1 KiB to ~70 KiB over a
            // round (the script reads all of it) where `append_log` appends to ~1 KiB
            // records, and the default write path runs no script for an append.
            Target {
                pass: None,
                ..fraction_target(
                    "mutations: append_log vs EVALSHA limit",
                    self.append_fraction,
                    0.80,
                )
            },
            fraction_target("get vs GET limit", self.get_fraction, 0.70),
            Target {
                name: "append_log vs the Python package (re-implemented)".into(),
                shown: python_ratio.map_or("-".to_owned(), |r| format!("{r:.1}x")),
                value: python_ratio,
                goal: ">= 30x".into(),
                pass: python_ratio.map(|r| r >= 30.0),
            },
            Target {
                name: "append_log p50 at 10,000 entries vs at 0".into(),
                shown: ratio.map_or("-".to_owned(), |(r50, r99)| {
                    format!("{r50:.2}x (p99 {r99:.2}x)")
                }),
                value: ratio.map(|r| r.0),
                goal: "<= 3x".into(),
                pass: ratio.map(|r| r.0 <= 3.0),
            },
            Target {
                name: format!("stream {stream_tasks} tasks: client peak memory"),
                shown: shown(peak_mib.map(|m| format!("{m:.1} MiB"))),
                value: peak_mib,
                goal: "< 64 MiB".into(),
                pass: peak_mib.filter(|_| full_stream).map(|m| m < 64.0),
            },
            Target {
                name: format!("stream {stream_tasks} tasks: longest Redis command"),
                shown: shown(max_command_us.map(|us| format!("{:.2} ms", us as f64 / 1000.0))),
                value: max_command_us.map(|us| us as f64),
                goal: "<= 10 ms".into(),
                pass: max_command_us
                    .filter(|_| full_stream)
                    .map(|us| us <= 10_000),
            },
        ]
    }
}
