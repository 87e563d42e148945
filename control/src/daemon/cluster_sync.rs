//! Keeps the daemon's tables in step with the gossip cluster (see [`crate::cluster`]): every
//! [`SYNC_INTERVAL`] it reads every node's gossip, derives the overlay networks, remote
//! endpoints and flood lists, applies the difference to the bridge (tunnel ports, static FDB
//! entries "gossip from NODE", ARP suppression entries, DNS names), and publishes what this
//! node has. Cluster-wide IPAM allocates inside address blocks this node leased through the
//! gossip.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::Ipv4Net;
use weft_switch::{MacAddr, NetworkId, PortId};

use super::{invalid, parse_mac, Control, Daemon, DaemonError, Result};
use crate::cluster::gossip::{Gossip, GossipCounters, NodeState, NodeStatus, GOSSIP_INTERVAL};
use crate::cluster::sync;
use crate::cluster::view::{self as cluster, ClusterView, EndpointSpec, NetworkFlags, NetworkSpec};
use crate::daemon::state::NetworkRecord;
use crate::types::{ClusterInfo, PeerRow};

/// How often the tables are brought in step with the gossip.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(300);
/// How long a new address block's lease must stand unchallenged before it is used.
const LEASE_SETTLE: Duration = Duration::from_millis(1500);

/// A tunnel port the gossip created (not a static peer).
#[derive(Debug, Clone)]
struct GossipTunnel {
    port: PortId,
    node: String,
    network: String,
}

/// What the gossip put into the local tables, so it can be taken out again.
#[derive(Debug, Default)]
pub(super) struct ClusterLocal {
    nodes: Vec<NodeStatus>,
    tunnels: BTreeMap<String, GossipTunnel>,
    fdb: BTreeMap<(NetworkId, MacAddr), (PortId, String)>,
    neighbors: BTreeSet<(NetworkId, Ipv4Addr)>,
    /// Remote endpoint names by network, for the embedded DNS.
    pub(super) names: BTreeMap<String, Vec<(String, Ipv4Addr)>>,
    /// Remote endpoints by network: (node, name, address), for `weft arp`.
    remote: BTreeMap<String, Vec<(String, String, Ipv4Addr)>>,
    leases: BTreeSet<(u32, u32)>,
    /// What of the gossip was refused, as logged (each line once; at most
    /// [`MAX_REPORTED`] remembered).
    reported: BTreeSet<String>,
}

/// How many refusals `ClusterLocal::reported` remembers before it forgets them all (and a
/// refusal that persists is logged again).
const MAX_REPORTED: usize = 4096;

impl ClusterLocal {
    /// Logs, once each, what the nodes' gossip held that was refused.
    fn report_issues(&mut self, nodes: &[NodeStatus]) {
        for n in nodes {
            for issue in &n.info.issues {
                self.report_once(format!("gossip from node {}: {issue}", n.info.name));
            }
        }
    }

    /// Logs a warning unless the same line was logged before: what the gossip asks for
    /// and this node refuses would be logged every round otherwise.
    fn report_once(&mut self, line: String) {
        if self.reported.len() >= MAX_REPORTED {
            self.reported.clear();
        }
        if !self.reported.contains(&line) {
            log::warn!("{line}");
            self.reported.insert(line);
        }
    }
}

/// The daemon's link to the gossip.
pub(super) struct ClusterLink {
    gossip: Arc<Gossip>,
    runtime: tokio::runtime::Handle,
    local: Mutex<ClusterLocal>,
}

impl ClusterLink {
    pub(super) fn new(gossip: Arc<Gossip>, runtime: tokio::runtime::Handle) -> ClusterLink {
        ClusterLink {
            gossip,
            runtime,
            local: Mutex::new(ClusterLocal::default()),
        }
    }

    pub(super) fn local(&self) -> MutexGuard<'_, ClusterLocal> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the synchronisation until the daemon goes away.
pub async fn run_cluster_sync(daemon: Arc<Daemon>) {
    let Some(link) = &daemon.cluster else {
        return;
    };
    let gossip = Arc::clone(&link.gossip);
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    loop {
        tick.tick().await;
        let nodes = gossip.nodes().await;
        let d = Arc::clone(&daemon);
        let Ok(kv) = tokio::task::spawn_blocking(move || d.reconcile(nodes)).await else {
            continue;
        };
        gossip.publish(kv).await;
    }
}

impl Daemon {
    fn link(&self) -> Option<&ClusterLink> {
        self.cluster.as_ref()
    }

