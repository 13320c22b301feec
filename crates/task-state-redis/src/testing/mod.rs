//! Private `redis-server` processes for tests (feature `test-support`).
//!
//! Each [`RedisServer`] runs on a free loopback port with its own directory, keeps nothing on
//! disk, and is killed when dropped, so tests run in parallel, each with a fresh key space,
//! and can restart or reconfigure their server.
//!
//! [`test_redis_or_skip`] gives the conformance tests the server of
//! `TASK_STATE_TEST_REDIS_URL` instead, when it is set: see [`ExternalRedis`].

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod cluster;
mod sentinel;

pub use cluster::*;
pub use sentinel::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A private `redis-server` on 127.0.0.1.
///
/// ```no_run
/// let server = task_state_redis::testing::RedisServer::start().expect("redis-server");
/// assert_eq!(server.cli(&["PING"]), "PONG");
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

/// The variable that names another `redis-server` binary to test against (a Redis 6.2
/// build, say); by default the one on `PATH`.
pub const SERVER_VAR: &str = "TASK_STATE_REDIS_SERVER";

/// The `redis-server` binary the tests run: `$TASK_STATE_REDIS_SERVER` or `redis-server`.
pub fn server_binary() -> String {
    std::env::var(SERVER_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

/// The major version of [`server_binary`] (`7` for 7.0.15), 0 when it cannot be told.
pub fn server_major_version() -> u32 {
    let output = Command::new(server_binary()).arg("--version").output();
    let text = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split("v=")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse().ok())
        .unwrap_or(0)
}

/// Whether `redis-server` can be run here.
pub fn redis_available() -> bool {
    Command::new(server_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts a server, or returns `None` (after printing why) when `redis-server` is not
/// installed and `CI` is unset. With `CI` set, a missing `redis-server` panics: CI must
/// never skip the Redis tests silently.
pub fn server_or_skip() -> Option<RedisServer> {
    server_or_skip_with(&[])
}

/// [`server_or_skip`] with extra `redis-server` arguments.
///
/// With [`EXTERNAL_URL_VAR`] set and no `redis-server` installed, a test that needs its own
/// server (to restart, kill or reconfigure it) is skipped and says so, even under CI: the
/// external server cannot stand in for it.
pub fn server_or_skip_with(args: &[&str]) -> Option<RedisServer> {
    if !redis_available() {
        if std::env::var_os(EXTERNAL_URL_VAR).is_some() {
            eprintln!(
                "skipping on {EXTERNAL_URL_VAR}: this test restarts or reconfigures a private \
                 redis-server, and redis-server is not installed"
            );
            return None;
        }
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed, and CI is set: the Redis tests must run");
        }
        eprintln!("skipping: redis-server is not installed");
        return None;
    }
    Some(RedisServer::start_with(args).expect("start redis-server"))
}

impl RedisServer {
    /// Starts a server with default settings.
    ///
    /// # Errors
    /// When `redis-server` cannot be started.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments such as `["--requirepass", "secret"]`.
    ///
    /// # Errors
    /// When `redis-server` cannot be started.
    pub fn start_with(args: &[&str]) -> std::io::Result<Self> {
        Self::start_on(args, free_port)
    }

    /// [`start_with`](Self::start_with) on a port that `pick` chooses (a new one for each
    /// try).
    fn start_on(args: &[&str], pick: fn() -> std::io::Result<u16>) -> std::io::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("task-state-redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let mut last_error = None;
        for _ in 0..5 {
            server.port = pick()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        // Redis creates its unix socket only after it bound its TCP port, so the socket in
        // this server's own directory proves that the port is this server's and not that of
        // a server of another test that was handed the same free port.
        let socket = self.dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(server_binary())
            .args(["--port", &self.port.to_string()])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica's first sync starts at once, instead of after Redis's default 5 s
            // wait for other replicas to share the transfer: a cluster (or a Sentinel
            // topology) is ready in about a second instead of six.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            // `{port}` in an argument stands for the server's port (e.g. `--tls-port {port}`).
            .args(
                self.args
                    .iter()
                    .map(|a| a.replace("{port}", &self.port.to_string())),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let port = self.port;
        self.child = Some(wait_until_ready(child, "redis-server", || {
            socket.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?);
        Ok(())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli` against the server and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if let Some(i) = self.args.iter().position(|a| a == "--requirepass") {
            cmd.args(["--no-auth-warning", "-a", &self.args[i + 1]]);
        }
        let output = cmd.args(args).output().expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Kills the server (like a crash: SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port after [`kill`](Self::kill), or kills and
    /// starts it. The data is gone, as after a restart without persistence.
    ///
    /// # Errors
    /// When it does not come back.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits up to 10 s for `ready`, and gives the child back; kills it when it does not get
/// ready in time, and reports it when it exits first.
fn wait_until_ready(
    mut child: Child,
    what: &str,
    ready: impl Fn() -> bool,
) -> std::io::Result<Child> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!("{what} exited: {status}")));
        }
        if ready() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(std::io::Error::other(format!(
        "{what} did not listen in time"
    )))
}

/// The variable that lets tests skip (instead of fail) when a tool they need, such as
/// `openssl` or `python3`, is not installed. Ignored under `CI`, where every test must run.
pub const SKIP_MISSING_TOOLS_VAR: &str = "TASK_STATE_SKIP_MISSING_TOOLS";

/// Whether `tool` can be run (`tool version_arg` exits 0). When it cannot, panics with a
/// message that names the tool and what needs it, unless [`SKIP_MISSING_TOOLS_VAR`] is set
/// and `CI` is not: then prints why and returns `false`, so the test can return early.
///
/// ```no_run
/// use task_state_redis::testing::require_tool;
/// if !require_tool("openssl", "version", "the TLS test makes its certificates with it") {
///     return;
/// }
/// ```
pub fn require_tool(tool: &str, version_arg: &str, why: &str) -> bool {
    let found = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let opted_out = std::env::var_os(SKIP_MISSING_TOOLS_VAR).is_some_and(|v| !v.is_empty());
    if opted_out && std::env::var_os("CI").is_none() {
        eprintln!("skipping: `{tool}` is not installed ({why}); {SKIP_MISSING_TOOLS_VAR} is set");
        return false;
    }
    panic!(
        "`{tool}` is not installed, and {why}: install it, or set {SKIP_MISSING_TOOLS_VAR}=1 to skip this test (not under CI)"
    );
}

/// A loopback port that was free a moment ago.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The name/value lines of a flat `redis-cli` reply, as a map.
fn pairs(reply: &str) -> std::collections::HashMap<String, String> {
    let lines: Vec<&str> = reply.lines().map(str::trim).collect();
    lines
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect()
}

/// The `calls` of `command` in `INFO commandstats` (`cmdstat_{command}:calls=N,…`), 0 when
/// the command has not run.
pub fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How often the repository's scripts ran on `server`: calls of `FCALL` (Redis 7.0 and
/// later) and of `EVALSHA` (Redis 6.2), from `INFO commandstats`.
pub fn script_calls(server: &RedisServer) -> u64 {
    command_calls(server, "fcall") + command_calls(server, "evalsha")
}

// A Redis the user already has ----------------------------------------------------------

/// The variable that points the Redis conformance tests at an existing, dedicated server
/// (a managed service, say) instead of private `redis-server` processes: a URL as
/// `DMS_REDIS_WRITE_URL` takes it, database included. The tests flush that database.
pub const EXTERNAL_URL_VAR: &str = "TASK_STATE_TEST_REDIS_URL";
/// Set to `1` to let the tests flush a database of [`EXTERNAL_URL_VAR`] that holds keys they
/// did not write; without it they refuse to start there.
pub const EXTERNAL_FLUSH_VAR: &str = "TASK_STATE_TEST_REDIS_FLUSH";
/// The key by which the tests mark a database as theirs, so that a later run may flush it
/// without [`EXTERNAL_FLUSH_VAR`].
pub const EXTERNAL_MARKER_KEY: &str = "task-state-tests:owned";

/// The Redis of one test: a private server, or a turn on the external one.
#[derive(Debug)]
pub enum TestRedis {
    /// A private `redis-server`, killed when dropped.
    Private(RedisServer),
    /// The server of [`EXTERNAL_URL_VAR`], flushed, held by this test alone until dropped.
    External(ExternalRedis),
}

impl TestRedis {
    /// The URL to connect to.
    pub fn url(&self) -> String {
        match self {
            TestRedis::Private(server) => server.url(),
            TestRedis::External(external) => external.url.clone(),
        }
    }

    /// The private server, to inspect, restart or reconfigure; `None` on the external one.
    pub fn private(&self) -> Option<&RedisServer> {
        match self {
            TestRedis::Private(server) => Some(server),
            TestRedis::External(_) => None,
        }
    }
}

/// One test's turn on the external server: tests run there one at a time (each expects a
/// fresh key space, and one database per test would need more databases than a managed
/// service offers), in the order they ask; the database is flushed at the start of each.
#[derive(Debug)]
pub struct ExternalRedis {
    url: String,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl ExternalRedis {
    /// Waits for the turn on `url`, then flushes its database: when it holds only what
    /// earlier tests left (the marker [`EXTERNAL_MARKER_KEY`] is there), or when `flush` is
    /// true; otherwise it refuses. Marks the database as the tests'.
    ///
    /// # Errors
    /// When the server cannot be reached, or holds keys of others and `flush` is false.
    pub async fn lease(url: &str, flush: bool) -> Result<Self, String> {
        static TURN: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
            std::sync::OnceLock::new();
        let turn = TURN
            .get_or_init(Default::default)
            .clone()
            .lock_owned()
            .await;
        let settings = crate::RedisRepositorySettings::builder()
            .with_write_url(url)
            .with_pool_size(1)
            .build()
            .map_err(|e| format!("{EXTERNAL_URL_VAR}: {e}"))?;
        let shown = settings.write_url().to_string();
        let repo = crate::RedisTaskRepository::connect(settings)
            .await
            .map_err(|e| format!("{EXTERNAL_URL_VAR}: {e}"))?;
        let prepared = prepare(&repo, &shown, flush).await;
        repo.close().await;
        prepared?;
        Ok(ExternalRedis {
            url: url.to_owned(),
            _turn: turn,
        })
    }
}

async fn prepare(
    repo: &crate::RedisTaskRepository,
    shown: &str,
    flush: bool,
) -> Result<(), String> {
    use fred::prelude::{ClientLike, Value};
    use fred::types::CustomCommand;
    let client = repo.writer().next();
    let run = |name: &'static str, args: Vec<String>| async move {
        client
            .custom::<Value, String>(CustomCommand::new_static(name, None::<u16>, false), args)
            .await
            .map_err(|e| format!("{shown}: {name}: {e}"))
    };
    let count = |v: Value| v.as_u64().unwrap_or(0);
    let keys = count(run("DBSIZE", vec![]).await?);
    let ours = count(run("EXISTS", vec![EXTERNAL_MARKER_KEY.to_owned()]).await?) > 0;
    if keys > 0 && !ours && !flush {
        return Err(format!(
            "{shown} holds {keys} keys that these tests did not write; they flush the \
             database, so they refuse to start (set {EXTERNAL_FLUSH_VAR}=1 to flush it anyway)"
        ));
    }
    run("FLUSHDB", vec![]).await?;
    run(
        "SET",
        vec![
            EXTERNAL_MARKER_KEY.to_owned(),
            "task-state tests".to_owned(),
        ],
    )
    .await?;
    Ok(())
}

/// The Redis for a test that only needs a fresh key space (the conformance suite): the
/// server of [`EXTERNAL_URL_VAR`] when it is set (waiting for the turn, flushing; panicking
/// when it holds keys of others and [`EXTERNAL_FLUSH_VAR`] is not `1`), else a private
/// server as [`server_or_skip`] starts one.
pub async fn test_redis_or_skip() -> Option<TestRedis> {
    match std::env::var(EXTERNAL_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => {
            let flush = std::env::var(EXTERNAL_FLUSH_VAR).is_ok_and(|v| v.trim() == "1");
            match ExternalRedis::lease(url.trim(), flush).await {
                Ok(external) => Some(TestRedis::External(external)),
                Err(e) => panic!("{e}"),
            }
        }
        _ => server_or_skip().map(TestRedis::Private),
    }
}
