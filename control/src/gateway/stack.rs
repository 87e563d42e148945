//! The gateway's own TCP/IP endpoint: one thread that terminates the TCP connections
//! containers open through their gateway (outbound proxy NAT), the connections that arrive on
//! published host ports (inbound), DNS over TCP at the gateway address, published UDP ports,
//! and ICMP echo to outside addresses.
//!
//! Every network gets a [smoltcp] interface in "any IP" mode whose link is the gateway's
//! internal port: the data plane hands it the frames addressed to the gateway's MAC that the
//! fast path does not answer itself (see [`stack_bound`]), and the frames it sends go out
//! through [`Dataplane::inject_packet`]. On the host side everything is an ordinary
//! non-blocking socket watched by one epoll instance. This is how slirp4netns (libslirp)
//! and passt proxy rootless containers' traffic; no iptables, no kernel forwarding.
//!
//! Outbound TCP: the container's SYN is held until the host socket's `connect()` finishes,
//! so that the container sees the outside's real answer: accepted (a smoltcp socket then
//! listens on the outside address and takes the held SYN), refused (the SYN is handed to
//! smoltcp with no listener, which answers RST, RFC 9293 §3.10.7.1), or unreachable (ICMP
//! destination unreachable quoting the SYN, RFC 792 / RFC 1122 §3.2.2.1).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use weft_switch::{
    echo_request_via_gateway, icmp_echo_ident, set_icmp_echo_ident, write_icmp_from,
    write_icmp_unreachable, write_udp, DropReason, GatewayConfig, MacAddr, NetworkId, PortId,
    ICMP_HOST_UNREACHABLE, ICMP_NET_UNREACHABLE,
};

use crate::dataplane::{Dataplane, DNS_PORT};
use crate::gateway::dns::{self, Outcome};
use crate::gateway::publish::PublishedSocket;
use crate::gateway::{self, Zones};
use crate::types::NatRow;
use weft_sys::{self as sys, Epoll, EventFd};
use weft_wire::coalesce::Coalescer;
use weft_wire::VNET_HDR_LEN;

/// Frames and commands that may wait for the stack thread before new frames are dropped.
pub const STACK_QUEUE: usize = 4096;
/// TCP connections (both directions) the gateway keeps at once.
pub const MAX_TCP_FLOWS: usize = 4096;
/// ICMP echo flows kept at once.
pub const MAX_ECHO_FLOWS: usize = 1024;
/// Receive and send buffer of each proxied TCP connection, per direction. With window
/// scaling (RFC 7323) this is the window the container sees.
const TCP_BUFFER: usize = 256 * 1024;
/// Buffers of a DNS-over-TCP connection: one message of up to 64 KiB plus its length.
const DNS_TCP_BUFFER: usize = 66 * 1024;
/// DNS-over-TCP connections one network's gateway keeps open at once.
const MAX_DNS_CONNS: usize = 64;
/// A DNS-over-TCP connection with nothing to do is closed after this (RFC 7766 §6.2.3
/// suggests seconds).
const DNS_IDLE: Duration = Duration::from_secs(10);
/// ... and one whose forwarded answer has not come back (longer than any forward takes).
const DNS_WAIT_MAX: Duration = Duration::from_secs(30);
/// Listening DNS-over-TCP sockets kept ready per network.
const DNS_LISTENERS: usize = 2;
/// An established connection whose peer stops acknowledging is aborted after this.
const TCP_TIMEOUT: Duration = Duration::from_secs(120);
/// Idle ICMP echo flows are forgotten after this.
const ECHO_IDLE: Duration = Duration::from_secs(30);
/// How long a failed outbound connect is remembered (see `Stack::failed`).
const FAILED_CONNECT_MEMORY: Duration = Duration::from_secs(3);
/// First port the gateway uses as its own source port (IANA dynamic range, RFC 6335 §6).
const EPHEMERAL_FIRST: u16 = 49152;

const TAG_SHIFT: u32 = 32;
const TAG_WAKE: u64 = 0;
const TAG_FLOW: u64 = 1;
const TAG_PUBLISHED: u64 = 2;
const TAG_ICMP: u64 = 3;

fn token(tag: u64, index: usize) -> u64 {
    (tag << TAG_SHIFT) | index as u64
}

/// Whether a frame for the gateway belongs to the stack: TCP to any address, an ICMP echo
/// request to an outside address, or UDP to the gateway's own address other than DNS
/// (answers to published UDP ports). Cheap: looks at a few header bytes only.
pub fn stack_bound(frame: &[u8], gw: &GatewayConfig) -> bool {
    const IP: usize = 14;
    if frame.len() < IP + 20 || frame[0..6] != gw.mac.0 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let ihl = usize::from(frame[IP] & 0x0f) * 4;
    let dst = Ipv4Addr::new(
        frame[IP + 16],
        frame[IP + 17],
        frame[IP + 18],
        frame[IP + 19],
    );
    let l4 = IP + ihl;
    match frame[IP + 9] {
        6 => true,
        1 => dst != gw.ip && frame.get(l4) == Some(&8),
        17 => {
            dst == gw.ip
                && frame
                    .get(l4 + 2..l4 + 4)
                    .is_some_and(|p| u16::from_be_bytes([p[0], p[1]]) != DNS_PORT)
        }
        _ => false,
    }
}

/// A published host port handed to the stack, already bound by the daemon.
#[derive(Debug)]
pub struct Published {
    pub network: NetworkId,
    pub target: Target,
    pub container_port: u16,
    pub socket: PublishedSocket,
}

/// The endpoint a published port leads to.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub port: PortId,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub gateway: GatewayConfig,
    /// The network's subnet (address, prefix length).
    pub subnet: (Ipv4Addr, u8),
    pub mtu: u16,
}

/// What the stack thread is asked to do.
pub enum StackInput {
    /// A frame for the gateway from `port` (see [`stack_bound`]).
    Frame {
        port: PortId,
        gateway: GatewayConfig,
        frame: Vec<u8>,
    },
    Publish(Published),
    /// Stop serving the published socket bound to this address (TCP if `tcp`).
    Unpublish {
        local: SocketAddr,
        tcp: bool,
    },
    /// Drop everything of a removed network.
    ForgetNetwork(NetworkId),
    /// Drop the connections of a disconnected endpoint's port.
    ForgetPort(PortId),
    /// Report the active flows.
    Flows(std::sync::mpsc::Sender<Vec<NatRow>>),
    /// A forwarded DNS-over-TCP query came back.
    DnsAnswer {
        network: NetworkId,
        conn: SocketHandle,
        /// The connection's number: a handle is reused, an answer must not reach the
        /// connection that took over a closed one's handle.
        id: u64,
        answer: Vec<u8>,
    },
}