    /// This node's gossip keys from its state.
    fn cluster_key_values(
        &self,
        c: &Control,
        leases: &BTreeSet<(u32, u32)>,
    ) -> BTreeMap<String, String> {
        let vtep = SocketAddrV4::new(
            self.vtep.advertise.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.vtep.port,
        );
        let mut networks = BTreeMap::new();
        let mut vnis = BTreeMap::new();
        for n in c.networks.values() {
            if let (Some(vni), Some(created_ms)) = (n.record.vni, n.record.created_ms) {
                vnis.insert(n.record.name.clone(), vni);
                networks.insert(
                    n.record.name.clone(),
                    NetworkSpec {
                        vni,
                        subnet: n.record.subnet,
                        gateway: n.record.gateway,
                        mtu: n.record.mtu,
                        created_ms,
                        icc: n.record.icc,
                        nat: n.record.nat,
                        internal: n.record.internal,
                    },
                );
            }
        }
        let mut endpoints = BTreeMap::new();
        for e in c.endpoints.values() {
            let (Some(&vni), Ok(mac)) = (vnis.get(&e.record.network), parse_mac(&e.record.mac))
            else {
                continue;
            };
            endpoints.insert(
                (vni, mac),
                EndpointSpec {
                    ip: e.record.ip,
                    name: e.record.name.clone(),
                    aliases: e.record.aliases.clone(),
                },
            );
        }
        cluster::key_values(vtep, &networks, &c.removed_networks, &endpoints, leases)
    }

    /// One synchronisation round: applies the cluster's view to the local tables and
    /// returns this node's key-values to publish.
    /// Brings the tables in step with the gossip: plans (pure, `cluster::sync`), then applies
    /// networks, tunnel ports and remote endpoints in that order; returns what this node
    /// publishes.
    fn reconcile(&self, nodes: Vec<NodeStatus>) -> BTreeMap<String, String> {
        let Some(link) = self.link() else {
            return BTreeMap::new();
        };
        let mut c = self.lock();
        let me = link.gossip.node_name.clone();
        let view = ClusterView::new(&me, nodes.iter().map(|n| n.info.clone()).collect());
        {
            let mut local = link.local();
            local.report_issues(&nodes);
            local.nodes = nodes;
        }
        // `local` is not held across calls that rebuild DNS zones (they read it).
        let plan = sync::plan_networks(&view, &local_networks(&c), &c.removed_networks);
        self.apply_networks(&mut c, plan);
        let networks = local_networks(&c);
        let mut local = link.local();
        let gossip_made: BTreeSet<String> = local.tunnels.keys().cloned().collect();
        let statics: BTreeSet<String> = c.peers.keys().cloned().collect();
        let plan = sync::plan_tunnels(&view, &networks, &gossip_made, &statics);
        self.apply_tunnels(&mut c, &mut local, plan);
        let local_macs: BTreeSet<MacAddr> = c
            .endpoints
            .values()
            .filter_map(|e| parse_mac(&e.record.mac).ok())
            .collect();
        let tunnels: BTreeSet<String> = local
            .tunnels
            .keys()
            .chain(c.peers.keys())
            .cloned()
            .collect();
        let wanted = sync::remote_tables(&view, &networks, &local_macs, &tunnels);
        self.apply_remote_fdb(&c, &mut local, &wanted.fdb);
        self.apply_remote_neighbors(&c, &mut local, &wanted.neighbors);
        local.remote = wanted.remote;
        if local.names != wanted.names {
            local.names = wanted.names;
            drop(local);
            let nets: Vec<String> = c.networks.keys().cloned().collect();
            for n in &nets {
                self.rebuild_zone(&c, n);
            }
            local = link.local();
        }
        let leases = local.leases.clone();
        drop(local);
        self.cluster_key_values(&c, &leases)
    }

    fn apply_networks(&self, c: &mut Control, plan: sync::NetworkPlan) {
        for (name, spec) in &plan.adopt {
            if let Err(e) = self.adopt_network(c, name, spec) {
                if let Some(link) = self.link() {
                    link.local().report_once(format!(
                        "overlay network {name} from the cluster not created here: {e}"
                    ));
                }
            }
        }
        for name in plan.remove {
            log::info!("overlay network {name} was removed in the cluster; removing it here");
            if let Err(e) = self.remove_network_locked(c, &name, false) {
                log::warn!("cannot remove network {name}: {e}");
            }
        }
        for (name, flags) in plan.flags {
            if let Err(e) = self.apply_flags(c, &name, flags) {
                log::warn!("cannot apply the cluster's flags to network {name}: {e}");
            }
        }
    }

