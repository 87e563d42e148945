//! One frame's way through the switch: the bridge's decision (its lock taken once, for the
//! decision only), then the output ports, the gateway or a drop, counted on the ports' atomics.

use std::os::fd::AsFd;

use weft_switch::{DropReason, GatewayTask, Offload, PortId, Timestamp, Verdict};
use weft_sys as sys;
use weft_wire::{VnetHdr, VNET_HDR_LEN};

use super::monitor::{capture_rx, runtime_work, trace_end, trace_start, FrameTrace, TraceOutcome};
use super::shaping::Emitted;
use super::vxlan::{DatagramRun, SegmentScratch, SuperframeError};
use super::{lock, Dataplane, HandOver, PortIo, PortTable};

/// What the frames of one worker wake-up share: the port table (read-locked for the
/// wake-up), the time, and the worker's reusable buffers.
pub(super) struct Wake<'a> {
    pub table: &'a PortTable,
    pub now: Timestamp,
    pub scratch: &'a mut Scratch,
}

/// Per-worker buffers reused for every frame.
pub(super) struct Scratch {
    /// Output ports of one frame.
    pub targets: Vec<PortId>,
    /// The gateway's reply to one frame (virtio_net_hdr + frame).
    pub reply: Vec<u8>,
    pub tunnel: TunnelScratch,
    /// Buffers of the VXLAN receive offload, reused.
    pub gro_pool: Vec<Vec<u8>>,
}

impl Scratch {
    /// Buffers for frames of up to `buf_len` octets (virtio_net_hdr included).
    pub(super) fn new(buf_len: usize) -> Scratch {
        Scratch {
            targets: Vec::new(),
            reply: vec![0u8; buf_len],
            tunnel: TunnelScratch::default(),
            gro_pool: Vec::new(),
        }
    }
}

/// Buffers for frames entering a tunnel: one frame whose checksum is completed, the
/// datagrams of one send, the segments of one superframe.
#[derive(Default)]
pub(super) struct TunnelScratch {
    segment: Vec<u8>,
    run: DatagramRun,
    superframe: SegmentScratch,
}

/// The bridge's decision for one frame, taken under its lock and owning nothing of the
/// bridge, so that the lock is released before any output.
enum Decision {
    /// Write the frame to the ports in [`Scratch::targets`].
    Send,
    /// Drop it (the bridge's reason, or no gateway runtime to take it).
    Drop(DropReason),
    /// Hand it to the gateway's runtime with its task.
    ToRuntime(HandOver),
    /// Write the switch's own answer (ARP, echo to the gateway) and send it back out of the
    /// ingress port.
    Answer(GatewayTask),
}

