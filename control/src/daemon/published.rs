//! Published ports: publish, unpublish, and serving the host sockets through the gateway.

use weft_switch::GatewayConfig;

use super::{gateway_mac, invalid, Control, Daemon, DaemonError, Network, Result};
use crate::gateway::publish::{self, PortMapping, PublishedSocket};
use crate::gateway::stack::{StackInput, Target};
use crate::types::Publish;

impl Daemon {
    /// Parses `-p` specs and `-P` ports for an endpoint of `net` and binds their host
    /// sockets, all or none. Refused on `--internal` networks, for a host port published
    /// already (by any endpoint) or given twice, and for a host port in use.
    pub(super) fn bind_published(
        c: &Control,
        net: &Network,
        specs: &[String],
        publish_all: &[String],
    ) -> Result<Vec<(PortMapping, PublishedSocket)>> {
        let mut wanted = Vec::new();
        for spec in specs {
            wanted.extend(publish::parse_spec(spec).map_err(|e| invalid(e.0))?);
        }
        for port in publish_all {
            wanted.push(publish::parse_publish_all(port).map_err(|e| invalid(e.0))?);
        }
        if net.record.internal {
            return Err(invalid(format!(
                "network {:?} is --internal: it has no published ports; connect the endpoint to a network without --internal to publish",
                net.record.name
            )));
        }
        for (i, m) in wanted.iter().enumerate() {
            if wanted[..i].iter().any(|o| o.clashes(m)) {
                return Err(invalid(format!(
                    "host port {}/{} is given more than once; publish each host port once",
                    m.host_port,
                    m.protocol.as_str()
                )));
            }
            // A detached endpoint's host ports stay held for it.
            let records = c.endpoints.values().map(|e| &e.record);
            for r in records.chain(c.detached.values().map(|d| &d.record)) {
                if let Some(o) = r.published.iter().find(|o| o.clashes(m)) {
                    return Err(DaemonError::Conflict(format!(
                        "host port {}/{} is already in use: endpoint {:?} publishes {o}; pick another host port or `weft unpublish {} {}/{}` first",
                        m.host_port,
                        m.protocol.as_str(),
                        r.name,
                        r.name,
                        o.host_port,
                        o.protocol.as_str()
                    )));
                }
            }
        }
        publish::bind_all(&wanted).map_err(|e| match e {
            publish::BindError::InUse { .. } => DaemonError::Conflict(e.to_string()),
            _ => invalid(e.to_string()),
        })
    }

    /// Hands bound host sockets of endpoint `name` to the gateway's stack, which serves
    /// them from now on.
    pub(super) fn serve_published(
        &self,
        c: &Control,
        name: &str,
        bound: Vec<(PortMapping, PublishedSocket)>,
    ) {
        let Some(ep) = c.endpoints.get(name) else {
            return;
        };
        let Some(net) = c.networks.get(&ep.record.network) else {
            return;
        };
        let target = Target {
            port: ep.port,
            mac: ep.record.mac,
            ip: ep.record.ip,
            gateway: GatewayConfig {
                ip: net.record.gateway,
                mac: gateway_mac(&net.record),
            },
            subnet: (net.record.subnet.network(), net.record.subnet.prefix_len()),
            mtu: net.record.mtu as u16,
        };
        for (mapping, socket) in bound {
            self.stack
                .send(StackInput::Publish(crate::gateway::stack::Published {
                    network: net.id,
                    target,
                    container_port: mapping.container_port,
                    socket,
                }));
        }
    }

    /// Binds a re-attached endpoint's published ports again; a port that cannot be bound
    /// any more is dropped with a warning.
    pub(super) fn restore_published(&self, c: &mut Control, name: &str) {
        let Some(ep) = c.endpoints.get_mut(name) else {
            return;
        };
        let mut bound = Vec::new();
        ep.record.published.retain(|m| match publish::bind(m) {
            Ok(b) => {
                bound.push(b);
                true
            }
            Err(e) => {
                log::warn!("endpoint {name}: published port {m} dropped: {e}");
                false
            }
        });
        self.serve_published(c, name, bound);
    }

