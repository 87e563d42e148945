//! What container engines' drivers ask of the daemon beyond the API's operations: networks
//! bound to a Docker network ID, addresses reserved for endpoints an engine is creating,
//! endpoints found by their engine binding, renamed once the engine says the container's
//! name, and withdrawn published ports.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::networks::check_create;
use super::{mac_for_ip, validate_name, Control, Daemon, DaemonError, Result};
use crate::gateway::publish::Protocol;
use crate::types::{CreateNetwork, EndpointInfo, NetworkSummary};

/// A network as an engine's driver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineNetwork {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

impl Daemon {
    /// Checks that `req` could be created now, without creating it (Docker's
    /// `CreateNetwork` comes before Docker stores the network's name). An overlay network of
    /// the same subnet is no conflict: it may be the one the request adopts.
    pub fn check_new_network(&self, req: &CreateNetwork) -> Result<()> {
        let new = check_create(req)?;
        let c = self.lock();
        if let Some(other) = Self::overlapping(&c, new.record.subnet) {
            let adoptable = new.overlay
                && other.record.vni.is_some()
                && other.record.subnet == new.record.subnet;
            if !adoptable {
                return Err(DaemonError::Conflict(format!(
                    "subnet {} overlaps subnet {} of weft network {:?}; choose a subnet that does not overlap",
                    new.record.subnet, other.record.subnet, other.record.name
                )));
            }
        }
        Ok(())
    }

    /// Creates the network Docker network `docker_id` stands for (or adopts the cluster's
    /// overlay network of that name).
    pub fn create_docker_network(
        &self,
        req: CreateNetwork,
        docker_id: &str,
    ) -> Result<NetworkSummary> {
        self.create_network_as(req, Some(docker_id.to_string()))
    }

    /// The network bound to Docker network `docker_id`.
    pub fn docker_network(&self, docker_id: &str) -> Option<EngineNetwork> {
        let c = self.lock();
        c.networks
            .values()
            .find(|n| n.record.docker_id.as_deref() == Some(docker_id))
            .map(|n| EngineNetwork {
                name: n.record.name.clone(),
                subnet: n.record.subnet,
                gateway: n.record.gateway,
                internal: n.record.internal,
            })
    }

    /// The weft network whose subnet overlaps `subnet`, by name.
    pub fn network_overlapping(&self, subnet: Ipv4Net) -> Option<(String, Ipv4Net, bool)> {
        let c = self.lock();
        Self::overlapping(&c, subnet).map(|n| {
            (
                n.record.name.clone(),
                n.record.subnet,
                n.record.vni.is_some(),
            )
        })
    }

    /// Removes the network bound to Docker network `docker_id` with what is still on it;
    /// nothing to do if there is none.
    pub fn remove_docker_network(&self, docker_id: &str) -> Result<()> {
        let mut c = self.lock();
        let Some((name, adopted)) = c
            .networks
            .values()
            .find(|n| n.record.docker_id.as_deref() == Some(docker_id))
            .map(|n| (n.record.name.clone(), n.record.docker_adopted))
        else {
            return Ok(());
        };
        if adopted {
            // The cluster's network stays: only Docker's binding goes.
            let mut after = Self::snapshot(&c);
            for n in after.networks.iter_mut().filter(|n| n.name == name) {
                n.docker_id = None;
                n.docker_adopted = false;
            }
            self.state_dir.save(&after)?;
            if let Some(n) = c.networks.get_mut(&name) {
                n.record.docker_id = None;
                n.record.docker_adopted = false;
            }
            return Ok(());
        }
        self.remove_network_locked(&mut c, &name, true)
    }

    /// An address for an endpoint an engine is creating on `network`: `requested` if free,
    /// else the next free one (from this node's blocks on a cluster's overlay network),
    /// never one of `reserved` (given out already, not yet connected).
    pub fn allocate_address(
        &self,
        network: &str,
        requested: Option<Ipv4Addr>,
        reserved: &BTreeSet<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let c = self.lock();
        let net = Self::network(&c, network)?;
        self.endpoint_ip(&c, net, requested, reserved)
    }

    /// The MAC weft gives an endpoint with address `ip` (`02:42` and the address).
    pub fn engine_mac(ip: Ipv4Addr) -> String {
        mac_for_ip(ip).to_string()
    }

    /// The endpoint an engine made, by its binding (`docker:ID`, `cni:ID/IF`).
    pub fn endpoint_owned_by(&self, owner: &str) -> Option<EndpointInfo> {
        let c = self.lock();
        let found = c
            .endpoints
            .values()
            .find(|e| e.record.owner.as_deref() == Some(owner));
        if let Some(e) = found {
            return Some(Self::endpoint_info(&c, e));
        }
        c.detached
            .values()
            .find(|d| d.record.owner.as_deref() == Some(owner))
            .map(|d| Self::detached_info(&c, d))
    }

    /// Renames an endpoint (to the container's name, once the engine tells it): its port,
    /// DNS name and state record follow. Refused if `new` is taken or invalid.
    pub fn rename_endpoint(&self, old: &str, new: &str) -> Result<()> {
        validate_name("endpoint", new)?;
        let mut c = self.lock();
        if Self::endpoint_name_taken(&c, new) {
            return Err(DaemonError::Conflict(format!(
                "an endpoint named {new:?} already exists"
            )));
        }
        let mut after = Self::snapshot(&c);
        let Some(rec) = after.endpoints.iter_mut().find(|e| e.name == old) else {
            return Err(DaemonError::NotFound(format!("no endpoint named {old:?}")));
        };
        rec.name = new.to_string();
        for s in after.static_fdb.iter_mut().filter(|s| s.endpoint == old) {
            s.endpoint = new.to_string();
        }
        self.state_dir.save(&after)?;
        rename_in(&mut c, old, new);
        let network = c.endpoints[new].record.network.clone();
        self.rebuild_zone(&c, &network);
        Ok(())
    }

    /// Withdraws every port endpoint `name` publishes (Docker's
    /// `RevokeExternalConnectivity`); nothing to do if it publishes none.
    pub fn unpublish_all(&self, name: &str) -> Result<()> {
        let specs: Vec<String> = {
            let c = self.lock();
            let Some(e) = c.endpoints.get(name) else {
                return Ok(());
            };
            e.record
                .published
                .iter()
                .map(|m| {
                    let proto = match m.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                    };
                    format!("{}:{}/{proto}", m.host_ip, m.host_port)
                })
                .collect()
        };
        for spec in specs {
            self.unpublish(name, &spec)?;
        }
        Ok(())
    }
}

/// Moves endpoint `old` to key `new` in the control state (the caller saved already).
fn rename_in(c: &mut Control, old: &str, new: &str) {
    if let Some(mut e) = c.endpoints.remove(old) {
        e.record.name = new.to_string();
        c.endpoints.insert(new.to_string(), e);
    }
    for s in c.static_fdb.iter_mut().filter(|s| s.endpoint == old) {
        s.endpoint = new.to_string();
    }
}