impl Dataplane {
    /// Forwards one packet (virtio_net_hdr + frame) that entered `in_port`; `truncated`: it
    /// filled the read buffer, so it may have been longer.
    pub(super) fn forward(
        &self,
        wake: &mut Wake<'_>,
        in_port: PortId,
        in_io: &PortIo,
        packet: &[u8],
        truncated: bool,
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
            in_io.stats.record_drop(reason);
            trace_end(in_io, trace, &[TraceOutcome::BadHeader(reason)]);
            return;
        };
        if let Some(t) = trace.as_mut() {
            t.gso_size = hdr.is_gso().then_some(hdr.gso_size);
        }
        let frame = &packet[VNET_HDR_LEN..];
        // An unplugged cable: nothing crosses the port, so a capture sees nothing either.
        if in_io.shaping.link_down() {
            in_io.stats.record_drop(DropReason::LinkDown);
            trace_end(in_io, trace, &[TraceOutcome::Dropped(DropReason::LinkDown)]);
            return;
        }
        capture_rx(in_io, frame);
        let decision = self.decide(wake, in_port, frame, &hdr, trace.as_mut());
        // A port the bridge does not know (never one of the table's) counts nothing.
        if matches!(decision, Decision::Drop(DropReason::UnknownPort)) {
            trace_end(
                in_io,
                trace,
                &[TraceOutcome::Dropped(DropReason::UnknownPort)],
            );
            return;
        }
        in_io.stats.record_rx(frame.len());
        let outcome = match decision {
            Decision::Send => return self.send(wake, in_io, packet, trace),
            Decision::Drop(reason) => {
                in_io.stats.record_drop(reason);
                TraceOutcome::Dropped(reason)
            }
            Decision::ToRuntime(work) => {
                let what = runtime_work(&work.task);
                let taken = self
                    .gateway
                    .get()
                    .is_some_and(|link| link.try_hand_over(work, frame));
                self.handed_over(in_io, taken, TraceOutcome::ToRuntime(what))
            }
            Decision::Answer(task) => {
                let reply = &mut wake.scratch.reply[VNET_HDR_LEN..];
                match task.write_reply(frame, reply) {
                    Ok(len) => self.reply(wake.scratch, in_port, in_io, len),
                    Err(reason) => {
                        in_io.stats.record_drop(reason);
                        TraceOutcome::Dropped(reason)
                    }
                }
            }
        };
        trace_end(in_io, trace, &[outcome]);
    }

    /// Takes the bridge's lock once and decides: the verdict, and for a frame the gateway
    /// takes, whether the switch answers it or its runtime gets it (with the network's
    /// gateway, read under the same lock).
    fn decide(
        &self,
        wake: &mut Wake<'_>,
        in_port: PortId,
        frame: &[u8],
        hdr: &VnetHdr,
        trace: Option<&mut FrameTrace>,
    ) -> Decision {
        let offload = Offload {
            gso: hdr.is_gso(),
            checksum_partial: hdr.needs_csum(),
        };
        let mut bridge = lock(&self.bridge);
        let verdict = match trace {
            Some(t) => {
                bridge.process_traced(wake.now, in_port, frame, offload, &mut |s| t.steps.push(s))
            }
            None => bridge.process(wake.now, in_port, frame, offload),
        };
        let targets = &mut wake.scratch.targets;
        targets.clear();
        match verdict {
            Verdict::Forward(out) => targets.push(out),
            Verdict::Flood(set) => targets.extend(set),
            Verdict::Drop(reason) => return Decision::Drop(reason),
            Verdict::ToGateway(task) if task.is_switch_answer() => return Decision::Answer(task),
            Verdict::ToGateway(task) => {
                let network = bridge.port_network(in_port);
                let runtime = self.gateway.get().and(bridge.port_gateway(in_port));
                return match network.zip(runtime) {
                    Some((network, gateway)) => Decision::ToRuntime(HandOver {
                        port: in_port,
                        network,
                        gateway,
                        task,
                        endpoint: bridge.port_binding(in_port),
                    }),
                    None => Decision::Drop(DropReason::GatewayUnsupported),
                };
            }
        }
        Decision::Send
    }

    /// The outcome of handing a frame to the gateway's runtime: `done`, or a full queue
    /// (counted as `gateway_busy`).
    fn handed_over(&self, in_io: &PortIo, taken: bool, done: TraceOutcome) -> TraceOutcome {
        if taken {
            done
        } else {
            in_io.stats.record_drop(DropReason::GatewayBusy);
            TraceOutcome::GatewayBusy
        }
    }

    /// Sends the gateway's answer (`len` octets in the reply buffer) back out of the
    /// ingress port, with a plain virtio_net_hdr (no offload).
    fn reply(
        &self,
        scratch: &mut Scratch,
        in_port: PortId,
        in_io: &PortIo,
        len: usize,
    ) -> TraceOutcome {
        let Scratch { reply, tunnel, .. } = scratch;
        VnetHdr::default().write(&mut reply[..VNET_HDR_LEN]);
        let packet = &reply[..VNET_HDR_LEN + len];
        match self.emit(in_io, packet, tunnel) {
            Emitted::Sent | Emitted::Held { .. } => TraceOutcome::GatewayReply { len },
            Emitted::Dropped(DropReason::TxError) => TraceOutcome::SendFailed { port: in_port },
            Emitted::Dropped(reason) => TraceOutcome::PortDropped {
                port: in_port,
                reason,
            },
        }
    }

    /// Writes the frame to every port the bridge chose, counting each write on its port.
    fn send(&self, wake: &mut Wake<'_>, in_io: &PortIo, packet: &[u8], trace: Option<FrameTrace>) {
        // Split horizon: what came out of a tunnel never goes into another one (every node
        // replicates to all its peers itself).
        let from_tunnel = in_io.tunnel.is_some();
        let Scratch {
            targets, tunnel, ..
        } = &mut *wake.scratch;
        let mut outcome = trace.as_ref().map(|_| Vec::with_capacity(targets.len()));
        for &out in targets.iter() {
            let io = wake.table.get(out.0 as usize).and_then(Option::as_ref);
            let result = match io {
                Some(io) if from_tunnel && io.tunnel.is_some() => {
                    TraceOutcome::SplitHorizon { port: out }
                }
                Some(io) => match self.emit(io, packet, tunnel) {
                    Emitted::Sent => TraceOutcome::Sent { port: out },
                    Emitted::Held { after } => TraceOutcome::Held { port: out, after },
                    Emitted::Dropped(DropReason::TxError) => TraceOutcome::SendFailed { port: out },
                    Emitted::Dropped(reason) => TraceOutcome::PortDropped { port: out, reason },
                },
                None => TraceOutcome::SendFailed { port: out },
            };
            if let Some(o) = outcome.as_mut() {
                o.push(result);
            }
        }
        trace_end(in_io, trace, outcome.as_deref().unwrap_or_default());
    }

    /// Writes `packet` (virtio_net_hdr + frame) out of `io`: straight to its fd, or for a
    /// tunnel port segmented, checksummed and encapsulated.
    pub(super) fn write_out(
        &self,
        io: &PortIo,
        packet: &[u8],
        scratch: &mut TunnelScratch,
    ) -> bool {
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
        let counters = &self.vxlan_stats;
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
                counters.record_drop(DropReason::TunnelUnsupported);
                return false;
            }
            let mss = usize::from(hdr.gso_size);
            match sockets.send_superframe(superframe, tunnel.remote, tunnel.vni, frame, mss) {
                Ok(n) => sent += n,
                Err(SuperframeError::Segment(_)) => {
                    counters.record_drop(DropReason::TunnelUnsupported);
                    return false;
                }
                Err(SuperframeError::Send { sent: part, .. }) => {
                    sent += part;
                    failed = true;
                }
                Err(SuperframeError::TooLarge { sent: part }) => {
                    sent += part;
                    counters.record_drop(DropReason::TunnelUnsupported);
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
                counters.record_drop(DropReason::TunnelUnsupported);
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
        if sent > 0 {
            counters.record_tx(sent);
        }
        if failed {
            counters.record_drop(DropReason::TxError);
        }
        !failed
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    use weft_switch::{NetworkConfig, NetworkId, PortCounters};

    use super::*;
    use crate::dataplane::BUF_LEN;

    /// A data plane with ports 1 and 2 in one network, each a datagram socket whose other
    /// end the test holds.
    pub(crate) fn two_ports() -> (std::sync::Arc<Dataplane>, UnixDatagram, UnixDatagram) {
        let dp = Dataplane::new(1, Duration::ZERO).unwrap();
        dp.add_network(NetworkId(1), NetworkConfig::default())
            .unwrap();
        let mut peers = Vec::new();
        for port in [PortId(1), PortId(2)] {
            let (ours, theirs) = UnixDatagram::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            theirs.set_nonblocking(true).unwrap();
            dp.add_port(port, NetworkId(1), ours.into())
                .map_err(|(e, _)| e)
                .unwrap();
            peers.push(theirs);
        }
        let second = peers.pop().unwrap();
        (dp, peers.pop().unwrap(), second)
    }

    /// A plain virtio_net_hdr and a 60-octet frame from `src` to `dst`.
    pub(crate) fn packet(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut p = vec![0u8; VNET_HDR_LEN + 60];
        p[VNET_HDR_LEN..VNET_HDR_LEN + 6].copy_from_slice(&dst);
        p[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12].copy_from_slice(&src);
        p
    }

    pub(crate) fn forward(dp: &Dataplane, port: PortId, packet: &[u8], truncated: bool) {
        let table = dp.ports_read();
        let mut scratch = Scratch::new(BUF_LEN);
        let mut wake = Wake {
            table: &table,
            now: dp.now(),
            scratch: &mut scratch,
        };
        let io = table[port.0 as usize].as_ref().unwrap();
        dp.forward(&mut wake, port, io, packet, truncated);
    }

    pub(crate) fn counters(dp: &Dataplane, port: u32) -> PortCounters {
        dp.port_counters(PortId(port)).unwrap()
    }

    #[test]
    fn frames_and_drops_are_counted_on_the_ports() {
        let (dp, _one, two) = two_ports();
        let a = [2, 0, 0, 0, 0, 1];
        // A broadcast from port 1 floods to port 2: received on 1, sent on 2.
        forward(&dp, PortId(1), &packet([0xff; 6], a), false);
        let mut got = [0u8; 128];
        assert_eq!(two.recv(&mut got).unwrap(), VNET_HDR_LEN + 60);
        let c1 = counters(&dp, 1);
        assert_eq!((c1.rx_packets, c1.rx_bytes, c1.tx_packets), (1, 60, 0));
        let c2 = counters(&dp, 2);
        assert_eq!((c2.rx_packets, c2.tx_packets, c2.tx_bytes), (0, 1, 60));

        // The bridge's drops count as received too; header problems are not received.
        forward(&dp, PortId(1), &packet(a, a), false);
        forward(&dp, PortId(1), &[0u8; VNET_HDR_LEN + 5], false);
        forward(&dp, PortId(1), &[0u8; 4], false);
        forward(&dp, PortId(1), &packet([0xff; 6], a), true);
        let c1 = counters(&dp, 1);
        assert_eq!(c1.rx_packets, 3);
        assert_eq!(
            c1.nonzero_drops().collect::<Vec<_>>(),
            [
                (DropReason::Runt, 1),
                (DropReason::BadVnetHeader, 1),
                (DropReason::Truncated, 1),
                (DropReason::SameSegment, 1),
            ]
        );

        // A write that fails counts on the output port.
        drop(two);
        forward(&dp, PortId(1), &packet([0xff; 6], a), false);
        let c2 = counters(&dp, 2);
        assert_eq!(c2.tx_packets, 1);
        assert_eq!(c2.drop_count(DropReason::TxError), 1);

        // As the gateway's runtime counts its drops.
        dp.record_drop(PortId(2), DropReason::GatewayBusy);
        let c2 = dp.port_counters(PortId(2)).expect("port 2 is attached");
        assert_eq!(c2.drop_count(DropReason::GatewayBusy), 1);
        dp.record_drop(PortId(9), DropReason::GatewayBusy); // no such port: ignored
        assert_eq!(dp.port_counters(PortId(9)), None);
    }
}
