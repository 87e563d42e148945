//! Endpoints: connect (validate, plan, apply under a rollback guard), disconnect, re-attach.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use weft_switch::{MacAddr, NetworkId};

use super::plumb::{host_end_name, CreatedPort, Placement};
use super::rollback::Rollback;
use super::state::{EndpointKind, EndpointRecord, PendingEndpoint};
use super::validate::{validate_dns_name, validate_ifname, validate_name};
use super::{
    gateway, invalid, ipam, mac_for_ip, parse_mac, random_u64, Control, Daemon, DaemonError,
    DataplaneError, Endpoint, Network, Result,
};
use crate::cluster::spec::MAX_ALIASES;
use crate::gateway::publish::{self, PortMapping, PublishedSocket};
use crate::gateway::stack::StackInput;
use crate::types::{Connect, EndpointInfo, PortKind};
use weft_sys::{self as sys, IfConfig, Netns};

impl Daemon {
    /// `weft network connect`: validates the request (nothing changes before everything is
    /// checked), plans the endpoint (name, address, MAC, interface, bound host ports), then
    /// applies the plan under a [`Rollback`] guard.
    pub fn connect(&self, network: &str, req: Connect) -> Result<EndpointInfo> {
        if req
            .owner
            .as_deref()
            .is_some_and(|o| o.starts_with("docker:"))
        {
            return Err(invalid(
                "owner docker:… is for the endpoints weft's Docker driver makes; leave out owner",
            ));
        }
        let checked = check_connect(&req)?;
        self.connect_checked(network, &req, checked)
    }

    /// Connects an endpoint whose TAP a container engine moves into the container (Docker's
    /// `Join`): the TAP `req.ifname` is made in the daemon's namespace with the endpoint's
    /// MAC and MTU; `sandbox` (the container's namespace path, which may not exist yet) is
    /// where it is found again after a restart.
    pub fn connect_handover(
        &self,
        network: &str,
        req: &Connect,
        sandbox: &str,
    ) -> Result<EndpointInfo> {
        let (ifname, kind, mac, ip) = check_connect_fields(req)?;
        let checked = CheckedConnect {
            ifname,
            kind,
            mac,
            ip,
            netns: Netns::current()?,
            netns_label: sandbox.to_string(),
            placement: Placement::HandOver,
        };
        self.connect_checked(network, req, checked)
    }

    fn connect_checked(
        &self,
        network: &str,
        req: &Connect,
        checked: CheckedConnect,
    ) -> Result<EndpointInfo> {
        let mut c = self.lock();
        if let Some(owner) = &req.owner {
            let owned = c.endpoints.values().map(|e| &e.record);
            let owned = owned.chain(c.detached.values().map(|d| &d.record));
            if let Some(e) = owned.into_iter().find(|r| r.owner.as_ref() == Some(owner)) {
                return Err(DaemonError::Conflict(format!(
                    "endpoint {:?} is {owner}'s already; disconnect it first",
                    e.name
                )));
            }
        }
        let plan = self.plan_connect(&c, network, req, checked)?;
        let name = self.apply_connect(&mut c, plan)?;
        Ok(Self::endpoint_info(&c, &c.endpoints[&name]))
    }

