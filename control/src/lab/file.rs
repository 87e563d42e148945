//! The lab file's shape (YAML, in containerlab's spirit): every field, with unknown ones refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole lab file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    /// The lab's name: the prefix of its namespaces, networks and endpoints.
    pub name: String,
    /// Hosts of a multi-host lab, each a namespace with its own weft daemon.
    #[serde(default)]
    pub hosts: BTreeMap<String, Option<HostSpec>>,
    /// The underlay joining the hosts (a weft network on the daemon `weft lab` talks to).
    #[serde(default)]
    pub underlay: Option<UnderlaySpec>,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkSpec>,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeSpec>,
}

/// One host of a multi-host lab.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Its underlay address (default: the next free one of the underlay's subnet).
    #[serde(default)]
    pub address: Option<String>,
}

/// The underlay of a multi-host lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnderlaySpec {
    pub subnet: String,
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// A network, as `weft network create` takes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub subnet: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub driver: Option<Driver>,
    #[serde(default)]
    pub icc: Option<bool>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub nat: Option<Nat>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub vni: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Overlay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Nat {
    Proxy,
    None,
}

/// A node: a network namespace with links to networks and commands run once it is up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The host it runs on (multi-host labs only).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Shell commands run in the node (`sh -c`) once its links are up.
    #[serde(default)]
    pub exec: Vec<String>,
}

/// One link of a node: an endpoint on a network.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub network: String,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub kind: Option<Kind>,
    /// The interface's name in the node (default eth0, eth1, ... in the order of links).
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Published ports, as `-p` takes them.
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub port_security: Option<bool>,
    #[serde(default)]
    pub impair: Option<ImpairSpec>,
    /// `down` takes the link down in the switch (frames toward it are dropped).
    #[serde(default)]
    pub link: Option<LinkState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Tap,
    Veth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Up,
    Down,
}

/// Impairment of frames toward a link, as `weft impair` takes it: the API's body itself.
pub type ImpairSpec = crate::types::ImpairBody;

/// Parses a lab file's text; a syntax or shape error names its line and field.
pub fn parse(text: &str) -> Result<LabFile, super::LabError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        super::LabError::Invalid {
            line,
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = "name: l\nnetworks:\n  n:\n    subnet: 10.101.0.0/24\n    colour: red\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("colour"), "{e}");
        assert!(e.contains("networks.n"), "{e}");
    }

    #[test]
    fn minimal_file() {
        let text = "name: l\nnetworks:\n  n: {subnet: 10.101.0.0/24}\nnodes:\n  a:\n    links: [{network: n}]\n";
        let f = parse(text).unwrap();
        assert_eq!(f.nodes["a"].links[0].network, "n");
        assert!(f.hosts.is_empty());
    }
}
