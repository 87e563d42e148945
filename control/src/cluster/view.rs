//! The cluster as gossip describes it, and what every node derives from it. Pure: no I/O, no
//! clock (times are passed in); the gossip itself (chitchat over an authenticated, encrypted
//! UDP transport) lives in [`crate::cluster::gossip`].
//!
//! Every node publishes in its own keyspace (chitchat's per-node versioned key-values):
//!
//! | key | value |
//! |---|---|
//! | `vtep` | its VTEP, `ADDR:PORT` |
//! | `net:NAME` | an overlay network it knows: [`NetworkSpec`] as JSON |
//! | `netrm:NAME` | it removed the network NAME created at that time (`created_ms`) |
//! | `ep:VNI:MAC` | one of its endpoints: [`EndpointSpec`] as JSON |
//! | `lease:VNI:BLOCK` | it allocates addresses of VNI's subnet in block BLOCK |
//!
//! What one node publishes is bounded ([`MAX_NETWORKS_PER_NODE`], [`MAX_REMOVED_PER_NODE`],
//! [`MAX_ENDPOINTS_PER_NODE`], [`MAX_LEASES_PER_NODE`]; endpoint names and aliases by
//! [`EndpointSpec::check`]) and every spec is checked ([`NetworkSpec::check`]): the rest is
//! ignored and said in [`NodeInfo::issues`], which the daemon logs once.
//!
//! From the live nodes' keys every node derives the same tables: the overlay networks
//! ([`ClusterView::networks`]), remote endpoints (MAC -> VTEP for the FDB, IP -> MAC for ARP
//! suppression, names for DNS), the flood list per VNI (nodes with endpoints in it), and the
//! addresses and blocks taken. A dead node contributes nothing: its entries leave every table
//! as soon as the failure detector declares it dead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;
use weft_switch::MacAddr;

pub use super::spec::{EndpointSpec, NetworkFlags, NetworkSpec};

/// Addresses per IPAM block: a node allocates inside blocks it leased, so two nodes never
/// hand out the same address, even at the same moment.
pub const BLOCK_SIZE: u32 = 16;

/// What one node's gossip says, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub vtep: Option<SocketAddrV4>,
    pub alive: bool,
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Network name -> `created_ms` of the incarnation this node removed.
    pub removed: BTreeMap<String, u64>,
    pub endpoints: BTreeMap<(u32, MacAddr), EndpointSpec>,
    pub leases: BTreeSet<(u32, u32)>,
    /// What of the node's gossip was refused and why, for the log.
    pub issues: Vec<String>,
}

/// Most overlay networks one node's gossip may name (`net:`); beyond that its networks are
/// ignored, and logged. A node has as many networks as `weft network create` made; 1024 is
/// far more than any host runs.
pub const MAX_NETWORKS_PER_NODE: usize = 1024;
/// Most removal markers (`netrm:`) of one node.
pub const MAX_REMOVED_PER_NODE: usize = 1024;
/// Most endpoints (`ep:`, each one MAC on one VNI) of one node: ten times the containers a
/// busy host runs. Each becomes an FDB, ARP and DNS entry on every other node.
pub const MAX_ENDPOINTS_PER_NODE: usize = 4096;
/// Most address blocks (`lease:`) one node may lease: one per endpoint at worst.
pub const MAX_LEASES_PER_NODE: usize = 4096;
/// Most refusals kept per node for the log; the rest are summed up in one line.
pub const MAX_ISSUES_PER_NODE: usize = 32;

/// One key-value of a node's gossip, parsed.
enum Entry {
    Vtep(SocketAddrV4),
    Network(String, NetworkSpec),
    Removed(String, u64),
    Endpoint((u32, MacAddr), EndpointSpec),
    Lease((u32, u32)),
}

