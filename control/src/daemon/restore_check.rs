//! The checks a state file's records pass before the daemon restores any of them: the ones
//! `weft network create` and `weft connect` make, because the file may have been edited or
//! corrupted since weft wrote it. Pure (no system calls); the `state_file` fuzz target runs
//! them on hostile documents.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use super::networks::check_create;
use super::plumb::is_host_end_name;
use super::state::{
    EndpointKind, EndpointRecord, NetworkRecord, PersistedState, StateError, UnreadableEndpoint,
};
use super::validate::{validate_dns_name, validate_ifname, validate_name};
use super::{invalid, ipam, Result};
use crate::types::CreateNetwork;

/// Checks a state as read from `path`. A network record that `network create` would refuse,
/// or that collides with another (name, overlapping subnet, VNI), refuses the whole state:
/// its endpoints hang on it, so nothing is restored and the error names the record and
/// what to fix. An endpoint record `connect` would refuse is not attached but kept as
/// unreadable (logged, written back as it is), like a record that does not parse.
pub fn check_restored(
    path: &Path,
    mut state: PersistedState,
) -> std::result::Result<PersistedState, StateError> {
    let refuse = |what: String| StateError::Invalid {
        path: path.to_owned(),
        what,
    };
    let mut seen: Vec<&NetworkRecord> = Vec::new();
    for (i, n) in state.networks.iter().enumerate() {
        check_network_record(n, &seen)
            .map_err(|e| refuse(format!("network record {} ({:?}): {e}", i + 1, n.name)))?;
        seen.push(n);
    }
    let networks: BTreeMap<&str, &NetworkRecord> = state
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    let mut kept = Vec::with_capacity(state.endpoints.len());
    for (i, record) in std::mem::take(&mut state.endpoints).into_iter().enumerate() {
        let checked = check_endpoint_record(&record, networks.get(record.network.as_str()))
            .and_then(|()| unique(&record, &mut names, &mut addresses));
        match checked {
            Ok(()) => kept.push(record),
            Err(e) => {
                log::error!(
                    "state file {}: endpoint record {} ({:?}) is invalid and is not attached: {e}; \
                     it stays in the state file as it is",
                    path.display(),
                    i + 1,
                    record.name
                );
                let raw = serde_json::to_value(&record).unwrap_or_default();
                let reason = e.to_string();
                state.unreadable_endpoints.push(UnreadableEndpoint {
                    position: i + 1,
                    reason,
                    raw,
                });
            }
        }
    }
    state.endpoints = kept;
    Ok(state)
}

/// A network record passes `network create`'s checks and collides with no earlier one.
fn check_network_record(n: &NetworkRecord, earlier: &[&NetworkRecord]) -> Result<()> {
    let req = CreateNetwork {
        name: n.name.clone(),
        subnet: n.subnet.to_string(),
        gateway: Some(n.gateway.to_string()),
        mtu: Some(n.mtu),
        aging_seconds: Some(n.aging_seconds),
        icc: Some(n.icc),
        nat: Some(if n.nat { "proxy" } else { "none" }.into()),
        internal: n.internal,
        driver: Some(if n.vni.is_some() { "overlay" } else { "bridge" }.into()),
        vni: n.vni,
        published_source: None,
    };
    check_create(&req)?;
    for other in earlier {
        if other.name == n.name {
            return Err(invalid("a second network of this name"));
        }
        if other.subnet.contains(&n.subnet.network()) || n.subnet.contains(&other.subnet.network())
        {
            return Err(invalid(format!(
                "subnet {} overlaps subnet {} of network {:?}",
                n.subnet, other.subnet, other.name
            )));
        }
        if n.vni.is_some() && other.vni == n.vni {
            return Err(invalid(format!(
                "VNI {:?} is also network {:?}'s",
                n.vni, other.name
            )));
        }
    }
    Ok(())
}

/// An endpoint record passes `connect`'s checks of its fields (its network may be gone: it
/// is then kept as detached).
fn check_endpoint_record(r: &EndpointRecord, network: Option<&&NetworkRecord>) -> Result<()> {
    validate_name("endpoint", &r.name)?;
    validate_ifname(&r.ifname)?;
    // Not the count: connects before the cluster's bound took more aliases, and such an
    // endpoint stays attached (only its gossip is refused by the peers).
    for alias in &r.aliases {
        validate_dns_name(alias)?;
    }
    // The host end is removed at disconnect: only a name weft makes is trusted.
    let host_end_ok = match r.kind {
        EndpointKind::Veth => r.host_ifname.as_deref().is_some_and(is_host_end_name),
        EndpointKind::Tap => r.host_ifname.is_none(),
    };
    if !host_end_ok {
        return Err(invalid(format!(
            "host interface {:?} is not one weft makes for a {:?} endpoint",
            r.host_ifname, r.kind
        )));
    }
    if let Some(n) = network {
        ipam::check_host(n.subnet, r.ip)?;
        if r.ip == n.gateway {
            return Err(invalid(format!(
                "address {} is the network's gateway",
                r.ip
            )));
        }
    }
    Ok(())
}

