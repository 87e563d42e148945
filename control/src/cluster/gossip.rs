//! Cluster membership by gossip: chitchat (scuttlebutt anti-entropy over per-node versioned
//! key-values, phi-accrual failure detection) over the sealed, replay-protected UDP transport
//! of [`crate::cluster::transport`], under the cluster key.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

// chitchat keeps time with tokio's clock; so does "last heard", so that tests can drive it.
use tokio::time::Instant;

use chitchat::transport::Transport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

pub use super::transport::GossipCounters;
use super::transport::{random_bytes, CutOff, SealedTransport};
use crate::cluster::view::NodeInfo;

/// Most keys one node may publish: the bounds of every kind (`cluster::view`: networks,
/// removal markers, endpoints, address blocks, about 10 000 together) with room for kinds a
/// newer weft adds. A node publishing more is cut off ([`CutOff`]).
pub const MAX_KEYS_PER_NODE: usize = 16_384;
/// Most octets of keys and values one node may publish: its 4 096 endpoints with as many
/// aliases as an endpoint may have (64 DNS names of up to 253 octets, about 17 KiB of JSON
/// each) and room for the rest, so a node weft itself runs is never over it.
pub const MAX_BYTES_PER_NODE: usize = 96 << 20;

/// Whether a node's key-values are over what a node may publish; returns (keys, octets).
fn over_bounds<'a>(kvs: impl Iterator<Item = (&'a str, &'a str)>) -> Option<(usize, usize)> {
    let (mut keys, mut bytes) = (0usize, 0usize);
    for (k, v) in kvs {
        keys += 1;
        bytes += k.len() + v.len();
    }
    (keys > MAX_KEYS_PER_NODE || bytes > MAX_BYTES_PER_NODE).then_some((keys, bytes))
}
/// How often a node gossips with a few others.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// Default UDP port of the gossip.
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;
/// chitchat's cluster id: nodes of other clusters ignore each other.
const CLUSTER_ID: &str = "weft";

/// Errors of the cluster key and the gossip.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("cannot read the cluster key file {path}: {source}; create one with `weft keygen --out {path}` (the same file on every node)")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the cluster key file {path} is open to group or others (mode {mode:04o}): whoever reads it can join the cluster and read its gossip; restrict it with `chmod 600 {path}`")]
    KeyPermissions { path: String, mode: u32 },
    #[error("the cluster key file {path} is malformed: {why}; it must hold one line of 64 hex digits as `weft keygen --out FILE` writes it")]
    KeyMalformed { path: String, why: String },
    #[error("cannot get random bytes from the kernel: {0}")]
    Random(String),
    #[error("cannot start the gossip on {addr}: {why}; is another daemon using the port? pass --gossip-port")]
    Start { addr: SocketAddr, why: String },
}

/// A 256-bit cluster key.
#[derive(Clone)]
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// The key's octets.
    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A new random key, as the line `weft keygen` prints.
    pub fn generate_line() -> Result<String, GossipError> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(k.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Parses the key file's text: one line of 64 hex digits (surrounding whitespace
    /// allowed).
    pub fn parse(text: &str, path: &str) -> Result<ClusterKey, GossipError> {
        let malformed = |why: String| GossipError::KeyMalformed {
            path: path.to_string(),
            why,
        };
        let line = text.trim();
        if line.lines().count() > 1 {
            return Err(malformed("it has more than one line".into()));
        }
        if line.chars().count() != 64 {
            return Err(malformed(format!(
                "it has {} characters, not 64",
                line.chars().count()
            )));
        }
        if !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(
                "it holds characters that are not hex digits".into(),
            ));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&line[2 * i..2 * i + 2], 16)
                .map_err(|_| malformed("it holds characters that are not hex digits".into()))?;
        }
        Ok(ClusterKey(key))
    }

    /// Reads and parses a key file, which group and others must have no access to.
    pub fn load(path: &Path) -> Result<ClusterKey, GossipError> {
        use std::io::Read;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let shown = path.display().to_string();
        let file_error = |source| GossipError::KeyFile {
            path: shown.clone(),
            source,
        };
        // The mode of the file that is read, not of whatever the path names a moment later.
        // Non-blocking: a FIFO in its place fails to parse instead of hanging the start.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(file_error)?;
        let meta = file.metadata().map_err(file_error)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_file() && mode & 0o077 != 0 {
            return Err(GossipError::KeyPermissions { path: shown, mode });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(file_error)?;
        ClusterKey::parse(&text, &shown)
    }
}

/// How this node joins the cluster.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub node_name: String,
    pub advertise: Ipv4Addr,
    pub gossip_port: u16,
    pub seeds: Vec<SocketAddr>,
    pub key: ClusterKey,
}

