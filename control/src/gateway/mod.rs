//! The gateway's runtime: everything the gateway terminates, off the switch's fast path.
//! [`start`] brings up the TCP/IP stack thread ([`stack`]: TCP proxy NAT, ICMP echo NAT,
//! published ports, DNS over TCP) and the services task ([`serve`]: DNS over UDP, outbound
//! UDP NAT), and hands the data plane a [`Link`] to both.
//!
//! The services: the embedded DNS server at each network's gateway address (UDP port 53). The data plane hands DNS queries over as
//! [`ServiceRequest`]s; answers go back through [`Dataplane::inject`] as frames from the
//! gateway's MAC and address.
//!
//! Names of a network (endpoint names and aliases) are answered from its [`Zone`]; every
//! other name is forwarded to the upstream resolvers, and a failure comes back as SERVFAIL
//! rather than silence.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use weft_switch::{write_udp_from_gateway, DropReason, NetworkId};

pub mod dns;
pub mod publish;
pub mod stack;
pub mod udp_nat;

use crate::dataplane::{Dataplane, GatewayLink, ServiceRequest, DNS_PORT};
use dns::{Outcome, Zone};
use stack::{StackHandle, StackInput};
use udp_nat::{ReturnPath, UdpFlowKey, UdpNat};
use weft_switch::{GatewayConfig, PortId};

/// What the data plane reaches of the running gateway: the stack's queue and the services'.
struct Link {
    services: tokio::sync::mpsc::Sender<ServiceRequest>,
    stack: StackHandle,
}

impl GatewayLink for Link {
    fn stack_takes(&self, frame: &[u8], gateway: &GatewayConfig) -> bool {
        stack::stack_bound(frame, gateway)
    }

    fn try_to_stack(&self, port: PortId, gateway: GatewayConfig, frame: &[u8]) -> bool {
        self.stack.try_send(StackInput::Frame {
            port,
            gateway,
            frame: frame.to_vec(),
        })
    }

    fn try_to_services(&self, request: ServiceRequest) -> bool {
        self.services.try_send(request).is_ok()
    }
}

/// The running gateway, as the daemon holds it.
pub struct Gateway {
    pub zones: Zones,
    pub nat: Arc<UdpNat>,
    pub stack: StackHandle,
}

/// Starts the gateway's runtime (on the current tokio runtime) and connects it to the data
/// plane. `dns_upstream`: resolvers to forward to (empty: `/etc/resolv.conf`'s).
pub fn start(
    dataplane: &Arc<Dataplane>,
    dns_upstream: &[SocketAddr],
    udp_idle: Duration,
) -> Result<Gateway, stack::StackError> {
    let zones = Zones::default();
    let (service_tx, service_rx) = tokio::sync::mpsc::channel(crate::dataplane::SERVICE_QUEUE);
    let upstreams = Arc::new(upstreams(dns_upstream));
    log::info!("embedded DNS forwards to {upstreams:?}");
    let nat = Arc::new(UdpNat::new(udp_idle));
    tokio::spawn(serve(
        service_rx,
        Arc::clone(dataplane),
        Arc::clone(&zones),
        Arc::clone(&upstreams),
        Arc::clone(&nat),
    ));
    let stack = stack::spawn(
        Arc::clone(dataplane),
        Arc::clone(&zones),
        upstreams,
        tokio::runtime::Handle::current(),
        udp_idle,
    )?;
    dataplane.connect_gateway(Arc::new(Link {
        services: service_tx,
        stack: stack.clone(),
    }));
    Ok(Gateway { zones, nat, stack })
}

/// IPv4 and UDP headers around a DNS message.
const IPV4_UDP_HEADERS: usize = 20 + 8;

/// How long one upstream resolver may take to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What the gateway's services know of one network: its names, subnet and NAT mode.
#[derive(Debug, Clone)]
pub struct NetworkZone {
    /// Outbound NAT (`--nat proxy`, the default); false for `--nat none`.
    pub nat: bool,
    pub zone: Zone,
    /// Network address and prefix length: reverse lookups inside it are answered locally.
    pub subnet: (Ipv4Addr, u8),
}

/// The zones of all networks, rebuilt by the daemon when endpoints change.
pub type Zones = Arc<RwLock<HashMap<NetworkId, NetworkZone>>>;

/// Serves DNS queries and outbound UDP NAT until the data plane's sender goes away.
pub async fn serve(
    mut requests: tokio::sync::mpsc::Receiver<ServiceRequest>,
    dataplane: Arc<Dataplane>,
    zones: Zones,
    upstreams: Arc<Vec<SocketAddr>>,
    nat: Arc<UdpNat>,
) {
    let mut rotation = 0usize;
    {
        let nat = Arc::clone(&nat);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                nat.expire();
            }
        });
    }
    while let Some(req) = requests.recv().await {
        let network = dataplane.with_bridge(|b| b.port_network(req.port));
        if req.datagram.dst_ip != req.gateway.ip {
            outbound_udp(&dataplane, &zones, &nat, network, &req);
            continue;
        }
        rotation = rotation.wrapping_add(1);
        match answer_query(&zones, network, &req.payload, rotation) {
            Outcome::Reply(answer) => send(&dataplane, &req, &answer),
            Outcome::Forward => {
                let dataplane = Arc::clone(&dataplane);
                let upstreams = Arc::clone(&upstreams);
                tokio::spawn(async move {
                    if let Some(answer) = dns::forward(
                        &req.payload,
                        &upstreams,
                        UPSTREAM_TIMEOUT,
                        dns::Transport::Udp,
                    )
                    .await
                    {
                        // An answer larger than the client's link (EDNS lets upstreams send
                        // up to 4 KiB) is replaced by a truncated one: the client knows to
                        // ask again over TCP rather than wait for a frame that cannot pass.
                        let mtu = dataplane.with_bridge(|b| {
                            b.port_network(req.port)
                                .and_then(|n| b.network_config(n))
                                .map_or(1500, |c| usize::from(c.mtu))
                        });
                        if answer.len() + IPV4_UDP_HEADERS > mtu {
                            if let Some(short) = dns::truncated(&req.payload, &answer) {
                                send(&dataplane, &req, &short);
                            }
                        } else {
                            send(&dataplane, &req, &answer);
                        }
                    }
                });
            }
            Outcome::Drop(_) => dataplane.record_drop(req.port, DropReason::Malformed),
        }
    }
}

