//! The whole conformance suite on a real Redis: every check as its own test on a fresh
//! private server, once on the repository itself and once through `Arc<dyn TaskRepository>`.

mod common;

task_state_core::conformance_tests!(common::fresh);
