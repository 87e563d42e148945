//! Networks: create, list, inspect and remove them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_switch::NetworkId;

use super::state::NetworkRecord;
use super::{
    gateway_mac, invalid, ipam, network_config, parse_subnet, unix_ms, validate_name, Control,
    Daemon, DaemonError, Network, Result, DEFAULT_AGING_SECONDS, DEFAULT_MTU, FIRST_AUTO_VNI,
    OVERLAY_OVERHEAD,
};
use crate::gateway::stack::StackInput;
use crate::types::{CreateNetwork, EndpointInfo, NetworkDetail, NetworkSummary};

impl Daemon {
    /// The network whose subnet overlaps `subnet`, if any.
    pub(super) fn overlapping(c: &Control, subnet: Ipv4Net) -> Option<&Network> {
        c.networks.values().find(|n| {
            n.record.subnet.contains(&subnet.network())
                || subnet.contains(&n.record.subnet.network())
        })
    }

    /// Adds a validated network to the data plane (opening the VTEP for an overlay network)
    /// and the control state; no state save.
    pub(super) fn install_network(
        &self,
        c: &mut Control,
        record: NetworkRecord,
    ) -> Result<NetworkId> {
        self.open_overlay(&record)?;
        let id = NetworkId(c.next_network_id);
        if let Err(e) = self.dataplane.add_network(id, network_config(&record)) {
            self.close_overlay(&record);
            return Err(e.into());
        }
        c.next_network_id += 1;
        c.networks
            .insert(record.name.clone(), Network { record, id });
        Ok(id)
    }
    pub(super) fn summary(c: &Control, n: &Network) -> NetworkSummary {
        NetworkSummary {
            name: n.record.name.clone(),
            subnet: n.record.subnet.to_string(),
            gateway: n.record.gateway.to_string(),
            mtu: n.record.mtu,
            aging_seconds: n.record.aging_seconds,
            icc: n.record.icc,
            nat: nat_mode(n.record.nat).into(),
            internal: n.record.internal,
            driver: driver_name(&n.record).into(),
            vni: n.record.vni,
            docker_id: n.record.docker_id.clone(),
            endpoints: c
                .endpoints
                .values()
                .filter(|e| e.record.network == n.record.name)
                .count(),
        }
    }
    pub fn create_network(&self, req: CreateNetwork) -> Result<NetworkSummary> {
        self.create_network_as(req, None)
    }

    /// Creates a network; `docker_id` binds it to the Docker network that asked for it. An
    /// overlay network of that name the cluster made already is adopted instead (same
    /// subnet), as every host's `docker network create` of one overlay network does.
    pub(super) fn create_network_as(
        &self,
        req: CreateNetwork,
        docker_id: Option<String>,
    ) -> Result<NetworkSummary> {
        let NewNetwork {
            mut record,
            overlay,
        } = check_create(&req)?;
        let mut c = self.lock();
        if let (Some(id), Some(n)) = (&docker_id, c.networks.get_mut(&req.name)) {
            if overlay && n.record.vni.is_some() && n.record.subnet == record.subnet {
                if let Some(other) = &n.record.docker_id {
                    return Err(DaemonError::Conflict(format!(
                        "weft network {:?} is Docker network {other} already; remove that one first",
                        req.name
                    )));
                }
                n.record.docker_id = Some(id.clone());
                n.record.docker_adopted = true;
                if let Err(e) = self.save(&c) {
                    if let Some(n) = c.networks.get_mut(&req.name) {
                        n.record.docker_id = None;
                        n.record.docker_adopted = false;
                    }
                    return Err(e);
                }
                return Ok(Self::summary(&c, &c.networks[&req.name]));
            }
        }
        if c.networks.contains_key(&req.name) {
            return Err(DaemonError::Conflict(format!(
                "a network named {:?} already exists; choose another name or remove it with `weft network rm {}`",
                req.name, req.name
            )));
        }
        if let Some(other) = Self::overlapping(&c, record.subnet) {
            return Err(DaemonError::Conflict(format!(
                "subnet {} overlaps subnet {} of network {:?}; choose a subnet that does not overlap",
                record.subnet, other.record.subnet, other.record.name
            )));
        }
        record.docker_id = docker_id;
        if overlay {
            record.vni = Some(pick_vni(&c, req.vni)?);
            record.created_ms = Some(unix_ms());
        }
        let id = self.install_network(&mut c, record)?;
        let removed_marker = c.removed_networks.remove(&req.name);
        if let Err(e) = self.save(&c) {
            if let Some(n) = c.networks.remove(&req.name) {
                self.close_overlay(&n.record);
            }
            if let Some(marker) = removed_marker {
                c.removed_networks.insert(req.name.clone(), marker);
            }
            let _ = self.dataplane.remove_network(id);
            return Err(e);
        }
        self.rebuild_zone(&c, &req.name);
        let n = &c.networks[&req.name];
        Ok(Self::summary(&c, n))
    }

