//! Per-port packet counters and the taxonomy of drop reasons.
//!
//! The [`Bridge`](crate::Bridge) counts nothing per port: it says why it
//! drops a frame ([`Verdict::Drop`](crate::Verdict::Drop), the error of
//! [`Bridge::gateway_reply`](crate::Bridge::gateway_reply)) and the adapter
//! that owns the port counts received and transmitted frames and every drop
//! (the data plane on atomics, outside the bridge's lock). [`PortCounters`]
//! is the plain-value form of one port's counters (a snapshot); its
//! `record_*` methods saturate instead of wrapping.

use std::fmt;

/// Why a frame was not delivered.
///
/// Some reasons are produced by the core ([`Bridge::process`]), the others
/// by adapters around it; each is documented with its origin.
///
/// [`Bridge::process`]: crate::Bridge::process
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum DropReason {
    /// Core: shorter than the 14-byte Ethernet header.
    Runt,
    /// Adapter: the `virtio_net_hdr` was missing or invalid.
    BadVnetHeader,
    /// Adapter: the frame was larger than the read buffer.
    Truncated,
    /// Core: a non-GSO frame longer than the network MTU + 14 (+4 when the
    /// EtherType is 0x8100, an IEEE 802.1Q VLAN tag).
    Oversized,
    /// Core: the source address is multicast/broadcast or all-zero. Such an
    /// address is never learned nor forwarded (IEEE 802.1D §7.8: only
    /// individual addresses identify a station).
    InvalidSourceMac,
    /// Core: the destination was learned on the ingress port, so the frame
    /// has already reached its segment and is filtered (IEEE 802.1D §7.7.1).
    SameSegment,
    /// Core: the frame would be flooded but the ingress port is the only
    /// port of its network.
    NoDestination,
    /// Core: the frame came from a port the bridge does not know. Such drops
    /// cannot be attributed to a port and are therefore not counted.
    UnknownPort,
    /// Adapter: writing the frame to the output port failed.
    TxError,
    /// Core ([`Bridge::gateway_reply`]): a frame for the gateway or the ARP
    /// responder that is invalid — a truncated or invalid ARP packet
    /// (RFC 826), a truncated IPv4 datagram or invalid header (version, IHL,
    /// total length; RFC 791), a bad IPv4 header or ICMP checksum
    /// (RFC 1071), or an echo request from a non-unicast source.
    ///
    /// [`Bridge::gateway_reply`]: crate::Bridge::gateway_reply
    Malformed,
    /// Core ([`Bridge::gateway_reply`]): a frame for the gateway that it
    /// does not handle (yet): TCP/UDP to the gateway, traffic routed through
    /// it, fragments, ICMP other than echo request, IPv6, 802.1Q-tagged
    /// frames, ARP replies, ….
    ///
    /// [`Bridge::gateway_reply`]: crate::Bridge::gateway_reply
    GatewayUnsupported,
    /// Adapter: a request for one of the gateway's services (DNS) found its queue full.
    GatewayBusy,
    /// A frame between two endpoints of a network with inter-container communication
    /// disabled (`--icc=false`).
    IccDenied,
    /// Adapter (VXLAN socket): a datagram from an address that is not a peer of the VNI it
    /// names (RFC 7348 §4 leaves VTEP authentication to the deployment; weft accepts known
    /// peers only).
    VxlanNotPeer,
    /// Adapter (VXLAN socket): a VNI no overlay network here uses.
    VxlanUnknownVni,
    /// Adapter (VXLAN socket): flags other than exactly 0x08 or reserved bits set
    /// (RFC 7348 §5), or shorter than the 8-byte header.
    VxlanBadHeader,
    /// Adapter: a frame leaving through a tunnel that could not be segmented or
    /// checksummed (a GSO type other than TCPv4, inconsistent headers).
    TunnelUnsupported,
    /// Port security: a source MAC other than the port's endpoint's, or one pinned to
    /// another port (a local endpoint's MAC arriving from elsewhere, a tunnel included).
    SpoofedMac,
    /// Port security: IPv4 from an address other than the port's endpoint's (`0.0.0.0`
    /// only for a DHCP client's first messages).
    SpoofedIp,
    /// Port security: ARP with a sender MAC or address other than the endpoint's.
    SpoofedArp,
    /// Adapter (the gateway's runtime): handling the frame or its flow hit a bug; the flow
    /// was dropped, the runtime kept serving.
    GatewayFault,
    /// Adapter (the gateway's runtime): a destination the proxy NAT never reaches (link-local,
    /// `0.0.0.0/8`, reserved, or the underlay's VXLAN or gossip port); the container is
    /// told with ICMP "administratively prohibited".
    NatRefused,
    /// Adapter: `weft impair PORT --loss`: lost on purpose on the way to the port.
    ImpairLoss,
    /// Adapter: `weft impair PORT --rate`: more than a second's worth of frames was already
    /// waiting for the port (a qdisc's limit).
    ImpairBacklog,
    /// Adapter: `weft link PORT down`: the port's link is down (frames to and from it).
    LinkDown,
}

