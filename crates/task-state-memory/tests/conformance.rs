//! The whole conformance suite on the in-memory backend: every check as its own test, once
//! on the repository itself and once through `Arc<dyn TaskRepository>` (the trait's
//! forwarding impl), each on a fresh store.

use std::sync::Arc;

use task_state_core::conformance;
use task_state_core::{ManualClock, TaskRepository, Zone};
use task_state_memory::InMemoryTaskRepository;

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        mod direct {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let repo = InMemoryTaskRepository::default();
                    conformance::$check(&repo).await;
                }
            )*
        }

        mod through_arc_dyn {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let repo: Arc<dyn TaskRepository> = Arc::new(InMemoryTaskRepository::default());
                    conformance::$check(&repo).await;
                }
            )*
        }
    };
}

conformance_tests!(
    task_id_sequence,
    save_and_get_round_trip,
    create_refuses_an_existing_task,
    resave_moves_between_listings,
    delete_removes_from_every_listing,
    set_status_with_and_without_log,
    transition_applies_or_conflicts,
    transition_rejects_empty_from,
    append_log_keeps_order_and_form,
    append_logs_appends_in_order,
    update_result_is_additive,
    set_jobs_replaces_jobs,
    missing_tasks_are_not_created,
    invalid_names_are_rejected,
    longest_names_are_accepted,
    list_by_ids_skips_and_reports,
    listings_are_sorted,
    stream_matches_list,
    unknown_fields_and_parameters_survive,
    concurrent_appends_keep_every_line,
    concurrent_result_updates_keep_both_fields,
    concurrent_transitions_have_one_winner,
);

/// Every check in one store, as a shared Redis key space runs them.
#[tokio::test]
async fn run_all_in_one_store() {
    conformance::run_all(&InMemoryTaskRepository::default()).await;
}

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
