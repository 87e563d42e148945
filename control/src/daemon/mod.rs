//! The daemon: its control state and the lock around it, start and restore, persistence, and
//! the lookups every operation shares. The operations live in the child modules by job
//! (`networks`, `endpoints`, `published`, `peers`, `tables`). Every operation validates
//! everything before it changes anything, and undoes what it did if a later step fails, so a
//! refused request leaves no stray interface and no entry in the state.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use weft_switch::{GatewayConfig, MacAddr, NetworkConfig, NetworkId, PortId};

use crate::daemon::state::{
    EndpointRecord, NetworkRecord, PeerRecord, PersistedState, StateDir, StateError,
    StaticFdbRecord, UnreadableEndpoint,
};
use crate::dataplane::{Dataplane, DataplaneError};
use crate::gateway::dns::Zone;
use crate::gateway::{self, NetworkZone, Zones};
use ipam::IpamError;
use weft_sys::SysError;

pub mod bodies;
mod cluster_sync;
mod endpoints;
pub mod engine;
mod explain;
pub mod impair;
mod inject;
mod leftovers;
mod networks;
mod peers;
mod plumb;
mod published;
pub mod restore_check;
mod rollback;
mod run;
mod tables;
mod validate;
pub use run::{shutdown_signal, start, RunConfig, Running};
pub mod ipam;
pub mod state;
pub use cluster_sync::run_cluster_sync;
use cluster_sync::ClusterLink;
use leftovers::Detached;
pub use tables::MetricsData;
use validate::{parse_mac, validate_name};
pub use validate::{parse_subnet, validate_ifname};

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
    /// Endpoint records of the state file this daemon cannot read: not attached, but saved
    /// back with every change so they are not lost (see `UnreadableEndpoint`).
    unreadable_endpoints: Vec<UnreadableEndpoint>,
    /// Endpoints of the state that could not be re-attached on start (their namespace is
    /// gone): kept, with their address and published host ports held, until disconnected.
    detached: BTreeMap<String, Detached>,
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
    /// The gateway's runtime: DNS, UDP, TCP and ICMP NAT, published ports.
    stack: crate::gateway::stack::StackHandle,
    vtep: VtepConfig,
    /// The gossip cluster, if this daemon joined one.
    cluster: Option<ClusterLink>,
}

fn invalid(msg: impl Into<String>) -> DaemonError {
    DaemonError::Invalid(msg.into())
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

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        let persisted = restore_check::check_restored(&state_dir.path(), state_dir.load()?)?;
        let daemon = Daemon {
            control: Mutex::new(Control {
                networks: BTreeMap::new(),
                endpoints: BTreeMap::new(),
                unreadable_endpoints: Vec::new(),
                detached: BTreeMap::new(),
                peers: BTreeMap::new(),
                removed_networks: BTreeMap::new(),
                static_fdb: Vec::new(),
                next_network_id: 1,
                next_port_id: 1,
            }),
            dataplane,
            state_dir,
            zones: gateway.zones,
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
        c.unreadable_endpoints = persisted.unreadable_endpoints;
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
        self.remove_leftovers(&persisted.pending_endpoints, &persisted.endpoints);
        for record in persisted.endpoints {
            let name = record.name.clone();
            match self.attach_existing(&mut c, record.clone()) {
                Ok(()) => {
                    log::info!("re-attached endpoint {name}");
                    self.restore_published(&mut c, &name);
                    self.restore_shaping(&c, &name);
                }
                Err(e) => Self::keep_detached(&mut c, record, e),
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
        // A state that cannot be written (a full disk) must not keep the daemon from
        // starting: what is attached keeps working, and each change reports the error.
        if let Err(e) = self.save(&c) {
            log::error!("{e}; the daemon runs on with the state it read, but every change will fail until the state file can be written");
        }
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
                published_from_gateway: net.record.published_from_gateway,
            },
        );
    }

    fn snapshot(c: &Control) -> PersistedState {
        PersistedState {
            version: 0,
            networks: c.networks.values().map(|n| n.record.clone()).collect(),
            endpoints: c
                .endpoints
                .values()
                .map(|e| &e.record)
                .chain(c.detached.values().map(|d| &d.record))
                .cloned()
                .collect(),
            unreadable_endpoints: c.unreadable_endpoints.clone(),
            static_fdb: c.static_fdb.clone(),
            peers: c.peers.values().map(|p| p.record).collect(),
            removed_networks: c.removed_networks.clone(),
            pending_endpoints: Vec::new(),
        }
    }

    fn save(&self, c: &Control) -> Result<()> {
        Ok(self.state_dir.save(&Self::snapshot(c))?)
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

    /// Whether an endpoint of the state (attached, detached, or kept unread) is named `name`.
    fn endpoint_name_taken(c: &Control, name: &str) -> bool {
        c.endpoints.contains_key(name)
            || c.detached.contains_key(name)
            || c.unreadable_endpoints
                .iter()
                .any(|u| u.name() == Some(name))
    }

    fn endpoint<'c>(c: &'c Control, name: &str) -> Result<&'c Endpoint> {
        c.endpoints.get(name).ok_or_else(|| {
            DaemonError::NotFound(format!(
                "no endpoint named {name:?}; list endpoints with `weft ports`"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_macs_follow_the_address() {
        assert_eq!(
            mac_for_ip(Ipv4Addr::new(172, 17, 0, 2)).to_string(),
            "02:42:ac:11:00:02"
        );
    }
}
