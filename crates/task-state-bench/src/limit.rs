//! The limit: `redis-benchmark` running one command against the same server, at the same
//! number of connections as operations our client keeps in flight.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// What `redis-benchmark --csv` reported for one command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitFigure {
    /// Requests per second.
    pub rps: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency in microseconds.
    pub p99_us: f64,
}

/// Whether `redis-benchmark` is on `PATH`.
pub fn available() -> bool {
    crate::command_succeeds("redis-benchmark", &["--version"])
}

/// Runs `redis-benchmark -u url -c clients -n requests --csv command...`.
///
/// # Errors
/// When it cannot be run, fails, or prints no figure.
pub fn run(url: &str, clients: usize, requests: usize, command: &[String]) -> Result<LimitFigure> {
    let output = Command::new("redis-benchmark")
        .args(["-u", url])
        .args(["-c", &clients.to_string()])
        .args(["-n", &requests.to_string()])
        .arg("--csv")
        .args(command)
        .stdin(Stdio::null())
        .output()
        .context("running redis-benchmark")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "redis-benchmark failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_csv(&stdout).with_context(|| format!("reading redis-benchmark's output: {stdout:?}"))
}

/// Reads the figures of the last result line of `redis-benchmark --csv`:
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
/// "p99_latency_ms","max_latency_ms"`. The test name is the whole command, which may hold
/// commas and quotes of its own, so the line is read from the right.
///
/// # Errors
/// When no line has the 7 figures.
pub fn parse_csv(output: &str) -> Result<LimitFigure> {
    for line in output.lines().rev() {
        let fields: Vec<&str> = line.trim().rsplitn(8, ',').collect();
        if fields.len() < 8 {
            continue;
        }
        let number = |i: usize| fields[i].trim_matches('"').parse::<f64>().ok();
        // rsplitn yields from the right: max, p99, p95, p50, min, avg, rps, test.
        if let (Some(rps), Some(p50), Some(p99)) = (number(6), number(3), number(1)) {
            return Ok(LimitFigure {
                rps,
                p50_us: p50 * 1000.0,
                p99_us: p99 * 1000.0,
            });
        }
    }
    bail!("no result line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_figures_of_a_command_with_commas_and_quotes() {
        let output = concat!(
            "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",",
            "\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n",
            "\"EVALSHA abc 2 task:x task:x:metadata 10 \"2025-11-17T10:00:16+09:00\" ack ",
            "\"2025-11-17T10:00:16+09:00,a, b\"\",\"41666.67\",\"0.370\",\"0.104\",\"0.351\",",
            "\"0.527\",\"0.735\",\"2.103\"\n"
        );
        let figure = parse_csv(output).unwrap();
        assert_eq!(figure.rps, 41666.67);
        assert!((figure.p50_us - 351.0).abs() < 1e-6);
        assert!((figure.p99_us - 735.0).abs() < 1e-6);
    }

    #[test]
    fn a_header_alone_is_an_error() {
        assert!(parse_csv("\"test\",\"rps\"\n").is_err());
        assert!(parse_csv("").is_err());
    }
}
