//! Published host ports: an accepted host connection becomes a smoltcp `connect()` from the
//! gateway's address to the container; every host client of a published UDP port gets its
//! own gateway source port ([`weft_gateway::published_udp::UdpClients`]) so that the
//! container's answers find their way back.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use smoltcp::wire::{IpAddress, IpEndpoint};
use weft_switch::{write_udp, DropReason, NetworkId, PortId};

use super::link::{new_tcp_socket, NetworkIface};
use super::tcp::{FlowIo, TCP_BUFFER};
use super::{token, Published, StackThread, Target, TAG_PUBLISHED};
use crate::gateway::publish::PublishedSocket;

pub(super) struct PublishedEntry {
    published: Published,
}

/// Whether `dst` is one of this host's own addresses: a UDP socket connected to it (no
/// packet is sent) takes it as its own source, as routing picks for a local destination.
/// Without a socket to ask with (descriptors exhausted) the answer is yes: the check fails
/// closed, and the flow's own socket could not be opened either.
fn is_host_address(dst: SocketAddrV4) -> bool {
    let Ok(probe) =
        std::net::UdpSocket::bind(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0))
    else {
        return true;
    };
    probe.connect(dst).is_ok()
        && probe
            .local_addr()
            .is_ok_and(|l| l.ip() == std::net::IpAddr::V4(*dst.ip()))
}

/// Whether a client may be shown to a container under its own address: not a loopback
/// address (the container's own) nor one inside the container's subnet (which it would
/// answer directly, past the gateway).
fn client_may_show(client: &SocketAddrV4, (net, prefix): (Ipv4Addr, u8)) -> bool {
    let ip = *client.ip();
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let inside = u32::from(ip) & mask == u32::from(net) & mask;
    !(ip.is_loopback() || ip.is_unspecified() || inside)
}

/// Closes a host connection with a reset.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

impl StackThread {
    /// Whether a container's new flow to `dst` is refused for being one of this host's own
    /// services: a host address at a port this daemon does not publish there. The NAT's
    /// sockets are the host's, so such a connection would arrive over `lo`, past the
    /// firewall rules that keep the service from the network; published ports stay
    /// reachable (hairpin).
    pub(super) fn host_service(&self, dst: SocketAddrV4, tcp: bool) -> bool {
        if !is_host_address(dst) {
            return false;
        }
        !self.published.iter().flatten().any(|e| {
            let socket = &e.published.socket;
            let at = |l: SocketAddr| {
                l.port() == dst.port()
                    && (l.ip().is_unspecified() || l.ip() == std::net::IpAddr::V4(*dst.ip()))
            };
            matches!(socket, PublishedSocket::Tcp(_)) == tcp && socket.local().is_some_and(at)
        })
    }

    /// The network of a published port's target, created on first use.
    fn target_net(&mut self, network: NetworkId, target: Target) -> &mut NetworkIface {
        let now = self.now();
        let udp_idle = self.udp_idle;
        let net = self.nets.entry(network).or_insert_with(|| {
            NetworkIface::new(
                target.gateway,
                target.subnet,
                usize::from(target.mtu),
                udp_idle,
                now,
            )
        });
        net.neighbors.insert(target.ip, (target.port, target.mac));
        net
    }

    pub(super) fn on_published(&mut self, index: usize) {
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
        let container = SocketAddrV4::new(target.ip, cport);
        let now = self.ts();
        let Some(id) = self
            .tcp
            .open_inbound(network, target.port, container, peer, now)
        else {
            return reset(&stream);
        };
        let _ = stream.set_nonblocking(true);
        let _ = stream.set_nodelay(true);
        let client = self.client_source(network, target, peer) && self.tcp.keep_client_address(id);
        let net = self.target_net(network, target);
        let local = match peer {
            SocketAddr::V4(peer) if client => {
                IpEndpoint::new(IpAddress::Ipv4(*peer.ip()), peer.port())
            }
            _ => {
                let Some(local_port) = net.udp_clients.free_port() else {
                    self.tcp.remove(id);
                    return reset(&stream);
                };
                IpEndpoint::new(IpAddress::Ipv4(target.gateway.ip), local_port)
            }
        };
        let mut socket = new_tcp_socket(TCP_BUFFER);
        let remote = IpEndpoint::new(IpAddress::Ipv4(target.ip), cport);
        if socket.connect(net.iface.context(), remote, local).is_err() {
            self.tcp.remove(id);
            return reset(&stream);
        }
        let handle = net.sockets.add(socket);
        let host_local = stream.local_addr().ok();
        let mut io = FlowIo::new(network, stream, Some(handle));
        io.host_local = host_local;
        self.add_io(id, io);
    }