/// Liveness of a node as `weft peers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Alive,
    /// Alive for the failure detector, but not heard from for a while.
    Suspect,
    Dead,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "dead",
        }
    }
}

/// One node of the cluster as the local node sees it now.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub info: NodeInfo,
    pub state: NodeState,
    pub last_heard: Option<Duration>,
    pub is_self: bool,
}

/// A running gossip member.
pub struct Gossip {
    handle: ChitchatHandle,
    pub counters: Arc<GossipCounters>,
    pub node_name: String,
    pub gossip_addr: SocketAddr,
    /// Node -> (last heartbeat seen, when it changed): "last heard".
    heard: std::sync::Mutex<HashMap<String, (u64, Instant)>>,
    published: tokio::sync::Mutex<BTreeMap<String, String>>,
    /// Nodes cut off for publishing more than a node may (shared with the transport).
    cut_off: Arc<CutOff>,
}

impl Gossip {
    pub async fn start(config: GossipConfig) -> Result<Gossip, GossipError> {
        let counters = Arc::new(GossipCounters::default());
        // The incarnation: a restarted node is a new chitchat generation, and its datagrams
        // start a new replay window at the others.
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let cut_off = Arc::new(CutOff::default());
        let transport = SealedTransport::new(
            config.key.clone(),
            &config.node_name,
            generation,
            Arc::clone(&counters),
        )
        .cutting_off(Arc::clone(&cut_off));
        Gossip::start_with(config, generation, &transport, (counters, cut_off)).await
    }

    /// Starts over any chitchat transport (tests use an in-memory one).
    async fn start_with(
        config: GossipConfig,
        generation: u64,
        transport: &dyn Transport,
        (counters, cut_off): (Arc<GossipCounters>, Arc<CutOff>),
    ) -> Result<Gossip, GossipError> {
        let gossip_addr = SocketAddr::V4(SocketAddrV4::new(config.advertise, config.gossip_port));
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(config.node_name.clone(), generation, gossip_addr),
            cluster_id: CLUSTER_ID.to_string(),
            gossip_interval: GOSSIP_INTERVAL,
            listen_addr: gossip_addr,
            seed_nodes: config.seeds.iter().map(|s| s.to_string()).collect(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: 8.0,
                sampling_window_size: 1000,
                max_interval: Duration::from_secs(2),
                initial_interval: GOSSIP_INTERVAL,
                dead_node_grace_period: Duration::from_secs(3600),
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let handle = spawn_chitchat(chitchat_config, Vec::new(), transport)
            .await
            .map_err(|e| GossipError::Start {
                addr: gossip_addr,
                why: format!("{e:#}"),
            })?;
        Ok(Gossip {
            handle,
            counters,
            node_name: config.node_name,
            gossip_addr,
            heard: Default::default(),
            published: Default::default(),
            cut_off,
        })
    }

    /// Makes this node's keyspace equal to `kv`: new and changed keys are set, keys no
    /// longer there are deleted (tombstoned, so the deletion spreads).
    pub async fn publish(&self, kv: BTreeMap<String, String>) {
        let mut published = self.published.lock().await;
        if *published == kv {
            return;
        }
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        let me = chitchat.self_node_state();
        for (k, v) in &kv {
            if published.get(k) != Some(v) {
                me.set(k, v);
            }
        }
        for k in published.keys() {
            if !kv.contains_key(k) {
                me.delete(k);
            }
        }
        *published = kv;
    }

    /// Leaves the cluster (the others declare this node dead after the detection time).
    #[cfg(test)]
    async fn shutdown(self) {
        let _ = self.handle.shutdown().await;
    }

    /// Every node known, parsed, with its liveness and when it was last heard.
    pub async fn nodes(&self) -> Vec<NodeStatus> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        let me = chitchat.self_chitchat_id().clone();
        let live: std::collections::HashSet<ChitchatId> = chitchat.live_nodes().cloned().collect();
        let now = Instant::now();
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        // The newest generation of each node name (a restarted node is a new generation).
        let mut newest: BTreeMap<String, &ChitchatId> = BTreeMap::new();
        for id in chitchat.node_states().keys() {
            let keep = newest
                .get(&*id.node_id)
                .is_none_or(|cur| cur.generation_id < id.generation_id);
            if keep {
                newest.insert(id.node_id.to_string(), id);
            }
        }
        // Forget the nodes chitchat forgot: the map never outgrows the cluster, and a node
        // cut off may join anew once forgotten.
        heard.retain(|name, _| newest.contains_key(name));
        self.cut_off.retain(|name| newest.contains_key(name));
        for (name, id) in newest {
            let Some(state) = chitchat.node_state(id) else {
                continue;
            };
            let is_self = *id == me;
            let beat = u64::from(state.heartbeat());
            let entry = heard.entry(name.clone()).or_insert((beat, now));
            if entry.0 != beat {
                *entry = (beat, now);
            }
            let since = now.saturating_duration_since(entry.1);
            let cut_off = !is_self && self.cut_off(&name, state);
            let alive = is_self || (live.contains(id) && !cut_off);
            let node_state = if !alive {
                NodeState::Dead
            } else if !is_self && since > GOSSIP_INTERVAL * 6 {
                NodeState::Suspect
            } else {
                NodeState::Alive
            };
            let info = if cut_off {
                NodeInfo::from_key_values(&name, false, std::iter::empty())
            } else {
                NodeInfo::from_key_values(&name, alive, state.key_values())
            };
            out.push(NodeStatus {
                info,
                state: node_state,
                last_heard: (!is_self).then_some(since),
                is_self,
            });
        }
        out
    }

