//! `weft explain`: the daemon's tables read once into a [`Snapshot`] for the pure
//! `debug::explain`.

use std::collections::BTreeSet;

use super::{Control, Daemon, Result};
use crate::debug::explain::{self, EpSnap, NetSnap, Snapshot};
use crate::types::Explanation;

impl Daemon {
    /// What a packet from `from` to `to` (to `port`, like `80/tcp`) would meet.
    pub fn explain(&self, from: &str, to: &str, port: Option<&str>) -> Result<Explanation> {
        let snapshot = self.explain_snapshot();
        explain::explain(&snapshot, from, to, port).map_err(|e| super::invalid(e.to_string()))
    }

    fn explain_snapshot(&self) -> Snapshot {
        let remote = self.cluster_endpoints();
        let rows = self.ports();
        let c = self.lock();
        let now = self.dataplane.now();
        let networks: Vec<NetSnap> = c
            .networks
            .values()
            .map(|n| NetSnap {
                name: n.record.name.clone(),
                subnet: n.record.subnet,
                gateway: n.record.gateway,
                mtu: n.record.mtu,
                icc: n.record.icc,
                nat: n.record.nat,
                internal: n.record.internal,
                vni: n.record.vni,
            })
            .collect();
        let mut endpoints = local_endpoints(self, &c, now);
        for e in endpoints.iter_mut() {
            if let Some(row) = rows.iter().find(|r| r.name == e.name) {
                e.link_down = row.link_down;
                e.impair = row.impair.as_ref().map(impair_text);
            }
        }
        for (vni, mac, spec, node, alive) in remote {
            let Some(n) = c.networks.values().find(|n| n.record.vni == Some(vni)) else {
                continue;
            };
            let in_fdb = self
                .dataplane
                .with_bridge(|b| b.lookup(n.id, mac, now).is_some());
            endpoints.push(EpSnap {
                name: spec.name.clone(),
                network: n.record.name.clone(),
                ip: spec.ip,
                mac: mac.to_string(),
                node: Some((node, alive)),
                port_security: true,
                published: Vec::new(),
                detached: None,
                in_fdb,
                in_arp: alive,
                link_down: false,
                impair: None,
            });
        }
        Snapshot {
            networks,
            endpoints,
        }
    }
}

/// An impairment as `weft impair` takes it: `delay 20ms, loss 10%`.
fn impair_text(i: &crate::types::ImpairBody) -> String {
    let parts: Vec<String> = i
        .parts()
        .into_iter()
        .filter(|(k, _)| *k != "seed")
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    parts.join(", ")
}

/// This daemon's endpoints, attached or detached, with their FDB and ARP state.
fn local_endpoints(d: &Daemon, c: &Control, now: weft_switch::Timestamp) -> Vec<EpSnap> {
    let mut out = Vec::new();
    for e in c.endpoints.values() {
        let id = c.networks.get(&e.record.network).map(|n| n.id);
        let (in_fdb, in_arp) = id.map_or((false, false), |id| {
            d.dataplane.with_bridge(|b| {
                let arp: BTreeSet<_> = b.neighbors(id).into_iter().map(|n| n.ip).collect();
                (
                    b.lookup(id, e.record.mac, now).is_some(),
                    arp.contains(&e.record.ip),
                )
            })
        });
        out.push(snap_of(&e.record, None, in_fdb, in_arp));
    }
    for det in c.detached.values() {
        out.push(snap_of(&det.record, Some(det.reason.clone()), false, false));
    }
    out
}

fn snap_of(
    r: &super::state::EndpointRecord,
    detached: Option<String>,
    in_fdb: bool,
    in_arp: bool,
) -> EpSnap {
    EpSnap {
        name: r.name.clone(),
        network: r.network.clone(),
        ip: r.ip,
        mac: r.mac.to_string(),
        node: None,
        port_security: r.port_security,
        published: r.published.clone(),
        detached,
        in_fdb,
        in_arp,
        link_down: false,
        impair: None,
    }
}
