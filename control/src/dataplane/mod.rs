//! The data plane: run-to-completion workers that read frames from ports, ask the pure
//! [`Bridge`] for a verdict and write the frames straight to the output fd(s).
//!
//! Every port's receive side belongs to exactly one worker (frames of one ingress port stay in
//! order); any worker may write to any port. A worker waits in its own epoll, and for each
//! ready port reads up to [`BATCH`] frames. A frame is read once into the worker's reusable
//! buffer and written from that same buffer: no channel hop and no allocation per frame. Both
//! port kinds carry the same 10-byte `virtio_net_hdr` before the frame, passed through
//! untouched, so TCP superframes (TSO/GSO) of up to 64 KiB cross the switch whole.
//!
//! With two or more workers the two directions of a TCP flow run on different threads: the
//! data direction (two copies and the receiver's TCP processing, which the kernel runs inside
//! the TAP write) no longer waits behind the acknowledgements (and the sender's processing
//! they trigger) going the other way.
//!
//! Shared state: the bridge sits behind a mutex held only around `process` and counter
//! updates; the port table behind a read-write lock that a worker read-locks once per wake-up
//! and the control plane write-locks to add or remove a port (so a port's fd is never closed
//! while a worker uses it).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use weft_switch::{
    udp_via_gateway, Bridge, DropReason, GatewayConfig, NetworkConfig, NetworkId, PortCounters,
    PortId, Timestamp, UdpToGateway, Verdict,
};

pub mod pcap;
pub mod trace_text;
pub mod vxlan;

use vxlan::{TunnelOut, TunnelTable, VxlanSockets};
use weft_sys::{self as sys, Epoll, EventFd};
use weft_wire::coalesce::Coalescer;
use weft_wire::{VnetHdr, VNET_HDR_LEN};

/// Frames read from one port per wake-up before the worker moves on to the next port.
pub const BATCH: usize = 64;
/// Largest frame a worker reads: a 64 KiB GSO superframe plus headers fits.
const BUF_LEN: usize = VNET_HDR_LEN + 65_535 + 14 + 4 + 1;
const WAKE_TOKEN: u64 = u64::MAX;
const VXLAN_TOKEN: u64 = u64::MAX - 1;
/// Default for how long a worker keeps polling after traffic before it sleeps in epoll
/// (adaptive spin): a sleeping thread's wake-up costs tens of microseconds of round-trip time
/// (an IPI to a halted vCPU here), and a paced sender (BBR) leaves gaps longer than 50 µs
/// between superframes, so a short spin sleeps and wakes once per frame. The spin yields the
/// CPU whenever it finds nothing (see [`Dataplane::run`]), so a long window costs the
/// applications little; measured in bench/README.md ("Busy polling").
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_millis(5);
/// A `sched_yield` that takes longer than this ran another thread: the CPU is contended.
const YIELD_LATE: Duration = Duration::from_micros(500);
/// Frames a slow capture reader may fall behind before frames are skipped for it.
pub const CAPTURE_QUEUE: usize = 4096;

/// A live capture (pcap records) or trace (decisions) attached to one port: a bounded
/// channel, closed after `remaining` items if a count was given.
struct Tap<T> {
    tx: tokio::sync::mpsc::Sender<T>,
    remaining: Option<u64>,
}

/// The taps of one kind on one port, with a flag the fast path reads instead of the lock.
struct Taps<T> {
    active: AtomicBool,
    taps: Mutex<Vec<Tap<T>>>,
}

