//! The daemon's control logic: networks, endpoints, static entries, persistence, and the
//! plumbing that creates and removes interfaces. Every operation validates everything before
//! it changes anything, and undoes what it did if a later step fails, so a refused request
//! leaves no stray interface and no entry in the state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::Ipv4Net;
use weft_switch::{GatewayConfig, MacAddr, NetworkConfig, NetworkId, PortId};

use crate::daemon::state::{
    EndpointRecord, NetworkRecord, PeerRecord, PersistedState, StateDir, StateError,
    StaticFdbRecord,
};
use crate::dataplane::{Dataplane, DataplaneError};
use crate::gateway::dns::Zone;
use crate::gateway::publish::PublishedSocket;
use crate::gateway::publish::{self, PortMapping};
use crate::gateway::stack::{StackInput, Target};
use crate::gateway::{self, NetworkZone, Zones};
use crate::types::{
    ArpRow, Connect, CreateNetwork, EndpointInfo, FdbRow, NatRow, NetworkDetail, NetworkStatsRow,
    NetworkSummary, PeerAdd, PeerRow, PortKind, PortRow, Publish,
};
use ipam::IpamError;
use weft_sys::{self as sys, IfConfig, Netns, SysError};

mod cluster_sync;
mod run;
pub use run::{shutdown_signal, start, RunConfig, Running};
pub mod ipam;
pub mod state;
pub use cluster_sync::run_cluster_sync;
use cluster_sync::ClusterLink;

pub const DEFAULT_MTU: u32 = 1500;
/// VXLAN adds 50 octets (outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8) to every frame: an
/// overlay network's endpoints get the usual 1500-octet underlay MTU minus that.
pub const OVERLAY_OVERHEAD: u32 = 50;
/// First VNI handed out when `--vni` is not given (Docker's overlay driver starts at 4096).
pub const FIRST_AUTO_VNI: u32 = 4096;

/// The daemon's VTEP: where its VXLAN socket listens and what it sends from.
#[derive(Debug, Clone, Copy)]
pub struct VtepConfig {
    /// `--advertise`: the underlay address (outer source); None: chosen by routing.
    pub advertise: Option<Ipv4Addr>,
    /// `--vxlan-port`.
    pub port: u16,
}
pub const DEFAULT_AGING_SECONDS: u64 = 300;
const MAX_NAME_LEN: usize = 64;
const MAX_IFNAME_LEN: usize = 15;

/// Errors of control operations; each maps to an HTTP status and carries the message the
/// user sees (the problem and the fix).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DaemonError {
    /// HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            DaemonError::Invalid(_) | DaemonError::Ipam(_) => 400,
            DaemonError::NotFound(_) => 404,
            DaemonError::Conflict(_) => 409,
            DaemonError::Sys(SysError::Netns { .. }) => 404,
            DaemonError::Sys(SysError::InterfaceExists { .. }) => 409,
            _ => 500,
        }
    }
}

type Result<T> = std::result::Result<T, DaemonError>;

struct Network {
    record: NetworkRecord,
    id: NetworkId,
}

struct Endpoint {
    record: EndpointRecord,
    port: PortId,
    netns_id: (u64, u64),
}

struct Peer {
    record: PeerRecord,
    port: PortId,
    network: String,
}

struct Control {
    networks: BTreeMap<String, Network>,
    endpoints: BTreeMap<String, Endpoint>,
    /// Static VXLAN peers by tunnel port name.
    peers: BTreeMap<String, Peer>,
    /// Overlay networks removed here, for the cluster (see `PersistedState`).
    removed_networks: BTreeMap<String, u64>,
    static_fdb: Vec<StaticFdbRecord>,
    next_network_id: u32,
    next_port_id: u32,
}

/// The daemon: control state plus the data plane it drives.
pub struct Daemon {
    control: Mutex<Control>,
    dataplane: Arc<Dataplane>,
    state_dir: StateDir,
    /// Names per network for the embedded DNS, rebuilt when endpoints change.
    zones: Zones,
    /// Outbound UDP NAT flows.
    nat: Arc<crate::gateway::udp_nat::UdpNat>,
    /// The gateway's TCP/IP stack: TCP and ICMP NAT, published ports, DNS over TCP.
    stack: crate::gateway::stack::StackHandle,
    vtep: VtepConfig,
    /// The gossip cluster, if this daemon joined one.
    cluster: Option<ClusterLink>,
}

fn invalid(msg: impl Into<String>) -> DaemonError {
    DaemonError::Invalid(msg.into())
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} name {name:?}: use 1-{MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// A DNS name for `--alias`: dot-separated labels of letters, digits and '-' (RFC 1035
/// §2.3.1, with digits allowed first as RFC 1123 §2.1 does), at most 253 characters.
fn validate_dns_name(name: &str) -> Result<()> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid alias {name:?}: use DNS labels of letters, digits and '-' separated by dots, like web or db.internal"
        )))
    }
}

fn validate_ifname(ifname: &str) -> Result<()> {
    let ok = !ifname.is_empty()
        && ifname.len() <= MAX_IFNAME_LEN
        && ifname != "."
        && ifname != ".."
        && ifname
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | ':' | '%'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid interface name {ifname:?}: use 1-{MAX_IFNAME_LEN} printable characters without '/', ':', '%' or spaces"
        )))
    }
}

/// Parses a subnet the way the user wrote it, with messages that say how to fix it.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(invalid(format!(
            "invalid subnet {s:?}: expected CIDR notation like 10.1.0.0/24"
        )));
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        invalid(format!(
            "invalid subnet {s:?}: {addr:?} is not an IPv4 address; expected CIDR notation like 10.1.0.0/24"
        ))
    })?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| invalid(format!("invalid subnet {s:?}: prefix length must be 0..32")))?;
    if prefix > 30 {
        return Err(invalid(format!(
            "subnet {s} is too small: a network needs room for a gateway and endpoints, use a prefix length of 30 or less"
        )));
    }
    let net = Ipv4Net::new(addr, prefix).expect("prefix checked");
    let first = net.network().octets()[0];
    let last = net.broadcast().octets()[0];
    if first == 0 || first == 127 || last >= 224 || (first..=last).contains(&127) {
        return Err(invalid(format!(
            "subnet {s} overlaps the unspecified, loopback, multicast or reserved ranges; choose a unicast range such as 10.1.0.0/24"
        )));
    }
    if net.network() != addr {
        return Err(invalid(format!(
            "invalid subnet {s}: host bits are set; did you mean {}/{prefix}?",
            net.network()
        )));
    }
    Ok(net)
}

fn parse_mac(s: &str) -> Result<MacAddr> {
    let mac: MacAddr = s
        .parse()
        .map_err(|e: weft_switch::MacParseError| invalid(e.to_string()))?;
    if !mac.is_unicast() || mac.is_zero() {
        return Err(invalid(format!(
            "MAC address {mac} is not a unicast address: the first octet must be even and the address nonzero (e.g. 02:42:0a:00:00:05)"
        )));
    }
    Ok(mac)
}

/// Docker's scheme: 02:42 followed by the IPv4 address, unique because addresses are.
fn mac_for_ip(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr::local_from_bytes([0x42, o[0], o[1], o[2], o[3]])
}

/// A random suffix for host-side interface names, unique across daemons on one host.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// The gateway's internal port uses the same scheme as endpoints: 02:42 + its address.
fn gateway_mac(record: &NetworkRecord) -> MacAddr {
    mac_for_ip(record.gateway)
}

fn network_config(record: &NetworkRecord) -> NetworkConfig {
    NetworkConfig {
        aging: Duration::from_secs(record.aging_seconds),
        mtu: record.mtu as u16,
        gateway: Some(GatewayConfig {
            ip: record.gateway,
            mac: gateway_mac(record),
        }),
        icc: record.icc,
        ..NetworkConfig::default()
    }
}

fn open_netns(netns: Option<&str>, pid: Option<u32>) -> Result<(Netns, String)> {
    let (ns, label) = open_netns_unchecked(netns, pid)?;
    if Netns::current().is_ok_and(|own| own.id() == ns.id()) {
        return Err(invalid(format!(
            "namespace {label} is the daemon's own network namespace; weft attaches containers, not the host: give a container's namespace (create one with `ip netns add NAME`)"
        )));
    }
    Ok((ns, label))
}

