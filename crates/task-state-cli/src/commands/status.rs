//! `status <ID> <STATUS> [--log MSG] [--if STATUS]...`.

use task_state_core::TaskRepository;

use crate::cli::StatusArgs;
use crate::failure::Failure;

/// With `--if`, the check and the change are one atomic `transition`; a task in another
/// status is a conflict (exit 4) whose message names that status.
pub(crate) async fn run(repo: &dyn TaskRepository, args: StatusArgs) -> Result<(), Failure> {
    let log = args.log.as_deref();
    let updated = if args.only_if.is_empty() {
        repo.set_status(&args.id, args.status, log).await?
    } else {
        repo.transition(&args.id, &args.only_if, args.status, log)
            .await?
    };
    match updated {
        Some(_) => Ok(()),
        None => Err(Failure::not_found(&args.id)),
    }
}
