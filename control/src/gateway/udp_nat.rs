//! Outbound NAT in `proxy` mode, UDP part: a datagram a container sends through its gateway to
//! an address outside its network leaves from an ordinary host socket, one per flow, and the
//! answers come back to the container as if from the outside address. Idle flows expire.
//! This is how slirp4netns and passt give rootless containers a network; no kernel NAT, no
//! iptables.
//!
//! [`FlowTable`] (in `weft_gateway::flows`) is the pure part, time passed in; [`UdpNat`] does
//! the I/O.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_switch::{
    quoted_udp_datagram, write_icmp_unreachable, write_udp, GatewayConfig, MacAddr, NetworkId,
    PortId, ICMP_PORT_UNREACHABLE,
};

use weft_gateway::flows::FlowTable;
use weft_gateway::Timestamp;

use crate::dataplane::Dataplane;

/// Default idle time after which a UDP flow and its host socket are dropped.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);
/// Flows kept at once; a new flow beyond this is refused (counted as `gateway_busy`).
pub const MAX_UDP_FLOWS: usize = 4096;

/// A UDP flow: one container socket talking to one outside socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpFlowKey {
    pub network: NetworkId,
    pub container: SocketAddrV4,
    pub outside: SocketAddrV4,
}

/// Where a flow's answers go: the container's port, the gateway they appear to come
/// through, and the container's MAC.
#[derive(Debug, Clone, Copy)]
pub struct ReturnPath {
    pub port: PortId,
    pub gateway: GatewayConfig,
    pub container_mac: MacAddr,
}

/// The I/O side of a UDP flow.
#[derive(Debug)]
pub struct UdpFlowIo {
    /// Sends go through a plain non-blocking duplicate of the socket: tokio's `try_send`
    /// refuses until the reactor has seen the socket writable, which a new flow's first
    /// datagram cannot wait for.
    sender: std::net::UdpSocket,
    reader: tokio::task::JoinHandle<()>,
    /// The host side of the flow (what the outside sees).
    pub local: SocketAddr,
}

/// One row of `weft nat`.
#[derive(Debug, Clone)]
pub struct UdpFlowView {
    pub key: UdpFlowKey,
    pub local: SocketAddr,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub age: Duration,
    pub idle: Duration,
}

/// Why a datagram could not be sent through NAT.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error("the UDP flow table is full ({MAX_UDP_FLOWS} flows)")]
    TableFull,
    #[error("cannot open a host socket for {outside}: {source}")]
    Socket {
        outside: SocketAddrV4,
        source: std::io::Error,
    },
}

/// The UDP half of the proxy NAT.
pub struct UdpNat {
    table: Arc<Mutex<FlowTable<UdpFlowKey, UdpFlowIo>>>,
    /// The origin of the table's time.
    origin: Instant,
}

/// The time since `origin`, as the flow table takes it.
fn since(origin: Instant) -> Timestamp {
    Timestamp::from_millis(u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UdpNat {
    pub fn new(idle: Duration) -> UdpNat {
        UdpNat {
            table: Arc::new(Mutex::new(FlowTable::new(idle, MAX_UDP_FLOWS))),
            origin: Instant::now(),
        }
    }

    /// Sends `payload` from the container at `key.container` to `key.outside`, opening the
    /// flow's host socket on first use. Answers are written back to the container's `port`
    /// as frames from the outside address through the gateway's MAC.
    pub fn send(
        &self,
        dataplane: &Arc<Dataplane>,
        key: UdpFlowKey,
        back: ReturnPath,
        payload: &[u8],
    ) -> Result<(), NatError> {
        let now = since(self.origin);
        let mut table = lock(&self.table);
        if table.get(&key).is_none() {
            let io = self.open(dataplane, key, back)?;
            if let Err(io) = table.insert(key, io, now) {
                io.reader.abort();
                return Err(NatError::TableFull);
            }
        }
        let flow = table.get(&key).expect("just inserted");
        // A full socket buffer drops the datagram, as a congested link would.
        let _ = flow.value.sender.send(payload);
        table.sent(&key, payload.len(), now);
        Ok(())
    }

    fn open(
        &self,
        dataplane: &Arc<Dataplane>,
        key: UdpFlowKey,
        back: ReturnPath,
    ) -> Result<UdpFlowIo, NatError> {
        let err = |source| NatError::Socket {
            outside: key.outside,
            source,
        };
        let std_socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(err)?;
        std_socket.connect(key.outside).map_err(err)?;
        std_socket.set_nonblocking(true).map_err(err)?;
        let local = std_socket.local_addr().map_err(err)?;
        let sender = std_socket.try_clone().map_err(err)?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(std_socket).map_err(err)?);
        let reader = tokio::spawn(read_answers(
            Arc::clone(&socket),
            Arc::clone(&self.table),
            Arc::clone(dataplane),
            key,
            back,
            self.origin,
        ));
        Ok(UdpFlowIo {
            sender,
            reader,
            local,
        })
    }

    /// Drops idle flows (call about once a second).
    pub fn expire(&self) {
        for (_, io) in lock(&self.table).expire(since(self.origin)) {
            io.reader.abort();
        }
    }

    /// Drops every flow of a network (it was removed).
    pub fn forget_network(&self, network: NetworkId) {
        for io in lock(&self.table).remove_where(|k| k.network == network) {
            io.reader.abort();
        }
    }

    pub fn flows(&self) -> Vec<UdpFlowView> {
        let now = since(self.origin);
        let table = lock(&self.table);
        let mut rows: Vec<UdpFlowView> = table
            .iter()
            .map(|(k, f)| UdpFlowView {
                key: *k,
                local: f.value.local,
                bytes_out: f.bytes_out,
                bytes_in: f.bytes_in,
                age: now.saturating_duration_since(f.created),
                idle: now.saturating_duration_since(f.last_active),
            })
            .collect();
        rows.sort_by_key(|r| (r.key.network, r.key.container, r.key.outside));
        rows
    }
}

/// Reads the outside's answers on a flow's socket and writes them to the container.
async fn read_answers(
    socket: Arc<tokio::net::UdpSocket>,
    table: Arc<Mutex<FlowTable<UdpFlowKey, UdpFlowIo>>>,
    dataplane: Arc<Dataplane>,
    key: UdpFlowKey,
    back: ReturnPath,
    origin: Instant,
) {
    let ReturnPath {
        port,
        gateway,
        container_mac,
    } = back;
    let mut buf = vec![0u8; 65_536];
    let mut frame = vec![0u8; 65_536 + 64];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            // The outside answered an earlier datagram with ICMP port unreachable: tell the
            // container the same way, so its socket sees ECONNREFUSED instead of silence.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                let quoted = quoted_udp_datagram(
                    (*key.container.ip(), key.container.port()),
                    (*key.outside.ip(), key.outside.port()),
                    0,
                );
                if let Some(len) = write_icmp_unreachable(
                    gateway.mac,
                    *key.outside.ip(),
                    (container_mac, *key.container.ip()),
                    ICMP_PORT_UNREACHABLE,
                    &quoted,
                    &mut frame,
                ) {
                    dataplane.inject(port, &frame[..len]);
                }
                continue;
            }
            // Other errors (host unreachable, ...): the flow stays and expires when idle.
            Err(_) => continue,
        };
        let src = (gateway.mac, *key.outside.ip(), key.outside.port());
        let dst = (container_mac, *key.container.ip(), key.container.port());
        if let Some(len) = write_udp(src, dst, &buf[..n], &mut frame) {
            dataplane.inject(port, &frame[..len]);
        }
        lock(&table).received(&key, n, since(origin));
    }
}