fn open_netns_unchecked(netns: Option<&str>, pid: Option<u32>) -> Result<(Netns, String)> {
    match (netns, pid) {
        (Some(_), Some(_)) => Err(invalid("give either --netns or --pid, not both")),
        (None, None) => Err(invalid(
            "say which namespace to connect: --netns NAME|PATH or --pid PID",
        )),
        (Some(n), None) => Ok((Netns::from_name_or_path(n)?, n.to_string())),
        (None, Some(pid)) => {
            let ns = Netns::from_pid(pid)?;
            Ok((ns, format!("/proc/{pid}/ns/net")))
        }
    }
}

/// Tells the switch what IPAM knows about a new endpoint: its address for ARP suppression,
/// and its MAC on its port (learned now, aging as usual), so the first unicast to it after
/// an ARP request the switch answered itself is not flooded.
fn seed_endpoint(
    bridge: &mut weft_switch::Bridge,
    now: weft_switch::Timestamp,
    network: NetworkId,
    port: PortId,
    ip: Ipv4Addr,
    mac: MacAddr,
) -> std::result::Result<(), weft_switch::BridgeError> {
    bridge.set_neighbor(network, ip, mac)?;
    bridge.learn_at(now, port, mac)?;
    Ok(())
}

/// A `weft ports` row (endpoint "-", nothing published: the caller fills those in for an
/// endpoint).
fn port_row(
    name: &str,
    kind: PortKind,
    network: &str,
    counters: &weft_switch::PortCounters,
) -> PortRow {
    PortRow {
        name: name.to_string(),
        kind,
        network: network.to_string(),
        endpoint: "-".into(),
        rx_packets: counters.rx_packets,
        rx_bytes: counters.rx_bytes,
        tx_packets: counters.tx_packets,
        tx_bytes: counters.tx_bytes,
        drops: counters
            .nonzero_drops()
            .map(|(r, n)| (r.as_str().to_string(), n))
            .collect(),
        published: Vec::new(),
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn driver_name(record: &NetworkRecord) -> &'static str {
    if record.vni.is_some() {
        "overlay"
    } else {
        "bridge"
    }
}

fn nat_mode(nat: bool) -> &'static str {
    if nat {
        "proxy"
    } else {
        "none"
    }
}