    /// Checks a connect request against the state and decides what to create: the network
    /// exists, the interface name is free in the namespace, the endpoint name, the address
    /// and the MAC are valid and free; the published host ports are bound (all or none).
    fn plan_connect(
        &self,
        c: &Control,
        network: &str,
        req: &Connect,
        checked: CheckedConnect,
    ) -> Result<ConnectPlan> {
        let net = Self::network(c, network)?;
        // Host ports are bound before anything is created: a port in use refuses the whole
        // connect with nothing to undo.
        let bound = if req.publish.is_empty() && req.publish_all.is_empty() {
            Vec::new()
        } else {
            Self::bind_published(c, net, &req.publish, &req.publish_all)?
        };
        check_ifname_free(c, &checked)?;
        let name = endpoint_name(c, req, &checked.ifname)?;
        let ip = self.endpoint_ip(c, net, checked.ip, &BTreeSet::new())?;
        let mac = endpoint_mac(c, net, checked.mac, ip)?;
        let CheckedConnect {
            ifname,
            kind,
            netns,
            netns_label,
            placement,
            ..
        } = checked;
        let record = EndpointRecord {
            name,
            network: network.to_string(),
            netns: netns_label,
            ifname,
            kind,
            ip,
            mac,
            host_ifname: (kind == EndpointKind::Veth).then(|| host_end_name(random_u64())),
            aliases: req.aliases.clone(),
            // A handed-over TAP's namespace is the container's, made later by the engine.
            netns_id: (placement == Placement::Inside).then(|| netns.id()),
            published: bound.iter().map(|(m, _)| *m).collect(),
            port_security: req.port_security.unwrap_or(true),
            owner: req.owner.clone(),
            handed: placement == Placement::HandOver,
            impair: None,
            link_down: false,
        };
        let cfg = IfConfig {
            mac: mac.0,
            mtu: net.record.mtu,
            addr: ip,
            prefix_len: net.record.subnet.prefix_len(),
            gateway: Some(net.record.gateway),
        };
        Ok(ConnectPlan {
            netns,
            network: net.id,
            gateway: net.record.gateway,
            record,
            cfg,
            mac,
            bound,
            placement,
        })
    }

    /// Creates what `plan` says: the interface and its port, the switch's entries, the
    /// endpoint in the state, saved; then serves the published ports, names the endpoint in
    /// the DNS and writes the namespace's resolv.conf (none of which can fail). Returns the
    /// endpoint's name.
    fn apply_connect(&self, c: &mut Control, plan: ConnectPlan) -> Result<String> {
        let ConnectPlan {
            netns,
            network: net_id,
            gateway,
            record,
            cfg,
            mac,
            bound,
            placement,
        } = plan;
        let (name, network, ip) = (record.name.clone(), record.network.clone(), record.ip);
        // Recorded before the interface exists: a crash from here until the endpoint is
        // saved leaves an interface the next start removes.
        self.save_pending(
            c,
            PendingEndpoint {
                // A TAP to hand over is made in the daemon's own namespace.
                netns: match placement {
                    Placement::Inside => record.netns.clone(),
                    _ => "/proc/self/ns/net".into(),
                },
                netns_id: netns.id(),
                ifname: record.ifname.clone(),
                kind: record.kind,
                host_ifname: record.host_ifname.clone(),
            },
        )?;
        let mut undo = Rollback::new(self, c);
        let port = undo.add_port(&netns, &record, cfg, net_id, placement)?;
        let security = record.port_security;
        undo.seed(net_id, port, (ip, mac), security).map_err(|e| {
            invalid(format!(
                "address {ip} / MAC {mac} cannot be used on this network: {e}"
            ))
        })?;
        undo.insert_endpoint(Endpoint {
            record,
            port,
            netns_id: netns.id(),
        });
        self.save(undo.control())?;
        undo.commit();
        self.serve_published(c, &name, bound);
        self.rebuild_zone(c, &network);
        // A named namespace gets a resolv.conf pointing at the embedded DNS, so that
        // `ip netns exec NAME` programs resolve endpoint names.
        let label = &c.endpoints[&name].record.netns;
        if !label.contains('/') {
            if let Err(e) = gateway::write_netns_resolv_conf(label, &network, gateway) {
                log::warn!("cannot write /etc/netns/{label}/resolv.conf: {e}");
            }
        }
        Ok(name)
    }

