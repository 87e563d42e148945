//! Proxied TCP: the container side is a smoltcp socket, the outside a host socket. The
//! protocol state (held SYNs, failed-connect memory, the flow table and its bound) is
//! [`weft_gateway::tcp::TcpTable`]'s; this file does the connects and moves the bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpListenEndpoint};
use weft_gateway::tcp::{
    ConnectAction, ConnectResult, Direction, Expired, FlowId, Refusal, SynAction, TcpKey,
};
use weft_gateway::Timestamp;
use weft_switch::{DropReason, GatewayConfig, NetworkId, PortId, ICMP_NET_UNREACHABLE};

use super::link::{new_tcp_socket, poll_net};
use super::{token, unreachable_code, StackThread, TAG_FLOW};
use crate::types::NatRow;

/// Receive and send buffer of each proxied TCP connection, per direction. With window
/// scaling (RFC 7323) this is the window the container sees.
pub(super) const TCP_BUFFER: usize = 256 * 1024;

/// A TCP segment from a container, as the dispatch read it.
pub(super) struct Segment {
    pub(super) network: NetworkId,
    pub(super) port: PortId,
    pub(super) src: SocketAddrV4,
    pub(super) dst: SocketAddrV4,
    /// SYN without ACK.
    pub(super) syn: bool,
    /// The destination may be reached through the proxy NAT (the network has NAT).
    pub(super) nat_allowed: bool,
    /// The destination is one the NAT never reaches (`weft_gateway::reach`).
    pub(super) nat_refused: bool,
}

/// A flow's sockets and readiness.
pub(super) struct FlowIo {
    pub(super) network: NetworkId,
    pub(super) host: TcpStream,
    pub(super) host_local: Option<SocketAddr>,
    /// The smoltcp socket (None while the host connect is under way).
    pub(super) handle: Option<SocketHandle>,
    pub(super) readable: bool,
    pub(super) writable: bool,
    host_eof: bool,
    host_shut: bool,
    pub(super) failed: bool,
    /// The container side reached ESTABLISHED at some point.
    established: bool,
}

impl FlowIo {
    pub(super) fn new(network: NetworkId, host: TcpStream, handle: Option<SocketHandle>) -> Self {
        FlowIo {
            network,
            host_local: None,
            host,
            handle,
            readable: handle.is_some(),
            writable: handle.is_some(),
            host_eof: false,
            host_shut: false,
            failed: false,
            established: false,
        }
    }
}

/// What the host's `connect()` met, as the TCP table takes it.
fn connect_error(e: &std::io::Error) -> ConnectResult {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => ConnectResult::Refused,
        Some(libc::ETIMEDOUT) => ConnectResult::TimedOut,
        _ => ConnectResult::Unreachable(unreachable_code(e)),
    }
}

/// Bytes one pass moved through a flow.
#[derive(Default)]
struct Moved {
    any: bool,
    out: usize,
    back: usize,
}

impl StackThread {
    /// A container's TCP segment: to the gateway's own sockets (DNS, published
    /// connections), a SYN to the outside, or part of a proxied connection.
    pub(super) fn on_tcp(&mut self, seg: Segment, gateway: GatewayConfig, packet: Vec<u8>) {
        if *seg.dst.ip() == gateway.ip {
            // DNS over TCP, or a container answering an inbound (published) connection:
            // the interface's own sockets take it.
            return self.hand_to_stack(seg.network, packet);
        }
        let key = TcpKey {
            network: seg.network,
            container: seg.src,
            outside: seg.dst,
        };
        if !seg.syn && self.tcp.inbound(&key).is_some() {
            // The container answering a published connection that comes from its client's
            // own address: that flow's socket takes it.
            return self.hand_to_stack(seg.network, packet);
        }
        if seg.nat_refused && seg.nat_allowed {
            if seg.syn {
                return self.nat_refused(seg.network, seg.port, &packet);
            }
            return self.record_drop(seg.port, DropReason::NatRefused);
        }
        if seg.syn {
            self.outbound_syn(key, seg.port, packet, seg.nat_allowed);
        } else if self.tcp.outbound(&key).is_some() || seg.nat_allowed {
            // Part of a connection (or a stray segment smoltcp answers with RST).
            self.hand_to_stack(seg.network, packet);
        } else {
            self.record_drop(seg.port, DropReason::GatewayUnsupported);
        }
    }

