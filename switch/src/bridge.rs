//! The bridge: networks, ports, and the per-frame forwarding decision.
//!
//! A [`Bridge`] hosts any number of *networks* — independent broadcast
//! domains, the userspace equivalent of one Linux bridge device (a Docker
//! network) each — and *ports*, each attached to exactly one network. Every
//! network has its own [`Fdb`] and configuration, and a frame received on a
//! port is only ever forwarded or flooded to ports of the same network.
//!
//! [`Bridge::process`] implements the relay function of an IEEE 802.1D
//! transparent bridge for one frame: frame validation, learning of the
//! source address (§7.8), filtering of frames destined to the ingress
//! segment (§7.7.1), and forwarding to the learned port or flooding to all
//! other ports of the network for group and unknown destinations (§7.7).
//! Aging of learned entries follows §7.9.2 using caller-supplied time.

use std::collections::HashMap;
use std::fmt;
use std::iter::FusedIterator;
use std::net::Ipv4Addr;
use std::slice;
use std::time::Duration;

use crate::counters::DropReason;
use crate::fdb::{Fdb, FdbEntry, LearnOutcome};
use crate::frame::{EthernetFrame, ETHERNET_HEADER_LEN, ETHERTYPE_VLAN, VLAN_TAG_LEN};
use crate::gateway::{GatewayConfig, GatewayTask, Neighbor, Offload, Responder};
use crate::mac::MacAddr;
use crate::time::Timestamp;

/// Identifies a bridge port (a TAP device, a vhost-user socket, a tunnel…).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PortId(pub u32);

impl fmt::Display for PortId {
    /// The bare number, e.g. `7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Identifies a network: one broadcast domain with its own FDB.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NetworkId(pub u32);

impl fmt::Display for NetworkId {
    /// The bare number, e.g. `3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Per-network settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Learned FDB entries not refreshed for this long are aged out
    /// (IEEE 802.1D §7.9.2 *Ageing Time*; default 300 s, the 802.1D
    /// recommended value and the Linux bridge default).
    pub aging: Duration,
    /// Largest payload of a non-GSO frame, excluding the 14-byte Ethernet
    /// header (and a 4-byte 802.1Q tag, if present). Default 1500.
    pub mtu: u16,
    /// Largest number of learned FDB entries in the network (static entries
    /// are not counted). Default 8192.
    pub max_fdb_entries: usize,
    /// Largest number of learned FDB entries pointing at any one port.
    /// Default 1024.
    pub max_fdb_entries_per_port: usize,
    /// The network's gateway, answering ARP and ICMP echo for its address
    /// (see [`crate::gateway`]). Default `None`.
    pub gateway: Option<GatewayConfig>,
    /// Inter-container communication (Docker's `--icc`). When false, the ports of the
    /// network reach the gateway only: every frame that is not for the gateway is dropped
    /// as [`DropReason::IccDenied`] instead of being forwarded or flooded. Default true.
    pub icc: bool,
}

impl NetworkConfig {
    /// Default [`NetworkConfig::aging`]: 300 s.
    pub const DEFAULT_AGING: Duration = Duration::from_secs(300);
    /// Default [`NetworkConfig::mtu`]: 1500.
    pub const DEFAULT_MTU: u16 = 1500;
    /// Default [`NetworkConfig::max_fdb_entries`]: 8192.
    pub const DEFAULT_MAX_FDB_ENTRIES: usize = 8192;
    /// Default [`NetworkConfig::max_fdb_entries_per_port`]: 1024.
    pub const DEFAULT_MAX_FDB_ENTRIES_PER_PORT: usize = 1024;
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            aging: Self::DEFAULT_AGING,
            mtu: Self::DEFAULT_MTU,
            max_fdb_entries: Self::DEFAULT_MAX_FDB_ENTRIES,
            max_fdb_entries_per_port: Self::DEFAULT_MAX_FDB_ENTRIES_PER_PORT,
            gateway: None,
            icc: true,
        }
    }
}