/// The handle the data plane and the daemon use to reach the stack thread.
#[derive(Clone)]
pub struct StackHandle {
    tx: SyncSender<StackInput>,
    wake: Arc<EventFd>,
}

impl StackHandle {
    /// Queues an input without blocking; false if the queue is full or the thread is gone.
    pub fn try_send(&self, input: StackInput) -> bool {
        let ok = match self.tx.try_send(input) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        };
        if ok {
            self.wake.notify();
        }
        ok
    }

    /// Queues a command, waiting for room (control operations, never the data path).
    pub fn send(&self, input: StackInput) -> bool {
        let ok = self.tx.send(input).is_ok();
        self.wake.notify();
        ok
    }

    /// The active TCP and ICMP flows, as `weft nat` lists them.
    pub fn flows(&self) -> Vec<NatRow> {
        let (tx, rx) = std::sync::mpsc::channel();
        if !self.send(StackInput::Flows(tx)) {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
    }
}

/// Errors starting the stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    #[error("cannot start the gateway stack thread: {0}")]
    Thread(std::io::Error),
}

/// Starts the stack thread. `runtime` runs forwarded DNS-over-TCP queries.
pub fn spawn(
    dataplane: Arc<Dataplane>,
    zones: Zones,
    upstreams: Arc<Vec<SocketAddr>>,
    runtime: tokio::runtime::Handle,
    udp_idle: Duration,
) -> Result<StackHandle, StackError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(STACK_QUEUE);
    let wake = Arc::new(EventFd::new()?);
    let epoll = Epoll::new()?;
    epoll.add(wake.fd(), token(TAG_WAKE, 0))?;
    let handle = StackHandle {
        tx,
        wake: Arc::clone(&wake),
    };
    let icmp = match open_icmp_socket() {
        Ok(socket) => {
            epoll.add(socket.as_fd(), token(TAG_ICMP, 0))?;
            Some(socket)
        }
        Err(e) => {
            log::warn!("ICMP echo through the gateway is off: cannot open a raw ICMP socket: {e}");
            None
        }
    };
    let stack = Stack {
        dataplane,
        zones,
        upstreams,
        runtime,
        handle: handle.clone(),
        epoll,
        wake,
        rx,
        origin: Instant::now(),
        nets: HashMap::new(),
        flows: Vec::new(),
        free_flows: Vec::new(),
        by_key: HashMap::new(),
        failed: HashMap::new(),
        published: Vec::new(),
        udp_idle,
        icmp,
        echo: HashMap::new(),
        echo_by_key: HashMap::new(),
        next_echo_ident: 1,
        rotation: 0,
        last_expire: Instant::now(),
        frame: vec![0u8; 65_536 + 64],
        buf: vec![0u8; 65_536],
    };
    std::thread::Builder::new()
        .name("weft-stack".into())
        .spawn(move || stack.run())
        .map_err(StackError::Thread)?;
    Ok(handle)
}

fn open_icmp_socket() -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::ICMPV4),
    )?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The link between one network's smoltcp interface and the data plane: IP packets in,
/// IP packets out (each with room for the virtio_net_hdr and Ethernet header in front).
struct Link {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    mtu: usize,
}

/// Room in front of every packet smoltcp sends: virtio_net_hdr + Ethernet header.
const HEADROOM: usize = VNET_HDR_LEN + 14;

struct RxPacket(Vec<u8>);
struct TxPacket<'a>(&'a mut Vec<Vec<u8>>);

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
struct NetStack {
    iface: Interface,
    link: Link,
    sockets: SocketSet<'static>,
    gateway: GatewayConfig,
    subnet: (Ipv4Addr, u8),
    /// Container address -> (switch port, MAC), learned from the frames they send and from
    /// published ports' targets.
    neighbors: HashMap<Ipv4Addr, (PortId, MacAddr)>,
    dns_listeners: Vec<SocketHandle>,
    dns_conns: Vec<DnsConn>,
    next_dns_conn: u64,
    next_ephemeral: u16,
    /// Gateway source port -> (published socket index, client) for published UDP ports.
    udp_clients: HashMap<u16, UdpClient>,
}

#[derive(Debug, Clone, Copy)]
struct UdpClient {
    published: usize,
    client: SocketAddr,
    last_active: Instant,
}

struct DnsConn {
    handle: SocketHandle,
    /// Unique per network, so that a late answer never reaches a later connection that
    /// got the same handle.
    id: u64,
    /// When a query or answer last moved (idle connections are closed).
    last_active: Instant,
    inbuf: Vec<u8>,
    /// A forwarded query is out, or its answer waits for room in the send buffer; answers
    /// go back in order (RFC 7766 §6.2.1.1 allows any order, one at a time keeps it simple).
    waiting: bool,
    /// An answer (with its length prefix) the send buffer had no room for yet.
    pending: Option<Vec<u8>>,
}

impl NetStack {
    fn new(
        gateway: GatewayConfig,
        subnet: (Ipv4Addr, u8),
        mtu: usize,
        now: smoltcp::time::Instant,
    ) -> NetStack {
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
        let mut net = NetStack {
            iface,
            link,
            sockets: SocketSet::new(Vec::new()),
            gateway,
            subnet,
            neighbors: HashMap::new(),
            dns_listeners: Vec::new(),
            dns_conns: Vec::new(),
            next_dns_conn: 0,
            next_ephemeral: EPHEMERAL_FIRST,
            udp_clients: HashMap::new(),
        };
        for _ in 0..DNS_LISTENERS {
            net.add_dns_listener();
        }
        net
    }

    fn add_dns_listener(&mut self) {
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

    fn ephemeral_port(&mut self) -> u16 {
        for _ in 0..=(u16::MAX - EPHEMERAL_FIRST) {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            if !self.udp_clients.contains_key(&port) {
                return port;
            }
        }
        self.next_ephemeral
    }

    fn inside(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.subnet.1))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.subnet.0) & mask
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// A container's connection to an outside address.
    Out,
    /// A connection to a published host port, into a container.
    In,
}

enum FlowState {
    /// The host socket's `connect()` is under way; the container's SYN waits.
    Connecting {
        syn: Vec<u8>,
    },
    Open {
        handle: SocketHandle,
    },
}