impl<T> Default for Taps<T> {
    fn default() -> Self {
        Taps {
            active: AtomicBool::new(false),
            taps: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Clone> Taps<T> {
    /// Whether anyone listens (one relaxed load: the per-frame cost when nobody does).
    fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    fn attach(&self, count: Option<u64>) -> tokio::sync::mpsc::Receiver<T> {
        let (tx, rx) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
        lock(&self.taps).push(Tap {
            tx,
            remaining: count,
        });
        self.active.store(true, Ordering::Release);
        rx
    }

    /// Hands `item` to every listener; a full channel (slow reader) skips it, a closed one
    /// (reader gone) or a finished count detaches the listener.
    fn offer(&self, item: T) {
        let mut taps = lock(&self.taps);
        taps.retain_mut(|tap| {
            match tap.tx.try_send(item.clone()) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => return true,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
            }
            match tap.remaining.as_mut() {
                Some(left) => {
                    *left -= 1;
                    *left > 0
                }
                None => true,
            }
        });
        if taps.is_empty() {
            self.active.store(false, Ordering::Release);
        }
    }
}

/// What the data plane did with one frame that entered a traced port (`weft trace`): the
/// bridge's decision step by step, then what became of the frame.
#[derive(Debug, Clone)]
pub struct FrameTrace {
    pub at: SystemTime,
    pub in_port: PortId,
    /// The frame's first octets (its headers), for a summary line.
    pub head: Vec<u8>,
    /// The frame's length (without the virtio_net_hdr).
    pub len: usize,
    /// The segment size of a GSO superframe.
    pub gso_size: Option<u16>,
    pub steps: Vec<weft_switch::TraceStep>,
    pub outcome: Vec<TraceOutcome>,
}

/// What became of a traced frame after the bridge's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOutcome {
    /// Read whole but its virtio_net_hdr was invalid, or it did not fit the buffer.
    BadHeader(DropReason),
    /// Dropped by the bridge.
    Dropped(DropReason),
    /// Handed to the gateway's TCP/IP stack (TCP, ICMP echo to the outside, UDP to the
    /// gateway's address).
    ToStack,
    /// Handed to the gateway's services (DNS, outbound UDP NAT).
    ToService,
    /// The gateway's queue was full.
    GatewayBusy,
    /// The gateway answered it (ARP reply, echo reply) with a frame of `len` octets.
    GatewayReply { len: usize },
    /// Written to `port`.
    Sent { port: PortId },
    /// Writing to `port` failed.
    SendFailed { port: PortId },
    /// Not sent to tunnel port `port`: it came out of a tunnel (split horizon).
    SplitHorizon { port: PortId },
}

/// Octets of a traced frame kept for its summary (Ethernet, IPv4 and TCP/UDP headers).
const TRACE_HEAD: usize = 64;

struct PortIo {
    /// The TAP or packet socket; for a tunnel port a duplicate of the VXLAN socket (never
    /// read or written: frames go through `tunnel`).
    fd: OwnedFd,
    /// Set for a tunnel port: frames written to it are encapsulated to a remote VTEP.
    tunnel: Option<TunnelOut>,
    /// Milliseconds since the data plane started when a frame last arrived (0: never);
    /// kept for tunnel ports ("last heard" of a peer).
    last_rx_ms: std::sync::atomic::AtomicU64,
    worker: usize,
    /// Live captures: pcap records of every frame in and out.
    captures: Taps<Bytes>,
    /// Live traces: the decisions taken for frames coming in.
    traces: Taps<Arc<FrameTrace>>,
}

type PortTable = Vec<Option<Arc<PortIo>>>;

struct Worker {
    epoll: Epoll,
    wake: EventFd,
    ports: std::sync::atomic::AtomicUsize,
}

/// The data plane shared between the worker threads and the control plane.
pub struct Dataplane {
    bridge: Mutex<Bridge>,
    /// Indexed by `PortId.0`.
    ports: RwLock<PortTable>,
    workers: Vec<Worker>,
    stop: AtomicBool,
    origin: Instant,
    busy_poll: Duration,
    /// The gateway's runtime (its stack and services), once the daemon has started it.
    gateway: std::sync::OnceLock<Arc<dyn GatewayLink>>,
    /// The VTEP's sockets, opened with the first overlay network.
    vxlan: std::sync::OnceLock<Arc<VxlanSockets>>,
    /// Which peer port a VXLAN datagram belongs to.
    tunnels: RwLock<TunnelTable>,
    /// Datagrams received on and sent from the VXLAN socket, and what was dropped there.
    vxlan_counters: Mutex<PortCounters>,
}

/// UDP port of the gateway's DNS service (RFC 1035 §4.2.1).
pub const DNS_PORT: u16 = 53;
/// Requests for gateway services that may wait before new ones are dropped.
pub const SERVICE_QUEUE: usize = 1024;

/// A datagram for one of the gateway's services (DNS, outbound NAT), handed off the fast
/// path: answering may wait on an upstream resolver or an outside host.
#[derive(Debug)]
pub struct ServiceRequest {
    pub port: PortId,
    pub gateway: GatewayConfig,
    pub datagram: UdpToGateway,
    pub payload: Vec<u8>,
}

/// What the data plane needs of the gateway's runtime: where frames for the gateway go that
/// the switch does not answer itself. The runtime implements it; the data plane never
/// imports the runtime (the arrow points one way).
pub trait GatewayLink: Send + Sync {
    /// Whether the runtime's TCP/IP stack takes `frame` (TCP, ICMP echo to the outside, UDP
    /// to the gateway's own address other than DNS).
    fn stack_takes(&self, frame: &[u8], gateway: &GatewayConfig) -> bool;
    /// Queues a frame for the stack without blocking; false when its queue is full.
    fn try_to_stack(&self, port: PortId, gateway: GatewayConfig, frame: &[u8]) -> bool;
    /// Queues a datagram for the services (DNS, outbound UDP NAT); false when full.
    fn try_to_services(&self, request: ServiceRequest) -> bool;
}

/// Errors of data-plane bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(transparent)]
    Bridge(#[from] weft_switch::BridgeError),
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    #[error("port {0:?} is not attached to the data plane")]
    UnknownPort(PortId),
    #[error(transparent)]
    Tunnel(#[from] crate::dataplane::vxlan::TunnelError),
    #[error("no VXLAN socket is open (create an overlay network first)")]
    NoVtep,
}

fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop forwarding; the tables stay consistent per operation.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dataplane {
    /// `workers`: forwarding threads (at least 1). `busy_poll`: how long a worker keeps
    /// polling after traffic before it sleeps.
    pub fn new(workers: usize, busy_poll: Duration) -> Result<Arc<Dataplane>, DataplaneError> {
        let workers = (0..workers.max(1))
            .map(|_| {
                let epoll = Epoll::new()?;
                let wake = EventFd::new()?;
                epoll.add(wake.fd(), WAKE_TOKEN)?;
                Ok(Worker {
                    epoll,
                    wake,
                    ports: Default::default(),
                })
            })
            .collect::<Result<Vec<_>, sys::SysError>>()?;
        Ok(Arc::new(Dataplane {
            bridge: Mutex::new(Bridge::new()),
            ports: RwLock::new(Vec::new()),
            workers,
            stop: AtomicBool::new(false),
            origin: Instant::now(),
            busy_poll,
            gateway: std::sync::OnceLock::new(),
            vxlan: std::sync::OnceLock::new(),
            tunnels: RwLock::new(TunnelTable::default()),
            vxlan_counters: Mutex::new(PortCounters::default()),
        }))
    }

    /// The data plane's clock: milliseconds since it started.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.origin.elapsed().as_millis() as u64)
    }

    fn ports_read(&self) -> RwLockReadGuard<'_, PortTable> {
        self.ports.read().unwrap_or_else(|p| p.into_inner())
    }

