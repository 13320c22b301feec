//! `next-id [--peek]`.

use task_state_core::TaskRepository;

use crate::failure::Failure;
use crate::output::Output;

pub(crate) async fn run(
    repo: &dyn TaskRepository,
    peek: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let id = if peek {
        repo.peek_next_task_id().await?
    } else {
        repo.next_task_id().await?
    };
    Ok(out.line(&id)?)
}