    fn hand_to_stack(&mut self, network: NetworkId, packet: Vec<u8>) {
        if let Some(net) = self.nets.get_mut(&network) {
            net.link.rx.push_back(packet);
        }
    }

    fn outbound_syn(&mut self, key: TcpKey, port: PortId, syn: Vec<u8>, nat_allowed: bool) {
        if !nat_allowed {
            // No route out of this network (`--nat none`, `--internal`): say so at once, as a
            // router without a route does.
            self.record_drop(port, DropReason::GatewayUnsupported);
            return self.unreachable(key.network, port, &syn, ICMP_NET_UNREACHABLE);
        }
        if let Some(id) = self.tcp.outbound(&key) {
            if self.closed(id) {
                self.remove_flow(id);
            }
        }
        match self.tcp.on_syn(key, port, syn, self.ts()) {
            SynAction::Connect(id) => self.start_connect(id, key, port),
            SynAction::Pending => {}
            SynAction::ToStack(syn) => self.hand_to_stack(key.network, syn),
            SynAction::Answer(syn, refusal) => self.answer_syn(key.network, port, syn, refusal),
            SynAction::Busy => self.record_drop(port, DropReason::GatewayBusy),
        }
    }

    /// Whether an open flow's smoltcp socket is done (its key may be used again).
    fn closed(&self, id: FlowId) -> bool {
        let Some((io, handle)) = self.flow_io.get(&id).and_then(|io| Some((io, io.handle?))) else {
            return false;
        };
        self.nets.get(&io.network).is_some_and(|net| {
            let state = net.sockets.get::<tcp::Socket>(handle).state();
            matches!(state, tcp::State::TimeWait | tcp::State::Closed)
        })
    }

