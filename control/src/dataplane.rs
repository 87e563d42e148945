//! The data plane: one run-to-completion worker that owns every port's fd.
//!
//! The worker waits in epoll, and for each ready port reads up to [`BATCH`] frames, asks the
//! pure [`Bridge`] for a verdict and writes the frame straight to the output fd(s). A frame is
//! read once into one reusable buffer and written from that same buffer: no channel hop and no
//! allocation per frame. Every frame on both port kinds carries the same 10-byte
//! `virtio_net_hdr`, which is passed through untouched, so TCP superframes (TSO/GSO) of up to
//! 64 KiB cross the switch whole.
//!
//! The control plane shares the worker's state through one mutex, which the worker takes once
//! per wake-up (not per frame).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use weft_switch::{Bridge, DropReason, NetworkConfig, NetworkId, PortId, Timestamp, Verdict};

use crate::pcap;
use crate::sys::{self, Epoll, EventFd, VnetHdr, VNET_HDR_LEN};

/// Frames read from one port per wake-up before the worker moves on to the next port.
pub const BATCH: usize = 64;
/// Largest frame the worker reads: a 64 KiB GSO superframe plus headers fits.
const BUF_LEN: usize = VNET_HDR_LEN + 65_535 + 14 + 4 + 1;
const WAKE_TOKEN: u64 = u64::MAX;
/// Default for how long the worker keeps polling after traffic before it sleeps in epoll
/// (adaptive spin): a sleeping thread's wake-up costs tens of microseconds of round-trip time.
pub const DEFAULT_BUSY_POLL: std::time::Duration = std::time::Duration::from_micros(50);
/// Frames a slow capture reader may fall behind before frames are skipped for it.
pub const CAPTURE_QUEUE: usize = 4096;

/// A live capture attached to one port.
struct CaptureTap {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    remaining: Option<u64>,
}

struct PortIo {
    fd: OwnedFd,
    captures: Vec<CaptureTap>,
}

struct SwitchState {
    bridge: Bridge,
    /// Indexed by `PortId.0`.
    ports: Vec<Option<PortIo>>,
    /// Reused per flood: the output ports of one frame.
    flood_scratch: Vec<PortId>,
    last_expire: Timestamp,
}

/// The data plane shared between the worker thread and the control plane.
pub struct Dataplane {
    state: Mutex<SwitchState>,
    epoll: Epoll,
    wake: EventFd,
    stop: AtomicBool,
    origin: Instant,
    busy_poll: std::time::Duration,
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
}

impl Dataplane {
    /// `busy_poll`: how long the worker keeps polling after traffic before it sleeps.
    pub fn new(busy_poll: std::time::Duration) -> Result<Arc<Dataplane>, DataplaneError> {
        let epoll = Epoll::new()?;
        let wake = EventFd::new()?;
        epoll.add(wake.fd(), WAKE_TOKEN)?;
        Ok(Arc::new(Dataplane {
            state: Mutex::new(SwitchState {
                bridge: Bridge::new(),
                ports: Vec::new(),
                flood_scratch: Vec::new(),
                last_expire: Timestamp::default(),
            }),
            epoll,
            wake,
            stop: AtomicBool::new(false),
            origin: Instant::now(),
            busy_poll,
        }))
    }