    /// Withdraws every published port of the endpoints on `network`, which became
    /// `--internal` through the cluster (an internal network publishes nothing); each is
    /// logged. The caller saves the state.
    pub(super) fn withdraw_published(&self, c: &mut Control, network: &str) {
        let attached = c.endpoints.values_mut().map(|e| &mut e.record);
        let records = attached.chain(c.detached.values_mut().map(|d| &mut d.record));
        for record in records.filter(|r| r.network == network) {
            for m in record.published.drain(..) {
                log::warn!(
                    "network {network} is --internal in the cluster: endpoint {} no longer publishes {m}",
                    record.name
                );
                self.stack.send(StackInput::Unpublish {
                    local: m.host_addr(),
                    tcp: m.protocol == publish::Protocol::Tcp,
                });
            }
        }
    }

    /// `weft publish ENDPOINT SPEC... [-P PORT...]`: the new mappings.
    pub fn publish(&self, endpoint: &str, req: Publish) -> Result<Vec<PortMapping>> {
        if req.specs.is_empty() && req.publish_all.is_empty() {
            return Err(invalid(
                "nothing to publish: give a spec like 8080:80 or -P 80",
            ));
        }
        let mut c = self.lock();
        let ep = Self::endpoint(&c, endpoint)?;
        let net = Self::network(&c, &ep.record.network)?;
        let bound = Self::bind_published(&c, net, &req.specs, &req.publish_all)?;
        let added: Vec<PortMapping> = bound.iter().map(|(m, _)| *m).collect();
        let mut after = Self::snapshot(&c);
        if let Some(e) = after.endpoints.iter_mut().find(|e| e.name == endpoint) {
            e.published.extend(added.iter().copied());
        }
        // Persist first: if that fails the sockets are closed and nothing changed.
        self.state_dir.save(&after)?;
        c.endpoints
            .get_mut(endpoint)
            .expect("checked above")
            .record
            .published
            .extend(added.iter().copied());
        self.serve_published(&c, endpoint, bound);
        Ok(added)
    }

    /// `weft unpublish ENDPOINT [HOST_IP:]HOST_PORT[-END][/proto]`: the removed mappings.
    pub fn unpublish(&self, endpoint: &str, spec: &str) -> Result<Vec<PortMapping>> {
        let (ip, first, last, protocol) =
            publish::parse_unpublish(spec).map_err(|e| invalid(e.0))?;
        let mut c = self.lock();
        let ep = Self::endpoint(&c, endpoint)?;
        let matches = |m: &PortMapping| {
            m.protocol == protocol
                && (first..=last).contains(&m.host_port)
                && ip.is_none_or(|ip| ip == m.host_ip)
        };
        let removed: Vec<PortMapping> = ep
            .record
            .published
            .iter()
            .copied()
            .filter(|m| matches(m))
            .collect();
        if removed.is_empty() {
            let have: Vec<String> = ep.record.published.iter().map(|m| m.to_string()).collect();
            return Err(DaemonError::NotFound(format!(
                "endpoint {endpoint:?} publishes nothing on {spec}; it publishes: {}",
                if have.is_empty() {
                    "nothing".to_string()
                } else {
                    have.join(", ")
                }
            )));
        }
        let mut after = Self::snapshot(&c);
        if let Some(e) = after.endpoints.iter_mut().find(|e| e.name == endpoint) {
            e.published.retain(|m| !matches(m));
        }
        self.state_dir.save(&after)?;
        c.endpoints
            .get_mut(endpoint)
            .expect("checked above")
            .record
            .published
            .retain(|m| !matches(m));
        for m in &removed {
            self.stack.send(StackInput::Unpublish {
                local: m.host_addr(),
                tcp: m.protocol == publish::Protocol::Tcp,
            });
        }
        Ok(removed)
    }
}
