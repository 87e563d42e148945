//! What a restart finds that is not whole: endpoints whose namespace is gone (kept as
//! detached until disconnected) and interfaces left by a connect the daemon did not finish
//! (removed).

use super::plumb::is_host_end_name;
use super::state::{EndpointKind, EndpointRecord, PendingEndpoint};
use super::{gateway, Control, Daemon, DaemonError, Result};
use crate::types::EndpointInfo;
use weft_sys::{self as sys, Netns};

/// An endpoint of the state that could not be re-attached: its record (address, MAC,
/// published ports) stays in the state and keeps its address, name and host ports taken.
pub(super) struct Detached {
    pub record: EndpointRecord,
    /// Why it could not be re-attached.
    pub reason: String,
}

impl Daemon {
    /// Keeps an endpoint that could not be re-attached on start. Only an endpoint whose
    /// network is gone is forgotten (it could not be disconnected).
    pub(super) fn keep_detached(c: &mut Control, record: EndpointRecord, why: DaemonError) {
        let name = record.name.clone();
        if !c.networks.contains_key(&record.network) {
            log::warn!(
                "endpoint {name} is forgotten: its network {} is gone",
                record.network
            );
            return;
        }
        log::warn!(
            "endpoint {name} could not be re-attached: {why}; it is kept as detached (address {} and its published ports held) until `weft disconnect {} {name}`",
            record.ip, record.network
        );
        if !record.netns.contains('/') {
            gateway::remove_netns_resolv_conf(&record.netns);
        }
        c.detached.insert(
            name,
            Detached {
                record,
                reason: why.to_string(),
            },
        );
    }

    /// Disconnects a detached endpoint: it leaves the state; nothing else exists of it.
    /// Returns false if `endpoint` is not a detached endpoint of `network`.
    pub(super) fn disconnect_detached(
        &self,
        c: &mut Control,
        network: &str,
        endpoint: &str,
    ) -> Result<bool> {
        if c.detached
            .get(endpoint)
            .is_none_or(|d| d.record.network != network)
        {
            return Ok(false);
        }
        let mut after = Self::snapshot(c);
        after.endpoints.retain(|e| e.name != endpoint);
        after.static_fdb.retain(|s| s.endpoint != endpoint);
        self.state_dir.save(&after)?;
        c.detached.remove(endpoint);
        c.static_fdb.retain(|s| s.endpoint != endpoint);
        Ok(true)
    }

    /// Saves the state with `pending` recorded, before its interface is created.
    pub(super) fn save_pending(&self, c: &Control, pending: PendingEndpoint) -> Result<()> {
        let mut state = Self::snapshot(c);
        state.pending_endpoints.push(pending);
        Ok(self.state_dir.save(&state)?)
    }

    /// Removes the interfaces of connects that did not finish (recorded as pending, not
    /// saved as an endpoint): a veth pair by its host end (a name only weft makes), a TAP
    /// by its name in the same namespace (only a persistent TAP nobody holds opens).
    pub(super) fn remove_leftovers(&self, pending: &[PendingEndpoint], saved: &[EndpointRecord]) {
        for p in pending {
            let finished = saved.iter().any(|e| {
                e.netns_id == Some(p.netns_id) && e.ifname == p.ifname && e.kind == p.kind
            });
            if finished {
                continue;
            }
            match remove_leftover(p) {
                Ok(true) => log::warn!(
                    "removed interface {} in namespace {}: a connect that did not finish left it",
                    p.ifname,
                    p.netns
                ),
                Ok(false) => {}
                Err(e) => log::warn!(
                    "interface {} in namespace {} may be left by a connect that did not finish: {e}",
                    p.ifname,
                    p.netns
                ),
            }
        }
    }

    pub(super) fn detached_info(c: &Control, d: &Detached) -> EndpointInfo {
        EndpointInfo {
            detached: Some(d.reason.clone()),
            ..Self::record_info(c, &d.record)
        }
    }
}

/// Removes one leftover interface; true if there was one.
fn remove_leftover(p: &PendingEndpoint) -> Result<bool> {
    match p.kind {
        // Only a name weft makes: a state file naming another host interface removes nothing.
        EndpointKind::Veth => match &p.host_ifname {
            Some(host) if is_host_end_name(host) && sys::interface_exists(host) => {
                sys::delete_link(host)?;
                Ok(true)
            }
            _ => Ok(false),
        },
        EndpointKind::Tap => {
            let Ok(netns) = Netns::from_name_or_path(&p.netns) else {
                return Ok(false); // the namespace is gone, and its interfaces with it
            };
            if netns.id() != p.netns_id {
                return Ok(false);
            }
            let ifname = p.ifname.clone();
            Ok(netns.run(move || {
                if !sys::interface_exists(&ifname) {
                    return Ok(false);
                }
                sys::Tap::open(&ifname, true)?.clear_persist()?;
                Ok(true)
            })?)
        }
    }
}
