//! The plugin's commands, ADD, DEL, CHECK, STATUS and GC, each a few calls to the daemon.

use hyper::StatusCode;
use serde_json::Value;

use super::config::{name_candidates, parse_owner, Env, NetConf, PortMapping, Version};
use super::remote::{CallError, Remote};
use super::result::{add_result, expected, Attached};
use super::{codes, CniError};
use crate::types::{Connect, EndpointInfo, NetworkDetail};

/// ADD: creates the network if it is missing and the configuration describes it, connects
/// `CNI_NETNS` as an endpoint owned by `cni:CONTAINERID/IFNAME`, returns the result.
pub async fn add(
    remote: &Remote,
    conf: &NetConf,
    version: Version,
    env: &Env,
) -> Result<Value, CniError> {
    let netns = env.netns()?;
    let ifname = env.ifname()?;
    let owner = env.owner()?;
    let kind = conf.port_kind()?;
    let publish = conf
        .runtime_config
        .port_mappings
        .iter()
        .map(PortMapping::to_spec)
        .collect::<Result<Vec<_>, _>>()?;
    let network = conf.network()?;
    let net = ensure_network(remote, conf).await?;
    let candidates = name_candidates(env)?;
    let mut taken = remote.endpoint_names().await?;
    loop {
        let Some(name) = candidates.iter().find(|c| !taken.contains(c)).cloned() else {
            return Err(CniError::new(
                codes::DAEMON_REFUSED,
                format!("every endpoint name for container {} is taken ({}); disconnect one of them (`weft disconnect NETWORK NAME`)", env.container_id()?, candidates.join(", ")),
            ));
        };
        let req = Connect {
            netns: Some(netns.to_string()),
            pid: None,
            name: Some(name.clone()),
            ip: None,
            mac: None,
            ifname: Some(ifname.to_string()),
            kind: Some(kind),
            aliases: Vec::new(),
            publish: publish.clone(),
            publish_all: Vec::new(),
            port_security: None,
            owner: Some(owner.clone()),
        };
        match remote.connect(network, &req).await {
            Ok(ep) => {
                let attached = Attached {
                    ifname: ep.ifname,
                    mac: ep.mac,
                    sandbox: netns.to_string(),
                    ip: ep.ip,
                    prefix_len: ep.prefix_len,
                    gateway: net.gateway.clone(),
                    mtu: net.mtu,
                };
                return Ok(add_result(version, &attached));
            }
            // Taken meanwhile by a parallel ADD: the next name.
            Err(CallError::Status(StatusCode::CONFLICT, m))
                if m.contains(&format!("named {name:?} already exists")) =>
            {
                taken.push(name);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The network, created first when it is missing and the configuration has a subnet.
async fn ensure_network(remote: &Remote, conf: &NetConf) -> Result<NetworkDetail, CniError> {
    let name = conf.network()?;
    if let Some(n) = remote.network(name).await? {
        return Ok(n);
    }
    let Some(req) = conf.create_request()? else {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            format!("weft has no network {name:?}: create it (`weft network create {name} --subnet CIDR`) or give \"subnet\" in the CNI configuration (`weft cni install --network {name} --subnet CIDR`)"),
        ));
    };
    let created = remote.create_network(&req).await;
    match remote.network(name).await? {
        Some(n) => Ok(n),
        // Not there after all: why the creation failed.
        None => Err(match created {
            Err(e) => e.into(),
            Ok(_) => CniError::new(
                codes::TRY_AGAIN,
                format!("network {name:?} went away right after it was created; try again"),
            ),
        }),
    }
}

/// The endpoints of `net` this attachment made.
fn owned<'a>(net: &'a NetworkDetail, owner: &'a str) -> impl Iterator<Item = &'a EndpointInfo> {
    net.endpoints
        .iter()
        .filter(move |e| e.owner.as_deref() == Some(owner))
}

/// DEL: disconnects the attachment's endpoint. Nothing to do (no network, no endpoint, the
/// namespace gone) is success; an unreachable daemon is "try again later", because the
/// endpoint, its address and its host ports live in the daemon and must not be forgotten.
pub async fn del(remote: &Remote, conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let owner = env.owner()?;
    let network = conf.network()?;
    let Some(net) = remote.network(network).await? else {
        return Ok(());
    };
    for ep in owned(&net, &owner) {
        remote.disconnect(network, &ep.name).await?;
    }
    Ok(())
}

/// CHECK: the endpoint exists, is attached, sits in `CNI_NETNS` and has the interface name,
/// MAC and address `prevResult` says.
pub async fn check(
    remote: &Remote,
    conf: &NetConf,
    version: Version,
    env: &Env,
) -> Result<(), CniError> {
    if version < Version::V040 {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!(
                "CHECK needs cniVersion 0.4.0 or later, the configuration has {}",
                version.as_str()
            ),
        ));
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            codes::INVALID_CONFIG,
            "CHECK needs \"prevResult\" (the result of ADD)",
        )
    })?;
    let (netns, ifname, owner) = (env.netns()?, env.ifname()?, env.owner()?);
    let network = conf.network()?;
    let net = remote.network(network).await?.ok_or_else(|| {
        CniError::new(
            codes::UNKNOWN_CONTAINER,
            format!("weft has no network {network:?} any more"),
        )
    })?;
    let ep = owned(&net, &owner).next().ok_or_else(|| {
        CniError::new(
            codes::UNKNOWN_CONTAINER,
            format!(
                "network {network:?} has no endpoint of container {} interface {ifname}",
                env.container_id().unwrap_or("?")
            ),
        )
    })?;
    let mismatch = |what: String| {
        CniError::new(
            codes::CHECK_FAILED,
            format!("endpoint {:?}: {what}", ep.name),
        )
    };
    if let Some(why) = &ep.detached {
        return Err(mismatch(format!("detached: {why}")));
    }
    if ep.ifname != ifname || ep.netns != netns {
        return Err(mismatch(format!(
            "is interface {} in {}, not {ifname} in {netns}",
            ep.ifname, ep.netns
        )));
    }
    let want = expected(prev, ifname);
    if !want
        .mac
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case(&ep.mac))
    {
        return Err(mismatch(format!(
            "has MAC {}, prevResult says {:?}",
            ep.mac, want.mac
        )));
    }
    let address = format!("{}/{}", ep.ip, ep.prefix_len);
    if !want.addresses.contains(&address) {
        return Err(mismatch(format!(
            "has address {address}, prevResult says {:?}",
            want.addresses
        )));
    }
    Ok(())
}

