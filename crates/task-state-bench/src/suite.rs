//! The benchmark run: the operations, the `redis-benchmark` limit, the scale figures, and
//! the targets of the issue.
//!
//! The run owns its database: it empties it before each phase (operations, listing,
//! scale, streaming) and at the end, so that every listing sees exactly the tasks it made.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use task_state_core::{
    format_log_entry_at, json_string, Scope, SystemClock, TaskRepository, TaskRepositoryExt,
    TaskStatus, TaskTime,
};
use task_state_redis::testing::RedisServer;
use task_state_redis::{RedisRepositorySettings, RedisTaskRepository};

use crate::admin;
use crate::fixtures::{self, LOG_MESSAGE};
use crate::limit::{self, LimitFigure};
use crate::memory;
use crate::python;
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
        self.repo.writer()
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

    fn limit(&self, command: &[String]) -> Result<Option<LimitFigure>> {
        if !self.options.limit {
            return Ok(None);
        }
        limit::run(
            &self.url,
            self.options.concurrency,
            self.options.ops,
            command,
        )
        .map(Some)
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
                if let Some(figure) = self.limit(command)? {
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

    async fn operations(&mut self) -> Result<(Option<f64>, Option<f64>)> {
        let n = self.options.ops;
        self.fresh().await?;

        let save = on(&self.repo, |repo, i| async move {
            // Later rounds save the same tasks again: the cost of a save is the same.
            repo.save(fixtures::task_record(&task_id(i), i)).await?;
            Ok(())
        });
        let b = self.bench("save", admin::SCRIPT, save, None).await?;
        self.results
            .rows
            .push(b.row.note("record of ~1 KiB, 5 indexes"));

        let (mut get_fraction, mut append_fraction) = (None, None);
        if self.wants("get") {
            let record_bytes = admin::strlen(self.admin(), "task:1").await?;
            let get_command = ["GET".to_owned(), "task:1".to_owned()];
            let get = on(&self.repo, move |repo, i| async move {
                repo.get(&task_id(i % n)).await?.context("no record")?;
                Ok(())
            });
            let b = self.bench("get", "get", get, Some(&get_command)).await?;
            get_fraction = self.push_with_limit(
                b.row
                    .with("record_bytes", record_bytes)
                    .note(format!("GET + decode of a {record_bytes}-byte record")),
                b.limit,
                b.limit_rounds,
                "limit_get",
                "redis-benchmark GET task:1",
            );
        }

        if self.wants("set_status") {
            let set_status = on(&self.repo, move |repo, i| async move {
                repo.set_status(&task_id(i % n), TaskStatus::Running, Some(LOG_MESSAGE))
                    .await?
                    .context("no record")?;
                Ok(())
            });
            let b = self
                .bench("set_status", admin::SCRIPT, set_status, None)
                .await?;
            self.results
                .rows
                .push(b.row.note("with a log entry, returns the record"));
        }

        if self.wants("append_log") {
            let append_command = self.script_command().await?;
            let message: Arc<[String]> = Arc::new([LOG_MESSAGE.to_owned()]);
            let append = on(&self.repo, move |repo, i| {
                let message = Arc::clone(&message);
                async move {
                    ensure!(
                        repo.append_logs(&task_id(i % n), &message).await?,
                        "no task"
                    );
                    Ok(())
                }
            });
            let b = self
                .bench(
                    "append_log",
                    admin::SCRIPT,
                    append,
                    append_command.as_deref(),
                )
                .await?;
            self.check_limit_task().await?;
            let call = append_command
                .as_ref()
                .and_then(|c| c.first())
                .map_or("FCALL", String::as_str)
                .to_owned();
            append_fraction = self.push_with_limit(
                b.row
                    .note("append_logs with one message: returns no record"),
                b.limit,
                b.limit_rounds,
                &format!("limit_{}_append_log", call.to_ascii_lowercase()),
                &format!("redis-benchmark {call} append_log"),
            );
        }

        if self.wants("append_log_record") {
            let append_record = on(&self.repo, move |repo, i| async move {
                repo.append_log(&task_id(i % n), LOG_MESSAGE)
                    .await?
                    .context("no record")?;
                Ok(())
            });
            let b = self
                .bench("append_log_record", admin::SCRIPT, append_record, None)
                .await?;
            self.results
                .rows
                .push(b.row.note("append_log: returns the record"));
        }

        if self.wants("update_result") {
            let update = on(&self.repo, move |repo, i| async move {
                repo.update_result(&task_id(i % n), Some("phase=Running"), Some("rows=5000"))
                    .await?
                    .context("no record")?;
                Ok(())
            });
            let b = self
                .bench("update_result", admin::SCRIPT, update, None)
                .await?;
            self.results
                .rows
                .push(b.row.note("both fields, returns the record"));
        }

        if self.wants("transition") {
            let transition = on(&self.repo, move |repo, i| async move {
                repo.transition(
                    &task_id(i % n),
                    &[TaskStatus::Running],
                    TaskStatus::Running,
                    None,
                )
                .await?
                .context("no record")?;
                Ok(())
            });
            let b = self
                .bench("transition", admin::SCRIPT, transition, None)
                .await?;
            self.results
                .rows
                .push(b.row.note("from [running], no log entry"));
        }
        Ok((get_fraction, append_fraction))
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
    /// it with one message, on a task of its own (it appends to that one task every time):
    /// its function with FCALL where the server has Redis Functions (7.0 and later), as
    /// the repository calls it, else the script with EVALSHA.
    async fn script_command(&self) -> Result<Option<Vec<String>>> {
        if !self.options.limit {
            return Ok(None);
        }
        self.repo.save(fixtures::task_record(LIMIT_TASK, 0)).await?;
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
                    format!("task:{LIMIT_TASK}"),
                    format!("task:{LIMIT_TASK}:metadata"),
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
        let expected = fixtures::INITIAL_LOGS + self.options.ops * self.options.rounds;
        ensure!(
            logs == expected,
            "redis-benchmark's appends did not land: {logs} log entries, expected {expected}"
        );
        Ok(())
    }

    /// The Python package's append_log (re-implemented, `python/baseline.py`) on the same
    /// server and concurrency; returns our record-returning `append_log` throughput as a
    /// multiple of it. Skipped (None) without python3, redis-py and pydantic.
    async fn python_baseline(&mut self) -> Result<Option<f64>> {
        if !python::available() {
            self.progress("python baseline: skipped (needs python3 with redis and pydantic)");
            return Ok(None);
        }
        self.fresh().await?;
        let ops = self.options.ops.min(10_000);
        self.progress(&format!("python baseline: {ops} appends"));
        let figure = python::run(&self.url, self.options.concurrency, ops)?;
        let number = |key: &str| figure.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        let python_ops = number("ops_per_sec");
        self.fresh().await?;
        let ours = self
            .results
            .rows
            .iter()
            .find(|r| r.op == "append_log_record")
            .map(|r| r.ops_per_sec);
        let ratio = ours.filter(|_| python_ops > 0.0).map(|o| o / python_ops);
        self.results.rows.push(
            Row::new(
                "python_append_log",
                python_ops,
                number("p50_us"),
                number("p99_us"),
                self.options.concurrency,
            )
            .with("ops", ops)
            .note(match ratio {
                Some(r) => format!("the Python package's read-modify-write; append_log is {r:.1}x"),
                None => "the Python package's read-modify-write".to_owned(),
            }),
        );
        Ok(ratio)
    }

    async fn listing(&mut self) -> Result<()> {
        let tasks = self.options.list_tasks;
        let runs = self.options.list_runs;
        let c = self.options.concurrency.min(runs).max(1);
        self.fresh().await?;
        self.progress(&format!("list_all: filling {tasks} tasks"));
        self.fill(tasks).await?;
        self.progress(&format!("list_all: {runs} listings, {c} in flight"));
        let saved = admin::slowlog_record_all(self.admin(), 10_000).await?;
        let m = measure(
            runs,
            c,
            on(&self.repo, move |repo, _| async move {
                let list = repo.list_all().await?;
                ensure!(
                    list.records.len() == tasks && list.unreadable.is_empty(),
                    "listed {} records, {} unreadable",
                    list.records.len(),
                    list.unreadable.len()
                );
                Ok(())
            }),
        )
        .await
        .context("list_all")?;
        let slow = admin::slowlog_restore(self.admin(), &saved).await?;
        let records_per_sec = m.ops_per_sec() * tasks as f64;
        self.results.rows.push(
            row(&format!("list_{tasks}"), &m, c)
                .with("tasks", tasks)
                .with("records_per_sec", records_per_sec)
                .with("max_command_us", slow.micros)
                .with("max_command", slow.command.clone())
                .note(format!(
                    "listings/s; {records_per_sec:.0} records/s; longest command {} µs ({})",
                    slow.micros, slow.command
                )),
        );
        Ok(())
    }

    /// Serial append latency on tasks with each of the scale sizes of log entries, in
    /// interleaved rounds (the median round of each size is kept). The 0-entry point
    /// appends once to each of `scale_ops` new tasks a round; the others spread the appends
    /// over 10 prepared tasks, which grow by `rounds * scale_ops / 10` entries in all.
    async fn scale(&mut self) -> Result<Vec<(usize, Measurement)>> {
        let appends = self.options.scale_ops;
        let rounds = self.options.rounds;
        self.fresh().await?;
        let mut prepared = Vec::new();
        for &size in &self.options.scale_sizes {
            let tasks = if size == 0 { appends * rounds } else { 10 };
            let prefix = format!("scale{size}-");
            self.progress(&format!(
                "scale: preparing {tasks} tasks with {size} log entries"
            ));
            let p = prefix.clone();
            measure(
                tasks,
                self.options.fill_concurrency,
                on(&self.repo, move |repo, k| {
                    let id = format!("{p}{k}");
                    async move {
                        repo.save(fixtures::record_with_logs(&id, k, 0)).await?;
                        Ok(())
                    }
                }),
            )
            .await?;
            let batch = 500;
            let batches = size.div_ceil(batch);
            let p = prefix.clone();
            measure(
                tasks * batches,
                self.options.concurrency,
                on(&self.repo, move |repo, j| {
                    let id = format!("{p}{}", j % tasks);
                    let first = (j / tasks) * batch;
                    let messages = fixtures::messages(batch.min(size - first));
                    async move {
                        ensure!(repo.append_logs(&id, &messages).await?, "no task {id}");
                        Ok(())
                    }
                }),
            )
            .await
            .context("preparing big tasks")?;
            let record_bytes = admin::strlen(self.admin(), &format!("task:{prefix}0")).await?;
            let logs = self
                .repo
                .get(&format!("{prefix}0"))
                .await?
                .context("scale task gone")?
                .logs
                .len();
            ensure!(logs == size, "prepared {logs} log entries, wanted {size}");
            prepared.push((size, tasks, prefix, record_bytes));
        }
        let mut measured: Vec<Vec<(Measurement, Vec<admin::CommandStat>)>> =
            prepared.iter().map(|_| Vec::new()).collect();
        let message: Arc<[String]> = Arc::new([LOG_MESSAGE.to_owned()]);
        for round in 0..rounds {
            for (k, (size, tasks, prefix, _)) in prepared.iter().enumerate() {
                self.progress(&format!(
                    "scale: round {}, {appends} appends at {size} entries",
                    round + 1
                ));
                let (tasks, p, message) = (*tasks, prefix.clone(), Arc::clone(&message));
                // The 0-entry tasks are used once each: round r takes its own slice.
                let offset = if *size == 0 { round * appends } else { 0 };
                admin::reset_stats(self.admin()).await?;
                let m = measure(
                    appends,
                    1,
                    on(&self.repo, move |repo, i| {
                        let id = format!("{p}{}", (offset + i) % tasks);
                        let message = Arc::clone(&message);
                        async move {
                            ensure!(repo.append_logs(&id, &message).await?, "no task {id}");
                            Ok(())
                        }
                    }),
                )
                .await
                .context("append at scale")?;
                let server = admin::commandstats(self.admin()).await?;
                measured[k].push((m, server));
            }
        }
        let large: Vec<(usize, usize, String, i64)> = prepared
            .iter()
            .filter(|(size, ..)| *size > 0)
            .cloned()
            .collect();
        let mut points = Vec::new();
        for ((size, _, _, record_bytes), mut runs) in prepared.into_iter().zip(measured) {
            let p50s: Vec<f64> = runs.iter().map(|(m, _)| m.p50_us()).collect();
            let (m, server) = runs.swap_remove(stats::median_index(&p50s).context("no round")?);
            let evalsha = admin::find_stat(&server, admin::SCRIPT)
                .map_or(0.0, admin::CommandStat::usec_per_call);
            let inner: Vec<String> = server
                .iter()
                .filter(|s| !["evalsha", "fcall", "config", "info"].contains(&s.name.as_str()))
                .take(3)
                .map(|s| format!("{} {:.1}", s.name, s.usec as f64 / m.ops.max(1) as f64))
                .collect();
            self.results.rows.push(
                row(&format!("append_log_at_{size}"), &m, 1)
                    .with("log_entries", size)
                    .with("record_bytes", record_bytes)
                    .with("rounds_p50_us", p50s)
                    .with("server_us_per_call", evalsha)
                    .with("server_top_inner_us", inner.join(", "))
                    .note(format!(
                        "one at a time; {record_bytes} bytes; in Redis {evalsha:.1} µs/call ({})",
                        inner.join(", ")
                    )),
            );
            points.push((size, m));
        }
        for (size, tasks, prefix, record_bytes) in &large {
            self.large_record_rows(*size, *tasks, prefix, *record_bytes)
                .await?;
        }
        Ok(points)
    }

    /// `set_status` (with a log entry), `update_result` and `transition` (no entry), one at
    /// a time, on the scale tasks of `size` log entries (issue #13): rows
    /// `{op}_at_{size}`, with the EVALSHA's time inside Redis per call. A fifth as many
    /// calls as the appends at scale (at least 20), one round: each moves the whole record.
    async fn large_record_rows(
        &mut self,
        size: usize,
        tasks: usize,
        prefix: &str,
        record_bytes: i64,
    ) -> Result<()> {
        let ops = (self.options.scale_ops / 5).max(20);
        for name in ["set_status", "update_result", "transition"] {
            self.progress(&format!("scale: {ops} {name} at {size} entries"));
            let p = prefix.to_owned();
            admin::reset_stats(self.admin()).await?;
            let m = measure(
                ops,
                1,
                on(&self.repo, move |repo, i| {
                    let id = format!("{p}{}", i % tasks);
                    async move {
                        let done = match name {
                            "set_status" => {
                                repo.set_status(&id, TaskStatus::Running, Some(LOG_MESSAGE))
                                    .await?
                            }
                            "update_result" => {
                                repo.update_result(&id, Some("phase=Running"), Some("rows=5000"))
                                    .await?
                            }
                            _ => {
                                repo.transition(
                                    &id,
                                    &[TaskStatus::Pending, TaskStatus::Running],
                                    TaskStatus::Running,
                                    None,
                                )
                                .await?
                            }
                        };
                        done.context("no record")?;
                        Ok(())
                    }
                }),
            )
            .await
            .with_context(|| format!("{name} at scale"))?;
            let server = admin::commandstats(self.admin()).await?;
            let evalsha = admin::find_stat(&server, admin::SCRIPT)
                .map_or(0.0, admin::CommandStat::usec_per_call);
            self.results.rows.push(
                row(&format!("{name}_at_{size}"), &m, 1)
                    .with("log_entries", size)
                    .with("record_bytes", record_bytes)
                    .with("server_us_per_call", evalsha)
                    .note(format!(
                        "one at a time, returns the record; ~{record_bytes} bytes; in Redis \
                         {evalsha:.1} µs/call"
                    )),
            );
        }
        Ok(())
    }

    async fn streaming(&mut self) -> Result<(f64, i64)> {
        let tasks = self.options.stream_tasks;
        let fill = self.options.fill_concurrency;
        self.fresh().await?;
        self.progress(&format!(
            "stream: filling {tasks} tasks, {fill} saves in flight"
        ));
        let m = self.fill(tasks).await?;
        self.results
            .rows
            .push(row(&format!("save_fill_{tasks}"), &m, fill).note(format!(
                "filling the store: {:.1} s",
                m.elapsed.as_secs_f64()
            )));
        self.progress("stream: streaming in a child process");
        let saved = admin::slowlog_record_all(self.admin(), 10_000).await?;
        let probe = self.stream_child().await;
        let slow = admin::slowlog_restore(self.admin(), &saved).await?;
        let probe = probe?;
        let get = |k: &str| probe.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        ensure!(
            get("records") as usize == tasks && get("errors") == 0.0,
            "streamed {} records, {} errors",
            get("records"),
            get("errors")
        );
        let peak_mib = memory::mib(get("peak_rss_bytes") as u64);
        let start_mib = memory::mib(get("start_rss_bytes") as u64);
        let batch = self.options.stream_batch;
        self.results.rows.push(
            Row::new(
                format!("stream_{tasks}"),
                get("records_per_sec"),
                get("batch_p50_us"),
                get("batch_p99_us"),
                1,
            )
            .with("records", tasks)
            .with("batch", batch)
            .with("elapsed_s", get("elapsed_s"))
            .with("peak_rss_mib", peak_mib)
            .with("start_rss_mib", start_mib)
            .with("max_command_us", slow.micros)
            .with("max_command", slow.command.clone())
            .with("slowlog_entries", slow.entries)
            .note(format!(
                "records/s; latency per batch of {batch}; peak RSS {peak_mib:.1} MiB \
                 (at start {start_mib:.1}); longest command {} µs ({})",
                slow.micros, slow.command
            )),
        );
        Ok((peak_mib, slow.micros))
    }

    /// Runs [`stream_probe`] in a new process of this binary, so that its peak memory is
    /// that of streaming alone.
    async fn stream_child(&self) -> Result<Value> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let args = vec![
            "--stream-probe".to_owned(),
            "--url".to_owned(),
            self.url.clone(),
            "--pool-size".to_owned(),
            self.options.pool_size.to_string(),
            "--stream-batch".to_owned(),
            self.options.stream_batch.to_string(),
        ];
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
        })
        .await?
        .context("running the stream probe")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "stream probe failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        serde_json::from_str(stdout.trim()).with_context(|| format!("stream probe said {stdout:?}"))
    }
}

