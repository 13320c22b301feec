//! `delete <ID>`.

use task_state_core::TaskRepository;

use crate::failure::Failure;

/// Deleting a task that is not there exits 3, so that a script notices a wrong id.
pub(crate) async fn run(repo: &dyn TaskRepository, id: &str) -> Result<(), Failure> {
    if repo.delete(id).await? {
        Ok(())
    } else {
        Err(Failure::not_found(id))
    }
}
