//! `task-state console` against a private Redis: it serves with the CLI's configuration and
//! stops on SIGTERM. The pages themselves are tested in crates/task-state-console.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use task_state_redis::testing::{free_port, server_or_skip_with};

const BIN: &str = env!("CARGO_BIN_EXE_task-state");
const PASSWORD: &str = "console-pw-5e2a";

fn command(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for var in ["DMS_REDIS_READ_URL", "TASK_STATE_CONSOLE_TOKEN", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("DMS_REDIS_WRITE_URL", url)
        .env("NO_COLOR", "1")
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// One HTTP/1.1 GET with `host`; the status line and the body.
fn get(port: u16, path: &str, host: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The console's process, killed if a failed assertion leaves it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the console exited early: {status:?}");
        }
        assert!(Instant::now() < deadline, "the console did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn console_serves_with_the_cli_configuration_until_sigterm() {
    let Some(server) = server_or_skip_with(&["--requirepass", PASSWORD]) else {
        return;
    };
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port());
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut console = command(
        &url,
        &[
            "console",
            "--listen",
            &listen,
            "--janitor",
            "--allow-missing-notifications",
            "--metrics-interval",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .map(KillOnDrop)
    .unwrap();
    wait_for_port(&mut console.0, port);

    let (status, body) = get(port, "/healthz", &listen);
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (_, metrics) = get(port, "/metrics", &listen);
    assert!(
        metrics.contains("task_state_expiry_messages_total 0"),
        "{metrics}"
    );
    let (status, overview) = get(port, "/", &format!("localhost:{port}"));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        overview.contains("Read-only: writes are off."),
        "{overview}"
    );
    // Another name for the loopback address is another site's page: refused.
    let (status, _) = get(port, "/", &format!("rebound.example:{port}"));
    assert_eq!(status, "HTTP/1.1 421 Misdirected Request");

    // A followed log stays open until the task ends; stopping must not wait for it.
    let created = command(&url, &["create", "--service", "render", "--user", "alice"])
        .output()
        .unwrap();
    assert!(created.status.success());
    let id = String::from_utf8(created.stdout).unwrap();
    let mut follow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        follow,
        "GET /tasks/{}/events HTTP/1.1\r\nHost: {listen}\r\n\r\n",
        id.trim()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let n = follow.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200 OK"));

    let killed = Command::new("kill")
        .args(["-TERM", &console.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while console.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the console did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = String::new();
    console
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = console.0.wait().unwrap();
    let log = stderr;
    assert!(status.success(), "{status:?}: {log}");
    assert!(log.contains("INFO console running"), "{log}");
    assert!(log.contains("stopping"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn console_writes_need_a_well_formed_token() {
    let Some(server) = server_or_skip_with(&[]) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let args = ["console", "--listen", &listen, "--allow-writes"];
    let missing = refused(&command(&server.url(), &args).output().unwrap());
    assert!(
        missing.contains("TASK_STATE_CONSOLE_TOKEN holds no token"),
        "{missing}"
    );
    let malformed = command(&server.url(), &args)
        .env("TASK_STATE_CONSOLE_TOKEN", "alice:tooshort")
        .output()
        .unwrap();
    let malformed = refused(&malformed);
    assert!(
        malformed.contains("TASK_STATE_CONSOLE_TOKEN: token 1"),
        "{malformed}"
    );
    assert!(!malformed.contains("tooshort"), "{malformed}");
}
