//! What a checked lab file asks for ([`Desired`]), and the steps from what the lab has to it
//! ([`diff`]): only the difference, removals first, then additions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::file::{Driver, ImpairSpec, Kind, LabFile, LinkState, Nat};
use super::names;
use crate::types::{Connect, CreateNetwork, PortKind};

/// One host of a multi-host lab: a namespace with its own daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub ns: String,
    /// Its underlay address (None: the underlay's next free one).
    pub address: Option<String>,
}

/// A lab network, on the daemons it lives on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetPlan {
    pub weft_name: String,
    /// The hosts whose daemons have it (empty: the daemon `weft lab` talks to).
    pub hosts: Vec<String>,
    pub overlay: bool,
    pub create: serde_json::Value,
}

/// A node's namespace and the commands run in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub ns: String,
    pub host: Option<String>,
    pub exec: Vec<String>,
}

/// A node's link: an endpoint on a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkPlan {
    pub node: String,
    pub network: String,
    pub host: Option<String>,
    pub connect: serde_json::Value,
    pub impair: Option<ImpairSpec>,
    pub down: bool,
}

/// The underlay of a multi-host lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnderlayPlan {
    pub weft_name: String,
    pub create: serde_json::Value,
}

/// Everything a lab consists of; what the file asks for and, in the state file, what exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parts {
    pub underlay: Option<UnderlayPlan>,
    pub hosts: BTreeMap<String, HostPlan>,
    pub networks: BTreeMap<String, NetPlan>,
    pub nodes: BTreeMap<String, NodePlan>,
    /// By endpoint name.
    pub links: BTreeMap<String, LinkPlan>,
}

/// One change to a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    RemoveLink(String),
    RemoveNode(String),
    RemoveNetwork(String),
    RemoveHost(String),
    RemoveUnderlay,
    AddUnderlay,
    AddHost(String),
    AddNetwork(String),
    AddNode(String),
    AddLink(String),
    Impair(String),
    LinkState(String),
    Exec(String),
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The parts a checked file asks for.
pub fn desired(file: &LabFile) -> Parts {
    let lab = &file.name;
    let mut parts = Parts {
        underlay: file.underlay.as_ref().map(|u| UnderlayPlan {
            weft_name: names::underlay(lab),
            create: json(&CreateNetwork {
                name: names::underlay(lab),
                subnet: u.subnet.clone(),
                mtu: u.mtu,
                nat: Some("none".into()),
                ..CreateNetwork::default()
            }),
        }),
        ..Parts::default()
    };
    for (h, spec) in &file.hosts {
        let address = spec.as_ref().and_then(|s| s.address.clone());
        let ns = names::netns(lab, h);
        parts.hosts.insert(h.clone(), HostPlan { ns, address });
    }
    for (n, spec) in &file.networks {
        let overlay = spec.driver == Some(Driver::Overlay);
        let mut hosts: Vec<String> = file
            .nodes
            .values()
            .filter(|node| node.links.iter().any(|l| &l.network == n))
            .filter_map(|node| node.host.clone())
            .collect();
        hosts.sort();
        hosts.dedup();
        let create = CreateNetwork {
            name: names::network(lab, n),
            subnet: spec.subnet.clone(),
            gateway: spec.gateway.clone(),
            mtu: spec.mtu,
            aging_seconds: None,
            icc: spec.icc,
            nat: spec.nat.map(|m| match m {
                Nat::Proxy => "proxy".into(),
                Nat::None => "none".into(),
            }),
            internal: spec.internal,
            driver: Some(if overlay { "overlay" } else { "bridge" }.into()),
            vni: spec.vni,
            published_source: None,
        };
        let plan = NetPlan {
            weft_name: create.name.clone(),
            hosts,
            overlay,
            create: json(&create),
        };
        parts.networks.insert(n.clone(), plan);
    }
    for (n, node) in &file.nodes {
        let ns = names::netns(lab, n);
        for (i, l) in node.links.iter().enumerate() {
            let mut aliases = vec![n.clone()];
            aliases.extend(l.aliases.iter().filter(|a| *a != n).cloned());
            let connect = Connect {
                netns: Some(ns.clone()),
                name: Some(names::endpoint(lab, n, &l.network)),
                ip: l.ip.clone(),
                mac: l.mac.clone(),
                ifname: Some(l.ifname.clone().unwrap_or_else(|| format!("eth{i}"))),
                kind: Some(match l.kind {
                    Some(Kind::Veth) => PortKind::Veth,
                    _ => PortKind::Tap,
                }),
                aliases,
                publish: l.publish.clone(),
                port_security: l.port_security,
                ..Connect::default()
            };
            let link = LinkPlan {
                node: n.clone(),
                network: l.network.clone(),
                host: node.host.clone(),
                connect: json(&connect),
                impair: l.impair.clone().filter(|i| *i != ImpairSpec::default()),
                down: l.link == Some(LinkState::Down),
            };
            parts
                .links
                .insert(names::endpoint(lab, n, &l.network), link);
        }
        let plan = NodePlan {
            ns,
            host: node.host.clone(),
            exec: node.exec.clone(),
        };
        parts.nodes.insert(n.clone(), plan);
    }
    parts
}