    /// The data plane's clock: milliseconds since it started.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.origin.elapsed().as_millis() as u64)
    }

    fn lock(&self) -> MutexGuard<'_, SwitchState> {
        // A panic while holding the lock cannot leave the bridge half-updated in a way that
        // matters more than stopping forwarding would, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the bridge (tables, counters) under the data-plane lock.
    pub fn with_bridge<R>(&self, f: impl FnOnce(&mut Bridge) -> R) -> R {
        f(&mut self.lock().bridge)
    }

    pub fn add_network(&self, id: NetworkId, config: NetworkConfig) -> Result<(), DataplaneError> {
        Ok(self.lock().bridge.add_network(id, config)?)
    }

    pub fn remove_network(&self, id: NetworkId) -> Result<(), DataplaneError> {
        Ok(self.lock().bridge.remove_network(id)?)
    }

    /// Attaches an open port fd (TAP or AF_PACKET with vnet headers, non-blocking). On
    /// failure the fd comes back so the caller can remove the interface.
    pub fn add_port(
        &self,
        port: PortId,
        network: NetworkId,
        fd: OwnedFd,
    ) -> Result<(), (DataplaneError, OwnedFd)> {
        let mut st = self.lock();
        if let Err(e) = st.bridge.add_port(port, network) {
            return Err((e.into(), fd));
        }
        if let Err(e) = self.epoll.add(fd.as_fd(), u64::from(port.0)) {
            let _ = st.bridge.remove_port(port);
            return Err((e.into(), fd));
        }
        let idx = port.0 as usize;
        if st.ports.len() <= idx {
            st.ports.resize_with(idx + 1, || None);
        }
        st.ports[idx] = Some(PortIo {
            fd,
            captures: Vec::new(),
        });
        Ok(())
    }

    /// Detaches a port and hands its fd back (the caller decides whether the interface goes).
    pub fn remove_port(&self, port: PortId) -> Result<OwnedFd, DataplaneError> {
        let mut st = self.lock();
        let io = st
            .ports
            .get_mut(port.0 as usize)
            .and_then(Option::take)
            .ok_or(DataplaneError::UnknownPort(port))?;
        let _ = self.epoll.delete(io.fd.as_fd());
        st.bridge.remove_port(port)?;
        Ok(io.fd)
    }

    /// Starts a capture on `port`; frames arrive as pcap records on the returned channel,
    /// which closes after `count` frames (if given).
    pub fn add_capture(
        &self,
        port: PortId,
        count: Option<u64>,
    ) -> Result<tokio::sync::mpsc::Receiver<Bytes>, DataplaneError> {
        let (tx, rx) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
        let mut st = self.lock();
        let io = st
            .ports
            .get_mut(port.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DataplaneError::UnknownPort(port))?;
        io.captures.push(CaptureTap {
            tx,
            remaining: count,
        });
        Ok(rx)
    }

    /// Asks the worker to exit.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
    }

    /// Starts the worker thread.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let dp = Arc::clone(self);
        std::thread::Builder::new()
            .name("weft-dataplane".into())
            .spawn(move || dp.run())
    }

    fn run(&self) {
        let mut buf = vec![0u8; BUF_LEN];
        let mut ready: Vec<u64> = Vec::with_capacity(256);
        let mut last_traffic = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let spinning = last_traffic.elapsed() < self.busy_poll;
            let timeout = if spinning { 0 } else { 1000 };
            ready.clear();
            if let Err(e) = self.epoll.wait(&mut ready, 256, timeout) {
                log::error!("epoll_wait failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let now = self.now();
            let mut st = self.lock();
            let mut moved = false;
            for &token in &ready {
                if token == WAKE_TOKEN {
                    self.wake.drain();
                    continue;
                }
                moved |= st.drain_port(PortId(token as u32), now, &mut buf);
            }
            if now.as_millis().saturating_sub(st.last_expire.as_millis()) >= 1000 {
                st.bridge.expire(now);
                st.last_expire = now;
            }
            drop(st);
            if moved {
                last_traffic = Instant::now();
            }
        }
    }
}

impl SwitchState {
    /// Reads up to [`BATCH`] frames from `port` and forwards each. Returns whether any frame moved.
    fn drain_port(&mut self, port: PortId, now: Timestamp, buf: &mut [u8]) -> bool {
        let mut moved = false;
        for _ in 0..BATCH {
            let Some(io) = self.ports.get(port.0 as usize).and_then(Option::as_ref) else {
                return moved;
            };
            let n = match sys::read_fd(io.fd.as_fd(), buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return moved,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EIO on a TAP whose link is down, ENETDOWN on a packet socket: nothing to
                    // read until it comes back; the epoll loop will tell us.
                    log::debug!("read from port {port:?} failed: {e}");
                    return moved;
                }
            };
            moved = true;
            self.forward(port, now, &buf[..n], n == buf.len());
        }
        moved
    }

    fn forward(&mut self, in_port: PortId, now: Timestamp, packet: &[u8], truncated: bool) {
        if truncated {
            self.bridge.record_drop(in_port, DropReason::Truncated);
            return;
        }
        let Some(hdr) = VnetHdr::parse(packet) else {
            self.bridge.record_drop(in_port, DropReason::BadVnetHeader);
            return;
        };
        let frame = &packet[VNET_HDR_LEN..];
        self.capture(in_port, frame);
        let single = match self.bridge.process(now, in_port, frame, hdr.is_gso()) {
            Verdict::Forward(out) => Some(out),
            Verdict::Flood(set) => {
                self.flood_scratch.clear();
                self.flood_scratch.extend(set);
                None
            }
            Verdict::Drop(_) => return,
        };
        match single {
            Some(out) => self.transmit(out, packet),
            None => {
                let targets = std::mem::take(&mut self.flood_scratch);
                for &out in &targets {
                    self.transmit(out, packet);
                }
                self.flood_scratch = targets;
            }
        }
    }

    fn transmit(&mut self, out: PortId, packet: &[u8]) {
        let Some(io) = self.ports.get(out.0 as usize).and_then(Option::as_ref) else {
            self.bridge.record_drop(out, DropReason::TxError);
            return;
        };
        match sys::write_fd(io.fd.as_fd(), packet) {
            Ok(_) => {
                let frame_len = packet.len() - VNET_HDR_LEN;
                self.bridge.record_tx(out, frame_len);
                self.capture(out, &packet[VNET_HDR_LEN..]);
            }
            Err(_) => self.bridge.record_drop(out, DropReason::TxError),
        }
    }

    /// Copies `frame` to the port's live captures (only while someone captures).
    fn capture(&mut self, port: PortId, frame: &[u8]) {
        let Some(io) = self.ports.get_mut(port.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if io.captures.is_empty() {
            return;
        }
        let record = pcap::record(SystemTime::now(), frame);
        io.captures.retain_mut(|tap| {
            match tap.tx.try_send(record.clone()) {
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
    }
}
