//! The whole conformance suite on the in-memory backend: every check as its own test, once
//! on the repository itself and once through `Arc<dyn TaskRepository>` (the trait's
//! forwarding impl), each on a fresh store.

use std::sync::Arc;

use task_state_core::conformance::{self, async_trait, RawRecords};
use task_state_core::{ManualClock, TaskRepository, Zone};
use task_state_memory::InMemoryTaskRepository;

async fn fresh() -> Option<((), InMemoryTaskRepository)> {
    Some(((), InMemoryTaskRepository::default()))
}

/// Plants raw records with `insert_raw`, indexed under a service and user of the suite's own.
struct Raw(InMemoryTaskRepository);

#[async_trait]
impl RawRecords for Raw {
    async fn plant_raw(&self, task_id: &str, text: &str) {
        self.0
            .insert_raw(task_id, "cf-raw-svc", "cf-raw-user", text)
            .expect("plant a raw record");
    }
}

fn raw(_: &(), repo: &InMemoryTaskRepository) -> Raw {
    Raw(repo.clone())
}

task_state_core::conformance_tests!(fresh, raw_records = raw);

/// The suite does not depend on the clock or the zone: a clock that never moves, in a zone
/// with daylight saving time, through `Box<dyn TaskRepository>`.
#[tokio::test]
async fn run_all_with_a_still_clock_in_another_zone() {
    let clock = ManualClock::new("2025-03-09T06:59:59.999999Z".parse().unwrap());
    let repo: Box<dyn TaskRepository> = Box::new(
        InMemoryTaskRepository::builder()
            .zone(Zone::named("America/New_York").unwrap())
            .clock(Arc::new(clock))
            .build(),
    );
    conformance::run_all(&repo).await;
}

#[tokio::test]
async fn new_records_use_the_jobs_field() {
    use task_state_core::JobsField;
    for field in [JobsField::Jobs, JobsField::ActiveJobs] {
        let repo = task_state_memory::InMemoryTaskRepository::builder()
            .jobs_field(field)
            .build();
        task_state_core::conformance::new_records_use_the_jobs_field(&repo, field).await;
    }
}