impl Entry {
    /// None for a key or value this node does not understand (a newer node may publish
    /// more); Err for one it understands and refuses.
    fn parse(key: &str, value: &str) -> Option<Result<Entry, String>> {
        if key == "vtep" {
            return value.parse().ok().map(|v| Ok(Entry::Vtep(v)));
        }
        if let Some(net) = key.strip_prefix("net:") {
            let spec: NetworkSpec = serde_json::from_str(value).ok()?;
            return Some(match spec.check() {
                Ok(()) => Ok(Entry::Network(net.to_string(), spec)),
                Err(e) => Err(format!("network {net:?} refused: {e}")),
            });
        }
        if let Some(net) = key.strip_prefix("netrm:") {
            return value
                .parse()
                .ok()
                .map(|c| Ok(Entry::Removed(net.to_string(), c)));
        }
        if let Some(rest) = key.strip_prefix("ep:") {
            let (vni, mac) = rest.split_once(':')?;
            let (vni, mac) = (vni.parse().ok()?, mac.parse::<MacAddr>().ok()?);
            let spec: EndpointSpec = serde_json::from_str(value).ok()?;
            return Some(match spec.check() {
                Ok(()) => Ok(Entry::Endpoint((vni, mac), spec)),
                Err(e) => Err(format!("endpoint {mac} of VNI {vni} refused: {e}")),
            });
        }
        let (vni, block) = key.strip_prefix("lease:")?.split_once(':')?;
        Some(Ok(Entry::Lease((vni.parse().ok()?, block.parse().ok()?))))
    }
}

impl NodeInfo {
    /// Parses a node's key-values; keys or values it does not understand are skipped (a
    /// newer node may publish more). What it refuses (specs out of range, more than the
    /// `MAX_*_PER_NODE` entries of a kind) is left out and said in `issues`.
    pub fn from_key_values<'a>(
        name: &str,
        alive: bool,
        kvs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> NodeInfo {
        let mut n = NodeInfo {
            name: name.to_string(),
            vtep: None,
            alive,
            networks: BTreeMap::new(),
            removed: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            leases: BTreeSet::new(),
            issues: Vec::new(),
        };
        let mut over: BTreeSet<Full> = BTreeSet::new();
        let mut refused = 0usize;
        for (key, value) in kvs {
            let entry = match Entry::parse(key, value) {
                None => continue,
                Some(Err(issue)) => {
                    refused += 1;
                    if n.issues.len() < MAX_ISSUES_PER_NODE {
                        n.issues.push(issue);
                    }
                    continue;
                }
                Some(Ok(entry)) => entry,
            };
            if let Some(limit) = n.insert(entry) {
                over.insert(limit);
            }
        }
        if refused > n.issues.len() {
            n.issues
                .push(format!("{} more entries refused", refused - n.issues.len()));
        }
        n.issues.extend(over.into_iter().map(Full::describe));
        n
    }

    /// Adds a parsed entry unless its kind is full: then says which.
    fn insert(&mut self, entry: Entry) -> Option<Full> {
        match entry {
            Entry::Vtep(v) => self.vtep = Some(v),
            Entry::Network(name, spec) => {
                if self.networks.len() >= MAX_NETWORKS_PER_NODE {
                    return Some(Full::Networks);
                }
                self.networks.insert(name, spec);
            }
            Entry::Removed(name, created) => {
                if self.removed.len() >= MAX_REMOVED_PER_NODE {
                    return Some(Full::Removed);
                }
                self.removed.insert(name, created);
            }
            Entry::Endpoint(key, spec) => {
                if self.endpoints.len() >= MAX_ENDPOINTS_PER_NODE {
                    return Some(Full::Endpoints);
                }
                self.endpoints.insert(key, spec);
            }
            Entry::Lease(lease) => {
                if self.leases.len() >= MAX_LEASES_PER_NODE {
                    return Some(Full::Leases);
                }
                self.leases.insert(lease);
            }
        }
        None
    }
}

/// A kind of entry a node published more of than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Full {
    Networks,
    Removed,
    Endpoints,
    Leases,
}

