//! Benchmarks of task-state on Redis, each measured against the limit that
//! `redis-benchmark` reaches on the same server.
//!
//! The binary `task-state-bench` (run by `just bench`) drives [`suite::run`]; the modules
//! are public so that the Criterion benchmarks in `benches/` share the same fixtures.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use task_state_bench::suite::{self, Options};
//! let options = Options::quick();
//! let results = suite::run(&options).await?;
//! task_state_bench::report::print_table(&results);
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod admin;
pub mod contention;
pub mod fixtures;
pub mod instructions;
pub mod limit;
pub mod memory;
pub mod python;
pub mod report;
pub mod spread;
pub mod stats;
pub mod suite;
pub mod write_path;

/// Whether `program` with `args` runs and exits with success, its output discarded: how the
/// bench finds the tools it uses (`redis-benchmark`, `python3` and its packages, valgrind).
pub fn command_succeeds(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
