//! Per-port counters as atomics on the data plane's ports, counted outside the bridge's lock.
//!
//! The pure core decides and says why it drops; the data plane counts: frames received
//! (handed to the bridge), frames written out, and every drop by [`DropReason`], each one
//! relaxed atomic add on the port's own [`PortStats`]. Readers take a [`PortCounters`]
//! snapshot. A `u64` counter does not wrap in practice (584 years at a billion frames a
//! second), so adds are plain `fetch_add`s instead of the saturating loop a snapshot's
//! `record_*` would need.

use std::sync::atomic::{AtomicU64, Ordering};

use weft_switch::{DropReason, PortCounters};

/// The traffic counters of one port (or of the VXLAN socket), shared by every thread that
/// reads from or writes to it.
#[derive(Debug, Default)]
pub(super) struct PortStats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    /// Indexed by [`DropReason::index`].
    drops: [AtomicU64; DropReason::COUNT],
}

impl PortStats {
    /// Counts one frame (or datagram) of `bytes` octets received.
    pub(super) fn record_rx(&self, bytes: usize) {
        self.rx_packets.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one frame of `bytes` octets written out.
    pub(super) fn record_tx(&self, bytes: usize) {
        self.tx_packets.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one drop for `reason`.
    pub(super) fn record_drop(&self, reason: DropReason) {
        self.drops[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters' values now (each read on its own: a frame being counted may show in
    /// `rx_packets` before its drop does).
    pub(super) fn snapshot(&self) -> PortCounters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortCounters {
            rx_packets: load(&self.rx_packets),
            rx_bytes: load(&self.rx_bytes),
            tx_packets: load(&self.tx_packets),
            tx_bytes: load(&self.tx_bytes),
            drops: std::array::from_fn(|i| load(&self.drops[i])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_direction_and_reason() {
        let s = PortStats::default();
        s.record_rx(5);
        s.record_rx(60);
        s.record_drop(DropReason::Runt);
        s.record_tx(60);
        s.record_tx(1514);
        s.record_drop(DropReason::TxError);
        s.record_drop(DropReason::BadVnetHeader);
        s.record_drop(DropReason::Truncated);
        let c = s.snapshot();
        assert_eq!((c.rx_packets, c.rx_bytes), (2, 65));
        assert_eq!((c.tx_packets, c.tx_bytes), (2, 1574));
        assert_eq!(c.drops_total(), 4);
        assert_eq!(
            c.nonzero_drops().collect::<Vec<_>>(),
            [
                (DropReason::Runt, 1),
                (DropReason::BadVnetHeader, 1),
                (DropReason::Truncated, 1),
                (DropReason::TxError, 1)
            ]
        );
        assert_eq!(PortStats::default().snapshot(), PortCounters::default());
    }
}
