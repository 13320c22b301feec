//! `users <SERVICE>`.

use task_state_core::TaskRepository;

use crate::failure::Failure;
use crate::output::Output;

/// One user a line, sorted: a list, so that `for u in $(task-state users render)` works.
/// Control characters are escaped, as in every human output (a name with a line break could
/// not be one a line anyway).
pub(crate) async fn run(
    repo: &dyn TaskRepository,
    service: &str,
    out: &mut Output,
) -> Result<(), Failure> {
    for user in repo.list_users_by_service(service).await? {
        out.text(&user)?;
    }
    Ok(())
}
