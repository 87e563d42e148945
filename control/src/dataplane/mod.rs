//! The data plane: run-to-completion workers that read frames from ports, ask the pure
//! [`Bridge`] for a verdict and write the frames straight to the output fd(s). This file
//! holds the [`Dataplane`] (its port table and public API); `worker` the threads' loop,
//! `forward` one frame's way from the decision to the output, `vxlan_rx` the tunnel's
//! receive path, `counters` the ports' atomic counters, `monitor` captures and traces.
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
//! Shared state: the bridge sits behind a mutex a frame takes once, for the decision only;
//! the ports' counters are atomics on the port table's entries, counted outside that lock.
//! The port table sits behind a read-write lock that a worker read-locks once per wake-up
//! and the control plane write-locks to add or remove a port (so a port's fd is never closed
//! while a worker uses it). Lock order: the port table before the bridge.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use weft_switch::{
    Bridge, DropReason, GatewayConfig, GatewayTask, NetworkConfig, NetworkId, PortBinding,
    PortCounters, PortId, Timestamp,
};

mod counters;
mod forward;
mod monitor;
mod outer;
pub mod pcap;
pub mod pcapng;
mod shaping;
mod simulate;
pub mod trace_text;
pub mod vxlan;
mod vxlan_rx;
mod worker;

pub use monitor::{CaptureRecord, FrameTrace, TraceOutcome, CAPTURE_QUEUE};
pub use simulate::{Simulated, VXLAN_OVERHEAD};

use counters::PortStats;
use forward::TunnelScratch;
use monitor::Monitors;
use vxlan::{TunnelOut, TunnelTable, VxlanSockets};
use weft_sys::{self as sys, Epoll, EventFd};
use weft_wire::VNET_HDR_LEN;

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
/// One port of the data plane: its fd, its counters, its listeners.
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
    /// Frames and octets in and out, drops by reason.
    stats: PortStats,
    /// Live captures: every frame in and out.
    captures: Monitors<CaptureRecord>,
    /// Live `--outer` captures of a tunnel port: its VXLAN datagrams.
    outer: Monitors<CaptureRecord>,
    /// Live traces: the decisions taken for frames coming in.
    traces: Monitors<Arc<FrameTrace>>,
    /// Impairment and link state (`weft impair`, `weft link`).
    shaping: shaping::PortShaping,
}

impl PortIo {
    fn new(fd: OwnedFd, tunnel: Option<TunnelOut>, worker: usize) -> PortIo {
        PortIo {
            fd,
            tunnel,
            last_rx_ms: Default::default(),
            worker,
            stats: PortStats::default(),
            captures: Monitors::default(),
            outer: Monitors::default(),
            traces: Monitors::default(),
            shaping: Default::default(),
        }
    }
}

type PortTable = Vec<Option<Arc<PortIo>>>;

/// Frames of a capture, tagged with their interface (0 for one port).
pub type CaptureReceiver = tokio::sync::mpsc::Receiver<(u32, CaptureRecord)>;

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
    vxlan_stats: PortStats,
    /// Wakes the thread that sends impaired ports' held frames.
    shaper_wake: shaping::ShaperWake,
}

/// What the data plane needs of the gateway's runtime: where the frames go whose
/// [`GatewayTask`] is not the switch's own answer (DNS, UDP and TCP to the outside, published
/// ports, echo to the outside). The runtime implements it; the data plane never imports the
/// runtime (the arrow points one way).
pub trait GatewayLink: Send + Sync {
    /// Queues a frame and its task for the runtime without blocking; false when its queue
    /// is full.
    fn try_hand_over(&self, work: HandOver, frame: &[u8]) -> bool;
}

/// A frame's work for the gateway's runtime: where it came from and its task, decided by
/// the bridge from one parse of the frame (under the lock that decided it).
#[derive(Debug, Clone)]
pub struct HandOver {
    pub port: PortId,
    pub network: NetworkId,
    pub gateway: GatewayConfig,
    pub task: GatewayTask,
    /// The endpoint registered on the port (its MAC and address), if any: where the
    /// runtime's replies to this port go, never learned from frames.
    pub endpoint: Option<PortBinding>,
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
            vxlan_stats: PortStats::default(),
            shaper_wake: Default::default(),
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

    /// Runs `f` with the bridge (its tables) under its lock. The ports' counters are not
    /// there: see [`Dataplane::port_counters`] and [`Dataplane::record_drop`].
    pub fn with_bridge<R>(&self, f: impl FnOnce(&mut Bridge) -> R) -> R {
        f(&mut lock(&self.bridge))
    }

    /// Counts a drop on `port`'s counters (a frame the gateway's runtime could not take).
    /// Takes no bridge lock.
    pub fn record_drop(&self, port: PortId, reason: DropReason) {
        let table = self.ports_read();
        if let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) {
            io.stats.record_drop(reason);
        }
    }

    /// A snapshot of `port`'s counters (None for a port the data plane does not have). Takes
    /// no bridge lock.
    pub fn port_counters(&self, port: PortId) -> Option<PortCounters> {
        let table = self.ports_read();
        let io = table.get(port.0 as usize).and_then(Option::as_ref)?;
        Some(io.stats.snapshot())
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
        table[idx] = Some(Arc::new(PortIo::new(fd, None, index)));
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

    /// Starts a capture on `port`; frames arrive on the returned channel, which closes after
    /// `count` frames (if given). `outer`: a tunnel port's VXLAN datagrams instead.
    pub fn add_capture(
        &self,
        port: PortId,
        count: Option<u64>,
        outer: bool,
    ) -> Result<CaptureReceiver, DataplaneError> {
        self.with_port_io(port, |io| match outer {
            true => io.outer.attach(count),
            false => io.captures.attach(count),
        })
    }

    /// Adds `port` to a capture of several ports (`weft capture --network`): its frames go
    /// to `tx` tagged `tag`.
    pub fn add_capture_to(
        &self,
        port: PortId,
        tx: tokio::sync::mpsc::Sender<(u32, CaptureRecord)>,
        tag: u32,
    ) -> Result<(), DataplaneError> {
        self.with_port_io(port, |io| io.captures.attach_to(tx, tag, None))
    }

    /// Whether `port` is a tunnel port.
    pub fn is_tunnel(&self, port: PortId) -> bool {
        self.with_port_io(port, |io| io.tunnel.is_some())
            .unwrap_or(false)
    }

    /// Starts a trace on `port`: for each frame entering it (up to `count`, if given), what
    /// the bridge decided and what became of the frame.
    pub fn add_trace(
        &self,
        port: PortId,
        count: Option<u64>,
    ) -> Result<tokio::sync::mpsc::Receiver<(u32, Arc<FrameTrace>)>, DataplaneError> {
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
        let mut scratch = TunnelScratch::default();
        !matches!(
            self.emit(io, packet, &mut scratch),
            shaping::Emitted::Dropped(_)
        )
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
        let tunnel = TunnelOut {
            remote,
            vni,
            sockets,
        };
        table[idx] = Some(Arc::new(PortIo::new(fd, Some(tunnel), 0)));
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
        Some((port, self.vxlan_stats.snapshot()))
    }
}
