//! The tables one forwarding decision reads and changes: a network's, changed by live
//! traffic, or only read by a dry run (a synthetic trace), behind one trait so `decide` is
//! written once.

use super::Network;
use super::PortId;
use crate::counters::DropReason;
use crate::fdb::LearnOutcome;
use crate::frame::EthernetFrame;
use crate::gateway::{GatewayTask, Offload};
use crate::mac::MacAddr;
use crate::time::Timestamp;

/// A network's tables as one decision sees them: changed by it (live traffic, `&mut
/// Network`) or only read ([`DryRun`], a synthetic trace). `decide` is written once over both.
pub(super) trait Tables<'a> {
    fn net(&self) -> &Network;
    /// Learning of a source address (802.1D §7.8), or what it would do.
    fn learn(&mut self, mac: MacAddr, port: PortId, now: Timestamp) -> LearnOutcome;
    /// The gateway's task for the frame, counting the switch's answers, or not.
    fn gateway_task(
        &mut self,
        frame: &EthernetFrame<'_>,
        offload: Offload,
    ) -> Option<Result<GatewayTask, DropReason>>;
    /// The port the FDB has `mac` behind at `now` (after this decision's learning).
    fn port_of(&self, mac: MacAddr, now: Timestamp) -> Option<PortId>;
    /// The tables for the rest of the decision, read-only.
    fn into_net(self) -> &'a Network;
}

impl<'a> Tables<'a> for &'a mut Network {
    fn net(&self) -> &Network {
        self
    }
    fn learn(&mut self, mac: MacAddr, port: PortId, now: Timestamp) -> LearnOutcome {
        self.fdb.learn(mac, port, now)
    }
    fn gateway_task(
        &mut self,
        frame: &EthernetFrame<'_>,
        offload: Offload,
    ) -> Option<Result<GatewayTask, DropReason>> {
        let gateway = self.config.gateway;
        self.responder.task(gateway.as_ref(), frame, offload)
    }
    fn port_of(&self, mac: MacAddr, now: Timestamp) -> Option<PortId> {
        self.fdb.port_of(mac, now)
    }
    fn into_net(self) -> &'a Network {
        self
    }
}

/// A network's tables read by a decision that changes nothing, with what its learning would
/// have put in the FDB (a frame to its own source finds it there).
pub(super) struct DryRun<'a>(pub(super) &'a Network, pub(super) Option<(MacAddr, PortId)>);

impl<'a> Tables<'a> for DryRun<'a> {
    fn net(&self) -> &Network {
        self.0
    }
    fn learn(&mut self, mac: MacAddr, port: PortId, now: Timestamp) -> LearnOutcome {
        let outcome = self.0.fdb.learn_outcome(mac, port, now);
        if matches!(
            outcome,
            LearnOutcome::Learned | LearnOutcome::Refreshed | LearnOutcome::Moved { .. }
        ) {
            self.1 = Some((mac, port));
        }
        outcome
    }
    fn gateway_task(
        &mut self,
        frame: &EthernetFrame<'_>,
        offload: Offload,
    ) -> Option<Result<GatewayTask, DropReason>> {
        let gateway = self.0.config.gateway;
        self.0.responder.task_of(gateway.as_ref(), frame, offload)
    }
    fn port_of(&self, mac: MacAddr, now: Timestamp) -> Option<PortId> {
        match self.1 {
            // Learned just now: live unless the aging time is zero.
            Some((learned, port)) if learned == mac => {
                (self.0.fdb.aging().as_millis() > 0).then_some(port)
            }
            _ => self.0.fdb.port_of(mac, now),
        }
    }
    fn into_net(self) -> &'a Network {
        self.0
    }
}
