//! The driver: Docker's network and IPAM calls turned into the daemon's operations, with
//! what lives only between two of Docker's calls (pools held, addresses given out and not
//! yet connected, endpoints created and not yet joined, networks not yet named).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::names::DockerApi;
use super::options::{self, parse_addr, Refusal};
use super::protocol::{self as p, PortBinding};
use crate::daemon::engine::EngineNetwork;
use crate::daemon::{ipam, parse_subnet, Daemon};
use crate::types::{Connect, CreateNetwork, PortKind, Publish};

/// How long weft waits, after Docker's `CreateNetwork`, for Docker to store the network's
/// name; after that the network is named `docker-` and the ID's first 12 digits.
const NAME_WAIT: Duration = Duration::from_secs(10);

/// An endpoint Docker created and has not joined yet.
#[derive(Debug, Clone)]
struct Planned {
    network: String,
    ip: Ipv4Addr,
    mac: String,
}

#[derive(Default)]
struct DriverState {
    /// Pools handed out, by subnet, with how many times (`RequestPool` is counted).
    pools: BTreeMap<Ipv4Net, u32>,
    /// Networks Docker created whose name Docker has not stored yet.
    unnamed: BTreeMap<String, CreateNetwork>,
    /// Addresses given out by `RequestAddress`, not yet connected, by subnet.
    reserved: BTreeMap<Ipv4Net, BTreeSet<Ipv4Addr>>,
    /// Endpoints created, not yet joined, by endpoint ID.
    planned: BTreeMap<String, Planned>,
    /// The `-p` mappings each endpoint's `Join` carried, for `ProgramExternalConnectivity`.
    port_maps: BTreeMap<String, Vec<PortBinding>>,
}

/// Docker's remote network and IPAM driver over the daemon.
pub struct Driver {
    daemon: Arc<Daemon>,
    docker: DockerApi,
    rt: tokio::runtime::Handle,
    state: Mutex<DriverState>,
    /// Held while a network is named and created, so that two calls do not both create it.
    naming: Mutex<()>,
}

type Answer = Result<Value, Refusal>;

fn refuse(e: impl std::fmt::Display) -> Refusal {
    Refusal(e.to_string())
}

