//! The HTTP+JSON API shared by the daemon and the CLI: paths and message types.
//!
//! Every path is versioned under `/v1`. Errors come back as a non-2xx status with an
//! [`ApiError`] body whose `message` names the problem and the fix.

use serde::{Deserialize, Serialize};

/// Body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub message: String,
}

/// `POST /v1/networks`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateNetwork {
    pub name: String,
    pub subnet: String,
    pub gateway: Option<String>,
    pub mtu: Option<u32>,
    pub aging_seconds: Option<u64>,
    /// Inter-container communication (default true).
    #[serde(default)]
    pub icc: Option<bool>,
    /// Outbound NAT mode: "proxy" (default) or "none".
    #[serde(default)]
    pub nat: Option<String>,
    /// No outbound NAT and no published ports.
    #[serde(default)]
    pub internal: bool,
    /// "bridge" (default: this host only) or "overlay" (VXLAN between hosts).
    #[serde(default)]
    pub driver: Option<String>,
    /// VXLAN network identifier of an overlay network.
    #[serde(default)]
    pub vni: Option<u32>,
    /// Where connections to published ports come from, as the container sees them:
    /// "client" (the client's own address, the default) or "gateway" (the gateway's
    /// address, for containers that route the clients' addresses elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_source: Option<String>,
}

/// `POST /v1/peers`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerAdd {
    pub addr: String,
    pub vni: u32,
    #[serde(default)]
    pub port: Option<u16>,
}

/// `GET /v1/cluster`: this node in the gossip cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub node: String,
    /// Where the gossip listens.
    pub gossip: String,
    pub vtep: String,
    /// Nodes not declared dead, this one included.
    pub nodes_alive: usize,
    pub gossip_rx: u64,
    pub gossip_tx: u64,
    /// Gossip datagrams that did not open under the cluster key: dropped.
    pub gossip_auth_failed: u64,
    /// Gossip datagrams that opened but held no valid message: dropped.
    pub gossip_malformed: u64,
    /// Sealed datagrams seen before (a replay): dropped.
    #[serde(default)]
    pub gossip_replayed: u64,
    /// Sealed datagrams behind the sender's replay window or from its earlier boot: dropped.
    #[serde(default)]
    pub gossip_stale: u64,
    /// Datagrams in the sealed format of an older weft (no replay counter): dropped.
    #[serde(default)]
    pub gossip_old_format: u64,
    /// Datagrams of nodes cut off for publishing more than a node may: dropped.
    #[serde(default)]
    pub gossip_cut_off: u64,
    /// Address blocks this node leased, as `VNI:BLOCK`.
    pub leases: Vec<String>,
    pub gossip_interval_ms: u64,
}

/// One row of `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRow {
    /// The tunnel port's name.
    pub name: String,
    /// The peer's VTEP address and UDP port.
    pub vtep: String,
    pub vni: u32,
    pub network: String,
    /// "static" for peers added with `weft peer add`.
    pub state: String,
    /// Seconds since a datagram from the peer last arrived (None: never).
    pub last_heard_seconds: Option<f64>,
    /// Endpoints the peer has in the VNI, when known (static peers: unknown).
    pub endpoints: Option<usize>,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// One network as listed by `GET /v1/networks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkSummary {
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    pub mtu: u32,
    pub aging_seconds: u64,
    pub icc: bool,
    pub nat: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// The Docker network ID, for a network made by `docker network create -d weft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    pub endpoints: usize,
}

/// `GET /v1/networks/{name}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDetail {
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    /// The MAC address of the gateway's internal port.
    pub gateway_mac: String,
    pub mtu: u32,
    pub aging_seconds: u64,
    pub icc: bool,
    pub nat: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// The Docker network ID, for a network made by `docker network create -d weft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    /// "client" or "gateway": see [`CreateNetwork::published_source`].
    #[serde(default)]
    pub published_source: String,
    pub endpoints: Vec<EndpointInfo>,
}

/// Which kind of port attaches an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// A TAP device created inside the namespace: the container's interface is the TAP itself.
    #[default]
    Tap,
    /// A veth pair; the host end is read and written through AF_PACKET.
    Veth,
    /// A tunnel port: frames go to a remote VTEP in VXLAN.
    Vxlan,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Veth => "veth",
            PortKind::Vxlan => "vxlan",
        }
    }
}

/// `POST /v1/networks/{name}/endpoints`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connect {
    /// A namespace name (in /run/netns) or a path to a namespace file.
    pub netns: Option<String>,
    pub pid: Option<u32>,
    pub name: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    pub ifname: Option<String>,
    pub kind: Option<PortKind>,
    /// Extra DNS names on the network (several endpoints may share one).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Ports to publish (`-p`): `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/proto]`.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Container ports to publish on free host ports (`-P`): `PORT[/proto]`.
    #[serde(default)]
    pub publish_all: Vec<String>,
    /// Port security (default on): the port may send only with the endpoint's MAC and
    /// address. Off for a nested router or a lab that teaches spoofing.
    #[serde(default)]
    pub port_security: Option<bool>,
    /// Who made the endpoint when it was not a user of the CLI: a container engine's
    /// binding, `docker:ENDPOINT_ID` or `cni:CONTAINER_ID/IFNAME` (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One endpoint: a namespace's interface attached to a network through one switch port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub name: String,
    pub network: String,
    pub netns: String,
    pub ifname: String,
    pub kind: PortKind,
    pub ip: String,
    pub prefix_len: u8,
    pub mac: String,
    /// The switch port's name (the endpoint's name).
    pub port: String,
    /// Host-side interface for veth endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifname: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Published ports, as `HOST_IP:HOST_PORT->CONTAINER_PORT/PROTO`.
    #[serde(default)]
    pub published: Vec<String>,
    /// Port security: the port sends only with the endpoint's MAC and address.
    #[serde(default = "crate::types::yes")]
    pub port_security: bool,
    /// Set when the endpoint could not be re-attached after a restart (its namespace is
    /// gone): why. It is kept, its address and host ports held, until disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached: Option<String>,
    /// The container engine's binding, if an engine made the endpoint (see [`Connect`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What `weft impair` does to the frames leaving toward its port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<ImpairBody>,
    /// `weft link PORT down`.
    #[serde(default)]
    pub link_down: bool,
}

