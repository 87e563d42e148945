//! What the plugin prints: the ADD result in each specification version, the error
//! result, the VERSION answer, and the reading of a `prevResult` for CHECK.

use serde_json::{json, Map, Value};

use super::config::{Version, SUPPORTED};
use super::CniError;

/// What ADD made: the container's interface and its address.
#[derive(Debug, Clone, PartialEq)]
pub struct Attached {
    pub ifname: String,
    pub mac: String,
    /// The namespace path (`CNI_NETNS`).
    pub sandbox: String,
    pub ip: String,
    pub prefix_len: u8,
    pub gateway: String,
    pub mtu: u32,
}

/// The ADD result in `version`'s format.
///
/// 0.3.1 and 0.4.0 share one format (`ips[].version` is `"4"`); 1.0.0 dropped
/// `ips[].version`; 1.1.0 adds the optional `interfaces[].mtu`.
pub fn add_result(version: Version, a: &Attached) -> Value {
    let mut iface = Map::new();
    iface.insert("name".into(), json!(a.ifname));
    iface.insert("mac".into(), json!(a.mac));
    if version >= Version::V110 {
        iface.insert("mtu".into(), json!(a.mtu));
    }
    iface.insert("sandbox".into(), json!(a.sandbox));
    let mut ip = Map::new();
    if version < Version::V100 {
        ip.insert("version".into(), json!("4"));
    }
    ip.insert(
        "address".into(),
        json!(format!("{}/{}", a.ip, a.prefix_len)),
    );
    ip.insert("gateway".into(), json!(a.gateway));
    ip.insert("interface".into(), json!(0));
    json!({
        "cniVersion": version.as_str(),
        "interfaces": [iface],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": a.gateway}],
        "dns": {"nameservers": [a.gateway]},
    })
}

/// The error result: `{"cniVersion","code","msg","details"}` (`details` left out when empty).
pub fn error_result(version: Version, e: &CniError) -> Value {
    let mut v = json!({"cniVersion": version.as_str(), "code": e.code, "msg": e.msg});
    if !e.details.is_empty() {
        v["details"] = json!(e.details);
    }
    v
}

/// The VERSION answer: the version asked in (when this plugin speaks it) and all it speaks.
pub fn version_result(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().and_then(Version::parse))
        .unwrap_or(Version::LATEST);
    json!({"cniVersion": asked.as_str(), "supportedVersions": SUPPORTED})
}

/// What a `prevResult` says about the interface `ifname`: its MAC and its addresses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    pub mac: Option<String>,
    pub addresses: Vec<String>,
}

/// Reads `prevResult` (any version's format): the interface named `ifname` and the
/// addresses that name it (or name no interface).
pub fn expected(prev: &Value, ifname: &str) -> Expected {
    let ifaces = prev.get("interfaces").and_then(Value::as_array);
    let index = ifaces.and_then(|list| {
        list.iter()
            .position(|i| i.get("name").and_then(Value::as_str) == Some(ifname))
    });
    let mac = index
        .and_then(|i| ifaces?.get(i)?.get("mac")?.as_str())
        .map(str::to_string);
    let addresses = prev
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|ip| match ip.get("interface").and_then(Value::as_u64) {
            None => true,
            Some(i) => Some(i as usize) == index,
        })
        .filter_map(|ip| ip.get("address")?.as_str().map(str::to_string))
        .collect();
    Expected { mac, addresses }
}

#[cfg(test)]
mod tests {
    use super::super::codes;
    use super::*;

    fn attached() -> Attached {
        Attached {
            ifname: "eth0".into(),
            mac: "02:42:0a:09:00:02".into(),
            sandbox: "/run/netns/c1".into(),
            ip: "10.9.0.2".into(),
            prefix_len: 24,
            gateway: "10.9.0.1".into(),
            mtu: 1500,
        }
    }

    #[test]
    fn results_follow_each_version() {
        let r = add_result(Version::V100, &attached());
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "mac": "02:42:0a:09:00:02", "sandbox": "/run/netns/c1"}],
                "ips": [{"address": "10.9.0.2/24", "gateway": "10.9.0.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.9.0.1"}],
                "dns": {"nameservers": ["10.9.0.1"]},
            })
        );
        for v in [Version::V031, Version::V040] {
            let r = add_result(v, &attached());
            assert_eq!(r["cniVersion"], v.as_str());
            assert_eq!(r["ips"][0]["version"], "4");
            assert_eq!(r["ips"][0]["address"], "10.9.0.2/24");
            assert!(r["interfaces"][0].get("mtu").is_none());
        }
        let r = add_result(Version::V110, &attached());
        assert_eq!(r["interfaces"][0]["mtu"], 1500);
        assert!(r["ips"][0].get("version").is_none());
    }

    #[test]
    fn errors_and_versions_render() {
        let e = CniError::new(codes::INVALID_ENV, "CNI_NETNS is not set");
        assert_eq!(
            error_result(Version::V100, &e),
            json!({"cniVersion": "1.0.0", "code": 4, "msg": "CNI_NETNS is not set"})
        );
        let e = e.with_details("x");
        assert_eq!(error_result(Version::V031, &e)["details"], "x");
        let v = version_result(br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
        assert_eq!(version_result(b"")["cniVersion"], "1.1.0");
        assert_eq!(
            version_result(br#"{"cniVersion":"9"}"#)["cniVersion"],
            "1.1.0"
        );
    }

    #[test]
    fn prev_result_is_read() {
        let prev = add_result(Version::V040, &attached());
        let e = expected(&prev, "eth0");
        assert_eq!(e.mac.as_deref(), Some("02:42:0a:09:00:02"));
        assert_eq!(e.addresses, ["10.9.0.2/24"]);
        assert_eq!(expected(&prev, "eth1").mac, None);
        assert_eq!(expected(&json!("junk"), "eth0"), Expected::default());
    }
}
