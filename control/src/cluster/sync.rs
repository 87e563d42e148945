//! What the gossip asks of this node's tables, as a pure plan: the overlay networks to adopt
//! or remove, the tunnel ports to add or remove, and the remote endpoints' FDB, ARP and DNS
//! entries. `daemon::cluster_sync` computes the plan from the [`ClusterView`] and what the
//! node has, then applies it; the plan itself is tested here in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use weft_switch::MacAddr;

use super::view::{ClusterView, NetworkFlags, NetworkSpec};

/// The name of the tunnel port to a VTEP for one VNI (`weft ports`, `fdb`, `capture`).
pub fn tunnel_name(vni: u32, addr: Ipv4Addr) -> String {
    format!("vx{vni}-{addr}")
}

/// One network this node has, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetwork {
    pub name: String,
    /// The overlay's VNI; None for a local bridge network.
    pub vni: Option<u32>,
    /// When this incarnation was created (overlay networks).
    pub created_ms: Option<u64>,
    /// Whether an endpoint of this node is attached.
    pub in_use: bool,
    /// Its isolation flags.
    pub flags: NetworkFlags,
}

/// Networks to create from the cluster's specs and to remove because the cluster removed
/// them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NetworkPlan {
    pub adopt: Vec<(String, NetworkSpec)>,
    pub remove: Vec<String>,
    /// Networks here whose incarnation the cluster has with other (stricter) flags.
    pub flags: Vec<(String, NetworkFlags)>,
}

/// Adopt every cluster network this node lacks (unless this node removed that incarnation
/// or a newer one); remove every network whose incarnation a live node removed, once no
/// endpoint here uses it; give a network here the flags the cluster has for the same
/// incarnation (the strictest published, see [`ClusterView::networks`]).
pub fn plan_networks(
    view: &ClusterView,
    local: &[LocalNetwork],
    removed_here: &BTreeMap<String, u64>,
) -> NetworkPlan {
    let have: BTreeSet<&str> = local.iter().map(|n| n.name.as_str()).collect();
    let adopt = view
        .networks()
        .into_iter()
        .filter(|(name, spec)| {
            let removed = removed_here
                .get(name)
                .is_some_and(|&r| r >= spec.created_ms);
            !have.contains(name.as_str()) && !removed
        })
        .collect();
    let remove = local
        .iter()
        .filter(|n| !n.in_use)
        .filter(|n| n.created_ms.is_some_and(|t| view.is_removed(&n.name, t)))
        .map(|n| n.name.clone())
        .collect();
    let cluster = view.networks();
    let flags = local
        .iter()
        .filter_map(|n| {
            let spec = cluster.get(&n.name)?;
            let same = n.created_ms == Some(spec.created_ms) && n.vni == Some(spec.vni);
            (same && spec.flags() != n.flags).then(|| (n.name.clone(), spec.flags()))
        })
        .collect();
    NetworkPlan {
        adopt,
        remove,
        flags,
    }
}

/// A tunnel port the gossip asks for: to `node`'s VTEP, for `network`'s VNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub vni: u32,
    pub node: String,
    pub network: String,
}

/// Tunnel ports to remove (by name) and to add.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TunnelPlan {
    pub remove: Vec<String>,
    pub add: Vec<TunnelSpec>,
}

/// One tunnel port per (VNI of an overlay network here, live node with endpoints in it).
/// `gossip_made`: the tunnel ports the gossip made before; `static_peers`: those a user
/// made (`weft peer add`), which the gossip neither duplicates nor removes.
pub fn plan_tunnels(
    view: &ClusterView,
    local: &[LocalNetwork],
    gossip_made: &BTreeSet<String>,
    static_peers: &BTreeSet<String>,
) -> TunnelPlan {
    let mut wanted: BTreeMap<String, TunnelSpec> = BTreeMap::new();
    for n in local {
        let Some(vni) = n.vni else { continue };
        for (vtep, node) in view.flood_list(vni) {
            let name = tunnel_name(vni, *vtep.ip());
            wanted.insert(
                name.clone(),
                TunnelSpec {
                    name,
                    addr: *vtep.ip(),
                    port: vtep.port(),
                    vni,
                    node,
                    network: n.name.clone(),
                },
            );
        }
    }
    TunnelPlan {
        remove: gossip_made
            .iter()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect(),
        add: wanted
            .into_values()
            .filter(|t| !gossip_made.contains(&t.name) && !static_peers.contains(&t.name))
            .collect(),
    }
}

