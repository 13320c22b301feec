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
    /// Measures each operation the options want (`save` always, to make the tasks the
    /// others work on), in order; returns `get`'s and `append_log`'s fractions of their
    /// limits, where measured.
    pub(super) async fn operations(&mut self) -> Result<(Option<f64>, Option<f64>)> {
        self.fresh().await?;
        self.save_row().await?;
        let get_fraction = if self.wants("get") {
            self.get_row().await?
        } else {
            None
        };
        if self.wants("set_status") {
            self.set_status_row().await?;
        }
        let append_fraction = if self.wants("append_log") {
            self.append_log_row().await?
        } else {
            None
        };
        if self.wants("append_log_record") {
            self.append_log_record_row().await?;
        }
        if self.wants("update_result") {
            self.update_result_row().await?;
        }
        if self.wants("transition") {
            self.transition_row().await?;
        }
        Ok((get_fraction, append_fraction))
    }

    /// Measures `op`, a mutation by a script with no limit beside it, as `name`, and pushes
    /// its row with `note`.
    async fn script_row<F, Fut>(&mut self, name: &str, note: &str, op: F) -> Result<()>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let b = self.bench(name, admin::SCRIPT, op, None).await?;
        self.results.rows.push(b.row.note(note));
        Ok(())
    }

    /// `save` of tasks `1..=ops`: the tasks the other operations work on.
    async fn save_row(&mut self) -> Result<()> {
        let save = on(&self.repo, |repo, i| async move {
            // Later rounds save the same tasks again: the cost of a save is the same.
            repo.save(fixtures::task_record(&task_id(i), i)).await?;
            Ok(())
        });
        self.script_row("save", "record of ~1 KiB, 5 indexes", save)
            .await
    }

    /// `get`, beside the limit of a `GET` of the record; returns its fraction of the limit.
    async fn get_row(&mut self) -> Result<Option<f64>> {
        let n = self.options.ops;
        let record_bytes = admin::strlen(self.admin(), &layout::record_key("1")).await?;
        let get_command = ["GET".to_owned(), layout::record_key("1")];
        let get = on(&self.repo, move |repo, i| async move {
            repo.get(&task_id(i % n)).await?.context("no record")?;
            Ok(())
        });
        let b = self.bench("get", "get", get, Some(&get_command)).await?;
        Ok(self.push_with_limit(
            b.row
                .with("record_bytes", record_bytes)
                .note(format!("GET + decode of a {record_bytes}-byte record")),
            b.limit,
            b.limit_rounds,
            "limit_get",
            "redis-benchmark GET task:1",
        ))
    }

    /// `set_status` with a log entry.
    async fn set_status_row(&mut self) -> Result<()> {
        let n = self.options.ops;
        let set_status = on(&self.repo, move |repo, i| async move {
            repo.set_status(&task_id(i % n), TaskStatus::Running, Some(LOG_MESSAGE))
                .await?
                .context("no record")?;
            Ok(())
        });
        self.script_row(
            "set_status",
            "with a log entry, returns the record",
            set_status,
        )
        .await
    }

    /// `append_logs` with one message, beside the limit of the script's call by
    /// `redis-benchmark` ([`Run::script_command`]); returns its fraction of the limit.
    async fn append_log_row(&mut self) -> Result<Option<f64>> {
        let n = self.options.ops;
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
        Ok(self.push_with_limit(
            b.row
                .note("append_logs with one message: returns no record"),
            b.limit,
            b.limit_rounds,
            &format!("limit_{}_append_log", call.to_ascii_lowercase()),
            &format!(
                "redis-benchmark {call} append_log on one task: {} calls a round from ~1 KiB",
                self.limit_appends()
            ),
        ))
    }

    /// `append_log`, which returns the record.
    async fn append_log_record_row(&mut self) -> Result<()> {
        let n = self.options.ops;
        let append_record = on(&self.repo, move |repo, i| async move {
            repo.append_log(&task_id(i % n), LOG_MESSAGE)
                .await?
                .context("no record")?;
            Ok(())
        });
        let note = "append_log: returns the record";
        self.script_row("append_log_record", note, append_record)
            .await
    }

    /// `update_result` of both fields.
    async fn update_result_row(&mut self) -> Result<()> {
        let n = self.options.ops;
        let update = on(&self.repo, move |repo, i| async move {
            repo.update_result(&task_id(i % n), Some("phase=Running"), Some("rows=5000"))
                .await?
                .context("no record")?;
            Ok(())
        });
        self.script_row("update_result", "both fields, returns the record", update)
            .await
    }

    /// `transition` from running to running, with no log entry.
    async fn transition_row(&mut self) -> Result<()> {
        let n = self.options.ops;
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
        self.script_row("transition", "from [running], no log entry", transition)
            .await
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
