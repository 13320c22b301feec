//! The whole conformance suite on a real Redis: every check as its own test on a fresh
//! private server, once on the repository itself and once through `Arc<dyn TaskRepository>`.

mod common;

use std::sync::Arc;

use task_state_core::conformance;
use task_state_core::TaskRepository;

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        mod direct {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_server, repo)) = common::fresh().await else { return };
                    conformance::$check(&repo).await;
                }
            )*
        }

        mod through_arc_dyn {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_server, repo)) = common::fresh().await else { return };
                    let repo: Arc<dyn TaskRepository> = Arc::new(repo);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes() {
    let Some((_server, repo)) = common::fresh().await else {
        return;
    };
    conformance::run_all(&repo).await;
}