/// The entries the remote endpoints should have in this node's tables, by network name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RemoteTables {
    /// (network, MAC) -> (tunnel port name, node): static FDB entries.
    pub fdb: BTreeMap<(String, MacAddr), (String, String)>,
    /// (network, address) -> MAC: ARP suppression.
    pub neighbors: BTreeMap<(String, Ipv4Addr), MacAddr>,
    /// network -> (name or alias, address): the embedded DNS.
    pub names: BTreeMap<String, Vec<(String, Ipv4Addr)>>,
    /// network -> (node, name, address): `weft arp`.
    pub remote: BTreeMap<String, Vec<(String, String, Ipv4Addr)>>,
}

/// The remote endpoints of every overlay network here, except MACs an endpoint of this node
/// has (a local endpoint is never pinned to a tunnel) and endpoints behind a tunnel port
/// that does not exist (`tunnels`: gossip-made and static tunnel port names).
pub fn remote_tables(
    view: &ClusterView,
    local: &[LocalNetwork],
    local_macs: &BTreeSet<MacAddr>,
    tunnels: &BTreeSet<String>,
) -> RemoteTables {
    let mut t = RemoteTables::default();
    for r in view.remote_endpoints() {
        let Some(net) = local.iter().find(|n| n.vni == Some(r.vni)) else {
            continue;
        };
        let tunnel = tunnel_name(r.vni, *r.vtep.ip());
        if local_macs.contains(&r.mac) || !tunnels.contains(&tunnel) {
            continue;
        }
        let network = net.name.clone();
        t.fdb
            .insert((network.clone(), r.mac), (tunnel, r.node.clone()));
        t.neighbors.insert((network.clone(), r.ip), r.mac);
        t.remote
            .entry(network.clone())
            .or_default()
            .push((r.node.clone(), r.name.clone(), r.ip));
        let names = t.names.entry(network).or_default();
        names.push((r.name.clone(), r.ip));
        names.extend(r.aliases.iter().map(|a| (a.clone(), r.ip)));
    }
    t
}

/// How to go from `old` to `new`: keys to remove (gone, or their value changed) and entries
/// to set (new, or changed). `same` says whether two values count as unchanged.
#[derive(Debug, PartialEq, Eq)]
pub struct MapDiff<K, V> {
    pub remove: Vec<K>,
    pub set: Vec<(K, V)>,
}

