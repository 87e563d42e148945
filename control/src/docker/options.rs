//! Docker's requests translated into weft's, without I/O: `docker network create` options
//! into a weft network, `-p` mappings into publish specs, the `ip/len` strings of IPAM.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use super::protocol::{self, PortBinding};
use crate::types::CreateNetwork;

/// A request Docker sent that weft refuses, with the message Docker prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The `-o` options weft takes, for the message that lists them.
const KNOWN: &str = "weft.icc, weft.nat, weft.mtu, weft.driver, weft.vni, weft.published_source";

/// The weft network a Docker `CreateNetwork` asks for, named `name` (Docker does not send
/// the network's name: it is looked up afterwards).
pub fn network_request(
    req: &protocol::CreateNetwork,
    name: &str,
) -> Result<CreateNetwork, Refusal> {
    if !req.ipv6_data.is_empty() {
        return Err(Refusal(
            "weft networks are IPv4 only: leave out --ipv6".into(),
        ));
    }
    let [ipv4] = req.ipv4_data.as_slice() else {
        return Err(Refusal(format!(
            "a weft network has one IPv4 subnet, got {}: pass one --subnet",
            req.ipv4_data.len()
        )));
    };
    let mut out = CreateNetwork {
        name: name.to_string(),
        subnet: ipv4.pool.clone(),
        gateway: (!ipv4.gateway.is_empty()).then(|| strip_len(&ipv4.gateway).to_string()),
        mtu: None,
        aging_seconds: None,
        icc: None,
        nat: None,
        internal: req.options.get(protocol::INTERNAL) == Some(&Value::Bool(true)),
        driver: None,
        vni: None,
        published_source: None,
    };
    let generic = match req.options.get(protocol::GENERIC) {
        Some(Value::Object(m)) => m.clone(),
        _ => Default::default(),
    };
    for (key, value) in &generic {
        let Some(v) = value.as_str() else {
            return Err(Refusal(format!("option {key} must be a string")));
        };
        apply_option(&mut out, key, v)?;
    }
    Ok(out)
}

/// One `-o KEY=VALUE`; options of other drivers (`com.docker.*`) are ignored.
fn apply_option(out: &mut CreateNetwork, key: &str, v: &str) -> Result<(), Refusal> {
    let number = |what: &str| {
        v.parse::<u32>()
            .map_err(|_| Refusal(format!("invalid -o {what}={v:?}: expected a number")))
    };
    let flag = |what: &str| match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Refusal(format!(
            "invalid -o {what}={v:?}: use true or false"
        ))),
    };
    match key {
        "weft.icc" | "com.docker.network.bridge.enable_icc" => out.icc = Some(flag(key)?),
        "weft.nat" => out.nat = Some(v.to_string()),
        "weft.mtu" | "com.docker.network.driver.mtu" => out.mtu = Some(number(key)?),
        "weft.driver" => out.driver = Some(v.to_string()),
        "weft.vni" => out.vni = Some(number(key)?),
        "weft.published_source" => out.published_source = Some(v.to_string()),
        k if k.starts_with("weft.") => {
            return Err(Refusal(format!(
                "unknown option -o {k}: weft takes {KNOWN}"
            )))
        }
        _ => {}
    }
    Ok(())
}

/// `10.1.0.1/24` → `10.1.0.1` (IPAM's and `CreateNetwork`'s gateway carry the length).
pub fn strip_len(s: &str) -> &str {
    s.split_once('/').map_or(s, |(a, _)| a)
}

/// An address as Docker writes one, with or without a length.
pub fn parse_addr(s: &str) -> Result<Ipv4Addr, Refusal> {
    strip_len(s)
        .parse()
        .map_err(|_| Refusal(format!("{s:?} is not an IPv4 address")))
}

/// The `-p`/`-P` mappings in an option map, if it carries any.
pub fn port_bindings(options: Option<&BTreeMap<String, Value>>) -> Option<Vec<PortBinding>> {
    let v = options?.get(protocol::PORT_MAP)?;
    serde_json::from_value(v.clone()).ok()
}