    pub fn list_networks(&self) -> Vec<NetworkSummary> {
        let c = self.lock();
        c.networks.values().map(|n| Self::summary(&c, n)).collect()
    }

    pub fn inspect_network(&self, name: &str) -> Result<NetworkDetail> {
        let c = self.lock();
        let n = Self::network(&c, name)?;
        Ok(NetworkDetail {
            name: n.record.name.clone(),
            subnet: n.record.subnet.to_string(),
            gateway: n.record.gateway.to_string(),
            gateway_mac: gateway_mac(&n.record).to_string(),
            mtu: n.record.mtu,
            aging_seconds: n.record.aging_seconds,
            icc: n.record.icc,
            nat: nat_mode(n.record.nat).into(),
            internal: n.record.internal,
            driver: driver_name(&n.record).into(),
            vni: n.record.vni,
            docker_id: n.record.docker_id.clone(),
            published_source: if n.record.published_from_gateway {
                "gateway".into()
            } else {
                "client".into()
            },
            endpoints: c
                .endpoints
                .values()
                .filter(|e| e.record.network == name)
                .map(|e| {
                    let (impair, link_down) = self.shaping_of(e.port);
                    EndpointInfo {
                        impair,
                        link_down,
                        ..Self::endpoint_info(&c, e)
                    }
                })
                .chain(
                    c.detached
                        .values()
                        .filter(|d| d.record.network == name)
                        .map(|d| Self::detached_info(&c, d)),
                )
                .collect(),
        })
    }

    pub fn remove_network(&self, name: &str, force: bool) -> Result<()> {
        let mut c = self.lock();
        if let Some(id) = Self::network(&c, name)?.record.docker_id.as_deref() {
            if !force {
                let short: String = id.chars().take(12).collect();
                return Err(DaemonError::Conflict(format!(
                    "network {name:?} belongs to Docker (network ID {short}): remove it with `docker network rm {name}` (or with --force if Docker has forgotten it)"
                )));
            }
        }
        self.remove_network_locked(&mut c, name, force)
    }

    pub(super) fn remove_network_locked(
        &self,
        c: &mut Control,
        name: &str,
        force: bool,
    ) -> Result<()> {
        let id = Self::network(c, name)?.id;
        let attached: Vec<String> = c
            .endpoints
            .values()
            .filter(|e| e.record.network == name)
            .map(|e| e.record.name.clone())
            .collect();
        let detached = c.detached.values().filter(|d| d.record.network == name);
        let all: Vec<String> = (attached.iter().cloned())
            .chain(detached.map(|d| d.record.name.clone()))
            .collect();
        if !force && !all.is_empty() {
            return Err(DaemonError::Conflict(format!(
                "network {name:?} still has {} endpoint(s) attached ({}); disconnect them first or use --force",
                all.len(),
                all.join(", ")
            )));
        }
        // An overlay network removed here is removed in the whole cluster.
        let created_ms = c.networks.get(name).and_then(|n| n.record.created_ms);
        // Persist the outcome first: if that fails, nothing has been torn down.
        let mut after = Self::snapshot(c);
        if let Some(created) = created_ms {
            after.removed_networks.insert(name.to_string(), created);
        }
        after.networks.retain(|n| n.name != name);
        after.endpoints.retain(|e| e.network != name);
        after.static_fdb.retain(|s| s.network != name);
        after.peers.retain(|p| {
            c.peers
                .get(&p.port_name())
                .is_none_or(|peer| peer.network != name)
        });
        self.state_dir.save(&after)?;
        for ep in attached {
            self.detach(c, &ep);
        }
        c.detached.retain(|_, d| d.record.network != name);
        let peers: Vec<String> = c
            .peers
            .iter()
            .filter(|(_, p)| p.network == name)
            .map(|(n, _)| n.clone())
            .collect();
        for p in peers {
            self.detach_peer(c, &p);
        }
        self.cluster_forget_network(name, id);
        if let Some(n) = c.networks.get(name) {
            self.close_overlay(&n.record);
        }
        c.static_fdb.retain(|s| s.network != name);
        self.dataplane.remove_network(id)?;
        c.networks.remove(name);
        self.zones
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.stack.send(StackInput::ForgetNetwork(id));
        if let Some(created) = created_ms {
            c.removed_networks.insert(name.to_string(), created);
        }
        self.save(c)?;
        Ok(())
    }
}

