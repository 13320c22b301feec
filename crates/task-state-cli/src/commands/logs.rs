//! `logs <ID> [--follow]`.

use std::time::Duration;

use task_state_core::TaskRepository;

use crate::failure::{Exit, Failure};
use crate::output::Output;

/// Prints the entries; with `follow`, polls every `follow` and prints new ones until the
/// task reaches a terminal status (exit 0) or Ctrl-C (exit 130).
pub(crate) async fn run(
    repo: &dyn TaskRepository,
    id: &str,
    follow: Option<Duration>,
    out: &mut Output,
) -> Result<(), Failure> {
    let Some(interval) = follow else {
        let record = repo.get(id).await?.ok_or_else(|| Failure::not_found(id))?;
        return print_from(out, &record.logs, 0).map(drop);
    };
    let interrupted = tokio::select! {
        result = follow_until_terminal(repo, id, interval, out) => return result,
        signal = tokio::signal::ctrl_c() => signal.is_ok(),
    };
    out.flush()?;
    if interrupted {
        Err(Failure::silent(Exit::Interrupted))
    } else {
        Err(Failure::new(Exit::Error, "cannot listen for Ctrl-C"))
    }
}

async fn follow_until_terminal(
    repo: &dyn TaskRepository,
    id: &str,
    interval: Duration,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut printed = 0;
    let mut first = true;
    loop {
        let record = match repo.get(id).await? {
            Some(record) => record,
            None if first => return Err(Failure::not_found(id)),
            None => {
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("task {id:?} was deleted"),
                ))
            }
        };
        first = false;
        printed = print_from(out, &record.logs, printed)?;
        out.flush()?;
        if record.status.is_terminal() {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

/// Prints the entries from `start` on and returns how many there are (the next `start`).
fn print_from(out: &mut Output, logs: &[String], start: usize) -> Result<usize, Failure> {
    for entry in logs.iter().skip(start) {
        out.log_entry(entry)?;
    }
    Ok(logs.len())
}
