//! `jobs <ID> <JOB_ID>...`.

use task_state_core::TaskRepository;

use crate::failure::Failure;

pub(crate) async fn run(
    repo: &dyn TaskRepository,
    id: &str,
    job_ids: &[String],
) -> Result<(), Failure> {
    match repo.set_jobs(id, job_ids).await? {
        Some(_) => Ok(()),
        None => Err(Failure::not_found(id)),
    }
}