struct TcpFlow {
    network: NetworkId,
    port: PortId,
    direction: Direction,
    container: SocketAddrV4,
    /// For outbound flows the outside address; for inbound the host-side client.
    outside: SocketAddr,
    host: TcpStream,
    host_local: Option<SocketAddr>,
    state: FlowState,
    readable: bool,
    writable: bool,
    host_eof: bool,
    host_shut: bool,
    failed: bool,
    /// The container side reached ESTABLISHED at some point.
    established: bool,
    created: Instant,
    last_active: Instant,
    bytes_out: u64,
    bytes_in: u64,
}

type FlowKey = (NetworkId, SocketAddrV4, SocketAddrV4);

struct EchoFlow {
    network: NetworkId,
    port: PortId,
    container_mac: MacAddr,
    container_ip: Ipv4Addr,
    ident: u16,
    outside: Ipv4Addr,
    gateway_mac: MacAddr,
    created: Instant,
    last_active: Instant,
    bytes_out: u64,
    bytes_in: u64,
}

struct PublishedEntry {
    published: Published,
}

struct Stack {
    dataplane: Arc<Dataplane>,
    zones: Zones,
    upstreams: Arc<Vec<SocketAddr>>,
    runtime: tokio::runtime::Handle,
    handle: StackHandle,
    epoll: Epoll,
    wake: Arc<EventFd>,
    rx: Receiver<StackInput>,
    origin: Instant,
    nets: HashMap<NetworkId, NetStack>,
    flows: Vec<Option<TcpFlow>>,
    free_flows: Vec<usize>,
    by_key: HashMap<FlowKey, usize>,
    /// Connections whose host `connect()` failed lately, and how (None: refused; else the
    /// ICMP code): the container's retransmitted SYNs get the same answer at once.
    failed: HashMap<FlowKey, (Option<u8>, Instant)>,
    published: Vec<Option<PublishedEntry>>,
    udp_idle: Duration,
    icmp: Option<socket2::Socket>,
    /// NAT identifier -> echo flow.
    echo: HashMap<u16, EchoFlow>,
    /// (network, container, identifier, outside) -> NAT identifier.
    echo_by_key: HashMap<(NetworkId, Ipv4Addr, u16, Ipv4Addr), u16>,
    next_echo_ident: u16,
    rotation: usize,
    last_expire: Instant,
    /// Scratch for frames the stack writes by hand.
    frame: Vec<u8>,
    /// Scratch for host datagrams.
    buf: Vec<u8>,
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
}

fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