impl Full {
    fn describe(self) -> String {
        let (limit, what, name) = match self {
            Full::Networks => (MAX_NETWORKS_PER_NODE, "networks", "MAX_NETWORKS_PER_NODE"),
            Full::Removed => (
                MAX_REMOVED_PER_NODE,
                "network removals",
                "MAX_REMOVED_PER_NODE",
            ),
            Full::Endpoints => (
                MAX_ENDPOINTS_PER_NODE,
                "endpoints",
                "MAX_ENDPOINTS_PER_NODE",
            ),
            Full::Leases => (MAX_LEASES_PER_NODE, "address blocks", "MAX_LEASES_PER_NODE"),
        };
        format!("publishes more than {limit} {what} ({name}); the rest are ignored")
    }
}

/// The key-values a node publishes for itself.
pub fn key_values(
    vtep: SocketAddrV4,
    networks: &BTreeMap<String, NetworkSpec>,
    removed: &BTreeMap<String, u64>,
    endpoints: &BTreeMap<(u32, MacAddr), EndpointSpec>,
    leases: &BTreeSet<(u32, u32)>,
) -> BTreeMap<String, String> {
    let mut kv = BTreeMap::new();
    kv.insert("vtep".to_string(), vtep.to_string());
    for (name, spec) in networks {
        kv.insert(
            format!("net:{name}"),
            serde_json::to_string(spec).expect("plain struct"),
        );
    }
    for (name, created) in removed {
        kv.insert(format!("netrm:{name}"), created.to_string());
    }
    for ((vni, mac), spec) in endpoints {
        kv.insert(
            format!("ep:{vni}:{mac}"),
            serde_json::to_string(spec).expect("plain struct"),
        );
    }
    for (vni, block) in leases {
        kv.insert(format!("lease:{vni}:{block}"), String::new());
    }
    kv
}

/// A remote endpoint as the local node sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub node: String,
    pub vtep: SocketAddrV4,
    pub vni: u32,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub name: String,
    pub aliases: Vec<String>,
}

/// Everything the local node derives from the cluster's gossip.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeInfo>,
    pub me: String,
}

impl ClusterView {
    pub fn new(me: &str, nodes: Vec<NodeInfo>) -> ClusterView {
        ClusterView {
            nodes,
            me: me.to_string(),
        }
    }