/// The steps from `have` to `want`: what changed is removed and made again, what is gone is
/// removed, what is new is made, and the rest is left alone.
pub fn diff(have: &Parts, want: &Parts) -> Vec<Step> {
    diff_dead(have, want, &[])
}

/// Like [`diff`], with the hosts whose daemons died made again (and what they held).
pub fn diff_dead(have: &Parts, want: &Parts, dead: &[String]) -> Vec<Step> {
    use Step::*;
    let underlay_gone = have.underlay.is_some() && have.underlay != want.underlay;
    let host_changed = |h: &str| underlay_gone || have.hosts.get(h) != want.hosts.get(h);
    let host_gone = |h: &str| host_changed(h) || dead.iter().any(|d| d == h);
    // An overlay network outlives a dead host: the other nodes of the cluster keep it.
    let net_gone = |n: &str| {
        let h = &have.networks[n];
        have.networks.get(n) != want.networks.get(n)
            || h.hosts.iter().any(|x| {
                if h.overlay {
                    host_changed(x)
                } else {
                    host_gone(x)
                }
            })
    };
    let node_gone = |n: &str| {
        let (h, w) = (&have.nodes[n], want.nodes.get(n));
        w.is_none_or(|w| w.ns != h.ns || w.host != h.host)
            || h.host.as_deref().is_some_and(host_gone)
    };
    let link_gone = |e: &str| {
        let h = &have.links[e];
        want.links.get(e).is_none_or(|w| {
            w.connect != h.connect || w.node != h.node || w.network != h.network || w.host != h.host
        }) || net_gone(&h.network)
            || node_gone(&h.node)
    };
    let mut steps = Vec::new();
    let mut kept_links = Vec::new();
    for e in have.links.keys() {
        if link_gone(e) {
            steps.push(RemoveLink(e.clone()));
        } else {
            kept_links.push(e.clone());
        }
    }
    let gone_nodes: Vec<&String> = have.nodes.keys().filter(|n| node_gone(n)).collect();
    steps.extend(gone_nodes.iter().map(|n| RemoveNode((*n).clone())));
    let gone_nets: Vec<&String> = have.networks.keys().filter(|n| net_gone(n)).collect();
    steps.extend(gone_nets.iter().map(|n| RemoveNetwork((*n).clone())));
    let gone_hosts: Vec<&String> = have.hosts.keys().filter(|h| host_gone(h)).collect();
    steps.extend(gone_hosts.iter().map(|h| RemoveHost((*h).clone())));
    if underlay_gone {
        steps.push(RemoveUnderlay);
    }
    if want.underlay.is_some() && (underlay_gone || have.underlay.is_none()) {
        steps.push(AddUnderlay);
    }
    let new = |have_it: bool, gone: &[&String], k: &String| !have_it || gone.contains(&k);
    for h in want.hosts.keys() {
        if new(have.hosts.contains_key(h), &gone_hosts, h) {
            steps.push(AddHost(h.clone()));
        }
    }
    for n in want.networks.keys() {
        if new(have.networks.contains_key(n), &gone_nets, n) {
            steps.push(AddNetwork(n.clone()));
        }
    }
    let mut exec = Vec::new();
    for (n, w) in &want.nodes {
        let added = new(have.nodes.contains_key(n), &gone_nodes, n);
        if added {
            steps.push(AddNode(n.clone()));
        }
        if !w.exec.is_empty() && (added || have.nodes.get(n).is_some_and(|h| h.exec != w.exec)) {
            exec.push(Exec(n.clone()));
        }
    }
    for (e, w) in &want.links {
        let kept = kept_links.contains(e);
        if !kept {
            steps.push(AddLink(e.clone()));
        }
        let h = have.links.get(e).filter(|_| kept);
        if h.map_or(w.impair.is_some(), |h| h.impair != w.impair) {
            steps.push(Impair(e.clone()));
        }
        if h.map_or(w.down, |h| h.down != w.down) {
            steps.push(LinkState(e.clone()));
        }
    }
    steps.extend(exec);
    steps
}

#[cfg(test)]
mod tests;