    /// The new endpoint's address: the requested one if it is usable and free (here and,
    /// on a cluster's overlay network, on the other nodes), else the next free one.
    pub(super) fn endpoint_ip(
        &self,
        c: &Control,
        net: &Network,
        requested: Option<Ipv4Addr>,
        reserved: &BTreeSet<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let (subnet, gateway) = (net.record.subnet, net.record.gateway);
        let overlay_vni = net.record.vni.filter(|_| self.cluster.is_some());
        match requested {
            Some(ip) if reserved.contains(&ip) => Err(DaemonError::Conflict(format!(
                "address {ip} is reserved for an endpoint Docker is creating; pass another --ip or omit it"
            ))),
            Some(ip) => {
                ipam::check_explicit(
                    subnet,
                    gateway,
                    ip,
                    on_network(c, net).map(|r| (r.ip, r.name.as_str())),
                )?;
                if let Some(vni) = overlay_vni {
                    self.cluster_check_explicit(vni, ip)?;
                }
                Ok(ip)
            }
            None => {
                let taken: BTreeSet<Ipv4Addr> = on_network(c, net)
                    .map(|r| r.ip)
                    .chain(reserved.iter().copied())
                    .collect();
                match overlay_vni {
                    // Cluster-wide IPAM: an address from a block this node leased.
                    Some(vni) => self.cluster_allocate(c, vni, subnet, gateway, &taken),
                    None => Ok(ipam::next_free(subnet, gateway, &taken)?),
                }
            }
        }
    }

    /// Re-attaches an endpoint of the persisted state (on start): its interface is created
    /// again, or taken over if it is still there.
    pub(super) fn attach_existing(&self, c: &mut Control, record: EndpointRecord) -> Result<()> {
        let net = c
            .networks
            .get(&record.network)
            .ok_or_else(|| DaemonError::NotFound(format!("network {} is gone", record.network)))?;
        let placement = Placement::of_record(&record);
        // A handed-over TAP whose container is gone is still found in the daemon's namespace.
        let netns = match open_netns(Some(&record.netns), None) {
            Err(_) if placement == Placement::Handed => Netns::current()?,
            other => other?.0,
        };
        if record.netns_id.is_some_and(|id| id != netns.id()) {
            return Err(DaemonError::NotFound(format!(
                "namespace {} is not the one the endpoint was connected to (its process is gone)",
                record.netns
            )));
        }
        // Checked (unicast, nonzero) when the state file was read.
        let mac = record.mac;
        let cfg = IfConfig {
            mac: mac.0,
            mtu: net.record.mtu,
            addr: record.ip,
            prefix_len: net.record.subnet.prefix_len(),
            gateway: Some(net.record.gateway),
        };
        let net_id = net.id;
        let mut undo = Rollback::new(self, c);
        let port = undo.add_port(&netns, &record, cfg, net_id, placement)?;
        undo.seed(net_id, port, (record.ip, mac), record.port_security)
            .map_err(DataplaneError::from)?;
        undo.insert_endpoint(Endpoint {
            record,
            port,
            netns_id: netns.id(),
        });
        undo.commit();
        Ok(())
    }

    pub(super) fn endpoint_info(c: &Control, e: &Endpoint) -> EndpointInfo {
        Self::record_info(c, &e.record)
    }

    /// An endpoint as the API shows it (attached).
    pub(super) fn record_info(c: &Control, record: &EndpointRecord) -> EndpointInfo {
        let prefix_len = c
            .networks
            .get(&record.network)
            .map_or(0, |n| n.record.subnet.prefix_len());
        EndpointInfo {
            name: record.name.clone(),
            network: record.network.clone(),
            netns: record.netns.clone(),
            ifname: record.ifname.clone(),
            kind: record.kind.into(),
            ip: record.ip.to_string(),
            prefix_len,
            mac: record.mac.to_string(),
            port: record.name.clone(),
            host_ifname: record.host_ifname.clone(),
            aliases: record.aliases.clone(),
            published: record.published.iter().map(|m| m.to_string()).collect(),
            port_security: record.port_security,
            detached: None,
            owner: record.owner.clone(),
            impair: None,
            link_down: false,
        }
    }

