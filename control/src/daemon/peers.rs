//! Overlay networks (the VTEP per VNI) and static VXLAN peers: `weft peer add/rm`, `weft peers`.

use std::net::Ipv4Addr;

use weft_switch::PortId;

use super::state::{NetworkRecord, PeerRecord};
use super::{invalid, Control, Daemon, DaemonError, Peer, Result};
use crate::types::{PeerAdd, PeerRow};

impl Daemon {
    /// Opens the VTEP (first overlay network) and accepts the network's VNI.
    pub(super) fn open_overlay(&self, record: &NetworkRecord) -> Result<()> {
        let Some(vni) = record.vni else {
            return Ok(());
        };
        let vni = weft_vtep::Vni::new(vni).map_err(|e| invalid(e.to_string()))?;
        self.dataplane
            .open_vxlan(self.vtep.advertise, self.vtep.port)?;
        self.dataplane.add_vni(vni);
        Ok(())
    }

    pub(super) fn close_overlay(&self, record: &NetworkRecord) {
        if let Some(vni) = record.vni.and_then(|v| weft_vtep::Vni::new(v).ok()) {
            self.dataplane.remove_vni(vni);
        }
    }

    /// Adds the tunnel port of a static peer to the overlay network with its VNI.
    pub(super) fn attach_peer(&self, c: &mut Control, record: PeerRecord) -> Result<String> {
        let name = record.port_name();
        if c.peers.contains_key(&name) {
            return Err(DaemonError::Conflict(format!(
                "{} is already a peer of VNI {}; see `weft peers`",
                record.addr, record.vni
            )));
        }
        let net = c
            .networks
            .values()
            .find(|n| n.record.vni == Some(record.vni))
            .ok_or_else(|| {
                DaemonError::NotFound(format!(
                    "no overlay network has VNI {}; create one with `weft network create NAME --driver overlay --vni {} --subnet CIDR`",
                    record.vni, record.vni
                ))
            })?;
        let (net_id, net_name) = (net.id, net.record.name.clone());
        let vni = weft_vtep::Vni::new(record.vni).map_err(|e| invalid(e.to_string()))?;
        let port = PortId(c.next_port_id);
        self.dataplane.add_tunnel_port(
            port,
            net_id,
            std::net::SocketAddrV4::new(record.addr, record.port),
            vni,
        )?;
        c.next_port_id += 1;
        c.peers.insert(
            name.clone(),
            Peer {
                record,
                port,
                network: net_name,
            },
        );
        Ok(name)
    }

    pub(super) fn detach_peer(&self, c: &mut Control, name: &str) {
        if let Some(peer) = c.peers.remove(name) {
            c.static_fdb.retain(|s| s.endpoint != name);
            if let Err(e) = self.dataplane.remove_port(peer.port) {
                log::warn!("peer {name}: {e}");
            }
        }
    }

    /// `weft peer add ADDR --vni N [--port P]`.
    pub fn peer_add(&self, req: PeerAdd) -> Result<PeerRow> {
        if req.addr.parse::<Ipv4Addr>().ok() == self.vtep.advertise {
            return Err(invalid(format!(
                "{} is this daemon's own --advertise address: a VTEP is not its own peer; add the other hosts' addresses",
                req.addr
            )));
        }
        let addr: Ipv4Addr = req.addr.parse().map_err(|_| {
            invalid(format!(
                "invalid peer address {:?}: expected the IPv4 address of a VTEP, like 192.168.1.20",
                req.addr
            ))
        })?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
            return Err(invalid(format!(
                "invalid peer address {addr}: a VTEP has a unicast address"
            )));
        }
        let record = PeerRecord {
            addr,
            vni: req.vni,
            port: req.port.unwrap_or(self.vtep.port),
        };
        let mut c = self.lock();
        let name = self.attach_peer(&mut c, record)?;
        if let Err(e) = self.save(&c) {
            self.detach_peer(&mut c, &name);
            return Err(e);
        }
        Ok(self
            .peer_rows(&c)
            .into_iter()
            .find(|r| r.name == name)
            .expect("just added"))
    }

    /// `weft peer rm ADDR --vni N`.
    pub fn peer_rm(&self, addr: &str, vni: u32) -> Result<()> {
        let mut c = self.lock();
        let name = c
            .peers
            .iter()
            .find(|(_, p)| p.record.addr.to_string() == addr && p.record.vni == vni)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                DaemonError::NotFound(format!(
                    "{addr} is not a peer of VNI {vni}; see `weft peers`"
                ))
            })?;
        let mut after = Self::snapshot(&c);
        after
            .peers
            .retain(|p| !(p.addr.to_string() == addr && p.vni == vni));
        after.static_fdb.retain(|s| s.endpoint != name);
        self.state_dir.save(&after)?;
        self.detach_peer(&mut c, &name);
        Ok(())
    }

    pub fn peers(&self) -> Vec<PeerRow> {
        let c = self.lock();
        let mut rows = self.peer_rows(&c);
        drop(c);
        rows.extend(self.cluster_peer_rows());
        rows
    }

    fn peer_rows(&self, c: &Control) -> Vec<PeerRow> {
        c.peers
            .iter()
            .map(|(name, p)| {
                let counters = self.dataplane.port_counters(p.port).unwrap_or_default();
                PeerRow {
                    name: name.clone(),
                    vtep: format!("{}:{}", p.record.addr, p.record.port),
                    vni: p.record.vni,
                    network: p.network.clone(),
                    state: "static".into(),
                    last_heard_seconds: self
                        .dataplane
                        .last_heard(p.port)
                        .map(|t| t.elapsed().as_secs_f64()),
                    endpoints: None,
                    rx_packets: counters.rx_packets,
                    tx_packets: counters.tx_packets,
                }
            })
            .collect()
    }
}