    /// Whether node `name` is cut off: it was, or its key-values are over the bounds now
    /// (then it is cut off from here on, and that is logged).
    fn cut_off(&self, name: &str, state: &chitchat::NodeState) -> bool {
        if self.cut_off.contains(name) {
            return true;
        }
        let Some((keys, bytes)) = over_bounds(state.key_values()) else {
            return false;
        };
        self.cut_off.insert(name);
        log::error!(
            "node {name} publishes {keys} keys of {bytes} octets, more than a node may ({MAX_KEYS_PER_NODE} keys, {MAX_BYTES_PER_NODE} octets): it is cut off (its gossip dropped, its entries out of every table) until the cluster forgets it"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::transport::MAX_DATAGRAM;
    use crate::cluster::view::ClusterView;
    use chitchat::transport::ChannelTransport;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], DEFAULT_GOSSIP_PORT))
    }

    async fn member(i: u8, transport: &ChannelTransport) -> Gossip {
        let config = GossipConfig {
            node_name: format!("node{i}"),
            advertise: Ipv4Addr::new(10, 0, 0, i),
            gossip_port: DEFAULT_GOSSIP_PORT,
            seeds: if i == 1 { vec![] } else { vec![addr(1)] },
            key: ClusterKey([7; 32]),
        };
        let g = Gossip::start_with(config, u64::from(i), transport, Default::default())
            .await
            .unwrap();
        let mut kv = BTreeMap::new();
        kv.insert("vtep".to_string(), format!("10.0.0.{i}:4789"));
        kv.insert(
            format!("ep:42:02:42:0a:09:00:{i:02x}"),
            format!(r#"{{"ip":"10.9.0.{i}","name":"c{i}"}}"#),
        );
        g.publish(kv).await;
        g
    }

    async fn view(g: &Gossip) -> (Vec<NodeStatus>, ClusterView) {
        let nodes = g.nodes().await;
        let view = ClusterView::new(&g.node_name, nodes.iter().map(|n| n.info.clone()).collect());
        (nodes, view)
    }

    /// Advances tokio's (paused) clock in gossip-interval steps until `done` or `limit`;
    /// returns the time it took.
    async fn wait_until(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done().await {
                return Some(start.elapsed());
            }
            tokio::time::sleep(GOSSIP_INTERVAL).await;
        }
        None
    }

    #[test]
    fn a_node_over_the_bounds_is_named() {
        let key = |i: usize| format!("other:{i:05}");
        let keys: Vec<String> = (0..=MAX_KEYS_PER_NODE).map(key).collect();
        let many = keys.iter().map(|k| (k.as_str(), "v"));
        assert_eq!(over_bounds(many.clone().skip(1)), None);
        assert_eq!(over_bounds(many).map(|b| b.0), Some(MAX_KEYS_PER_NODE + 1));
        let big = "x".repeat(MAX_BYTES_PER_NODE);
        assert!(over_bounds([("ep:1", big.as_str())].into_iter()).is_some());
    }

    /// A node publishing more keys than a node may is cut off by the others: it is dead to
    /// them and its entries leave their tables, while it stays alive to itself.
    #[tokio::test(start_paused = true)]
    async fn a_node_publishing_too_much_is_cut_off() {
        let transport = ChannelTransport::with_mtu(MAX_DATAGRAM);
        let n1 = member(1, &transport).await;
        let n2 = member(2, &transport).await;
        let both = wait_until(Duration::from_secs(30), async || {
            view(&n1).await.1.remote_endpoints().len() == 1
        })
        .await;
        assert!(both.is_some(), "the nodes never saw each other");
        let mut kv = n2.published.lock().await.clone();
        kv.extend((0..=MAX_KEYS_PER_NODE).map(|i| (format!("junk:{i}"), "x".to_string())));
        n2.publish(kv).await;
        let cut = wait_until(Duration::from_secs(120), async || {
            let (nodes, view) = view(&n1).await;
            nodes
                .iter()
                .any(|n| n.info.name == "node2" && n.state == NodeState::Dead)
                && view.remote_endpoints().is_empty()
        })
        .await;
        assert!(cut.is_some(), "node2 was not cut off");
        assert!(n1.cut_off.contains("node2"));
    }

    /// Membership, table derivation and node death with chitchat on an in-memory transport
    /// and time driven by the test (tokio's paused clock).
    #[tokio::test(start_paused = true)]
    async fn members_find_each_other_and_a_dead_node_leaves_every_table() {
        let transport = ChannelTransport::with_mtu(MAX_DATAGRAM);
        let n1 = member(1, &transport).await;
        let n2 = member(2, &transport).await;
        let n3 = member(3, &transport).await;
        let joined = wait_until(Duration::from_secs(30), async || {
            let mut all = true;
            for g in [&n1, &n2, &n3] {
                let (nodes, view) = view(g).await;
                all &= nodes.iter().filter(|n| n.state == NodeState::Alive).count() == 3
                    && view.remote_endpoints().len() == 2;
            }
            all
        })
        .await;
        assert!(joined.is_some(), "three nodes never saw each other");
        let (_, v2) = view(&n2).await;
        assert_eq!(
            v2.flood_list(42).len(),
            2,
            "node2 floods to node1 and node3"
        );

        // node3 stops: the others declare it dead, and its endpoint leaves their tables.
        n3.shutdown().await;
        let gone = wait_until(Duration::from_secs(60), async || {
            let (nodes, view) = view(&n1).await;
            nodes
                .iter()
                .any(|n| n.info.name == "node3" && n.state == NodeState::Dead)
                && view.remote_endpoints().iter().all(|r| r.node != "node3")
                && !view.flood_list(42).values().any(|n| n == "node3")
        })
        .await
        .expect("node3 never declared dead");
        assert!(
            gone <= Duration::from_secs(30),
            "dead node detected only after {gone:?} (bound: 30 s)"
        );
        eprintln!("joined after {joined:?}, node3 declared dead after {gone:?} (gossip time)");
        let (_, v1) = view(&n1).await;
        assert_eq!(v1.remote_endpoints().len(), 1);
        assert_eq!(v1.remote_endpoints()[0].node, "node2");

        // A partition: node2 cut off from node1 both ways is dead for node1, and heals.
        transport.remove_link(addr(1), addr(2)).await;
        transport.remove_link(addr(2), addr(1)).await;
        let cut = wait_until(Duration::from_secs(60), async || {
            let (nodes, _) = view(&n1).await;
            nodes
                .iter()
                .any(|n| n.info.name == "node2" && n.state == NodeState::Dead)
        })
        .await;
        assert!(cut.is_some(), "a partitioned node stayed alive");
        transport.add_link(addr(1), addr(2)).await;
        transport.add_link(addr(2), addr(1)).await;
        let healed = wait_until(Duration::from_secs(60), async || {
            let (_, view) = view(&n1).await;
            view.remote_endpoints().iter().any(|r| r.node == "node2")
        })
        .await;
        assert!(
            healed.is_some(),
            "tables did not converge after the partition healed"
        );
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        /// Removes the test's directory, also when the test fails.
        struct TempDir(std::path::PathBuf);
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir =
            TempDir(std::env::temp_dir().join(format!("weft-key-test-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("cluster.key");
        std::fs::write(&path, ClusterKey::generate_line().unwrap()).unwrap();
        let shown = path.display().to_string();
        let mut refused = Vec::new();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            match ClusterKey::load(&path) {
                Ok(_) => refused.push(format!("{mode:04o} accepted")),
                Err(e) => {
                    let e = e.to_string();
                    if !e.contains(&shown) || !e.contains(&format!("chmod 600 {shown}")) {
                        refused.push(format!("{mode:04o}: {e}"));
                    }
                }
            }
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if let Err(e) = ClusterKey::load(&path) {
                refused.push(format!("{mode:04o} refused: {e}"));
            }
        }
        assert!(refused.is_empty(), "{refused:#?}");
    }

    #[test]
    fn keys_parse_from_one_hex_line_and_bad_files_say_why() {
        let line = ClusterKey::generate_line().unwrap();
        assert_eq!(line.len(), 64);
        assert!(ClusterKey::parse(&format!("{line}\n"), "k").is_ok());
        for (text, why) in [
            ("", "0 characters"),
            ("abc", "3 characters"),
            (&"zz".repeat(32), "not hex"),
            (&format!("{line}\n{line}"), "more than one line"),
            (&"+f".repeat(32), "not hex"),
            (&format!("a{}a", "é".repeat(31)), "33 characters"),
        ] {
            let e = ClusterKey::parse(text, "k").unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(e.contains("weft keygen"), "{e}");
        }
        let e = ClusterKey::load(Path::new("/nonexistent/weft.key"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read") && e.contains("weft keygen"),
            "{e}"
        );
    }
}
