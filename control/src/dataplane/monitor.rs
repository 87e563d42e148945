//! Capture and trace listeners on a port (`weft capture`, `weft trace`): bounded channels the
//! workers feed only while someone listens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use weft_switch::{DropReason, PortId};
use weft_wire::VNET_HDR_LEN;

use bytes::Bytes;

use super::{lock, outer, PortIo};

/// Frames a slow capture reader may fall behind before frames are skipped for it.
pub const CAPTURE_QUEUE: usize = 4096;
/// Octets of a traced frame kept for its summary (Ethernet, IPv4 and TCP/UDP headers).
const TRACE_HEAD: usize = 64;

/// One live listener (a capture's frames or a trace's decisions) attached to a port: a
/// bounded channel, closed after `remaining` items if a count was given. Items go with the
/// listener's `tag` (a network capture's interface id: several ports feed one channel).
struct Monitor<T> {
    tx: tokio::sync::mpsc::Sender<(u32, T)>,
    tag: u32,
    remaining: Option<u64>,
}

/// A frame crossing a port, for a capture: when, which way (out of the port toward its
/// endpoint or peer, or in from it), the octets.
#[derive(Debug, Clone)]
pub struct CaptureRecord {
    pub at: SystemTime,
    pub outbound: bool,
    pub frame: Bytes,
}

/// The listeners of one kind on one port, with a flag the fast path reads instead of the
/// lock.
pub(super) struct Monitors<T> {
    active: AtomicBool,
    listeners: Mutex<Vec<Monitor<T>>>,
}

impl<T> Default for Monitors<T> {
    fn default() -> Self {
        Monitors {
            active: AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Clone> Monitors<T> {
    /// Whether anyone listens (one relaxed load: the per-frame cost when nobody does).
    pub(super) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Adds a listener, closed after `count` items if given.
    pub(super) fn attach(&self, count: Option<u64>) -> tokio::sync::mpsc::Receiver<(u32, T)> {
        let (tx, rx) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
        self.attach_to(tx, 0, count);
        rx
    }

    /// Adds a listener feeding `tx` (shared with other ports'), its items tagged `tag`.
    pub(super) fn attach_to(
        &self,
        tx: tokio::sync::mpsc::Sender<(u32, T)>,
        tag: u32,
        count: Option<u64>,
    ) {
        lock(&self.listeners).push(Monitor {
            tx,
            tag,
            remaining: count,
        });
        self.active.store(true, Ordering::Release);
    }

    /// Hands `item` to every listener; a full channel (slow reader) skips it, a closed one
    /// (reader gone) or a finished count detaches the listener.
    pub(super) fn offer(&self, item: T) {
        let mut listeners = lock(&self.listeners);
        listeners.retain_mut(|m| {
            match m.tx.try_send((m.tag, item.clone())) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => return true,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
            }
            match m.remaining.as_mut() {
                Some(left) => {
                    *left -= 1;
                    *left > 0
                }
                None => true,
            }
        });
        if listeners.is_empty() {
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
    /// Handed to the gateway's runtime; what for (see [`runtime_work`]).
    ToRuntime(&'static str),
    /// The gateway's queue was full.
    GatewayBusy,
    /// The gateway answered it (ARP reply, echo reply) with a frame of `len` octets.
    GatewayReply { len: usize },
    /// Written to `port`.
    Sent { port: PortId },
    /// Writing to `port` failed.
    SendFailed { port: PortId },
    /// Held back by `port`'s impairment (`weft impair`): it leaves `after` from now.
    Held {
        port: PortId,
        after: std::time::Duration,
    },
    /// Not sent to `port`: its impairment dropped it or its link is down.
    PortDropped { port: PortId, reason: DropReason },
    /// Not sent to tunnel port `port`: it came out of a tunnel (split horizon).
    SplitHorizon { port: PortId },
    /// A synthetic frame (`weft trace --inject`) would be written to `port`; nothing was.
    WouldSend { port: PortId },
    /// A synthetic frame would enter tunnel port `port`: a VXLAN datagram of `len` octets
    /// (outer IPv4 and UDP headers included) to `remote` in `vni`.
    WouldTunnel {
        port: PortId,
        remote: std::net::SocketAddrV4,
        vni: u32,
        len: usize,
    },
    /// The switch would answer a synthetic frame with a frame of `len` octets.
    WouldAnswer { len: usize },
    /// A synthetic frame would go to the gateway's runtime; what for.
    WouldHandOver(&'static str),
}

/// A trace record for a frame entering `in_port` (virtio_net_hdr + frame in `packet`).
pub(super) fn trace_start(in_port: PortId, packet: &[u8]) -> FrameTrace {
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
pub(super) fn trace_end(io: &PortIo, trace: Option<FrameTrace>, outcome: &[TraceOutcome]) {
    if let Some(mut t) = trace {
        t.outcome.extend_from_slice(outcome);
        io.traces.offer(Arc::new(t));
    }
}

/// Copies `frame`, written out of the port, to the port's live captures (only while someone
/// captures); for a tunnel port, the VXLAN datagram it became to its `--outer` captures.
pub(super) fn capture(io: &PortIo, frame: &[u8]) {
    if io.captures.active() {
        io.captures.offer(record(frame, true));
    }
    if let Some(t) = io.tunnel.as_ref().filter(|_| io.outer.active()) {
        let sport = weft_vtep::source_port_for_inner(frame, weft_vtep::SOURCE_PORT_RANGE);
        let local = std::net::SocketAddrV4::new(t.sockets.local, sport);
        let mut datagram = Vec::with_capacity(weft_vtep::VXLAN_HEADER_LEN + frame.len());
        datagram.extend_from_slice(&weft_vtep::VxlanHeader::new(t.vni).to_bytes());
        datagram.extend_from_slice(frame);
        io.outer
            .offer(record(&outer::frame(local, t.remote, &datagram), true));
    }
}

/// Copies `frame`, read from the port, to the port's live captures.
pub(super) fn capture_rx(io: &PortIo, frame: &[u8]) {
    if io.captures.active() {
        io.captures.offer(record(frame, false));
    }
}

fn record(frame: &[u8], outbound: bool) -> CaptureRecord {
    CaptureRecord {
        at: SystemTime::now(),
        outbound,
        frame: Bytes::copy_from_slice(frame),
    }
}

/// A VXLAN datagram (`from` -> `to`, VXLAN header and inner frame) that arrived through a
/// tunnel port, for its `--outer` captures.
pub(super) fn capture_outer_rx(
    io: &PortIo,
    from: std::net::SocketAddrV4,
    to: std::net::SocketAddrV4,
    datagram: &[u8],
) {
    if io.outer.active() {
        io.outer
            .offer(record(&outer::frame(from, to, datagram), false));
    }
}

/// What the gateway's runtime is handed a frame for, as a trace says it.
pub fn runtime_work(task: &weft_switch::GatewayTask) -> &'static str {
    use weft_switch::GatewayTask as T;
    match task {
        T::Dns(_) => "a DNS query",
        T::PublishedUdp(_) => "an answer to a published UDP port's client",
        T::UdpOut(_) => "UDP to the outside (proxy NAT)",
        T::Tcp(_) => "TCP (proxy NAT, published ports, DNS over TCP)",
        T::EchoOut(_) => "a ping to the outside (echo NAT)",
        T::ArpReply(_) | T::EchoReply(_) => "the switch's own answer",
    }
}