    fn live(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.alive)
    }

    fn live_others(&self) -> impl Iterator<Item = &NodeInfo> {
        self.live().filter(move |n| n.name != self.me)
    }

    /// The overlay networks of the cluster: for each name the oldest creation any live
    /// node publishes, unless a live node removed that incarnation (or a newer one). Its
    /// isolation flags are the strictest any live node publishes for that incarnation: a
    /// node that adopted it as open before the flags were gossiped (or one that lies) never
    /// opens it elsewhere.
    pub fn networks(&self) -> BTreeMap<String, NetworkSpec> {
        let mut best: BTreeMap<String, (NetworkSpec, &str)> = BTreeMap::new();
        for node in self.live() {
            for (name, spec) in &node.networks {
                let better = match best.get(name) {
                    None => true,
                    Some((cur, owner)) => {
                        (spec.created_ms, node.name.as_str()) < (cur.created_ms, *owner)
                    }
                };
                if better {
                    best.insert(name.clone(), (spec.clone(), node.name.as_str()));
                }
            }
        }
        for node in self.live() {
            for (name, spec) in &node.networks {
                if let Some((cur, _)) = best.get_mut(name) {
                    if cur.created_ms == spec.created_ms {
                        cur.set_flags(cur.flags().stricter(spec.flags()));
                    }
                }
            }
        }
        best.into_iter()
            .filter(|(name, (spec, _))| !self.is_removed(name, spec.created_ms))
            .map(|(name, (spec, _))| (name, spec))
            .collect()
    }

    /// Whether some live node removed network `name` as created at `created_ms` (or later).
    pub fn is_removed(&self, name: &str, created_ms: u64) -> bool {
        self.live()
            .any(|n| n.removed.get(name).is_some_and(|&r| r >= created_ms))
    }

    /// Endpoints of the other live nodes, by VNI.
    pub fn remote_endpoints(&self) -> Vec<RemoteEndpoint> {
        let mut out = Vec::new();
        for node in self.live_others() {
            let Some(vtep) = node.vtep else { continue };
            for ((vni, mac), spec) in &node.endpoints {
                out.push(RemoteEndpoint {
                    node: node.name.clone(),
                    vtep,
                    vni: *vni,
                    mac: *mac,
                    ip: spec.ip,
                    name: spec.name.clone(),
                    aliases: spec.aliases.clone(),
                });
            }
        }
        out.sort();
        out
    }

    /// The VTEPs to replicate broadcast and unknown unicast of `vni` to: the other live nodes
    /// with at least one endpoint in it.
    pub fn flood_list(&self, vni: u32) -> BTreeMap<SocketAddrV4, String> {
        self.live_others()
            .filter(|n| n.endpoints.keys().any(|(v, _)| *v == vni))
            .filter_map(|n| Some((n.vtep?, n.name.clone())))
            .collect()
    }

    /// Addresses of `vni` used by endpoints of other nodes, dead ones included: a node that
    /// is down (or cut off) still has containers with those addresses, and they come back
    /// with it. (A dead node's gossip is forgotten after chitchat's grace period.)
    pub fn taken_addresses(&self, vni: u32) -> BTreeSet<Ipv4Addr> {
        self.nodes
            .iter()
            .filter(|n| n.name != self.me)
            .flat_map(|n| n.endpoints.iter())
            .filter(|((v, _), _)| *v == vni)
            .map(|(_, spec)| spec.ip)
            .collect()
    }

    /// Who owns block `block` of `vni` when several nodes claim it: the smallest name. Dead
    /// nodes keep their blocks (see [`ClusterView::taken_addresses`]).
    pub fn block_owner(&self, vni: u32, block: u32) -> Option<&str> {
        self.nodes
            .iter()
            .filter(|n| n.leases.contains(&(vni, block)))
            .map(|n| n.name.as_str())
            .min()
    }

    /// Blocks of `vni` claimed by any node, dead ones included.
    pub fn claimed_blocks(&self, vni: u32) -> BTreeSet<u32> {
        self.nodes
            .iter()
            .flat_map(|n| n.leases.iter())
            .filter(|(v, _)| *v == vni)
            .map(|(_, b)| *b)
            .collect()
    }
}

/// The addresses of block `block` of `subnet` (blocks of [`BLOCK_SIZE`] from the network
/// address), without the network and broadcast addresses and the gateway.
pub fn block_addresses(subnet: Ipv4Net, gateway: Ipv4Addr, block: u32) -> Vec<Ipv4Addr> {
    let base = u32::from(subnet.network());
    let first = base.saturating_add(block.saturating_mul(BLOCK_SIZE));
    (first..first.saturating_add(BLOCK_SIZE))
        .map(Ipv4Addr::from)
        .filter(|a| {
            subnet.contains(a)
                && *a != subnet.network()
                && *a != subnet.broadcast()
                && *a != gateway
        })
        .collect()
}

/// How many blocks `subnet` has.
pub fn block_count(subnet: Ipv4Net) -> u32 {
    let size = 1u64 << (32 - u32::from(subnet.prefix_len()));
    (size.div_ceil(u64::from(BLOCK_SIZE))) as u32
}

