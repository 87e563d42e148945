//! What the lab's parts are called on the machine and in the daemon: `LAB-NODE` namespaces,
//! `LAB-NETWORK` networks, `LAB-NODE-NETWORK` endpoints.

/// The namespace of a node or host.
pub fn netns(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The weft network of a lab's network.
pub fn network(lab: &str, net: &str) -> String {
    format!("{lab}-{net}")
}

/// The endpoint (and switch port) of a node's link.
pub fn endpoint(lab: &str, node: &str, net: &str) -> String {
    format!("{lab}-{node}-{net}")
}

/// The underlay network of a multi-host lab, on the daemon `weft lab` talks to.
pub fn underlay(lab: &str) -> String {
    format!("{lab}-underlay")
}

/// The endpoint joining a host to the underlay.
pub fn host_uplink(lab: &str, host: &str) -> String {
    format!("{lab}-{host}-underlay")
}
