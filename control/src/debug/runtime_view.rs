//! What the gateway's runtime would do with a synthetic frame's task (`weft trace
//! --inject`): DNS, published ports, the proxy NAT and its permission. Pure: the daemon
//! supplies the network's settings and the endpoint's published ports; the same rules as
//! `gateway::nat_allowed` and `weft_gateway::reach`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_gateway::publish::{PortMapping, Protocol};
use weft_switch::{GatewayTask, MacAddr};

/// The network and port as the runtime sees them.
#[derive(Debug, Clone)]
pub struct RuntimeFacts {
    pub network: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// `--nat proxy` (true) or `--nat none`.
    pub nat: bool,
    pub internal: bool,
    /// The endpoint registered on the port (address, MAC): the runtime answers only it.
    pub endpoint: Option<(Ipv4Addr, MacAddr)>,
    pub published: Vec<PortMapping>,
}

impl RuntimeFacts {
    /// Whether traffic to `dst` may leave through the proxy NAT (`gateway::nat_allowed`).
    pub fn nat_allowed(&self, dst: Ipv4Addr) -> bool {
        self.nat && !self.internal && !self.subnet.contains(&dst)
    }

    /// Why traffic cannot leave, for a verdict.
    fn no_route(&self) -> String {
        if self.internal {
            format!("blocked: network {} was created with --internal: no route out (the sender gets ICMP network unreachable)", self.network)
        } else {
            format!(
                "blocked: network {} was created with --nat none: no route out",
                self.network
            )
        }
    }

    fn published(&self, port: u16, protocol: Protocol) -> Option<&PortMapping> {
        self.published
            .iter()
            .find(|m| m.container_port == port && m.protocol == protocol)
    }
}

/// The lines (`runtime ...`, `nat ...`, `published ...`, ending with `verdict ...`) for what
/// the runtime would do with `task`.
pub fn runtime_lines(task: &GatewayTask, f: &RuntimeFacts) -> Vec<String> {
    let (src_ip, src_mac) = match task {
        GatewayTask::Dns(d) | GatewayTask::PublishedUdp(d) | GatewayTask::UdpOut(d) => {
            (d.src_ip, d.src_mac)
        }
        GatewayTask::Tcp(t) => (t.src.0, t.src_mac),
        GatewayTask::EchoOut(e) => (e.src_ip, e.src_mac),
        GatewayTask::ArpReply(_) | GatewayTask::EchoReply(_) => return Vec::new(),
    };
    if f.endpoint != Some((src_ip, src_mac)) {
        return vec![
            format!("runtime   the sender {src_ip} at {src_mac} is not the port's endpoint: the gateway answers only its endpoints"),
            "verdict   dropped: gateway_unsupported".into(),
        ];
    }
    match task {
        GatewayTask::Dns(_) => vec![
            format!("runtime   a DNS query: answered from network {}'s names, else forwarded to the upstream resolvers", f.network),
            "verdict   answered by the gateway's DNS".into(),
        ],
        GatewayTask::PublishedUdp(d) => match f.published(d.src_port, Protocol::Udp) {
            Some(m) => vec![
                format!("published {m}: an answer to the client behind gateway port {}", d.dst_port),
                format!("verdict   to the published port's client (from {}:{})", m.host_ip, m.host_port),
            ],
            None => vec![
                format!("published no UDP port of this endpoint is published from container port {}", d.src_port),
                "verdict   dropped: nothing of the gateway listens there".into(),
            ],
        },
        GatewayTask::UdpOut(d) => outbound(f, "UDP", d.dst_ip, Some(d.dst_port), None),
        GatewayTask::EchoOut(e) => outbound(f, "ping", e.dst_ip, None, None),
        GatewayTask::Tcp(t) if t.dst.0 == f.gateway => tcp_to_gateway(f, t.src.1, t.dst.1),
        GatewayTask::Tcp(t) => {
            let reply = f.published(t.src.1, Protocol::Tcp).filter(|_| !t.syn);
            outbound(f, "TCP", t.dst.0, Some(t.dst.1), reply)
        }
        GatewayTask::ArpReply(_) | GatewayTask::EchoReply(_) => Vec::new(),
    }
}

fn tcp_to_gateway(f: &RuntimeFacts, src_port: u16, dst_port: u16) -> Vec<String> {
    if dst_port == 53 {
        return vec![
            "runtime   DNS over TCP to the gateway".into(),
            "verdict   answered by the gateway's DNS".into(),
        ];
    }
    match f.published(src_port, Protocol::Tcp) {
        Some(m) => vec![
            format!("published {m}: a segment of a connection to the published port (from the gateway's address)"),
            "verdict   to the published port's client, if that connection is open".into(),
        ],
        None => vec![
            format!("runtime   nothing of the gateway listens on TCP port {dst_port}"),
            "verdict   answered with a reset".into(),
        ],
    }
}

/// A flow to `dst` through the proxy NAT (or the reply of a published connection).
fn outbound(
    f: &RuntimeFacts,
    what: &str,
    dst: Ipv4Addr,
    port: Option<u16>,
    published_reply: Option<&PortMapping>,
) -> Vec<String> {
    let to = port.map_or(dst.to_string(), |p| format!("{dst}:{p}"));
    if let Some(m) = published_reply {
        return vec![
            format!("published {m}: the reply of a connection to the published port, back to its client {to}"),
            "verdict   to the published port's client, if that connection is open".into(),
        ];
    }
    if !f.nat_allowed(dst) {
        let why = if f.subnet.contains(&dst) {
            format!(
                "dropped: {dst} is inside the network's own subnet: nothing is routed back into it"
            )
        } else {
            f.no_route()
        };
        return vec![
            format!("nat       {what} to {to}: not allowed"),
            format!("verdict   {why}"),
        ];
    }
    if !weft_gateway::reach::nat_may_reach(dst) {
        return vec![
            format!("nat       {to} means something only to the host (loopback, link-local, multicast, reserved): refused"),
            "verdict   dropped: nat_refused (the sender gets ICMP administratively prohibited)".into(),
        ];
    }
    vec![
        format!("nat       proxy NAT: {what} to {to} leaves from a host socket with this host's address"),
        format!("verdict   to the outside through network {}'s proxy NAT", f.network),
    ]
}

#[cfg(test)]
mod tests;
