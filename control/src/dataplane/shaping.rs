//! The ports' impairment and link state (`weft impair`, `weft link`): frames leaving toward
//! an impaired port get their fate from the pure [`Impairment`] scheduler and wait here until
//! their time; one thread (`weft-shaper`) sends them when it comes. A port without impairment
//! and with its link up costs one relaxed load per frame and nothing else.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use weft_switch::impair::{Fate, ImpairDrop, ImpairSpec, Impairment};
use weft_switch::{DropReason, PortId};
use weft_wire::VNET_HDR_LEN;

use super::forward::TunnelScratch;
use super::monitor::capture;
use super::{lock, Dataplane, DataplaneError, PortIo};

/// Bit of [`PortShaping::mode`]: the port has an impairment.
const IMPAIRED: u8 = 1;
/// Bit of [`PortShaping::mode`]: the port's link is down.
const LINK_DOWN: u8 = 2;
/// Frames one impaired port may hold (beyond it they are dropped as `impair_backlog`), so
/// that a long delay on a fast sender cannot take the daemon's memory.
const MAX_HELD: usize = 10_000;
/// Octets one impaired port may hold: 64 KiB superframes reach it long before the count.
const MAX_HELD_BYTES: usize = 32 << 20;
/// Buffers an impaired port keeps for reuse.
const SPARE_BUFFERS: usize = 64;

/// One port's impairment and link state.
#[derive(Default)]
pub(super) struct PortShaping {
    /// [`IMPAIRED`] and [`LINK_DOWN`]: the one load a frame pays.
    mode: AtomicU8,
    shaper: Mutex<Option<Shaper>>,
}

/// The scheduler of an impaired port and the frames it holds.
struct Shaper {
    impairment: Impairment,
    held: BinaryHeap<Reverse<Held>>,
    /// Octets in `held`.
    held_bytes: usize,
    /// Keeps frames with the same departure time in their order of arrival.
    seq: u64,
    spare: Vec<Vec<u8>>,
}

