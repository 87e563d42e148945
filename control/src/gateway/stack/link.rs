//! One network's smoltcp interface and its link to the data plane: IP packets in, IP
//! packets out (each with room for the virtio_net_hdr and Ethernet header in front), sent
//! to the containers as GSO superframes where segments of one connection follow each other.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, Ipv4Packet, TcpPacket};
use weft_gateway::dns_tcp::DNS_TCP_BUFFER;
use weft_gateway::published_udp::{UdpClients, EPHEMERAL_FIRST};
use weft_switch::DNS_PORT;
use weft_switch::{GatewayConfig, MacAddr, PortId};
use weft_wire::coalesce::Coalescer;
use weft_wire::VNET_HDR_LEN;

use super::dns_tcp::DnsConn;
use crate::dataplane::Dataplane;

/// An established connection whose peer stops acknowledging is aborted after this.
const TCP_TIMEOUT: Duration = Duration::from_secs(120);
/// Listening DNS-over-TCP sockets kept ready per network.
pub(super) const DNS_LISTENERS: usize = 2;

/// The link between one network's smoltcp interface and the data plane.
pub(super) struct Link {
    pub(super) rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    mtu: usize,
}

/// Room in front of every packet smoltcp sends: virtio_net_hdr + Ethernet header.
const HEADROOM: usize = VNET_HDR_LEN + 14;

pub(super) struct RxPacket(Vec<u8>);
pub(super) struct TxPacket<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxPacket {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxPacket<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; HEADROOM + len];
        let r = f(&mut packet[HEADROOM..]);
        self.0.push(packet);
        r
    }
}

impl phy::Device for Link {
    type RxToken<'a> = RxPacket;
    type TxToken<'a> = TxPacket<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((RxPacket(packet), TxPacket(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxPacket(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        // Frames from a TAP may carry a partial TCP checksum (the container's kernel left it
        // to the "hardware"): the virtual link does not corrupt, so received TCP checksums are
        // not verified; everything sent is checksummed.
        let mut checksum = ChecksumCapabilities::default();
        checksum.tcp = Checksum::Tx;
        caps.checksum = checksum;
        caps
    }
}

/// One network's interface, sockets and the stations it talks to.
pub(super) struct NetworkIface {
    pub(super) iface: Interface,
    pub(super) link: Link,
    pub(super) sockets: SocketSet<'static>,
    pub(super) gateway: GatewayConfig,
    subnet: (Ipv4Addr, u8),
    /// Container address -> (switch port, MAC), learned from the frames they send and from
    /// published ports' targets.
    pub(super) neighbors: HashMap<Ipv4Addr, (PortId, MacAddr)>,
    pub(super) dns_listeners: Vec<SocketHandle>,
    pub(super) dns_conns: Vec<DnsConn>,
    pub(super) next_dns_conn: u64,
    /// Gateway source ports of published UDP ports' clients (and of inbound TCP).
    pub(super) udp_clients: UdpClients,
    /// Published UDP clients the container sees under their own address: (container,
    /// client) -> the client's gateway port in `udp_clients` (which bounds and ages them).
    pub(super) udp_by_client: HashMap<(SocketAddrV4, SocketAddrV4), u16>,
}

