//! The rollback guard of connecting an endpoint: each step that changed something is
//! recorded as it succeeds and undone, last first, unless the guard is committed.

use std::net::Ipv4Addr;

use weft_switch::{MacAddr, NetworkId, PortBinding, PortId};

use super::plumb::{plumb, CreatedPort, Placement};
use super::state::{EndpointKind, EndpointRecord};
use super::{Control, Daemon, Endpoint, Result};
use crate::gateway::stack::StackInput;
use weft_sys::{IfConfig, Netns};

/// One thing connecting an endpoint did, as [`Rollback`] undoes it.
enum Step {
    /// The interface exists and is data-plane port `port`: remove the port, then the
    /// interface.
    Port {
        port: PortId,
        kind: EndpointKind,
        host_ifname: Option<String>,
    },
    /// The switch answers ARP for `ip` on `network` (and may have learned the MAC): forget
    /// the address.
    Neighbor { network: NetworkId, ip: Ipv4Addr },
    /// The endpoint is in the control state: take it out, and tell the gateway's stack to
    /// forget its port.
    Endpoint { name: String, port: PortId },
}

/// The rollback guard of connecting an endpoint (a new one, or a persisted one on start):
/// each step that changed something is recorded as it succeeds, and dropping the guard
/// without [`Rollback::commit`] undoes the recorded steps, last first. Every step is whole
/// or nothing itself (a port the data plane refuses has its interface removed at once).
pub(super) struct Rollback<'a> {
    daemon: &'a Daemon,
    c: &'a mut Control,
    done: Vec<Step>,
}

impl<'a> Rollback<'a> {
    pub(super) fn new(daemon: &'a Daemon, c: &'a mut Control) -> Rollback<'a> {
        Rollback {
            daemon,
            c,
            done: Vec::new(),
        }
    }

    /// The control state as the steps so far left it.
    pub(super) fn control(&self) -> &Control {
        self.c
    }

    /// Creates (or re-attaches) the endpoint's interface and adds it to network `net` of the
    /// data plane as a new port.
    pub(super) fn add_port(
        &mut self,
        netns: &Netns,
        record: &EndpointRecord,
        cfg: IfConfig,
        net: NetworkId,
        placement: Placement,
    ) -> Result<PortId> {
        let CreatedPort {
            fd,
            kind,
            host_ifname,
        } = plumb(netns, record, cfg, placement)?;
        let port = PortId(self.c.next_port_id);
        if let Err((e, fd)) = self.daemon.dataplane.add_port(port, net, fd) {
            CreatedPort {
                fd,
                kind,
                host_ifname,
            }
            .destroy();
            return Err(e.into());
        }
        self.c.next_port_id += 1;
        self.done.push(Step::Port {
            port,
            kind,
            host_ifname,
        });
        Ok(port)
    }

    /// Tells the switch the endpoint's address and MAC (see [`seed_endpoint`]).
    pub(super) fn seed(
        &mut self,
        network: NetworkId,
        port: PortId,
        (ip, mac): (Ipv4Addr, MacAddr),
        security: bool,
    ) -> std::result::Result<(), weft_switch::BridgeError> {
        // Recorded first: a seed that fails half-way may have set the neighbour entry.
        self.done.push(Step::Neighbor { network, ip });
        let binding = PortBinding {
            mac,
            ip: Some(ip),
            security,
        };
        let dataplane = &self.daemon.dataplane;
        dataplane.with_bridge(|b| seed_endpoint(b, network, port, binding))
    }

    /// Adds the endpoint to the control state (not saved).
    pub(super) fn insert_endpoint(&mut self, endpoint: Endpoint) {
        let name = endpoint.record.name.clone();
        self.done.push(Step::Endpoint {
            name: name.clone(),
            port: endpoint.port,
        });
        self.c.endpoints.insert(name, endpoint);
    }

    /// Keeps everything done: the guard undoes nothing when dropped.
    pub(super) fn commit(mut self) {
        self.done.clear();
    }

    fn undo(&mut self, step: Step) {
        let dataplane = &self.daemon.dataplane;
        match step {
            Step::Endpoint { name, port } => {
                self.c.endpoints.remove(&name);
                self.daemon.stack.send(StackInput::ForgetPort(port));
            }
            Step::Neighbor { network, ip } => {
                let _ = dataplane.with_bridge(|b| b.remove_neighbor(network, ip));
            }
            Step::Port {
                port,
                kind,
                host_ifname,
            } => {
                if let Ok(fd) = dataplane.remove_port(port) {
                    CreatedPort {
                        fd,
                        kind,
                        host_ifname,
                    }
                    .destroy();
                }
            }
        }
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        while let Some(step) = self.done.pop() {
            self.undo(step);
        }
    }
}

/// Tells the switch what IPAM knows about a new endpoint: its address for ARP suppression,
/// and its port's binding: the MAC pinned to the port (so the first unicast to it after an
/// ARP request the switch answered itself is not flooded, and no other port can take it),
/// with port security unless the endpoint opted out.
fn seed_endpoint(
    bridge: &mut weft_switch::Bridge,
    network: NetworkId,
    port: PortId,
    binding: PortBinding,
) -> std::result::Result<(), weft_switch::BridgeError> {
    if let Some(ip) = binding.ip {
        bridge.set_neighbor(network, ip, binding.mac)?;
    }
    bridge.bind_port(port, binding)?;
    Ok(())
}
