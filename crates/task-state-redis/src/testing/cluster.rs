//! Redis Clusters: three primaries and three replicas, slots moved on request.

use super::*;

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
    /// When a node cannot be started, `redis-cli --cluster create` fails three times (each
    /// time on six new nodes), or the cluster is not ready within 60 s.
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
        // Once in a while (beside other tests' clusters) `redis-cli --cluster create` fails
        // at once: the nodes are dropped (killed) and six new ones tried, up to three times.
        let mut failures = Vec::new();
        for _ in 0..3 {
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
                failures.push(format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
                continue;
            }
            let cluster = RedisCluster {
                nodes,
                args: args.iter().map(|a| a.to_string()).collect(),
            };
            cluster.wait_ok(Duration::from_secs(60))?;
            return Ok(cluster);
        }
        Err(std::io::Error::other(format!(
            "redis-cli --cluster create failed three times: {}",
            failures.join(" / ")
        )))
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