/// weft's publish specs for Docker's mappings: `[HOST_IP:]HOST_PORT[-END]:PORT/proto`, and
/// the container ports of mappings without a host port (`-P`, `-p PORT`) for weft to pick.
pub fn publish_specs(bindings: &[PortBinding]) -> Result<(Vec<String>, Vec<String>), Refusal> {
    let (mut specs, mut any) = (Vec::new(), Vec::new());
    for b in bindings {
        let proto = match b.proto {
            6 => "tcp",
            17 => "udp",
            other => {
                return Err(Refusal(format!(
                    "weft publishes TCP and UDP ports; protocol {other} (sctp?) cannot be published"
                )))
            }
        };
        if b.host_port == 0 {
            any.push(format!("{}/{proto}", b.port));
            continue;
        }
        let host_ip = match b.host_ip.as_str() {
            "" | "0.0.0.0" => String::new(),
            ip => format!("{ip}:"),
        };
        let range = if b.host_port_end > b.host_port {
            format!("{}-{}", b.host_port, b.host_port_end)
        } else {
            b.host_port.to_string()
        };
        specs.push(format!("{host_ip}{range}:{}/{proto}", b.port));
    }
    Ok((specs, any))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(json: &str) -> protocol::CreateNetwork {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn options_become_a_weft_network() {
        let req = create(
            r#"{"NetworkID":"ab","Options":{"com.docker.network.enable_ipv6":false,
            "com.docker.network.generic":{"weft.mtu":"1400","weft.icc":"false","weft.nat":"none"},
            "com.docker.network.internal":true},
            "IPv4Data":[{"AddressSpace":"l","Gateway":"10.99.0.1/24","Pool":"10.99.0.0/24"}],"IPv6Data":[]}"#,
        );
        let n = network_request(&req, "web").unwrap();
        assert_eq!(n.name, "web");
        assert_eq!(n.subnet, "10.99.0.0/24");
        assert_eq!(n.gateway.as_deref(), Some("10.99.0.1"));
        assert_eq!(n.mtu, Some(1400));
        assert_eq!(n.icc, Some(false));
        assert_eq!(n.nat.as_deref(), Some("none"));
        assert!(n.internal);
        assert_eq!(n.driver, None);
    }

    #[test]
    fn bad_options_are_refused_with_the_fix() {
        let with = |opts: &str| {
            create(&format!(
                r#"{{"NetworkID":"ab","Options":{{"com.docker.network.generic":{opts}}},
                "IPv4Data":[{{"Pool":"10.99.0.0/24","Gateway":"10.99.0.1/24"}}]}}"#
            ))
        };
        let e = network_request(&with(r#"{"weft.mtu":"big"}"#), "n").unwrap_err();
        assert!(e.0.contains("weft.mtu") && e.0.contains("number"), "{e}");
        let e = network_request(&with(r#"{"weft.colour":"red"}"#), "n").unwrap_err();
        assert!(
            e.0.contains("weft.colour") && e.0.contains("weft.mtu"),
            "{e}"
        );
        let e = network_request(&with(r#"{"weft.icc":"maybe"}"#), "n").unwrap_err();
        assert!(e.0.contains("true or false"), "{e}");
        // Other drivers' options are not weft's business.
        assert!(network_request(&with(r#"{"com.example.x":"1"}"#), "n").is_ok());
        let v6 = create(
            r#"{"NetworkID":"ab","IPv4Data":[{"Pool":"10.9.0.0/24"}],"IPv6Data":[{"Pool":"fd00::/64"}]}"#,
        );
        assert!(network_request(&v6, "n").unwrap_err().0.contains("--ipv6"));
        let none = create(r#"{"NetworkID":"ab","IPv4Data":[]}"#);
        assert!(network_request(&none, "n")
            .unwrap_err()
            .0
            .contains("--subnet"));
    }

    #[test]
    fn port_maps_become_publish_specs() {
        let opts: BTreeMap<String, Value> = serde_json::from_str(
            r#"{"com.docker.network.portmap":[
              {"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080},
              {"Proto":17,"IP":"","Port":53,"HostIP":"","HostPort":0,"HostPortEnd":0},
              {"Proto":6,"IP":"","Port":443,"HostIP":"127.0.0.1","HostPort":9443,"HostPortEnd":9443}]}"#,
        )
        .unwrap();
        let b = port_bindings(Some(&opts)).unwrap();
        let (specs, any) = publish_specs(&b).unwrap();
        assert_eq!(specs, ["8080:80/tcp", "127.0.0.1:9443:443/tcp"]);
        assert_eq!(any, ["53/udp"]);
        let sctp = [PortBinding {
            proto: 132,
            port: 1,
            host_ip: String::new(),
            host_port: 1,
            host_port_end: 1,
        }];
        assert!(publish_specs(&sctp).is_err());
        assert_eq!(port_bindings(None), None);
    }
}
