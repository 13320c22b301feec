//! A `redis-server` (or `valkey-server`) under valgrind's callgrind, and the instruction
//! totals of its dumps.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use task_state_redis::testing::{free_port, server_binary};

/// A `redis-server` under callgrind, counting only while [`Callgrind::count`] runs.
pub(super) struct Callgrind {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Callgrind {
    pub(super) fn start() -> Result<Self> {
        Self::start_with(&server_binary())
    }

    /// A server of `binary` (a `redis-server` or a `valkey-server`).
    pub(super) fn start_with(binary: &str) -> Result<Self> {
        Self::start_with_args(binary, &[])
    }

    /// A server of `binary` with `args` besides the bench's own.
    pub(super) fn start_with_args(binary: &str, args: &[&str]) -> Result<Self> {
        for tool in ["valgrind", "callgrind_control"] {
            ensure!(
                crate::command_succeeds(tool, &["--version"]),
                "--instructions needs {tool} (Debian's valgrind package)"
            );
        }
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("task-state-callgrind-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("valgrind")
            .args(["--tool=callgrind", "--instr-atstart=no"])
            .arg(format!(
                "--callgrind-out-file={}/callgrind.out",
                dir.display()
            ))
            .arg(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // The server's timer (serverCron) runs within the counts too: at its slowest.
            .args(["--hz", "1"])
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server under valgrind")?;
        let mut server = Callgrind { child, dir, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("redis-server under valgrind exited: {status}");
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "redis-server under valgrind did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn control(&self, args: &[&str]) -> Result<()> {
        let status = Command::new("callgrind_control")
            .args(args)
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("callgrind_control")?;
        ensure!(status.success(), "callgrind_control {args:?} failed");
        Ok(())
    }

    /// The instructions the server executed while `work` ran.
    pub(super) async fn count<F: Future<Output = Result<()>>>(&self, work: F) -> Result<u64> {
        count_all(std::slice::from_ref(self), work).await
    }

    /// Starts a count: the dumps written so far.
    fn begin(&self) -> Result<Vec<PathBuf>> {
        // A dump with nothing collected since the last one empties the counters.
        self.control(&["--dump"])?;
        let before = self.dumps()?;
        self.control(&["--instr=on"])?;
        Ok(before)
    }

    /// Stops the count begun when the dumps were `before`.
    fn stop(&self) -> Result<()> {
        self.control(&["--instr=off"])?;
        self.control(&["--dump"])
    }

    /// The instructions of the count stopped last, begun when the dumps were `before`.
    fn total(&self, before: &[PathBuf]) -> Result<u64> {
        let after = self.dumps()?;
        let newest = after
            .iter()
            .filter(|p| !before.contains(p))
            .max_by_key(|p| part_number(p))
            .context("callgrind wrote no dump")?;
        // On a busy machine the dump can be read before callgrind has finished writing it.
        for _ in 0..20 {
            if let Ok(total) = totals(newest) {
                return Ok(total);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        totals(newest)
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    fn dumps(&self) -> Result<Vec<PathBuf>> {
        Ok(std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().contains("callgrind.out"))
            .collect())
    }
}

/// The instructions `servers` executed, together, while `work` ran.
pub(super) async fn count_all<F: Future<Output = Result<()>>>(
    servers: &[Callgrind],
    work: F,
) -> Result<u64> {
    let before = servers
        .iter()
        .map(Callgrind::begin)
        .collect::<Result<Vec<_>>>()?;
    let outcome = work.await;
    for server in servers {
        server.stop()?;
    }
    outcome?;
    let mut total = 0;
    for (server, before) in servers.iter().zip(&before) {
        total += server.total(before)?;
    }
    Ok(total)
}

impl Drop for Callgrind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn part_number(path: &Path) -> u64 {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(|e| e.parse().ok())
        .unwrap_or(0)
}

/// The instruction total of a callgrind dump (its `totals:` line).
fn totals(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)?;
    // `summary:` can read 0 where `totals:` has the count, with instrumentation toggled.
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no totals in {}", path.display()))
}