/// One Prometheus series: name, type, help text, and how to read its value from a row.
type MetricSeries<Row> = (&'static str, &'static str, &'static str, fn(&Row) -> u64);

/// What a created port leaves behind, so it can be undone.
struct CreatedPort {
    fd: OwnedFd,
    kind: PortKind,
    host_ifname: Option<String>,
}

impl CreatedPort {
    /// Removes the interface(s) again (connect failed after creating them, or disconnect).
    fn destroy(self) {
        match self.kind {
            PortKind::Tap => {
                let _ = sys::tap_clear_persist(self.fd.as_fd());
                drop(self.fd);
            }
            PortKind::Veth => {
                drop(self.fd);
                if let Some(host) = &self.host_ifname {
                    let _ = sys::delete_link(host);
                }
            }
            PortKind::Vxlan => drop(self.fd),
        }
    }
}

/// Creates (or re-attaches) the endpoint's interface and returns its port fd.
fn plumb(netns: &Netns, rec: &EndpointRecord, cfg: IfConfig, mtu: u32) -> Result<CreatedPort> {
    let ifname = rec.ifname.clone();
    match rec.kind {
        PortKind::Vxlan => Err(invalid(
            "an endpoint cannot be of kind vxlan: use tap or veth (remote VTEPs are added with `weft peer add`)",
        )),
        PortKind::Tap => {
            let fd = netns.run(move || {
                let fd = sys::open_tap(&ifname, true)?;
                if let Err(e) = sys::configure_interface(&ifname, &cfg) {
                    let _ = sys::tap_clear_persist(fd.as_fd());
                    return Err(e);
                }
                Ok(fd)
            })?;
            Ok(CreatedPort {
                fd,
                kind: PortKind::Tap,
                host_ifname: None,
            })
        }
        PortKind::Veth => {
            let host = rec.host_ifname.clone().ok_or_else(|| {
                DaemonError::Internal(format!(
                    "veth endpoint {} has no host interface name in the state file",
                    rec.name
                ))
            })?;
            let created_now = !sys::interface_exists(&host);
            if created_now {
                sys::create_veth(&host, &ifname, netns)?;
            }
            let undo = |e: DaemonError| {
                if created_now {
                    let _ = sys::delete_link(&host);
                }
                e
            };
            netns
                .run(move || sys::configure_interface(&ifname, &cfg))
                .map_err(|e| undo(e.into()))?;
            sys::set_mtu(&host, mtu).map_err(|e| undo(e.into()))?;
            sys::set_link_up(&host).map_err(|e| undo(e.into()))?;
            let fd = sys::open_packet_socket(&host).map_err(|e| undo(e.into()))?;
            Ok(CreatedPort {
                fd,
                kind: PortKind::Veth,
                host_ifname: Some(host),
            })
        }
    }
}

impl Daemon {
    /// Opens the state directory, starts from the persisted state and re-attaches every
    /// endpoint whose namespace still exists.
    pub fn start(
        state_dir: StateDir,
        dataplane: Arc<Dataplane>,
        gateway: crate::gateway::Gateway,
        vtep: VtepConfig,
        cluster: Option<(Arc<crate::cluster::gossip::Gossip>, tokio::runtime::Handle)>,
    ) -> Result<Daemon> {
        let persisted = state_dir.load()?;
        let daemon = Daemon {
            control: Mutex::new(Control {
                networks: BTreeMap::new(),
                endpoints: BTreeMap::new(),
                peers: BTreeMap::new(),
                removed_networks: BTreeMap::new(),
                static_fdb: Vec::new(),
                next_network_id: 1,
                next_port_id: 1,
            }),
            dataplane,
            state_dir,
            zones: gateway.zones,
            nat: gateway.nat,
            stack: gateway.stack,
            vtep,
            cluster: cluster.map(|(gossip, runtime)| ClusterLink::new(gossip, runtime)),
        };
        daemon.restore(persisted)?;
        Ok(daemon)
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn restore(&self, persisted: PersistedState) -> Result<()> {
        let mut c = self.lock();
        c.removed_networks = persisted.removed_networks.clone();
        for record in persisted.networks {
            let id = NetworkId(c.next_network_id);
            c.next_network_id += 1;
            self.dataplane.add_network(id, network_config(&record))?;
            if let Err(e) = self.open_overlay(&record) {
                log::error!("overlay network {}: {e}", record.name);
            }
            c.networks
                .insert(record.name.clone(), Network { record, id });
        }
        for record in persisted.endpoints {
            let name = record.name.clone();
            let netns_label = record.netns.clone();
            match self.attach_existing(&mut c, record) {
                Ok(()) => {
                    log::info!("re-attached endpoint {name}");
                    self.restore_published(&mut c, &name);
                }
                Err(e) => {
                    log::warn!("endpoint {name} could not be re-attached and is forgotten: {e}");
                    if !netns_label.contains('/') {
                        gateway::remove_netns_resolv_conf(&netns_label);
                    }
                }
            }
        }
        let names: Vec<String> = c.networks.keys().cloned().collect();
        for n in &names {
            self.rebuild_zone(&c, n);
        }
        for record in persisted.peers {
            if let Err(e) = self.attach_peer(&mut c, record) {
                log::warn!(
                    "VXLAN peer {} (VNI {}) dropped: {e}",
                    record.addr,
                    record.vni
                );
            }
        }
        for entry in persisted.static_fdb {
            match self.apply_static(&c, &entry) {
                Ok(()) => c.static_fdb.push(entry),
                Err(e) => log::warn!(
                    "static FDB entry {} on {} dropped: {e}",
                    entry.mac,
                    entry.network
                ),
            }
        }
        self.save(&c)?;
        Ok(())
    }

    fn attach_existing(&self, c: &mut Control, record: EndpointRecord) -> Result<()> {
        let net = c
            .networks
            .get(&record.network)
            .ok_or_else(|| DaemonError::NotFound(format!("network {} is gone", record.network)))?;
        let (netns, _) = open_netns(Some(&record.netns), None)?;
        if record.netns_id.is_some_and(|id| id != netns.id()) {
            return Err(DaemonError::NotFound(format!(
                "namespace {} is not the one the endpoint was connected to (its process is gone)",
                record.netns
            )));
        }
        let mac = parse_mac(&record.mac)?;
        let cfg = IfConfig {
            mac: mac.0,
            mtu: net.record.mtu,
            addr: record.ip,
            prefix_len: net.record.subnet.prefix_len(),
            gateway: Some(net.record.gateway),
        };
        let created = plumb(&netns, &record, cfg, net.record.mtu)?;
        let port = PortId(c.next_port_id);
        c.next_port_id += 1;
        if let Err((e, fd)) = self.dataplane.add_port(port, net.id, created.fd) {
            CreatedPort { fd, ..created }.destroy();
            return Err(e.into());
        }
        let net_id = net.id;
        let now = self.dataplane.now();
        if let Err(e) = self
            .dataplane
            .with_bridge(|b| seed_endpoint(b, now, net_id, port, record.ip, mac))
        {
            if let Ok(fd) = self.dataplane.remove_port(port) {
                CreatedPort {
                    fd,
                    kind: record.kind,
                    host_ifname: record.host_ifname.clone(),
                }
                .destroy();
            }
            return Err(DataplaneError::from(e).into());
        }
        c.endpoints.insert(
            record.name.clone(),
            Endpoint {
                record,
                port,
                netns_id: netns.id(),
            },
        );
        Ok(())
    }

    /// Recomputes one network's DNS names from its endpoints (names and aliases).
    fn rebuild_zone(&self, c: &Control, network: &str) {
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        let Some(net) = c.networks.get(network) else {
            return;
        };
        let mut zone = Zone::new();
        for e in c.endpoints.values().filter(|e| e.record.network == network) {
            zone.add(&e.record.name, e.record.ip);
            for alias in &e.record.aliases {
                zone.add(alias, e.record.ip);
            }
        }
        for (name, ip) in self.cluster_names(network) {
            zone.add(&name, ip);
        }
        let subnet = (net.record.subnet.network(), net.record.subnet.prefix_len());
        zones.insert(
            net.id,
            NetworkZone {
                nat: net.record.nat && !net.record.internal,
                zone,
                subnet,
            },
        );
    }

    fn snapshot(c: &Control) -> PersistedState {
        PersistedState {
            version: 0,
            networks: c.networks.values().map(|n| n.record.clone()).collect(),
            endpoints: c.endpoints.values().map(|e| e.record.clone()).collect(),
            static_fdb: c.static_fdb.clone(),
            peers: c.peers.values().map(|p| p.record).collect(),
            removed_networks: c.removed_networks.clone(),
        }
    }

    fn save(&self, c: &Control) -> Result<()> {
        Ok(self.state_dir.save(&Self::snapshot(c))?)
    }

    /// The network whose subnet overlaps `subnet`, if any.
    fn overlapping(c: &Control, subnet: Ipv4Net) -> Option<&Network> {
        c.networks.values().find(|n| {
            n.record.subnet.contains(&subnet.network())
                || subnet.contains(&n.record.subnet.network())
        })
    }

    /// Adds a validated network to the data plane (opening the VTEP for an overlay network)
    /// and the control state; no state save.
    fn install_network(&self, c: &mut Control, record: NetworkRecord) -> Result<NetworkId> {
        self.open_overlay(&record)?;
        let id = NetworkId(c.next_network_id);
        if let Err(e) = self.dataplane.add_network(id, network_config(&record)) {
            self.close_overlay(&record);
            return Err(e.into());
        }
        c.next_network_id += 1;
        c.networks
            .insert(record.name.clone(), Network { record, id });
        Ok(id)
    }

    fn network<'c>(c: &'c Control, name: &str) -> Result<&'c Network> {
        c.networks.get(name).ok_or_else(|| {
            DaemonError::NotFound(format!(
                "no network named {name:?}; list networks with `weft network ls` or create it with `weft network create {name} --subnet CIDR`"
            ))
        })
    }

    /// One network by name, or all of them.
    fn networks_or_one<'c>(c: &'c Control, network: Option<&str>) -> Result<Vec<&'c Network>> {
        match network {
            Some(n) => Ok(vec![Self::network(c, n)?]),
            None => Ok(c.networks.values().collect()),
        }
    }

    fn summary(c: &Control, n: &Network) -> NetworkSummary {
        NetworkSummary {
            name: n.record.name.clone(),
            subnet: n.record.subnet.to_string(),
            gateway: n.record.gateway.to_string(),
            mtu: n.record.mtu,
            aging_seconds: n.record.aging_seconds,
            icc: n.record.icc,
            nat: nat_mode(n.record.nat).into(),
            internal: n.record.internal,
            driver: driver_name(&n.record).into(),
            vni: n.record.vni,
            endpoints: c
                .endpoints
                .values()
                .filter(|e| e.record.network == n.record.name)
                .count(),
        }
    }

    fn endpoint_info(c: &Control, e: &Endpoint) -> EndpointInfo {
        let prefix_len = c
            .networks
            .get(&e.record.network)
            .map(|n| n.record.subnet.prefix_len())
            .unwrap_or(0);
        EndpointInfo {
            name: e.record.name.clone(),
            network: e.record.network.clone(),
            netns: e.record.netns.clone(),
            ifname: e.record.ifname.clone(),
            kind: e.record.kind,
            ip: e.record.ip.to_string(),
            prefix_len,
            mac: e.record.mac.clone(),
            port: e.record.name.clone(),
            host_ifname: e.record.host_ifname.clone(),
            aliases: e.record.aliases.clone(),
            published: e.record.published.iter().map(|m| m.to_string()).collect(),
        }
    }

    pub fn create_network(&self, req: CreateNetwork) -> Result<NetworkSummary> {
        validate_name("network", &req.name)?;
        let subnet = parse_subnet(&req.subnet)?;
        let gateway = match &req.gateway {
            Some(g) => {
                let gw: Ipv4Addr = g.parse().map_err(|_| {
                    invalid(format!(
                        "invalid gateway {g:?}: expected an IPv4 address like 10.1.0.1"
                    ))
                })?;
                ipam::check_host(subnet, gw).map_err(|e| {
                    invalid(format!(
                        "gateway {gw} is not usable in subnet {subnet}: {e}"
                    ))
                })?;
                gw
            }
            None => ipam::default_gateway(subnet).expect("prefix <= 30 has hosts"),
        };
        let overlay = match req.driver.as_deref() {
            None | Some("bridge") => false,
            Some("overlay") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "invalid --driver {other:?}: use bridge (this host only) or overlay (VXLAN between hosts)"
                )))
            }
        };
        if req.vni.is_some() && !overlay {
            return Err(invalid(
                "--vni is for overlay networks: add --driver overlay, or leave out --vni",
            ));
        }
        if let Some(vni) = req.vni {
            if !(1..=weft_vtep::Vni::MAX).contains(&vni) {
                return Err(invalid(format!(
                    "invalid --vni {vni}: a VXLAN network identifier is 1..{}",
                    weft_vtep::Vni::MAX
                )));
            }
        }
        let default_mtu = if overlay {
            DEFAULT_MTU - OVERLAY_OVERHEAD
        } else {
            DEFAULT_MTU
        };
        let mtu = req.mtu.unwrap_or(default_mtu);
        if !(576..=9000).contains(&mtu) {
            return Err(invalid(format!("invalid --mtu {mtu}: must be 576..9000")));
        }
        let aging_seconds = req.aging_seconds.unwrap_or(DEFAULT_AGING_SECONDS);
        if !(1..=1_000_000).contains(&aging_seconds) {
            return Err(invalid(format!(
                "invalid --aging {aging_seconds}: must be 1..1000000 seconds"
            )));
        }
        let nat = match req.nat.as_deref() {
            None | Some("proxy") => true,
            Some("none") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "invalid --nat {other:?}: use proxy (outbound traffic through host sockets) or none"
                )))
            }
        };
        let mut c = self.lock();
        if c.networks.contains_key(&req.name) {
            return Err(DaemonError::Conflict(format!(
                "a network named {:?} already exists; choose another name or remove it with `weft network rm {}`",
                req.name, req.name
            )));
        }
        if let Some(other) = Self::overlapping(&c, subnet) {
            return Err(DaemonError::Conflict(format!(
                "subnet {subnet} overlaps subnet {} of network {:?}; choose a subnet that does not overlap",
                other.record.subnet, other.record.name
            )));
        }
        let record = NetworkRecord {
            name: req.name.clone(),
            subnet,
            gateway,
            mtu,
            aging_seconds,
            icc: req.icc.unwrap_or(true),
            nat,
            internal: req.internal,
            vni: None,
            created_ms: None,
        };
        let mut record = record;
        if overlay {
            let taken: BTreeSet<u32> = c.networks.values().filter_map(|n| n.record.vni).collect();
            let vni = match req.vni {
                Some(v) if taken.contains(&v) => {
                    let owner = c
                        .networks
                        .values()
                        .find(|n| n.record.vni == Some(v))
                        .map(|n| n.record.name.clone())
                        .unwrap_or_default();
                    return Err(DaemonError::Conflict(format!(
                        "VNI {v} is already used by network {owner:?}; pick another --vni"
                    )));
                }
                Some(v) => v,
                None => (FIRST_AUTO_VNI..=weft_vtep::Vni::MAX)
                    .find(|v| !taken.contains(v))
                    .ok_or_else(|| invalid("no free VNI left"))?,
            };
            record.vni = Some(vni);
            record.created_ms = Some(unix_ms());
        }
        let id = self.install_network(&mut c, record)?;
        let removed_marker = c.removed_networks.remove(&req.name);
        if let Err(e) = self.save(&c) {
            if let Some(n) = c.networks.remove(&req.name) {
                self.close_overlay(&n.record);
            }
            if let Some(marker) = removed_marker {
                c.removed_networks.insert(req.name.clone(), marker);
            }
            let _ = self.dataplane.remove_network(id);
            return Err(e);
        }
        self.rebuild_zone(&c, &req.name);
        let n = &c.networks[&req.name];
        Ok(Self::summary(&c, n))
    }

    pub fn list_networks(&self) -> Vec<NetworkSummary> {
        let c = self.lock();
        c.networks.values().map(|n| Self::summary(&c, n)).collect()
    }

    pub fn inspect_network(&self, name: &str) -> Result<NetworkDetail> {
        let c = self.lock();
        let n = Self::network(&c, name)?;
        Ok(NetworkDetail {
            name: n.record.name.clone(),
            subnet: n.record.subnet.to_string(),
            gateway: n.record.gateway.to_string(),
            gateway_mac: gateway_mac(&n.record).to_string(),
            mtu: n.record.mtu,
            aging_seconds: n.record.aging_seconds,
            icc: n.record.icc,
            nat: nat_mode(n.record.nat).into(),
            internal: n.record.internal,
            driver: driver_name(&n.record).into(),
            vni: n.record.vni,
            endpoints: c
                .endpoints
                .values()
                .filter(|e| e.record.network == name)
                .map(|e| Self::endpoint_info(&c, e))
                .collect(),
        })
    }

    pub fn remove_network(&self, name: &str, force: bool) -> Result<()> {
        let mut c = self.lock();
        self.remove_network_locked(&mut c, name, force)
    }

    fn remove_network_locked(&self, c: &mut Control, name: &str, force: bool) -> Result<()> {
        let id = Self::network(c, name)?.id;
        let attached: Vec<String> = c
            .endpoints
            .values()
            .filter(|e| e.record.network == name)
            .map(|e| e.record.name.clone())
            .collect();
        if !attached.is_empty() && !force {
            return Err(DaemonError::Conflict(format!(
                "network {name:?} still has {} endpoint(s) attached ({}); disconnect them first or use --force",
                attached.len(),
                attached.join(", ")
            )));
        }
        // An overlay network removed here is removed in the whole cluster.
        let created_ms = c.networks.get(name).and_then(|n| n.record.created_ms);
        // Persist the outcome first: if that fails, nothing has been torn down.
        let mut after = Self::snapshot(c);
        if let Some(created) = created_ms {
            after.removed_networks.insert(name.to_string(), created);
        }
        after.networks.retain(|n| n.name != name);
        after.endpoints.retain(|e| e.network != name);
        after.static_fdb.retain(|s| s.network != name);
        after.peers.retain(|p| {
            c.peers
                .get(&p.port_name())
                .is_none_or(|peer| peer.network != name)
        });
        self.state_dir.save(&after)?;
        for ep in attached {
            self.detach(c, &ep);
        }
        let peers: Vec<String> = c
            .peers
            .iter()
            .filter(|(_, p)| p.network == name)
            .map(|(n, _)| n.clone())
            .collect();
        for p in peers {
            self.detach_peer(c, &p);
        }
        self.cluster_forget_network(name, id);
        if let Some(n) = c.networks.get(name) {
            self.close_overlay(&n.record);
        }
        c.static_fdb.retain(|s| s.network != name);
        self.dataplane.remove_network(id)?;
        c.networks.remove(name);
        self.zones
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.nat.forget_network(id);
        self.stack.send(StackInput::ForgetNetwork(id));
        if let Some(created) = created_ms {
            c.removed_networks.insert(name.to_string(), created);
        }
        self.save(c)?;
        Ok(())
    }

    pub fn connect(&self, network: &str, req: Connect) -> Result<EndpointInfo> {
        let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
        validate_ifname(&ifname)?;
        let kind = req.kind.unwrap_or_default();
        let requested_mac = req.mac.as_deref().map(parse_mac).transpose()?;
        let requested_ip = req
            .ip
            .as_deref()
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(format!(
                        "invalid --ip {s:?}: expected an IPv4 address like 10.1.0.5"
                    ))
                })
            })
            .transpose()?;
        if let Some(n) = &req.name {
            validate_name("endpoint", n)?;
        }
        for alias in &req.aliases {
            validate_dns_name(alias)?;
        }
        let (netns, netns_label) = open_netns(req.netns.as_deref(), req.pid)?;

        let mut c = self.lock();
        let net = Self::network(&c, network)?;
        // Host ports are bound before anything is created: a port in use refuses the whole
        // connect with nothing to undo.
        let bound = if req.publish.is_empty() && req.publish_all.is_empty() {
            Vec::new()
        } else {
            Self::bind_published(&c, net, &req.publish, &req.publish_all)?
        };
        let (net_id, subnet, gateway, mtu) = (
            net.id,
            net.record.subnet,
            net.record.gateway,
            net.record.mtu,
        );
        if let Some(e) = c
            .endpoints
            .values()
            .find(|e| e.netns_id == netns.id() && e.record.ifname == ifname)
        {
            return Err(DaemonError::Conflict(format!(
                "namespace {netns_label} already has interface {ifname} attached as endpoint {:?} on network {:?}; pass another --ifname",
                e.record.name, e.record.network
            )));
        }
        let probe = ifname.clone();
        if netns.run(move || Ok(sys::interface_exists(&probe)))? {
            return Err(DaemonError::Conflict(format!(
                "interface {ifname} already exists in namespace {netns_label}; pass another --ifname"
            )));
        }
        let name = match req.name.clone() {
            Some(n) => {
                if c.endpoints.contains_key(&n) {
                    return Err(DaemonError::Conflict(format!(
                        "an endpoint named {n:?} already exists; pass another --name"
                    )));
                }
                n
            }
            None => {
                let base = match (&req.netns, req.pid) {
                    (Some(n), _) => n.rsplit('/').next().unwrap_or(n).to_string(),
                    (None, Some(pid)) => format!("pid{pid}"),
                    _ => unreachable!("open_netns checked"),
                };
                let base: String = base
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.') {
                            ch
                        } else {
                            '-'
                        }
                    })
                    .collect();
                [base.clone(), format!("{base}-{ifname}")]
                    .into_iter()
                    .find(|n| !c.endpoints.contains_key(n))
                    .ok_or_else(|| {
                        DaemonError::Conflict(format!(
                            "endpoint names {base:?} and \"{base}-{ifname}\" are taken; pass --name"
                        ))
                    })?
            }
        };
        let on_network = || c.endpoints.values().filter(|e| e.record.network == network);
        let overlay_vni = net.record.vni.filter(|_| self.cluster.is_some());
        let ip = match requested_ip {
            Some(ip) => {
                ipam::check_explicit(
                    subnet,
                    gateway,
                    ip,
                    on_network().map(|e| (e.record.ip, e.record.name.as_str())),
                )?;
                if let Some(vni) = overlay_vni {
                    self.cluster_check_explicit(vni, ip)?;
                }
                ip
            }
            None => {
                let taken: BTreeSet<Ipv4Addr> = on_network().map(|e| e.record.ip).collect();
                match overlay_vni {
                    // Cluster-wide IPAM: an address from a block this node leased.
                    Some(vni) => self.cluster_allocate(&c, vni, subnet, gateway, &taken)?,
                    None => ipam::next_free(subnet, gateway, &taken)?,
                }
            }
        };
        let mac = requested_mac.unwrap_or_else(|| mac_for_ip(ip));
        if mac == mac_for_ip(gateway) {
            return Err(DaemonError::Conflict(format!(
                "MAC address {mac} belongs to the gateway of network {network:?}; pass another --mac or omit it"
            )));
        }
        if let Some(e) = on_network().find(|e| e.record.mac.parse::<MacAddr>().ok() == Some(mac)) {
            let fix = if requested_mac.is_some() {
                "pass another --mac or omit it"
            } else {
                "it was generated from the address: pass --mac or another --ip"
            };
            return Err(DaemonError::Conflict(format!(
                "MAC address {mac} is already used by endpoint {:?} on network {network:?}; {fix}",
                e.record.name
            )));
        }
        let record = EndpointRecord {
            name: name.clone(),
            network: network.to_string(),
            netns: netns_label,
            ifname,
            kind,
            ip,
            mac: mac.to_string(),
            host_ifname: (kind == PortKind::Veth)
                .then(|| format!("wv{:010x}", random_u64() & 0xff_ffff_ffff)),
            aliases: req.aliases.clone(),
            netns_id: Some(netns.id()),
            published: bound.iter().map(|(m, _)| *m).collect(),
        };
        let cfg = IfConfig {
            mac: mac.0,
            mtu,
            addr: ip,
            prefix_len: subnet.prefix_len(),
            gateway: Some(gateway),
        };
        let created = plumb(&netns, &record, cfg, mtu)?;
        let port = PortId(c.next_port_id);
        let CreatedPort {
            fd,
            kind: created_kind,
            host_ifname,
        } = created;
        if let Err((e, fd)) = self.dataplane.add_port(port, net_id, fd) {
            CreatedPort {
                fd,
                kind: created_kind,
                host_ifname,
            }
            .destroy();
            return Err(e.into());
        }
        c.next_port_id += 1;
        let now = self.dataplane.now();
        if let Err(e) = self
            .dataplane
            .with_bridge(|b| seed_endpoint(b, now, net_id, port, ip, mac))
        {
            let _ = self
                .dataplane
                .with_bridge(|b| b.remove_neighbor(net_id, ip));
            if let Ok(fd) = self.dataplane.remove_port(port) {
                CreatedPort {
                    fd,
                    kind: created_kind,
                    host_ifname,
                }
                .destroy();
            }
            return Err(invalid(format!(
                "address {ip} / MAC {mac} cannot be used on this network: {e}"
            )));
        }
        c.endpoints.insert(
            name.clone(),
            Endpoint {
                record,
                port,
                netns_id: netns.id(),
            },
        );
        if let Err(e) = self.save(&c) {
            c.endpoints
                .get_mut(&name)
                .expect("inserted above")
                .record
                .published
                .clear();
            self.detach(&mut c, &name);
            return Err(e);
        }
        self.serve_published(&c, &name, bound);
        self.rebuild_zone(&c, network);
        // A named namespace gets a resolv.conf pointing at the embedded DNS, so that
        // `ip netns exec NAME` programs resolve endpoint names.
        let label = &c.endpoints[&name].record.netns;
        if !label.contains('/') {
            if let Err(e) = gateway::write_netns_resolv_conf(label, network, gateway) {
                log::warn!("cannot write /etc/netns/{label}/resolv.conf: {e}");
            }
        }
        Ok(Self::endpoint_info(&c, &c.endpoints[&name]))
    }

    /// Removes an endpoint's port, interface and static entries (no state save).
    fn detach(&self, c: &mut Control, name: &str) {
        let Some(ep) = c.endpoints.remove(name) else {
            return;
        };
        c.static_fdb.retain(|s| s.endpoint != name);
        for m in &ep.record.published {
            self.stack.send(StackInput::Unpublish {
                local: m.host_addr(),
                tcp: m.protocol == publish::Protocol::Tcp,
            });
        }
        self.stack.send(StackInput::ForgetPort(ep.port));
        if let Some(net) = c.networks.get(&ep.record.network) {
            let id = net.id;
            let _ = self
                .dataplane
                .with_bridge(|b| b.remove_neighbor(id, ep.record.ip));
        }
        self.rebuild_zone(c, &ep.record.network);
        let label = &ep.record.netns;
        if !label.contains('/') {
            // Point the namespace's resolv.conf at a network it is still on, or remove it.
            let remaining = c
                .endpoints
                .values()
                .find(|e| &e.record.netns == label)
                .and_then(|e| c.networks.get(&e.record.network));
            match remaining {
                Some(net) => {
                    let _ = gateway::write_netns_resolv_conf(
                        label,
                        &net.record.name,
                        net.record.gateway,
                    );
                }
                None => gateway::remove_netns_resolv_conf(label),
            }
        }
        match self.dataplane.remove_port(ep.port) {
            Ok(fd) => CreatedPort {
                fd,
                kind: ep.record.kind,
                host_ifname: ep.record.host_ifname.clone(),
            }
            .destroy(),
            Err(e) => log::warn!("endpoint {name}: {e}"),
        }
    }

    pub fn disconnect(&self, network: &str, endpoint: &str) -> Result<()> {
        let mut c = self.lock();
        Self::network(&c, network)?;
        match c.endpoints.get(endpoint) {
            Some(e) if e.record.network == network => {}
            Some(e) => {
                return Err(DaemonError::NotFound(format!(
                    "endpoint {endpoint:?} is on network {:?}, not {network:?}",
                    e.record.network
                )))
            }
            None => {
                return Err(DaemonError::NotFound(format!(
                    "no endpoint named {endpoint:?} on network {network:?}; see `weft network inspect {network}`"
                )))
            }
        }
        // Persist the outcome first: if that fails, the endpoint is still fully there.
        let mut after = Self::snapshot(&c);
        after.endpoints.retain(|e| e.name != endpoint);
        after.static_fdb.retain(|s| s.endpoint != endpoint);
        self.state_dir.save(&after)?;
        self.detach(&mut c, endpoint);
        Ok(())
    }

    /// Parses `-p` specs and `-P` ports for an endpoint of `net` and binds their host
    /// sockets, all or none. Refused on `--internal` networks, for a host port published
    /// already (by any endpoint) or given twice, and for a host port in use.
    fn bind_published(
        c: &Control,
        net: &Network,
        specs: &[String],
        publish_all: &[String],
    ) -> Result<Vec<(PortMapping, PublishedSocket)>> {
        let mut wanted = Vec::new();
        for spec in specs {
            wanted.extend(publish::parse_spec(spec).map_err(|e| invalid(e.0))?);
        }
        for port in publish_all {
            wanted.push(publish::parse_publish_all(port).map_err(|e| invalid(e.0))?);
        }
        if net.record.internal {
            return Err(invalid(format!(
                "network {:?} is --internal: it has no published ports; connect the endpoint to a network without --internal to publish",
                net.record.name
            )));
        }
        for (i, m) in wanted.iter().enumerate() {
            if wanted[..i].iter().any(|o| o.clashes(m)) {
                return Err(invalid(format!(
                    "host port {}/{} is given more than once; publish each host port once",
                    m.host_port,
                    m.protocol.as_str()
                )));
            }
            for e in c.endpoints.values() {
                if let Some(o) = e.record.published.iter().find(|o| o.clashes(m)) {
                    return Err(DaemonError::Conflict(format!(
                        "host port {}/{} is already in use: endpoint {:?} publishes {o}; pick another host port or `weft unpublish {} {}/{}` first",
                        m.host_port,
                        m.protocol.as_str(),
                        e.record.name,
                        e.record.name,
                        o.host_port,
                        o.protocol.as_str()
                    )));
                }
            }
        }
        publish::bind_all(&wanted).map_err(|e| match e {
            publish::BindError::InUse { .. } => DaemonError::Conflict(e.to_string()),
            _ => invalid(e.to_string()),
        })
    }

    /// Hands bound host sockets of endpoint `name` to the gateway's stack, which serves
    /// them from now on.
    fn serve_published(&self, c: &Control, name: &str, bound: Vec<(PortMapping, PublishedSocket)>) {
        let Some(ep) = c.endpoints.get(name) else {
            return;
        };
        let Some(net) = c.networks.get(&ep.record.network) else {
            return;
        };
        let Ok(mac) = parse_mac(&ep.record.mac) else {
            return;
        };
        let target = Target {
            port: ep.port,
            mac,
            ip: ep.record.ip,
            gateway: GatewayConfig {
                ip: net.record.gateway,
                mac: gateway_mac(&net.record),
            },
            subnet: (net.record.subnet.network(), net.record.subnet.prefix_len()),
            mtu: net.record.mtu as u16,
        };
        for (mapping, socket) in bound {
            self.stack
                .send(StackInput::Publish(crate::gateway::stack::Published {
                    network: net.id,
                    target,
                    container_port: mapping.container_port,
                    socket,
                }));
        }
    }

    /// Binds a re-attached endpoint's published ports again; a port that cannot be bound
    /// any more is dropped with a warning.
    fn restore_published(&self, c: &mut Control, name: &str) {
        let Some(ep) = c.endpoints.get_mut(name) else {
            return;
        };
        let mut bound = Vec::new();
        ep.record.published.retain(|m| match publish::bind(m) {
            Ok(b) => {
                bound.push(b);
                true
            }
            Err(e) => {
                log::warn!("endpoint {name}: published port {m} dropped: {e}");
                false
            }
        });
        self.serve_published(c, name, bound);
    }

    /// `weft publish ENDPOINT SPEC... [-P PORT...]`: the new mappings.
    pub fn publish(&self, endpoint: &str, req: Publish) -> Result<Vec<PortMapping>> {
        if req.specs.is_empty() && req.publish_all.is_empty() {
            return Err(invalid(
                "nothing to publish: give a spec like 8080:80 or -P 80",
            ));
        }
        let mut c = self.lock();
        let ep = Self::endpoint(&c, endpoint)?;
        let net = Self::network(&c, &ep.record.network)?;
        let bound = Self::bind_published(&c, net, &req.specs, &req.publish_all)?;
        let added: Vec<PortMapping> = bound.iter().map(|(m, _)| *m).collect();
        let mut after = Self::snapshot(&c);
        if let Some(e) = after.endpoints.iter_mut().find(|e| e.name == endpoint) {
            e.published.extend(added.iter().copied());
        }
        // Persist first: if that fails the sockets are closed and nothing changed.
        self.state_dir.save(&after)?;
        c.endpoints
            .get_mut(endpoint)
            .expect("checked above")
            .record
            .published
            .extend(added.iter().copied());
        self.serve_published(&c, endpoint, bound);
        Ok(added)
    }

    /// `weft unpublish ENDPOINT [HOST_IP:]HOST_PORT[-END][/proto]`: the removed mappings.
    pub fn unpublish(&self, endpoint: &str, spec: &str) -> Result<Vec<PortMapping>> {
        let (ip, first, last, protocol) =
            publish::parse_unpublish(spec).map_err(|e| invalid(e.0))?;
        let mut c = self.lock();
        let ep = Self::endpoint(&c, endpoint)?;
        let matches = |m: &PortMapping| {
            m.protocol == protocol
                && (first..=last).contains(&m.host_port)
                && ip.is_none_or(|ip| ip == m.host_ip)
        };
        let removed: Vec<PortMapping> = ep
            .record
            .published
            .iter()
            .copied()
            .filter(|m| matches(m))
            .collect();
        if removed.is_empty() {
            let have: Vec<String> = ep.record.published.iter().map(|m| m.to_string()).collect();
            return Err(DaemonError::NotFound(format!(
                "endpoint {endpoint:?} publishes nothing on {spec}; it publishes: {}",
                if have.is_empty() {
                    "nothing".to_string()
                } else {
                    have.join(", ")
                }
            )));
        }
        let mut after = Self::snapshot(&c);
        if let Some(e) = after.endpoints.iter_mut().find(|e| e.name == endpoint) {
            e.published.retain(|m| !matches(m));
        }
        self.state_dir.save(&after)?;
        c.endpoints
            .get_mut(endpoint)
            .expect("checked above")
            .record
            .published
            .retain(|m| !matches(m));
        for m in &removed {
            self.stack.send(StackInput::Unpublish {
                local: m.host_addr(),
                tcp: m.protocol == publish::Protocol::Tcp,
            });
        }
        Ok(removed)
    }

    /// Opens the VTEP (first overlay network) and accepts the network's VNI.
    fn open_overlay(&self, record: &NetworkRecord) -> Result<()> {
        let Some(vni) = record.vni else {
            return Ok(());
        };
        let vni = weft_vtep::Vni::new(vni).map_err(|e| invalid(e.to_string()))?;
        self.dataplane
            .open_vxlan(self.vtep.advertise, self.vtep.port)?;
        self.dataplane.add_vni(vni);
        Ok(())
    }

    fn close_overlay(&self, record: &NetworkRecord) {
        if let Some(vni) = record.vni.and_then(|v| weft_vtep::Vni::new(v).ok()) {
            self.dataplane.remove_vni(vni);
        }
    }

    /// Adds the tunnel port of a static peer to the overlay network with its VNI.
    fn attach_peer(&self, c: &mut Control, record: PeerRecord) -> Result<String> {
        let name = record.port_name();
        if c.peers.contains_key(&name) {
            return Err(DaemonError::Conflict(format!(
                "{} is already a peer of VNI {}; see `weft peers`",
                record.addr, record.vni
            )));
        }
        let net = c
            .networks
            .values()
            .find(|n| n.record.vni == Some(record.vni))
            .ok_or_else(|| {
                DaemonError::NotFound(format!(
                    "no overlay network has VNI {}; create one with `weft network create NAME --driver overlay --vni {} --subnet CIDR`",
                    record.vni, record.vni
                ))
            })?;
        let (net_id, net_name) = (net.id, net.record.name.clone());
        let vni = weft_vtep::Vni::new(record.vni).map_err(|e| invalid(e.to_string()))?;
        let port = PortId(c.next_port_id);
        self.dataplane.add_tunnel_port(
            port,
            net_id,
            std::net::SocketAddrV4::new(record.addr, record.port),
            vni,
        )?;
        c.next_port_id += 1;
        c.peers.insert(
            name.clone(),
            Peer {
                record,
                port,
                network: net_name,
            },
        );
        Ok(name)
    }

    fn detach_peer(&self, c: &mut Control, name: &str) {
        if let Some(peer) = c.peers.remove(name) {
            c.static_fdb.retain(|s| s.endpoint != name);
            if let Err(e) = self.dataplane.remove_port(peer.port) {
                log::warn!("peer {name}: {e}");
            }
        }
    }

    /// `weft peer add ADDR --vni N [--port P]`.
    pub fn peer_add(&self, req: PeerAdd) -> Result<PeerRow> {
        if req.addr.parse::<Ipv4Addr>().ok() == self.vtep.advertise {
            return Err(invalid(format!(
                "{} is this daemon's own --advertise address: a VTEP is not its own peer; add the other hosts' addresses",
                req.addr
            )));
        }
        let addr: Ipv4Addr = req.addr.parse().map_err(|_| {
            invalid(format!(
                "invalid peer address {:?}: expected the IPv4 address of a VTEP, like 192.168.1.20",
                req.addr
            ))
        })?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
            return Err(invalid(format!(
                "invalid peer address {addr}: a VTEP has a unicast address"
            )));
        }
        let record = PeerRecord {
            addr,
            vni: req.vni,
            port: req.port.unwrap_or(self.vtep.port),
        };
        let mut c = self.lock();
        let name = self.attach_peer(&mut c, record)?;
        if let Err(e) = self.save(&c) {
            self.detach_peer(&mut c, &name);
            return Err(e);
        }
        Ok(self
            .peer_rows(&c)
            .into_iter()
            .find(|r| r.name == name)
            .expect("just added"))
    }

    /// `weft peer rm ADDR --vni N`.
    pub fn peer_rm(&self, addr: &str, vni: u32) -> Result<()> {
        let mut c = self.lock();
        let name = c
            .peers
            .iter()
            .find(|(_, p)| p.record.addr.to_string() == addr && p.record.vni == vni)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                DaemonError::NotFound(format!(
                    "{addr} is not a peer of VNI {vni}; see `weft peers`"
                ))
            })?;
        let mut after = Self::snapshot(&c);
        after
            .peers
            .retain(|p| !(p.addr.to_string() == addr && p.vni == vni));
        after.static_fdb.retain(|s| s.endpoint != name);
        self.state_dir.save(&after)?;
        self.detach_peer(&mut c, &name);
        Ok(())
    }

    pub fn peers(&self) -> Vec<PeerRow> {
        let c = self.lock();
        let mut rows = self.peer_rows(&c);
        drop(c);
        rows.extend(self.cluster_peer_rows());
        rows
    }

    fn peer_rows(&self, c: &Control) -> Vec<PeerRow> {
        c.peers
            .iter()
            .map(|(name, p)| {
                let counters = self.dataplane.port_counters(p.port).unwrap_or_default();
                PeerRow {
                    name: name.clone(),
                    vtep: format!("{}:{}", p.record.addr, p.record.port),
                    vni: p.record.vni,
                    network: p.network.clone(),
                    state: "static".into(),
                    last_heard_seconds: self
                        .dataplane
                        .last_heard(p.port)
                        .map(|t| t.elapsed().as_secs_f64()),
                    endpoints: None,
                    rx_packets: counters.rx_packets,
                    tx_packets: counters.tx_packets,
                }
            })
            .collect()
    }

    fn endpoint<'c>(c: &'c Control, name: &str) -> Result<&'c Endpoint> {
        c.endpoints.get(name).ok_or_else(|| {
            DaemonError::NotFound(format!(
                "no endpoint named {name:?}; list endpoints with `weft ports`"
            ))
        })
    }

    /// Every port's name: endpoints, static peers' and the cluster's tunnel ports.
    fn port_names(&self, c: &Control) -> BTreeMap<PortId, String> {
        c.endpoints
            .values()
            .map(|e| (e.port, e.record.name.clone()))
            .chain(c.peers.iter().map(|(name, p)| (p.port, name.clone())))
            .chain(self.cluster_tunnel_names())
            .collect()
    }

    pub fn fdb(&self, network: Option<&str>) -> Result<Vec<FdbRow>> {
        let c = self.lock();
        let nets = Self::networks_or_one(&c, network)?;
        let port_names = self.port_names(&c);
        let now = self.dataplane.now();
        let mut rows = Vec::new();
        for n in nets {
            let entries = self.dataplane.with_bridge(|b| b.fdb_entries(n.id, now));
            rows.extend(entries.into_iter().map(|e| {
                FdbRow {
                    network: n.record.name.clone(),
                    mac: e.mac.to_string(),
                    port: port_names
                        .get(&e.port)
                        .map_or("?", String::as_str)
                        .to_string(),
                    origin: match e.origin {
                        weft_switch::FdbOrigin::Learned => "learned".into(),
                        weft_switch::FdbOrigin::Static => match self.gossip_origin(n.id, e.mac) {
                            Some(node) => format!("gossip from {node}"),
                            None => "static".into(),
                        },
                    },
                    age_seconds: e.age.as_secs_f64(),
                }
            }));
        }
        Ok(rows)
    }

    /// The neighbour table the switch answers ARP from: the gateway and every endpoint.
    pub fn arp(&self, network: Option<&str>) -> Result<Vec<ArpRow>> {
        let c = self.lock();
        let nets = Self::networks_or_one(&c, network)?;
        let mut rows = Vec::new();
        for n in nets {
            rows.push(ArpRow {
                network: n.record.name.clone(),
                ip: n.record.gateway.to_string(),
                mac: gateway_mac(&n.record).to_string(),
                owner: "gateway".into(),
                origin: "gateway".into(),
            });
            let owners: BTreeMap<Ipv4Addr, &str> = c
                .endpoints
                .values()
                .filter(|e| e.record.network == n.record.name)
                .map(|e| (e.record.ip, e.record.name.as_str()))
                .collect();
            let neighbors = self.dataplane.with_bridge(|b| b.neighbors(n.id));
            let remote = self.cluster_remote_owners(&n.record.name);
            rows.extend(neighbors.into_iter().map(|nb| {
                let (owner, origin) = match (owners.get(&nb.ip), remote.get(&nb.ip)) {
                    (Some(owner), _) => (owner.to_string(), "ipam".to_string()),
                    (None, Some((node, name))) => (name.clone(), format!("gossip from {node}")),
                    (None, None) => ("?".to_string(), "ipam".to_string()),
                };
                ArpRow {
                    network: n.record.name.clone(),
                    ip: nb.ip.to_string(),
                    mac: nb.mac.to_string(),
                    owner,
                    origin,
                }
            }));
        }
        Ok(rows)
    }

    fn apply_static(&self, c: &Control, entry: &StaticFdbRecord) -> Result<()> {
        let net = Self::network(c, &entry.network)?;
        let mac: MacAddr = entry
            .mac
            .parse()
            .map_err(|e: weft_switch::MacParseError| invalid(e.to_string()))?;
        let endpoint_port = c
            .endpoints
            .get(&entry.endpoint)
            .filter(|e| e.record.network == entry.network)
            .map(|e| e.port);
        let peer_port = c
            .peers
            .get(&entry.endpoint)
            .filter(|p| p.network == entry.network)
            .map(|p| p.port);
        let port = endpoint_port.or(peer_port).ok_or_else(|| {
            DaemonError::NotFound(format!(
                "no endpoint or VXLAN peer port named {:?} on network {:?}; see `weft network inspect {}` and `weft peers`",
                entry.endpoint, entry.network, entry.network
            ))
        })?;
        self.dataplane
            .with_bridge(|b| b.add_static(net.id, mac, port))
            .map_err(|e| invalid(e.to_string()))
    }

    pub fn fdb_add(&self, network: &str, mac: &str, endpoint: &str) -> Result<()> {
        let mac = parse_mac(mac)?;
        let mut c = self.lock();
        let entry = StaticFdbRecord {
            network: network.to_string(),
            mac: mac.to_string(),
            endpoint: endpoint.to_string(),
        };
        self.apply_static(&c, &entry)?;
        c.static_fdb
            .retain(|s| !(s.network == network && s.mac == entry.mac));
        c.static_fdb.push(entry);
        self.save(&c)?;
        Ok(())
    }

    pub fn fdb_del(&self, network: &str, mac: &str) -> Result<()> {
        let mac: MacAddr = mac
            .parse()
            .map_err(|e: weft_switch::MacParseError| invalid(e.to_string()))?;
        let mut c = self.lock();
        let id = Self::network(&c, network)?.id;
        let key = mac.to_string();
        if !c
            .static_fdb
            .iter()
            .any(|s| s.network == network && s.mac == key)
        {
            return Err(DaemonError::NotFound(format!(
                "no static FDB entry for {mac} on network {network:?}; list entries with `weft fdb {network}`"
            )));
        }
        self.dataplane
            .with_bridge(|b| b.remove_static(id, mac))
            .map_err(|e| invalid(e.to_string()))?;
        c.static_fdb
            .retain(|s| !(s.network == network && s.mac == key));
        self.save(&c)?;
        Ok(())
    }

    pub fn ports(&self) -> Vec<PortRow> {
        let c = self.lock();
        let mut rows: Vec<PortRow> = c
            .endpoints
            .values()
            .map(|e| {
                let counters = self.dataplane.port_counters(e.port).unwrap_or_default();
                PortRow {
                    endpoint: e.record.name.clone(),
                    published: e.record.published.iter().map(|m| m.to_string()).collect(),
                    ..port_row(&e.record.name, e.record.kind, &e.record.network, &counters)
                }
            })
            .collect();
        for (name, p) in &c.peers {
            let counters = self.dataplane.port_counters(p.port).unwrap_or_default();
            rows.push(port_row(name, PortKind::Vxlan, &p.network, &counters));
        }
        rows.extend(self.cluster_port_rows());
        if let Some((port, counters)) = self.dataplane.vxlan_counters() {
            rows.push(port_row(
                &format!("vxlan:{port}"),
                PortKind::Vxlan,
                "-",
                &counters,
            ));
        }
        rows
    }

    /// Active NAT flows: UDP, TCP (both directions) and ICMP echo.
    pub fn nat_flows(&self, network: Option<&str>) -> Result<Vec<NatRow>> {
        let names: BTreeMap<NetworkId, String> = {
            let c = self.lock();
            Self::networks_or_one(&c, network)?
                .iter()
                .map(|n| (n.id, n.record.name.clone()))
                .collect()
        };
        let udp = self.nat.flows().into_iter().map(|f| NatRow {
            protocol: "udp".into(),
            direction: "out".into(),
            network: String::new(),
            network_id: f.key.network.0,
            container: f.key.container.to_string(),
            outside: f.key.outside.to_string(),
            host_socket: f.local.to_string(),
            bytes_out: f.bytes_out,
            bytes_in: f.bytes_in,
            age_seconds: f.age.as_secs_f64(),
            idle_seconds: f.idle.as_secs_f64(),
        });
        let mut rows: Vec<NatRow> = udp
            .chain(self.stack.flows())
            .filter_map(|mut row| {
                row.network = names.get(&NetworkId(row.network_id))?.clone();
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.network, &a.protocol, &a.container, &a.outside).cmp(&(
                &b.network,
                &b.protocol,
                &b.container,
                &b.outside,
            ))
        });
        Ok(rows)
    }

    /// Learning, aging and gateway counters per network.
    pub fn stats(&self, network: Option<&str>) -> Result<Vec<NetworkStatsRow>> {
        let c = self.lock();
        let nets = Self::networks_or_one(&c, network)?;
        Ok(nets
            .into_iter()
            .map(|n| {
                let (st, entries) = self.dataplane.with_bridge(|b| {
                    let entries = b.fdb(n.id).map_or(0, |f| f.len());
                    (b.network_stats(n.id).unwrap_or_default(), entries)
                });
                NetworkStatsRow {
                    network: n.record.name.clone(),
                    fdb_entries: entries,
                    learned: st.learned,
                    mac_moves: st.mac_moves,
                    learn_refused_table_full: st.learn_refused_table_full,
                    aged_out: st.aged_out,
                    arp_suppressed: st.arp_suppressed,
                    gateway_arp_replies: st.gateway_arp_replies,
                    gateway_echo_replies: st.gateway_echo_replies,
                }
            })
            .collect())
    }

    /// Every counter in the Prometheus text exposition format (version 0.0.4).
    pub fn metrics(&self) -> Result<String> {
        use std::fmt::Write;
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let ports = self.ports();
        let port_series: [MetricSeries<PortRow>; 4] = [
            (
                "weft_port_rx_packets_total",
                "counter",
                "Frames received from the port.",
                |p| p.rx_packets,
            ),
            (
                "weft_port_rx_bytes_total",
                "counter",
                "Bytes received from the port.",
                |p| p.rx_bytes,
            ),
            (
                "weft_port_tx_packets_total",
                "counter",
                "Frames sent out of the port.",
                |p| p.tx_packets,
            ),
            (
                "weft_port_tx_bytes_total",
                "counter",
                "Bytes sent out of the port.",
                |p| p.tx_bytes,
            ),
        ];
        for (name, kind, help, get) in port_series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in &ports {
                let _ = writeln!(
                    out,
                    "{name}{{port=\"{}\",network=\"{}\",kind=\"{}\"}} {}",
                    esc(&p.name),
                    esc(&p.network),
                    p.kind.as_str(),
                    get(p)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP weft_port_drops_total Frames dropped on the port, by reason.\n# TYPE weft_port_drops_total counter"
        );
        for p in &ports {
            for (reason, n) in &p.drops {
                let _ = writeln!(
                    out,
                    "weft_port_drops_total{{port=\"{}\",network=\"{}\",reason=\"{reason}\"}} {n}",
                    esc(&p.name),
                    esc(&p.network)
                );
            }
        }
        let stats = self.stats(None)?;
        let net_series: [MetricSeries<NetworkStatsRow>; 8] = [
            (
                "weft_fdb_entries",
                "gauge",
                "FDB entries (learned and static).",
                |s| s.fdb_entries as u64,
            ),
            (
                "weft_fdb_learned_total",
                "counter",
                "FDB entries learned.",
                |s| s.learned,
            ),
            (
                "weft_fdb_mac_moves_total",
                "counter",
                "Learned MACs that moved to another port.",
                |s| s.mac_moves,
            ),
            (
                "weft_fdb_learn_refused_total",
                "counter",
                "Source MACs not learned because a bound was reached.",
                |s| s.learn_refused_table_full,
            ),
            (
                "weft_fdb_aged_out_total",
                "counter",
                "Learned entries aged out.",
                |s| s.aged_out,
            ),
            (
                "weft_arp_suppressed_total",
                "counter",
                "ARP requests for endpoints answered by the switch.",
                |s| s.arp_suppressed,
            ),
            (
                "weft_gateway_arp_replies_total",
                "counter",
                "ARP requests for the gateway answered.",
                |s| s.gateway_arp_replies,
            ),
            (
                "weft_gateway_echo_replies_total",
                "counter",
                "Pings to the gateway answered.",
                |s| s.gateway_echo_replies,
            ),
        ];
        for (name, kind, help, get) in net_series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in &stats {
                let _ = writeln!(out, "{name}{{network=\"{}\"}} {}", esc(&s.network), get(s));
            }
        }
        Ok(out)
    }

    /// The port named `port` (an endpoint or a tunnel port), for a capture or a trace of
    /// at most `count` frames.
    fn tap_port(&self, c: &Control, port: &str, count: Option<u64>) -> Result<PortId> {
        let id = c
            .endpoints
            .get(port)
            .map(|e| e.port)
            .or_else(|| c.peers.get(port).map(|p| p.port))
            .or_else(|| {
                self.cluster_tunnel_names()
                    .into_iter()
                    .find_map(|(id, name)| (name == port).then_some(id))
            })
            .ok_or_else(|| {
                DaemonError::NotFound(format!(
                    "no port named {port:?}; list ports with `weft ports`"
                ))
            })?;
        if count == Some(0) {
            return Err(invalid("-c/--count must be at least 1"));
        }
        Ok(id)
    }

    /// Starts a live capture on the port of endpoint `port`.
    pub fn capture(
        &self,
        port: &str,
        count: Option<u64>,
    ) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>> {
        let c = self.lock();
        let id = self.tap_port(&c, port, count)?;
        Ok(self.dataplane.add_capture(id, count)?)
    }

    /// Starts a live trace on the port named `port`: for each frame entering it, the
    /// bridge's decision and what became of the frame, with the names to print them by.
    pub fn trace(
        &self,
        port: &str,
        count: Option<u64>,
    ) -> Result<(
        tokio::sync::mpsc::Receiver<Arc<crate::dataplane::FrameTrace>>,
        crate::dataplane::trace_text::TraceNames,
    )> {
        let c = self.lock();
        let id = self.tap_port(&c, port, count)?;
        let names = crate::dataplane::trace_text::TraceNames {
            ports: self.port_names(&c),
            networks: c
                .networks
                .values()
                .map(|n| (n.id, n.record.name.clone()))
                .collect(),
        };
        Ok((self.dataplane.add_trace(id, count)?, names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_parsed_with_helpful_errors() {
        assert_eq!(
            parse_subnet("10.1.0.0/24").unwrap().to_string(),
            "10.1.0.0/24"
        );
        let msg = |s: &str| parse_subnet(s).unwrap_err().to_string();
        assert!(msg("10.1.0.0/33").contains("prefix length must be 0..32"));
        assert!(msg("10.1.0.0").contains("CIDR"));
        assert!(msg("banana/24").contains("not an IPv4 address"));
        assert!(msg("10.1.0.5/24").contains("did you mean 10.1.0.0/24"));
        assert!(msg("10.1.0.0/31").contains("too small"));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("network", "front-end_1.x").is_ok());
        assert!(validate_name("network", "").is_err());
        assert!(validate_name("network", "-x").is_err());
        assert!(validate_name("network", "a b").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("averyveryverylongname").is_err());
        assert!(validate_ifname("a/b").is_err());
    }

    #[test]
    fn generated_macs_follow_the_address() {
        assert_eq!(
            mac_for_ip(Ipv4Addr::new(172, 17, 0, 2)).to_string(),
            "02:42:ac:11:00:02"
        );
    }
}
