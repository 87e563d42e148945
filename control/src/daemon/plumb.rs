//! Plumbing an endpoint's interface: a TAP inside the namespace, or a veth pair whose host
//! end is made inert; and removing it again.

use std::os::fd::OwnedFd;

use super::state::{EndpointKind, EndpointRecord};
use super::{DaemonError, Result};
use weft_sys::{self as sys, IfConfig, Netns};

/// The host end of a new veth pair: `wv` and ten hex digits of `random`, a name only weft
/// makes (15 octets at most, IFNAMSIZ).
pub(super) fn host_end_name(random: u64) -> String {
    format!("wv{:010x}", random & 0xff_ffff_ffff)
}

/// Whether `name` is one [`host_end_name`] makes: the only host interfaces weft removes on
/// the word of its state file.
pub(super) fn is_host_end_name(name: &str) -> bool {
    name.len() == 12
        && name.starts_with("wv")
        && name[2..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` is one the Docker driver gives a TAP it hands over: `wd` and 12 hex
/// digits.
pub(super) fn is_handed_tap_name(name: &str) -> bool {
    name.len() == 14 && name.starts_with("wd") && name[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a created port leaves behind, so it can be undone.
pub(super) struct CreatedPort {
    pub fd: OwnedFd,
    pub kind: EndpointKind,
    pub host_ifname: Option<String>,
}

impl CreatedPort {
    /// Removes the interface(s) again (connect failed after creating them, or disconnect).
    pub(super) fn destroy(self) {
        match self.kind {
            // The data plane held the TAP as a plain fd: type it again to clear its
            // persistence, so that closing it removes the interface.
            EndpointKind::Tap => match sys::Tap::from_owned(self.fd) {
                Ok(tap) => {
                    let _ = tap.clear_persist();
                }
                Err(e) => log::warn!("cannot remove a TAP: {e}"),
            },
            EndpointKind::Veth => {
                drop(self.fd);
                if let Some(host) = &self.host_ifname {
                    let _ = sys::delete_link(host);
                }
            }
        }
    }
}

/// Where an endpoint's TAP is, or goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Created (or found) inside the endpoint's namespace and configured there.
    Inside,
    /// Created in the daemon's namespace with its MAC and MTU, down and without an address,
    /// for a container engine to move into the container (Docker's `Join`).
    HandOver,
    /// A TAP handed over earlier, found again on start: inside the container's namespace
    /// under the name the engine gave it (looked up by MAC), or back in the daemon's
    /// namespace under its own name (the engine moved it back).
    Handed,
}

impl Placement {
    /// How a persisted endpoint's interface is found again.
    pub(super) fn of_record(rec: &EndpointRecord) -> Placement {
        if rec.handed && rec.kind == EndpointKind::Tap {
            Placement::Handed
        } else {
            Placement::Inside
        }
    }
}

/// Creates (or re-attaches) the endpoint's interface and returns its port fd.
pub(super) fn plumb(
    netns: &Netns,
    rec: &EndpointRecord,
    cfg: IfConfig,
    placement: Placement,
) -> Result<CreatedPort> {
    let ifname = rec.ifname.clone();
    let mtu = cfg.mtu;
    match (rec.kind, placement) {
        (EndpointKind::Tap, Placement::HandOver) => {
            let tap = sys::Tap::open(&ifname, true)?;
            if let Err(e) = sys::prepare_handover(&ifname, cfg.mac, mtu) {
                let _ = tap.clear_persist();
                return Err(e.into());
            }
            Ok(CreatedPort {
                fd: tap.into_owned(),
                kind: EndpointKind::Tap,
                host_ifname: None,
            })
        }
        (EndpointKind::Tap, Placement::Handed) => Ok(CreatedPort {
            fd: find_handed_tap(netns, &ifname, cfg.mac)?.into_owned(),
            kind: EndpointKind::Tap,
            host_ifname: None,
        }),
        (EndpointKind::Tap, _) => {
            let tap = netns.run(move || {
                let tap = sys::Tap::open(&ifname, true)?;
                if let Err(e) = sys::configure_interface(&ifname, &cfg) {
                    let _ = tap.clear_persist();
                    return Err(e);
                }
                Ok(tap)
            })?;
            Ok(CreatedPort {
                fd: tap.into_owned(),
                kind: EndpointKind::Tap,
                host_ifname: None,
            })
        }
        (EndpointKind::Veth, _) => plumb_veth(netns, rec, cfg, mtu),
    }
}

/// Opens a TAP handed to an engine again: in the container's namespace, the interface with
/// the endpoint's MAC (the engine renamed it, e.g. to eth0); else, in the daemon's
/// namespace, the TAP under its own `wd…` name (moved back when the container stopped).
/// The daemon's namespace is never searched by MAC, and no other name is opened there.
fn find_handed_tap(netns: &Netns, ifname: &str, mac: [u8; 6]) -> Result<sys::Tap> {
    let own = Netns::current().is_ok_and(|own| own.id() == netns.id());
    let inside = if own {
        Ok(None)
    } else {
        netns.run(move || {
            for name in sys::interface_names()? {
                if sys::interface_mac(&name).is_ok_and(|m| m == mac) {
                    return sys::Tap::open(&name, true).map(Some);
                }
            }
            Ok(None)
        })
    };
    match inside {
        Ok(Some(tap)) => Ok(tap),
        _ if is_handed_tap_name(ifname) && sys::interface_exists(ifname) => {
            Ok(sys::Tap::open(ifname, true)?)
        }
        Ok(None) => Err(DaemonError::NotFound(format!(
            "the container's namespace has no interface with MAC {} and the TAP {ifname} is gone",
            weft_switch::MacAddr(mac)
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Creates (or takes over) the endpoint's veth pair and opens the packet socket on its host
/// end. The host end is a switch port only: before it goes up it is made inert for the
/// host's own stack ([`sys::make_inert`]: no IPv6, so no link-local address a container
/// could reach host services on, no router advertisements; strict reverse-path filtering
/// for IPv4), and it never gets an address. A step that fails removes a pair created here.
fn plumb_veth(netns: &Netns, rec: &EndpointRecord, cfg: IfConfig, mtu: u32) -> Result<CreatedPort> {
    let ifname = rec.ifname.clone();
    let host = rec.host_ifname.clone().ok_or_else(|| {
        DaemonError::Internal(format!(
            "veth endpoint {} has no host interface name in the state file",
            rec.name
        ))
    })?;
    let created_now = !sys::interface_exists(&host);
    if created_now {
        sys::create_veth(&host, &ifname, netns)?;
    }
    let undo = |e: DaemonError| {
        if created_now {
            let _ = sys::delete_link(&host);
        }
        e
    };
    sys::make_inert(&host).map_err(|e| undo(e.into()))?;
    netns
        .run(move || sys::configure_interface(&ifname, &cfg))
        .map_err(|e| undo(e.into()))?;
    sys::set_mtu(&host, mtu).map_err(|e| undo(e.into()))?;
    sys::set_link_up(&host).map_err(|e| undo(e.into()))?;
    let socket = sys::PacketSocket::open(&host).map_err(|e| undo(e.into()))?;
    Ok(CreatedPort {
        fd: socket.into_owned(),
        kind: EndpointKind::Veth,
        host_ifname: Some(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_weft_makes_are_host_ends() {
        for r in [0, 1, u64::MAX, 0x1234_5678_9abc] {
            assert!(is_host_end_name(&host_end_name(r)), "{}", host_end_name(r));
        }
        for other in [
            "eth0",
            "wv",
            "wv00000000001",
            "wv000000000g",
            "wv00000000AB",
            "xv0000000001",
        ] {
            assert!(!is_host_end_name(other), "{other}");
        }
    }
}
