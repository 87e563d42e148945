//! `weft explain FROM TO [PORT/PROTO]`: what a packet from FROM to TO would meet — networks,
//! port security, `--icc`, ARP and FDB state, NAT mode, published ports, overlay peers'
//! liveness, tunnel MTU, impairments, link state — ending in a verdict, its reason and the
//! fix. Pure: a function of a [`Snapshot`] of the daemon's tables, which the daemon gathers.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_gateway::publish::{PortMapping, Protocol};

use crate::types::{ExplainStep, Explanation};

/// A network as explain sees it.
#[derive(Debug, Clone)]
pub struct NetSnap {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub icc: bool,
    pub nat: bool,
    pub internal: bool,
    pub vni: Option<u32>,
}

/// An endpoint: local (its port's state) or another node's (`node`, from the cluster view).
#[derive(Debug, Clone)]
pub struct EpSnap {
    pub name: String,
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The node it lives on, for another node's endpoint; with whether that node is alive.
    pub node: Option<(String, bool)>,
    pub port_security: bool,
    pub published: Vec<PortMapping>,
    /// Why it is not attached, if it is not.
    pub detached: Option<String>,
    /// Its MAC is in the network's FDB (learned, pinned or from the gossip).
    pub in_fdb: bool,
    /// Its address is in the network's ARP table (answered by the switch).
    pub in_arp: bool,
    pub link_down: bool,
    /// Impairments on frames leaving toward it, as `weft impair` shows them.
    pub impair: Option<String>,
}

/// The daemon's tables, read once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub networks: Vec<NetSnap>,
    pub endpoints: Vec<EpSnap>,
}

/// Why a question cannot be asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExplainError {
    #[error("{0:?} is not an endpoint, an IPv4 address or HOST:PORT of a published port; list endpoints with `weft ports`")]
    Unknown(String),
    #[error("{0:?}: give the port as PORT/tcp or PORT/udp (e.g. 80/tcp)")]
    BadPort(String),
}

/// One end of the question.
#[derive(Debug, Clone)]
enum End<'a> {
    Endpoint(&'a EpSnap),
    /// An address on no weft network (or the host itself).
    Outside(Ipv4Addr),
    /// A published host port: the endpoint behind it and the mapping.
    Published(&'a EpSnap, PortMapping),
}

fn resolve<'a>(s: &'a Snapshot, what: &str) -> Result<End<'a>, ExplainError> {
    if let Some(e) = s.endpoints.iter().find(|e| e.name == what) {
        return Ok(End::Endpoint(e));
    }
    if let Some((host, port)) = what.rsplit_once(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| ExplainError::Unknown(what.into()))?;
        let host: Option<Ipv4Addr> = host.parse().ok();
        let found = s.endpoints.iter().find_map(|e| {
            e.published
                .iter()
                .find(|m| {
                    m.host_port == port
                        && host.is_none_or(|h| m.host_ip.is_unspecified() || m.host_ip == h)
                })
                .map(|m| (e, *m))
        });
        return found
            .map(|(e, m)| End::Published(e, m))
            .ok_or_else(|| ExplainError::Unknown(what.into()));
    }
    let ip: Ipv4Addr = what
        .parse()
        .map_err(|_| ExplainError::Unknown(what.into()))?;
    Ok(match s.endpoints.iter().find(|e| e.ip == ip) {
        Some(e) => End::Endpoint(e),
        None => End::Outside(ip),
    })
}

fn parse_port(p: &str) -> Result<(u16, Protocol), ExplainError> {
    let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(ExplainError::BadPort(p.into())),
    };
    Ok((
        n.parse().map_err(|_| ExplainError::BadPort(p.into()))?,
        proto,
    ))
}

/// The explanation being written.
struct Walk {
    steps: Vec<ExplainStep>,
}

/// The end of a walk: blocked with a reason and a fix, or reachable with a reason.
type Outcome = (bool, String, Option<String>);

impl Walk {
    fn step(&mut self, check: &str, detail: impl Into<String>) {
        self.steps.push(ExplainStep {
            check: check.into(),
            detail: detail.into(),
        });
    }
}

fn blocked(reason: impl Into<String>, fix: impl Into<String>) -> Outcome {
    (false, reason.into(), Some(fix.into()))
}