/// Learning and aging statistics of one network's FDB, and the statistics
/// of its gateway and ARP responder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Learned entries created (including re-learning after aging out).
    pub learned: u64,
    /// Live learned entries that moved to another port.
    pub mac_moves: u64,
    /// Source addresses not learned because a bound was reached.
    pub learn_refused_table_full: u64,
    /// Learned entries that aged out (802.1D §7.9.2), whether removed by
    /// [`Bridge::expire`] or found stale and replaced by learning.
    pub aged_out: u64,
    /// ARP requests for registered neighbours answered by the switch instead
    /// of being flooded (ARP suppression, see [`Bridge::set_neighbor`]).
    pub arp_suppressed: u64,
    /// ARP requests for the gateway's address answered.
    pub gateway_arp_replies: u64,
    /// ICMP echo requests to the gateway's address answered.
    pub gateway_echo_replies: u64,
}

/// Errors of the bridge's control-plane operations.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum BridgeError {
    /// `add_network` with an id already in use.
    #[error("network {0} already exists")]
    NetworkExists(NetworkId),
    /// The network id is not known.
    #[error("unknown network {0}")]
    UnknownNetwork(NetworkId),
    /// `remove_network` while the network still has ports (how many).
    #[error("network {0} still has {1} port(s); remove them first")]
    NetworkHasPorts(NetworkId, usize),
    /// `add_port` with an id already in use (in any network).
    #[error("port {0} already exists")]
    PortExists(PortId),
    /// The port id is not known.
    #[error("unknown port {0}")]
    UnknownPort(PortId),
    /// A static entry names a port of another network.
    #[error("port {port} is not attached to network {network}")]
    PortNotInNetwork {
        /// The port given.
        port: PortId,
        /// The network the entry was meant for.
        network: NetworkId,
    },
    /// `remove_static` for an address without a static entry.
    #[error("network {network} has no static FDB entry for {mac}")]
    NoStaticEntry {
        /// The network searched.
        network: NetworkId,
        /// The address given.
        mac: MacAddr,
    },
    /// The address is an endpoint's, pinned to its port.
    #[error("{mac} is the MAC of an endpoint attached to network {network}; it is pinned to that endpoint's port")]
    MacPinned {
        /// The network.
        network: NetworkId,
        /// The address given.
        mac: MacAddr,
    },
    /// Static entries must be individual (unicast), non-zero addresses.
    #[error("{0} cannot be a static FDB entry: only unicast, non-zero addresses can")]
    InvalidStaticMac(MacAddr),
    /// A gateway needs a unicast, non-zero MAC and a unicast IP (see
    /// [`GatewayConfig::is_valid`]).
    #[error("invalid gateway {} at {}: the MAC must be unicast and non-zero, the IP unicast", .0.ip, .0.mac)]
    InvalidGateway(GatewayConfig),
    /// A neighbour needs a unicast, non-zero MAC and a unicast IP (see
    /// [`Neighbor::is_valid`]).
    #[error("invalid neighbour {} at {}: the MAC must be unicast and non-zero, the IP unicast", .0.ip, .0.mac)]
    InvalidNeighbor(Neighbor),
}

mod verdict;
pub use verdict::{FloodSet, TraceStep, Verdict};

mod port_security;
pub use port_security::PortBinding;

mod tables;
use tables::{DryRun, Tables};

#[derive(Debug)]
struct Network {
    config: NetworkConfig,
    /// Sorted, so flood sets come out in a stable order and the ingress
    /// port is found by binary search.
    ports: Vec<PortId>,
    fdb: Fdb,
    /// Neighbours for ARP suppression and gateway statistics.
    responder: Responder,
}

#[derive(Debug)]
struct Port {
    network: NetworkId,
    /// The endpoint attached, once the control plane said (see [`Bridge::bind_port`]).
    binding: Option<PortBinding>,
}

