//! The gateway's runtime: everything the gateway terminates, off the switch's fast path.
//! [`start`] brings up one loop, the stack thread ([`stack`]: DNS over UDP and TCP, outbound
//! UDP, TCP and ICMP echo NAT, published ports), and hands the data plane a [`Link`] to it;
//! tokio only runs the upstream DNS queries it forwards.
//!
//! Names of a network (endpoint names and aliases) are answered from its [`Zone`]; every
//! other name is forwarded to the upstream resolvers, and a failure comes back as SERVFAIL
//! rather than silence.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use weft_switch::NetworkId;

pub mod dns;
pub mod publish;
pub mod stack;

use crate::dataplane::{Dataplane, GatewayLink, HandOver};
use dns::{Outcome, Zone};
use stack::{StackHandle, StackInput};

/// What the data plane reaches of the running gateway: the stack thread's queue.
struct Link {
    stack: StackHandle,
}

impl GatewayLink for Link {
    fn try_hand_over(&self, work: HandOver, frame: &[u8]) -> bool {
        self.stack.try_send(StackInput::Frame {
            work,
            frame: frame.to_vec(),
        })
    }
}

/// The host's own UDP ports on the underlay: VXLAN (RFC 7348) and gossip. Containers may
/// not send to them through the NAT, whatever the address: the datagram would leave from
/// this host's underlay address and pass for this node's tunnel or cluster traffic.
#[derive(Debug, Clone, Copy)]
pub struct UnderlayPorts {
    pub vxlan: u16,
    pub gossip: Option<u16>,
}

impl UnderlayPorts {
    /// Whether outbound UDP NAT refuses datagrams to `port`.
    pub fn protects(&self, port: u16) -> bool {
        port == self.vxlan || self.gossip == Some(port)
    }
}

/// Descriptors kept for everything but proxied flows: API connections, gossip, the state
/// file, endpoint ports, published listeners and the DNS forwards in flight
/// ([`dns::MAX_FORWARDS_IN_FLIGHT`]).
pub const RESERVED_DESCRIPTORS: u64 = 512;

/// How many proxied flows the gateway keeps at once (each holds one host socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    pub tcp: usize,
    pub udp: usize,
}

impl FlowLimits {
    /// The limits under a descriptor limit of `limit`: what is left after
    /// [`RESERVED_DESCRIPTORS`] in thirds, at most the tables' own bounds: two for TCP (the
    /// TCP table's bound holds outbound flows and, besides, published connections up to the
    /// same bound, so it may hold twice its bound) and one for UDP. Flows then never take the
    /// descriptors the API and gossip need.
    pub fn for_descriptors(limit: u64) -> FlowLimits {
        let third =
            usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS) / 3).unwrap_or(usize::MAX);
        FlowLimits {
            tcp: third.min(weft_gateway::tcp::MAX_TCP_FLOWS),
            udp: third.min(stack::udp_nat::MAX_UDP_FLOWS),
        }
    }
}

/// What the daemon's flags and descriptor limit set for the gateway's flows.
#[derive(Debug, Clone, Copy)]
pub struct FlowOptions {
    /// `--udp-idle-timeout`.
    pub udp_idle: Duration,
    /// `--tcp-idle-timeout`: an established proxied connection idle this long is closed.
    pub tcp_idle: Duration,
    pub limits: FlowLimits,
}

/// The running gateway, as the daemon holds it.
pub struct Gateway {
    pub zones: Zones,
    pub stack: StackHandle,
}

/// Starts the gateway's runtime (its thread, with the current tokio runtime for upstream
/// DNS) and connects it to the data plane. `dns_upstream`: resolvers to forward to (empty:
/// `/etc/resolv.conf`'s).
pub fn start(
    dataplane: &Arc<Dataplane>,
    dns_upstream: &[SocketAddr],
    flows: FlowOptions,
    underlay: UnderlayPorts,
) -> Result<Gateway, stack::StackError> {
    let zones = Zones::default();
    let upstreams = Arc::new(upstreams(dns_upstream));
    log::info!("embedded DNS forwards to {upstreams:?}");
    let stack = stack::spawn(
        Arc::clone(dataplane),
        Arc::clone(&zones),
        upstreams,
        tokio::runtime::Handle::current(),
        flows,
        underlay,
    )?;
    dataplane.connect_gateway(Arc::new(Link {
        stack: stack.clone(),
    }));
    Ok(Gateway { zones, stack })
}