    fn ports_write(&self) -> RwLockWriteGuard<'_, PortTable> {
        self.ports.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the bridge (tables, counters) under its lock.
    pub fn with_bridge<R>(&self, f: impl FnOnce(&mut Bridge) -> R) -> R {
        f(&mut lock(&self.bridge))
    }

    pub fn add_network(&self, id: NetworkId, config: NetworkConfig) -> Result<(), DataplaneError> {
        Ok(lock(&self.bridge).add_network(id, config)?)
    }

    pub fn remove_network(&self, id: NetworkId) -> Result<(), DataplaneError> {
        Ok(lock(&self.bridge).remove_network(id)?)
    }

    /// Attaches an open port fd (TAP or AF_PACKET with vnet headers, non-blocking) to the
    /// worker with the fewest ports. On failure the fd comes back so the caller can remove
    /// the interface.
    pub fn add_port(
        &self,
        port: PortId,
        network: NetworkId,
        fd: OwnedFd,
    ) -> Result<(), (DataplaneError, OwnedFd)> {
        let mut table = self.ports_write();
        if let Err(e) = lock(&self.bridge).add_port(port, network) {
            return Err((e.into(), fd));
        }
        let (index, worker) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.ports.load(Ordering::Relaxed))
            .expect("at least one worker");
        if let Err(e) = worker.epoll.add(fd.as_fd(), u64::from(port.0)) {
            let _ = lock(&self.bridge).remove_port(port);
            return Err((e.into(), fd));
        }
        worker.ports.fetch_add(1, Ordering::Relaxed);
        let idx = port.0 as usize;
        if table.len() <= idx {
            table.resize_with(idx + 1, || None);
        }
        table[idx] = Some(Arc::new(PortIo {
            fd,
            tunnel: None,
            last_rx_ms: Default::default(),
            worker: index,
            captures: Taps::default(),
            traces: Taps::default(),
        }));
        Ok(())
    }

    /// Detaches a port and hands its fd back (the caller decides whether the interface goes).
    pub fn remove_port(&self, port: PortId) -> Result<OwnedFd, DataplaneError> {
        let io = {
            let mut table = self.ports_write();
            let io = table
                .get_mut(port.0 as usize)
                .and_then(Option::take)
                .ok_or(DataplaneError::UnknownPort(port))?;
            let worker = &self.workers[io.worker];
            if io.tunnel.is_some() {
                write_lock(&self.tunnels).remove_port(port);
            } else {
                let _ = worker.epoll.delete(io.fd.as_fd());
                worker.ports.fetch_sub(1, Ordering::Relaxed);
            }
            lock(&self.bridge).remove_port(port)?;
            io
        };
        // No worker holds the table lock any more, so this is the last reference.
        match Arc::try_unwrap(io) {
            Ok(io) => Ok(io.fd),
            Err(shared) => shared
                .fd
                .try_clone()
                .map_err(|source| sys::SysError::Io {
                    op: "duplicate port fd".into(),
                    source,
                })
                .map_err(Into::into),
        }
    }

    /// Starts a capture on `port`; frames arrive as pcap records on the returned channel,
    /// which closes after `count` frames (if given).
    pub fn add_capture(
        &self,
        port: PortId,
        count: Option<u64>,
    ) -> Result<tokio::sync::mpsc::Receiver<Bytes>, DataplaneError> {
        self.with_port_io(port, |io| io.captures.attach(count))
    }

    /// Starts a trace on `port`: for each frame entering it (up to `count`, if given), what
    /// the bridge decided and what became of the frame.
    pub fn add_trace(
        &self,
        port: PortId,
        count: Option<u64>,
    ) -> Result<tokio::sync::mpsc::Receiver<Arc<FrameTrace>>, DataplaneError> {
        self.with_port_io(port, |io| io.traces.attach(count))
    }

    fn with_port_io<R>(
        &self,
        port: PortId,
        f: impl FnOnce(&PortIo) -> R,
    ) -> Result<R, DataplaneError> {
        let table = self.ports_read();
        let io = table
            .get(port.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(DataplaneError::UnknownPort(port))?;
        Ok(f(io))
    }

    /// Connects the gateway's runtime: from now on frames for its stack and services go
    /// there.
    pub fn connect_gateway(&self, link: Arc<dyn GatewayLink>) {
        let _ = self.gateway.set(link);
    }

    /// Sends a frame the control plane built (a gateway service's answer) out of `port`.
    /// Returns whether the port took it.
    pub fn inject(&self, port: PortId, frame: &[u8]) -> bool {
        let mut packet = vec![0u8; VNET_HDR_LEN + frame.len()];
        packet[VNET_HDR_LEN..].copy_from_slice(frame);
        self.inject_packet(port, &packet)
    }

    /// Like [`Dataplane::inject`] for a frame preceded by its virtio_net_hdr (a GSO
    /// superframe from the gateway's stack, or a plain header).
    pub fn inject_packet(&self, port: PortId, packet: &[u8]) -> bool {
        let table = self.ports_read();
        let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) else {
            return false;
        };
        if packet.len() < VNET_HDR_LEN {
            return false;
        }
        let frame = &packet[VNET_HDR_LEN..];
        let mut scratch = TunnelScratch::default();
        let ok = self.write_out(io, packet, &mut scratch);
        if ok {
            capture(io, frame);
            lock(&self.bridge).record_tx(port, frame.len());
        } else {
            lock(&self.bridge).record_drop(port, DropReason::TxError);
        }
        ok
    }

    /// Opens the VTEP (once): UDP `port` on `local` for receiving, watched by the first
    /// worker. Asking again with the same port is a no-op.
    pub fn open_vxlan(
        &self,
        local: Option<std::net::Ipv4Addr>,
        port: u16,
    ) -> Result<(), DataplaneError> {
        if let Some(open) = self.vxlan.get() {
            return if open.port == port {
                Ok(())
            } else {
                Err(crate::dataplane::vxlan::TunnelError::OtherPort {
                    open: open.port,
                    wanted: port,
                }
                .into())
            };
        }
        let sockets = Arc::new(VxlanSockets::open(local, port)?);
        self.workers[0]
            .epoll
            .add(sockets.recv.as_fd(), VXLAN_TOKEN)?;
        let _ = self.vxlan.set(sockets);
        Ok(())
    }

    /// Accepts datagrams of `vni` (an overlay network's).
    pub fn add_vni(&self, vni: weft_vtep::Vni) {
        write_lock(&self.tunnels).add_vni(vni);
    }

    /// Stops accepting datagrams of `vni`.
    pub fn remove_vni(&self, vni: weft_vtep::Vni) {
        write_lock(&self.tunnels).remove_vni(vni);
    }

    /// Adds a tunnel port to `network`: frames forwarded to it go to the VTEP `remote` in
    /// `vni`, and datagrams from `remote`'s address in `vni` enter the bridge through it.
    pub fn add_tunnel_port(
        &self,
        port: PortId,
        network: NetworkId,
        remote: std::net::SocketAddrV4,
        vni: weft_vtep::Vni,
    ) -> Result<(), DataplaneError> {
        let sockets = self.vxlan.get().cloned().ok_or(DataplaneError::NoVtep)?;
        let fd = sockets
            .recv
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| sys::SysError::Io {
                op: "duplicate the VXLAN socket".into(),
                source,
            })?;
        let mut table = self.ports_write();
        lock(&self.bridge).add_port(port, network)?;
        let idx = port.0 as usize;
        if table.len() <= idx {
            table.resize_with(idx + 1, || None);
        }
        table[idx] = Some(Arc::new(PortIo {
            fd,
            tunnel: Some(TunnelOut {
                remote,
                vni,
                sockets,
            }),
            last_rx_ms: Default::default(),
            worker: 0,
            captures: Taps::default(),
            traces: Taps::default(),
        }));
        write_lock(&self.tunnels).add_peer(*remote.ip(), vni, port);
        Ok(())
    }

    /// When a datagram last arrived through tunnel port `port`.
    pub fn last_heard(&self, port: PortId) -> Option<Instant> {
        let table = self.ports_read();
        let ms = table
            .get(port.0 as usize)
            .and_then(Option::as_ref)?
            .last_rx_ms
            .load(Ordering::Relaxed);
        (ms > 0).then(|| self.origin + Duration::from_millis(ms))
    }

    /// Counters of the VXLAN socket (None before the first overlay network).
    pub fn vxlan_counters(&self) -> Option<(u16, PortCounters)> {
        let port = self.vxlan.get()?.port;
        Some((port, lock(&self.vxlan_counters).clone()))
    }

    /// Writes `packet` (virtio_net_hdr + frame) out of `io`: straight to its fd, or for a
    /// tunnel port segmented, checksummed and encapsulated.
    fn write_out(&self, io: &PortIo, packet: &[u8], scratch: &mut TunnelScratch) -> bool {
        let Some(tunnel) = &io.tunnel else {
            return sys::write_fd(io.fd.as_fd(), packet).is_ok();
        };
        let Some(hdr) = VnetHdr::parse(packet) else {
            return false;
        };
        let frame = &packet[VNET_HDR_LEN..];
        let TunnelScratch {
            segment,
            run,
            superframe,
        } = scratch;
        let sockets = &tunnel.sockets;
        let mut sent = 0usize;
        let mut failed = false;
        let mut send = |inner: &[u8]| match sockets.push(run, tunnel.remote, tunnel.vni, inner) {
            Ok(n) => sent += n,
            Err(_) => failed = true,
        };
        if hdr.is_gso() {
            if hdr.gso_type & !weft_wire::VIRTIO_NET_HDR_GSO_ECN
                != weft_wire::VIRTIO_NET_HDR_GSO_TCPV4
            {
                lock(&self.vxlan_counters).record_drop(DropReason::TunnelUnsupported);
                return false;
            }
            match sockets.send_superframe(
                superframe,
                tunnel.remote,
                tunnel.vni,
                frame,
                usize::from(hdr.gso_size),
            ) {
                Ok(n) => sent += n,
                Err(crate::dataplane::vxlan::SuperframeError::Segment(_)) => {
                    lock(&self.vxlan_counters).record_drop(DropReason::TunnelUnsupported);
                    return false;
                }
                Err(crate::dataplane::vxlan::SuperframeError::Send { sent: part, .. }) => {
                    sent += part;
                    failed = true;
                }
                Err(crate::dataplane::vxlan::SuperframeError::TooLarge { sent: part }) => {
                    sent += part;
                    lock(&self.vxlan_counters).record_drop(DropReason::TunnelUnsupported);
                    failed = true;
                }
            }
        } else if hdr.needs_csum() {
            segment.clear();
            segment.extend_from_slice(frame);
            if !weft_wire::gso::complete_checksum(
                segment,
                usize::from(hdr.csum_start),
                usize::from(hdr.csum_offset),
            ) {
                lock(&self.vxlan_counters).record_drop(DropReason::TunnelUnsupported);
                return false;
            }
            send(segment);
        } else {
            send(frame);
        }
        match sockets.flush(run, tunnel.remote) {
            Ok(n) => sent += n,
            Err(_) => failed = true,
        }
        let mut counters = lock(&self.vxlan_counters);
        if sent > 0 {
            counters.record_tx(sent);
        }
        if failed {
            counters.record_drop(DropReason::TxError);
        }
        !failed
    }

    /// Reads up to [`BATCH`] datagrams from the VXLAN socket and forwards their inner
    /// frames as received on the sending peer's tunnel port.
    fn drain_vxlan(
        &self,
        table: &PortTable,
        now: Timestamp,
        buf: &mut [u8],
        scratch: &mut Scratch,
    ) -> bool {
        let Some(sockets) = self.vxlan.get() else {
            return false;
        };
        // The datagram lands 2 bytes in: its 8-byte VXLAN header then ends where a
        // virtio_net_hdr would, so the inner frame sits where `forward` expects a frame.
        const AT: usize = VNET_HDR_LEN - weft_vtep::VXLAN_HEADER_LEN;
        let mut moved = false;
        // Receive offload: consecutive TCP segments of one connection from one peer are
        // merged into a GSO superframe, so a bulk transfer costs one write into the container
        // per up to 64 KiB instead of one per segment.
        let mut gro = Coalescer::new(VNET_HDR_LEN + 14);
        let mut gro_port: Option<PortId> = None;
        for _ in 0..BATCH {
            // With UDP_GRO the kernel may hand over a run of one peer's datagrams at once,
            // back to back, each `segment` octets (the last may be shorter).
            let (n, src, segment) =
                match sys::recv_udp_segments(sockets.recv.as_fd(), &mut buf[AT..]) {
                    Ok(r) => r,
                    Err(_) => break,
                };
            moved = true;
            let Some(src) = src else {
                continue;
            };
            let segment = segment.map_or(n, usize::from).max(1);
            let mut next = AT;
            // At least once: an empty datagram is classified (and counted) too.
            let mut first = true;
            while first || next < AT + n {
                first = false;
                // `off`: where this datagram starts; its inner frame starts 8 octets later, and
                // the 10-octet virtio_net_hdr goes just before that (over the end of the
                // datagram before it, already handled).
                let off = next;
                let len = segment.min(AT + n - next);
                next += len;
                let datagram = &buf[off..off + len];
                let classified = read_lock(&self.tunnels).classify(*src.ip(), datagram);
                let (port, inner) = match classified {
                    Ok(ok) => ok,
                    Err(reason) => {
                        let mut c = lock(&self.vxlan_counters);
                        c.record_rx(len);
                        c.record_drop(reason);
                        continue;
                    }
                };
                lock(&self.vxlan_counters).record_rx(len);
                let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) else {
                    continue;
                };
                io.last_rx_ms
                    .store(now.as_millis().max(1), Ordering::Relaxed);
                let start = off - AT;
                let end = off + inner.end;
                let inner_frame = &buf[start + VNET_HDR_LEN..end];
                let hdr = match crate::dataplane::vxlan::partial_l4_checksum(inner_frame) {
                    Some((csum_start, csum_offset)) => {
                        let mut hdr = VnetHdr {
                            flags: weft_wire::VIRTIO_NET_HDR_F_NEEDS_CSUM,
                            csum_start,
                            csum_offset,
                            ..VnetHdr::default()
                        };
                        // A sender on this host (a kernel vxlan device on a veth underlay) may
                        // hand over a whole TCP superframe in one datagram: pass it on as one.
                        if inner_frame.len() > 1514 && csum_offset == 16 {
                            let mtu = self.with_bridge(|b| {
                                b.port_network(port)
                                    .and_then(|n| b.network_config(n))
                                    .map_or(1500, |c| c.mtu)
                            });
                            let l4 = usize::from(csum_start);
                            let thl =
                                usize::from(inner_frame.get(l4 + 12).copied().unwrap_or(0x50) >> 4)
                                    * 4;
                            let headers = (l4 - 14 + thl) as u16;
                            hdr.gso_type = weft_wire::VIRTIO_NET_HDR_GSO_TCPV4;
                            hdr.gso_size = mtu.saturating_sub(headers).max(1);
                            hdr.hdr_len = (l4 + thl) as u16;
                        }
                        hdr
                    }
                    None => VnetHdr::default(),
                };
                // Only segments whose checksum holds are merged: the superframe's checksum
                // is left to the container's kernel as verified, so a segment corrupted on
                // the underlay (a kernel vxlan peer sends no outer UDP checksum) goes on by
                // itself, for that kernel to find and drop.
                let plain_tcp = hdr == VnetHdr::default()
                    && inner_frame.len() > 14 + 20
                    && inner_frame[12..14] == [0x08, 0x00]
                    && inner_frame[14 + 9] == 6
                    && weft_wire::coalesce::tcp_checksum_ok(&inner_frame[14..]);
                if plain_tcp {
                    if gro_port != Some(port) {
                        self.flush_gro(table, &mut gro, gro_port, now, scratch);
                        gro_port = Some(port);
                    }
                    // `buf[start..end]` is the datagram with its VXLAN header where the
                    // virtio_net_hdr goes: the layout the offload builds superframes in.
                    if let Some(done) = gro.push_slice(&buf[start..end], &mut scratch.gro_pool) {
                        self.forward_owned(table, port, now, done, scratch);
                    }
                    continue;
                }
                self.flush_gro(table, &mut gro, gro_port, now, scratch);
                hdr.write(&mut buf[start..start + VNET_HDR_LEN]);
                self.forward(table, io, port, now, &buf[start..end], false, scratch);
            }
        }
        self.flush_gro(table, &mut gro, gro_port, now, scratch);
        moved
    }

    /// Forwards what the receive offload holds as received on `port`.
    fn flush_gro(
        &self,
        table: &PortTable,
        gro: &mut Coalescer,
        port: Option<PortId>,
        now: Timestamp,
        scratch: &mut Scratch,
    ) {
        if let (Some(port), Some(packet)) = (port, gro.finish()) {
            self.forward_owned(table, port, now, packet, scratch);
        }
    }

    /// Forwards a packet (virtio_net_hdr + frame) the receive offload built, then keeps its
    /// buffer for reuse.
    fn forward_owned(
        &self,
        table: &PortTable,
        port: PortId,
        now: Timestamp,
        packet: Vec<u8>,
        scratch: &mut Scratch,
    ) {
        if let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) {
            self.forward(table, io, port, now, &packet, false, scratch);
        }
        if scratch.gro_pool.len() < BATCH {
            scratch.gro_pool.push(packet);
        }
    }

    /// Asks the workers to exit.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.workers {
            w.wake.notify();
        }
    }

    /// Starts the worker threads.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        (0..self.workers.len())
            .map(|i| {
                let dp = Arc::clone(self);
                std::thread::Builder::new()
                    .name(format!("weft-dataplane-{i}"))
                    .spawn(move || dp.run(i))
            })
            .collect()
    }

    /// A worker's loop: wait for ready ports, drain each, forward. After traffic the worker
    /// polls (epoll with no timeout, yielding between empty polls) for the busy-poll window,
    /// then sleeps in epoll until a port or the wake eventfd is ready.
    fn run(&self, index: usize) {
        let worker = &self.workers[index];
        let mut buf = vec![0u8; BUF_LEN];
        let mut scratch = Scratch {
            targets: Vec::new(),
            reply: vec![0u8; BUF_LEN],
            tunnel: TunnelScratch::default(),
            gro_pool: Vec::new(),
        };
        let mut ready: Vec<u64> = Vec::with_capacity(256);
        let mut last_traffic = Instant::now();
        let mut last_expire = Instant::now();
        // Set when a yield came back late: another thread wanted this CPU, so the worker
        // sleeps in epoll (a wake-up preempts at once) instead of spinning, until traffic.
        let mut yielded_late = false;
        while !self.stop.load(Ordering::Relaxed) {
            let spinning = !yielded_late && last_traffic.elapsed() < self.busy_poll;
            let timeout = if spinning { 0 } else { 1000 };
            if let Err(e) = worker.epoll.wait(&mut ready, 256, timeout) {
                log::error!("epoll_wait failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if ready.is_empty() {
                if spinning {
                    // Nothing to do yet: let any runnable thread on this CPU (the
                    // applications whose frames we forward) go first instead of burning the
                    // CPU they need. On two CPUs with a sender, a receiver and this worker,
                    // a spin that does not yield halves the sender's share. If the yield
                    // let another thread run (it came back late), that thread may keep the
                    // CPU for its whole time slice while frames wait: sleep instead, so that
                    // the next frame's wake-up preempts it.
                    let before = Instant::now();
                    std::thread::yield_now();
                    yielded_late = before.elapsed() > YIELD_LATE;
                }
                continue;
            }
            let now = self.now();
            let table = self.ports_read();
            let mut moved = false;
            for &token in &ready {
                if token == WAKE_TOKEN {
                    worker.wake.drain();
                    continue;
                }
                if token == VXLAN_TOKEN {
                    if self.drain_vxlan(&table, now, &mut buf, &mut scratch) {
                        moved = true;
                    }
                    continue;
                }
                let port = PortId(token as u32);
                match self.drain_port(&table, port, now, &mut buf, &mut scratch) {
                    Drained::Moved => moved = true,
                    Drained::Idle => {}
                    Drained::Gone => {
                        // The interface went away under us (its namespace was deleted, the
                        // container exited): stop polling the fd, or level-triggered epoll
                        // would report it forever. The endpoint stays until disconnected.
                        if let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) {
                            let _ = worker.epoll.delete(io.fd.as_fd());
                        }
                        log::warn!("port {port} lost its interface; disconnect its endpoint");
                    }
                }
            }
            drop(table);
            if moved {
                last_traffic = Instant::now();
                yielded_late = false;
            }
            if index == 0 && last_expire.elapsed() >= Duration::from_secs(1) {
                lock(&self.bridge).expire(now);
                last_expire = Instant::now();
            }
        }
    }

    /// A DNS query to the gateway's address or a UDP datagram routed through the gateway,
    /// if `frame` is one (and the services run).
    fn service_request(
        &self,
        bridge: &Bridge,
        in_port: PortId,
        frame: &[u8],
        checksum_partial: bool,
    ) -> Option<ServiceRequest> {
        self.gateway.get()?;
        let gateway = bridge.port_gateway(in_port)?;
        // DNS for the gateway itself, or a datagram routed through it (outbound NAT).
        let datagram = udp_via_gateway(frame, &gateway, checksum_partial)
            .filter(|d| d.dst_ip != gateway.ip || d.dst_port == DNS_PORT)?;
        Some(ServiceRequest {
            port: in_port,
            gateway,
            payload: frame[datagram.payload.clone()].to_vec(),
            datagram,
        })
    }

    /// Reads up to [`BATCH`] frames from `port` and forwards each.
    fn drain_port(
        &self,
        table: &PortTable,
        port: PortId,
        now: Timestamp,
        buf: &mut [u8],
        scratch: &mut Scratch,
    ) -> Drained {
        let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) else {
            return Drained::Idle;
        };
        let mut drained = Drained::Idle;
        for _ in 0..BATCH {
            let n = match sys::read_fd(io.fd.as_fd(), buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // EBADFD: the TAP was deleted; ENXIO/ENODEV: the device is gone.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBADFD | libc::ENXIO | libc::ENODEV)
                    ) =>
                {
                    return Drained::Gone;
                }
                Err(e) => {
                    // ENETDOWN on a packet socket whose link went down, reported once:
                    // nothing to read until it comes back.
                    log::debug!("read from port {port} failed: {e}");
                    break;
                }
            };
            drained = Drained::Moved;
            self.forward(table, io, port, now, &buf[..n], n == buf.len(), scratch);
        }
        drained
    }

    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        table: &PortTable,
        in_io: &PortIo,
        in_port: PortId,
        now: Timestamp,
        packet: &[u8],
        truncated: bool,
        scratch: &mut Scratch,
    ) {
        // Only while someone traces this port: the decision, step by step.
        let mut trace = in_io.traces.active().then(|| trace_start(in_port, packet));
        let hdr = if truncated {
            None
        } else {
            VnetHdr::parse(packet)
        };
        let Some(hdr) = hdr else {
            let reason = if truncated {
                DropReason::Truncated
            } else {
                DropReason::BadVnetHeader
            };
            lock(&self.bridge).record_drop(in_port, reason);
            trace_end(in_io, trace, &[TraceOutcome::BadHeader(reason)]);
            return;
        };
        if let Some(t) = trace.as_mut() {
            t.gso_size = hdr.is_gso().then_some(hdr.gso_size);
        }
        let frame = &packet[VNET_HDR_LEN..];
        capture(in_io, frame);
        let targets = &mut scratch.targets;
        targets.clear();
        {
            let mut bridge = lock(&self.bridge);
            let verdict = match trace.as_mut() {
                Some(t) => bridge.process_traced(now, in_port, frame, hdr.is_gso(), &mut |step| {
                    t.steps.push(step)
                }),
                None => bridge.process(now, in_port, frame, hdr.is_gso()),
            };
            match verdict {
                Verdict::Forward(out) => targets.push(out),
                Verdict::Flood(set) => targets.extend(set),
                Verdict::Drop(reason) => {
                    drop(bridge);
                    trace_end(in_io, trace, &[TraceOutcome::Dropped(reason)]);
                    return;
                }
                Verdict::ToGateway => {
                    if let Some(link) = self.gateway.get() {
                        if let Some(gateway) = bridge
                            .port_gateway(in_port)
                            .filter(|gw| link.stack_takes(frame, gw))
                        {
                            drop(bridge);
                            let outcome = if link.try_to_stack(in_port, gateway, frame) {
                                TraceOutcome::ToStack
                            } else {
                                lock(&self.bridge).record_drop(in_port, DropReason::GatewayBusy);
                                TraceOutcome::GatewayBusy
                            };
                            trace_end(in_io, trace, &[outcome]);
                            return;
                        }
                    }
                    if let Some(request) =
                        self.service_request(&bridge, in_port, frame, hdr.needs_csum())
                    {
                        drop(bridge);
                        let queued = self
                            .gateway
                            .get()
                            .is_some_and(|link| link.try_to_services(request));
                        let outcome = if queued {
                            TraceOutcome::ToService
                        } else {
                            lock(&self.bridge).record_drop(in_port, DropReason::GatewayBusy);
                            TraceOutcome::GatewayBusy
                        };
                        trace_end(in_io, trace, &[outcome]);
                        return;
                    }
                    // The gateway's answer (ARP reply, echo reply) goes back out of the
                    // ingress port, with a plain virtio_net_hdr (no offload).
                    let reply = &mut scratch.reply;
                    let len = match bridge.gateway_reply(in_port, frame, &mut reply[VNET_HDR_LEN..])
                    {
                        Ok(len) => len,
                        Err(reason) => {
                            drop(bridge);
                            trace_end(in_io, trace, &[TraceOutcome::Dropped(reason)]);
                            return;
                        }
                    };
                    drop(bridge);
                    VnetHdr::default().write(&mut reply[..VNET_HDR_LEN]);
                    let packet = &reply[..VNET_HDR_LEN + len];
                    let outcome = if self.write_out(in_io, packet, &mut scratch.tunnel) {
                        capture(in_io, &packet[VNET_HDR_LEN..]);
                        lock(&self.bridge).record_tx(in_port, len);
                        TraceOutcome::GatewayReply { len }
                    } else {
                        lock(&self.bridge).record_drop(in_port, DropReason::TxError);
                        TraceOutcome::SendFailed { port: in_port }
                    };
                    trace_end(in_io, trace, &[outcome]);
                    return;
                }
            }
        }
        // Split horizon: what came out of a tunnel never goes into another one (every node
        // replicates to all its peers itself).
        let from_tunnel = in_io.tunnel.is_some();
        // Write to every output; keep only the ports that took the frame.
        let tunnel_scratch = &mut scratch.tunnel;
        let mut outcome = trace.as_ref().map(|_| Vec::with_capacity(targets.len()));
        targets.retain(|&out| {
            let io = table.get(out.0 as usize).and_then(Option::as_ref);
            if from_tunnel && io.is_some_and(|io| io.tunnel.is_some()) {
                if let Some(o) = outcome.as_mut() {
                    o.push(TraceOutcome::SplitHorizon { port: out });
                }
                return false;
            }
            let ok = io.is_some_and(|io| self.write_out(io, packet, tunnel_scratch));
            match io {
                Some(io) if ok => capture(io, frame),
                _ => lock(&self.bridge).record_drop(out, DropReason::TxError),
            }
            if let Some(o) = outcome.as_mut() {
                o.push(if ok {
                    TraceOutcome::Sent { port: out }
                } else {
                    TraceOutcome::SendFailed { port: out }
                });
            }
            ok
        });
        if !targets.is_empty() {
            let mut bridge = lock(&self.bridge);
            for &out in targets.iter() {
                bridge.record_tx(out, frame.len());
            }
        }
        trace_end(in_io, trace, outcome.as_deref().unwrap_or_default());
    }
}