    /// Starts the host `connect()` of a held SYN's flow.
    fn start_connect(&mut self, id: FlowId, key: TcpKey, port: PortId) {
        let socket = match socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        ) {
            Ok(s) => s,
            Err(e) => {
                log::debug!(
                    "no host socket for {} -> {}: {e}",
                    key.container,
                    key.outside
                );
                self.tcp.remove(id);
                return self.record_drop(port, DropReason::GatewayBusy);
            }
        };
        let _ = socket.set_nonblocking(true);
        let _ = socket.set_tcp_nodelay(true);
        match socket.connect(&SocketAddr::V4(key.outside).into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                let action = self.tcp.connect_result(id, connect_error(&e), self.ts());
                if let ConnectAction::Answer(syn, refusal) = action {
                    self.answer_syn(key.network, port, syn, refusal);
                }
                return;
            }
        }
        self.add_io(id, FlowIo::new(key.network, socket.into(), None));
    }

    /// Watches a flow's host socket.
    pub(super) fn add_io(&mut self, id: FlowId, io: FlowIo) {
        let index = id.0 as usize;
        if let Err(e) = self.epoll.add_edge(io.host.as_fd(), token(TAG_FLOW, index)) {
            log::warn!("cannot watch a host socket: {e}");
        }
        self.flow_io.insert(id, io);
    }

    /// Answers a SYN whose connection the outside refused (RST, which smoltcp sends for a
    /// SYN no listener takes) or could not be reached (ICMP code).
    fn answer_syn(&mut self, network: NetworkId, port: PortId, syn: Vec<u8>, refusal: Refusal) {
        match refusal {
            Refusal::Reset => self.hand_to_stack(network, syn),
            Refusal::Unreachable(code) => self.unreachable(network, port, &syn, code),
        }
    }

    pub(super) fn remove_flow(&mut self, id: FlowId) {
        self.tcp.remove(id);
        self.drop_io(id);
    }

    /// Closes a flow's sockets (the TCP table has forgotten it already).
    fn drop_io(&mut self, id: FlowId) {
        let Some(io) = self.flow_io.remove(&id) else {
            return;
        };
        let _ = self.epoll.delete(io.host.as_fd());
        if let (Some(handle), Some(net)) = (io.handle, self.nets.get_mut(&io.network)) {
            net.sockets.remove(handle);
        }
        if io.established && (io.failed || !(io.host_eof && io.host_shut)) {
            // The container reset or vanished mid-connection: reset the outside too rather
            // than pretend an orderly close. (A connection the container never accepted is
            // just closed, as Docker's userland proxy does.)
            let _ = socket2::SockRef::from(&io.host).set_linger(Some(Duration::ZERO));
        }
    }

    pub(super) fn on_flow_event(&mut self, id: FlowId) {
        let Some(io) = self.flow_io.get_mut(&id) else {
            return;
        };
        io.readable = true;
        io.writable = true;
        if io.handle.is_some() {
            return;
        }
        let error = match io.host.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match io.host.peer_addr() {
                Ok(_) => None,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => Some(e),
            },
        };
        io.host_local = io.host.local_addr().ok();
        let Some(flow) = self.tcp.get(id) else {
            return self.drop_io(id);
        };
        let (network, port, outside) = (flow.network, flow.port, flow.outside);
        let result = error
            .as_ref()
            .map_or(ConnectResult::Connected, connect_error);
        match self.tcp.connect_result(id, result, self.ts()) {
            ConnectAction::Accept(syn) => self.accept_connect(id, outside, syn),
            ConnectAction::Answer(syn, refusal) => {
                log::debug!("connect to {outside} failed: {error:?}");
                self.drop_io(id);
                self.answer_syn(network, port, syn, refusal);
            }
            ConnectAction::Nothing => {}
        }
    }

    /// The outside accepted: a smoltcp socket listens on exactly its address and takes the
    /// held SYN right away, so the container's handshake completes.
    fn accept_connect(&mut self, id: FlowId, outside: SocketAddr, syn: Vec<u8>) {
        let SocketAddr::V4(outside) = outside else {
            return self.remove_flow(id);
        };
        let Some(network) = self.flow_io.get(&id).map(|io| io.network) else {
            return self.remove_flow(id);
        };
        let mut socket = new_tcp_socket(TCP_BUFFER);
        let listen = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*outside.ip())),
            port: outside.port(),
        };
        let Some(net) = self.nets.get_mut(&network) else {
            return self.remove_flow(id);
        };
        if socket.listen(listen).is_err() {
            return self.remove_flow(id);
        }
        let handle = net.sockets.add(socket);
        if let Some(io) = self.flow_io.get_mut(&id) {
            io.handle = Some(handle);
        }
        net.link.rx.push_back(syn);
        poll_net(net, self.origin, &self.dataplane);
    }

    /// Moves data between smoltcp and host sockets and sends what smoltcp has; returns
    /// whether anything moved (then the loop polls again without sleeping).
    pub(super) fn pump(&mut self) -> bool {
        let mut moved = false;
        for net in self.nets.values_mut() {
            moved |= poll_net(net, self.origin, &self.dataplane);
        }
        let now = self.ts();
        let mut done = Vec::new();
        for (&id, io) in self.flow_io.iter_mut() {
            let Some(handle) = io.handle else { continue };
            let Some(net) = self.nets.get_mut(&io.network) else {
                done.push(id);
                continue;
            };
            let socket = net.sockets.get_mut::<tcp::Socket>(handle);
            io.established |= socket.state() == tcp::State::Established;
            let m = service_flow(io, socket);
            if m.any {
                self.tcp.moved(id, m.out, m.back, now);
                moved = true;
            }
        }
        self.service_dns();
        for net in self.nets.values_mut() {
            moved |= poll_net(net, self.origin, &self.dataplane);
        }
        done.extend(self.flow_io.keys().copied().filter(|&id| self.closed(id)));
        for id in done {
            self.remove_flow(id);
        }
        moved
    }

    /// The TCP table's timers: connects that never finished are answered, idle flows
    /// closed.
    pub(super) fn expire_tcp(&mut self, now: Timestamp) {
        for (id, expired) in self.tcp.expire(now) {
            let Some(network) = self.flow_io.get(&id).map(|io| io.network) else {
                continue;
            };
            match expired {
                Expired::ConnectTimedOut(syn, refusal) => {
                    let port = self.port_of(network, &syn);
                    self.drop_io(id);
                    if let Some(port) = port {
                        self.answer_syn(network, port, syn, refusal);
                    }
                }
                Expired::Idle => {
                    // Both sides are reset: the outside by drop_io, the container by its
                    // smoltcp socket, aborted and polled once to send the RST.
                    if let Some(io) = self.flow_io.get_mut(&id) {
                        io.failed = true;
                        if let (Some(h), Some(net)) = (io.handle, self.nets.get_mut(&network)) {
                            net.sockets.get_mut::<tcp::Socket>(h).abort();
                            poll_net(net, self.origin, &self.dataplane);
                        }
                    }
                    self.drop_io(id);
                }
            }
        }
    }

    /// The switch port of the container that sent `packet`.
    fn port_of(&self, network: NetworkId, packet: &[u8]) -> Option<PortId> {
        let src = packet.get(12..16)?;
        let src = std::net::Ipv4Addr::new(src[0], src[1], src[2], src[3]);
        self.nets
            .get(&network)?
            .neighbors
            .get(&src)
            .map(|&(p, _)| p)
    }

    pub(super) fn tcp_rows(&self, now: Timestamp) -> Vec<NatRow> {
        self.tcp
            .iter()
            .map(|(id, flow)| NatRow {
                protocol: "tcp".into(),
                direction: match flow.direction {
                    Direction::Out => "out".into(),
                    Direction::In => "in".into(),
                },
                network: String::new(),
                network_id: flow.network.0,
                container: flow.container.to_string(),
                outside: flow.outside.to_string(),
                host_socket: self
                    .flow_io
                    .get(&id)
                    .and_then(|io| io.host_local)
                    .map_or_else(|| "connecting".into(), |a| a.to_string()),
                bytes_out: flow.bytes_out,
                bytes_in: flow.bytes_in,
                age_seconds: now.saturating_duration_since(flow.created).as_secs_f64(),
                idle_seconds: now
                    .saturating_duration_since(flow.last_active)
                    .as_secs_f64(),
            })
            .collect()
    }
}