impl NetworkIface {
    pub(super) fn new(
        gateway: GatewayConfig,
        subnet: (Ipv4Addr, u8),
        mtu: usize,
        udp_idle: Duration,
        now: smoltcp::time::Instant,
    ) -> NetworkIface {
        let mut link = Link {
            rx: VecDeque::new(),
            tx: Vec::new(),
            mtu,
        };
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = u64::from(u32::from(gateway.ip)) ^ now.total_micros() as u64;
        let mut iface = Interface::new(config, &mut link, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(gateway.ip), subnet.1));
        });
        // "Any IP": the interface accepts packets for every address routed through one of its
        // own, which with a default route via the gateway is every address: it can then
        // terminate connections to any outside address.
        iface.set_any_ip(true);
        let _ = iface.routes_mut().add_default_ipv4_route(gateway.ip);
        let mut net = NetworkIface {
            iface,
            link,
            sockets: SocketSet::new(Vec::new()),
            gateway,
            subnet,
            neighbors: HashMap::new(),
            dns_listeners: Vec::new(),
            dns_conns: Vec::new(),
            next_dns_conn: 0,
            udp_clients: UdpClients::new(EPHEMERAL_FIRST, u16::MAX, udp_idle),
            udp_by_client: HashMap::new(),
        };
        for _ in 0..DNS_LISTENERS {
            net.add_dns_listener();
        }
        net
    }

    pub(super) fn add_dns_listener(&mut self) {
        let mut socket = new_tcp_socket(DNS_TCP_BUFFER);
        if socket
            .listen(IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(self.gateway.ip)),
                port: DNS_PORT,
            })
            .is_ok()
        {
            self.dns_listeners.push(self.sockets.add(socket));
        }
    }

    pub(super) fn inside(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.subnet.1))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.subnet.0) & mask
    }
}

/// A proxied connection's socket: `buffer` octets each way, no Nagle (the host side already
/// coalesces), aborted when the peer stops acknowledging for [`TCP_TIMEOUT`].
pub(super) fn new_tcp_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; buffer]),
        tcp::SocketBuffer::new(vec![0u8; buffer]),
    );
    socket.set_nagle_enabled(false);
    socket.set_timeout(Some(TCP_TIMEOUT.into()));
    socket
}

/// Runs one network's interface until it has nothing more to receive or send, and writes
/// what it sent to the containers. Returns whether anything was sent.
pub(super) fn poll_net(net: &mut NetworkIface, origin: Instant, dataplane: &Dataplane) -> bool {
    // Each poll sends at most one segment per socket: poll until the interface is idle (a
    // bound keeps one busy network from starving the rest of the loop), then send what
    // accumulated, consecutive segments of each connection merged into GSO superframes.
    for _ in 0..64 {
        let now = smoltcp::time::Instant::from_micros(origin.elapsed().as_micros() as i64);
        let before = net.link.tx.len();
        let result = net.iface.poll(now, &mut net.link, &mut net.sockets);
        let idle = result == PollResult::None && net.link.tx.len() == before;
        if idle && net.link.rx.is_empty() {
            break;
        }
    }
    let mut packets = std::mem::take(&mut net.link.tx);
    packets.retain(|p| p.len() >= HEADROOM + 20);
    if packets.is_empty() {
        return false;
    }
    // Group by connection (destination address and ports), keeping each one's order.
    packets.sort_by_key(|p| {
        let Ok(ip) = Ipv4Packet::new_checked(&p[HEADROOM..]) else {
            return (Ipv4Addr::UNSPECIFIED, 0, (0, 0));
        };
        let ports =
            TcpPacket::new_checked(ip.payload()).map_or((0, 0), |t| (t.src_port(), t.dst_port()));
        (ip.dst_addr(), u8::from(ip.next_header()), ports)
    });
    let mut coalescer = Coalescer::new(HEADROOM);
    let mut spare = Vec::new();
    let finished: Vec<Vec<u8>> = packets
        .into_iter()
        .filter_map(|p| coalescer.push(p, &mut spare))
        .collect();
    for mut packet in finished.into_iter().chain(coalescer.finish()) {
        let Ok(ip) = Ipv4Packet::new_checked(&packet[HEADROOM..]) else {
            continue;
        };
        let Some(&(port, mac)) = net.neighbors.get(&ip.dst_addr()) else {
            continue;
        };
        let eth = &mut packet[VNET_HDR_LEN..HEADROOM];
        eth[0..6].copy_from_slice(&mac.0);
        eth[6..12].copy_from_slice(&net.gateway.mac.0);
        eth[12..14].copy_from_slice(&[0x08, 0x00]);
        dataplane.inject_packet(port, &packet);
    }
    true
}
