//! The whole lab file checked before anything is made: names, subnets, addresses inside
//! their subnets, duplicates, links to undefined networks and hosts, impairment values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_switch::impair::{parse_percent, parse_rate, parse_time};

use super::file::{Driver, ImpairSpec, LabFile, LinkSpec, NetworkSpec};
use super::locate::{path, FieldPath};

/// One thing wrong with the file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: FieldPath,
    pub message: String,
}

const MAX_LAB_NAME: usize = 24;
const MAX_PART_NAME: usize = 16;

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, path: FieldPath, message: impl Into<String>) {
        self.problems.push(Problem {
            path,
            message: message.into(),
        });
    }

    fn name(&mut self, path: FieldPath, what: &str, name: &str, max: usize) {
        let ok = !name.is_empty()
            && name.len() <= max
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.fail(
                path,
                format!("invalid {what} name {name:?}: use 1-{max} lower-case letters, digits and '-', starting with a letter or digit"),
            );
        }
    }
}

/// Every problem of the file (empty: it may be applied).
pub fn check(file: &LabFile) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    c.name(path(&["name"]), "lab", &file.name, MAX_LAB_NAME);
    check_hosts(&mut c, file);
    let subnets = check_networks(&mut c, file);
    check_nodes(&mut c, file, &subnets);
    check_generated_names(&mut c, file);
    c.problems
}

fn check_hosts(c: &mut Checker, file: &LabFile) {
    for (h, spec) in &file.hosts {
        c.name(path(&["hosts", h]), "host", h, MAX_PART_NAME);
        let addr = spec.as_ref().and_then(|s| s.address.as_deref());
        if let (Some(a), Some(u)) = (addr, &file.underlay) {
            let p = path(&["hosts", h, "address"]);
            match (a.parse::<Ipv4Addr>(), u.subnet.parse::<Ipv4Net>()) {
                (Ok(a), Ok(net)) if !net.contains(&a) => {
                    c.fail(p, format!("{a} is not inside the underlay's subnet {net}"))
                }
                (Err(_), _) => c.fail(p, format!("{a:?} is not an IPv4 address")),
                _ => {}
            }
        }
    }
    match (&file.underlay, file.hosts.is_empty()) {
        (Some(_), true) => c.fail(
            path(&["underlay"]),
            "an underlay joins hosts: add a hosts: section or remove the underlay",
        ),
        (None, false) => c.fail(
            path(&["hosts"]),
            "a multi-host lab needs an underlay: add underlay: {subnet: 10.x.y.0/24}",
        ),
        (Some(u), false) => {
            if let Err(m) = subnet(&u.subnet) {
                c.fail(path(&["underlay", "subnet"]), m);
            }
        }
        (None, true) => {}
    }
}

