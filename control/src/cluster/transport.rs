//! chitchat's UDP transport, sealed with ChaCha20-Poly1305 (RFC 8439) under the cluster key
//! and protected against replays ([`crate::cluster::replay`]). A datagram that does not open
//! under the key (a node with another key, a forger, garbage), that carries a counter its
//! sender used before, or that is older than the sender's window, is dropped and counted;
//! nothing readable crosses the wire.
//!
//! Wire format of one gossip datagram: `"WFG2"` (4 octets, also the AEAD's associated data),
//! a 12-octet random nonce, then, sealed with its 16-octet tag: the sender's node name (a
//! 2-octet big-endian length, then UTF-8), its incarnation (8 octets, big-endian: chitchat's
//! generation, milliseconds since the Unix epoch at start), the datagram's counter (8
//! octets, big-endian, from 1, one more for every datagram the node sends) and the chitchat
//! message. `"WFG1"` datagrams of older nodes (no name, incarnation or counter) are refused.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};

use super::gossip::{ClusterKey, GossipError};
use super::replay::{Freshness, ReplayGuard};

const MAGIC: &[u8; 4] = b"WFG2";
/// The magic of the format before replay protection.
const OLD_MAGIC: &[u8; 4] = b"WFG1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest gossip datagram weft sends or reads.
pub const MAX_DATAGRAM: usize = 65_507;
/// Source addresses of old-format datagrams remembered so each is logged once.
const MAX_OLD_FORMAT_LOGGED: usize = 256;

/// Random bytes from the kernel (`getrandom(2)`; no file descriptor per call, so running out
/// of descriptors cannot stop the gossip).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), GossipError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| GossipError::Random(e.to_string()))
}

/// Counters of the gossip socket.
#[derive(Debug, Default)]
pub struct GossipCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Datagrams that did not open under the cluster key (wrong key, forged, garbage, or the
    /// format of an older weft).
    pub auth_failed: AtomicU64,
    /// Of `auth_failed`: datagrams in the format of an older weft (`"WFG1"`).
    pub old_format: AtomicU64,
    /// Datagrams that opened but held no valid header or chitchat message.
    pub malformed: AtomicU64,
    /// Datagrams whose counter their sender used before (inside the window), and this
    /// node's own datagrams reflected back: replays.
    pub replayed: AtomicU64,
    /// Datagrams behind their sender's window or of an older incarnation of it.
    pub stale: AtomicU64,
    /// Datagrams of nodes cut off for publishing more than a node may ([`CutOff`]).
    pub cut_off: AtomicU64,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Auth,
    OldFormat,
    Malformed,
    Replayed,
    Stale,
    /// From a node cut off for publishing more than a node may.
    CutOff,
}

/// The nodes cut off for publishing more than a node may (`cluster::gossip` decides): their
/// datagrams are dropped unread, so their heartbeat stops here and the failure detector
/// declares them dead; every node applies the same bounds, so every node cuts them off.
#[derive(Debug, Default)]
pub struct CutOff(std::sync::Mutex<BTreeSet<String>>);

impl CutOff {
    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, node: &str) -> bool {
        self.nodes().contains(node)
    }

    /// Cuts `node` off; true if it was not already.
    pub fn insert(&self, node: &str) -> bool {
        self.nodes().insert(node.to_string())
    }

    /// Keeps only the nodes `keep` says (the cluster forgot the others: they may join anew).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.nodes().retain(|n| keep(n));
    }
}

/// Seals and opens datagrams under the cluster key.
struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    fn new(key: &ClusterKey) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_bytes())),
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
            .map_err(|_| GossipError::Random("the cipher refused to seal".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, Dropped> {
        let (Some(magic), Some(rest)) = (datagram.get(..4), datagram.get(4..)) else {
            return Err(Dropped::Auth);
        };
        if magic == OLD_MAGIC {
            return Err(Dropped::OldFormat);
        }
        if magic != MAGIC || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(Dropped::Auth);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: MAGIC,
                },
            )
            .map_err(|_| Dropped::Auth)
    }
}