/// Moves data between one connection's smoltcp socket and its host socket, both ways, and
/// passes closes on.
fn service_flow(io: &mut FlowIo, socket: &mut tcp::Socket) -> Moved {
    let mut m = Moved::default();
    // Container -> outside.
    while io.writable && socket.can_recv() {
        let host = &io.host;
        let r = socket.recv(|buf| match (&*host).write(buf) {
            Ok(n) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        });
        match r {
            Ok(Ok(n)) => {
                m.out += n;
                m.any = true;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => io.writable = false,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return failed(io, socket, m),
            Err(_) => break,
        }
    }
    // The container sent FIN and everything before it is out: pass the FIN on.
    let container_done = matches!(
        socket.state(),
        tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait
    );
    if container_done && !io.host_shut && socket.recv_queue() == 0 {
        let _ = io.host.shutdown(Shutdown::Write);
        io.host_shut = true;
        m.any = true;
    }
    // Outside -> container.
    while io.readable && !io.host_eof && socket.can_send() {
        let host = &io.host;
        let r = socket.send(|buf| match (&*host).read(buf) {
            Ok(n) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        });
        match r {
            Ok(Ok(0)) => {
                io.host_eof = true;
                socket.close();
                m.any = true;
            }
            Ok(Ok(n)) => {
                m.back += n;
                m.any = true;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => io.readable = false,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return failed(io, socket, m),
            Err(_) => break,
        }
    }
    m
}

/// The host socket failed: reset the container's side.
fn failed(io: &mut FlowIo, socket: &mut tcp::Socket, mut m: Moved) -> Moved {
    io.failed = true;
    socket.abort();
    m.any = true;
    m
}