pub fn diff<K: Ord + Clone, V: Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
) -> MapDiff<K, V> {
    let changed = |k: &K, v: &V| !new.get(k).is_some_and(|n| same(v, n));
    MapDiff {
        remove: old
            .iter()
            .filter(|(k, v)| changed(k, v))
            .map(|(k, _)| k.clone())
            .collect(),
        set: new
            .iter()
            .filter(|(k, v)| !old.get(k).is_some_and(|o| same(o, v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::{EndpointSpec, NodeInfo};
    use std::net::SocketAddrV4;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0x42, 10, 9, 0, last])
    }

    fn spec(vni: u32, created_ms: u64) -> NetworkSpec {
        NetworkSpec {
            vni,
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            mtu: 1450,
            created_ms,
            icc: true,
            nat: true,
            internal: false,
        }
    }

    fn node(name: &str, last: u8) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            vtep: Some(SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, last), 4789)),
            alive: true,
            networks: BTreeMap::new(),
            removed: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            leases: BTreeSet::new(),
            issues: Vec::new(),
        }
    }

    fn with_endpoint(mut n: NodeInfo, vni: u32, last: u8, name: &str) -> NodeInfo {
        n.endpoints.insert(
            (vni, mac(last)),
            EndpointSpec {
                ip: Ipv4Addr::new(10, 9, 0, last),
                name: name.into(),
                aliases: vec![format!("{name}-alias")],
            },
        );
        n
    }

    const OPEN: NetworkFlags = NetworkFlags {
        icc: true,
        nat: true,
        internal: false,
    };

    fn overlay(name: &str, vni: u32, created_ms: u64, in_use: bool) -> LocalNetwork {
        LocalNetwork {
            name: name.into(),
            vni: Some(vni),
            created_ms: Some(created_ms),
            in_use,
            flags: OPEN,
        }
    }

    #[test]
    fn networks_are_adopted_unless_removed_here_and_removed_once_unused() {
        let mut a = node("a", 1);
        a.networks.insert("ov".into(), spec(42, 100));
        a.networks.insert("gone".into(), spec(43, 100));
        a.removed.insert("old".into(), 50);
        a.removed.insert("busy".into(), 50);
        let view = ClusterView::new("me", vec![a]);
        let local = vec![overlay("old", 44, 50, false), overlay("busy", 45, 40, true)];
        let removed_here = BTreeMap::from([("gone".to_string(), 100)]);
        let plan = plan_networks(&view, &local, &removed_here);
        assert_eq!(plan.adopt, vec![("ov".to_string(), spec(42, 100))]);
        // "busy" was removed elsewhere too, but an endpoint here still uses it.
        assert_eq!(plan.remove, vec!["old".to_string()]);
        // Nothing to do once applied.
        let local = vec![overlay("ov", 42, 100, false), overlay("busy", 45, 40, true)];
        assert_eq!(
            plan_networks(&view, &local, &removed_here),
            NetworkPlan::default()
        );
    }

    #[test]
    fn a_network_adopted_open_takes_the_flags_its_creator_publishes() {
        let mut closed = spec(42, 100);
        closed.icc = false;
        closed.internal = true;
        let mut a = node("a", 1);
        a.networks.insert("ov".into(), closed.clone());
        let view = ClusterView::new("me", vec![a]);
        // Adopted with the flags.
        let plan = plan_networks(&view, &[], &BTreeMap::new());
        assert_eq!(plan.adopt, vec![("ov".to_string(), closed.clone())]);
        // Adopted open earlier (an older weft): the flags are applied.
        let local = vec![overlay("ov", 42, 100, true)];
        let plan = plan_networks(&view, &local, &BTreeMap::new());
        assert_eq!(plan.flags, vec![("ov".to_string(), closed.flags())]);
        // Another incarnation of the name is not touched.
        let other = vec![overlay("ov", 42, 99, true)];
        assert_eq!(
            plan_networks(&view, &other, &BTreeMap::new()),
            NetworkPlan::default()
        );
        // Nothing to do once applied.
        let mut done = overlay("ov", 42, 100, true);
        done.flags = closed.flags();
        assert_eq!(
            plan_networks(&view, &[done], &BTreeMap::new()),
            NetworkPlan::default()
        );
    }

    #[test]
    fn tunnels_follow_the_nodes_with_endpoints_and_leave_static_peers_alone() {
        let b = with_endpoint(node("b", 2), 42, 20, "web");
        let c = with_endpoint(node("c", 3), 42, 30, "db");
        let idle = node("d", 4); // no endpoint: no tunnel
        let view = ClusterView::new("me", vec![b, c, idle]);
        let local = vec![overlay("ov", 42, 1, true)];
        let old = BTreeSet::from(["vx42-192.168.0.9".to_string()]);
        let statics = BTreeSet::from(["vx42-192.168.0.3".to_string()]);
        let plan = plan_tunnels(&view, &local, &old, &statics);
        assert_eq!(plan.remove, vec!["vx42-192.168.0.9".to_string()]);
        assert_eq!(plan.add.len(), 1, "{plan:?}");
        assert_eq!(plan.add[0].name, "vx42-192.168.0.2");
        assert_eq!(plan.add[0].node, "b");
        assert_eq!(plan.add[0].network, "ov");
        assert_eq!(plan.add[0].port, 4789);
    }

    #[test]
    fn remote_endpoints_fill_fdb_arp_and_dns_but_never_shadow_a_local_mac() {
        let b = with_endpoint(with_endpoint(node("b", 2), 42, 20, "web"), 42, 21, "dup");
        let view = ClusterView::new("me", vec![b]);
        let local = vec![overlay("ov", 42, 1, true)];
        let tunnels = BTreeSet::from([tunnel_name(42, Ipv4Addr::new(192, 168, 0, 2))]);
        // mac(21) is also an endpoint of this node: not pinned to the tunnel.
        let t = remote_tables(&view, &local, &BTreeSet::from([mac(21)]), &tunnels);
        assert_eq!(
            t.fdb,
            BTreeMap::from([(
                ("ov".to_string(), mac(20)),
                ("vx42-192.168.0.2".to_string(), "b".to_string())
            )])
        );
        assert_eq!(
            t.neighbors,
            BTreeMap::from([(("ov".to_string(), Ipv4Addr::new(10, 9, 0, 20)), mac(20))])
        );
        let ip = Ipv4Addr::new(10, 9, 0, 20);
        assert_eq!(
            t.names["ov"],
            vec![("web".to_string(), ip), ("web-alias".to_string(), ip)]
        );
        // Without the tunnel port, nothing is pinned.
        let none = remote_tables(&view, &local, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(none, RemoteTables::default());
    }

    #[test]
    fn diff_removes_what_went_or_changed_and_sets_what_is_new_or_changed() {
        let old = BTreeMap::from([(1, "a"), (2, "b"), (3, "c")]);
        let new = BTreeMap::from([(2, "b"), (3, "x"), (4, "d")]);
        let d = diff(&old, &new, |x, y| x == y);
        assert_eq!(d.remove, vec![1, 3]);
        assert_eq!(d.set, vec![(3, "x"), (4, "d")]);
        let none = diff(&new, &new, |x, y| x == y);
        assert!(none.remove.is_empty() && none.set.is_empty());
    }
}