/// What a packet from `from` to `to` (optionally to `port`, like `80/tcp`) would meet.
pub fn explain(
    s: &Snapshot,
    from: &str,
    to: &str,
    port: Option<&str>,
) -> Result<Explanation, ExplainError> {
    let port = port.map(parse_port).transpose()?;
    let (a, b) = (resolve(s, from)?, resolve(s, to)?);
    let mut w = Walk { steps: Vec::new() };
    let (ok, reason, fix) = match (&a, &b) {
        (End::Endpoint(a), End::Endpoint(b)) => between(s, &mut w, a, b),
        (End::Endpoint(a), End::Outside(ip)) => outward(s, &mut w, a, *ip),
        (End::Endpoint(a), End::Published(b, m)) => {
            w.step("published", format!("{m} leads to {}", b.name));
            between(s, &mut w, a, b)
        }
        (End::Outside(_), End::Published(b, m)) => inward(s, &mut w, b, Some(*m)),
        (End::Outside(_), End::Endpoint(b)) => match port {
            Some((p, proto)) => {
                let m = b
                    .published
                    .iter()
                    .find(|m| m.container_port == p && m.protocol == proto);
                match m {
                    Some(m) => inward(s, &mut w, b, Some(*m)),
                    None => blocked(
                        format!("{}:{p}/{} is not published: the outside reaches endpoints only through published ports", b.name, proto.as_str()),
                        format!("weft publish {} -p HOSTPORT:{p}/{}", b.name, proto.as_str()),
                    ),
                }
            }
            None => inward(s, &mut w, b, None),
        },
        _ => blocked(
            "neither end is a weft endpoint: weft has nothing to say about it",
            "name an endpoint as FROM or TO",
        ),
    };
    Ok(Explanation {
        from: from.into(),
        to: to.into(),
        steps: w.steps,
        verdict: if ok { "reachable" } else { "blocked" }.into(),
        reason,
        fix,
    })
}

/// `a`'s network, or the verdict that this daemon does not know it.
fn known_network<'a>(s: &'a Snapshot, a: &EpSnap) -> Result<&'a NetSnap, Outcome> {
    network(s, &a.network).ok_or_else(|| {
        blocked(
            format!("network {} is unknown here", a.network),
            "weft network ls",
        )
    })
}

fn network<'a>(s: &'a Snapshot, name: &str) -> Option<&'a NetSnap> {
    s.networks.iter().find(|n| n.name == name)
}

/// Checks of one endpoint that block whatever the direction: attached, link up.
fn endpoint_state(w: &mut Walk, e: &EpSnap) -> Option<Outcome> {
    if let Some(why) = &e.detached {
        return Some(blocked(
            format!("endpoint {} is detached: {why}", e.name),
            format!(
                "weft disconnect {} {} and connect it again",
                e.network, e.name
            ),
        ));
    }
    if e.link_down {
        return Some(blocked(
            format!("the link of {} is down (weft link)", e.name),
            format!("weft link {} up", e.name),
        ));
    }
    if let Some(i) = &e.impair {
        w.step(
            "impair",
            format!("frames toward {} are impaired: {i}", e.name),
        );
    }
    None
}

fn security(w: &mut Walk, e: &EpSnap) {
    let detail = if e.port_security {
        format!("on: {} may send only as {} / {}", e.name, e.mac, e.ip)
    } else {
        format!("off for {}: it may send as anyone", e.name)
    };
    w.step("security", detail);
}

