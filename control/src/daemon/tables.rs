//! Tables and counters (FDB, ARP, ports, NAT, stats, metrics data), static FDB, capture, trace.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use weft_switch::{MacAddr, NetworkId, PortId};

use super::state::StaticFdbRecord;
use super::{gateway_mac, invalid, parse_mac, Control, Daemon, DaemonError, Result};
use crate::types::{ArpRow, FdbRow, NatRow, NetworkStatsRow, PortKind, PortRow};

/// A live trace's records (tagged, see `Dataplane::add_trace`).
type TraceReceiver = tokio::sync::mpsc::Receiver<(u32, Arc<crate::dataplane::FrameTrace>)>;

/// What the metrics are rendered from (see `crate::api::metrics`): every port's counters
/// and every network's learning, aging and gateway counters.
pub struct MetricsData {
    pub ports: Vec<PortRow>,
    pub networks: Vec<NetworkStatsRow>,
}

/// A `weft ports` row (endpoint "-", nothing published: the caller fills those in for an
/// endpoint).
pub(super) fn port_row(
    name: &str,
    kind: PortKind,
    network: &str,
    counters: &weft_switch::PortCounters,
) -> PortRow {
    PortRow {
        name: name.to_string(),
        kind,
        network: network.to_string(),
        endpoint: "-".into(),
        rx_packets: counters.rx_packets,
        rx_bytes: counters.rx_bytes,
        tx_packets: counters.tx_packets,
        tx_bytes: counters.tx_bytes,
        drops: counters
            .nonzero_drops()
            .map(|(r, n)| (r.as_str().to_string(), n))
            .collect(),
        published: Vec::new(),
        detached: None,
        impair: None,
        link_down: false,
    }
}

impl Daemon {
    /// Every port's name: endpoints, static peers' and the cluster's tunnel ports.
    pub(super) fn port_names(&self, c: &Control) -> BTreeMap<PortId, String> {
        c.endpoints
            .values()
            .map(|e| (e.port, e.record.name.clone()))
            .chain(c.peers.iter().map(|(name, p)| (p.port, name.clone())))
            .chain(self.cluster_tunnel_names())
            .collect()
    }

    pub fn fdb(&self, network: Option<&str>) -> Result<Vec<FdbRow>> {
        let c = self.lock();
        let nets = Self::networks_or_one(&c, network)?;
        let port_names = self.port_names(&c);
        let now = self.dataplane.now();
        let mut rows = Vec::new();
        for n in nets {
            let entries = self.dataplane.with_bridge(|b| b.fdb_entries(n.id, now));
            rows.extend(entries.into_iter().map(|e| {
                FdbRow {
                    network: n.record.name.clone(),
                    mac: e.mac.to_string(),
                    port: port_names
                        .get(&e.port)
                        .map_or("?", String::as_str)
                        .to_string(),
                    origin: match e.origin {
                        weft_switch::FdbOrigin::Learned => "learned".into(),
                        weft_switch::FdbOrigin::Endpoint => "endpoint".into(),
                        weft_switch::FdbOrigin::Static => match self.gossip_origin(n.id, e.mac) {
                            Some(node) => format!("gossip from {node}"),
                            None => "static".into(),
                        },
                    },
                    age_seconds: e.age.as_secs_f64(),
                }
            }));
        }
        Ok(rows)
    }

    /// The neighbour table the switch answers ARP from: the gateway and every endpoint.
    pub fn arp(&self, network: Option<&str>) -> Result<Vec<ArpRow>> {
        let c = self.lock();
        let nets = Self::networks_or_one(&c, network)?;
        let mut rows = Vec::new();
        for n in nets {
            rows.push(ArpRow {
                network: n.record.name.clone(),
                ip: n.record.gateway.to_string(),
                mac: gateway_mac(&n.record).to_string(),
                owner: "gateway".into(),
                origin: "gateway".into(),
            });
            let owners: BTreeMap<Ipv4Addr, &str> = c
                .endpoints
                .values()
                .filter(|e| e.record.network == n.record.name)
                .map(|e| (e.record.ip, e.record.name.as_str()))
                .collect();
            let neighbors = self.dataplane.with_bridge(|b| b.neighbors(n.id));
            let remote = self.cluster_remote_owners(&n.record.name);
            rows.extend(neighbors.into_iter().map(|nb| {
                let (owner, origin) = match (owners.get(&nb.ip), remote.get(&nb.ip)) {
                    (Some(owner), _) => (owner.to_string(), "ipam".to_string()),
                    (None, Some((node, name))) => (name.clone(), format!("gossip from {node}")),
                    (None, None) => ("?".to_string(), "ipam".to_string()),
                };
                ArpRow {
                    network: n.record.name.clone(),
                    ip: nb.ip.to_string(),
                    mac: nb.mac.to_string(),
                    owner,
                    origin,
                }
            }));
        }
        Ok(rows)
    }