/// A trace record for a frame entering `in_port` (virtio_net_hdr + frame in `packet`).
fn trace_start(in_port: PortId, packet: &[u8]) -> FrameTrace {
    let frame = packet.get(VNET_HDR_LEN..).unwrap_or_default();
    FrameTrace {
        at: SystemTime::now(),
        in_port,
        head: frame[..frame.len().min(TRACE_HEAD)].to_vec(),
        len: frame.len(),
        gso_size: None,
        steps: Vec::new(),
        outcome: Vec::new(),
    }
}

/// Hands a finished trace record to the port's tracers.
fn trace_end(io: &PortIo, trace: Option<FrameTrace>, outcome: &[TraceOutcome]) {
    if let Some(mut t) = trace {
        t.outcome.extend_from_slice(outcome);
        io.traces.offer(Arc::new(t));
    }
}

/// What one visit to a ready port found.
enum Drained {
    Moved,
    Idle,
    Gone,
}

/// Per-worker buffers reused for every frame.
struct Scratch {
    /// Output ports of one frame.
    targets: Vec<PortId>,
    /// The gateway's reply to one frame (virtio_net_hdr + frame).
    reply: Vec<u8>,
    tunnel: TunnelScratch,
    /// Buffers of the VXLAN receive offload, reused.
    gro_pool: Vec<Vec<u8>>,
}

/// Buffers for frames entering a tunnel: one frame whose checksum is completed, the
/// datagrams of one send, the segments of one superframe.
#[derive(Default)]
struct TunnelScratch {
    segment: Vec<u8>,
    run: crate::dataplane::vxlan::DatagramRun,
    superframe: crate::dataplane::vxlan::SegmentScratch,
}

/// Copies `frame` to the port's live captures (only while someone captures).
fn capture(io: &PortIo, frame: &[u8]) {
    if io.captures.active() {
        io.captures.offer(pcap::record(SystemTime::now(), frame));
    }
}