    /// Removes an endpoint's port, interface and static entries (no state save).
    pub(super) fn detach(&self, c: &mut Control, name: &str) {
        let Some(ep) = c.endpoints.remove(name) else {
            return;
        };
        c.static_fdb.retain(|s| s.endpoint != name);
        for m in &ep.record.published {
            self.stack.send(StackInput::Unpublish {
                local: m.host_addr(),
                tcp: m.protocol == publish::Protocol::Tcp,
            });
        }
        self.stack.send(StackInput::ForgetPort(ep.port));
        if let Some(net) = c.networks.get(&ep.record.network) {
            let id = net.id;
            let _ = self
                .dataplane
                .with_bridge(|b| b.remove_neighbor(id, ep.record.ip));
        }
        self.rebuild_zone(c, &ep.record.network);
        let label = &ep.record.netns;
        if !label.contains('/') {
            // Point the namespace's resolv.conf at a network it is still on, or remove it.
            let remaining = c
                .endpoints
                .values()
                .find(|e| &e.record.netns == label)
                .and_then(|e| c.networks.get(&e.record.network));
            match remaining {
                Some(net) => {
                    let _ = gateway::write_netns_resolv_conf(
                        label,
                        &net.record.name,
                        net.record.gateway,
                    );
                }
                None => gateway::remove_netns_resolv_conf(label),
            }
        }
        match self.dataplane.remove_port(ep.port) {
            Ok(fd) => CreatedPort {
                fd,
                kind: ep.record.kind,
                host_ifname: ep.record.host_ifname.clone(),
            }
            .destroy(),
            Err(e) => log::warn!("endpoint {name}: {e}"),
        }
    }

    pub fn disconnect(&self, network: &str, endpoint: &str) -> Result<()> {
        let mut c = self.lock();
        Self::network(&c, network)?;
        if self.disconnect_detached(&mut c, network, endpoint)? {
            return Ok(());
        }
        match c.endpoints.get(endpoint) {
            Some(e) if e.record.network == network => {}
            Some(e) => {
                return Err(DaemonError::NotFound(format!(
                    "endpoint {endpoint:?} is on network {:?}, not {network:?}",
                    e.record.network
                )))
            }
            None => {
                return Err(DaemonError::NotFound(format!(
                    "no endpoint named {endpoint:?} on network {network:?}; see `weft network inspect {network}`"
                )))
            }
        }
        // Persist the outcome first: if that fails, the endpoint is still fully there.
        let mut after = Self::snapshot(&c);
        after.endpoints.retain(|e| e.name != endpoint);
        after.static_fdb.retain(|s| s.endpoint != endpoint);
        self.state_dir.save(&after)?;
        self.detach(&mut c, endpoint);
        Ok(())
    }
}

/// A connect request with what can be checked without the lock checked: interface name,
/// kind, requested MAC and address, endpoint name and aliases; the namespace is open.
struct CheckedConnect {
    ifname: String,
    kind: EndpointKind,
    mac: Option<MacAddr>,
    ip: Option<Ipv4Addr>,
    netns: Netns,
    netns_label: String,
    placement: Placement,
}

/// What `connect` will create, decided before anything changes.
struct ConnectPlan {
    netns: Netns,
    network: NetworkId,
    /// The network's gateway, for the namespace's resolv.conf.
    gateway: Ipv4Addr,
    /// The endpoint as it will be persisted.
    record: EndpointRecord,
    /// How its interface is configured.
    cfg: IfConfig,
    mac: MacAddr,
    /// The published ports' host sockets, bound already (closed again if connect fails).
    bound: Vec<(PortMapping, PublishedSocket)>,
    placement: Placement,
}

/// Checks what a connect request says on its own, in the order the user sees the errors.
fn check_connect(req: &Connect) -> Result<CheckedConnect> {
    let (ifname, kind, mac, ip) = check_connect_fields(req)?;
    let (netns, netns_label) = open_netns(req.netns.as_deref(), req.pid)?;
    Ok(CheckedConnect {
        ifname,
        kind,
        mac,
        ip,
        netns,
        netns_label,
        placement: Placement::Inside,
    })
}