impl Stack {
    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.origin.elapsed().as_micros() as i64)
    }

    fn run(mut self) {
        let mut ready = Vec::new();
        let mut busy = false;
        loop {
            let timeout = if busy { 0 } else { self.poll_timeout_ms() };
            if self.epoll.wait(&mut ready, 256, timeout).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
            for &t in &ready {
                self.on_event(t);
            }
            if !self.drain_inputs() {
                log::debug!("gateway stack: the daemon is gone, stopping");
                return;
            }
            if self.last_expire.elapsed() >= Duration::from_secs(1) {
                self.expire();
                self.last_expire = Instant::now();
            }
            busy = self.pump();
        }
    }

    /// How long the loop may sleep: until smoltcp's next timer (retransmission, delayed
    /// ACK), at most a second (expiry runs then).
    fn poll_timeout_ms(&mut self) -> i32 {
        let now = self.now();
        let mut ms = 1000i32;
        for net in self.nets.values_mut() {
            if let Some(d) = net.iface.poll_delay(now, &net.sockets) {
                ms = ms.min(d.total_millis().min(1000) as i32);
            }
        }
        ms
    }

    fn on_event(&mut self, t: u64) {
        let index = (t & 0xffff_ffff) as usize;
        match t >> TAG_SHIFT {
            TAG_WAKE => self.wake.drain(),
            TAG_FLOW => self.on_flow_event(index),
            TAG_PUBLISHED => self.on_published(index),
            TAG_ICMP => self.on_icmp(),
            _ => {}
        }
    }

    /// Handles queued frames and commands; false once every sender is gone.
    fn drain_inputs(&mut self) -> bool {
        for _ in 0..STACK_QUEUE {
            match self.rx.try_recv() {
                Ok(input) => self.on_input(input),
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn on_input(&mut self, input: StackInput) {
        match input {
            StackInput::Frame {
                port,
                gateway,
                frame,
            } => self.on_frame(port, gateway, frame),
            StackInput::Publish(p) => self.publish(p),
            StackInput::Unpublish { local, tcp } => self.unpublish(local, tcp),
            StackInput::ForgetNetwork(network) => {
                self.forget(|f| f.network == network, Some(network))
            }
            StackInput::ForgetPort(port) => self.forget(|f| f.port == port, None),
            StackInput::Flows(reply) => {
                let _ = reply.send(self.flow_rows());
            }
            StackInput::DnsAnswer {
                network,
                conn,
                id,
                answer,
            } => self.dns_answer(network, conn, id, &answer),
        }
    }

    fn record_drop(&self, port: PortId, reason: DropReason) {
        self.dataplane.with_bridge(|b| b.record_drop(port, reason));
    }

    /// The network's stack, created on first use.
    fn net_for(&mut self, network: NetworkId, gateway: GatewayConfig) -> Option<&mut NetStack> {
        if !self.nets.contains_key(&network) {
            let subnet = {
                let zones = self.zones.read().unwrap_or_else(|p| p.into_inner());
                zones.get(&network)?.subnet
            };
            let mtu = self.dataplane.with_bridge(|b| {
                b.network_config(network)
                    .map_or(1500, |c| usize::from(c.mtu))
            });
            let now = self.now();
            self.nets
                .insert(network, NetStack::new(gateway, subnet, mtu, now));
        }
        self.nets.get_mut(&network)
    }

    fn on_frame(&mut self, port: PortId, gateway: GatewayConfig, frame: Vec<u8>) {
        let Some(network) = self.dataplane.with_bridge(|b| b.port_network(port)) else {
            return;
        };
        if frame.len() < 14 + 20 {
            return self.record_drop(port, DropReason::Malformed);
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
            return self.record_drop(port, DropReason::Malformed);
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let src_mac = MacAddr([frame[6], frame[7], frame[8], frame[9], frame[10], frame[11]]);
        let protocol = ip[9];
        let nat_allowed = gateway::nat_allowed(&self.zones, network, dst);
        let Some(net) = self.net_for(network, gateway) else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        if !net.inside(src) {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        }
        net.neighbors.insert(src, (port, src_mac));
        match protocol {
            1 => self.outbound_echo(network, port, gateway, &frame, nat_allowed),
            17 => self.published_udp_reply(network, port, &frame[14..14 + total], ihl),
            6 => {
                let tcp = &frame[14 + ihl..14 + total];
                if tcp.len() < 20 {
                    return self.record_drop(port, DropReason::Malformed);
                }
                let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
                let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
                let flags = tcp[13];
                let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
                let packet = frame[14..14 + total].to_vec();
                if dst == gateway.ip {
                    // DNS over TCP, or a container answering an inbound (published)
                    // connection: the interface's own sockets take it.
                    let net = self.nets.get_mut(&network).expect("created above");
                    net.link.rx.push_back(packet);
                    return;
                }
                let key = (
                    network,
                    SocketAddrV4::new(src, sport),
                    SocketAddrV4::new(dst, dport),
                );
                if syn && !ack {
                    self.outbound_syn(key, port, gateway, packet, nat_allowed);
                } else if self.by_key.contains_key(&key) || nat_allowed {
                    // Part of a connection (or a stray segment smoltcp answers with RST).
                    let net = self.nets.get_mut(&network).expect("created above");
                    net.link.rx.push_back(packet);
                } else {
                    self.record_drop(port, DropReason::GatewayUnsupported);
                }
            }
            _ => self.record_drop(port, DropReason::GatewayUnsupported),
        }
    }

    /// Sends an ICMP destination unreachable for `quoted_from` (an IP packet) back to the
    /// container that sent it, from the gateway's address.
    fn unreachable(&mut self, network: NetworkId, port: PortId, packet: &[u8], code: u8) {
        let Some(net) = self.nets.get(&network) else {
            return;
        };
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        let quoted = &packet[..(ihl + 8).min(packet.len())];
        let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let Some(&(_, mac)) = net.neighbors.get(&src) else {
            return;
        };
        if let Some(len) = write_icmp_unreachable(
            net.gateway.mac,
            net.gateway.ip,
            (mac, src),
            code,
            quoted,
            &mut self.frame,
        ) {
            self.dataplane.inject(port, &self.frame[..len]);
        }
    }

    fn outbound_syn(
        &mut self,
        key: FlowKey,
        port: PortId,
        _gateway: GatewayConfig,
        syn: Vec<u8>,
        nat_allowed: bool,
    ) {
        let (network, container, outside) = key;
        if !nat_allowed {
            // No route out of this network (`--nat none`, `--internal`): say so at once, as a
            // router without a route does.
            self.record_drop(port, DropReason::GatewayUnsupported);
            return self.unreachable(network, port, &syn, ICMP_NET_UNREACHABLE);
        }
        if let Some(&(answer, _)) = self.failed.get(&key) {
            return self.refuse_syn(network, port, syn, answer);
        }
        if let Some(&index) = self.by_key.get(&key) {
            let stale = match self.flows[index].as_ref().map(|f| &f.state) {
                Some(FlowState::Open { handle }) => {
                    let net = self.nets.get_mut(&network).expect("flow's network");
                    let state = net.sockets.get::<tcp::Socket>(*handle).state();
                    matches!(state, tcp::State::TimeWait | tcp::State::Closed)
                }
                _ => false,
            };
            if !stale {
                // A retransmitted SYN: the connect is under way, or smoltcp answers it.
                if let Some(FlowState::Open { .. }) = self.flows[index].as_ref().map(|f| &f.state) {
                    let net = self.nets.get_mut(&network).expect("flow's network");
                    net.link.rx.push_back(syn);
                }
                return;
            }
            self.remove_flow(index);
        }
        if self.by_key.len() >= MAX_TCP_FLOWS {
            return self.record_drop(port, DropReason::GatewayBusy);
        }
        let socket = match socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        ) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("no host socket for {container} -> {outside}: {e}");
                return self.record_drop(port, DropReason::GatewayBusy);
            }
        };
        let _ = socket.set_nonblocking(true);
        let _ = socket.set_tcp_nodelay(true);
        match socket.connect(&SocketAddr::V4(outside).into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                let code = unreachable_code(&e);
                return self.unreachable(network, port, &syn, code);
            }
        }
        let host: TcpStream = socket.into();
        let now = Instant::now();
        let flow = TcpFlow {
            network,
            port,
            direction: Direction::Out,
            container,
            outside: SocketAddr::V4(outside),
            host_local: None,
            host,
            state: FlowState::Connecting { syn },
            readable: false,
            writable: false,
            host_eof: false,
            host_shut: false,
            failed: false,
            established: false,
            created: now,
            last_active: now,
            bytes_out: 0,
            bytes_in: 0,
        };
        let index = self.insert_flow(flow);
        self.by_key.insert(key, index);
    }

    /// Answers a SYN whose connection the outside refused (`None`: RST, which smoltcp sends
    /// for a SYN no listener takes) or could not be reached (ICMP code).
    fn refuse_syn(&mut self, network: NetworkId, port: PortId, syn: Vec<u8>, answer: Option<u8>) {
        match answer {
            None => {
                if let Some(net) = self.nets.get_mut(&network) {
                    net.link.rx.push_back(syn);
                }
            }
            Some(code) => self.unreachable(network, port, &syn, code),
        }
    }

    fn insert_flow(&mut self, flow: TcpFlow) -> usize {
        let index = match self.free_flows.pop() {
            Some(i) => i,
            None => {
                self.flows.push(None);
                self.flows.len() - 1
            }
        };
        if let Err(e) = self
            .epoll
            .add_edge(flow.host.as_fd(), token(TAG_FLOW, index))
        {
            log::warn!("cannot watch a host socket: {e}");
        }
        self.flows[index] = Some(flow);
        index
    }

    fn remove_flow(&mut self, index: usize) {
        let Some(flow) = self.flows.get_mut(index).and_then(Option::take) else {
            return;
        };
        let _ = self.epoll.delete(flow.host.as_fd());
        if let FlowState::Open { handle } = flow.state {
            if let Some(net) = self.nets.get_mut(&flow.network) {
                net.sockets.remove(handle);
            }
        }
        if flow.established && (flow.failed || !(flow.host_eof && flow.host_shut)) {
            // The container reset or vanished mid-connection: reset the outside too rather
            // than pretend an orderly close. (A connection the container never accepted is
            // just closed, as Docker's userland proxy does.)
            let _ = socket2::SockRef::from(&flow.host).set_linger(Some(Duration::ZERO));
        }
        if flow.direction == Direction::Out {
            if let (SocketAddr::V4(outside), container) = (flow.outside, flow.container) {
                self.by_key.remove(&(flow.network, container, outside));
            }
        }
        self.free_flows.push(index);
    }

    fn on_flow_event(&mut self, index: usize) {
        let Some(flow) = self.flows.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        flow.readable = true;
        flow.writable = true;
        if !matches!(flow.state, FlowState::Connecting { .. }) {
            return;
        }
        let error = match flow.host.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match flow.host.peer_addr() {
                Ok(_) => None,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => Some(e),
            },
        };
        let FlowState::Connecting { syn } =
            std::mem::replace(&mut flow.state, FlowState::Connecting { syn: Vec::new() })
        else {
            return;
        };
        let (network, port, outside) = (flow.network, flow.port, flow.outside);
        let container = flow.container;
        flow.host_local = flow.host.local_addr().ok();
        let outside_v4 = match (error, outside) {
            (None, SocketAddr::V4(a)) => a,
            (error, _) => {
                let refused = error
                    .as_ref()
                    .is_some_and(|e| e.raw_os_error() == Some(libc::ECONNREFUSED));
                log::debug!("connect to {outside} failed: {error:?}");
                self.remove_flow(index);
                let answer = if refused {
                    None
                } else {
                    Some(
                        error
                            .as_ref()
                            .map_or(ICMP_HOST_UNREACHABLE, unreachable_code),
                    )
                };
                if let Some(outside) = v4(outside) {
                    self.failed
                        .insert((network, container, outside), (answer, Instant::now()));
                }
                self.refuse_syn(network, port, syn, answer);
                return;
            }
        };
        let mut socket = new_tcp_socket(TCP_BUFFER);
        let listen = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*outside_v4.ip())),
            port: outside_v4.port(),
        };
        let Some(net) = self.nets.get_mut(&network) else {
            return self.remove_flow(index);
        };
        if socket.listen(listen).is_err() {
            return self.remove_flow(index);
        }
        let handle = net.sockets.add(socket);
        if let Some(flow) = self.flows[index].as_mut() {
            flow.state = FlowState::Open { handle };
        }
        // The held SYN goes in right away, so this listener takes exactly this connection.
        net.link.rx.push_back(syn);
        poll_net(net, self.origin, &self.dataplane);
    }

    /// Moves data between smoltcp and host sockets and sends what smoltcp has; returns
    /// whether anything moved (then the loop polls again without sleeping).
    fn pump(&mut self) -> bool {
        let mut moved = false;
        for net in self.nets.values_mut() {
            moved |= poll_net(net, self.origin, &self.dataplane);
        }
        let now = Instant::now();
        let mut done = Vec::new();
        for (index, slot) in self.flows.iter_mut().enumerate() {
            let Some(flow) = slot.as_mut() else { continue };
            let FlowState::Open { handle } = flow.state else {
                continue;
            };
            let Some(net) = self.nets.get_mut(&flow.network) else {
                done.push(index);
                continue;
            };
            let socket = net.sockets.get_mut::<tcp::Socket>(handle);
            flow.established |= socket.state() == tcp::State::Established;
            if service_flow(flow, socket) {
                flow.last_active = now;
                moved = true;
            }
        }
        self.service_dns();
        for net in self.nets.values_mut() {
            moved |= poll_net(net, self.origin, &self.dataplane);
        }
        for (index, slot) in self.flows.iter().enumerate() {
            let Some(flow) = slot.as_ref() else { continue };
            let FlowState::Open { handle } = flow.state else {
                continue;
            };
            let Some(net) = self.nets.get(&flow.network) else {
                continue;
            };
            let state = net.sockets.get::<tcp::Socket>(handle).state();
            if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
                done.push(index);
            }
        }
        for index in done {
            self.remove_flow(index);
        }
        moved
    }

    fn on_published(&mut self, index: usize) {
        let Some(entry) = self.published.get(index).and_then(Option::as_ref) else {
            return;
        };
        let p = &entry.published;
        let (network, target, cport) = (p.network, p.target, p.container_port);
        match &p.socket {
            PublishedSocket::Tcp(listener) => {
                let mut accepted = Vec::new();
                for _ in 0..64 {
                    match listener.accept() {
                        Ok((stream, peer)) => accepted.push((stream, peer)),
                        Err(_) => break,
                    }
                }
                for (stream, peer) in accepted {
                    self.inbound_tcp(network, target, cport, stream, peer);
                }
            }
            PublishedSocket::Udp(_) => self.inbound_udp(index),
        }
    }

    fn inbound_tcp(
        &mut self,
        network: NetworkId,
        target: Target,
        cport: u16,
        stream: TcpStream,
        peer: SocketAddr,
    ) {
        if self.flows.len() - self.free_flows.len() >= MAX_TCP_FLOWS {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            return;
        }
        let _ = stream.set_nonblocking(true);
        let _ = stream.set_nodelay(true);
        let now_s = self.now();
        let net = self.nets.entry(network).or_insert_with(|| {
            NetStack::new(
                target.gateway,
                target.subnet,
                usize::from(target.mtu),
                now_s,
            )
        });
        net.neighbors.insert(target.ip, (target.port, target.mac));
        let local_port = net.ephemeral_port();
        let mut socket = new_tcp_socket(TCP_BUFFER);
        let remote = IpEndpoint::new(IpAddress::Ipv4(target.ip), cport);
        let local = IpEndpoint::new(IpAddress::Ipv4(target.gateway.ip), local_port);
        if socket.connect(net.iface.context(), remote, local).is_err() {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            return;
        }
        let handle = net.sockets.add(socket);
        let now = Instant::now();
        let flow = TcpFlow {
            network,
            port: target.port,
            direction: Direction::In,
            container: SocketAddrV4::new(target.ip, cport),
            outside: peer,
            host_local: stream.local_addr().ok(),
            host: stream,
            state: FlowState::Open { handle },
            readable: true,
            writable: true,
            host_eof: false,
            host_shut: false,
            failed: false,
            established: false,
            created: now,
            last_active: now,
            bytes_out: 0,
            bytes_in: 0,
        };
        self.insert_flow(flow);
    }

    /// Datagrams to a published UDP port: each client gets its own gateway source port, so
    /// the container's answers find their way back.
    fn inbound_udp(&mut self, index: usize) {
        let now_s = self.now();
        let now = Instant::now();
        let Some(entry) = self.published.get(index).and_then(Option::as_ref) else {
            return;
        };
        let p = &entry.published;
        let PublishedSocket::Udp(socket) = &p.socket else {
            return;
        };
        let target = p.target;
        let net = self.nets.entry(p.network).or_insert_with(|| {
            NetStack::new(
                target.gateway,
                target.subnet,
                usize::from(target.mtu),
                now_s,
            )
        });
        net.neighbors.insert(target.ip, (target.port, target.mac));
        for _ in 0..64 {
            let (n, client) = match socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(_) => break,
            };
            let existing = net
                .udp_clients
                .iter()
                .find(|(_, c)| c.published == index && c.client == client)
                .map(|(&port, _)| port);
            let gw_port = match existing {
                Some(port) => port,
                None => {
                    let port = net.ephemeral_port();
                    net.udp_clients.insert(
                        port,
                        UdpClient {
                            published: index,
                            client,
                            last_active: now,
                        },
                    );
                    port
                }
            };
            if let Some(c) = net.udp_clients.get_mut(&gw_port) {
                c.last_active = now;
            }
            let src = (target.gateway.mac, target.gateway.ip, gw_port);
            let dst = (target.mac, target.ip, p.container_port);
            if let Some(len) = write_udp(src, dst, &self.buf[..n], &mut self.frame) {
                self.dataplane.inject(target.port, &self.frame[..len]);
            }
        }
    }

    /// A container's datagram to the gateway's address: an answer to a published UDP port's
    /// client.
    fn published_udp_reply(&mut self, network: NetworkId, port: PortId, ip: &[u8], ihl: usize) {
        let Some(udp) = ip.get(ihl..).filter(|u| u.len() >= 8) else {
            return self.record_drop(port, DropReason::Malformed);
        };
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let Some(payload) = udp.get(8..udp_len.max(8)) else {
            return self.record_drop(port, DropReason::Malformed);
        };
        let client = self
            .nets
            .get_mut(&network)
            .and_then(|n| n.udp_clients.get_mut(&dport))
            .map(|c| {
                c.last_active = Instant::now();
                *c
            });
        let Some(c) = client else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        if let Some(Some(entry)) = self.published.get(c.published) {
            if let PublishedSocket::Udp(s) = &entry.published.socket {
                let _ = s.send_to(payload, c.client);
            }
        }
    }

    fn publish(&mut self, p: Published) {
        let index = match self.published.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.published.push(None);
                self.published.len() - 1
            }
        };
        let fd = match &p.socket {
            PublishedSocket::Tcp(l) => {
                let _ = l.set_nonblocking(true);
                l.as_fd()
            }
            PublishedSocket::Udp(u) => {
                let _ = u.set_nonblocking(true);
                u.as_fd()
            }
        };
        if let Err(e) = self.epoll.add(fd, token(TAG_PUBLISHED, index)) {
            log::warn!("cannot watch a published socket: {e}");
            return;
        }
        self.published[index] = Some(PublishedEntry { published: p });
    }

    fn unpublish(&mut self, local: SocketAddr, tcp: bool) {
        for (index, slot) in self.published.iter_mut().enumerate() {
            let matches = slot.as_ref().is_some_and(|e| {
                e.published.socket.local() == Some(local)
                    && matches!(e.published.socket, PublishedSocket::Tcp(_)) == tcp
            });
            if matches {
                if let Some(entry) = slot.take() {
                    let fd = match &entry.published.socket {
                        PublishedSocket::Tcp(l) => l.as_fd(),
                        PublishedSocket::Udp(u) => u.as_fd(),
                    };
                    let _ = self.epoll.delete(fd);
                    if let Some(net) = self.nets.get_mut(&entry.published.network) {
                        net.udp_clients.retain(|_, c| c.published != index);
                    }
                }
            }
        }
    }

    fn forget(&mut self, pred: impl Fn(&TcpFlow) -> bool, network: Option<NetworkId>) {
        let doomed: Vec<usize> = self
            .flows
            .iter()
            .enumerate()
            .filter(|(_, f)| f.as_ref().is_some_and(&pred))
            .map(|(i, _)| i)
            .collect();
        for index in doomed {
            if let Some(flow) = self.flows[index].as_mut() {
                flow.failed = true;
            }
            self.remove_flow(index);
        }
        if let Some(network) = network {
            self.nets.remove(&network);
            self.echo.retain(|_, e| e.network != network);
            self.echo_by_key.retain(|k, _| k.0 != network);
        }
    }

    // ----- ICMP echo ---------------------------------------------------------------------

    fn outbound_echo(
        &mut self,
        network: NetworkId,
        port: PortId,
        gateway: GatewayConfig,
        frame: &[u8],
        nat_allowed: bool,
    ) {
        let Some(echo) = echo_request_via_gateway(frame, &gateway) else {
            return self.record_drop(port, DropReason::Malformed);
        };
        if !nat_allowed {
            self.record_drop(port, DropReason::GatewayUnsupported);
            return self.unreachable(network, port, &frame[14..], ICMP_NET_UNREACHABLE);
        }
        let Some(socket) = self.icmp.as_ref() else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        let key = (network, echo.src_ip, echo.ident, echo.dst_ip);
        let now = Instant::now();
        let nat_ident = match self.echo_by_key.get(&key) {
            Some(&id) => id,
            None => {
                if self.echo.len() >= MAX_ECHO_FLOWS {
                    return self.record_drop(port, DropReason::GatewayBusy);
                }
                let mut id = self.next_echo_ident;
                while self.echo.contains_key(&id) {
                    id = id.wrapping_add(1);
                }
                self.next_echo_ident = id.wrapping_add(1);
                self.echo.insert(
                    id,
                    EchoFlow {
                        network,
                        port,
                        container_mac: echo.src_mac,
                        container_ip: echo.src_ip,
                        ident: echo.ident,
                        outside: echo.dst_ip,
                        gateway_mac: gateway.mac,
                        created: now,
                        last_active: now,
                        bytes_out: 0,
                        bytes_in: 0,
                    },
                );
                self.echo_by_key.insert(key, id);
                id
            }
        };
        let mut message = frame[echo.icmp.clone()].to_vec();
        set_icmp_echo_ident(&mut message, nat_ident);
        let to = SocketAddr::V4(SocketAddrV4::new(echo.dst_ip, 0));
        match socket.send_to(&message, &to.into()) {
            Ok(_) => {
                if let Some(f) = self.echo.get_mut(&nat_ident) {
                    f.bytes_out += message.len() as u64;
                    f.last_active = now;
                }
            }
            Err(e) => {
                log::debug!("echo to {} not sent: {e}", echo.dst_ip);
                self.unreachable(network, port, &frame[14..], unreachable_code(&e));
            }
        }
    }

    fn on_icmp(&mut self) {
        let Some(socket) = self.icmp.as_ref() else {
            return;
        };
        for _ in 0..64 {
            let n = match (&*socket).read(&mut self.buf) {
                Ok(n) => n,
                Err(_) => break,
            };
            let packet = &mut self.buf[..n];
            if n < 20 {
                continue;
            }
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            let Some(icmp) = packet.get_mut(ihl..) else {
                continue;
            };
            let Some((0, nat_ident)) = icmp_echo_ident(icmp) else {
                continue;
            };
            let Some(flow) = self.echo.get_mut(&nat_ident) else {
                continue;
            };
            if flow.outside != from {
                continue;
            }
            set_icmp_echo_ident(icmp, flow.ident);
            flow.bytes_in += icmp.len() as u64;
            flow.last_active = Instant::now();
            if let Some(len) = write_icmp_from(
                flow.gateway_mac,
                from,
                (flow.container_mac, flow.container_ip),
                icmp,
                &mut self.frame,
            ) {
                self.dataplane.inject(flow.port, &self.frame[..len]);
            }
        }
    }

    // ----- DNS over TCP ------------------------------------------------------------------

    /// Serves DNS over TCP (RFC 7766) at every gateway address: each message is preceded by
    /// its two-octet length (RFC 1035 §4.2.2).
    fn service_dns(&mut self) {
        let networks: Vec<NetworkId> = self.nets.keys().copied().collect();
        for network in networks {
            let net = self.nets.get_mut(&network).expect("listed");
            // Listeners that took a connection become connections; new listeners replace them.
            let mut taken = Vec::new();
            net.dns_listeners.retain(|&h| {
                let active = net.sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen;
                if active {
                    taken.push(h);
                }
                !active
            });
            let now = Instant::now();
            for handle in taken {
                net.next_dns_conn += 1;
                net.dns_conns.push(DnsConn {
                    handle,
                    id: net.next_dns_conn,
                    last_active: now,
                    inbuf: Vec::new(),
                    waiting: false,
                    pending: None,
                });
            }
            let mut queries = Vec::new();
            net.dns_conns.retain_mut(|conn| {
                let socket = net.sockets.get_mut::<tcp::Socket>(conn.handle);
                if conn.pending.is_some() && send_dns_answer(socket, &mut conn.pending) {
                    conn.waiting = false;
                    conn.last_active = now;
                }
                let before = conn.inbuf.len();
                while socket.can_recv() && conn.inbuf.len() < DNS_TCP_BUFFER {
                    let room = DNS_TCP_BUFFER - conn.inbuf.len();
                    let _ = socket.recv(|b| {
                        let n = b.len().min(room);
                        conn.inbuf.extend_from_slice(&b[..n]);
                        (n, ())
                    });
                }
                if conn.inbuf.len() > before {
                    conn.last_active = now;
                }
                if !conn.waiting && conn.inbuf.len() >= 2 {
                    let len = usize::from(u16::from_be_bytes([conn.inbuf[0], conn.inbuf[1]]));
                    if conn.inbuf.len() >= 2 + len {
                        let query: Vec<u8> = conn.inbuf.drain(..2 + len).skip(2).collect();
                        queries.push((conn.handle, conn.id, query));
                        conn.waiting = true;
                    }
                }
                let state = socket.state();
                if state == tcp::State::CloseWait && !conn.waiting {
                    socket.close();
                }
                let finished = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
                if finished {
                    net.sockets.remove(conn.handle);
                    return false;
                }
                // RFC 7766 §6.2.3: a server closes idle connections; one whose forwarded
                // query never came back (its answer lost) is closed too. The socket stays
                // until the next pass, so that smoltcp sends the reset first.
                let idle = now.saturating_duration_since(conn.last_active);
                if (!conn.waiting && idle > DNS_IDLE) || idle > DNS_WAIT_MAX {
                    socket.abort();
                }
                true
            });
            // A bounded number of DNS connections per network (each holds two 66 KiB
            // buffers): listeners are kept only while the bound leaves room, so past it new
            // connections are refused until one closes.
            while net.dns_listeners.len() < DNS_LISTENERS
                && net.dns_conns.len() + net.dns_listeners.len() < MAX_DNS_CONNS
            {
                net.add_dns_listener();
            }
            for (handle, id, query) in queries {
                self.rotation = self.rotation.wrapping_add(1);
                match gateway::answer_query(&self.zones, Some(network), &query, self.rotation) {
                    Outcome::Reply(answer) => self.dns_answer(network, handle, id, &answer),
                    Outcome::Forward => {
                        let upstreams = Arc::clone(&self.upstreams);
                        let stack = self.handle.clone();
                        self.runtime.spawn(async move {
                            let answer = dns::forward(
                                &query,
                                &upstreams,
                                gateway::UPSTREAM_TIMEOUT,
                                dns::Transport::Tcp,
                            )
                            .await
                            .or_else(|| dns::servfail(&query))
                            .unwrap_or_default();
                            stack.try_send(StackInput::DnsAnswer {
                                network,
                                conn: handle,
                                id,
                                answer,
                            });
                        });
                    }
                    Outcome::Drop(_) => {
                        // Garbage on a stream: close it (RFC 7766 §6.2.2 leaves it to us).
                        if let Some(net) = self.nets.get_mut(&network) {
                            net.sockets.get_mut::<tcp::Socket>(handle).abort();
                        }
                    }
                }
            }
        }
    }

    fn dns_answer(&mut self, network: NetworkId, handle: SocketHandle, id: u64, answer: &[u8]) {
        let Some(net) = self.nets.get_mut(&network) else {
            return;
        };
        // Only the connection that asked, and only while it waits for this answer.
        let Some(conn) = net
            .dns_conns
            .iter_mut()
            .find(|c| c.handle == handle && c.id == id && c.waiting && c.pending.is_none())
        else {
            return;
        };
        conn.last_active = Instant::now();
        let socket = net.sockets.get_mut::<tcp::Socket>(handle);
        if answer.is_empty() || answer.len() > usize::from(u16::MAX) {
            conn.waiting = false;
            socket.abort();
            return;
        }
        // RFC 1035 §4.2.2: the message preceded by its length. An answer that does not fit
        // behind the previous one still being acknowledged waits on the connection (and
        // the next query with it) until it does.
        let mut message = Vec::with_capacity(2 + answer.len());
        message.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        message.extend_from_slice(answer);
        conn.pending = Some(message);
        if send_dns_answer(socket, &mut conn.pending) {
            conn.waiting = false;
        }
    }

    // ----- bookkeeping -------------------------------------------------------------------

    fn expire(&mut self) {
        let now = Instant::now();
        self.failed
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < FAILED_CONNECT_MEMORY);
        let dead: Vec<u16> = self
            .echo
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_active) >= ECHO_IDLE)
            .map(|(&id, _)| id)
            .collect();
        for id in dead {
            if let Some(f) = self.echo.remove(&id) {
                self.echo_by_key
                    .remove(&(f.network, f.container_ip, f.ident, f.outside));
            }
        }
        let idle = self.udp_idle;
        for net in self.nets.values_mut() {
            net.udp_clients
                .retain(|_, c| now.saturating_duration_since(c.last_active) < idle);
        }
    }

    fn flow_rows(&self) -> Vec<NatRow> {
        let now = Instant::now();
        let mut rows = Vec::new();
        for flow in self.flows.iter().flatten() {
            rows.push(NatRow {
                protocol: "tcp".into(),
                direction: match flow.direction {
                    Direction::Out => "out".into(),
                    Direction::In => "in".into(),
                },
                network: String::new(),
                network_id: flow.network.0,
                container: flow.container.to_string(),
                outside: flow.outside.to_string(),
                host_socket: flow
                    .host_local
                    .map_or_else(|| "connecting".into(), |a| a.to_string()),
                bytes_out: flow.bytes_out,
                bytes_in: flow.bytes_in,
                age_seconds: now.saturating_duration_since(flow.created).as_secs_f64(),
                idle_seconds: now
                    .saturating_duration_since(flow.last_active)
                    .as_secs_f64(),
            });
        }
        for (&id, f) in &self.echo {
            rows.push(NatRow {
                protocol: "icmp".into(),
                direction: "out".into(),
                network: String::new(),
                network_id: f.network.0,
                container: format!("{} id {}", f.container_ip, f.ident),
                outside: f.outside.to_string(),
                host_socket: format!("raw icmp id {id}"),
                bytes_out: f.bytes_out,
                bytes_in: f.bytes_in,
                age_seconds: now.saturating_duration_since(f.created).as_secs_f64(),
                idle_seconds: now.saturating_duration_since(f.last_active).as_secs_f64(),
            });
        }
        rows
    }
}