impl DropReason {
    /// Number of drop reasons; the length of [`PortCounters::drops`].
    pub const COUNT: usize = 25;

    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Runt,
        DropReason::BadVnetHeader,
        DropReason::Truncated,
        DropReason::Oversized,
        DropReason::InvalidSourceMac,
        DropReason::SameSegment,
        DropReason::NoDestination,
        DropReason::UnknownPort,
        DropReason::TxError,
        DropReason::Malformed,
        DropReason::GatewayUnsupported,
        DropReason::GatewayBusy,
        DropReason::IccDenied,
        DropReason::VxlanNotPeer,
        DropReason::VxlanUnknownVni,
        DropReason::VxlanBadHeader,
        DropReason::TunnelUnsupported,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::SpoofedArp,
        DropReason::GatewayFault,
        DropReason::NatRefused,
        DropReason::ImpairLoss,
        DropReason::ImpairBacklog,
        DropReason::LinkDown,
    ];

    /// A stable snake_case name, suitable for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::BadVnetHeader => "bad_vnet_header",
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::InvalidSourceMac => "invalid_source_mac",
            DropReason::SameSegment => "same_segment",
            DropReason::NoDestination => "no_destination",
            DropReason::UnknownPort => "unknown_port",
            DropReason::TxError => "tx_error",
            DropReason::Malformed => "malformed",
            DropReason::GatewayUnsupported => "gateway_unsupported",
            DropReason::GatewayBusy => "gateway_busy",
            DropReason::IccDenied => "icc_denied",
            DropReason::VxlanNotPeer => "vxlan_not_peer",
            DropReason::VxlanUnknownVni => "vxlan_unknown_vni",
            DropReason::VxlanBadHeader => "vxlan_bad_header",
            DropReason::TunnelUnsupported => "tunnel_unsupported",
            DropReason::SpoofedMac => "spoofed_mac",
            DropReason::SpoofedIp => "spoofed_ip",
            DropReason::SpoofedArp => "spoofed_arp",
            DropReason::GatewayFault => "gateway_fault",
            DropReason::NatRefused => "nat_refused",
            DropReason::ImpairLoss => "impair_loss",
            DropReason::ImpairBacklog => "impair_backlog",
            DropReason::LinkDown => "link_down",
        }
    }

    /// Position of this reason in [`DropReason::ALL`] and
    /// [`PortCounters::drops`] (`0..COUNT`).
    pub fn index(self) -> usize {
        match self {
            DropReason::Runt => 0,
            DropReason::BadVnetHeader => 1,
            DropReason::Truncated => 2,
            DropReason::Oversized => 3,
            DropReason::InvalidSourceMac => 4,
            DropReason::SameSegment => 5,
            DropReason::NoDestination => 6,
            DropReason::UnknownPort => 7,
            DropReason::TxError => 8,
            DropReason::Malformed => 9,
            DropReason::GatewayUnsupported => 10,
            DropReason::GatewayBusy => 11,
            DropReason::IccDenied => 12,
            DropReason::VxlanNotPeer => 13,
            DropReason::VxlanUnknownVni => 14,
            DropReason::VxlanBadHeader => 15,
            DropReason::TunnelUnsupported => 16,
            DropReason::SpoofedMac => 17,
            DropReason::SpoofedIp => 18,
            DropReason::SpoofedArp => 19,
            DropReason::GatewayFault => 20,
            DropReason::NatRefused => 21,
            DropReason::ImpairLoss => 22,
            DropReason::ImpairBacklog => 23,
            DropReason::LinkDown => 24,
        }
    }
}

