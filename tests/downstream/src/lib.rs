//! Nothing but tests: an application's build with task-state in it, to show that task-state
//! leaves serde_json as an application expects it (`tests/user_types.rs`) and that no crate
//! of the workspace enables the serde_json features that would change it
//! (`tests/features.rs`). Run it alone, as an application would build:
//! `cargo test -p task-state-downstream-test`.
