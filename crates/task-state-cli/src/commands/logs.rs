//! `logs <ID> [--tail N] [--since TIME] [--follow [--interval SECONDS]]`.

use std::time::Duration;

use task_state_core::jiff::Timestamp;
use task_state_core::{Error, LogEntry, TaskRepository};

use crate::cli::LogsArgs;
use crate::failure::{Exit, Failure};
use crate::output::Output;

/// Prints the entries that `--since` and `--tail` select; with `--follow`, then polls every
/// `--interval` and prints the entries added since, until the task reaches a terminal
/// status (exit 0) or Ctrl-C (exit 130).
pub(crate) async fn run(
    repo: &dyn TaskRepository,
    args: LogsArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let selection = Selection {
        since: args.since.map(|since| since.resolve(Timestamp::now())),
        tail: args.tail,
    };
    if !args.follow {
        let record = repo
            .get(&args.id)
            .await?
            .ok_or_else(|| Failure::not_found(&args.id))?;
        return selection.print_first(out, &record.logs).map(drop);
    }
    let interrupted = tokio::select! {
        result = follow_until_terminal(repo, &args.id, args.interval, &selection, out) => return result,
        signal = tokio::signal::ctrl_c() => signal.is_ok(),
    };
    out.flush()?;
    if interrupted {
        Err(Failure::silent(Exit::Interrupted))
    } else {
        Err(Failure::new(Exit::Error, "cannot listen for Ctrl-C"))
    }
}

/// Which entries to print.
struct Selection {
    /// Only entries written at or after this; entries whose time cannot be read are left
    /// out when it is set.
    since: Option<Timestamp>,
    /// Of the first read, only the last this many.
    tail: Option<usize>,
}

impl Selection {
    fn wanted(&self, entry: &str) -> bool {
        match self.since {
            None => true,
            Some(since) => LogEntry::parse(entry).is_ok_and(|e| e.at.timestamp() >= since),
        }
    }

    /// Prints the selected entries of the first read and returns how many entries there
    /// are, the position from which later reads print.
    fn print_first(&self, out: &mut Output, logs: &[String]) -> Result<usize, Failure> {
        let wanted: Vec<&String> = logs.iter().filter(|e| self.wanted(e)).collect();
        let skip = self
            .tail
            .map_or(0, |tail| wanted.len().saturating_sub(tail));
        for entry in &wanted[skip..] {
            out.log_entry(entry)?;
        }
        Ok(logs.len())
    }

    /// Prints the entries from `start` on and returns the next `start`.
    fn print_new(&self, out: &mut Output, logs: &[String], start: usize) -> Result<usize, Failure> {
        for entry in logs.iter().skip(start).filter(|e| self.wanted(e)) {
            out.log_entry(entry)?;
        }
        // A record replaced by a shorter one: print from its new end, nothing twice.
        Ok(logs.len())
    }
}

/// Reads the record every `interval` and prints what was appended. The record is read
/// whole (the repository contract has no read of a log's tail), but only new entries are
/// printed. A lost connection (a restarted server, a failover) is waited out with a
/// warning on stderr: the client reconnects by itself, and following goes on.
async fn follow_until_terminal(
    repo: &dyn TaskRepository,
    id: &str,
    interval: Duration,
    selection: &Selection,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut printed: Option<usize> = None;
    let mut lost = false;
    loop {
        let record = match repo.get(id).await {
            Ok(Some(record)) => record,
            Ok(None) if printed.is_none() => return Err(Failure::not_found(id)),
            Ok(None) => {
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("task {id:?} was deleted"),
                ))
            }
            Err(e @ Error::Backend { .. }) if printed.is_some() => {
                if !lost {
                    tracing::warn!("lost Redis, still following: {e}");
                    lost = true;
                }
                tokio::time::sleep(interval).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if lost {
            tracing::warn!("Redis is back, following again");
            lost = false;
        }
        printed = Some(match printed {
            None => selection.print_first(out, &record.logs)?,
            Some(start) => selection.print_new(out, &record.logs, start)?,
        });
        out.flush()?;
        if record.status.is_terminal() {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}
