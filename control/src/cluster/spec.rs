//! What a node publishes about its overlay networks and endpoints ([`NetworkSpec`],
//! [`EndpointSpec`], as JSON values of its gossip keys) and the checks a gossiped spec must
//! pass before any node uses it. Pure.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The MTUs `weft network create --mtu` accepts; a gossiped spec outside is refused.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=9000;
/// The VNIs a gossiped spec may name (RFC 7348 §5: 24 bits; 0 is not used by weft).
pub const VNI_RANGE: std::ops::RangeInclusive<u32> = 1..=0xFF_FFFF;

/// An overlay network as its creator published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub vni: u32,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    /// Creation time (milliseconds since the Unix epoch): tells incarnations of one name
    /// apart, and the older of two concurrent creations wins.
    pub created_ms: u64,
    /// `--icc`. The isolation flags are absent from the spec of a node older than them,
    /// which means the defaults (what such a node created).
    #[serde(default = "yes")]
    pub icc: bool,
    /// Outbound NAT (`--nat proxy`); false: `--nat none`.
    #[serde(default = "yes")]
    pub nat: bool,
    /// `--internal`.
    #[serde(default)]
    pub internal: bool,
}

fn yes() -> bool {
    true
}

/// The isolation flags of a network: `--icc`, `--nat`, `--internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFlags {
    pub icc: bool,
    pub nat: bool,
    pub internal: bool,
}

impl NetworkFlags {
    /// The stricter of two: inter-container traffic and NAT only if both allow them,
    /// internal if either is.
    pub fn stricter(self, other: NetworkFlags) -> NetworkFlags {
        NetworkFlags {
            icc: self.icc && other.icc,
            nat: self.nat && other.nat,
            internal: self.internal || other.internal,
        }
    }
}

/// Why a gossiped network spec is refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("field vni: {0} is outside {lo}..={hi}", lo = VNI_RANGE.start(), hi = VNI_RANGE.end())]
    Vni(u32),
    #[error("field mtu: {0} is outside {lo}..={hi}", lo = MTU_RANGE.start(), hi = MTU_RANGE.end())]
    Mtu(u32),
    #[error("field subnet: {0} {1}")]
    Subnet(Ipv4Net, &'static str),
    #[error("field gateway: {0} is not a host address of {1}")]
    Gateway(Ipv4Addr, Ipv4Net),
    #[error("field name: {0} characters, more than a DNS name's {MAX_DNS_NAME}")]
    NameLength(usize),
    #[error("field aliases: {0} of them, more than {MAX_ALIASES}")]
    Aliases(usize),
    #[error("field aliases: one has {0} characters, more than a DNS name's {MAX_DNS_NAME}")]
    AliasLength(usize),
}

/// Longest endpoint name or alias a gossiped endpoint may have (a DNS name, RFC 1035 §2.3.4).
pub const MAX_DNS_NAME: usize = 253;
/// Most aliases a gossiped endpoint may have.
pub const MAX_ALIASES: usize = 64;

impl NetworkSpec {
    pub fn flags(&self) -> NetworkFlags {
        NetworkFlags {
            icc: self.icc,
            nat: self.nat,
            internal: self.internal,
        }
    }

    pub fn set_flags(&mut self, flags: NetworkFlags) {
        self.icc = flags.icc;
        self.nat = flags.nat;
        self.internal = flags.internal;
    }

    /// Checks what `weft network create` checks of the same parameters: VNI, MTU, a unicast
    /// subnet of prefix length 30 or less without host bits, a gateway host address in it.
    pub fn check(&self) -> Result<(), SpecError> {
        if !VNI_RANGE.contains(&self.vni) {
            return Err(SpecError::Vni(self.vni));
        }
        if !MTU_RANGE.contains(&self.mtu) {
            return Err(SpecError::Mtu(self.mtu));
        }
        let net = self.subnet;
        if net.prefix_len() > 30 {
            return Err(SpecError::Subnet(net, "is smaller than a /30"));
        }
        if net.addr() != net.network() {
            return Err(SpecError::Subnet(net, "has host bits set"));
        }
        let (first, last) = (net.network().octets()[0], net.broadcast().octets()[0]);
        if first == 0 || last >= 224 || (first..=last).contains(&127) {
            return Err(SpecError::Subnet(
                net,
                "overlaps the unspecified, loopback, multicast or reserved ranges",
            ));
        }
        let gw = self.gateway;
        if !net.contains(&gw) || gw == net.network() || gw == net.broadcast() {
            return Err(SpecError::Gateway(gw, net));
        }
        Ok(())
    }
}

