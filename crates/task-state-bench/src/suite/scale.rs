//! The listing and scale figures: listings of growing stores, appends to growing logs,
//! large records.

use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use task_state_core::{layout, TaskRepository, TaskStatus};

use super::*;
use crate::admin;
use crate::fixtures::{self, LOG_MESSAGE};
use crate::stats::{self, measure, Measurement};

impl Run<'_> {
    pub(super) async fn listing(&mut self) -> Result<()> {
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
    pub(super) async fn scale(&mut self) -> Result<Vec<(usize, Measurement)>> {
        self.fresh().await?;
        let mut prepared = Vec::new();
        for &size in &self.options.scale_sizes {
            prepared.push(self.prepare_scale(size).await?);
        }
        let measured = self.scale_rounds(&prepared).await?;
        let mut points = Vec::new();
        for (point, runs) in prepared.iter().zip(measured) {
            points.push((point.size, self.push_scale_row(point, runs)?));
        }
        for point in prepared.iter().filter(|p| p.size > 0) {
            self.large_record_rows(point).await?;
        }
        Ok(points)
    }

    /// Prepares the tasks of the scale point of `size` log entries (`scale_ops * rounds` of
    /// them at 0 entries, 10 else): saves them, appends their entries in batches of 500, and
    /// checks the first.
    async fn prepare_scale(&self, size: usize) -> Result<ScaleTasks> {
        let tasks = if size == 0 {
            self.options.scale_ops * self.options.rounds
        } else {
            10
        };
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
        let record_bytes =
            admin::strlen(self.admin(), &layout::record_key(&format!("{prefix}0"))).await?;
        let logs = self
            .repo
            .get(&format!("{prefix}0"))
            .await?
            .context("scale task gone")?
            .logs
            .len();
        ensure!(logs == size, "prepared {logs} log entries, wanted {size}");
        Ok(ScaleTasks {
            size,
            tasks,
            prefix,
            record_bytes,
        })
    }

    /// The rounds of appends at scale: in each round, `scale_ops` appends one at a time to
    /// the tasks of each point of `prepared` in turn; the rounds of each point, in its order.
    async fn scale_rounds(&self, prepared: &[ScaleTasks]) -> Result<Vec<Rounds>> {
        let appends = self.options.scale_ops;
        let mut measured: Vec<Rounds> = prepared.iter().map(|_| Vec::new()).collect();
        let message: Arc<[String]> = Arc::new([LOG_MESSAGE.to_owned()]);
        for round in 0..self.options.rounds {
            for (k, point) in prepared.iter().enumerate() {
                let size = point.size;
                self.progress(&format!(
                    "scale: round {}, {appends} appends at {size} entries",
                    round + 1
                ));
                let (tasks, p, message) = (point.tasks, point.prefix.clone(), Arc::clone(&message));
                // The 0-entry tasks are used once each: round r takes its own slice.
                let offset = if size == 0 { round * appends } else { 0 };
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
        Ok(measured)
    }

    /// Pushes the row `append_log_at_{size}` of the point `point`, from the median of its
    /// `runs` by p50, with the server's time per call ([`admin::server_us_per_op`]) and the
    /// three commands it spent most in; returns that median round.
    fn push_scale_row(&mut self, point: &ScaleTasks, mut runs: Rounds) -> Result<Measurement> {
        let (size, record_bytes) = (point.size, point.record_bytes);
        let p50s: Vec<f64> = runs.iter().map(|(m, _)| m.p50_us()).collect();
        let (m, server) = runs.swap_remove(stats::median_index(&p50s).context("no round")?);
        let evalsha = admin::server_us_per_op(&server, m.ops);
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
        Ok(m)
    }

    /// `set_status` (with a log entry), `update_result` and `transition` (no entry), one at
    /// a time, on the scale tasks `point` of `size` log entries (issue #13): rows
    /// `{op}_at_{size}`, with the server's time per call ([`admin::server_us_per_op`]). A fifth as many
    /// calls as the appends at scale (at least 20), one round: each moves the whole record.
    async fn large_record_rows(&mut self, point: &ScaleTasks) -> Result<()> {
        let (size, tasks, record_bytes) = (point.size, point.tasks, point.record_bytes);
        let ops = (self.options.scale_ops / 5).max(20);
        for name in ["set_status", "update_result", "transition"] {
            self.progress(&format!("scale: {ops} {name} at {size} entries"));
            let p = point.prefix.clone();
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
            let evalsha = admin::server_us_per_op(&server, m.ops);
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
}

/// The tasks of a scale point: `tasks` tasks `{prefix}0`, `{prefix}1`, ... with `size` log
/// entries each, records of `record_bytes` bytes (the first one's).
#[derive(Debug)]
struct ScaleTasks {
    size: usize,
    tasks: usize,
    prefix: String,
    record_bytes: i64,
}

/// The measured rounds of a scale point, each with the server's command statistics.
type Rounds = Vec<(Measurement, Vec<admin::CommandStat>)>;