    /// Gives a network the isolation flags the cluster has for it: the bridge's ICC, the
    /// gateway's NAT (its zone) and the record.
    fn apply_flags(&self, c: &mut Control, name: &str, flags: NetworkFlags) -> Result<()> {
        let net = c
            .networks
            .get_mut(name)
            .ok_or_else(|| DaemonError::NotFound(format!("no network {name}")))?;
        let before = net.record.clone();
        net.record.icc = flags.icc;
        net.record.nat = flags.nat;
        net.record.internal = flags.internal;
        let (id, config) = (net.id, super::network_config(&net.record));
        if let Err(e) = self
            .dataplane
            .with_bridge(|b| b.set_network_config(id, config))
        {
            if let Some(n) = c.networks.get_mut(name) {
                n.record = before;
            }
            return Err(DaemonError::Internal(e.to_string()));
        }
        log::info!(
            "overlay network {name}: flags from the cluster applied (icc {}, nat {}, internal {})",
            flags.icc,
            flags.nat,
            flags.internal
        );
        if flags.internal && !before.internal {
            // An --internal network has no published ports: withdrawn here too.
            self.withdraw_published(c, name);
        }
        self.rebuild_zone(c, name);
        self.save(c)
    }

    fn apply_tunnels(&self, c: &mut Control, local: &mut ClusterLocal, plan: sync::TunnelPlan) {
        for name in plan.remove {
            if let Some(t) = local.tunnels.remove(&name) {
                log::info!("tunnel {name} to node {} removed", t.node);
                if let Err(e) = self.dataplane.remove_port(t.port) {
                    log::warn!("tunnel {name}: {e}");
                }
                local.fdb.retain(|_, (port, _)| *port != t.port);
            }
        }
        for t in plan.add {
            let Some(net) = c.networks.get(&t.network) else {
                continue;
            };
            let Ok(vni) = weft_vtep::Vni::new(t.vni) else {
                continue;
            };
            let port = PortId(c.next_port_id);
            let remote = SocketAddrV4::new(t.addr, t.port);
            match self.dataplane.add_tunnel_port(port, net.id, remote, vni) {
                Ok(()) => {
                    c.next_port_id += 1;
                    log::info!("tunnel {} to node {} added", t.name, t.node);
                    local.tunnels.insert(
                        t.name,
                        GossipTunnel {
                            port,
                            node: t.node,
                            network: t.network,
                        },
                    );
                }
                Err(e) => log::warn!("tunnel {} to node {}: {e}", t.name, t.node),
            }
        }
    }

    /// Static FDB entries "gossip from NODE" on the node's tunnel port.
    fn apply_remote_fdb(
        &self,
        c: &Control,
        local: &mut ClusterLocal,
        wanted: &BTreeMap<(String, MacAddr), (String, String)>,
    ) {
        let port_of = |tunnel: &str| {
            local
                .tunnels
                .get(tunnel)
                .map(|t| t.port)
                .or_else(|| c.peers.get(tunnel).map(|p| p.port))
        };
        let resolved: BTreeMap<(NetworkId, MacAddr), (PortId, String)> = wanted
            .iter()
            .filter_map(|((network, mac), (tunnel, node))| {
                let id = c.networks.get(network)?.id;
                Some(((id, *mac), (port_of(tunnel)?, node.clone())))
            })
            .collect();
        let old = std::mem::take(&mut local.fdb);
        let d = sync::diff(&old, &resolved, |a, b| a.0 == b.0);
        for (network, mac) in d.remove {
            let _ = self
                .dataplane
                .with_bridge(|b| b.remove_static(network, mac));
        }
        let mut failed = BTreeSet::new();
        for ((network, mac), (port, node)) in d.set {
            if let Err(e) = self
                .dataplane
                .with_bridge(|b| b.add_static(network, mac, port))
            {
                log::warn!("FDB entry {mac} from node {node}: {e}");
                failed.insert((network, mac));
            }
        }
        local.fdb = resolved;
        local.fdb.retain(|key, _| !failed.contains(key));
    }