/// The first block of `vni` nobody claims (neither a live node nor `also_claimed`), if any.
pub fn free_block(
    view: &ClusterView,
    vni: u32,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    also_claimed: &BTreeSet<u32>,
) -> Option<u32> {
    let claimed = view.claimed_blocks(vni);
    (0..block_count(subnet)).find(|b| {
        !claimed.contains(b)
            && !also_claimed.contains(b)
            && !block_addresses(subnet, gateway, *b).is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0x42, 10, 0, 0, last])
    }

    fn spec(created: u64) -> NetworkSpec {
        NetworkSpec {
            vni: 42,
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            mtu: 1450,
            created_ms: created,
            icc: true,
            nat: true,
            internal: false,
        }
    }

    fn node(name: &str, last: u8, alive: bool) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            vtep: Some(SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, last), 4789)),
            alive,
            networks: BTreeMap::new(),
            removed: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            leases: BTreeSet::new(),
            issues: Vec::new(),
        }
    }

    #[test]
    fn key_values_round_trip() {
        let mut networks = BTreeMap::new();
        networks.insert("ov".to_string(), spec(5));
        let mut removed = BTreeMap::new();
        removed.insert("old".to_string(), 3u64);
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            (42, mac(2)),
            EndpointSpec {
                ip: Ipv4Addr::new(10, 9, 0, 2),
                name: "web".into(),
                aliases: vec!["www".into()],
            },
        );
        let leases: BTreeSet<(u32, u32)> = [(42, 0), (42, 3)].into();
        let vtep = SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 1), 4789);
        let kv = key_values(vtep, &networks, &removed, &endpoints, &leases);
        let mut with_noise: Vec<(&str, &str)> =
            kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        with_noise.push(("net:broken", "{not json"));
        with_noise.push(("future:key", "x"));
        let n = NodeInfo::from_key_values("a", true, with_noise);
        assert_eq!(n.vtep, Some(vtep));
        assert_eq!(n.networks, networks);
        assert_eq!(n.removed, removed);
        assert_eq!(n.endpoints, endpoints);
        assert_eq!(n.leases, leases);
    }

    #[test]
    fn what_one_node_publishes_is_bounded() {
        let mut kv: Vec<(String, String)> = Vec::new();
        for i in 0..5000u32 {
            let [_, _, hi, lo] = i.to_be_bytes();
            kv.push((
                format!("ep:42:02:42:0a:09:{hi:02x}:{lo:02x}"),
                format!(r#"{{"ip":"10.9.{hi}.{lo}","name":"e{i}"}}"#),
            ));
            kv.push((format!("lease:42:{i}"), String::new()));
        }
        for i in 0..1100u32 {
            let [_, _, hi, lo] = i.to_be_bytes();
            kv.push((
                format!("net:n{i}"),
                format!(
                    r#"{{"vni":{},"subnet":"10.{hi}.{lo}.0/24","gateway":"10.{hi}.{lo}.1","mtu":1450,"created_ms":5}}"#,
                    i + 1
                ),
            ));
            kv.push((format!("netrm:r{i}"), "5".into()));
        }
        let n = NodeInfo::from_key_values(
            "big",
            true,
            kv.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        assert_eq!(
            n.endpoints.len(),
            MAX_ENDPOINTS_PER_NODE,
            "endpoints (MACs)"
        );
        assert_eq!(n.leases.len(), MAX_LEASES_PER_NODE, "leases");
        assert_eq!(n.networks.len(), MAX_NETWORKS_PER_NODE, "networks");
        assert_eq!(n.removed.len(), MAX_REMOVED_PER_NODE, "removal markers");
        for name in [
            "MAX_ENDPOINTS_PER_NODE",
            "MAX_LEASES_PER_NODE",
            "MAX_NETWORKS_PER_NODE",
            "MAX_REMOVED_PER_NODE",
        ] {
            assert!(
                n.issues.iter().any(|i| i.contains(name)),
                "no issue names {name}: {:#?}",
                n.issues
            );
        }
        assert_eq!(n.issues.len(), 4, "{:#?}", n.issues);
    }

    #[test]
    fn endpoints_with_too_many_or_too_long_names_are_refused() {
        let aliases: Vec<String> = (0..65).map(|i| format!("a{i}")).collect();
        let kv = [
            (
                "ep:43:02:42:0a:0a:00:01",
                serde_json::json!({"ip": "10.10.0.1", "name": "many", "aliases": aliases}),
            ),
            (
                "ep:43:02:42:0a:0a:00:02",
                serde_json::json!({"ip": "10.10.0.2", "name": "x".repeat(254)}),
            ),
            (
                "ep:43:02:42:0a:0a:00:03",
                serde_json::json!({"ip": "10.10.0.3", "name": "y", "aliases": ["z".repeat(254)]}),
            ),
            (
                "ep:43:02:42:0a:0a:00:04",
                serde_json::json!({"ip": "10.10.0.4", "name": "x".repeat(253), "aliases": vec!["a"; 64]}),
            ),
        ];
        let kv: Vec<(&str, String)> = kv.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let n = NodeInfo::from_key_values("a", true, kv.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(n.endpoints.len(), 1, "only the last one is within bounds");
        let issues = n.issues.join("\n");
        for field in [
            "field aliases: 65",
            "field name: 254",
            "field aliases: one has 254",
        ] {
            assert!(issues.contains(field), "{field:?} not in {issues}");
        }
        // Refusals beyond the per-node bound are summed up, not kept one by one.
        let bad: Vec<(String, String)> = (0..100)
            .map(|i| (format!("net:bad{i}"), r#"{"vni":0,"subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1450,"created_ms":5}"#.to_string()))
            .collect();
        let n =
            NodeInfo::from_key_values("b", true, bad.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(n.issues.len(), MAX_ISSUES_PER_NODE + 1);
        assert_eq!(n.issues.last().unwrap(), "68 more entries refused");
    }

    #[test]
    fn tables_come_from_live_nodes_only() {
        let mut a = node("a", 1, true);
        let mut b = node("b", 2, true);
        let mut c = node("c", 3, false);
        for (n, last) in [(&mut a, 10u8), (&mut b, 20), (&mut c, 30)] {
            n.networks.insert("ov".into(), spec(7));
            n.endpoints.insert(
                (42, mac(last)),
                EndpointSpec {
                    ip: Ipv4Addr::new(10, 9, 0, last),
                    name: format!("ep{last}"),
                    aliases: vec![],
                },
            );
        }
        let view = ClusterView::new("a", vec![a.clone(), b.clone(), c.clone()]);
        let remote = view.remote_endpoints();
        assert_eq!(
            remote.len(),
            1,
            "own and dead nodes' endpoints are not remote: {remote:?}"
        );
        assert_eq!(remote[0].node, "b");
        assert_eq!(remote[0].mac, mac(20));
        let flood = view.flood_list(42);
        assert_eq!(flood.values().collect::<Vec<_>>(), vec!["b"]);
        assert!(view.flood_list(43).is_empty());
        assert_eq!(
            view.taken_addresses(42),
            [Ipv4Addr::new(10, 9, 0, 20), Ipv4Addr::new(10, 9, 0, 30)].into(),
            "a dead node's addresses stay taken"
        );
        // The dead node comes back: its endpoint is back in the tables.
        c.alive = true;
        let view = ClusterView::new("a", vec![a, b, c]);
        assert_eq!(view.remote_endpoints().len(), 2);
        assert_eq!(view.flood_list(42).len(), 2);
    }

    #[test]
    fn networks_oldest_creation_wins_and_removal_needs_the_same_or_newer_incarnation() {
        let mut a = node("a", 1, true);
        let mut b = node("b", 2, true);
        a.networks.insert("ov".into(), spec(10));
        let mut other = spec(20);
        other.vni = 43;
        b.networks.insert("ov".into(), other);
        let view = ClusterView::new("a", vec![a.clone(), b.clone()]);
        assert_eq!(view.networks()["ov"].vni, 42, "the older creation wins");
        // b removes the incarnation created at 10: gone everywhere.
        b.removed.insert("ov".into(), 10);
        let view = ClusterView::new("a", vec![a.clone(), b.clone()]);
        assert!(!view.networks().contains_key("ov"));
        // A removal of an older incarnation does not remove a newer one.
        b.removed.insert("ov".into(), 5);
        let view = ClusterView::new("a", vec![a.clone(), b.clone()]);
        assert!(view.networks().contains_key("ov"));
        // A dead node's removal marker does not count.
        b.removed.insert("ov".into(), 10);
        b.alive = false;
        let view = ClusterView::new("a", vec![a, b]);
        assert!(view.networks().contains_key("ov"));
    }

    #[test]
    fn the_strictest_flags_of_an_incarnation_win() {
        let mut a = node("a", 1, true);
        let mut b = node("b", 2, true);
        let mut closed = spec(10);
        closed.icc = false;
        closed.internal = true;
        // "a" created it closed; "b" adopted it as open before the flags were gossiped.
        a.networks.insert("ov".into(), closed);
        b.networks.insert("ov".into(), spec(10));
        let view = ClusterView::new("b", vec![b.clone(), a.clone()]);
        let flags = view.networks()["ov"].flags();
        assert_eq!(
            flags,
            NetworkFlags {
                icc: false,
                nat: true,
                internal: true
            }
        );
        // Another incarnation's flags do not count.
        let mut newer = spec(20);
        newer.nat = false;
        let c = NodeInfo {
            networks: BTreeMap::from([("ov".to_string(), newer)]),
            ..node("c", 3, true)
        };
        let view = ClusterView::new("b", vec![a, b, c]);
        assert!(view.networks()["ov"].nat);
    }

    #[test]
    fn blocks_are_disjoint_and_conflicts_resolve_to_the_smallest_name() {
        let subnet: Ipv4Net = "10.9.0.0/24".parse().unwrap();
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        assert_eq!(block_count(subnet), 16);
        let b0 = block_addresses(subnet, gw, 0);
        assert_eq!(b0.len(), 14, "network address and gateway left out");
        assert_eq!(b0[0], Ipv4Addr::new(10, 9, 0, 2));
        let b15 = block_addresses(subnet, gw, 15);
        assert_eq!(*b15.last().unwrap(), Ipv4Addr::new(10, 9, 0, 254));
        let all: BTreeSet<Ipv4Addr> = (0..16)
            .flat_map(|b| block_addresses(subnet, gw, b))
            .collect();
        assert_eq!(all.len(), 253, "every host address but the gateway, once");

        let mut a = node("a", 1, true);
        let mut b = node("b", 2, true);
        let view = ClusterView::new("a", vec![a.clone(), b.clone()]);
        assert_eq!(free_block(&view, 42, subnet, gw, &BTreeSet::new()), Some(0));
        // Both claim block 0 at the same moment: "a" keeps it, "b" must move on.
        a.leases.insert((42, 0));
        b.leases.insert((42, 0));
        let view = ClusterView::new("b", vec![a.clone(), b.clone()]);
        assert_eq!(view.block_owner(42, 0), Some("a"));
        b.leases.remove(&(42, 0));
        let view = ClusterView::new("b", vec![a.clone(), b.clone()]);
        assert_eq!(free_block(&view, 42, subnet, gw, &BTreeSet::new()), Some(1));
        // A dead node keeps its blocks: its containers still have those addresses.
        a.alive = false;
        let view = ClusterView::new("b", vec![a, b]);
        assert_eq!(free_block(&view, 42, subnet, gw, &BTreeSet::new()), Some(1));
        assert_eq!(view.block_owner(42, 0), Some("a"));
        let tiny: Ipv4Net = "10.9.0.0/30".parse().unwrap();
        assert_eq!(block_count(tiny), 1);
        assert_eq!(
            block_addresses(tiny, Ipv4Addr::new(10, 9, 0, 1), 0),
            vec![Ipv4Addr::new(10, 9, 0, 2)]
        );
    }
}
