//! Sentinel topologies: a primary, a replica and three Sentinels.

use super::*;

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