    /// ARP suppression entries for the remote endpoints' addresses.
    fn apply_remote_neighbors(
        &self,
        c: &Control,
        local: &mut ClusterLocal,
        wanted: &BTreeMap<(String, Ipv4Addr), MacAddr>,
    ) {
        let resolved: BTreeMap<(NetworkId, Ipv4Addr), MacAddr> = wanted
            .iter()
            .filter_map(|((network, ip), mac)| Some(((c.networks.get(network)?.id, *ip), *mac)))
            .collect();
        let old = std::mem::take(&mut local.neighbors);
        for key in old.iter().filter(|k| !resolved.contains_key(k)) {
            let _ = self
                .dataplane
                .with_bridge(|b| b.remove_neighbor(key.0, key.1));
        }
        for (key, mac) in &resolved {
            if self
                .dataplane
                .with_bridge(|b| b.set_neighbor(key.0, key.1, *mac))
                .is_ok()
            {
                local.neighbors.insert(*key);
            }
        }
    }

    /// Creates a network the cluster has and this node has not.
    fn adopt_network(&self, c: &mut Control, name: &str, spec: &NetworkSpec) -> Result<()> {
        super::validate_name("network", name)?;
        if let Some(other) = Self::overlapping(c, spec.subnet) {
            return Err(DaemonError::Conflict(format!(
                "its subnet {} overlaps network {:?} here",
                spec.subnet, other.record.name
            )));
        }
        if let Some(other) = c.networks.values().find(|n| n.record.vni == Some(spec.vni)) {
            return Err(DaemonError::Conflict(format!(
                "its VNI {} is used by network {:?} here",
                spec.vni, other.record.name
            )));
        }
        let record = NetworkRecord {
            name: name.to_string(),
            subnet: spec.subnet,
            gateway: spec.gateway,
            mtu: spec.mtu,
            aging_seconds: super::DEFAULT_AGING_SECONDS,
            icc: spec.icc,
            nat: spec.nat,
            internal: spec.internal,
            vni: Some(spec.vni),
            created_ms: Some(spec.created_ms),
            docker_id: None,
            published_from_gateway: false,
            docker_adopted: false,
        };
        self.install_network(c, record)?;
        log::info!(
            "overlay network {name} (VNI {}, icc {}, nat {}, internal {}) joined from the cluster",
            spec.vni,
            spec.icc,
            spec.nat,
            spec.internal
        );
        self.rebuild_zone(c, name);
        self.save(c)
    }

    /// Refuses an explicit address another node's endpoint has.
    pub(super) fn cluster_check_explicit(&self, vni: u32, ip: Ipv4Addr) -> Result<()> {
        let Some(link) = self.link() else {
            return Ok(());
        };
        let local = link.local();
        let view = ClusterView::new(
            &link.gossip.node_name,
            local.nodes.iter().map(|n| n.info.clone()).collect(),
        );
        // Dead nodes count: their containers keep their addresses and come back with them.
        for node in view.nodes.iter().filter(|n| n.name != view.me) {
            if let Some(((_, _), spec)) = node
                .endpoints
                .iter()
                .find(|((v, _), spec)| *v == vni && spec.ip == ip)
            {
                return Err(DaemonError::Conflict(format!(
                    "address {ip} is taken by endpoint {:?} on node {}{}; pass another --ip or omit it",
                    spec.name,
                    node.name,
                    if node.alive { "" } else { " (down now)" }
                )));
            }
        }
        Ok(())
    }

