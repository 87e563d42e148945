//! `weft trace PORT --inject`: a synthetic frame built from the port's endpoint and network,
//! put through the data plane's decision on the live tables and the gateway runtime's rules,
//! with nothing changed or sent.

use weft_switch::PortId;

use super::{gateway_mac, invalid, Control, Daemon, DaemonError, Network, Result};
use crate::dataplane::trace_text::render_simulated;
use crate::debug::frame_spec::{self, FrameContext};
use crate::debug::runtime_view::{runtime_lines, RuntimeFacts};
use crate::types::{InjectBody, InjectResult};

impl Daemon {
    /// The trace of a synthetic frame entering the port named `port`.
    pub fn trace_inject(&self, port: &str, body: &InjectBody) -> Result<InjectResult> {
        let c = self.lock();
        let id = self.tap_port(&c, port, None)?;
        let network = self
            .dataplane
            .with_bridge(|b| b.port_network(id))
            .and_then(|nid| c.networks.values().find(|n| n.id == nid))
            .ok_or_else(|| DaemonError::NotFound(format!("port {port:?} is in no network")))?;
        let frame = match (&body.spec, &body.hex) {
            (Some(spec), None) => {
                let spec = frame_spec::parse(spec).map_err(|e| invalid(e.to_string()))?;
                frame_spec::build(&spec, &self.frame_context(&c, id, network))
                    .map_err(|e| invalid(e.to_string()))?
            }
            (None, Some(hex)) => frame_spec::parse_hex(hex).map_err(|e| invalid(e.to_string()))?,
            _ => return Err(invalid("give the frame either as a description (--inject SPEC) or as hex (--hex HEX), not both")),
        };
        let simulated = self.dataplane.simulate(id, &frame);
        let notes = match &simulated.task {
            Some(task) => runtime_lines(task, &self.runtime_facts(&c, id, network)),
            None => Vec::new(),
        };
        let names = self.trace_names(&c);
        let trace = render_simulated(&simulated.trace, &names, &notes);
        let verdict = trace
            .lines()
            .rev()
            .find_map(|l| l.trim_start().strip_prefix("verdict"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        Ok(InjectResult { trace, verdict })
    }

    /// What a description is filled in from: the port's endpoint, its network's gateway,
    /// subnet, ARP table and endpoint names.
    fn frame_context(&self, c: &Control, id: PortId, network: &Network) -> FrameContext {
        let endpoint = c.endpoints.values().find(|e| e.port == id);
        let neighbors = self.dataplane.with_bridge(|b| b.neighbors(network.id));
        let names = c
            .endpoints
            .values()
            .filter(|e| e.record.network == network.record.name)
            .flat_map(|e| {
                let ip = e.record.ip;
                std::iter::once((e.record.name.clone(), ip))
                    .chain(e.record.aliases.iter().map(move |a| (a.clone(), ip)))
            })
            .collect();
        FrameContext {
            src_mac: endpoint.map(|e| e.record.mac),
            src_ip: endpoint.map(|e| e.record.ip),
            gateway: Some((network.record.gateway, gateway_mac(&network.record))),
            subnet: Some(network.record.subnet),
            neighbors: neighbors.into_iter().map(|n| (n.ip, n.mac)).collect(),
            names,
        }
    }

    /// The network's NAT settings and the port's endpoint, as the gateway's runtime sees them.
    fn runtime_facts(&self, c: &Control, id: PortId, network: &Network) -> RuntimeFacts {
        let endpoint = c.endpoints.values().find(|e| e.port == id);
        let r = &network.record;
        RuntimeFacts {
            network: r.name.clone(),
            subnet: r.subnet,
            gateway: r.gateway,
            nat: r.nat,
            internal: r.internal,
            endpoint: endpoint.map(|e| (e.record.ip, e.record.mac)),
            published: endpoint
                .map(|e| e.record.published.clone())
                .unwrap_or_default(),
        }
    }
}
