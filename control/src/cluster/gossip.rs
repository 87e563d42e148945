//! Cluster membership by gossip: chitchat (scuttlebutt anti-entropy over per-node versioned
//! key-values, phi-accrual failure detection) over a UDP transport that weft seals with
//! ChaCha20-Poly1305 (RFC 8439) under the cluster key. A datagram that does not open under the
//! key (a node with another key, a forger, garbage) is dropped and counted; nothing readable
//! crosses the wire.
//!
//! Wire format of one gossip datagram: `"WFG1"` (4 octets, also the AEAD's associated data),
//! a 12-octet random nonce, then the sealed chitchat message with its 16-octet tag.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

// chitchat keeps time with tokio's clock; so does "last heard", so that tests can drive it.
use tokio::time::Instant;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chitchat::transport::{Socket, Transport};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, ChitchatMessage, Deserializable,
    FailureDetectorConfig, Serializable,
};

use crate::cluster::view::NodeInfo;

const MAGIC: &[u8; 4] = b"WFG1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest gossip datagram weft sends or reads.
const MAX_DATAGRAM: usize = 65_507;
/// How often a node gossips with a few others.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// Default UDP port of the gossip.
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;
/// chitchat's cluster id: nodes of other clusters ignore each other.
const CLUSTER_ID: &str = "weft";

/// Errors of the cluster key and the gossip.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("cannot read the cluster key file {path}: {source}; create one with `weft keygen > {path}` (the same file on every node)")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the cluster key file {path} is malformed: {why}; it must hold one line of 64 hex digits as `weft keygen` prints it")]
    KeyMalformed { path: String, why: String },
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(std::io::Error),
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

fn random_bytes(buf: &mut [u8]) -> Result<(), GossipError> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(GossipError::Random)
}

impl ClusterKey {
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

    /// Reads and parses a key file.
    pub fn load(path: &Path) -> Result<ClusterKey, GossipError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GossipError::KeyFile {
            path: shown.clone(),
            source,
        })?;
        ClusterKey::parse(&text, &shown)
    }
}

/// Counters of the gossip socket.
#[derive(Debug, Default)]
pub struct GossipCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Datagrams that did not open under the cluster key (wrong key, forged, garbage).
    pub auth_failed: AtomicU64,
    /// Datagrams that opened but held no valid chitchat message.
    pub malformed: AtomicU64,
}

/// Seals and opens gossip datagrams.
struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    fn new(key: &ClusterKey) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
        }
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, GossipError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| GossipError::Random(std::io::ErrorKind::InvalidData.into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        if datagram.len() < MAGIC.len() + NONCE_LEN + TAG_LEN || &datagram[..4] != MAGIC {
            return None;
        }
        let (nonce, sealed) = datagram[4..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: MAGIC,
                },
            )
            .ok()
    }
}

/// chitchat's transport, sealed under the cluster key.
struct SealedTransport {
    key: ClusterKey,
    counters: Arc<GossipCounters>,
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    sealer: Sealer,
    counters: Arc<GossipCounters>,
    buf: Vec<u8>,
}

#[async_trait::async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr).await?;
        Ok(Box::new(SealedSocket {
            socket,
            sealer: Sealer::new(&self.key),
            counters: Arc::clone(&self.counters),
            buf: vec![0u8; MAX_DATAGRAM],
        }))
    }
}

#[async_trait::async_trait]
impl Socket for SealedSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let plain = msg.serialize_to_vec();
        let datagram = self.sealer.seal(&plain)?;
        // A peer that is down (ECONNREFUSED from an earlier datagram) is not an error of
        // the transport; chitchat's failure detector deals with it.
        if self.socket.send_to(&datagram, to).await.is_ok() {
            self.counters.tx.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (n, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            self.counters.rx.fetch_add(1, Ordering::Relaxed);
            let Some(plain) = self.sealer.open(&self.buf[..n]) else {
                self.counters.auth_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match ChitchatMessage::deserialize(&mut plain.as_slice()) {
                Ok(msg) => return Ok((from, msg)),
                Err(_) => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
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
}

impl Gossip {
    pub async fn start(config: GossipConfig) -> Result<Gossip, GossipError> {
        let counters = Arc::new(GossipCounters::default());
        let transport = SealedTransport {
            key: config.key.clone(),
            counters: Arc::clone(&counters),
        };
        Gossip::start_with(config, &transport, counters).await
    }

    /// Starts over any chitchat transport (tests use an in-memory one).
    async fn start_with(
        config: GossipConfig,
        transport: &dyn Transport,
        counters: Arc<GossipCounters>,
    ) -> Result<Gossip, GossipError> {
        let gossip_addr = SocketAddr::V4(SocketAddrV4::new(config.advertise, config.gossip_port));
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
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
            let alive = is_self || live.contains(id);
            let node_state = if !alive {
                NodeState::Dead
            } else if !is_self && since > GOSSIP_INTERVAL * 6 {
                NodeState::Suspect
            } else {
                NodeState::Alive
            };
            let info = NodeInfo::from_key_values(&name, alive, state.key_values());
            out.push(NodeStatus {
                info,
                state: node_state,
                last_heard: (!is_self).then_some(since),
                is_self,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let g = Gossip::start_with(config, transport, Default::default())
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

    #[test]
    fn sealed_datagrams_open_only_under_the_same_key_and_hide_the_content() {
        let k1 = ClusterKey::parse(&ClusterKey::generate_line().unwrap(), "k").unwrap();
        let k2 = ClusterKey::parse(&ClusterKey::generate_line().unwrap(), "k").unwrap();
        let plain = b"node-a 10.0.0.1:4789 endpoints web db";
        let sealed = Sealer::new(&k1).seal(plain).unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"node-a"),
            "the name is readable on the wire"
        );
        assert_eq!(Sealer::new(&k1).open(&sealed).as_deref(), Some(&plain[..]));
        assert_eq!(Sealer::new(&k2).open(&sealed), None, "another key opens it");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(Sealer::new(&k1).open(&tampered), None);
        assert_eq!(Sealer::new(&k1).open(&sealed[..20]), None);
        assert_eq!(Sealer::new(&k1).open(b"garbage"), None);
        // Two seals of one message differ (fresh nonces).
        assert_ne!(Sealer::new(&k1).seal(plain).unwrap(), sealed);
    }
}