/// Connects a repository to `url` with `pool_size` connections a pool.
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect(url: &str, pool_size: usize) -> Result<RedisTaskRepository> {
    let settings = RedisRepositorySettings::builder()
        .with_write_url(url)
        .with_pool_size(pool_size)
        .with_command_timeout(Duration::from_secs(60))
        .build()?;
    Ok(RedisTaskRepository::connect(settings).await?)
}

/// Streams every task of `url` with [`TaskRepositoryExt::stream`] in batches of `batch`,
/// and returns what it saw as JSON: `records`, `errors`, `elapsed_s`, `records_per_sec`,
/// `batch_p50_us`, `batch_p99_us` (time per `batch` records), `start_rss_bytes` and
/// `peak_rss_bytes` (this process's `VmRSS` before and `VmHWM` after).
///
/// # Errors
/// When the server cannot be reached.
pub async fn stream_probe(url: &str, pool_size: usize, batch: usize) -> Result<Value> {
    let start_rss = memory::rss_bytes().unwrap_or(0);
    let repo = connect(url, pool_size).await?;
    let mut hist = stats::histogram();
    let (mut records, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    let mut batch_start = start;
    let mut stream = repo.stream(Scope::All, batch);
    while let Some(item) = stream.next().await {
        match item {
            Ok(record) => {
                std::hint::black_box(&record);
                records += 1;
            }
            Err(_) => errors += 1,
        }
        if (records + errors) % batch as u64 == 0 {
            stats::record(&mut hist, batch_start.elapsed());
            batch_start = Instant::now();
        }
    }
    drop(stream);
    let elapsed = start.elapsed();
    let peak = memory::peak_rss_bytes().unwrap_or(0);
    repo.close().await;
    Ok(json!({
        "records": records,
        "errors": errors,
        "elapsed_s": elapsed.as_secs_f64(),
        "records_per_sec": records as f64 / elapsed.as_secs_f64().max(1e-9),
        "batch_p50_us": hist.value_at_quantile(0.5) as f64 / 1000.0,
        "batch_p99_us": hist.value_at_quantile(0.99) as f64 / 1000.0,
        "start_rss_bytes": start_rss,
        "peak_rss_bytes": peak,
    }))
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
    let keys = admin::dbsize(repo.writer()).await?;
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
    let version = admin::redis_version(run.admin()).await?;
    let context = &mut run.results.context;
    context.insert("redis_version".into(), json!(version));
    context.insert(
        "server".into(),
        json!(if server.is_some() {
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
        json!(if limit {
            "redis-benchmark"
        } else {
            "not measured"
        }),
    );

    let (get_fraction, append_fraction) = run.operations().await?;
    let python_ratio = if run.wants("python") {
        run.python_baseline().await?
    } else {
        None
    };
    if run.wants("list") {
        run.listing().await?;
    }
    let scale = if run.wants("scale") {
        run.scale().await?
    } else {
        Vec::new()
    };
    let (peak_mib, max_command_us) = if run.wants("stream") {
        let (peak, max) = run.streaming().await?;
        (Some(peak), Some(max))
    } else {
        (None, None)
    };
    run.fresh().await?;
    run.repo.close().await;

    let p50 = |size: usize| {
        scale
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, m)| (m.p50_us(), m.p99_us()))
    };
    let ratio = match (p50(0), p50(10_000)) {
        (Some((a50, a99)), Some((b50, b99))) => Some((b50 / a50, b99 / a99)),
        _ => None,
    };
    let stream_tasks = options.stream_tasks;
    let full_stream = stream_tasks >= 100_000;
    let shown = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    run.results.targets = vec![
        fraction_target(
            "mutations: append_log vs EVALSHA limit",
            append_fraction,
            0.80,
        ),
        fraction_target("get vs GET limit", get_fraction, 0.70),
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
    ];
    drop(server);
    Ok(run.results)
}