/// `true`, for fields that default to on.
pub fn yes() -> bool {
    true
}

/// `POST /v1/endpoints/{name}/publish`
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Publish {
    #[serde(default)]
    pub specs: Vec<String>,
    #[serde(default)]
    pub publish_all: Vec<String>,
}

/// `POST /v1/endpoints/{name}/unpublish`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unpublish {
    pub spec: String,
}

/// One FDB row of `GET /v1/fdb`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdbRow {
    pub network: String,
    pub mac: String,
    pub port: String,
    pub origin: String,
    pub age_seconds: f64,
}

/// `POST /v1/networks/{name}/fdb`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdbAdd {
    pub mac: String,
    pub endpoint: String,
}

/// One row of `GET /v1/ports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortRow {
    pub name: String,
    pub kind: PortKind,
    pub network: String,
    pub endpoint: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Only reasons with a nonzero count, keyed by `DropReason::as_str`.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Published ports of the endpoint, as `HOST_IP:HOST_PORT->CONTAINER_PORT/PROTO`.
    #[serde(default)]
    pub published: Vec<String>,
    /// Set for a detached endpoint (see [`EndpointInfo::detached`]): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached: Option<String>,
    /// What `weft impair` does to the frames leaving toward the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<ImpairBody>,
    /// `weft link PORT down`: frames to and from the port are dropped.
    #[serde(default)]
    pub link_down: bool,
}

/// `PUT /v1/ports/{port}/impair` (`weft impair PORT ...`) and what `GET /v1/ports` shows:
/// each field as the command line writes it (`20ms`, `10%`, `10mbit`); absent: not changed
/// from nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl ImpairBody {
    /// What it sets, in the command line's order, the seed last: `[("delay", "20ms"), …]`.
    pub fn parts(&self) -> Vec<(&'static str, String)> {
        let fields = [
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("loss", &self.loss),
            ("duplicate", &self.duplicate),
            ("reorder", &self.reorder),
            ("corrupt", &self.corrupt),
            ("rate", &self.rate),
        ];
        let mut parts: Vec<(&'static str, String)> = fields
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.clone()?)))
            .collect();
        if let Some(seed) = self.seed {
            parts.push(("seed", seed.to_string()));
        }
        parts
    }

    /// One line, as `weft ports` shows it: `delay=20ms loss=10% seed=7`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .parts()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(" ")
    }
}

/// `PUT /v1/ports/{port}/link` (`weft link PORT up|down`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    pub up: bool,
}

/// One row of `GET /v1/arp`: the neighbour table the switch answers ARP from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArpRow {
    pub network: String,
    pub ip: String,
    pub mac: String,
    /// The endpoint owning the address, or "gateway".
    pub owner: String,
    /// Where the entry came from: "ipam" (an endpoint's address) or "gateway".
    pub origin: String,
}

/// One row of `GET /v1/stats`: a network's table and gateway counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkStatsRow {
    pub network: String,
    /// Entries in the FDB now (learned and static).
    pub fdb_entries: usize,
    pub learned: u64,
    pub mac_moves: u64,
    pub learn_refused_table_full: u64,
    pub aged_out: u64,
    pub arp_suppressed: u64,
    pub gateway_arp_replies: u64,
    pub gateway_echo_replies: u64,
}

/// One row of `GET /v1/nat`: an outbound NAT flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatRow {
    pub protocol: String,
    /// "out": a container's connection to the outside; "in": a connection to a published
    /// port.
    #[serde(default)]
    pub direction: String,
    /// Filled in by the daemon from `network_id`.
    pub network: String,
    /// The container's address and port.
    pub container: String,
    /// The outside address and port.
    pub outside: String,
    /// The host socket's local address (what the outside sees).
    pub host_socket: String,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub age_seconds: f64,
    pub idle_seconds: f64,
    /// The network's internal id (not part of the API).
    #[serde(skip)]
    pub network_id: u32,
}

/// `POST /v1/ports/{port}/trace/inject`: a synthetic frame, described (`spec`, see
/// `weft trace --help`) or as hex (`hex`); exactly one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InjectBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

/// The answer to an inject: the trace as text, and its verdict line alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectResult {
    pub trace: String,
    pub verdict: String,
}

/// `GET /v1/explain?from=A&to=B[&port=P/PROTO]`: what a packet from A to B would meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub from: String,
    pub to: String,
    /// Each check on the way, in order.
    pub steps: Vec<ExplainStep>,
    /// "reachable" or "blocked".
    pub verdict: String,
    pub reason: String,
    /// What to change, when blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// One check of an explanation: what was looked at and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainStep {
    pub check: String,
    pub detail: String,
}
