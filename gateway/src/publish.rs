//! Port publishing, the pure part: Docker's `-p`/`-P` specs and the mappings they expand to.
//! Binding the host sockets stays with the runtime (`control/src/gateway/publish.rs`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port: `host_ip:host_port` on the host leads to `container_port` of an
/// endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    /// `0.0.0.0:8080->80/tcp`, as `docker ps` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip,
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl PortMapping {
    /// `host_ip:host_port` published to the container's `container_port`.
    pub fn new(host_ip: Ipv4Addr, host_port: u16, container_port: u16, protocol: Protocol) -> Self {
        PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        }
    }

    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::from((self.host_ip, self.host_port))
    }

    /// Whether two mappings would need the same host socket (a wildcard address overlaps
    /// every address).
    pub fn clashes(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && self.host_port != 0
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

/// A spec that cannot be used; the message names the problem and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SpecError(pub String);

const SPEC_FORM: &str =
    "use [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp";

fn split_protocol(spec: &str) -> Result<(&str, Protocol), SpecError> {
    match spec.rsplit_once('/') {
        None => Ok((spec, Protocol::Tcp)),
        Some((rest, "tcp")) => Ok((rest, Protocol::Tcp)),
        Some((rest, "udp")) => Ok((rest, Protocol::Udp)),
        Some((_, other)) => Err(SpecError(format!(
            "invalid protocol {other:?} in port spec {spec:?}: use tcp or udp"
        ))),
    }
}

fn parse_port(s: &str, spec: &str, allow_zero: bool) -> Result<u16, SpecError> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(SpecError(format!(
            "invalid port {s:?} in port spec {spec:?}: {SPEC_FORM}"
        )));
    }
    match s.parse::<u32>() {
        Ok(p) if p <= 65535 && (p > 0 || allow_zero) => Ok(p as u16),
        _ => Err(SpecError(format!(
            "invalid port {s} in port spec {spec:?}: ports must be in the range 1-65535"
        ))),
    }
}

fn parse_range(s: &str, spec: &str) -> Result<(u16, u16), SpecError> {
    let (first, last) = match s.split_once('-') {
        Some((a, b)) => (parse_port(a, spec, false)?, parse_port(b, spec, false)?),
        None => {
            let p = parse_port(s, spec, false)?;
            (p, p)
        }
    };
    if last < first {
        return Err(SpecError(format!(
            "invalid port range {s:?} in port spec {spec:?}: the end must not be below the start"
        )));
    }
    Ok((first, last))
}

/// Parses `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]` into one mapping per
/// port. Ranges must have the same length.
pub fn parse_spec(spec: &str) -> Result<Vec<PortMapping>, SpecError> {
    let (ports, protocol) = split_protocol(spec.trim())?;
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [host, container] => (Ipv4Addr::UNSPECIFIED, *host, *container),
        [ip, host, container] => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| {
                SpecError(format!(
                    "invalid host address {ip:?} in port spec {spec:?}: expected an IPv4 address like 127.0.0.1"
                ))
            })?;
            (ip, *host, *container)
        }
        _ => {
            return Err(SpecError(format!(
                "invalid port spec {spec:?}: {SPEC_FORM}"
            )))
        }
    };
    let (h0, h1) = parse_range(host, spec)?;
    let (c0, c1) = parse_range(container, spec)?;
    if h1 - h0 != c1 - c0 {
        return Err(SpecError(format!(
            "invalid port spec {spec:?}: the host range has {} ports and the container range {}; give ranges of equal length",
            h1 - h0 + 1,
            c1 - c0 + 1
        )));
    }
    Ok((0..=(h1 - h0))
        .map(|i| PortMapping {
            host_ip,
            host_port: h0 + i,
            container_port: c0 + i,
            protocol,
        })
        .collect())
}

/// Parses a `-P` entry, `CONTAINER_PORT[/tcp|/udp]`: the host port is picked at bind time.
pub fn parse_publish_all(spec: &str) -> Result<PortMapping, SpecError> {
    let (port, protocol) = split_protocol(spec.trim())?;
    Ok(PortMapping {
        host_ip: Ipv4Addr::UNSPECIFIED,
        host_port: 0,
        container_port: parse_port(port, spec, false)?,
        protocol,
    })
}