/// A frame waiting for its departure (virtio_net_hdr + frame).
struct Held {
    at: Duration,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Held) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PortShaping {
    fn set_bit(&self, bit: u8, on: bool) {
        if on {
            self.mode.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.mode.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Whether the port's link is down.
    pub(super) fn link_down(&self) -> bool {
        self.mode.load(Ordering::Relaxed) & LINK_DOWN != 0
    }
}

/// What became of a frame sent toward a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Emitted {
    /// Written (and counted, and captured).
    Sent,
    /// Held back by the port's impairment; it leaves `after` from now.
    Held { after: Duration },
    /// Not written, and why (counted on the port).
    Dropped(DropReason),
}

/// What wakes the shaper thread: a frame whose departure is earlier than any it waits for.
#[derive(Default)]
pub(super) struct ShaperWake {
    kicked: Mutex<bool>,
    bell: Condvar,
}

impl ShaperWake {
    pub(super) fn kick(&self) {
        *lock(&self.kicked) = true;
        self.bell.notify_one();
    }
}

impl Dataplane {
    /// Time on the shaper's clock: since the data plane started.
    fn shaper_now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Sends `packet` (virtio_net_hdr + frame) toward `io`: written now, held by its
    /// impairment, or dropped; counted and captured on the port either way.
    pub(super) fn emit(&self, io: &PortIo, packet: &[u8], scratch: &mut TunnelScratch) -> Emitted {
        let mode = io.shaping.mode.load(Ordering::Relaxed);
        if mode == 0 {
            return self.write_counted(io, packet, scratch);
        }
        if mode & LINK_DOWN != 0 {
            io.stats.record_drop(DropReason::LinkDown);
            return Emitted::Dropped(DropReason::LinkDown);
        }
        let now = self.shaper_now();
        let frame_len = packet.len().saturating_sub(VNET_HDR_LEN);
        let mut guard = lock(&io.shaping.shaper);
        let Some(shaper) = guard.as_mut() else {
            drop(guard);
            return self.write_counted(io, packet, scratch);
        };
        let (at, duplicate, corrupt_bit) = match shaper.impairment.on_frame(now, frame_len) {
            Fate::Drop(why) => return self.impair_drop(io, why),
            Fate::Send {
                at,
                duplicate,
                corrupt_bit,
            } => (at, duplicate, corrupt_bit),
        };
        if at <= now && corrupt_bit.is_none() {
            drop(guard);
            let sent = self.write_counted(io, packet, scratch);
            if duplicate && sent == Emitted::Sent {
                self.write_counted(io, packet, scratch);
            }
            return sent;
        }
        let copies = 1 + usize::from(duplicate);
        if shaper.held.len() + copies > MAX_HELD
            || shaper.held_bytes + copies * packet.len() > MAX_HELD_BYTES
        {
            return self.impair_drop(io, ImpairDrop::Backlog);
        }
        let mut copy = shaper.spare.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(packet);
        if let Some(bit) = corrupt_bit {
            if let Some(b) = copy.get_mut(VNET_HDR_LEN + bit / 8) {
                *b ^= 1 << (bit % 8);
            }
        }
        let first = shaper.held.peek().is_none_or(|Reverse(h)| at < h.at);
        if duplicate {
            shaper.push(at, copy.clone());
        }
        shaper.push(at, copy);
        drop(guard);
        if first {
            self.shaper_wake.kick();
        }
        Emitted::Held {
            after: at.saturating_sub(now),
        }
    }

    fn impair_drop(&self, io: &PortIo, why: ImpairDrop) -> Emitted {
        let reason = match why {
            ImpairDrop::Loss => DropReason::ImpairLoss,
            ImpairDrop::Backlog => DropReason::ImpairBacklog,
        };
        io.stats.record_drop(reason);
        Emitted::Dropped(reason)
    }

    /// Writes `packet` out of `io` now, counting and capturing it.
    fn write_counted(&self, io: &PortIo, packet: &[u8], scratch: &mut TunnelScratch) -> Emitted {
        if self.write_out(io, packet, scratch) {
            let frame = &packet[VNET_HDR_LEN.min(packet.len())..];
            capture(io, frame);
            io.stats.record_tx(frame.len());
            Emitted::Sent
        } else {
            io.stats.record_drop(DropReason::TxError);
            Emitted::Dropped(DropReason::TxError)
        }
    }

    /// Sets (or with `None` clears) `port`'s impairment. Frames it holds stay queued under a
    /// new spec and are dropped when it is cleared (as deleting a netem qdisc does).
    pub fn set_impairment(
        &self,
        port: PortId,
        spec: Option<ImpairSpec>,
    ) -> Result<(), DataplaneError> {
        self.with_port_io(port, |io| {
            let shaping = &io.shaping;
            let mut guard = lock(&shaping.shaper);
            match spec.filter(|s| !s.is_none()) {
                Some(spec) => {
                    let impairment = Impairment::new(spec);
                    match guard.as_mut() {
                        Some(shaper) => shaper.impairment = impairment,
                        None => {
                            *guard = Some(Shaper {
                                impairment,
                                held: BinaryHeap::new(),
                                held_bytes: 0,
                                seq: 0,
                                spare: Vec::new(),
                            })
                        }
                    }
                    shaping.set_bit(IMPAIRED, true);
                }
                None => {
                    shaping.set_bit(IMPAIRED, false);
                    *guard = None;
                }
            }
        })
    }

    /// `port`'s impairment, if it has one.
    pub fn impairment(&self, port: PortId) -> Option<ImpairSpec> {
        self.with_port_io(port, |io| {
            lock(&io.shaping.shaper)
                .as_ref()
                .map(|s| *s.impairment.spec())
        })
        .ok()
        .flatten()
    }

    /// Takes `port`'s link down (frames to and from it are dropped as `link_down`) or up.
    /// A TAP's carrier follows, so the interface inside the namespace shows NO-CARRIER while
    /// the link is down (other ports have no carrier of ours to set).
    pub fn set_link(&self, port: PortId, up: bool) -> Result<(), DataplaneError> {
        self.with_port_io(port, |io| {
            io.shaping.set_bit(LINK_DOWN, !up);
            if io.tunnel.is_none() {
                let _ = weft_sys::set_carrier(io.fd.as_fd(), up);
            }
        })
    }

    /// Whether `port`'s link is down.
    pub fn link_down(&self, port: PortId) -> bool {
        self.with_port_io(port, |io| io.shaping.link_down())
            .unwrap_or(false)
    }

    /// Starts the thread that sends held frames when their time comes.
    pub(super) fn spawn_shaper(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let dp = Arc::clone(self);
        std::thread::Builder::new()
            .name("weft-shaper".into())
            .spawn(move || dp.run_shaper())
    }

    fn run_shaper(&self) {
        let mut scratch = TunnelScratch::default();
        while !self.stop.load(Ordering::Relaxed) {
            let next = self.release_due(&mut scratch);
            let wake = &self.shaper_wake;
            let mut kicked = lock(&wake.kicked);
            if !*kicked {
                let wait = next
                    .map(|at| at.saturating_sub(self.shaper_now()))
                    .unwrap_or(Duration::from_secs(1));
                kicked = wake
                    .bell
                    .wait_timeout(kicked, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            *kicked = false;
        }
    }

    /// Sends every held frame whose time has come; returns the earliest departure still
    /// waiting.
    fn release_due(&self, scratch: &mut TunnelScratch) -> Option<Duration> {
        let table = self.ports_read();
        let mut next: Option<Duration> = None;
        for io in table.iter().flatten() {
            if io.shaping.mode.load(Ordering::Relaxed) & IMPAIRED == 0 {
                continue;
            }
            while let Some(packet) = self.take_due(io, &mut next) {
                if io.shaping.link_down() {
                    io.stats.record_drop(DropReason::LinkDown);
                } else {
                    self.write_counted(io, &packet, scratch);
                }
                if let Some(s) = lock(&io.shaping.shaper).as_mut() {
                    if s.spare.len() < SPARE_BUFFERS {
                        s.spare.push(packet);
                    }
                }
            }
        }
        next
    }

    /// The next held frame of `io` whose time has come, or None (with `next` lowered to
    /// the first frame still waiting).
    fn take_due(&self, io: &PortIo, next: &mut Option<Duration>) -> Option<Vec<u8>> {
        let mut guard = lock(&io.shaping.shaper);
        let shaper = guard.as_mut()?;
        let Reverse(head) = shaper.held.peek()?;
        if head.at > self.shaper_now() {
            *next = Some(next.map_or(head.at, |n| n.min(head.at)));
            return None;
        }
        let Reverse(h) = shaper.held.pop()?;
        shaper.held_bytes = shaper.held_bytes.saturating_sub(h.packet.len());
        Some(h.packet)
    }
}

impl Shaper {
    fn push(&mut self, at: Duration, packet: Vec<u8>) {
        self.seq = self.seq.wrapping_add(1);
        self.held_bytes += packet.len();
        self.held.push(Reverse(Held {
            at,
            seq: self.seq,
            packet,
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use weft_switch::impair::{ImpairSpec, PPM};
    use weft_switch::{DropReason, PortId};
    use weft_wire::VNET_HDR_LEN;

    use crate::dataplane::forward::tests::{counters, forward, packet, two_ports};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// Waits up to a second for a datagram on `sock`; returns it and when it came.
    fn recv_within(sock: &std::os::unix::net::UnixDatagram) -> Option<(Vec<u8>, Instant)> {
        let end = Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 256];
        while Instant::now() < end {
            if let Ok(n) = sock.recv(&mut buf) {
                return Some((buf[..n].to_vec(), Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    #[test]
    fn a_delayed_frame_leaves_after_its_delay_and_counts_then() {
        let (dp, _one, two) = two_ports();
        let _shaper = dp.spawn_shaper().unwrap();
        let spec = ImpairSpec {
            delay: Duration::from_millis(40),
            ..ImpairSpec::default()
        };
        dp.set_impairment(PortId(2), Some(spec)).unwrap();
        assert_eq!(dp.impairment(PortId(2)), Some(spec));
        let sent = Instant::now();
        forward(&dp, PortId(1), &packet([0xff; 6], A), false);
        assert_eq!(counters(&dp, 2).tx_packets, 0, "held, not yet sent");
        let (got, at) = recv_within(&two).expect("the held frame leaves");
        assert_eq!(got, packet([0xff; 6], A));
        assert!(at - sent >= Duration::from_millis(40), "{:?}", at - sent);
        assert_eq!(counters(&dp, 2).tx_packets, 1);
        dp.shutdown();
    }

    #[test]
    fn loss_corruption_and_a_down_link_are_counted_by_reason() {
        let (dp, one, two) = two_ports();
        let _shaper = dp.spawn_shaper().unwrap();
        let lossy = ImpairSpec {
            loss_ppm: PPM,
            ..ImpairSpec::default()
        };
        dp.set_impairment(PortId(2), Some(lossy)).unwrap();
        forward(&dp, PortId(1), &packet([0xff; 6], A), false);
        assert_eq!(counters(&dp, 2).drop_count(DropReason::ImpairLoss), 1);
        assert!(recv_within(&two).is_none());

        // Every frame corrupted: one bit differs, and it still leaves.
        let corrupt = ImpairSpec {
            corrupt_ppm: PPM,
            seed: 3,
            ..ImpairSpec::default()
        };
        dp.set_impairment(PortId(2), Some(corrupt)).unwrap();
        forward(&dp, PortId(1), &packet([0xff; 6], A), false);
        let (got, _) = recv_within(&two).expect("a corrupted frame still leaves");
        let want = packet([0xff; 6], A);
        let flipped: u32 = got[VNET_HDR_LEN..]
            .iter()
            .zip(&want[VNET_HDR_LEN..])
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1);

        // Cleared: frames pass untouched again; link down: dropped both ways.
        dp.set_impairment(PortId(2), None).unwrap();
        assert_eq!(dp.impairment(PortId(2)), None);
        dp.set_link(PortId(2), false).unwrap();
        forward(&dp, PortId(1), &packet([0xff; 6], A), false);
        forward(
            &dp,
            PortId(2),
            &packet([0xff; 6], [2, 0, 0, 0, 0, 2]),
            false,
        );
        assert_eq!(counters(&dp, 2).drop_count(DropReason::LinkDown), 2);
        assert!(recv_within(&one).is_none());
        dp.set_link(PortId(2), true).unwrap();
        forward(&dp, PortId(1), &packet([0xff; 6], A), false);
        assert_eq!(
            recv_within(&two).map(|(p, _)| p),
            Some(packet([0xff; 6], A))
        );
        dp.shutdown();
    }

    #[test]
    fn a_long_delay_holds_a_bounded_number_of_octets() {
        let (dp, _one, _two) = two_ports();
        let spec = ImpairSpec {
            delay: Duration::from_secs(60),
            ..ImpairSpec::default()
        };
        dp.set_impairment(PortId(2), Some(spec)).unwrap();
        let table = dp.ports_read();
        let io = table[2].as_ref().unwrap();
        let mut scratch = super::TunnelScratch::default();
        let big = vec![0u8; VNET_HDR_LEN + 65_000];
        let held = (0..1_000)
            .take_while(|_| matches!(dp.emit(io, &big, &mut scratch), super::Emitted::Held { .. }))
            .count();
        assert_eq!(held, super::MAX_HELD_BYTES / big.len());
        let small = packet([0xff; 6], A);
        assert_eq!(
            dp.emit(io, &big, &mut scratch),
            super::Emitted::Dropped(DropReason::ImpairBacklog)
        );
        assert!(matches!(
            dp.emit(io, &small, &mut scratch),
            super::Emitted::Held { .. }
        ));
        assert!(io.stats.snapshot().drop_count(DropReason::ImpairBacklog) >= 2);
    }
}