/// Answers a DNS query asked on `network` from its zone (or says to forward it).
pub fn answer_query(
    zones: &Zones,
    network: Option<NetworkId>,
    query: &[u8],
    rotation: usize,
) -> Outcome {
    let zones = zones.read().unwrap_or_else(|p| p.into_inner());
    match network.and_then(|n| zones.get(&n)) {
        Some(nz) => dns::answer(query, &nz.zone, nz.subnet, rotation),
        None => dns::answer(query, &Zone::new(), (Ipv4Addr::UNSPECIFIED, 32), rotation),
    }
}

/// Whether traffic of `network` to `dst` may leave through the proxy NAT: the network has
/// NAT on (not `--nat none`, not `--internal`) and `dst` is outside its subnet.
pub fn nat_allowed(zones: &Zones, network: NetworkId, dst: Ipv4Addr) -> bool {
    let zones = zones.read().unwrap_or_else(|p| p.into_inner());
    zones.get(&network).is_some_and(|nz| {
        let (net, prefix) = nz.subnet;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        nz.nat && u32::from(dst) & mask != u32::from(net) & mask
    })
}

/// A datagram routed through the gateway to an address outside the network: out through a
/// host socket (proxy NAT), unless the network has `--nat none` or the address is its own.
fn outbound_udp(
    dataplane: &Arc<Dataplane>,
    zones: &Zones,
    nat: &UdpNat,
    network: Option<NetworkId>,
    req: &ServiceRequest,
) {
    let d = &req.datagram;
    let allowed = network.filter(|&n| nat_allowed(zones, n, d.dst_ip));
    let Some(network) = allowed else {
        dataplane.record_drop(req.port, DropReason::GatewayUnsupported);
        return;
    };
    let key = UdpFlowKey {
        network,
        container: std::net::SocketAddrV4::new(d.src_ip, d.src_port),
        outside: std::net::SocketAddrV4::new(d.dst_ip, d.dst_port),
    };
    let back = ReturnPath {
        port: req.port,
        gateway: req.gateway,
        container_mac: d.src_mac,
    };
    if let Err(e) = nat.send(dataplane, key, back, &req.payload) {
        log::debug!("outbound UDP from {} dropped: {e}", key.container);
        dataplane.record_drop(req.port, DropReason::GatewayBusy);
    }
}

/// Sends `answer` from the gateway's port 53 back to the client that asked.
fn send(dataplane: &Dataplane, req: &ServiceRequest, answer: &[u8]) {
    let d = &req.datagram;
    let mut frame = vec![0u8; 14 + 20 + 8 + answer.len()];
    match write_udp_from_gateway(
        &req.gateway,
        DNS_PORT,
        (d.src_mac, d.src_ip, d.src_port),
        answer,
        &mut frame,
    ) {
        Some(len) => {
            dataplane.inject(req.port, &frame[..len]);
        }
        None => dataplane.record_drop(req.port, DropReason::Oversized),
    }
}

/// The upstream resolvers: the ones given on the command line, else the host's
/// `/etc/resolv.conf`.
pub fn upstreams(configured: &[SocketAddr]) -> Vec<SocketAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| dns::upstreams_from_resolv_conf(&text))
        .unwrap_or_default()
}

/// First line of the resolv.conf files weft writes, so it only ever removes its own.
pub const RESOLV_CONF_MARKER: &str = "# written by weft";

/// Writes `/etc/netns/NAME/resolv.conf` pointing at the gateway, so `ip netns exec NAME`
/// programs use the embedded DNS. An existing file not written by weft is left alone.
pub fn write_netns_resolv_conf(
    netns_name: &str,
    network: &str,
    gateway: Ipv4Addr,
) -> std::io::Result<bool> {
    let dir = std::path::Path::new("/etc/netns").join(netns_name);
    let path = dir.join("resolv.conf");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.starts_with(RESOLV_CONF_MARKER) {
            return Ok(false);
        }
    }
    std::fs::create_dir_all(&dir)?;
    let text = format!(
        "{RESOLV_CONF_MARKER}: the embedded DNS of network {network}\nnameserver {gateway}\noptions ndots:0\n"
    );
    let tmp = dir.join(".resolv.conf.weft");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

/// Removes a resolv.conf weft wrote for `netns_name` (and its directory if empty).
pub fn remove_netns_resolv_conf(netns_name: &str) {
    let dir = std::path::Path::new("/etc/netns").join(netns_name);
    let path = dir.join("resolv.conf");
    if std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(RESOLV_CONF_MARKER)) {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
    }
}