/// A multi-network learning bridge (pure: no I/O, no clock).
///
/// See the [crate documentation](crate) for an overview and an example.
#[derive(Debug, Default)]
pub struct Bridge {
    networks: HashMap<NetworkId, Network>,
    ports: HashMap<PortId, Port>,
}

impl Bridge {
    /// An empty bridge, without networks or ports.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates network `id`, pre-sizing its FDB from `config`. An invalid
    /// gateway is refused with [`BridgeError::InvalidGateway`].
    pub fn add_network(&mut self, id: NetworkId, config: NetworkConfig) -> Result<(), BridgeError> {
        if self.networks.contains_key(&id) {
            return Err(BridgeError::NetworkExists(id));
        }
        check_gateway(&config)?;
        let fdb = Fdb::new(&config);
        self.networks.insert(
            id,
            Network {
                config,
                ports: Vec::new(),
                fdb,
                responder: Responder::default(),
            },
        );
        Ok(())
    }

    /// Replaces the configuration of network `id`. A new aging time applies
    /// to existing entries at once; smaller bounds evict the least recently
    /// seen learned entries (see [`Fdb::reconfigure`]). A new gateway applies
    /// to the next frame; registered neighbours are kept.
    pub fn set_network_config(
        &mut self,
        id: NetworkId,
        config: NetworkConfig,
    ) -> Result<(), BridgeError> {
        let net = self
            .networks
            .get_mut(&id)
            .ok_or(BridgeError::UnknownNetwork(id))?;
        check_gateway(&config)?;
        net.fdb.reconfigure(&config);
        net.config = config;
        Ok(())
    }

    /// The configuration of network `id`.
    pub fn network_config(&self, id: NetworkId) -> Option<&NetworkConfig> {
        self.networks.get(&id).map(|n| &n.config)
    }

    /// Removes network `id`, which must have no ports left
    /// ([`BridgeError::NetworkHasPorts`] otherwise).
    pub fn remove_network(&mut self, id: NetworkId) -> Result<(), BridgeError> {
        let net = self
            .networks
            .get(&id)
            .ok_or(BridgeError::UnknownNetwork(id))?;
        if !net.ports.is_empty() {
            return Err(BridgeError::NetworkHasPorts(id, net.ports.len()));
        }
        self.networks.remove(&id);
        Ok(())
    }

    /// Attaches a new port to `network`.
    pub fn add_port(&mut self, port: PortId, network: NetworkId) -> Result<(), BridgeError> {
        if self.ports.contains_key(&port) {
            return Err(BridgeError::PortExists(port));
        }
        let net = self
            .networks
            .get_mut(&network)
            .ok_or(BridgeError::UnknownNetwork(network))?;
        if let Err(at) = net.ports.binary_search(&port) {
            net.ports.insert(at, port);
        }
        net.fdb.add_port(port);
        self.ports.insert(
            port,
            Port {
                network,
                binding: None,
            },
        );
        Ok(())
    }

    /// Detaches `port`, discarding every FDB entry
    /// (learned and static) pointing at it.
    pub fn remove_port(&mut self, port: PortId) -> Result<(), BridgeError> {
        let state = self
            .ports
            .remove(&port)
            .ok_or(BridgeError::UnknownPort(port))?;
        if let Some(net) = self.networks.get_mut(&state.network) {
            if let Ok(at) = net.ports.binary_search(&port) {
                net.ports.remove(at);
            }
            net.fdb.remove_port(port);
        }
        Ok(())
    }

    /// The network `port` is attached to.
    pub fn port_network(&self, port: PortId) -> Option<NetworkId> {
        self.ports.get(&port).map(|p| p.network)
    }

    /// The ports of `network` in ascending order; empty if the network is
    /// unknown.
    pub fn network_ports(&self, network: NetworkId) -> &[PortId] {
        self.networks.get(&network).map_or(&[], |n| &n.ports)
    }