    /// Whether a connection from `peer` reaches the container from the client's own address
    /// (the network keeps clients' addresses, the default): not for a client the container
    /// could not answer through its gateway (a loopback address, which is the container's
    /// own; an address inside the container's subnet, which it reaches directly).
    fn client_source(&self, network: NetworkId, target: Target, peer: SocketAddr) -> bool {
        let SocketAddr::V4(peer) = peer else {
            return false;
        };
        client_may_show(&peer, target.subnet)
            && crate::gateway::keeps_client_address(&self.zones, network)
    }

    /// A container's datagram to a published UDP port's client it sees under the client's
    /// own address: sent from the published port to the client. False if it is none.
    pub(super) fn published_udp_to_client(
        &mut self,
        network: NetworkId,
        container: SocketAddrV4,
        client: SocketAddrV4,
        payload: &[u8],
    ) -> bool {
        let now = self.ts();
        let Some(net) = self.nets.get_mut(&network) else {
            return false;
        };
        let Some(&gw_port) = net.udp_by_client.get(&(container, client)) else {
            return false;
        };
        let Some(c) = net.udp_clients.client_for(gw_port, now) else {
            return false;
        };
        if c.client != SocketAddr::V4(client) {
            return false;
        }
        if let Some(Some(entry)) = self.published.get(c.published) {
            if let PublishedSocket::Udp(s) = &entry.published.socket {
                let _ = s.send_to(payload, c.client);
            }
        }
        true
    }

    /// Datagrams to a published UDP port: each client gets its own gateway source port, so
    /// the container's answers find their way back.
    fn inbound_udp(&mut self, index: usize) {
        let now = self.ts();
        let Some(Some(entry)) = self.published.get(index) else {
            return;
        };
        let p = &entry.published;
        let (network, target, cport) = (p.network, p.target, p.container_port);
        let keep_client = crate::gateway::keeps_client_address(&self.zones, network);
        self.target_net(network, target);
        let (Some(Some(entry)), Some(net)) =
            (self.published.get(index), self.nets.get_mut(&network))
        else {
            return;
        };
        let PublishedSocket::Udp(socket) = &entry.published.socket else {
            return;
        };
        for _ in 0..64 {
            let (n, client) = match socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(_) => break,
            };
            let Some(gw_port) = net.udp_clients.port_for(index, client, now) else {
                // Every gateway port is some live client's: refuse the new one.
                let busy = DropReason::GatewayBusy;
                self.dataplane.record_drop(target.port, busy);
                continue;
            };
            let container = SocketAddrV4::new(target.ip, cport);
            // From the client's own address where the network keeps it (as for TCP).
            let src = match client {
                SocketAddr::V4(c) if keep_client && client_may_show(&c, target.subnet) => {
                    net.udp_by_client.insert((container, c), gw_port);
                    (target.gateway.mac, *c.ip(), c.port())
                }
                _ => (target.gateway.mac, target.gateway.ip, gw_port),
            };
            let dst = (target.mac, target.ip, cport);
            if let Some(len) = write_udp(src, dst, &self.buf[..n], &mut self.frame) {
                self.dataplane.inject(target.port, &self.frame[..len]);
            }
        }
    }

    /// A container's datagram to the gateway's address: an answer to a published UDP port's
    /// client.
    pub(super) fn published_udp_reply(
        &mut self,
        network: NetworkId,
        port: PortId,
        dst_port: u16,
        payload: &[u8],
    ) {
        let now = self.ts();
        let client = self
            .nets
            .get_mut(&network)
            .and_then(|n| n.udp_clients.client_for(dst_port, now));
        let Some(c) = client else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        if let Some(Some(entry)) = self.published.get(c.published) {
            if let PublishedSocket::Udp(s) = &entry.published.socket {
                let _ = s.send_to(payload, c.client);
            }
        }
    }

    pub(super) fn publish(&mut self, p: Published) {
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

    pub(super) fn unpublish(&mut self, local: std::net::SocketAddr, tcp: bool) {
        for index in 0..self.published.len() {
            let matches = self.published[index].as_ref().is_some_and(|e| {
                e.published.socket.local() == Some(local)
                    && matches!(e.published.socket, PublishedSocket::Tcp(_)) == tcp
            });
            let Some(entry) = self.published[index].take_if(|_| matches) else {
                continue;
            };
            let fd = match &entry.published.socket {
                PublishedSocket::Tcp(l) => l.as_fd(),
                PublishedSocket::Udp(u) => u.as_fd(),
            };
            let _ = self.epoll.delete(fd);
            if let Some(net) = self.nets.get_mut(&entry.published.network) {
                net.udp_clients.forget_published(index);
            }
        }
    }
}