/// One endpoint of a node on an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub ip: Ipv4Addr,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl EndpointSpec {
    /// Bounds what one endpoint adds to every other node's DNS: a name and at most
    /// [`MAX_ALIASES`] aliases, each at most [`MAX_DNS_NAME`] characters.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.name.len() > MAX_DNS_NAME {
            return Err(SpecError::NameLength(self.name.len()));
        }
        if self.aliases.len() > MAX_ALIASES {
            return Err(SpecError::Aliases(self.aliases.len()));
        }
        match self.aliases.iter().find(|a| a.len() > MAX_DNS_NAME) {
            Some(a) => Err(SpecError::AliasLength(a.len())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::{key_values, NodeInfo};
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::{Ipv4Addr, SocketAddrV4};

    /// A spec as a node publishes it, with `extra` JSON fields appended.
    fn spec_json(vni: u32, subnet: &str, gateway: &str, mtu: u32, extra: &str) -> String {
        format!(
            r#"{{"vni":{vni},"subnet":"{subnet}","gateway":"{gateway}","mtu":{mtu},"created_ms":5{extra}}}"#
        )
    }

    #[test]
    fn isolation_flags_travel_with_the_spec_and_default_to_open_when_absent() {
        let closed = spec_json(
            42,
            "10.9.0.0/24",
            "10.9.0.1",
            1450,
            r#","icc":false,"nat":false,"internal":true"#,
        );
        let old = spec_json(43, "10.8.0.0/24", "10.8.0.1", 1450, "");
        let n = NodeInfo::from_key_values(
            "a",
            true,
            [("net:closed", closed.as_str()), ("net:old", old.as_str())],
        );
        assert_eq!(n.networks.len(), 2, "{n:?}");
        let vtep = SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 1), 4789);
        let kv = key_values(
            vtep,
            &n.networks,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &BTreeSet::new(),
        );
        let republished: serde_json::Value = serde_json::from_str(&kv["net:closed"]).unwrap();
        for (field, want) in [("icc", false), ("nat", false), ("internal", true)] {
            assert_eq!(
                republished[field], want,
                "{field} of a --icc=false --nat none --internal network: {republished}"
            );
        }
        // A spec of a node older than the flags: the defaults.
        let old: serde_json::Value = serde_json::from_str(&kv["net:old"]).unwrap();
        for (field, want) in [("icc", true), ("nat", true), ("internal", false)] {
            assert_eq!(old[field], want, "{field} of a spec without flags: {old}");
        }
    }

    #[test]
    fn gossiped_network_parameters_out_of_range_are_refused() {
        let good = spec_json(42, "10.9.0.0/24", "10.9.0.1", 1450, "");
        let bad = [
            (
                "mtu-small",
                "mtu",
                spec_json(42, "10.9.0.0/24", "10.9.0.1", 575, ""),
            ),
            (
                "mtu-big",
                "mtu",
                spec_json(42, "10.9.0.0/24", "10.9.0.1", 9001, ""),
            ),
            (
                "vni-zero",
                "vni",
                spec_json(0, "10.9.0.0/24", "10.9.0.1", 1450, ""),
            ),
            (
                "vni-big",
                "vni",
                spec_json(1 << 24, "10.9.0.0/24", "10.9.0.1", 1450, ""),
            ),
            (
                "tiny",
                "subnet",
                spec_json(42, "10.9.0.0/31", "10.9.0.1", 1450, ""),
            ),
            (
                "host-bits",
                "subnet",
                spec_json(42, "10.9.0.5/24", "10.9.0.1", 1450, ""),
            ),
            (
                "loopback",
                "subnet",
                spec_json(42, "127.0.0.0/24", "127.0.0.1", 1450, ""),
            ),
            (
                "multicast",
                "subnet",
                spec_json(42, "224.1.0.0/24", "224.1.0.1", 1450, ""),
            ),
            (
                "whole",
                "subnet",
                spec_json(42, "0.0.0.0/0", "10.0.0.1", 1450, ""),
            ),
            (
                "gw-outside",
                "gateway",
                spec_json(42, "10.9.0.0/24", "10.8.0.1", 1450, ""),
            ),
            (
                "gw-network",
                "gateway",
                spec_json(42, "10.9.0.0/24", "10.9.0.0", 1450, ""),
            ),
            (
                "gw-broadcast",
                "gateway",
                spec_json(42, "10.9.0.0/24", "10.9.0.255", 1450, ""),
            ),
        ];
        let mut kvs = vec![("net:good".to_string(), good)];
        kvs.extend(bad.iter().map(|(n, _, v)| (format!("net:{n}"), v.clone())));
        let n =
            NodeInfo::from_key_values("a", true, kvs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let kept: Vec<&String> = n.networks.keys().collect();
        assert_eq!(n.issues.len(), bad.len(), "{:#?}", n.issues);
        for (name, field, _) in bad {
            let want = format!("network {name:?} refused: field {field}:");
            assert!(
                n.issues.iter().any(|i| i.starts_with(&want)),
                "no issue {want:?} in {:#?}",
                n.issues
            );
        }
        assert_eq!(kept, vec!["good"], "only the sane spec is kept");
    }
}