/// Parses what `weft unpublish` takes: `[HOST_IP:]HOST_PORT[-END][/tcp|/udp]` (a full spec
/// is accepted too; its container part is ignored). Returns the address (None: any),
/// the host port range and the protocol.
pub fn parse_unpublish(spec: &str) -> Result<(Option<Ipv4Addr>, u16, u16, Protocol), SpecError> {
    let (ports, protocol) = split_protocol(spec.trim())?;
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, host) = match parts.as_slice() {
        [host] => (None, *host),
        [a, b] => match a.parse::<Ipv4Addr>() {
            Ok(ip) => (Some(ip), *b),
            Err(_) => (None, *a),
        },
        [ip, host, _] => (
            Some(
                ip.parse()
                    .map_err(|_| SpecError(format!("invalid host address {ip:?} in {spec:?}")))?,
            ),
            *host,
        ),
        _ => {
            return Err(SpecError(format!(
                "invalid port spec {spec:?}: use [HOST_IP:]HOST_PORT[-END][/tcp|/udp]"
            )))
        }
    };
    let (first, last) = parse_range(host, spec)?;
    Ok((ip, first, last, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: [u8; 4], host: u16, container: u16, protocol: Protocol) -> PortMapping {
        PortMapping::new(Ipv4Addr::from(ip), host, container, protocol)
    }

    #[test]
    fn specs_in_docker_syntax() {
        assert_eq!(
            parse_spec("8080:80").unwrap(),
            vec![m([0, 0, 0, 0], 8080, 80, Protocol::Tcp)]
        );
        assert_eq!(
            parse_spec("127.0.0.1:5353:53/udp").unwrap(),
            vec![m([127, 0, 0, 1], 5353, 53, Protocol::Udp)]
        );
        let range = parse_spec("9000-9099:8000-8099/tcp").unwrap();
        assert_eq!(range.len(), 100);
        assert_eq!(range[0], m([0, 0, 0, 0], 9000, 8000, Protocol::Tcp));
        assert_eq!(range[99], m([0, 0, 0, 0], 9099, 8099, Protocol::Tcp));
        assert_eq!(range[42].to_string(), "0.0.0.0:9042->8042/tcp");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("abc", "invalid"),
            ("80", "invalid port spec"),
            ("70000:80", "range 1-65535"),
            ("8080:0", "range 1-65535"),
            ("8080:80/sctp", "invalid protocol"),
            ("1.2.3:8080:80", "invalid host address"),
            ("9000-9001:80-82", "equal length"),
            ("9001-9000:80-79", "end must not be below"),
            ("a:b:c:d", "invalid port spec"),
            ("", "invalid"),
        ];
        for (spec, words) in cases {
            let e = parse_spec(spec).unwrap_err();
            assert!(e.0.contains(words), "{spec:?}: {e}");
        }
    }

    #[test]
    fn publish_all_and_unpublish_forms() {
        assert_eq!(
            parse_publish_all("53/udp").unwrap(),
            m([0, 0, 0, 0], 0, 53, Protocol::Udp)
        );
        assert!(parse_publish_all("0").is_err());
        assert_eq!(
            parse_unpublish("8080").unwrap(),
            (None, 8080, 8080, Protocol::Tcp)
        );
        assert_eq!(
            parse_unpublish("127.0.0.1:8080/udp").unwrap(),
            (Some(Ipv4Addr::LOCALHOST), 8080, 8080, Protocol::Udp)
        );
        assert_eq!(
            parse_unpublish("9000-9009:80-89").unwrap(),
            (None, 9000, 9009, Protocol::Tcp)
        );
    }

    #[test]
    fn wildcard_addresses_clash_with_every_address() {
        let any = m([0, 0, 0, 0], 8080, 80, Protocol::Tcp);
        let lo = m([127, 0, 0, 1], 8080, 81, Protocol::Tcp);
        let other = m([127, 0, 0, 2], 8080, 81, Protocol::Tcp);
        assert!(any.clashes(&lo) && lo.clashes(&any));
        assert!(!lo.clashes(&other));
        assert!(!any.clashes(&m([0, 0, 0, 0], 8080, 80, Protocol::Udp)));
        assert!(!any.clashes(&m([0, 0, 0, 0], 8081, 80, Protocol::Tcp)));
    }

    proptest::proptest! {
        /// The parsers take whatever a user types: arbitrary text never panics, and whatever
        /// parses names ports in range and a container range as long as the host range.
        #[test]
        fn spec_parsers_never_panic(spec in "\\PC{0,40}") {
            if let Ok(ms) = parse_spec(&spec) {
                proptest::prop_assert!(!ms.is_empty());
                for m in &ms {
                    proptest::prop_assert!(m.host_port > 0 && m.container_port > 0);
                }
            }
            let _ = parse_publish_all(&spec);
            let _ = parse_unpublish(&spec);
        }

        #[test]
        fn spec_like_text_never_panics(spec in "[0-9.:/a-z-]{0,30}") {
            let _ = parse_spec(&spec);
            let _ = parse_publish_all(&spec);
            let _ = parse_unpublish(&spec);
        }
    }
}
