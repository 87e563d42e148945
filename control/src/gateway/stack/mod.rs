//! The gateway's runtime loop: one thread that terminates everything the gateway does for
//! containers beyond the switch's own answers — the TCP connections containers open through
//! their gateway (outbound proxy NAT), the connections that arrive on published host ports
//! (inbound), DNS over UDP and TCP at the gateway address, outbound UDP NAT, published UDP
//! ports, and ICMP echo to outside addresses. Tokio only runs the upstream DNS queries.
//!
//! The data plane hands it each frame with the [`GatewayTask`] the bridge decided from one
//! parse of it. Every network gets a [smoltcp] interface in "any IP" mode whose link is the
//! gateway's internal port ([`link`]) for TCP, and the frames it sends go out through
//! [`Dataplane::inject_packet`]. On the host side everything is an ordinary non-blocking
//! socket watched by one epoll instance. This is how slirp4netns (libslirp) and passt proxy
//! rootless containers' traffic; no iptables, no kernel forwarding.
//!
//! The protocol decisions are [`weft_gateway`]'s pure state machines, driven here with the
//! thread's clock: the held SYN of outbound TCP and the flow table ([`tcp`]), echo
//! identifier NAT ([`echo`]), UDP flows ([`udp_nat`]), published UDP client ports
//! ([`published`]), DNS answers ([`dns_udp`]) and DNS-over-TCP framing ([`dns_tcp`]). This
//! module is the loop and the dispatch.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use weft_gateway::echo::EchoNat;
use weft_gateway::reach::nat_may_reach;
use weft_gateway::tcp::{TcpTable, CONNECT_TIMEOUT};
use weft_gateway::Timestamp;
use weft_switch::{
    write_icmp_unreachable, DropReason, GatewayConfig, GatewayTask, MacAddr, NetworkId, PortId,
    ICMP_ADMIN_PROHIBITED, ICMP_HOST_UNREACHABLE, ICMP_NET_UNREACHABLE,
};

use crate::dataplane::{Dataplane, HandOver};
use crate::gateway::publish::PublishedSocket;
use crate::gateway::{self, Zones};
use crate::types::NatRow;
use weft_sys::{self as sys, Epoll, EventFd};

mod dns_tcp;
mod dns_udp;
mod echo;
mod link;
mod published;
mod tcp;
pub mod udp_nat;

use dns_udp::DnsClient;
use echo::EchoBack;
use link::NetworkIface;
use published::PublishedEntry;
use tcp::FlowIo;
use udp_nat::UdpNat;

/// Frames and commands that may wait for the stack thread before new frames are dropped.
pub const STACK_QUEUE: usize = 4096;

const TAG_SHIFT: u32 = 32;
const TAG_WAKE: u64 = 0;
const TAG_FLOW: u64 = 1;
const TAG_PUBLISHED: u64 = 2;
const TAG_ICMP: u64 = 3;
const TAG_UDP: u64 = 4;

