//! Outbound NAT in `proxy` mode, UDP part: a datagram a container sends through its gateway to
//! an address outside its network leaves from an ordinary host socket, one per flow, watched
//! by the stack thread's epoll; the answers come back to the container as if from the outside
//! address. Idle flows expire. This is how slirp4netns and passt give rootless containers a
//! network; no kernel NAT, no iptables.
//!
//! [`FlowTable`] (in `weft_gateway::flows`) is the pure part, time passed in; this file does
//! the I/O.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use weft_gateway::flows::{FlowTable, Full};
use weft_gateway::reach::nat_may_reach;
use weft_switch::{
    quoted_udp_datagram, write_icmp_unreachable, write_udp, DropReason, GatewayConfig, MacAddr,
    NetworkId, PortId, UdpToGateway, ETHERNET_HEADER_LEN, ICMP_PORT_UNREACHABLE,
};

use super::{token, StackThread, TAG_UDP};
use crate::gateway;
use crate::types::NatRow;

/// Default idle time after which a UDP flow and its host socket are dropped.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);
/// Flows kept at once; a new flow beyond this is refused (counted as `gateway_busy`).
pub const MAX_UDP_FLOWS: usize = 4096;
/// Flows one container may hold: a container opening flows to every port of the outside
/// is refused before its neighbours are.
pub const MAX_UDP_FLOWS_PER_ENDPOINT: usize = 512;
/// Flows one network's containers may hold together (a quarter of the table, as for TCP).
pub const MAX_UDP_FLOWS_PER_NETWORK: usize = 1024;

/// A UDP flow: one container socket talking to one outside socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct UdpFlowKey {
    network: NetworkId,
    container: SocketAddrV4,
    outside: SocketAddrV4,
}

/// The I/O side of a UDP flow: its connected host socket, where its answers go, and its
/// place in the epoll tokens.
#[derive(Debug)]
pub(super) struct UdpFlowIo {
    socket: UdpSocket,
    /// The host side of the flow (what the outside sees).
    local: SocketAddr,
    slot: usize,
    port: PortId,
    gateway_mac: MacAddr,
    container_mac: MacAddr,
}

/// The UDP flows: the pure table and the epoll slots that lead back to its keys.
pub(super) struct UdpNat {
    table: FlowTable<UdpFlowKey, UdpFlowIo>,
    slots: Vec<Option<UdpFlowKey>>,
}

impl UdpNat {
    pub(super) fn new(idle: Duration, max: usize) -> UdpNat {
        UdpNat {
            table: FlowTable::new(idle, max)
                .with_shares(MAX_UDP_FLOWS_PER_ENDPOINT, |k: &UdpFlowKey| {
                    (k.network, *k.container.ip())
                })
                .with_network_share(MAX_UDP_FLOWS_PER_NETWORK.min(max)),
            slots: Vec::new(),
        }
    }

    fn free_slot(&mut self) -> usize {
        match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        }
    }
}

/// Why a datagram could not be sent through NAT.
#[derive(Debug, thiserror::Error)]
enum NatError {
    #[error("the UDP flow table is full (its bound under the descriptor limit, at most {MAX_UDP_FLOWS} flows)")]
    TableFull,
    #[error("the container holds its share of UDP flows ({MAX_UDP_FLOWS_PER_ENDPOINT})")]
    ShareFull,
    #[error("the container's network holds its share of UDP flows")]
    NetworkShareFull,
    #[error("cannot open a host socket for {outside}: {source}")]
    Socket {
        outside: SocketAddrV4,
        source: std::io::Error,
    },
}

/// A host socket connected to `outside`, non-blocking.
fn connected_socket(outside: SocketAddrV4) -> Result<(UdpSocket, SocketAddr), NatError> {
    let err = |source| NatError::Socket { outside, source };
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(err)?;
    socket.connect(outside).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    let local = socket.local_addr().map_err(err)?;
    Ok((socket, local))
}

impl StackThread {
    /// A datagram routed through the gateway to an address outside the network: out through
    /// a host socket (proxy NAT), unless the network has `--nat none` or the address is its
    /// own.
    pub(super) fn outbound_udp(
        &mut self,
        network: NetworkId,
        port: PortId,
        gateway: GatewayConfig,
        d: &UdpToGateway,
        frame: &[u8],
    ) {
        let payload = &frame[d.payload.clone()];
        let (container, dst) = (
            SocketAddrV4::new(d.src_ip, d.src_port),
            SocketAddrV4::new(d.dst_ip, d.dst_port),
        );
        if self.published_udp_to_client(network, container, dst, payload) {
            return;
        }
        if !gateway::nat_allowed(&self.zones, network, d.dst_ip) {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        }
        let dst = SocketAddrV4::new(d.dst_ip, d.dst_port);
        let key = UdpFlowKey {
            network,
            container: SocketAddrV4::new(d.src_ip, d.src_port),
            outside: dst,
        };
        // A new flow is checked against this host's own services (an existing one was).
        let new_flow = self.udp.table.get(&key).is_none();
        if !nat_may_reach(d.dst_ip)
            || self.underlay.protects(d.dst_port)
            || (new_flow && self.host_service(dst, false))
        {
            log::debug!(
                "outbound UDP from {}:{} to {}:{} refused: a destination the NAT never reaches",
                d.src_ip,
                d.src_port,
                d.dst_ip,
                d.dst_port
            );
            return self.nat_refused(network, port, &frame[ETHERNET_HEADER_LEN..]);
        }
        let now = self.ts();
        if new_flow {
            if let Err(e) = self.open_udp_flow(key, port, gateway.mac, d.src_mac) {
                log::debug!("outbound UDP from {} dropped: {e}", key.container);
                return self.record_drop(port, DropReason::GatewayBusy);
            }
        }
        let Some(flow) = self.udp.table.get(&key) else {
            return;
        };
        // A full socket buffer drops the datagram, as a congested link would.
        let _ = flow.value.socket.send(payload);
        self.udp.table.sent(&key, payload.len(), now);
    }

