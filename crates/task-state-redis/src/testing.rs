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

/// How far above its port a cluster node listens for the cluster bus.
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// A free port whose cluster bus port (10,000 higher) is free too, and exists.
fn free_cluster_port() -> std::io::Result<u16> {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let Some(bus) = port.checked_add(CLUSTER_BUS_OFFSET) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "no free port with a free cluster bus port",
    ))
}

/// A node of a [`RedisCluster`]. Redis binds the cluster bus port after the client port and
/// exits when it cannot (another process took it since it was picked): a node counts as
/// started once its bus port answers and the process still runs.
fn start_cluster_node(args: &[&str]) -> std::io::Result<RedisServer> {
    let mut last_error = None;
    for _ in 0..5 {
        let mut node = RedisServer::start_on(args, free_cluster_port)?;
        let bus = node.port + CLUSTER_BUS_OFFSET;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive = match node.child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => false,
            };
            if !alive {
                last_error = Some(format!("the node on port {} exited", node.port));
                break;
            }
            if TcpStream::connect(("127.0.0.1", bus)).is_ok() && node.cli(&["PING"]) == "PONG" {
                return Ok(node);
            }
            if Instant::now() > deadline {
                last_error = Some(format!("cluster bus port {bus} did not open"));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(std::io::Error::other(last_error.unwrap_or_default()))
}

// Sentinel topologies -------------------------------------------------------------------

/// The service name the Sentinels of a [`SentinelTopology`] monitor.
pub const SENTINEL_SERVICE: &str = "mymaster";

/// A `redis-server --sentinel` process on 127.0.0.1 with a generated config file in its own
/// directory (Sentinel rewrites that file, so it lives where it may), killed when dropped.
///
/// It monitors [`SENTINEL_SERVICE`] with quorum 2, calls the primary down after 1 s without
/// an answer, and gives a failover 3 s.
#[derive(Debug)]
pub struct SentinelServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl SentinelServer {
    /// Starts a Sentinel that monitors the primary on `127.0.0.1:{primary_port}`;
    /// `auth_pass` is the password of the primary and its replicas, if they have one.
    ///
    /// # Errors
    /// When the Sentinel cannot be started.
    pub fn start(primary_port: u16, auth_pass: Option<&str>) -> std::io::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("task-state-sentinel-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut sentinel = SentinelServer {
            child: None,
            port: 0,
            dir,
        };
        let mut last_error = None;
        for _ in 0..5 {
            sentinel.port = free_port()?;
            match sentinel.spawn(primary_port, auth_pass) {
                Ok(()) => return Ok(sentinel),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("redis-sentinel did not start")))
    }

    fn spawn(&mut self, primary_port: u16, auth_pass: Option<&str>) -> std::io::Result<()> {
        let mut config = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
             sentinel failover-timeout {SENTINEL_SERVICE} 3000\n\
             sentinel parallel-syncs {SENTINEL_SERVICE} 1\n",
            port = self.port,
            dir = self.dir.display(),
        );
        if let Some(password) = auth_pass {
            config.push_str(&format!(
                "sentinel auth-pass {SENTINEL_SERVICE} {password}\n"
            ));
        }
        let path = self.dir.join("sentinel.conf");
        std::fs::write(&path, config)?;
        let child = Command::new(server_binary())
            .arg(&path)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let port = self.port;
        self.child = Some(wait_until_ready(child, "redis-server --sentinel", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?);
        Ok(())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli` against the Sentinel and returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The port of the primary this Sentinel names now (`SENTINEL get-master-addr-by-name`).
    pub fn primary_port(&self) -> Option<u16> {
        let reply = self.cli(&["SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE]);
        reply.lines().nth(1)?.trim().parse().ok()
    }

    /// Kills the Sentinel (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SentinelServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, a replica (`--replicaof`) and three Sentinels monitoring them as
/// [`SENTINEL_SERVICE`], all on loopback and all killed when dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use task_state_redis::testing::SentinelTopology;
/// let mut topology = SentinelTopology::start(&[], None).expect("topology");
/// topology.wait_ready(Duration::from_secs(20)).expect("sentinels see the replica");
/// let url = topology.sentinel_url(); // for with_write_url / with_read_url
/// topology.primary.kill();
/// assert!(topology.wait_for_primary(topology.replica.port(), Duration::from_secs(20)));
/// ```
#[derive(Debug)]
pub struct SentinelTopology {
    /// The Sentinels; declared first so that they die first, before they could start a
    /// failover while the servers are being killed.
    pub sentinels: Vec<SentinelServer>,
    /// The primary at the start.
    pub primary: RedisServer,
    /// Its replica, which Sentinel promotes when the primary dies.
    pub replica: RedisServer,
    password: Option<String>,
}

impl SentinelTopology {
    /// Starts the primary and the replica, each with the extra `redis-server` arguments
    /// `server_args` (such as `["--notify-keyspace-events", "Ex"]`), then three Sentinels.
    /// With a `password`, both servers require it (the replica also authenticates to the
    /// primary with it) and the Sentinels use it to reach them, but the Sentinels themselves
    /// ask for none.
    ///
    /// # Errors
    /// When a process cannot be started.
    pub fn start(server_args: &[&str], password: Option<&str>) -> std::io::Result<Self> {
        let mut args: Vec<&str> = server_args.to_vec();
        if let Some(password) = password {
            args.extend(["--requirepass", password, "--masterauth", password]);
        }
        let primary = RedisServer::start_with(&args)?;
        let primary_port = primary.port().to_string();
        let mut replica_args = args.clone();
        replica_args.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let replica = RedisServer::start_with(&replica_args)?;
        let sentinels = (0..3)
            .map(|_| SentinelServer::start(primary.port(), password))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(SentinelTopology {
            sentinels,
            primary,
            replica,
            password: password.map(str::to_owned),
        })
    }

    /// `redis-sentinel://[:password@]127.0.0.1:{s1}/0?sentinelServiceName=mymaster&node=127.0.0.1:{s2}&node=127.0.0.1:{s3}`:
    /// the URL, in fred's syntax, that reaches whichever server the Sentinels name primary.
    pub fn sentinel_url(&self) -> String {
        let auth = match &self.password {
            Some(password) => format!(":{password}@"),
            None => String::new(),
        };
        let mut url = format!(
            "redis-sentinel://{auth}127.0.0.1:{}/0?sentinelServiceName={SENTINEL_SERVICE}",
            self.sentinels[0].port()
        );
        for sentinel in &self.sentinels[1..] {
            url.push_str(&format!("&node=127.0.0.1:{}", sentinel.port()));
        }
        url
    }

    /// The plain URL of `server` (the primary or the replica), password included.
    pub fn url_of(&self, server: &RedisServer) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", server.port()),
            None => server.url(),
        }
    }

    /// Waits until the replica is in sync and every Sentinel knows the replica and the two
    /// other Sentinels, so that a failover can happen.
    ///
    /// # Errors
    /// When that takes longer than `timeout`; the message says what was missing.
    pub fn wait_ready(&self, timeout: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = self.not_ready();
            match missing {
                None => return Ok(()),
                Some(what) if Instant::now() > deadline => {
                    return Err(std::io::Error::other(format!(
                        "topology not ready after {timeout:?}: {what}"
                    )))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn not_ready(&self) -> Option<String> {
        let replication = self.replica.cli(&["INFO", "replication"]);
        if !replication.contains("master_link_status:up") {
            return Some("the replica is not in sync".to_owned());
        }
        for sentinel in &self.sentinels {
            let master = pairs(&sentinel.cli(&["SENTINEL", "master", SENTINEL_SERVICE]));
            if master.get("num-slaves").map(String::as_str) != Some("1") {
                return Some(format!(
                    "sentinel {} does not see the replica",
                    sentinel.port()
                ));
            }
            if master.get("num-other-sentinels").map(String::as_str) != Some("2") {
                return Some(format!(
                    "sentinel {} does not see the other sentinels",
                    sentinel.port()
                ));
            }
            let replicas = pairs(&sentinel.cli(&["SENTINEL", "replicas", SENTINEL_SERVICE]));
            if replicas.get("flags").map(String::as_str) != Some("slave")
                || replicas.get("master-link-status").map(String::as_str) != Some("ok")
            {
                return Some(format!(
                    "sentinel {} does not consider the replica healthy",
                    sentinel.port()
                ));
            }
        }
        None
    }

    /// Waits until every live Sentinel names the server on `port` primary, and that server
    /// says it is one. False after `timeout`.
    pub fn wait_for_primary(&self, port: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let named = self
                .sentinels
                .iter()
                .filter(|s| s.child.is_some())
                .all(|s| s.primary_port() == Some(port));
            let server = [&self.primary, &self.replica]
                .into_iter()
                .find(|s| s.port() == port && s.child.is_some());
            let promoted = server.is_some_and(|s| s.cli(&["ROLE"]).starts_with("master"));
            if named && promoted {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Starts a [`SentinelTopology`], or returns `None` (after printing why) when `redis-server`
/// is not installed and `CI` is unset; with `CI` set, a missing `redis-server` panics.
pub fn topology_or_skip(server_args: &[&str], password: Option<&str>) -> Option<SentinelTopology> {
    if !redis_available() {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed, and CI is set: the Redis tests must run");
        }
        eprintln!("skipping: redis-server is not installed");
        return None;
    }
    Some(SentinelTopology::start(server_args, password).expect("start the sentinel topology"))
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

// Clusters ------------------------------------------------------------------------------

/// Three primaries and three replicas of a Redis Cluster (`redis-server --cluster-enabled
/// yes`, joined with `redis-cli --cluster create … --cluster-replicas 1`), all on loopback
/// and all killed when dropped. Nodes call a peer down after 1 s without an answer
/// (`cluster-node-timeout 1000`), so a failover takes a few seconds.
///
/// ```no_run
/// use std::time::Duration;
/// use task_state_redis::testing::RedisCluster;
/// let mut cluster = RedisCluster::start(&["--notify-keyspace-events", "Ex"]).expect("cluster");
/// let url = cluster.url(); // redis-cluster://127.0.0.1:…?node=…
/// let primary = cluster.primary_of("task:1").expect("a primary serves the slot");
/// cluster.kill(primary);
/// cluster.wait_ok(Duration::from_secs(30)).expect("a replica takes over");
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// The arguments every node was started with.
    args: Vec<String>,
}

/// The node timeout of a [`RedisCluster`], in milliseconds.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

impl RedisCluster {
    /// Starts six nodes with the extra `redis-server` arguments `server_args`, joins them
    /// into a cluster of three primaries with one replica each, and waits until every node
    /// reports `cluster_state:ok` and agrees on the slot map.
    ///
    /// # Errors
    /// When a node cannot be started, `redis-cli --cluster create` fails, or the cluster
    /// is not ready within 60 s.
    pub fn start(server_args: &[&str]) -> std::io::Result<Self> {
        let timeout = CLUSTER_NODE_TIMEOUT_MS.to_string();
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            timeout.as_str(),
            // A replica of a primary that was down takes over however long it was cut off.
            "--cluster-replica-validity-factor",
            "0",
        ];
        args.extend_from_slice(server_args);
        let nodes = (0..6)
            .map(|_| start_cluster_node(&args))
            .collect::<std::io::Result<Vec<_>>>()?;
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let cluster = RedisCluster {
            nodes,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        cluster.wait_ok(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// `redis-cluster://127.0.0.1:{first}?node=127.0.0.1:{second}&…`: every node as a seed.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port());
        for (i, node) in self.nodes[1..].iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port()));
        }
        url
    }

    /// The six nodes, in the order they were started (`redis-cli` made the first three
    /// primaries).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node at `index`.
    pub fn node(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }

    /// Whether the node at `index` is running.
    pub fn is_running(&self, index: usize) -> bool {
        self.nodes[index].child.is_some()
    }

    /// The indexes of the running nodes that say they are primaries (`ROLE`).
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i) && self.nodes[i].cli(&["ROLE"]).starts_with("master"))
            .collect()
    }

    /// The running node that serves `key`'s slot as primary, by the slot map of a running
    /// node.
    pub fn primary_of(&self, key: &str) -> Option<usize> {
        let slot: u16 = self
            .any_running()?
            .cli(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .ok()?;
        self.primaries()
            .into_iter()
            .find(|&i| self.slots_of(i).iter().any(|r| r.contains(&slot)))
    }

    /// The node id (`CLUSTER MYID`) of the node at `index`.
    pub fn node_id(&self, index: usize) -> String {
        self.nodes[index].cli(&["CLUSTER", "MYID"])
    }

    /// The slot ranges the node at `index` serves as primary, from its own `CLUSTER NODES`.
    pub fn slots_of(&self, index: usize) -> Vec<std::ops::RangeInclusive<u16>> {
        let nodes = self.nodes[index].cli(&["CLUSTER", "NODES"]);
        let Some(line) = nodes.lines().find(|l| l.contains("myself")) else {
            return Vec::new();
        };
        line.split_whitespace()
            .skip(8)
            .filter(|part| !part.starts_with('['))
            .filter_map(|part| {
                let (from, to) = part.split_once('-').unwrap_or((part, part));
                Some(from.parse().ok()?..=to.parse().ok()?)
            })
            .collect()
    }

    fn any_running(&self) -> Option<&RedisServer> {
        self.nodes.iter().find(|n| n.child.is_some())
    }

    /// Kills the node at `index` (SIGKILL). Its replica takes over once the other nodes
    /// call it down (about [`CLUSTER_NODE_TIMEOUT_MS`] later).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts the node at `index` again on its port, with its cluster configuration
    /// (`nodes.conf`) but no data: it rejoins the cluster, as a replica when another node
    /// took over its slots meanwhile.
    ///
    /// # Errors
    /// When it does not come back.
    pub fn restart(&mut self, index: usize) -> std::io::Result<()> {
        self.nodes[index].restart()
    }

    /// Starts a seventh (eighth, …) node with the cluster's arguments and adds it as a
    /// primary without slots (`redis-cli --cluster add-node`), then waits until every node
    /// knows it; returns its index. Move slots to it with [`move_slot`](Self::move_slot).
    ///
    /// # Errors
    /// When it cannot be started or added, or the cluster does not agree within 30 s.
    pub fn add_node(&mut self) -> std::io::Result<usize> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let node = start_cluster_node(&args)?;
        let seed = self
            .any_running()
            .ok_or_else(|| std::io::Error::other("no node is running"))?;
        let output = Command::new("redis-cli")
            .args(["--cluster", "add-node"])
            .arg(format!("127.0.0.1:{}", node.port()))
            .arg(format!("127.0.0.1:{}", seed.port()))
            .output()?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster add-node failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let address = format!("127.0.0.1:{}@", node.port());
        self.nodes.push(node);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .cli_all(&["CLUSTER", "NODES"])
            .iter()
            .all(|view| view.contains(&address))
        {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the nodes do not know the new node"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_ok(Duration::from_secs(30))?;
        Ok(self.nodes.len() - 1)
    }

    /// Moves `slots` slots from the primary at `from` to the primary at `to`, keys and all,
    /// with `redis-cli --cluster reshard`.
    ///
    /// # Errors
    /// When `redis-cli` fails.
    pub fn reshard(&self, from: usize, to: usize, slots: u16) -> std::io::Result<()> {
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("reshard")
            .arg(format!("127.0.0.1:{}", self.nodes[from].port()))
            .args(["--cluster-from", &self.node_id(from)])
            .args(["--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &slots.to_string()])
            .args(["--cluster-pipeline", "10", "--cluster-yes"])
            .output()?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster reshard failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    /// Runs `redis-cli -c` (which follows redirections) with `args` on a running node, and
    /// returns its output, trimmed: a command on a key reaches the key's primary.
    pub fn cli(&self, args: &[&str]) -> String {
        let Some(node) = self.any_running() else {
            return String::new();
        };
        let output = Command::new("redis-cli")
            .args(["-c", "-p", &node.port().to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        self.cli(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot")
    }

    /// Moves one slot, keys and all, from the primary that serves it to the primary at
    /// `to`, by hand as `redis-cli --cluster reshard` does: `CLUSTER SETSLOT … IMPORTING`
    /// on the target and `MIGRATING` on the source, `MIGRATE` of the keys a batch at a
    /// time, then `CLUSTER SETSLOT … NODE` on the target and then on every other primary.
    /// While it runs, the source answers `ASK` for the keys already moved. Replicas hear of
    /// the move by gossip, a moment later.
    ///
    /// # Errors
    /// When no primary serves the slot, or a step fails.
    pub fn move_slot(&self, slot: u16, to: usize) -> std::io::Result<()> {
        if self.move_slot_but_tell_target_later(slot, to)? {
            self.tell_target(slot, to)?;
        }
        Ok(())
    }

    /// [`move_slot`](Self::move_slot) but for its step on the target: the keys are on the
    /// target, and every other primary serves the slot's commands with `MOVED` to the
    /// target, while the target, still importing, sends them back with `MOVED` to the old
    /// primary, until [`tell_target`](Self::tell_target). This is the moment of a slot
    /// move where the nodes disagree, held as long as a test needs. False (nothing done)
    /// when `to` serves the slot already.
    ///
    /// # Errors
    /// When no primary serves the slot, or a step fails.
    pub fn move_slot_but_tell_target_later(&self, slot: u16, to: usize) -> std::io::Result<bool> {
        let primaries = self.primaries();
        let from = self.serving(&primaries, slot)?;
        if from == to {
            return Ok(false);
        }
        let ids = self.ids_of(&primaries);
        self.migrate(slot, (from, &ids[&from]), (to, &ids[&to]), &primaries)?;
        Ok(true)
    }

    /// Moves the slot of each of `keys` in turn, with [`move_slot`](Self::move_slot), to the
    /// primary after the one serving it (in the order of [`primaries`](Self::primaries),
    /// the last to the first). The primaries and the slot map are read once, not for each
    /// key: on a busy machine each `redis-cli` costs tens of milliseconds.
    ///
    /// # Errors
    /// When no primary serves a slot, or a step fails.
    pub fn move_slots_to_next_primary(&self, keys: &[String]) -> std::io::Result<()> {
        let primaries = self.primaries();
        let ids = self.ids_of(&primaries);
        let served: Vec<(usize, Vec<std::ops::RangeInclusive<u16>>)> =
            primaries.iter().map(|&i| (i, self.slots_of(i))).collect();
        let mut owners = std::collections::HashMap::new();
        for key in keys {
            let slot = self.slot_of(key);
            let from = match owners.get(&slot) {
                Some(&from) => from,
                None => served
                    .iter()
                    .find(|(_, ranges)| ranges.iter().any(|r| r.contains(&slot)))
                    .map(|&(i, _)| i)
                    .ok_or_else(|| {
                        std::io::Error::other(format!("no primary serves slot {slot}"))
                    })?,
            };
            let at = primaries.iter().position(|&p| p == from).unwrap_or(0);
            let to = primaries[(at + 1) % primaries.len()];
            self.migrate(slot, (from, &ids[&from]), (to, &ids[&to]), &primaries)?;
            set_slot(
                &self.nodes[to],
                &["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &ids[&to]],
            )?;
            owners.insert(slot, to);
        }
        Ok(())
    }

    /// The node ids of `nodes`, by index.
    fn ids_of(&self, nodes: &[usize]) -> std::collections::HashMap<usize, String> {
        nodes.iter().map(|&i| (i, self.node_id(i))).collect()
    }

    /// The one of `primaries` that serves `slot`, by its own slot map.
    fn serving(&self, primaries: &[usize], slot: u16) -> std::io::Result<usize> {
        primaries
            .iter()
            .copied()
            .find(|&i| self.slots_of(i).iter().any(|r| r.contains(&slot)))
            .ok_or_else(|| std::io::Error::other(format!("no primary serves slot {slot}")))
    }

    /// The steps of [`move_slot_but_tell_target_later`](Self::move_slot_but_tell_target_later)
    /// from the primary at `from` to the one at `to`, with the cluster's `primaries`.
    fn migrate(
        &self,
        slot: u16,
        (from, source_id): (usize, &str),
        (to, target_id): (usize, &str),
        primaries: &[usize],
    ) -> std::io::Result<()> {
        let slot_text = slot.to_string();
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        set_slot(
            target,
            &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", source_id],
        )?;
        set_slot(
            source,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", target_id],
        )?;
        loop {
            let keys = source.cli(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]);
            let keys: Vec<&str> = keys
                .lines()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .collect();
            if keys.is_empty() {
                break;
            }
            let port = target.port().to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            let reply = source.cli(&args);
            if reply != "OK" && reply != "NOKEY" {
                return Err(std::io::Error::other(format!("MIGRATE: {reply}")));
            }
        }
        for &i in primaries.iter().filter(|&&i| i != to) {
            set_slot(
                &self.nodes[i],
                &["CLUSTER", "SETSLOT", &slot_text, "NODE", target_id],
            )?;
        }
        Ok(())
    }

    /// The last step of [`move_slot`](Self::move_slot) left out by
    /// [`move_slot_but_tell_target_later`](Self::move_slot_but_tell_target_later): tells the
    /// primary at `to` that it serves `slot` (`CLUSTER SETSLOT … NODE`).
    ///
    /// # Errors
    /// When the node refuses.
    pub fn tell_target(&self, slot: u16, to: usize) -> std::io::Result<()> {
        let slot_text = slot.to_string();
        let target_id = self.node_id(to);
        set_slot(
            &self.nodes[to],
            &["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id],
        )
    }

    /// Runs `redis-cli` with `args` on every running node, and returns the outputs.
    pub fn cli_all(&self, args: &[&str]) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.cli(args))
            .collect()
    }

    /// The number of keys on the running primaries (`DBSIZE` summed).
    pub fn key_count(&self) -> u64 {
        self.primaries()
            .into_iter()
            .map(|i| self.nodes[i].cli(&["DBSIZE"]).parse::<u64>().unwrap_or(0))
            .sum()
    }

    /// Waits until every running node reports `cluster_state:ok`, the running primaries
    /// serve all 16,384 slots between them, every running replica is in sync with its
    /// primary, and every running node's `CLUSTER NODES` names the same primaries.
    ///
    /// # Errors
    /// When that takes longer than `timeout`; the message says what was missing.
    pub fn wait_ok(&self, timeout: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.not_ok() {
                None => return Ok(()),
                Some(what) if Instant::now() > deadline => {
                    return Err(std::io::Error::other(format!(
                        "cluster not ready after {timeout:?}: {what}"
                    )))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn not_ok(&self) -> Option<String> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            if !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                return Some(format!("node {} is not ok", node.port()));
            }
        }
        let primaries = self.primaries();
        let served: usize = primaries
            .iter()
            .flat_map(|&i| self.slots_of(i))
            .map(|r| r.count())
            .sum();
        if served != 16_384 {
            return Some(format!("the primaries serve {served} slots"));
        }
        for &i in &(0..self.nodes.len()).collect::<Vec<_>>() {
            if !self.is_running(i) || self.primaries().contains(&i) {
                continue;
            }
            let replication = self.nodes[i].cli(&["INFO", "replication"]);
            if !replication.contains("master_link_status:up") {
                return Some(format!("replica {} is not in sync", self.nodes[i].port()));
            }
        }
        let views: std::collections::HashSet<Vec<String>> = self
            .cli_all(&["CLUSTER", "NODES"])
            .iter()
            .map(|view| {
                let mut masters: Vec<String> = view
                    .lines()
                    .filter(|l| l.contains("master") && !l.contains("fail"))
                    .filter_map(|l| l.split_whitespace().nth(1))
                    .map(|a| a.split('@').next().unwrap_or(a).to_owned())
                    .collect();
                masters.sort();
                masters
            })
            .collect();
        if views.len() != 1 {
            return Some("the nodes do not agree on the primaries yet".to_owned());
        }
        None
    }
}

/// One `CLUSTER SETSLOT` step on `node`, which must answer `OK`.
fn set_slot(node: &RedisServer, args: &[&str]) -> std::io::Result<()> {
    let reply = node.cli(args);
    if reply == "OK" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{args:?} on {}: {reply}",
            node.port()
        )))
    }
}

/// Starts a [`RedisCluster`], or returns `None` (after printing why) when `redis-server` or
/// `redis-cli` is not installed and `CI` is unset; with `CI` set, a missing tool panics.
pub fn cluster_or_skip(server_args: &[&str]) -> Option<RedisCluster> {
    if !redis_available() {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed, and CI is set: the Redis tests must run");
        }
        eprintln!("skipping: redis-server is not installed");
        return None;
    }
    if !require_tool(
        "redis-cli",
        "--version",
        "the cluster tests create the cluster with it",
    ) {
        return None;
    }
    Some(RedisCluster::start(server_args).expect("start the cluster"))
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