impl fmt::Display for DropReason {
    /// Same as [`DropReason::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Traffic counters of one bridge port.
///
/// `rx_*` count frames handed to [`Bridge::process`] (dropped or not);
/// `tx_*` count frames the adapter wrote out of the port; `drops` is indexed
/// by [`DropReason::index`]. The adapter keeps them; this is their value at
/// one moment.
///
/// [`Bridge::process`]: crate::Bridge::process
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received on the port.
    pub rx_packets: u64,
    /// Bytes received on the port (Ethernet header included).
    pub rx_bytes: u64,
    /// Frames transmitted out of the port.
    pub tx_packets: u64,
    /// Bytes transmitted out of the port (Ethernet header included).
    pub tx_bytes: u64,
    /// Drops attributed to the port, indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
}

impl PortCounters {
    /// Sum of all drop counters.
    pub fn drops_total(&self) -> u64 {
        self.drops
            .iter()
            .fold(0u64, |acc, n| acc.saturating_add(*n))
    }

    /// Drops counted for `r`.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }

    /// `(reason, count)` for every reason with a non-zero count, in
    /// [`DropReason::ALL`] order.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[r.index()]))
            .filter(|(_, n)| *n != 0)
    }

    /// Counts one received frame of `bytes` bytes.
    pub fn record_rx(&mut self, bytes: usize) {
        self.rx_packets = self.rx_packets.saturating_add(1);
        self.rx_bytes = self.rx_bytes.saturating_add(bytes as u64);
    }

    /// Counts one transmitted frame of `bytes` bytes.
    pub fn record_tx(&mut self, bytes: usize) {
        self.tx_packets = self.tx_packets.saturating_add(1);
        self.tx_bytes = self.tx_bytes.saturating_add(bytes as u64);
    }

    /// Counts one drop for `reason`.
    pub fn record_drop(&mut self, reason: DropReason) {
        let slot = &mut self.drops[reason.index()];
        *slot = slot.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_with_unique_names() {
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.to_string(), r.as_str());
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(DropReason::InvalidSourceMac.as_str(), "invalid_source_mac");
        assert_eq!(DropReason::BadVnetHeader.as_str(), "bad_vnet_header");
        assert_eq!(DropReason::Malformed.as_str(), "malformed");
        assert_eq!(
            DropReason::GatewayUnsupported.as_str(),
            "gateway_unsupported"
        );
        // Existing indices are stable: new reasons are appended.
        assert_eq!(DropReason::TxError.index(), 8);
        assert_eq!(DropReason::GatewayUnsupported.index(), 10);
    }

    #[test]
    fn counters_accumulate_and_saturate() {
        let mut c = PortCounters::default();
        c.record_rx(60);
        c.record_rx(1514);
        c.record_tx(100);
        c.record_drop(DropReason::Runt);
        c.record_drop(DropReason::TxError);
        c.record_drop(DropReason::TxError);
        assert_eq!((c.rx_packets, c.rx_bytes), (2, 1574));
        assert_eq!((c.tx_packets, c.tx_bytes), (1, 100));
        assert_eq!(c.drops_total(), 3);
        assert_eq!(c.drop_count(DropReason::TxError), 2);
        assert_eq!(c.drop_count(DropReason::Oversized), 0);
        assert_eq!(
            c.nonzero_drops().collect::<Vec<_>>(),
            [(DropReason::Runt, 1), (DropReason::TxError, 2)]
        );

        c.rx_bytes = u64::MAX - 1;
        c.record_rx(10);
        assert_eq!(c.rx_bytes, u64::MAX);
        c.drops = [u64::MAX; DropReason::COUNT];
        c.record_drop(DropReason::Runt);
        assert_eq!(c.drops_total(), u64::MAX);
    }
}