/// What a connect request says on its own, checked without the system (the namespace is
/// opened after): interface name, kind, MAC, address, endpoint name and aliases.
pub(super) fn check_connect_fields(
    req: &Connect,
) -> Result<(String, EndpointKind, Option<MacAddr>, Option<Ipv4Addr>)> {
    let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
    validate_ifname(&ifname)?;
    let kind = endpoint_kind(req.kind.unwrap_or_default())?;
    let mac = req.mac.as_deref().map(parse_mac).transpose()?;
    let ip = req
        .ip
        .as_deref()
        .map(|s| {
            s.parse::<Ipv4Addr>().map_err(|_| {
                invalid(format!(
                    "invalid --ip {s:?}: expected an IPv4 address like 10.1.0.5"
                ))
            })
        })
        .transpose()?;
    if let Some(n) = &req.name {
        validate_name("endpoint", n)?;
    }
    check_aliases(&req.aliases)?;
    if let Some(owner) = &req.owner {
        check_owner(owner)?;
    }
    Ok((ifname, kind, mac, ip))
}

/// An endpoint's aliases: DNS names, as many as the cluster's peers take (they refuse a
/// gossiped endpoint with more).
pub(super) fn check_aliases(aliases: &[String]) -> Result<()> {
    if aliases.len() > MAX_ALIASES {
        return Err(invalid(format!(
            "{} aliases given; an endpoint has at most {MAX_ALIASES}: pass fewer --alias",
            aliases.len()
        )));
    }
    for alias in aliases {
        validate_dns_name(alias)?;
    }
    Ok(())
}

/// An engine's binding: printable ASCII, at most [`MAX_OWNER_LEN`] characters.
pub(super) fn check_owner(owner: &str) -> Result<()> {
    if owner.is_empty()
        || owner.len() > MAX_OWNER_LEN
        || !owner.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(format!(
            "invalid owner {owner:?}: use 1-{MAX_OWNER_LEN} printable characters without spaces, like docker:ENDPOINT_ID"
        )));
    }
    Ok(())
}

/// The longest engine binding an endpoint records.
pub(super) const MAX_OWNER_LEN: usize = 200;

/// The kind of port an endpoint asks for, as the state records it: a TAP or a veth pair.
fn endpoint_kind(kind: PortKind) -> Result<EndpointKind> {
    match kind {
        PortKind::Tap => Ok(EndpointKind::Tap),
        PortKind::Veth => Ok(EndpointKind::Veth),
        PortKind::Vxlan => Err(invalid(
            "an endpoint cannot be of kind vxlan: use tap or veth (remote VTEPs are added with `weft peer add`)",
        )),
    }
}

impl From<EndpointKind> for PortKind {
    fn from(kind: EndpointKind) -> PortKind {
        match kind {
            EndpointKind::Tap => PortKind::Tap,
            EndpointKind::Veth => PortKind::Veth,
        }
    }
}

/// Refuses an interface name the namespace has already (as an endpoint or otherwise).
fn check_ifname_free(c: &Control, checked: &CheckedConnect) -> Result<()> {
    let CheckedConnect {
        ifname,
        netns,
        netns_label,
        ..
    } = checked;
    if let Some(e) = c
        .endpoints
        .values()
        .find(|e| e.netns_id == netns.id() && &e.record.ifname == ifname)
    {
        return Err(DaemonError::Conflict(format!(
            "namespace {netns_label} already has interface {ifname} attached as endpoint {:?} on network {:?}; pass another --ifname",
            e.record.name, e.record.network
        )));
    }
    let probe = ifname.clone();
    if netns.run(move || Ok(sys::interface_exists(&probe)))? {
        return Err(DaemonError::Conflict(format!(
            "interface {ifname} already exists in namespace {netns_label}; pass another --ifname"
        )));
    }
    Ok(())
}