/// A proxied connection's socket: `buffer` octets each way, no Nagle (the host side already
/// coalesces), aborted when the peer stops acknowledging for [`TCP_TIMEOUT`].
fn new_tcp_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; buffer]),
        tcp::SocketBuffer::new(vec![0u8; buffer]),
    );
    socket.set_nagle_enabled(false);
    socket.set_timeout(Some(TCP_TIMEOUT.into()));
    socket
}

/// The ICMP code that tells a container what a failed host `connect()`/`send()` met.
fn unreachable_code(e: &std::io::Error) -> u8 {
    match e.raw_os_error() {
        Some(libc::ENETUNREACH) => ICMP_NET_UNREACHABLE,
        _ => ICMP_HOST_UNREACHABLE,
    }
}

/// Runs one network's interface until it has nothing more to receive or send, and writes
/// what it sent to the containers. Returns whether anything was sent.
fn poll_net(net: &mut NetStack, origin: Instant, dataplane: &Dataplane) -> bool {
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
        let ip = &p[HEADROOM..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let ports = ip
            .get(ihl..ihl + 4)
            .map_or([0; 4], |t| [t[0], t[1], t[2], t[3]]);
        ([ip[16], ip[17], ip[18], ip[19]], ip[9], ports)
    });
    let mut coalescer = Coalescer::new(HEADROOM);
    let mut spare = Vec::new();
    let finished: Vec<Vec<u8>> = packets
        .into_iter()
        .filter_map(|p| coalescer.push(p, &mut spare))
        .collect();
    for mut packet in finished.into_iter().chain(coalescer.finish()) {
        let ip = &packet[HEADROOM..];
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let Some(&(port, mac)) = net.neighbors.get(&dst) else {
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

/// Moves data between one connection's smoltcp socket and its host socket, both ways, and
/// passes closes on. Returns whether any byte moved.
fn service_flow(flow: &mut TcpFlow, socket: &mut tcp::Socket) -> bool {
    let mut moved = false;
    // Container -> outside.
    while flow.writable && socket.can_recv() {
        let host = &flow.host;
        let r = socket.recv(|buf| match (&*host).write(buf) {
            Ok(n) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        });
        match r {
            Ok(Ok(n)) => {
                flow.bytes_out += n as u64;
                moved = true;
            }
            Ok(Err(e)) if would_block(&e) => flow.writable = false,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => {
                flow.failed = true;
                socket.abort();
                return true;
            }
            Err(_) => break,
        }
    }
    // The container sent FIN and everything before it is out: pass the FIN on.
    let container_done = matches!(
        socket.state(),
        tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait
    );
    if container_done && !flow.host_shut && socket.recv_queue() == 0 {
        let _ = flow.host.shutdown(Shutdown::Write);
        flow.host_shut = true;
        moved = true;
    }
    // Outside -> container.
    while flow.readable && !flow.host_eof && socket.can_send() {
        let host = &flow.host;
        let r = socket.send(|buf| match (&*host).read(buf) {
            Ok(n) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        });
        match r {
            Ok(Ok(0)) => {
                flow.host_eof = true;
                socket.close();
                moved = true;
            }
            Ok(Ok(n)) => {
                flow.bytes_in += n as u64;
                moved = true;
            }
            Ok(Err(e)) if would_block(&e) => flow.readable = false,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => {
                flow.failed = true;
                socket.abort();
                return true;
            }
            Err(_) => break,
        }
    }
    // The outside closed while nothing could be sent yet (handshake not done): remember the
    // EOF once the socket can take it.
    moved
}

/// Queues a DNS-over-TCP answer (length prefix included) once the socket's send buffer can
/// take all of it; true when it did (and `pending` is empty again).
fn send_dns_answer(socket: &mut tcp::Socket, pending: &mut Option<Vec<u8>>) -> bool {
    let Some(message) = pending.as_ref() else {
        return true;
    };
    if socket.send_capacity() - socket.send_queue() < message.len() {
        return false;
    }
    let _ = socket.send_slice(message);
    *pending = None;
    true
}