/// A `weft network create` request with every field checked; what depends on the other
/// networks (name, subnet and VNI taken) is checked under the lock.
pub(super) struct NewNetwork {
    /// The network to create (no VNI yet).
    pub(super) record: NetworkRecord,
    pub(super) overlay: bool,
}

pub(super) fn check_create(req: &CreateNetwork) -> Result<NewNetwork> {
    validate_name("network", &req.name)?;
    let subnet = parse_subnet(&req.subnet)?;
    let gateway = match &req.gateway {
        Some(g) => {
            let gw: Ipv4Addr = g.parse().map_err(|_| {
                invalid(format!(
                    "invalid gateway {g:?}: expected an IPv4 address like 10.1.0.1"
                ))
            })?;
            ipam::check_host(subnet, gw).map_err(|e| {
                invalid(format!(
                    "gateway {gw} is not usable in subnet {subnet}: {e}"
                ))
            })?;
            gw
        }
        None => ipam::default_gateway(subnet).expect("prefix <= 30 has hosts"),
    };
    let overlay = match req.driver.as_deref() {
        None | Some("bridge") => false,
        Some("overlay") => true,
        Some(other) => {
            return Err(invalid(format!(
                "invalid --driver {other:?}: use bridge (this host only) or overlay (VXLAN between hosts)"
            )))
        }
    };
    if req.vni.is_some() && !overlay {
        return Err(invalid(
            "--vni is for overlay networks: add --driver overlay, or leave out --vni",
        ));
    }
    if let Some(vni) = req.vni {
        if !(1..=weft_vtep::Vni::MAX).contains(&vni) {
            return Err(invalid(format!(
                "invalid --vni {vni}: a VXLAN network identifier is 1..{}",
                weft_vtep::Vni::MAX
            )));
        }
    }
    let default_mtu = if overlay {
        DEFAULT_MTU - OVERLAY_OVERHEAD
    } else {
        DEFAULT_MTU
    };
    let mtu = req.mtu.unwrap_or(default_mtu);
    if !(576..=9000).contains(&mtu) {
        return Err(invalid(format!("invalid --mtu {mtu}: must be 576..9000")));
    }
    let aging_seconds = req.aging_seconds.unwrap_or(DEFAULT_AGING_SECONDS);
    if !(1..=1_000_000).contains(&aging_seconds) {
        return Err(invalid(format!(
            "invalid --aging {aging_seconds}: must be 1..1000000 seconds"
        )));
    }
    let nat = match req.nat.as_deref() {
        None | Some("proxy") => true,
        Some("none") => false,
        Some(other) => {
            return Err(invalid(format!(
                "invalid --nat {other:?}: use proxy (outbound traffic through host sockets) or none"
            )))
        }
    };
    let published_from_gateway = match req.published_source.as_deref() {
        None | Some("client") => false,
        Some("gateway") => true,
        Some(other) => {
            return Err(invalid(format!(
                "invalid --published-source {other:?}: use client (containers see the client's address) or gateway"
            )))
        }
    };
    Ok(NewNetwork {
        record: NetworkRecord {
            name: req.name.clone(),
            subnet,
            gateway,
            mtu,
            aging_seconds,
            icc: req.icc.unwrap_or(true),
            nat,
            internal: req.internal,
            vni: None,
            created_ms: None,
            docker_id: None,
            published_from_gateway,
            docker_adopted: false,
        },
        overlay,
    })
}

/// The VNI of a new overlay network: the requested one if free, else the first free one
/// from [`FIRST_AUTO_VNI`].
fn pick_vni(c: &Control, requested: Option<u32>) -> Result<u32> {
    let taken: BTreeSet<u32> = c.networks.values().filter_map(|n| n.record.vni).collect();
    let vni = match requested {
        Some(v) if taken.contains(&v) => {
            let owner = c
                .networks
                .values()
                .find(|n| n.record.vni == Some(v))
                .map(|n| n.record.name.clone())
                .unwrap_or_default();
            return Err(DaemonError::Conflict(format!(
                "VNI {v} is already used by network {owner:?}; pick another --vni"
            )));
        }
        Some(v) => v,
        None => (FIRST_AUTO_VNI..=weft_vtep::Vni::MAX)
            .find(|v| !taken.contains(v))
            .ok_or_else(|| invalid("no free VNI left"))?,
    };
    Ok(vni)
}

fn driver_name(record: &NetworkRecord) -> &'static str {
    if record.vni.is_some() {
        "overlay"
    } else {
        "bridge"
    }
}

fn nat_mode(nat: bool) -> &'static str {
    if nat {
        "proxy"
    } else {
        "none"
    }
}