/// The new endpoint's name: `--name` if free, else the namespace's name (or pidPID), or
/// that with the interface name appended.
fn endpoint_name(c: &Control, req: &Connect, ifname: &str) -> Result<String> {
    let name = match req.name.clone() {
        Some(n) => {
            if Daemon::endpoint_name_taken(c, &n) {
                return Err(DaemonError::Conflict(format!(
                    "an endpoint named {n:?} already exists; pass another --name"
                )));
            }
            n
        }
        None => {
            let base = match (&req.netns, req.pid) {
                (Some(n), _) => n.rsplit('/').next().unwrap_or(n).to_string(),
                (None, Some(pid)) => format!("pid{pid}"),
                _ => unreachable!("open_netns checked"),
            };
            let base: String = base
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.') {
                        ch
                    } else {
                        '-'
                    }
                })
                .collect();
            [base.clone(), format!("{base}-{ifname}")]
                .into_iter()
                .find(|n| !Daemon::endpoint_name_taken(c, n))
                .ok_or_else(|| {
                    DaemonError::Conflict(format!(
                        "endpoint names {base:?} and \"{base}-{ifname}\" are taken; pass --name"
                    ))
                })?
        }
    };
    Ok(name)
}

/// The endpoints on network `net`, attached or detached (a detached one keeps its address
/// and MAC).
fn on_network<'c>(c: &'c Control, net: &'c Network) -> impl Iterator<Item = &'c EndpointRecord> {
    c.endpoints
        .values()
        .map(|e| &e.record)
        .chain(c.detached.values().map(|d| &d.record))
        .filter(move |r| r.network == net.record.name)
}

/// The new endpoint's MAC: the requested one, or one generated from the address; neither
/// the gateway's nor another endpoint's on the network.
fn endpoint_mac(
    c: &Control,
    net: &Network,
    requested: Option<MacAddr>,
    ip: Ipv4Addr,
) -> Result<MacAddr> {
    let network = &net.record.name;
    let mac = requested.unwrap_or_else(|| mac_for_ip(ip));
    if mac == mac_for_ip(net.record.gateway) {
        return Err(DaemonError::Conflict(format!(
            "MAC address {mac} belongs to the gateway of network {network:?}; pass another --mac or omit it"
        )));
    }
    if let Some(e) = on_network(c, net).find(|r| r.mac == mac) {
        let fix = if requested.is_some() {
            "pass another --mac or omit it"
        } else {
            "it was generated from the address: pass --mac or another --ip"
        };
        return Err(DaemonError::Conflict(format!(
            "MAC address {mac} is already used by endpoint {:?} on network {network:?}; {fix}",
            e.name
        )));
    }
    Ok(mac)
}

fn open_netns(netns: Option<&str>, pid: Option<u32>) -> Result<(Netns, String)> {
    let (ns, label) = open_netns_unchecked(netns, pid)?;
    if Netns::current().is_ok_and(|own| own.id() == ns.id()) {
        return Err(invalid(format!(
            "namespace {label} is the daemon's own network namespace; weft attaches containers, not the host: give a container's namespace (create one with `ip netns add NAME`)"
        )));
    }
    Ok((ns, label))
}

fn open_netns_unchecked(netns: Option<&str>, pid: Option<u32>) -> Result<(Netns, String)> {
    match (netns, pid) {
        (Some(_), Some(_)) => Err(invalid("give either --netns or --pid, not both")),
        (None, None) => Err(invalid(
            "say which namespace to connect: --netns NAME|PATH or --pid PID",
        )),
        (Some(n), None) => Ok((Netns::from_name_or_path(n)?, n.to_string())),
        (None, Some(pid)) => {
            let ns = Netns::from_pid(pid)?;
            Ok((ns, format!("/proc/{pid}/ns/net")))
        }
    }
}