impl Driver {
    pub fn new(daemon: Arc<Daemon>, docker: DockerApi, rt: tokio::runtime::Handle) -> Driver {
        Driver {
            daemon,
            docker,
            rt,
            state: Mutex::default(),
            naming: Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, DriverState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one call by its path; the error is Docker's message.
    pub fn call(self: &Arc<Self>, path: &str, body: &[u8]) -> Answer {
        fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
            serde_json::from_slice(body)
                .map_err(|e| Refusal(format!("weft cannot read Docker's request: {e}")))
        }
        match path {
            "/NetworkDriver.GetCapabilities" => {
                Ok(json!({"Scope": "local", "ConnectivityScope": "local"}))
            }
            "/IpamDriver.GetCapabilities" => Ok(json!({"RequiresMACAddress": false})),
            "/IpamDriver.GetDefaultAddressSpaces" => Ok(json!({
                "LocalDefaultAddressSpace": "weft",
                "GlobalDefaultAddressSpace": "weft-global"
            })),
            "/IpamDriver.RequestPool" => self.request_pool(parse(body)?),
            "/IpamDriver.ReleasePool" => self.release_pool(parse(body)?),
            "/IpamDriver.RequestAddress" => self.request_address(parse(body)?),
            "/IpamDriver.ReleaseAddress" => self.release_address(parse(body)?),
            "/NetworkDriver.CreateNetwork" => self.create_network(parse(body)?),
            "/NetworkDriver.DeleteNetwork" => self.delete_network(parse(body)?),
            "/NetworkDriver.CreateEndpoint" => self.create_endpoint(parse(body)?),
            "/NetworkDriver.DeleteEndpoint" => self.delete_endpoint(parse(body)?),
            "/NetworkDriver.EndpointOperInfo" => Ok(json!({"Value": {}})),
            "/NetworkDriver.Join" => self.join(parse(body)?),
            "/NetworkDriver.Leave" => Ok(json!({})),
            "/NetworkDriver.ProgramExternalConnectivity" => self.program(parse(body)?),
            "/NetworkDriver.RevokeExternalConnectivity" => self.revoke(parse(body)?),
            "/NetworkDriver.DiscoverNew" | "/NetworkDriver.DiscoverDelete" => Ok(json!({})),
            other => Err(Refusal(format!(
                "weft does not implement {other}; is this Docker newer than weft knows?"
            ))),
        }
    }

    // ----- IPAM ----------------------------------------------------------------------

    fn request_pool(&self, req: p::RequestPool) -> Answer {
        if req.v6 {
            return Err(Refusal(
                "weft networks are IPv4 only: leave out --ipv6".into(),
            ));
        }
        if req.pool.is_empty() {
            return Err(Refusal(
                "weft needs the network's subnet: pass --subnet CIDR (e.g. --subnet 10.20.0.0/24)"
                    .into(),
            ));
        }
        if !req.sub_pool.is_empty() {
            return Err(Refusal(
                "weft gives addresses from the whole subnet: leave out --ip-range".into(),
            ));
        }
        let subnet = parse_subnet(&req.pool).map_err(refuse)?;
        // A same-subnet overlay network may be the cluster's one this request adopts.
        if let Some((name, other, overlay)) = self.daemon.network_overlapping(subnet) {
            if !(overlay && other == subnet) {
                return Err(Refusal(format!(
                    "subnet {subnet} overlaps subnet {other} of weft network {name:?}; choose a subnet that does not overlap"
                )));
            }
        }
        let mut st = self.state();
        if let Some(other) = st
            .pools
            .keys()
            .find(|p| **p != subnet && overlaps(**p, subnet))
        {
            return Err(Refusal(format!(
                "subnet {subnet} overlaps subnet {other} of another Docker network on weft; choose a subnet that does not overlap"
            )));
        }
        *st.pools.entry(subnet).or_default() += 1;
        let id = subnet.to_string();
        Ok(serde_json::to_value(p::PoolReply {
            pool_id: id.clone(),
            pool: id,
            data: Default::default(),
        })
        .unwrap_or_default())
    }

    fn release_pool(&self, req: p::ReleasePool) -> Answer {
        let mut st = self.state();
        if let Ok(subnet) = req.pool_id.parse::<Ipv4Net>() {
            if let Some(n) = st.pools.get_mut(&subnet) {
                *n -= 1;
                if *n == 0 {
                    st.pools.remove(&subnet);
                    st.reserved.remove(&subnet);
                }
            }
        }
        Ok(json!({}))
    }

    fn request_address(&self, req: p::RequestAddress) -> Answer {
        let subnet: Ipv4Net = req
            .pool_id
            .parse()
            .map_err(|_| Refusal(format!("unknown pool {:?}", req.pool_id)))?;
        let requested = (!req.address.is_empty())
            .then(|| parse_addr(&req.address))
            .transpose()?;
        let gateway = req
            .options
            .as_ref()
            .and_then(|o| o.get("RequestAddressType"))
            == Some(&p::GATEWAY_REQUEST.to_string());
        let ip = if gateway {
            match requested {
                Some(gw) => {
                    ipam::check_host(subnet, gw).map_err(|e| {
                        Refusal(format!("gateway {gw} is not usable in {subnet}: {e}"))
                    })?;
                    gw
                }
                None => ipam::default_gateway(subnet)
                    .ok_or_else(|| Refusal(format!("subnet {subnet} has no host addresses")))?,
            }
        } else {
            let network = self.network_of_subnet(subnet)?;
            // Allocated and reserved under one lock: two containers starting at once never
            // get the same address.
            let mut st = self.state();
            let reserved = st.reserved.entry(subnet).or_default();
            let ip = self
                .daemon
                .allocate_address(&network, requested, reserved)
                .map_err(refuse)?;
            reserved.insert(ip);
            ip
        };
        Ok(serde_json::to_value(p::AddressReply {
            address: format!("{ip}/{}", subnet.prefix_len()),
            data: Default::default(),
        })
        .unwrap_or_default())
    }

    fn release_address(&self, req: p::ReleaseAddress) -> Answer {
        if let (Ok(subnet), Ok(ip)) = (req.pool_id.parse::<Ipv4Net>(), parse_addr(&req.address)) {
            if let Some(set) = self.state().reserved.get_mut(&subnet) {
                set.remove(&ip);
            }
        }
        Ok(json!({}))
    }

    /// The weft network (named by now) Docker's pool `subnet` belongs to.
    fn network_of_subnet(&self, subnet: Ipv4Net) -> Result<String, Refusal> {
        let unnamed: Vec<String> = {
            let st = self.state();
            st.unnamed
                .iter()
                .filter(|(_, req)| req.subnet == subnet.to_string())
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in unnamed {
            self.name_network(&id)?;
        }
        match self.daemon.network_overlapping(subnet) {
            Some((name, s, _)) if s == subnet => Ok(name),
            _ => Err(Refusal(format!(
                "no weft network has subnet {subnet}; create it with docker network create -d weft --subnet {subnet}"
            ))),
        }
    }

    // ----- networks ------------------------------------------------------------------

    fn create_network(self: &Arc<Self>, req: p::CreateNetwork) -> Answer {
        check_id(&req.network_id)?;
        let id = req.network_id.clone();
        let placeholder = placeholder_name(&id);
        let request = options::network_request(&req, &placeholder)?;
        self.daemon.check_new_network(&request).map_err(refuse)?;
        {
            let mut st = self.state();
            if let Some((other, _)) = st.unnamed.iter().find(|(_, r)| r.subnet == request.subnet) {
                return Err(Refusal(format!(
                    "subnet {} is Docker network {}'s already; choose another --subnet",
                    request.subnet,
                    short(other)
                )));
            }
            st.unnamed.insert(id.clone(), request);
        }
        // Docker stores the network's name after this call returns: name it then.
        let me = Arc::clone(self);
        self.rt.spawn(async move {
            let deadline = tokio::time::Instant::now() + NAME_WAIT;
            while tokio::time::Instant::now() < deadline {
                if let Ok(Some(_)) = me.docker.network_name(&id).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let me2 = Arc::clone(&me);
            let _ = tokio::task::spawn_blocking(move || me2.name_network(&id)).await;
        });
        Ok(json!({}))
    }

    /// Creates the weft network of Docker network `id` under Docker's name for it (or the
    /// placeholder if Docker does not say, or the name is a weft network's already).
    fn name_network(&self, id: &str) -> Result<EngineNetwork, Refusal> {
        let _naming = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = self.daemon.docker_network(id) {
            return Ok(n);
        }
        let Some(mut request) = self.state().unnamed.get(id).cloned() else {
            return Err(Refusal(format!(
                "weft has no network for Docker network {}; remove it (docker network rm) and create it again",
                short(id)
            )));
        };
        let name = self
            .rt
            .block_on(self.docker.network_name(id))
            .ok()
            .flatten();
        let placeholder = request.name.clone();
        if let Some(name) = name {
            request.name = name;
        }
        let created = match self.daemon.create_docker_network(request.clone(), id) {
            Err(e) if request.name != placeholder => {
                log::warn!(
                    "Docker network {:?}: {e}; naming it {placeholder} in weft",
                    request.name
                );
                request.name = placeholder;
                self.daemon.create_docker_network(request, id)
            }
            other => other,
        };
        self.state().unnamed.remove(id);
        let summary = created.map_err(refuse)?;
        log::info!(
            "Docker network {} is weft network {}",
            short(id),
            summary.name
        );
        self.daemon
            .docker_network(id)
            .ok_or_else(|| Refusal("the network vanished while being created".into()))
    }

    fn delete_network(&self, req: p::NetworkRequest) -> Answer {
        let _naming = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        self.state().unnamed.remove(&req.network_id);
        self.daemon
            .remove_docker_network(&req.network_id)
            .map_err(refuse)?;
        Ok(json!({}))
    }

    // ----- endpoints -----------------------------------------------------------------

    fn create_endpoint(&self, req: p::CreateEndpoint) -> Answer {
        check_id(&req.endpoint_id)?;
        let net = self.name_network(&req.network_id)?;
        let iface = req.interface.unwrap_or_default();
        if iface.address.is_empty() {
            return Err(Refusal(
                "Docker sent no IPv4 address for the endpoint: create the network with --ipam-driver weft".into(),
            ));
        }
        let ip = parse_addr(&iface.address)?;
        if !net.subnet.contains(&ip) {
            return Err(Refusal(format!(
                "address {ip} is outside subnet {} of network {}",
                net.subnet, net.name
            )));
        }
        let fill_mac = iface.mac_address.is_empty();
        let mac = if fill_mac {
            Daemon::engine_mac(ip)
        } else {
            iface.mac_address.clone()
        };
        self.state().planned.insert(
            req.endpoint_id.clone(),
            Planned {
                network: net.name,
                ip,
                mac: mac.clone(),
            },
        );
        // Docker takes back only what it left empty.
        Ok(if fill_mac {
            json!({"Interface": {"MacAddress": mac}})
        } else {
            json!({"Interface": {}})
        })
    }

    fn delete_endpoint(&self, req: p::NetworkRequest) -> Answer {
        let planned = {
            let mut st = self.state();
            st.port_maps.remove(&req.endpoint_id);
            st.planned.remove(&req.endpoint_id)
        };
        if let Some(e) = self.daemon.endpoint_owned_by(&owner(&req.endpoint_id)) {
            self.daemon
                .disconnect(&e.network, &e.name)
                .map_err(refuse)?;
        }
        if let Some(p) = planned {
            self.unreserve(p.ip);
        }
        Ok(json!({}))
    }

    fn unreserve(&self, ip: Ipv4Addr) {
        for set in self.state().reserved.values_mut() {
            set.remove(&ip);
        }
    }

    fn join(self: &Arc<Self>, req: p::Join) -> Answer {
        check_id(&req.endpoint_id)?;
        let planned = self.state().planned.get(&req.endpoint_id).cloned();
        let Some(plan) = planned else {
            return Err(Refusal(format!(
                "weft has no endpoint {}: was the weft daemon restarted while Docker created it? Remove the container and start it again",
                short(&req.endpoint_id)
            )));
        };
        let net = self.name_network(&req.network_id)?;
        let tap = tap_name(&req.endpoint_id);
        let connect = Connect {
            name: Some(short(&req.endpoint_id)),
            ip: Some(plan.ip.to_string()),
            mac: Some(plan.mac.clone()),
            ifname: Some(tap.clone()),
            kind: Some(PortKind::Tap),
            owner: Some(owner(&req.endpoint_id)),
            ..Connect::default()
        };
        self.daemon
            .connect_handover(&plan.network, &connect, &req.sandbox_key)
            .map_err(refuse)?;
        {
            let mut st = self.state();
            st.planned.remove(&req.endpoint_id);
            if let Some(b) = options::port_bindings(req.options.as_ref()) {
                st.port_maps.insert(req.endpoint_id.clone(), b);
            }
        }
        self.unreserve(plan.ip);
        self.name_endpoint_later(req.network_id.clone(), req.endpoint_id.clone());
        let reply = p::JoinReply {
            interface_name: p::InterfaceName {
                src_name: tap,
                dst_prefix: "eth".into(),
            },
            gateway: if net.internal {
                String::new()
            } else {
                net.gateway.to_string()
            },
        };
        Ok(serde_json::to_value(reply).unwrap_or_default())
    }

    /// Renames the endpoint after its container once Docker lists it on the network.
    fn name_endpoint_later(self: &Arc<Self>, network: String, endpoint: String) {
        let me = Arc::clone(self);
        self.rt.spawn(async move {
            let deadline = tokio::time::Instant::now() + NAME_WAIT;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(Some(name)) = me.docker.container_name(&network, &endpoint).await else {
                    continue;
                };
                let me2 = Arc::clone(&me);
                let _ = tokio::task::spawn_blocking(move || {
                    let Some(e) = me2.daemon.endpoint_owned_by(&owner(&endpoint)) else {
                        return;
                    };
                    if let Err(err) = me2.daemon.rename_endpoint(&e.name, &name) {
                        log::info!("endpoint {} keeps its name ({name:?}: {err})", e.name);
                    }
                })
                .await;
                return;
            }
        });
    }

    fn program(&self, req: p::NetworkRequest) -> Answer {
        let bindings = options::port_bindings(req.options.as_ref())
            .or_else(|| self.state().port_maps.get(&req.endpoint_id).cloned())
            .unwrap_or_default();
        if bindings.is_empty() {
            return Ok(json!({}));
        }
        let Some(e) = self.daemon.endpoint_owned_by(&owner(&req.endpoint_id)) else {
            return Err(Refusal(format!(
                "weft has no endpoint {}",
                short(&req.endpoint_id)
            )));
        };
        if !e.published.is_empty() {
            return Ok(json!({}));
        }
        let (specs, publish_all) = options::publish_specs(&bindings)?;
        self.daemon
            .publish(&e.name, Publish { specs, publish_all })
            .map_err(refuse)?;
        Ok(json!({}))
    }

    fn revoke(&self, req: p::NetworkRequest) -> Answer {
        if let Some(e) = self.daemon.endpoint_owned_by(&owner(&req.endpoint_id)) {
            self.daemon.unpublish_all(&e.name).map_err(refuse)?;
        }
        Ok(json!({}))
    }
}

/// Docker's IDs are 64 hex digits; weft makes names of them.
fn check_id(id: &str) -> Result<(), Refusal> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Refusal(format!(
            "{id:?} is not a Docker ID (64 hex digits)"
        )))
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first 12 digits of a Docker ID, as `docker ps` shows them.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The name a Docker network has in weft until Docker says its name.
fn placeholder_name(id: &str) -> String {
    let digits: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("docker-{digits}")
}

/// The engine binding of Docker endpoint `id`.
fn owner(id: &str) -> String {
    format!("docker:{id}")
}

/// The TAP handed to Docker for endpoint `id` in the host namespace: `wd` and 12 of the ID's
/// digits (IFNAMSIZ allows 15); Docker renames it `eth0` inside the container.
fn tap_name(id: &str) -> String {
    let digits: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("wd{digits}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_docker_ids() {
        let id = "cf6699fd335233dd09beea0a22ffbb13059a32706b8d70c5dece70fcc7249eb3";
        assert_eq!(placeholder_name(id), "docker-cf6699fd3352");
        assert_eq!(tap_name(id), "wdcf6699fd3352");
        assert!(tap_name(id).len() <= 15);
        assert_eq!(short(id), "cf6699fd3352");
        assert!(check_id(id).is_ok());
        for bad in ["../../x", "", &id[..63], &format!("{}g", &id[..63])] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