    pub(super) fn apply_static(&self, c: &Control, entry: &StaticFdbRecord) -> Result<()> {
        let net = Self::network(c, &entry.network)?;
        let mac = entry.mac;
        let endpoint_port = c
            .endpoints
            .get(&entry.endpoint)
            .filter(|e| e.record.network == entry.network)
            .map(|e| e.port);
        let peer_port = c
            .peers
            .get(&entry.endpoint)
            .filter(|p| p.network == entry.network)
            .map(|p| p.port);
        let port = endpoint_port.or(peer_port).ok_or_else(|| {
            DaemonError::NotFound(format!(
                "no endpoint or VXLAN peer port named {:?} on network {:?}; see `weft network inspect {}` and `weft peers`",
                entry.endpoint, entry.network, entry.network
            ))
        })?;
        self.dataplane
            .with_bridge(|b| b.add_static(net.id, mac, port))
            .map_err(|e| invalid(e.to_string()))
    }

    pub fn fdb_add(&self, network: &str, mac: &str, endpoint: &str) -> Result<()> {
        let mac = parse_mac(mac)?;
        let mut c = self.lock();
        let entry = StaticFdbRecord {
            network: network.to_string(),
            mac,
            endpoint: endpoint.to_string(),
        };
        self.apply_static(&c, &entry)?;
        c.static_fdb
            .retain(|s| !(s.network == network && s.mac == entry.mac));
        c.static_fdb.push(entry);
        self.save(&c)?;
        Ok(())
    }

    pub fn fdb_del(&self, network: &str, mac: &str) -> Result<()> {
        let mac: MacAddr = mac
            .parse()
            .map_err(|e: weft_switch::MacParseError| invalid(e.to_string()))?;
        let mut c = self.lock();
        let id = Self::network(&c, network)?.id;
        if !c
            .static_fdb
            .iter()
            .any(|s| s.network == network && s.mac == mac)
        {
            return Err(DaemonError::NotFound(format!(
                "no static FDB entry for {mac} on network {network:?}; list entries with `weft fdb {network}`"
            )));
        }
        self.dataplane
            .with_bridge(|b| b.remove_static(id, mac))
            .map_err(|e| invalid(e.to_string()))?;
        c.static_fdb
            .retain(|s| !(s.network == network && s.mac == mac));
        self.save(&c)?;
        Ok(())
    }

    pub fn ports(&self) -> Vec<PortRow> {
        let c = self.lock();
        let mut rows: Vec<PortRow> = c
            .endpoints
            .values()
            .map(|e| {
                let counters = self.dataplane.port_counters(e.port).unwrap_or_default();
                let (impair, link_down) = self.shaping_of(e.port);
                PortRow {
                    endpoint: e.record.name.clone(),
                    impair,
                    link_down,
                    published: e.record.published.iter().map(|m| m.to_string()).collect(),
                    ..port_row(
                        &e.record.name,
                        e.record.kind.into(),
                        &e.record.network,
                        &counters,
                    )
                }
            })
            .collect();
        rows.extend(c.detached.values().map(|d| PortRow {
            endpoint: d.record.name.clone(),
            published: d.record.published.iter().map(|m| m.to_string()).collect(),
            detached: Some(d.reason.clone()),
            ..port_row(
                &d.record.name,
                d.record.kind.into(),
                &d.record.network,
                &Default::default(),
            )
        }));
        for (name, p) in &c.peers {
            let counters = self.dataplane.port_counters(p.port).unwrap_or_default();
            let (impair, link_down) = self.shaping_of(p.port);
            rows.push(PortRow {
                impair,
                link_down,
                ..port_row(name, PortKind::Vxlan, &p.network, &counters)
            });
        }
        rows.extend(self.cluster_port_rows());
        if let Some((port, counters)) = self.dataplane.vxlan_counters() {
            rows.push(port_row(
                &format!("vxlan:{port}"),
                PortKind::Vxlan,
                "-",
                &counters,
            ));
        }
        rows
    }