    fn open_udp_flow(
        &mut self,
        key: UdpFlowKey,
        port: PortId,
        gateway_mac: MacAddr,
        container_mac: MacAddr,
    ) -> Result<(), NatError> {
        match self.udp.table.room_for(&key) {
            Ok(()) => {}
            Err(Full::Table) => return Err(NatError::TableFull),
            Err(Full::Holder) => return Err(NatError::ShareFull),
            Err(Full::Network) => return Err(NatError::NetworkShareFull),
        }
        let (socket, local) = connected_socket(key.outside)?;
        let slot = self.udp.free_slot();
        self.epoll
            .add(socket.as_fd(), token(TAG_UDP, slot))
            .map_err(|e| NatError::Socket {
                outside: key.outside,
                source: std::io::Error::other(e.to_string()),
            })?;
        let io = UdpFlowIo {
            socket,
            local,
            slot,
            port,
            gateway_mac,
            container_mac,
        };
        match self.udp.table.insert(key, io, self.ts()) {
            Ok(()) => {
                self.udp.slots[slot] = Some(key);
                Ok(())
            }
            Err(io) => {
                let _ = self.epoll.delete(io.socket.as_fd());
                Err(NatError::TableFull)
            }
        }
    }

    /// The outside's answers on a flow's socket, written to the container.
    pub(super) fn on_udp_flow(&mut self, slot: usize) {
        let Some(key) = self.udp.slots.get(slot).copied().flatten() else {
            return;
        };
        for _ in 0..64 {
            let Some(flow) = self.udp.table.get(&key) else {
                return;
            };
            let io = &flow.value;
            let (port, gw_mac, mac) = (io.port, io.gateway_mac, io.container_mac);
            let container = (mac, *key.container.ip(), key.container.port());
            let len = match io.socket.recv(&mut self.buf) {
                Ok(n) => {
                    let src = (gw_mac, *key.outside.ip(), key.outside.port());
                    let written = write_udp(src, container, &self.buf[..n], &mut self.frame);
                    self.udp.table.received(&key, n, self.ts());
                    written
                }
                // The outside answered an earlier datagram with ICMP port unreachable: tell
                // the container the same way, so its socket sees ECONNREFUSED, not silence.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    let c = (*key.container.ip(), key.container.port());
                    let o = (*key.outside.ip(), key.outside.port());
                    let quoted = quoted_udp_datagram(c, o, 0);
                    let to = (mac, *key.container.ip());
                    let code = ICMP_PORT_UNREACHABLE;
                    write_icmp_unreachable(gw_mac, o.0, to, code, &quoted, &mut self.frame)
                }
                // Nothing more to read; other errors (host unreachable...): the flow stays
                // and expires when idle.
                Err(_) => return,
            };
            if let Some(len) = len {
                self.dataplane.inject(port, &self.frame[..len]);
            }
        }
    }

    /// Drops idle UDP flows and their sockets.
    pub(super) fn expire_udp(&mut self) {
        let expired = self.udp.table.expire(self.ts());
        for (_, io) in expired {
            self.close_udp_flow(io);
        }
    }

    /// Drops every UDP flow of a removed network.
    pub(super) fn forget_udp(&mut self, network: NetworkId) {
        for io in self.udp.table.remove_where(|k| k.network == network) {
            self.close_udp_flow(io);
        }
    }

    fn close_udp_flow(&mut self, io: UdpFlowIo) {
        let _ = self.epoll.delete(io.socket.as_fd());
        if let Some(slot) = self.udp.slots.get_mut(io.slot) {
            *slot = None;
        }
    }

    /// The UDP flows, as `weft nat` lists them.
    pub(super) fn udp_rows(&self) -> Vec<NatRow> {
        let now = self.ts();
        self.udp
            .table
            .iter()
            .map(|(k, f)| NatRow {
                protocol: "udp".into(),
                direction: "out".into(),
                network: String::new(),
                network_id: k.network.0,
                container: k.container.to_string(),
                outside: k.outside.to_string(),
                host_socket: f.value.local.to_string(),
                bytes_out: f.bytes_out,
                bytes_in: f.bytes_in,
                age_seconds: now.saturating_duration_since(f.created).as_secs_f64(),
                idle_seconds: now.saturating_duration_since(f.last_active).as_secs_f64(),
            })
            .collect()
    }
}