    /// Installs a static FDB entry (802.1D §7.9.1) for `mac` on `port`,
    /// replacing any learned or static entry for `mac` in `network`. Static
    /// entries are never aged nor moved by learning; they are removed with
    /// [`Bridge::remove_static`] or together with their port.
    pub fn add_static(
        &mut self,
        network: NetworkId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), BridgeError> {
        let net = self
            .networks
            .get_mut(&network)
            .ok_or(BridgeError::UnknownNetwork(network))?;
        if mac.is_multicast() || mac.is_zero() {
            return Err(BridgeError::InvalidStaticMac(mac));
        }
        let state = self
            .ports
            .get(&port)
            .ok_or(BridgeError::UnknownPort(port))?;
        if state.network != network {
            return Err(BridgeError::PortNotInNetwork { port, network });
        }
        if !net.fdb.insert_static(mac, port) {
            return Err(BridgeError::MacPinned { network, mac });
        }
        Ok(())
    }

    /// Binds `port` to the endpoint attached to it: its MAC is pinned to the port in the
    /// FDB ([`FdbOrigin::Endpoint`](crate::FdbOrigin::Endpoint): never moved or deleted by
    /// learning, and a frame from another port claiming it is
    /// [`DropReason::SpoofedMac`]), and with `binding.security` the port may send only as
    /// the endpoint (see [`PortBinding`]). Replaces an earlier binding of the port.
    pub fn bind_port(&mut self, port: PortId, binding: PortBinding) -> Result<(), BridgeError> {
        let state = self
            .ports
            .get_mut(&port)
            .ok_or(BridgeError::UnknownPort(port))?;
        let network = state.network;
        let net = self
            .networks
            .get_mut(&network)
            .ok_or(BridgeError::UnknownNetwork(network))?;
        let mac = binding.mac;
        if mac.is_multicast() || mac.is_zero() {
            return Err(BridgeError::InvalidStaticMac(mac));
        }
        if !net.fdb.pin(mac, port) {
            return Err(BridgeError::MacPinned { network, mac });
        }
        if let Some(old) = state.binding.replace(binding).filter(|old| old.mac != mac) {
            net.fdb.unpin(old.mac);
        }
        Ok(())
    }

    /// The endpoint `port` is bound to, if any.
    pub fn port_binding(&self, port: PortId) -> Option<PortBinding> {
        self.ports.get(&port)?.binding
    }

    /// The gateway of the network `port` belongs to, if it has one.
    pub fn port_gateway(&self, port: PortId) -> Option<GatewayConfig> {
        let network = self.ports.get(&port)?.network;
        self.networks.get(&network)?.config.gateway
    }

    /// Learns `mac` on `port` at `now` as if a frame from it had arrived there (same bounds,
    /// moves and aging as learning from traffic). The control plane uses it when it knows
    /// where a station is before the station has sent anything: an endpoint's MAC on its
    /// port when it connects, so that the first unicast to it — after an ARP request the
    /// switch answered itself — is not flooded as unknown unicast.
    pub fn learn_at(
        &mut self,
        now: Timestamp,
        port: PortId,
        mac: MacAddr,
    ) -> Result<LearnOutcome, BridgeError> {
        let state = self
            .ports
            .get(&port)
            .ok_or(BridgeError::UnknownPort(port))?;
        let net = self
            .networks
            .get_mut(&state.network)
            .ok_or(BridgeError::UnknownNetwork(state.network))?;
        Ok(net.fdb.learn(mac, port, now))
    }

    /// Removes the static entry for `mac` in `network`.
    pub fn remove_static(&mut self, network: NetworkId, mac: MacAddr) -> Result<(), BridgeError> {
        let net = self
            .networks
            .get_mut(&network)
            .ok_or(BridgeError::UnknownNetwork(network))?;
        if net.fdb.remove_static(mac) {
            Ok(())
        } else {
            Err(BridgeError::NoStaticEntry { network, mac })
        }
    }

