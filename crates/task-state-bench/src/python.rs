//! The baseline: the Python package's `append_log`, re-implemented from the wire-format spec
//! in `python/baseline.py` (the DMS package itself is not available here), run against the
//! same server at the same concurrency.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The baseline script, carried in the binary so that the run needs no source tree.
pub const SCRIPT: &str = include_str!("../python/baseline.py");

/// Whether `python3` with the `redis` and `pydantic` packages is here.
pub fn available() -> bool {
    crate::command_succeeds("python3", &["-c", "import redis, pydantic"])
}

/// Runs the baseline and returns its JSON line (`op`, `ops_per_sec`, `p50_us`, `p99_us`,
/// `concurrency`).
///
/// # Errors
/// When python3 fails or prints no figure.
pub fn run(url: &str, concurrency: usize, ops: usize) -> Result<Value> {
    let path = std::env::temp_dir().join(format!("task-state-baseline-{}.py", std::process::id()));
    std::fs::write(&path, SCRIPT).context("writing the baseline script")?;
    let output = Command::new("python3")
        .arg(&path)
        .args(["--url", url])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--ops", &ops.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("running python3");
    let _ = std::fs::remove_file(&path);
    let output = output?;
    if !output.status.success() {
        bail!(
            "the Python baseline failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .context("the Python baseline printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("reading {line:?}"))
}