/// How long one upstream resolver may take to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What the gateway's runtime knows of one network: its names, subnet and NAT mode.
#[derive(Debug, Clone)]
pub struct NetworkZone {
    /// Outbound NAT (`--nat proxy`, the default); false for `--nat none`.
    pub nat: bool,
    pub zone: Zone,
    /// Network address and prefix length: reverse lookups inside it are answered locally.
    pub subnet: (Ipv4Addr, u8),
    /// Connections to published ports come from the gateway's address, not the client's.
    pub published_from_gateway: bool,
}

/// The zones of all networks, rebuilt by the daemon when endpoints change.
pub type Zones = Arc<RwLock<HashMap<NetworkId, NetworkZone>>>;

/// Answers a DNS query asked on `network` from its zone (or says to forward it).
pub fn answer_query(
    zones: &Zones,
    network: Option<NetworkId>,
    query: &[u8],
    rotation: usize,
) -> Outcome {
    let zones = zones.read().unwrap_or_else(|p| p.into_inner());
    match network.and_then(|n| zones.get(&n)) {
        Some(nz) => dns::answer(query, &nz.zone, nz.subnet, rotation),
        None => dns::answer(query, &Zone::new(), (Ipv4Addr::UNSPECIFIED, 32), rotation),
    }
}

/// Whether traffic of `network` to `dst` may leave through the proxy NAT: the network has
/// NAT on (not `--nat none`, not `--internal`) and `dst` is outside its subnet.
pub fn nat_allowed(zones: &Zones, network: NetworkId, dst: Ipv4Addr) -> bool {
    let zones = zones.read().unwrap_or_else(|p| p.into_inner());
    zones.get(&network).is_some_and(|nz| {
        let (net, prefix) = nz.subnet;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        nz.nat && u32::from(dst) & mask != u32::from(net) & mask
    })
}

/// Whether connections to `network`'s published ports reach the container from the
/// client's own address.
pub fn keeps_client_address(zones: &Zones, network: NetworkId) -> bool {
    let zones = zones.read().unwrap_or_else(|p| p.into_inner());
    zones
        .get(&network)
        .is_some_and(|nz| !nz.published_from_gateway)
}

/// The upstream resolvers: the ones given on the command line, else the host's
/// `/etc/resolv.conf`.
pub fn upstreams(configured: &[SocketAddr]) -> Vec<SocketAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| dns::upstreams_from_resolv_conf(&text))
        .unwrap_or_default()
}

/// First line of the resolv.conf files weft writes, so it only ever removes its own.
pub const RESOLV_CONF_MARKER: &str = "# written by weft";

/// Writes `/etc/netns/NAME/resolv.conf` pointing at the gateway, so `ip netns exec NAME`
/// programs use the embedded DNS. An existing file not written by weft is left alone.
pub fn write_netns_resolv_conf(
    netns_name: &str,
    network: &str,
    gateway: Ipv4Addr,
) -> std::io::Result<bool> {
    let dir = std::path::Path::new("/etc/netns").join(netns_name);
    let path = dir.join("resolv.conf");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.starts_with(RESOLV_CONF_MARKER) {
            return Ok(false);
        }
    }
    std::fs::create_dir_all(&dir)?;
    let text = format!(
        "{RESOLV_CONF_MARKER}: the embedded DNS of network {network}\nnameserver {gateway}\noptions ndots:0\n"
    );
    let tmp = dir.join(".resolv.conf.weft");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

/// Removes a resolv.conf weft wrote for `netns_name` (and its directory if empty).
pub fn remove_netns_resolv_conf(netns_name: &str) {
    let dir = std::path::Path::new("/etc/netns").join(netns_name);
    let path = dir.join("resolv.conf");
    if std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(RESOLV_CONF_MARKER)) {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_leave_the_reserved_descriptors_free() {
        let tables = FlowLimits {
            tcp: weft_gateway::tcp::MAX_TCP_FLOWS,
            udp: stack::udp_nat::MAX_UDP_FLOWS,
        };
        assert_eq!(FlowLimits::for_descriptors(1 << 20), tables);
        for limit in [0, 100, 512, 1024, 4096, 9000] {
            let l = FlowLimits::for_descriptors(limit);
            let worst = (2 * l.tcp + l.udp) as u64;
            assert!(worst + RESERVED_DESCRIPTORS <= limit.max(RESERVED_DESCRIPTORS));
        }
        assert_eq!(
            FlowLimits::for_descriptors(1024),
            FlowLimits { tcp: 170, udp: 170 }
        );
    }
}