    /// An address for a new endpoint of overlay VNI `vni`: the first free one in this node's
    /// leased blocks; without one, leases a new block (published, then kept only if no node
    /// with a smaller name claimed it in the meantime).
    pub(super) fn cluster_allocate(
        &self,
        c: &Control,
        vni: u32,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        taken_here: &BTreeSet<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let Some(link) = self.link() else {
            return Err(invalid("no cluster"));
        };
        let me = link.gossip.node_name.clone();
        for _attempt in 0..8 {
            let nodes = link.runtime.block_on(link.gossip.nodes());
            let view = ClusterView::new(&me, nodes.iter().map(|n| n.info.clone()).collect());
            let taken: BTreeSet<Ipv4Addr> = view
                .taken_addresses(vni)
                .union(taken_here)
                .copied()
                .collect();
            let mine: Vec<u32> = {
                let local = link.local();
                local
                    .leases
                    .iter()
                    .filter(|(v, _)| *v == vni)
                    .map(|(_, b)| *b)
                    .collect()
            };
            for block in &mine {
                if view.block_owner(vni, *block).is_some_and(|o| o != me) {
                    continue;
                }
                if let Some(ip) = cluster::block_addresses(subnet, gateway, *block)
                    .into_iter()
                    .find(|a| !taken.contains(a))
                {
                    return Ok(ip);
                }
            }
            // Lease a new block: claim it, let the claim spread, and keep it only if no
            // node with a smaller name claimed it too.
            let mine: BTreeSet<u32> = mine.into_iter().collect();
            let Some(block) = cluster::free_block(&view, vni, subnet, gateway, &mine) else {
                return Err(invalid(format!(
                    "no free address block left in {subnet} across the cluster; use a larger subnet"
                )));
            };
            link.local().leases.insert((vni, block));
            let leases = link.local().leases.clone();
            let kv = self.cluster_key_values(c, &leases);
            link.runtime.block_on(link.gossip.publish(kv));
            std::thread::sleep(LEASE_SETTLE);
            let nodes = link.runtime.block_on(link.gossip.nodes());
            let view = ClusterView::new(&me, nodes.iter().map(|n| n.info.clone()).collect());
            if view.block_owner(vni, block).is_some_and(|o| o != me) {
                log::info!(
                    "address block {block} of VNI {vni} went to another node; trying another"
                );
                link.local().leases.remove(&(vni, block));
            }
        }
        Err(DaemonError::Conflict(
            "could not lease an address block: the cluster kept contending; try again".into(),
        ))
    }