/// STATUS: ready when the daemon answers and the network exists or can be created.
pub async fn status(remote: &Remote, conf: &NetConf, version: Version) -> Result<(), CniError> {
    needs_v110(version, "STATUS")?;
    let network = conf.network()?;
    match remote.network(network).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) if conf.subnet.is_some() => Ok(()),
        Ok(None) => Err(CniError::new(
            codes::NOT_AVAILABLE,
            format!("weft has no network {network:?} and the configuration gives no \"subnet\" to create it: `weft network create {network} --subnet CIDR`"),
        )),
        Err(e) => Err(CniError::new(codes::NOT_AVAILABLE, e.into_cni().msg)),
    }
}

/// GC: disconnects the network's endpoints a CNI attachment made that the runtime no longer
/// lists in `cni.dev/valid-attachments`; endpoints made otherwise are left alone.
pub async fn gc(remote: &Remote, conf: &NetConf, version: Version) -> Result<(), CniError> {
    needs_v110(version, "GC")?;
    let valid = conf.gc_valid()?;
    let network = conf.network()?;
    let Some(net) = remote.network(network).await? else {
        return Ok(());
    };
    let mut failed = Vec::new();
    for ep in &net.endpoints {
        let Some((id, ifname)) = ep.owner.as_deref().and_then(parse_owner) else {
            continue;
        };
        if valid
            .iter()
            .any(|a| a.container_id == id && a.ifname == ifname)
        {
            continue;
        }
        if let Err(e) = remote.disconnect(network, &ep.name).await {
            failed.push(format!("{}: {}", ep.name, e.into_cni().msg));
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(CniError::new(
        codes::DAEMON_REFUSED,
        format!(
            "GC could not remove {} stale endpoint(s) of network {network:?}",
            failed.len()
        ),
    )
    .with_details(failed.join("; ")))
}

fn needs_v110(version: Version, what: &str) -> Result<(), CniError> {
    if version < Version::V110 {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!(
                "{what} needs cniVersion 1.1.0, the configuration has {}",
                version.as_str()
            ),
        ));
    }
    Ok(())
}