    /// The forwarding decision for one frame that entered on `in_port`, with the offloads it
    /// arrived with (`offload.gso`: a segmentation-offload superframe, whose length may exceed
    /// the MTU legitimately).
    /// Counts nothing per port: the adapter counts the frame as received on `in_port` (even
    /// when dropped) and the reason of a [`Verdict::Drop`] (except
    /// [`DropReason::UnknownPort`]), outside the bridge.
    ///
    /// In order:
    ///
    /// 1. unknown `in_port`: [`DropReason::UnknownPort`];
    /// 2. (the frame's network is the ingress port's);
    /// 3. validation: shorter than 14 bytes is a [`DropReason::Runt`]; a
    ///    non-GSO frame longer than MTU + 14 (+4 for an 802.1Q tag) is
    ///    [`DropReason::Oversized`]; a group or all-zero source address is
    ///    [`DropReason::InvalidSourceMac`];
    /// 4. learning of the source address (802.1D §7.8, see [`Fdb::learn`]),
    ///    except the gateway's own MAC, which is never learned on a port;
    /// 5. [`Verdict::ToGateway`] for a frame addressed to the gateway's MAC,
    ///    and for an ARP request (RFC 826) the switch answers itself: one for
    ///    the gateway's IP, or for a registered neighbour's IP from a station
    ///    other than that neighbour (ARP suppression; with or without a
    ///    gateway, whatever the destination MAC). Other ARP traffic —
    ///    requests for unknown addresses, replies, announcements — is
    ///    bridged as usual. See [`crate::gateway`];
    /// 6. a group destination is flooded; a unicast destination with a live
    ///    FDB entry is forwarded to its port, or filtered as
    ///    [`DropReason::SameSegment`] if that is `in_port` (802.1D §7.7.1);
    ///    an unknown unicast destination is flooded;
    /// 7. a flood with no other port in the network is
    ///    [`DropReason::NoDestination`].
    ///
    /// Never panics and does not allocate.
    pub fn process(
        &mut self,
        now: Timestamp,
        in_port: PortId,
        frame: &[u8],
        offload: Offload,
    ) -> Verdict<'_> {
        self.process_traced(now, in_port, frame, offload, &mut |_| {})
    }

    /// [`Bridge::process`], reporting each step of the decision to `observe` as it is taken
    /// (`weft trace`): the ingress network, the checks a frame fails, what learning did,
    /// the gateway's interception, ICC, the FDB lookup and the flood. Learning and statistics
    /// happen exactly as in `process`, which is this with an observer that does nothing.
    pub fn process_traced(
        &mut self,
        now: Timestamp,
        in_port: PortId,
        frame: &[u8],
        offload: Offload,
        observe: &mut impl FnMut(TraceStep),
    ) -> Verdict<'_> {
        let Some((network, binding)) = self.ingress(in_port, observe) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        // None is unreachable: a port's network cannot be removed while it has ports.
        let Some(net) = self.networks.get_mut(&network) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        observe(TraceStep::Ingress { network });
        decide(net, now, (in_port, binding), frame, offload, observe)
    }

    /// The decision [`Bridge::process_traced`] would take for `frame` entering `in_port` at
    /// `now`, reported step by step, changing nothing: no learning (the step says what
    /// learning would do), no statistics (`weft trace --inject`, a synthetic frame on the live
    /// tables). The same code as `process`, with the tables read-only.
    pub fn simulate_traced(
        &self,
        now: Timestamp,
        in_port: PortId,
        frame: &[u8],
        offload: Offload,
        observe: &mut impl FnMut(TraceStep),
    ) -> Verdict<'_> {
        let Some((network, binding)) = self.ingress(in_port, observe) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let Some(net) = self.networks.get(&network) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        observe(TraceStep::Ingress { network });
        let tables = DryRun(net, None);
        decide(tables, now, (in_port, binding), frame, offload, observe)
    }

    /// The network of `in_port` and its binding where port security is on; None (observed
    /// as [`TraceStep::UnknownPort`]) for a port the bridge does not know.
    fn ingress(
        &self,
        in_port: PortId,
        observe: &mut impl FnMut(TraceStep),
    ) -> Option<(NetworkId, Option<PortBinding>)> {
        let Some(port) = self.ports.get(&in_port) else {
            observe(TraceStep::UnknownPort);
            return None;
        };
        Some((port.network, port.binding.filter(|b| b.security)))
    }

    /// Registers the binding `ip -> mac` (an address allocated from IPAM) in
    /// `network` for ARP suppression: ARP requests for `ip` from other
    /// stations are answered by the switch with `mac` instead of being
    /// flooded. Replaces an existing binding for `ip`. The gateway takes
    /// precedence over a neighbour with the same address.
    ///
    /// Errors: [`BridgeError::UnknownNetwork`], and
    /// [`BridgeError::InvalidNeighbor`] unless `mac` is unicast and non-zero
    /// and `ip` unicast.
    pub fn set_neighbor(
        &mut self,
        network: NetworkId,
        ip: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<(), BridgeError> {
        let net = self
            .networks
            .get_mut(&network)
            .ok_or(BridgeError::UnknownNetwork(network))?;
        let neighbor = Neighbor { ip, mac };
        if !neighbor.is_valid() {
            return Err(BridgeError::InvalidNeighbor(neighbor));
        }
        net.responder.set_neighbor(ip, mac);
        Ok(())
    }

    /// Removes the binding for `ip` from `network`; requests for it are
    /// flooded again. Removing a missing binding is not an error.
    pub fn remove_neighbor(&mut self, network: NetworkId, ip: Ipv4Addr) -> Result<(), BridgeError> {
        let net = self
            .networks
            .get_mut(&network)
            .ok_or(BridgeError::UnknownNetwork(network))?;
        net.responder.remove_neighbor(ip);
        Ok(())
    }

    /// The neighbours registered in `network`, sorted by IP (the gateway is
    /// not included). Empty if the network is unknown.
    pub fn neighbors(&self, network: NetworkId) -> Vec<Neighbor> {
        self.networks
            .get(&network)
            .map_or_else(Vec::new, |n| n.responder.neighbors())
    }

    /// Removes learned entries older than the network's aging time; returns how many.
    ///
    /// Aged-out entries already count as absent before this runs, so calling
    /// it (e.g. once a second) only reclaims their space.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        self.networks.values_mut().map(|n| n.fdb.expire(now)).sum()
    }

    /// Entries of one network (learned ones not yet aged out at `now`), sorted by MAC.
    /// Empty if the network is unknown.
    pub fn fdb_entries(&self, network: NetworkId, now: Timestamp) -> Vec<FdbEntry> {
        self.networks
            .get(&network)
            .map_or_else(Vec::new, |n| n.fdb.entries(now))
    }

    /// The live FDB entry for `mac` in `network` at `now`.
    pub fn lookup(&self, network: NetworkId, mac: MacAddr, now: Timestamp) -> Option<FdbEntry> {
        self.networks.get(&network)?.fdb.lookup(mac, now)
    }

    /// Learning, aging, gateway and ARP suppression statistics of
    /// `network`.
    pub fn network_stats(&self, network: NetworkId) -> Option<NetworkStats> {
        self.networks.get(&network).map(|n| NetworkStats {
            arp_suppressed: n.responder.arp_suppressed,
            gateway_arp_replies: n.responder.gateway_arp_replies,
            gateway_echo_replies: n.responder.gateway_echo_replies,
            ..n.fdb.stats()
        })
    }

    /// Read-only access to the FDB of `network` (sizes, per-port counts).
    pub fn fdb(&self, network: NetworkId) -> Option<&Fdb> {
        self.networks.get(&network).map(|n| &n.fdb)
    }
}

