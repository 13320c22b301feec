//! The conformance suite: every sentence of the [`TaskRepository`] docs as a check that each
//! backend runs, so that the backends (and the in-memory fake) never drift apart.
//!
//! Each check is a `pub async fn` taking `&dyn TaskRepository` that panics with a message
//! naming the check and the broken promise. A backend's tests run each one as its own test,
//! or all of them with [`run_all`]:
//!
//! ```ignore
//! #[tokio::test]
//! async fn append_log_keeps_order_and_form() {
//!     let repo = MyRepository::for_tests().await;
//!     task_state_core::conformance::append_log_keeps_order_and_form(&repo).await;
//! }
//! ```
//!
//! The checks share nothing: each uses its own task ids, services and users (all starting
//! with `cf-`), so they may run one after another in one store. Only [`task_id_sequence`]
//! needs a store whose id counter was never used.
//!
//! The repository's clock and zone are unknown here, so timestamps are checked for their
//! form (they parse, they carry an offset, they are written as Python's `isoformat()` writes
//! them) and never for their value, except that `updated_at` must not go backwards.

mod ack;
mod concurrency;
mod edits;
mod listings;
mod names;
mod preservation;
mod raw;
mod records;
mod support;

/// The attribute that [`RawRecords`] implementations need, re-exported so that a backend's
/// tests need no dependency of their own for it.
pub use async_trait::async_trait;

pub use ack::*;
pub use concurrency::*;
pub use edits::*;
pub use listings::*;
pub use names::*;
pub use preservation::*;
pub use raw::*;
pub use records::*;

use crate::TaskRepository;

/// Generates the whole suite as tests: one `#[tokio::test]` per check on a fresh
/// repository, once on the repository itself and once through `Arc<dyn TaskRepository>`,
/// and [`run_all`] once. A backend's test file names an async function that makes a fresh
/// repository, returning `Some((guard, repo))` (the guard, such as a private server, lives
/// as long as the test) or `None` to skip:
///
/// ```ignore
/// async fn fresh() -> Option<((), MyRepository)> {
///     Some(((), MyRepository::default()))
/// }
/// task_state_core::conformance_tests!(fresh);
/// ```
///
/// The list of checks lives here only, so a new check runs on every backend at once.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@each $setup;
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
            empty_log_entry_appends_nothing,
            ack_mutations_apply_and_say_so,
            ack_mutations_refuse_as_the_others_do,
            ack_mutations_of_missing_tasks_are_false,
        );
    };
    ($setup:path, raw_records = $raw:path) => {
        $crate::conformance_tests!($setup);
        $crate::conformance_tests!(@raw $setup, $raw;
            empty_stored_record_is_none,
            empty_stored_record_is_absent_from_listings,
            empty_stored_record_is_absent_to_mutations,
            values_kept_as_text_hold_any_json,
            missing_timestamps_read_as_now_in_the_zone,
            empty_stored_record_is_absent_to_ack_mutations,
        );
    };
    (@raw $setup:path, $raw:path; $($check:ident),* $(,)?) => {
        mod raw_records {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, repo)) = $setup().await else { return };
                    let raw = $raw(&_guard, &repo);
                    $crate::conformance::$check(&repo, &raw).await;
                }
            )*
        }
    };
    (@each $setup:path; $($check:ident),* $(,)?) => {
        mod direct {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, repo)) = $setup().await else { return };
                    $crate::conformance::$check(&repo).await;
                }
            )*
        }

        mod through_arc_dyn {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((_guard, repo)) = $setup().await else { return };
                    let repo: ::std::sync::Arc<dyn $crate::TaskRepository> =
                        ::std::sync::Arc::new(repo);
                    $crate::conformance::$check(&repo).await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn run_all_in_one_store() {
            let Some((_guard, repo)) = $setup().await else { return };
            $crate::conformance::run_all(&repo).await;
        }
    };
}

/// The hook of the checks that need a record no repository method would write: it stores
/// `text` under the record key of `task_id` (`task:{id}`) exactly as given, as another writer
/// might, bypassing the repository. Whether index entries come with it is up to the backend.
///
/// A backend's tests implement it on a small type of their own and name a function that
/// makes one from the fresh store, `fn(&guard, &repo) -> impl RawRecords`:
/// `task_state_core::conformance_tests!(fresh, raw_records = raw);`. The checks that take it
/// run only there (in a module `raw_records`), not in [`run_all`].
#[async_trait]
pub trait RawRecords: Send + Sync {
    /// Stores `text` as the record of `task_id`, byte for byte.
    async fn plant_raw(&self, task_id: &str, text: &str);
}

/// Runs every check, one after another, on one repository.
///
/// [`task_id_sequence`] runs first and needs a store whose id counter was never used.
pub async fn run_all(repo: &dyn TaskRepository) {
    task_id_sequence(repo).await;
    save_and_get_round_trip(repo).await;
    create_refuses_an_existing_task(repo).await;
    resave_moves_between_listings(repo).await;
    delete_removes_from_every_listing(repo).await;
    set_status_with_and_without_log(repo).await;
    transition_applies_or_conflicts(repo).await;
    transition_rejects_empty_from(repo).await;
    append_log_keeps_order_and_form(repo).await;
    append_logs_appends_in_order(repo).await;
    update_result_is_additive(repo).await;
    set_jobs_replaces_jobs(repo).await;
    missing_tasks_are_not_created(repo).await;
    invalid_names_are_rejected(repo).await;
    longest_names_are_accepted(repo).await;
    list_by_ids_skips_and_reports(repo).await;
    listings_are_sorted(repo).await;
    stream_matches_list(repo).await;
    unknown_fields_and_parameters_survive(repo).await;
    concurrent_appends_keep_every_line(repo).await;
    concurrent_result_updates_keep_both_fields(repo).await;
    concurrent_transitions_have_one_winner(repo).await;
    empty_log_entry_appends_nothing(repo).await;
    ack_mutations_apply_and_say_so(repo).await;
    ack_mutations_refuse_as_the_others_do(repo).await;
    ack_mutations_of_missing_tasks_are_false(repo).await;
}