/// A record's name is the first of its kind, and its address the first on its network.
fn unique(
    r: &EndpointRecord,
    names: &mut BTreeSet<String>,
    addresses: &mut BTreeSet<(String, Ipv4Addr)>,
) -> Result<()> {
    if !names.insert(r.name.clone()) {
        return Err(invalid("an earlier endpoint record has this name"));
    }
    if !addresses.insert((r.network.clone(), r.ip)) {
        return Err(invalid(format!(
            "an earlier endpoint record on network {:?} has address {}",
            r.network, r.ip
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::parse_state;

    const NETWORK: &str = r#"{"name": "n", "subnet": "10.7.0.0/24", "gateway": "10.7.0.1",
        "mtu": 1500, "aging_seconds": 300}"#;
    const ENDPOINT: &str = r#"{"name": "a", "network": "n", "netns": "a", "ifname": "eth0",
        "kind": "veth", "ip": "10.7.0.2", "mac": "02:42:0a:07:00:02",
        "host_ifname": "wv0000000001"}"#;

    fn check(
        networks: &[String],
        endpoints: &[String],
    ) -> std::result::Result<PersistedState, StateError> {
        let text = format!(
            r#"{{"version": 1, "networks": [{}], "endpoints": [{}], "static_fdb": []}}"#,
            networks.join(","),
            endpoints.join(",")
        );
        check_restored(Path::new("/s/state.json"), parse_state(&text).unwrap())
    }

    fn network_error(edit: (&str, &str)) -> String {
        let bad = NETWORK.replace(edit.0, edit.1);
        match check(&[bad], &[]) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{edit:?} accepted"),
        }
    }

    #[test]
    fn a_valid_state_passes_unchanged() {
        let state = check(&[NETWORK.into()], &[ENDPOINT.into()]).unwrap();
        assert_eq!(state.endpoints.len(), 1);
        assert!(state.unreadable_endpoints.is_empty());
    }

    #[test]
    fn an_endpoint_with_more_aliases_than_connect_now_takes_stays_attached() {
        let aliases: Vec<String> = (0..70).map(|i| format!("\"a{i}\"")).collect();
        let many = ENDPOINT.replace("}", &format!(r#", "aliases": [{}]}}"#, aliases.join(",")));
        let state = check(&[NETWORK.into()], &[many]).unwrap();
        assert_eq!(state.endpoints[0].aliases.len(), 70);
    }

    #[test]
    fn hostile_network_values_refuse_the_state_with_the_record_and_the_fix() {
        let e = network_error(("1500", "0"));
        assert!(
            e.contains("/s/state.json") && e.contains("network record 1 (\"n\")"),
            "{e}"
        );
        assert!(
            e.contains("--mtu 0") && e.contains("correct or remove"),
            "{e}"
        );
        let e = network_error(("\"10.7.0.1\"", "\"10.8.0.1\""));
        assert!(
            e.contains("gateway 10.8.0.1 is not usable in subnet 10.7.0.0/24"),
            "{e}"
        );
        assert!(network_error(("\"n\"", "\"../x\"")).contains("network"));
        assert!(network_error(("300", "0")).contains("--aging 0"));
        assert!(network_error(("/24", "/31")).contains("too small"));
        assert!(network_error(("\"10.7.0.1\"", "\"10.7.0.255\"")).contains("broadcast"));
        let overlay = NETWORK.replace("300}", r#"300, "vni": 16777216}"#);
        assert!(check(&[overlay], &[])
            .unwrap_err()
            .to_string()
            .contains("--vni"));
    }

    #[test]
    fn colliding_networks_refuse_the_state() {
        let other = NETWORK
            .replace("10.7.0.0/24", "10.7.0.0/16")
            .replace("\"n\"", "\"m\"");
        let e = check(&[NETWORK.into(), other], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network record 2 (\"m\")") && e.contains("overlaps"),
            "{e}"
        );
        let e = check(&[NETWORK.into(), NETWORK.replace("10.7.", "10.9.")], &[]).unwrap_err();
        assert!(e.to_string().contains("second network of this name"), "{e}");
    }

    #[test]
    fn hostile_endpoint_records_are_kept_unattached() {
        let cases = [
            ("10.7.0.2", "10.8.0.2", "outside"),
            ("10.7.0.2", "10.7.0.1", "gateway"),
            ("10.7.0.2", "10.7.0.255", "broadcast"),
            ("wv0000000001", "eth0", "not one weft makes"),
            ("\"eth0\"", "\"a/b\"", "interface"),
        ];
        for (from, to, why) in cases {
            let state = check(&[NETWORK.into()], &[ENDPOINT.replace(from, to)]).unwrap();
            assert!(state.endpoints.is_empty(), "{to} attached");
            let [u] = &state.unreadable_endpoints[..] else {
                panic!("{to}: {state:?}")
            };
            assert!(u.reason.contains(why), "{to}: {}", u.reason);
            assert_eq!(u.name(), Some("a"));
        }
        let twin = ENDPOINT.replace("10.7.0.2", "10.7.0.3");
        let state = check(&[NETWORK.into()], &[ENDPOINT.into(), twin]).unwrap();
        assert_eq!(state.endpoints.len(), 1);
        assert!(state.unreadable_endpoints[0]
            .reason
            .contains("has this name"));
        let same_ip = ENDPOINT.replace("\"a\"", "\"b\"");
        let state = check(&[NETWORK.into()], &[ENDPOINT.into(), same_ip]).unwrap();
        assert!(state.unreadable_endpoints[0]
            .reason
            .contains("address 10.7.0.2"));
    }
}