/// Parses a subnet in CIDR notation, its address the network's own.
fn subnet(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| format!("{s:?} is not a subnet: write it like 10.101.0.0/24"))?;
    if net.prefix_len() > 30 {
        return Err(format!(
            "subnet {s} is too small: use a prefix of /30 or shorter"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{s} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn check_networks(c: &mut Checker, file: &LabFile) -> BTreeMap<String, Ipv4Net> {
    let mut subnets: BTreeMap<String, Ipv4Net> = BTreeMap::new();
    for (n, spec) in &file.networks {
        let p = path(&["networks", n]);
        c.name(p.clone(), "network", n, MAX_PART_NAME);
        let net = match subnet(&spec.subnet) {
            Ok(net) => net,
            Err(m) => {
                c.fail(p.key("subnet"), m);
                continue;
            }
        };
        if let Some((other, _)) = subnets
            .iter()
            .find(|(_, o)| o.contains(&net.network()) || net.contains(&o.network()))
        {
            c.fail(
                p.key("subnet"),
                format!("{net} overlaps network {other}'s subnet: give each network its own"),
            );
        }
        check_network_fields(c, &p, spec, net, file);
        subnets.insert(n.clone(), net);
    }
    subnets
}

fn check_network_fields(
    c: &mut Checker,
    p: &FieldPath,
    spec: &NetworkSpec,
    net: Ipv4Net,
    file: &LabFile,
) {
    if let Some(g) = &spec.gateway {
        match g.parse::<Ipv4Addr>() {
            Ok(a) if !usable(net, a) => c.fail(
                p.key("gateway"),
                format!("{a} is not a host address of {net}"),
            ),
            Err(_) => c.fail(p.key("gateway"), format!("{g:?} is not an IPv4 address")),
            _ => {}
        }
    }
    if let Some(m) = spec.mtu {
        if !(576..=9000).contains(&m) {
            c.fail(
                p.key("mtu"),
                format!("mtu {m} is out of range: use 576..9000"),
            );
        }
    }
    if spec.vni.is_some() && spec.driver != Some(Driver::Overlay) {
        c.fail(
            p.key("vni"),
            "a vni is for overlay networks: add driver: overlay or remove it",
        );
    }
    if spec.driver == Some(Driver::Overlay) && file.hosts.is_empty() {
        c.fail(
            p.key("driver"),
            "an overlay network spans hosts: add a hosts: section, or use driver: bridge",
        );
    }
}

/// Whether `a` may be given to an endpoint or gateway of `net`.
fn usable(net: Ipv4Net, a: Ipv4Addr) -> bool {
    net.contains(&a) && a != net.network() && a != net.broadcast()
}

fn gateway_of(spec: &NetworkSpec, net: Ipv4Net) -> Option<Ipv4Addr> {
    match &spec.gateway {
        Some(g) => g.parse().ok(),
        None => net.hosts().next(),
    }
}

fn check_nodes(c: &mut Checker, file: &LabFile, subnets: &BTreeMap<String, Ipv4Net>) {
    let mut ips: BTreeMap<(String, Ipv4Addr), FieldPath> = BTreeMap::new();
    let mut macs: BTreeMap<String, FieldPath> = BTreeMap::new();
    for (n, node) in &file.nodes {
        let p = path(&["nodes", n]);
        c.name(p.clone(), "node", n, MAX_PART_NAME);
        if file.hosts.contains_key(n) {
            c.fail(
                p.clone(),
                format!("node {n} has a host's name: `weft lab exec` could not tell them apart"),
            );
        }
        match (&node.host, file.hosts.is_empty()) {
            (Some(h), false) if !file.hosts.contains_key(h) => c.fail(
                p.key("host"),
                format!("host {h} is not defined under hosts:"),
            ),
            (None, false) => c.fail(p.clone(), "every node of a multi-host lab needs host: HOST"),
            (Some(_), true) => c.fail(
                p.key("host"),
                "host: is for multi-host labs: add a hosts: section or remove it",
            ),
            _ => {}
        }
        if node.links.is_empty() {
            c.fail(
                p.clone(),
                "a node needs at least one link: add links: [{network: NAME}]",
            );
        }
        let mut nets = BTreeSet::new();
        let mut ifnames = BTreeSet::new();
        for (i, link) in node.links.iter().enumerate() {
            let lp = p.key("links").index(i);
            if !nets.insert(link.network.clone()) {
                c.fail(
                    lp.key("network"),
                    format!(
                        "node {n} links to network {} twice: one link per network",
                        link.network
                    ),
                );
            }
            let ifname = link.ifname.clone().unwrap_or_else(|| format!("eth{i}"));
            if let Err(e) = crate::daemon::validate_ifname(&ifname) {
                c.fail(lp.key("ifname"), e.to_string());
            } else if !ifnames.insert(ifname.clone()) {
                c.fail(
                    lp.key("ifname"),
                    format!("interface {ifname} is used twice in node {n}"),
                );
            }
            check_link(c, &lp, link, file, subnets, &mut ips, &mut macs);
        }
        for (i, cmd) in node.exec.iter().enumerate() {
            if cmd.trim().is_empty() {
                c.fail(p.key("exec").index(i), "an empty command: remove it");
            }
        }
    }
}

fn check_link(
    c: &mut Checker,
    lp: &FieldPath,
    link: &LinkSpec,
    file: &LabFile,
    subnets: &BTreeMap<String, Ipv4Net>,
    ips: &mut BTreeMap<(String, Ipv4Addr), FieldPath>,
    macs: &mut BTreeMap<String, FieldPath>,
) {
    let Some(spec) = file.networks.get(&link.network) else {
        c.fail(
            lp.key("network"),
            format!("network {} is not defined under networks:", link.network),
        );
        return;
    };
    if let (Some(ip), Some(net)) = (&link.ip, subnets.get(&link.network)) {
        match ip.parse::<Ipv4Addr>() {
            Err(_) => c.fail(lp.key("ip"), format!("{ip:?} is not an IPv4 address")),
            Ok(a) if !usable(*net, a) => c.fail(lp.key("ip"), format!("{a} is not inside subnet {net} of network {} (or is its network or broadcast address): pick a host address inside it", link.network)),
            Ok(a) if gateway_of(spec, *net) == Some(a) => c.fail(lp.key("ip"), format!("{a} is network {}'s gateway: pick another address", link.network)),
            Ok(a) => {
                if let Some(first) = ips.insert((link.network.clone(), a), lp.key("ip")) {
                    c.fail(lp.key("ip"), format!("{a} is already given to {first} on network {}", link.network));
                }
            }
        }
    }
    if let Some(mac) = &link.mac {
        let ok = mac.len() == 17
            && mac
                .split(':')
                .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
        let multicast = ok && u8::from_str_radix(&mac[..2], 16).is_ok_and(|b| b & 1 == 1);
        if !ok || multicast {
            c.fail(
                lp.key("mac"),
                format!("invalid MAC {mac:?}: write a unicast address like 02:00:00:00:00:01"),
            );
        } else if let Some(first) = macs.insert(mac.to_ascii_lowercase(), lp.key("mac")) {
            c.fail(
                lp.key("mac"),
                format!("MAC {mac} is already given to {first}"),
            );
        }
    }
    for (i, a) in link.aliases.iter().enumerate() {
        let ok = !a.is_empty()
            && a.len() <= 253
            && a.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
            });
        if !ok {
            c.fail(
                lp.key("aliases").index(i),
                format!("invalid alias {a:?}: use DNS labels like web or db.internal"),
            );
        }
    }
    if let Some(imp) = &link.impair {
        check_impair(c, &lp.key("impair"), imp);
    }
}

fn check_impair(c: &mut Checker, p: &FieldPath, imp: &ImpairSpec) {
    let times = [("delay", &imp.delay), ("jitter", &imp.jitter)];
    for (what, v) in times {
        if let Some(Err(e)) = v.as_deref().map(|v| parse_time(what, v)) {
            c.fail(p.key(what), e.to_string());
        }
    }
    let percents = [
        ("loss", &imp.loss),
        ("duplicate", &imp.duplicate),
        ("reorder", &imp.reorder),
        ("corrupt", &imp.corrupt),
    ];
    for (what, v) in percents {
        if let Some(Err(e)) = v.as_deref().map(|v| parse_percent(what, v)) {
            c.fail(p.key(what), e.to_string());
        }
    }
    if let Some(Err(e)) = imp.rate.as_deref().map(parse_rate) {
        c.fail(p.key("rate"), e.to_string());
    }
}

/// Namespaces and endpoints are named `LAB-NODE` and `LAB-NODE-NETWORK`: two different
/// parts must not make the same name.
fn check_generated_names(c: &mut Checker, file: &LabFile) {
    let mut ns: BTreeMap<String, FieldPath> = BTreeMap::new();
    let parts = file
        .nodes
        .keys()
        .map(|n| (n, path(&["nodes", n])))
        .chain(file.hosts.keys().map(|h| (h, path(&["hosts", h]))));
    for (n, p) in parts {
        if let Some(first) = ns.insert(format!("{}-{n}", file.name), p.clone()) {
            c.fail(
                p,
                format!("its namespace name is also {first}'s: rename one"),
            );
        }
    }
    let mut eps: BTreeMap<String, FieldPath> = BTreeMap::new();
    for (n, node) in &file.nodes {
        for (i, l) in node.links.iter().enumerate() {
            let p = path(&["nodes", n, "links"]).index(i);
            let name = super::names::endpoint(&file.name, n, &l.network);
            if let Some(first) = eps.insert(name.clone(), p.clone()) {
                if first != p {
                    c.fail(p, format!("its endpoint name {name} is also {first}'s: rename the node or network"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::file::parse;

    fn problems(text: &str) -> Vec<String> {
        check(&parse(text).unwrap())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_good_file_has_no_problem() {
        let text = "name: l\nnetworks:\n  n: {subnet: 10.101.0.0/24}\nnodes:\n  a: {links: [{network: n, ip: 10.101.0.5}]}\n";
        assert_eq!(problems(text), Vec::<String>::new());
    }

    #[test]
    fn duplicates_and_gateways_are_refused() {
        let text = "name: l\nnetworks:\n  n: {subnet: 10.101.0.0/24}\nnodes:\n  a: {links: [{network: n, ip: 10.101.0.5, mac: '02:00:00:00:00:01'}]}\n  b: {links: [{network: n, ip: 10.101.0.5, mac: '02:00:00:00:00:01'}]}\n  c: {links: [{network: n, ip: 10.101.0.1}]}\n";
        let p = problems(text);
        assert!(
            p.iter().any(|m| m.starts_with(
                "nodes.b.links[0].ip: 10.101.0.5 is already given to nodes.a.links[0].ip"
            )),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("nodes.b.links[0].mac")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("gateway")), "{p:?}");
    }

    #[test]
    fn generated_names_must_not_collide() {
        let text = "name: l\nnetworks:\n  b-c: {subnet: 10.101.0.0/24}\n  c: {subnet: 10.101.1.0/24}\nnodes:\n  a: {links: [{network: b-c}]}\n  a-b: {links: [{network: c}]}\n";
        let p = problems(text);
        assert!(
            p.iter().any(|m| m.contains("endpoint name l-a-b-c")),
            "{p:?}"
        );
    }

    #[test]
    fn hosts_need_an_underlay_and_nodes_a_host() {
        let text = "name: l\nhosts: {h1: {}}\nnetworks:\n  o: {subnet: 10.101.0.0/24, driver: overlay}\nnodes:\n  a: {links: [{network: o}]}\n";
        let p = problems(text);
        assert!(
            p.iter()
                .any(|m| m.starts_with("hosts: a multi-host lab needs an underlay")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("nodes.a: every node")),
            "{p:?}"
        );
    }

    #[test]
    fn impairment_values_are_checked() {
        let text = "name: l\nnetworks:\n  n: {subnet: 10.101.0.0/24}\nnodes:\n  a: {links: [{network: n, impair: {delay: soon, loss: 120%}}]}\n";
        let p = problems(text);
        assert!(
            p.iter()
                .any(|m| m.starts_with("nodes.a.links[0].impair.delay")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("nodes.a.links[0].impair.loss")),
            "{p:?}"
        );
    }
}