/// Refuses a configuration whose gateway is invalid.
fn check_gateway(config: &NetworkConfig) -> Result<(), BridgeError> {
    match config.gateway {
        Some(gw) if !gw.is_valid() => Err(BridgeError::InvalidGateway(gw)),
        _ => Ok(()),
    }
}

/// Steps 3–7 of [`Bridge::process`] for a frame of `net` from `in_port`.
fn decide<'a>(
    mut tables: impl Tables<'a>,
    now: Timestamp,
    (in_port, security): (PortId, Option<PortBinding>),
    bytes: &[u8],
    offload: Offload,
    observe: &mut impl FnMut(TraceStep),
) -> Verdict<'a> {
    let Ok(frame) = EthernetFrame::new_checked(bytes) else {
        observe(TraceStep::Runt { len: bytes.len() });
        return Verdict::Drop(DropReason::Runt);
    };
    let net = tables.net();
    if !offload.gso {
        let mut max_len = usize::from(net.config.mtu) + ETHERNET_HEADER_LEN;
        if frame.ethertype() == ETHERTYPE_VLAN {
            max_len += VLAN_TAG_LEN;
        }
        if frame.len() > max_len {
            observe(TraceStep::Oversized {
                len: frame.len(),
                max: max_len,
            });
            return Verdict::Drop(DropReason::Oversized);
        }
    }
    let src = frame.src();
    if src.is_multicast() || src.is_zero() {
        observe(TraceStep::InvalidSource { mac: src });
        return Verdict::Drop(DropReason::InvalidSourceMac);
    }
    // Port security: a local endpoint's MAC from anywhere else (another port, a tunnel),
    // and from a secured port anything but its endpoint.
    let violation = match net.fdb.pinned_port(src) {
        Some(pinned) if pinned != in_port => Some(DropReason::SpoofedMac),
        _ => security.and_then(|b| port_security::violation(&b, &frame)),
    };
    if let Some(reason) = violation {
        observe(TraceStep::Spoofed { mac: src, reason });
        return Verdict::Drop(reason);
    }
    let gateway = net.config.gateway;
    // The gateway's MAC belongs to the switch, never to a port (like the
    // Linux bridge's local FDB entries): a frame claiming it is not learned.
    if gateway.is_none_or(|gw| gw.mac != src) {
        let outcome = tables.learn(src, in_port, now);
        observe(TraceStep::Learn { mac: src, outcome });
    } else {
        observe(TraceStep::GatewaySource { mac: src });
    }

    if let Some(task) = tables.gateway_task(&frame, offload) {
        observe(TraceStep::ToGateway {
            to_gateway_mac: gateway.is_some_and(|gw| frame.dst() == gw.mac),
        });
        return match task {
            Ok(task) => Verdict::ToGateway(task),
            Err(reason) => Verdict::Drop(reason),
        };
    }
    let dst = frame.dst();
    let hit = tables.port_of(dst, now);
    let net: &'a Network = tables.into_net();
    // Inter-container communication disabled: endpoints talk to the gateway only.
    if !net.config.icc {
        observe(TraceStep::IccDenied);
        return Verdict::Drop(DropReason::IccDenied);
    }
    if dst.is_unicast() {
        if let Some(out) = hit {
            observe(TraceStep::FdbHit {
                mac: dst,
                port: out,
            });
            return if out == in_port {
                observe(TraceStep::SameSegment);
                Verdict::Drop(DropReason::SameSegment)
            } else {
                Verdict::Forward(out)
            };
        }
    }
    let flood = FloodSet::new(&net.ports, in_port);
    observe(TraceStep::Flood {
        mac: dst,
        ports: flood.len(),
    });
    if flood.is_empty() {
        Verdict::Drop(DropReason::NoDestination)
    } else {
        Verdict::Flood(flood)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
