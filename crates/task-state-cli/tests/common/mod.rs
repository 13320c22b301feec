//! Shared by the `task-state` binary's test files: a private Redis with the binary pointed
//! at it, and readers of what the binary printed.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use task_state_redis::testing::{server_or_skip, RedisServer};

pub const BIN: &str = env!("CARGO_BIN_EXE_task-state");

/// A private Redis, and the binary pointed at it through `DMS_*` as a deployment would be.
pub struct Env {
    pub server: RedisServer,
}

impl Env {
    pub fn start() -> Option<Self> {
        server_or_skip().map(|server| Env { server })
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bare_command(args);
        cmd.env("DMS_REDIS_WRITE_URL", self.server.url());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run task-state")
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn task-state");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "task-state {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn record(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(self.ok(&["get", id, "--json"]).trim()).unwrap()
    }

    pub fn messages(&self, id: &str) -> Vec<String> {
        self.record(id)["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().split_once(',').unwrap().1.to_owned())
            .collect()
    }
}

/// The binary with no `DMS_*` variable from the environment of the test run.
pub fn bare_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DMS_REDIS_WRITE_URL",
        "DMS_REDIS_READ_URL",
        "DMS_REDIS_TASK_TTL_SECONDS",
        "DMS_TIMEZONE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1").args(args);
    cmd
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The first column of each table row after the header.
pub fn first_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

macro_rules! env_or_skip {
    () => {
        match Env::start() {
            Some(env) => env,
            None => return,
        }
    };
}

pub fn messages_of(printed: &str) -> Vec<&str> {
    printed
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect()
}