/// Who sent a datagram, and its place in the sender's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header<'a> {
    sender: &'a str,
    incarnation: u64,
    counter: u64,
}

impl Header<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        // The node name is at most u16::MAX octets: `Outbound::new` cuts it.
        out.extend_from_slice(&(self.sender.len() as u16).to_be_bytes());
        out.extend_from_slice(self.sender.as_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
    }

    /// The header at the start of `plain` and the chitchat message after it.
    fn read(plain: &[u8]) -> Option<(Header<'_>, &[u8])> {
        let len = u16::from_be_bytes(plain.get(..2)?.try_into().ok()?) as usize;
        let rest = plain.get(2..)?;
        let sender = std::str::from_utf8(rest.get(..len)?).ok()?;
        let rest = rest.get(len..)?;
        let incarnation = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let counter = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
        let header = Header {
            sender,
            incarnation,
            counter,
        };
        Some((header, rest.get(16..)?))
    }
}

/// The sending side: this node's name, incarnation and counter.
pub struct Outbound {
    sealer: Sealer,
    sender: String,
    incarnation: u64,
    /// The last counter used (shared by every socket the transport opens).
    counter: Arc<AtomicU64>,
}

impl Outbound {
    /// Node `sender` in its boot `incarnation`, counting from 1.
    pub fn new(key: &ClusterKey, sender: &str, incarnation: u64) -> Outbound {
        Outbound::sharing(key, sender, incarnation, Arc::default())
    }

    /// Like [`Outbound::new`], with a counter shared by every socket of the transport.
    fn sharing(
        key: &ClusterKey,
        sender: &str,
        incarnation: u64,
        counter: Arc<AtomicU64>,
    ) -> Outbound {
        Outbound {
            sealer: Sealer::new(key),
            sender: sender.to_string(),
            incarnation,
            counter,
        }
    }

    /// One datagram carrying `message` (chitchat's bytes), sealed.
    pub fn seal(&self, message: &[u8]) -> Result<Vec<u8>, GossipError> {
        let counter = self
            .counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_add(1))
            .map_err(|_| GossipError::Random("the datagram counter is exhausted".into()))?
            + 1;
        let header = Header {
            sender: &self.sender,
            incarnation: self.incarnation,
            counter,
        };
        let mut plain = Vec::with_capacity(self.sender.len() + 18 + message.len());
        header.write(&mut plain);
        plain.extend_from_slice(message);
        self.sealer.seal(&plain)
    }
}

/// The receiving side: opens, then checks the sender's window.
pub struct Inbound {
    sealer: Sealer,
    /// This node's name: a datagram that claims it is one of its own, reflected back.
    me: String,
    guard: ReplayGuard,
    cut_off: Arc<CutOff>,
}

impl Inbound {
    /// The receiving side of node `me`.
    pub fn new(key: &ClusterKey, me: &str) -> Inbound {
        Inbound {
            sealer: Sealer::new(key),
            me: me.to_string(),
            guard: ReplayGuard::default(),
            cut_off: Arc::default(),
        }
    }

    /// The same, dropping the datagrams of the nodes in `cut_off`.
    pub fn cutting_off(self, cut_off: Arc<CutOff>) -> Inbound {
        Inbound { cut_off, ..self }
    }

    /// The chitchat message of an authentic, fresh datagram: what `recv` hands chitchat.
    pub fn message(&mut self, datagram: &[u8]) -> Result<ChitchatMessage, Dropped> {
        let message = self.accept(datagram)?;
        ChitchatMessage::deserialize(&mut message.as_slice()).map_err(|_| Dropped::Malformed)
    }

    /// The chitchat message bytes of an authentic, fresh datagram.
    fn accept(&mut self, datagram: &[u8]) -> Result<Vec<u8>, Dropped> {
        let plain = self.sealer.open(datagram)?;
        let (header, message) = Header::read(&plain).ok_or(Dropped::Malformed)?;
        if header.sender == self.me {
            return Err(Dropped::Replayed);
        }
        if self.cut_off.contains(header.sender) {
            return Err(Dropped::CutOff);
        }
        match self
            .guard
            .check(header.sender, header.incarnation, header.counter)
        {
            Freshness::Fresh => Ok(message.to_vec()),
            Freshness::Replayed => Err(Dropped::Replayed),
            Freshness::Stale => Err(Dropped::Stale),
        }
    }
}