    /// Active NAT flows: UDP, TCP (both directions) and ICMP echo.
    pub fn nat_flows(&self, network: Option<&str>) -> Result<Vec<NatRow>> {
        let names: BTreeMap<NetworkId, String> = {
            let c = self.lock();
            Self::networks_or_one(&c, network)?
                .iter()
                .map(|n| (n.id, n.record.name.clone()))
                .collect()
        };
        let mut rows: Vec<NatRow> = self
            .stack
            .flows()
            .into_iter()
            .filter_map(|mut row| {
                row.network = names.get(&NetworkId(row.network_id))?.clone();
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.network, &a.protocol, &a.container, &a.outside).cmp(&(
                &b.network,
                &b.protocol,
                &b.container,
                &b.outside,
            ))
        });
        Ok(rows)
    }

    /// Learning, aging and gateway counters per network.
    pub fn stats(&self, network: Option<&str>) -> Result<Vec<NetworkStatsRow>> {
        let c = self.lock();
        let nets = Self::networks_or_one(&c, network)?;
        Ok(nets
            .into_iter()
            .map(|n| {
                let (st, entries) = self.dataplane.with_bridge(|b| {
                    let entries = b.fdb(n.id).map_or(0, |f| f.len());
                    (b.network_stats(n.id).unwrap_or_default(), entries)
                });
                NetworkStatsRow {
                    network: n.record.name.clone(),
                    fdb_entries: entries,
                    learned: st.learned,
                    mac_moves: st.mac_moves,
                    learn_refused_table_full: st.learn_refused_table_full,
                    aged_out: st.aged_out,
                    arp_suppressed: st.arp_suppressed,
                    gateway_arp_replies: st.gateway_arp_replies,
                    gateway_echo_replies: st.gateway_echo_replies,
                }
            })
            .collect())
    }

    /// The counters behind `GET /v1/metrics`: the `weft ports` rows (endpoints, static and
    /// gossip tunnel ports, the VXLAN socket) and the `weft stats` rows of every network.
    pub fn metrics_data(&self) -> Result<MetricsData> {
        let ports = self.ports();
        let networks = self.stats(None)?;
        Ok(MetricsData { ports, networks })
    }

    /// The port named `port` (an endpoint or a tunnel port), for a capture or a trace of
    /// at most `count` frames.
    pub(super) fn tap_port(&self, c: &Control, port: &str, count: Option<u64>) -> Result<PortId> {
        let id = c
            .endpoints
            .get(port)
            .map(|e| e.port)
            .or_else(|| c.peers.get(port).map(|p| p.port))
            .or_else(|| {
                self.cluster_tunnel_names()
                    .into_iter()
                    .find_map(|(id, name)| (name == port).then_some(id))
            })
            .ok_or_else(|| {
                DaemonError::NotFound(format!(
                    "no port named {port:?}; list ports with `weft ports`"
                ))
            })?;
        if count == Some(0) {
            return Err(invalid("-c/--count must be at least 1"));
        }
        Ok(id)
    }

    /// Starts a live capture on the port named `port`; `outer`: a tunnel port's VXLAN
    /// datagrams instead of its inner frames.
    pub fn capture(
        &self,
        port: &str,
        count: Option<u64>,
        outer: bool,
    ) -> Result<crate::dataplane::CaptureReceiver> {
        let c = self.lock();
        let id = self.tap_port(&c, port, count)?;
        if outer && !self.dataplane.is_tunnel(id) {
            return Err(invalid(format!(
                "{port:?} is not a tunnel port: --outer captures the VXLAN datagrams of a tunnel port (vx... or a cluster node in `weft ports`)"
            )));
        }
        Ok(self.dataplane.add_capture(id, count, outer)?)
    }

    /// Starts a live capture of every port of network `network` (endpoints and tunnel
    /// ports) into one channel; the frames are tagged with the index of their port's name.
    pub fn capture_network(
        &self,
        network: &str,
    ) -> Result<(crate::dataplane::CaptureReceiver, Vec<String>)> {
        let c = self.lock();
        let net = c.networks.get(network).ok_or_else(|| {
            DaemonError::NotFound(format!(
                "no network named {network:?}; list networks with `weft network ls`"
            ))
        })?;
        let names = self.port_names(&c);
        let ports: Vec<PortId> = self
            .dataplane
            .with_bridge(|b| b.network_ports(net.id).to_vec());
        let (tx, rx) = tokio::sync::mpsc::channel(crate::dataplane::CAPTURE_QUEUE);
        let mut interfaces = Vec::new();
        for id in ports {
            let Some(name) = names.get(&id) else {
                continue;
            };
            self.dataplane
                .add_capture_to(id, tx.clone(), interfaces.len() as u32)?;
            interfaces.push(name.clone());
        }
        Ok((rx, interfaces))
    }

    /// Starts a live trace on the port named `port`: for each frame entering it, the
    /// bridge's decision and what became of the frame, with the names to print them by.
    pub fn trace(
        &self,
        port: &str,
        count: Option<u64>,
    ) -> Result<(TraceReceiver, crate::dataplane::trace_text::TraceNames)> {
        let c = self.lock();
        let id = self.tap_port(&c, port, count)?;
        Ok((self.dataplane.add_trace(id, count)?, self.trace_names(&c)))
    }

    /// The port and network names a trace is printed with.
    pub(super) fn trace_names(&self, c: &Control) -> crate::dataplane::trace_text::TraceNames {
        crate::dataplane::trace_text::TraceNames {
            ports: self.port_names(c),
            networks: c
                .networks
                .values()
                .map(|n| (n.id, n.record.name.clone()))
                .collect(),
        }
    }
}
