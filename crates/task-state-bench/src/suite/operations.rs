//! The operations' figures: each repository call measured, with the `redis-benchmark` limit
//! and the Python package's figure beside it.

use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use task_state_core::{layout, TaskRepository, TaskStatus};

use super::*;
use crate::admin;
use crate::fixtures::{self, LOG_MESSAGE};
use crate::python;
use crate::report::Row;

impl Run<'_> {
    pub(super) async fn operations(&mut self) -> Result<(Option<f64>, Option<f64>)> {
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
            let record_bytes = admin::strlen(self.admin(), &layout::record_key("1")).await?;
            let get_command = ["GET".to_owned(), layout::record_key("1")];
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

    /// The Python package's append_log (re-implemented, `python/baseline.py`) on the same
    /// server and concurrency; returns our record-returning `append_log` throughput as a
    /// multiple of it. Skipped (None) without python3, redis-py and pydantic.
    pub(super) async fn python_baseline(&mut self) -> Result<Option<f64>> {
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
}
