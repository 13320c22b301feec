//! `status <ID> [<STATUS> [--log MSG] [--if STATUS]...]`.

use task_state_core::TaskRepository;

use crate::cli::StatusArgs;
use crate::failure::Failure;
use crate::output::Output;

/// Without a new status, prints the current one (read from the read URL), so that
/// `s=$(task-state status "$id")` works. With `--if`, the check and the change are one
/// atomic `transition`; a task in another status is a conflict (exit 4) whose message
/// names that status.
pub(crate) async fn run(
    repo: &dyn TaskRepository,
    args: StatusArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let Some(status) = args.status else {
        let record = repo
            .get(&args.id)
            .await?
            .ok_or_else(|| Failure::not_found(&args.id))?;
        return Ok(out.line(record.status.as_str())?);
    };
    let log = args.log.as_deref();
    // The record is not printed: the backend need not send it.
    let applied = if args.only_if.is_empty() {
        repo.set_status_ack(&args.id, status, log).await?
    } else {
        repo.transition_ack(&args.id, &args.only_if, status, log)
            .await?
    };
    if applied {
        Ok(())
    } else {
        Err(Failure::not_found(&args.id))
    }
}