/// Endpoint to endpoint.
fn between(s: &Snapshot, w: &mut Walk, a: &EpSnap, b: &EpSnap) -> Outcome {
    if a.network != b.network {
        return blocked(
            format!(
                "{} is on network {} and {} on {}: weft does not route between networks",
                a.name, a.network, b.name, b.network
            ),
            format!(
                "connect {} to network {} too (weft connect {} ...)",
                a.name, b.network, b.network
            ),
        );
    }
    let net = match known_network(s, a) {
        Ok(net) => net,
        Err(out) => return out,
    };
    w.step(
        "network",
        format!("both on {} ({}, MTU {})", net.name, net.subnet, net.mtu),
    );
    for e in [a, b] {
        if let Some(out) = endpoint_state(w, e) {
            return out;
        }
    }
    security(w, a);
    if !net.icc {
        return blocked(
            format!(
                "network {} was created with --icc=false; endpoints reach the gateway only",
                net.name
            ),
            format!(
                "recreate {} without --icc=false, or reach {} through a published port",
                net.name, b.name
            ),
        );
    }
    w.step("icc", "on: endpoints of the network reach each other");
    let arp = if b.in_arp {
        "the switch answers ARP for it (suppression)"
    } else {
        "not in the ARP table: ARP requests are flooded"
    };
    w.step("arp", format!("{} is at {}: {arp}", b.ip, b.mac));
    let fdb = if b.in_fdb {
        "in the FDB: unicast goes straight to its port"
    } else {
        "not in the FDB: the first frames are flooded"
    };
    w.step("fdb", format!("{}: {fdb}", b.mac));
    if let Some((node, alive)) = &b.node {
        let vni = net.vni.map_or_else(String::new, |v| format!(" VNI {v}"));
        if !alive {
            return blocked(
                format!("{} lives on node {node}, which the cluster declares dead (no gossip heard from it): its tunnel is gone", b.name),
                format!("start weft on {node} again, or check the underlay between the hosts (weft peers)"),
            );
        }
        w.step(
            "overlay",
            format!(
                "{} is on node {node} (alive), through its VXLAN tunnel{vni}",
                b.name
            ),
        );
        w.step(
            "mtu",
            format!(
                "inner frames up to {} bytes; each datagram adds 50 bytes on the underlay",
                net.mtu + 14
            ),
        );
    }
    (
        true,
        format!("{} reaches {} on network {}", a.name, b.name, net.name),
        None,
    )
}

/// An endpoint to an address outside every weft network: the proxy NAT.
fn outward(s: &Snapshot, w: &mut Walk, a: &EpSnap, ip: Ipv4Addr) -> Outcome {
    let net = match known_network(s, a) {
        Ok(net) => net,
        Err(out) => return out,
    };
    w.step(
        "network",
        format!("{} on {} ({})", a.name, net.name, net.subnet),
    );
    if let Some(out) = endpoint_state(w, a) {
        return out;
    }
    security(w, a);
    if ip == net.gateway {
        return (
            true,
            format!(
                "{ip} is network {}'s gateway: it answers ARP, ping and DNS",
                net.name
            ),
            None,
        );
    }
    if net.subnet.contains(&ip) {
        return blocked(
            format!("no endpoint has {ip} on network {}", net.name),
            "weft ports lists the endpoints and their addresses",
        );
    }
    w.step(
        "route",
        format!(
            "{ip} is outside the network: sent to the gateway {}",
            net.gateway
        ),
    );
    if net.internal {
        return blocked(
            format!(
                "network {} was created with --internal: no route out",
                net.name
            ),
            format!("recreate {} without --internal", net.name),
        );
    }
    if !net.nat {
        return blocked(
            format!(
                "network {} was created with --nat none: no route out",
                net.name
            ),
            format!("recreate {} with --nat proxy (the default)", net.name),
        );
    }
    if !weft_gateway::reach::nat_may_reach(ip) {
        return blocked(
            format!("{ip} means something only to the host (loopback, link-local, multicast, reserved): the NAT refuses it"),
            "reach the host's services through an address of the host on a real interface",
        );
    }
    w.step(
        "nat",
        "proxy NAT: a host socket connects, from this host's address",
    );
    (
        true,
        format!(
            "{} reaches {ip} through network {}'s proxy NAT",
            a.name, net.name
        ),
        None,
    )
}

/// From the outside to an endpoint: only through a published port.
fn inward(s: &Snapshot, w: &mut Walk, b: &EpSnap, m: Option<PortMapping>) -> Outcome {
    if let Some(out) = endpoint_state(w, b) {
        return out;
    }
    let internal = network(s, &b.network).is_some_and(|n| n.internal);
    let Some(m) = m else {
        return blocked(
            format!(
                "the outside reaches {} only through published ports, and none was named",
                b.name
            ),
            format!(
                "name one as TO (HOST:PORT) or give PORT/PROTO; weft publish {} -p ...",
                b.name
            ),
        );
    };
    if internal {
        return blocked(
            format!("network {} is --internal: nothing is published", b.network),
            "recreate it without --internal",
        );
    }
    w.step(
        "published",
        format!(
            "{m}: host port {} leads to {}:{}",
            m.host_port, b.name, m.container_port
        ),
    );
    (
        true,
        format!(
            "the outside reaches {} through {}:{}",
            b.name, m.host_ip, m.host_port
        ),
        None,
    )
}

#[cfg(test)]
mod tests;
