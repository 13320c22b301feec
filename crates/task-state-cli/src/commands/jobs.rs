//! `jobs <ID> <JOB_ID>...`.

use task_state_core::TaskRepository;

use crate::failure::Failure;

pub(crate) async fn run(
    repo: &dyn TaskRepository,
    id: &str,
    job_ids: &[String],
) -> Result<(), Failure> {
    // The record is not printed: the backend need not send it.
    if repo.set_jobs_ack(id, job_ids).await? {
        Ok(())
    } else {
        Err(Failure::not_found(id))
    }
}
