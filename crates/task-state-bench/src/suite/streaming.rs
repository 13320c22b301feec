//! The streaming figures: a listing streamed in batches, measured in a child process for
//! its memory.

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use task_state_core::{Scope, TaskRepositoryExt};

use super::*;
use crate::admin;
use crate::memory;
use crate::report::Row;
use crate::stats;

impl Run<'_> {
    pub(super) async fn streaming(&mut self) -> Result<(f64, i64)> {
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
