//! `weft trace PORT --inject`: the data plane's decision for a synthetic frame on the live
//! tables, changing nothing — no learning, no statistics, no counters, no frame sent
//! ([`weft_switch::Bridge::simulate_traced`], then where the frame would go).

use std::time::SystemTime;

use weft_switch::{DropReason, GatewayTask, Offload, PortId, Verdict};

use super::{lock, Dataplane, FrameTrace, TraceOutcome};

/// Outer headers a VXLAN datagram adds to an inner frame: IPv4 (20), UDP (8), VXLAN (8).
pub const VXLAN_OVERHEAD: usize = 20 + 8 + weft_vtep::VXLAN_HEADER_LEN;

/// What a synthetic frame would meet: the trace, and the task the gateway's runtime would
/// get (for the daemon to say what the runtime would do with it).
#[derive(Debug)]
pub struct Simulated {
    pub trace: FrameTrace,
    pub task: Option<GatewayTask>,
}

impl Dataplane {
    /// The decision for `frame` entering `in_port` now, and where it would go, with nothing
    /// changed or sent.
    pub fn simulate(&self, in_port: PortId, frame: &[u8]) -> Simulated {
        let mut trace = FrameTrace {
            at: SystemTime::now(),
            in_port,
            head: frame[..frame.len().min(64)].to_vec(),
            len: frame.len(),
            gso_size: None,
            steps: Vec::new(),
            outcome: Vec::new(),
        };
        // Lock order: the port table before the bridge.
        let table = self.ports_read();
        let io = |p: PortId| table.get(p.0 as usize).and_then(Option::as_ref);
        let from_tunnel = io(in_port).is_some_and(|i| i.tunnel.is_some());
        if io(in_port).is_some_and(|i| i.shaping.link_down()) {
            trace
                .outcome
                .push(TraceOutcome::Dropped(DropReason::LinkDown));
            return Simulated { trace, task: None };
        }
        let bridge = lock(&self.bridge);
        let steps = &mut trace.steps;
        let verdict = bridge.simulate_traced(self.now(), in_port, frame, Offload::NONE, &mut |s| {
            steps.push(s)
        });
        let mut task = None;
        let targets: Vec<PortId> = match verdict {
            Verdict::Forward(p) => vec![p],
            Verdict::Flood(set) => set.collect(),
            Verdict::Drop(reason) => {
                trace.outcome.push(TraceOutcome::Dropped(reason));
                Vec::new()
            }
            Verdict::ToGateway(t) if t.is_switch_answer() => {
                let mut reply = vec![0u8; frame.len()];
                trace.outcome.push(match t.write_reply(frame, &mut reply) {
                    Ok(len) => TraceOutcome::WouldAnswer { len },
                    Err(reason) => TraceOutcome::Dropped(reason),
                });
                Vec::new()
            }
            Verdict::ToGateway(t) => {
                let runtime =
                    self.gateway.get().is_some() && bridge.port_gateway(in_port).is_some();
                trace.outcome.push(if runtime {
                    TraceOutcome::WouldHandOver(super::monitor::runtime_work(&t))
                } else {
                    TraceOutcome::Dropped(DropReason::GatewayUnsupported)
                });
                task = runtime.then_some(t);
                Vec::new()
            }
        };
        drop(bridge);
        for out in targets {
            let outcome = match io(out).map(|i| i.tunnel.as_ref()) {
                Some(Some(_)) if from_tunnel => TraceOutcome::SplitHorizon { port: out },
                Some(Some(t)) => TraceOutcome::WouldTunnel {
                    port: out,
                    remote: t.remote,
                    vni: t.vni.get(),
                    len: frame.len() + VXLAN_OVERHEAD,
                },
                Some(None) if io(out).is_some_and(|i| i.shaping.link_down()) => {
                    TraceOutcome::Dropped(DropReason::LinkDown)
                }
                Some(None) => TraceOutcome::WouldSend { port: out },
                None => TraceOutcome::SendFailed { port: out },
            };
            trace.outcome.push(outcome);
        }
        Simulated { trace, task }
    }
}