/// chitchat's transport, sealed under the cluster key.
pub struct SealedTransport {
    key: ClusterKey,
    node_name: String,
    incarnation: u64,
    counter: Arc<AtomicU64>,
    counters: Arc<GossipCounters>,
    cut_off: Arc<CutOff>,
}

impl SealedTransport {
    /// The transport of node `node_name` in its boot `incarnation` (chitchat's generation).
    pub fn new(
        key: ClusterKey,
        node_name: &str,
        incarnation: u64,
        counters: Arc<GossipCounters>,
    ) -> SealedTransport {
        // A name longer than the header holds is cut (at a character boundary).
        let mut name = node_name.to_string();
        while name.len() > usize::from(u16::MAX) {
            name.pop();
        }
        SealedTransport {
            key,
            node_name: name,
            incarnation,
            counter: Arc::default(),
            counters,
            cut_off: Arc::default(),
        }
    }

    /// The same, dropping the datagrams of the nodes in `cut_off`.
    pub fn cutting_off(self, cut_off: Arc<CutOff>) -> SealedTransport {
        SealedTransport { cut_off, ..self }
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    outbound: Outbound,
    inbound: Inbound,
    counters: Arc<GossipCounters>,
    old_format_from: BTreeSet<SocketAddr>,
    buf: Vec<u8>,
}

#[async_trait::async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr).await?;
        Ok(Box::new(SealedSocket {
            socket,
            outbound: Outbound::sharing(
                &self.key,
                &self.node_name,
                self.incarnation,
                Arc::clone(&self.counter),
            ),
            inbound: Inbound::new(&self.key, &self.node_name)
                .cutting_off(Arc::clone(&self.cut_off)),
            counters: Arc::clone(&self.counters),
            old_format_from: BTreeSet::new(),
            buf: vec![0u8; MAX_DATAGRAM],
        }))
    }
}

impl SealedSocket {
    /// Counts a dropped datagram and logs what needs a person's attention (boundedly).
    fn dropped(&mut self, why: Dropped, from: SocketAddr) {
        let c = &self.counters;
        let count = |a: &AtomicU64| a.fetch_add(1, Ordering::Relaxed) + 1;
        match why {
            Dropped::Auth => {
                count(&c.auth_failed);
            }
            Dropped::OldFormat => {
                count(&c.auth_failed);
                count(&c.old_format);
                if self.old_format_from.len() < MAX_OLD_FORMAT_LOGGED
                    && self.old_format_from.insert(from)
                {
                    log::warn!("gossip from {from} is in the format of an older weft (without replay protection) and is refused; upgrade that node");
                }
            }
            Dropped::Malformed => {
                count(&c.malformed);
            }
            Dropped::CutOff => {
                count(&c.cut_off);
            }
            Dropped::Replayed | Dropped::Stale => {
                let n = count(if why == Dropped::Replayed {
                    &c.replayed
                } else {
                    &c.stale
                });
                // 1, 2, 4, 8, ...: a flood of replays cannot flood the log.
                if n.is_power_of_two() {
                    let what = if why == Dropped::Replayed {
                        "replayed"
                    } else {
                        "stale (behind the sender's window or from an earlier boot)"
                    };
                    log::warn!(
                        "dropped {n} {what} gossip datagram(s) so far, the latest from {from}"
                    );
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Socket for SealedSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let datagram = self.outbound.seal(&msg.serialize_to_vec())?;
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
            let read = self.buf.get(..n).map(|d| self.inbound.message(d));
            match read.unwrap_or(Err(Dropped::Malformed)) {
                Ok(msg) => return Ok((from, msg)),
                Err(why) => self.dropped(why, from),
            }
        }
    }
}

#[cfg(test)]
mod tests;