fn token(tag: u64, index: usize) -> u64 {
    (tag << TAG_SHIFT) | index as u64
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
    /// A frame for the gateway, with where it came from and what to do with it.
    Frame {
        work: HandOver,
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
    /// A forwarded DNS-over-UDP query came back.
    DnsUdpAnswer {
        client: DnsClient,
        query: Vec<u8>,
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
    flows: gateway::FlowOptions,
    underlay: gateway::UnderlayPorts,
) -> Result<StackHandle, StackError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(STACK_QUEUE);
    let wake = Arc::new(EventFd::new()?);
    let epoll = Epoll::new()?;
    epoll.add(wake.fd(), token(TAG_WAKE, 0))?;
    let handle = StackHandle {
        tx,
        wake: Arc::clone(&wake),
    };
    let icmp = echo::open_icmp_socket(&epoll)?;
    let stack = StackThread {
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
        tcp: TcpTable::new(flows.limits.tcp, flows.tcp_idle, CONNECT_TIMEOUT),
        flow_io: HashMap::new(),
        published: Vec::new(),
        udp_idle: flows.udp_idle,
        icmp,
        echo: EchoNat::default(),
        udp: UdpNat::new(flows.udp_idle, flows.limits.udp),
        underlay,
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

/// The state of the `weft-stack` thread: its epoll, every network's interface, the flows and
/// the published sockets.
struct StackThread {
    dataplane: Arc<Dataplane>,
    zones: Zones,
    upstreams: Arc<Vec<SocketAddr>>,
    runtime: tokio::runtime::Handle,
    handle: StackHandle,
    epoll: Epoll,
    wake: Arc<EventFd>,
    rx: Receiver<StackInput>,
    origin: Instant,
    nets: HashMap<NetworkId, NetworkIface>,
    /// The TCP flows' protocol state (held SYNs, failed connects, counters)...
    tcp: TcpTable,
    /// ... and their sockets.
    flow_io: HashMap<weft_gateway::tcp::FlowId, FlowIo>,
    published: Vec<Option<PublishedEntry>>,
    udp_idle: Duration,
    icmp: Option<socket2::Socket>,
    echo: EchoNat<EchoBack>,
    udp: UdpNat,
    /// The host's VXLAN and gossip ports, which outbound UDP NAT refuses.
    underlay: gateway::UnderlayPorts,
    rotation: usize,
    last_expire: Instant,
    /// Scratch for frames the stack writes by hand.
    frame: Vec<u8>,
    /// Scratch for host datagrams.
    buf: Vec<u8>,
}

/// The ICMP code that tells a container what a failed host `connect()`/`send()` met.
fn unreachable_code(e: &std::io::Error) -> u8 {
    match e.raw_os_error() {
        Some(libc::ENETUNREACH) => ICMP_NET_UNREACHABLE,
        _ => ICMP_HOST_UNREACHABLE,
    }
}

impl StackThread {
    /// The thread's clock, as smoltcp takes it.
    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.origin.elapsed().as_micros() as i64)
    }

    /// The thread's clock, as the gateway's state machines take it.
    fn ts(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
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
                self.contained("handling a socket event", None, |s| s.on_event(t));
            }
            if !self.drain_inputs() {
                log::debug!("gateway stack: the daemon is gone, stopping");
                return;
            }
            if self.last_expire.elapsed() >= Duration::from_secs(1) {
                self.contained("expiring flows", None, Self::expire);
                self.last_expire = Instant::now();
            }
            busy = self
                .contained("moving bytes", None, Self::pump)
                .unwrap_or(false);
        }
    }

    /// Runs one step of the loop, containing a panic in it: a bug reached by what one
    /// container sent must not stop the gateway for everyone. The panic is logged with what
    /// was being done, counted as `gateway_fault` on the port when one is known, and that
    /// work is dropped; the loop goes on.
    fn contained<T>(
        &mut self,
        what: &str,
        port: Option<PortId>,
        step: impl FnOnce(&mut Self) -> T,
    ) -> Option<T> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self))) {
            Ok(value) => Some(value),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!(
                    "gateway runtime: a bug while {what}{}: {message}; that work is dropped, the gateway keeps serving",
                    port.map(|p| format!(" from port {}", p.0)).unwrap_or_default()
                );
                if let Some(port) = port {
                    self.record_drop(port, DropReason::GatewayFault);
                }
                self.forget_dangling_sockets();
                None
            }
        }
    }

    /// After a fault: forgets every DNS connection, listener and flow whose smoltcp socket
    /// is gone, so that the step that failed does not fail again on each pass. Flows without
    /// their socket are closed (their host side reset).
    fn forget_dangling_sockets(&mut self) {
        let mut dangling_flows = Vec::new();
        for (network, net) in self.nets.iter_mut() {
            let live: std::collections::HashSet<SocketHandle> =
                net.sockets.iter().map(|(h, _)| h).collect();
            net.dns_listeners.retain(|h| live.contains(h));
            net.dns_conns.retain(|c| live.contains(&c.handle()));
            dangling_flows.extend(self.flow_io.iter().filter_map(|(&id, io)| {
                let gone = io.network == *network && io.handle.is_some_and(|h| !live.contains(&h));
                gone.then_some(id)
            }));
        }
        for id in dangling_flows {
            if let Some(io) = self.flow_io.get_mut(&id) {
                io.failed = true;
                io.handle = None;
            }
            self.remove_flow(id);
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
            TAG_FLOW => self.on_flow_event(weft_gateway::tcp::FlowId(index as u32)),
            TAG_PUBLISHED => self.on_published(index),
            TAG_ICMP => self.on_icmp(),
            TAG_UDP => self.on_udp_flow(index),
            _ => {}
        }
    }

    /// Handles queued frames and commands; false once every sender is gone.
    fn drain_inputs(&mut self) -> bool {
        for _ in 0..STACK_QUEUE {
            match self.rx.try_recv() {
                Ok(input) => {
                    let port = match &input {
                        StackInput::Frame { work, .. } => Some(work.port),
                        _ => None,
                    };
                    self.contained("handling a frame or command", port, |s| s.on_input(input));
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn on_input(&mut self, input: StackInput) {
        match input {
            StackInput::Frame { work, frame } => self.on_frame(work, &frame),
            StackInput::Publish(p) => self.publish(p),
            StackInput::Unpublish { local, tcp } => self.unpublish(local, tcp),
            StackInput::ForgetNetwork(network) => {
                self.forget(|f| f.network == network, Some(network))
            }
            StackInput::ForgetPort(port) => {
                self.forget(|f| f.port == port, None);
                for net in self.nets.values_mut() {
                    net.neighbors.retain(|_, (p, _)| *p != port);
                }
            }
            StackInput::Flows(reply) => {
                let _ = reply.send(self.flow_rows());
            }
            StackInput::DnsAnswer {
                network,
                conn,
                id,
                answer,
            } => self.dns_answer(network, conn, id, &answer),
            StackInput::DnsUdpAnswer {
                client,
                query,
                answer,
            } => self.dns_udp_answer(&client, &query, &answer),
        }
    }

    fn record_drop(&self, port: PortId, reason: DropReason) {
        self.dataplane.record_drop(port, reason);
    }

    /// The network's stack, created on first use.
    fn net_for(&mut self, network: NetworkId, gateway: GatewayConfig) -> Option<&mut NetworkIface> {
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
            let net = NetworkIface::new(gateway, subnet, mtu, self.udp_idle, now);
            self.nets.insert(network, net);
        }
        self.nets.get_mut(&network)
    }

    /// A frame for the gateway from a container: dispatched on its task.
    fn on_frame(&mut self, work: HandOver, frame: &[u8]) {
        let HandOver {
            port,
            network,
            gateway,
            task,
            endpoint,
        } = work;
        let (src_ip, src_mac) = match &task {
            GatewayTask::Dns(d) => {
                return self.dns_udp(network, port, gateway, d, &frame[d.payload.clone()])
            }
            GatewayTask::UdpOut(d) => return self.outbound_udp(network, port, gateway, d, frame),
            GatewayTask::PublishedUdp(d) => (d.src_ip, d.src_mac),
            GatewayTask::Tcp(t) => (t.src.0, t.src_mac),
            GatewayTask::EchoOut(e) => (e.src_ip, e.src_mac),
            GatewayTask::ArpReply(_) | GatewayTask::EchoReply(_) => {
                return self.record_drop(port, DropReason::GatewayUnsupported)
            }
        };
        // The gateway answers only its endpoints: the sender must be the endpoint registered
        // on the port, and replies go where the registry says, never where a frame claims.
        let Some(endpoint) = endpoint.filter(|e| e.ip == Some(src_ip) && e.mac == src_mac) else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        let Some(net) = self.net_for(network, gateway) else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        if !net.inside(src_ip) {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        }
        net.neighbors.insert(src_ip, (port, endpoint.mac));
        match task {
            GatewayTask::EchoOut(e) => self.outbound_echo(network, port, gateway, &e, frame),
            GatewayTask::PublishedUdp(d) => {
                self.published_udp_reply(network, port, d.dst_port, &frame[d.payload])
            }
            GatewayTask::Tcp(t) => {
                let segment = tcp::Segment {
                    network,
                    port,
                    src: std::net::SocketAddrV4::new(t.src.0, t.src.1),
                    dst: std::net::SocketAddrV4::new(t.dst.0, t.dst.1),
                    syn: t.syn,
                    nat_allowed: gateway::nat_allowed(&self.zones, network, t.dst.0),
                    nat_refused: !nat_may_reach(t.dst.0)
                        || (t.syn && self.host_service(SocketAddrV4::new(t.dst.0, t.dst.1), true)),
                };
                self.on_tcp(segment, gateway, frame[t.ip].to_vec());
            }
            _ => {}
        }
    }

    /// Refuses a container's packet to a destination the NAT never reaches: counted, and
    /// the container told "administratively prohibited" (RFC 1812 §5.2.7.1).
    fn nat_refused(&mut self, network: NetworkId, port: PortId, packet: &[u8]) {
        self.record_drop(port, DropReason::NatRefused);
        self.unreachable(network, port, packet, ICMP_ADMIN_PROHIBITED);
    }

    /// Sends an ICMP destination unreachable for `packet` (an IP packet) back to the
    /// container that sent it, from the gateway's address, quoting its header and first 8
    /// octets (RFC 792, RFC 1122 §3.2.2.1).
    fn unreachable(&mut self, network: NetworkId, port: PortId, packet: &[u8], code: u8) {
        let Some(net) = self.nets.get(&network) else {
            return;
        };
        let Ok(ip) = smoltcp::wire::Ipv4Packet::new_checked(packet) else {
            return;
        };
        let quoted = &packet[..(usize::from(ip.header_len()) + 8).min(packet.len())];
        let src = ip.src_addr();
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

    /// Drops a removed network's or a disconnected port's connections (resetting them).
    fn forget(
        &mut self,
        pred: impl Fn(&weft_gateway::tcp::TcpFlow) -> bool,
        network: Option<NetworkId>,
    ) {
        for id in self.tcp.matching(pred) {
            if let Some(io) = self.flow_io.get_mut(&id) {
                io.failed = true;
            }
            self.remove_flow(id);
        }
        if let Some(network) = network {
            self.forget_udp(network);
            self.nets.remove(&network);
            self.echo.forget_network(network);
            self.tcp.forget_network(network);
        }
    }

    /// Once a second: the state machines' timers.
    fn expire(&mut self) {
        let now = self.ts();
        self.expire_tcp(now);
        self.expire_udp();
        self.echo.expire(now);
        for net in self.nets.values_mut() {
            net.udp_clients.expire(now);
            let clients = &net.udp_clients;
            net.udp_by_client.retain(|(_, client), port| {
                clients
                    .holder(*port)
                    .is_some_and(|h| h.client == SocketAddr::V4(*client))
            });
        }
    }

    fn flow_rows(&self) -> Vec<NatRow> {
        let now = self.ts();
        let mut rows = self.tcp_rows(now);
        rows.extend(self.udp_rows());
        for (id, f) in self.echo.iter() {
            rows.push(NatRow {
                protocol: "icmp".into(),
                direction: "out".into(),
                network: String::new(),
                network_id: f.key.network.0,
                container: format!("{} id {}", f.key.container, f.key.ident),
                outside: f.key.outside.to_string(),
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
