//! `log <ID> <MESSAGE>`, and `log <ID> -` to pipe a job's output into the task's log.

use std::time::Duration;

use task_state_core::{validate_task_id, TaskRepository};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::failure::{Exit, Failure};

/// Lines sent in one `append_logs` at most: one round trip for a fast producer.
const BATCH_LINES: usize = 100;
/// A slow producer's lines are sent once it has been quiet this long, so that the log
/// follows the job as it runs.
const PAUSE: Duration = Duration::from_millis(200);

pub(crate) async fn run(repo: &dyn TaskRepository, id: &str, message: &str) -> Result<(), Failure> {
    if message == "-" {
        return append_lines(repo, id, tokio::io::stdin()).await;
    }
    // The record is not printed: the backend need not send it.
    if repo.append_log_ack(id, message).await? {
        Ok(())
    } else {
        Err(Failure::not_found(id))
    }
}

/// Appends each line of `input` as one entry, in order, in batches; stops at the first
/// batch that finds the task gone (exit 3).
pub(crate) async fn append_lines(
    repo: &dyn TaskRepository,
    id: &str,
    input: impl AsyncRead + Unpin,
) -> Result<(), Failure> {
    validate_task_id(id)?;
    let mut input = BufReader::new(input);
    let mut batch = Batch {
        repo,
        id,
        lines: Vec::with_capacity(BATCH_LINES),
        sent: false,
    };
    let mut line = Vec::new();
    loop {
        // `read_until` keeps what it read in `line` when the timeout drops it, so a line
        // that arrives in pieces is not lost.
        let read = if batch.lines.is_empty() {
            Some(input.read_until(b'\n', &mut line).await)
        } else {
            tokio::time::timeout(PAUSE, input.read_until(b'\n', &mut line))
                .await
                .ok()
        };
        match read {
            None => batch.send().await?,
            Some(Ok(0)) => {
                if !line.is_empty() {
                    batch.push(&mut line);
                }
                return batch.finish().await;
            }
            Some(Ok(_)) => {
                if line.ends_with(b"\n") {
                    batch.push(&mut line);
                    if batch.lines.len() >= BATCH_LINES {
                        batch.send().await?;
                    }
                }
            }
            Some(Err(e)) => {
                batch.send().await?;
                return Err(Failure::new(Exit::Error, format!("cannot read stdin: {e}")));
            }
        }
    }
}

struct Batch<'a> {
    repo: &'a dyn TaskRepository,
    id: &'a str,
    lines: Vec<String>,
    sent: bool,
}

impl Batch<'_> {
    /// Takes `line` without its line ending; bytes that are not UTF-8 become U+FFFD.
    fn push(&mut self, line: &mut Vec<u8>) {
        let mut end = line.len();
        if line[..end].ends_with(b"\n") {
            end -= 1;
        }
        if line[..end].ends_with(b"\r") {
            end -= 1;
        }
        self.lines
            .push(String::from_utf8_lossy(&line[..end]).into_owned());
        line.clear();
    }

    async fn send(&mut self) -> Result<(), Failure> {
        if self.lines.is_empty() {
            return Ok(());
        }
        if !self.repo.append_logs(self.id, &self.lines).await? {
            return Err(Failure::not_found(self.id));
        }
        tracing::debug!(lines = self.lines.len(), "appended");
        self.lines.clear();
        self.sent = true;
        Ok(())
    }

    /// Sends the rest; with no input at all, still tells whether the task exists.
    async fn finish(mut self) -> Result<(), Failure> {
        if !self.sent && self.lines.is_empty() {
            if !self.repo.append_logs(self.id, &[]).await? {
                return Err(Failure::not_found(self.id));
            }
            return Ok(());
        }
        self.send().await
    }
}