    /// Rows of `weft peers` for the gossip nodes.
    pub(super) fn cluster_peer_rows(&self) -> Vec<PeerRow> {
        let Some(link) = self.link() else {
            return Vec::new();
        };
        let local = link.local();
        local
            .nodes
            .iter()
            .filter(|n| !n.is_self)
            .map(|n| {
                let tunnels: Vec<&GossipTunnel> = local
                    .tunnels
                    .values()
                    .filter(|t| t.node == n.info.name)
                    .collect();
                let (rx, tx) = tunnels.iter().fold((0, 0), |(rx, tx), t| {
                    let counters = self.dataplane.port_counters(t.port).unwrap_or_default();
                    (rx + counters.rx_packets, tx + counters.tx_packets)
                });
                PeerRow {
                    name: n.info.name.clone(),
                    vtep: n.info.vtep.map_or_else(|| "-".into(), |v| v.to_string()),
                    vni: 0,
                    network: tunnels
                        .iter()
                        .map(|t| t.network.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                    state: n.state.as_str().into(),
                    last_heard_seconds: n.last_heard.map(|d| d.as_secs_f64()),
                    endpoints: Some(if n.state == NodeState::Dead {
                        0
                    } else {
                        n.info.endpoints.len()
                    }),
                    rx_packets: rx,
                    tx_packets: tx,
                }
            })
            .collect()
    }

    /// Every other node's overlay endpoints, dead nodes' too (VNI, MAC, what it published,
    /// node, alive), for `weft explain`.
    pub(super) fn cluster_endpoints(&self) -> Vec<(u32, MacAddr, EndpointSpec, String, bool)> {
        let Some(link) = self.link() else {
            return Vec::new();
        };
        let local = link.local();
        let others = local.nodes.iter().filter(|n| !n.is_self);
        others
            .flat_map(|n| {
                let alive = n.state != NodeState::Dead;
                n.info.endpoints.iter().map(move |((vni, mac), spec)| {
                    (*vni, *mac, spec.clone(), n.info.name.clone(), alive)
                })
            })
            .collect()
    }

    /// Where an FDB entry came from, if the gossip put it there.
    pub(super) fn gossip_origin(&self, network: NetworkId, mac: MacAddr) -> Option<String> {
        let link = self.link()?;
        let local = link.local();
        local.fdb.get(&(network, mac)).map(|(_, node)| node.clone())
    }

    /// Removes the gossip's tunnel ports and table entries of a network being removed.
    pub(super) fn cluster_forget_network(&self, network: &str, id: NetworkId) {
        let Some(link) = self.link() else { return };
        let mut local = link.local();
        let doomed: Vec<String> = local
            .tunnels
            .iter()
            .filter(|(_, t)| t.network == network)
            .map(|(n, _)| n.clone())
            .collect();
        for name in doomed {
            if let Some(t) = local.tunnels.remove(&name) {
                if let Err(e) = self.dataplane.remove_port(t.port) {
                    log::warn!("tunnel {name}: {e}");
                }
            }
        }
        local.fdb.retain(|(net, _), _| *net != id);
        local.neighbors.retain(|(net, _)| *net != id);
        local.names.remove(network);
        local.remote.remove(network);
    }

    /// The gossip's tunnel ports as `weft ports` rows.
    pub(super) fn cluster_port_rows(&self) -> Vec<crate::types::PortRow> {
        let Some(link) = self.link() else {
            return Vec::new();
        };
        let local = link.local();
        local
            .tunnels
            .iter()
            .map(|(name, t)| {
                let counters = self.dataplane.port_counters(t.port).unwrap_or_default();
                let (impair, link_down) = self.shaping_of(t.port);
                crate::types::PortRow {
                    impair,
                    link_down,
                    ..super::tables::port_row(
                        name,
                        crate::types::PortKind::Vxlan,
                        &t.network,
                        &counters,
                    )
                }
            })
            .collect()
    }

    /// Names of the tunnel ports the gossip created.
    pub(super) fn cluster_tunnel_names(&self) -> Vec<(PortId, String)> {
        self.link()
            .map(|l| {
                l.local()
                    .tunnels
                    .iter()
                    .map(|(name, t)| (t.port, name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remote endpoints of `network` by address: (node, endpoint name).
    pub(super) fn cluster_remote_owners(
        &self,
        network: &str,
    ) -> BTreeMap<Ipv4Addr, (String, String)> {
        let Some(link) = self.link() else {
            return BTreeMap::new();
        };
        let local = link.local();
        local
            .remote
            .get(network)
            .map(|v| {
                v.iter()
                    .map(|(node, name, ip)| (*ip, (node.clone(), name.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remote names of `network` for the embedded DNS.
    pub(super) fn cluster_names(&self, network: &str) -> Vec<(String, Ipv4Addr)> {
        self.link()
            .map(|l| l.local().names.get(network).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The gossip socket's counters, if this daemon is in a cluster.
    pub fn gossip_counters(&self) -> Option<Arc<GossipCounters>> {
        self.link().map(|l| Arc::clone(&l.gossip.counters))
    }

    /// `weft cluster`: this node and its gossip counters.
    pub fn cluster_info(&self) -> Result<ClusterInfo> {
        let link = self.link().ok_or_else(|| {
            DaemonError::NotFound(
                "this daemon is not in a cluster; start it with --advertise ADDR --cluster-key-file FILE [--join ADDR]".into(),
            )
        })?;
        let g = &link.gossip;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let local = link.local();
        Ok(ClusterInfo {
            node: g.node_name.clone(),
            gossip: g.gossip_addr.to_string(),
            vtep: format!(
                "{}:{}",
                self.vtep.advertise.unwrap_or(Ipv4Addr::UNSPECIFIED),
                self.vtep.port
            ),
            nodes_alive: local
                .nodes
                .iter()
                .filter(|n| n.state != NodeState::Dead)
                .count(),
            gossip_rx: load(&g.counters.rx),
            gossip_tx: load(&g.counters.tx),
            gossip_auth_failed: load(&g.counters.auth_failed),
            gossip_malformed: load(&g.counters.malformed),
            gossip_replayed: load(&g.counters.replayed),
            gossip_stale: load(&g.counters.stale),
            gossip_old_format: load(&g.counters.old_format),
            gossip_cut_off: load(&g.counters.cut_off),
            leases: local
                .leases
                .iter()
                .map(|(vni, block)| format!("{vni}:{block}"))
                .collect(),
            gossip_interval_ms: GOSSIP_INTERVAL.as_millis() as u64,
        })
    }
}

/// The networks of this node as the cluster plan needs them.
fn local_networks(c: &Control) -> Vec<sync::LocalNetwork> {
    c.networks
        .values()
        .map(|n| sync::LocalNetwork {
            name: n.record.name.clone(),
            vni: n.record.vni,
            created_ms: n.record.created_ms,
            in_use: c
                .endpoints
                .values()
                .any(|e| e.record.network == n.record.name),
            flags: NetworkFlags {
                icc: n.record.icc,
                nat: n.record.nat,
                internal: n.record.internal,
            },
        })
        .collect()
}
