//! Input checks (names, interface names, aliases, subnets, MACs) with messages on how to fix.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_switch::MacAddr;

use super::{invalid, Result, MAX_IFNAME_LEN, MAX_NAME_LEN};

pub(super) fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} name {name:?}: use 1-{MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// A DNS name for `--alias`: dot-separated labels of letters, digits and '-' (RFC 1035
/// §2.3.1, with digits allowed first as RFC 1123 §2.1 does), at most 253 characters.
pub(super) fn validate_dns_name(name: &str) -> Result<()> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid alias {name:?}: use DNS labels of letters, digits and '-' separated by dots, like web or db.internal"
        )))
    }
}

pub fn validate_ifname(ifname: &str) -> Result<()> {
    let ok = !ifname.is_empty()
        && ifname.len() <= MAX_IFNAME_LEN
        && ifname != "."
        && ifname != ".."
        && ifname
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | ':' | '%'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid interface name {ifname:?}: use 1-{MAX_IFNAME_LEN} printable characters without '/', ':', '%' or spaces"
        )))
    }
}

/// Parses a subnet the way the user wrote it, with messages that say how to fix it.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(invalid(format!(
            "invalid subnet {s:?}: expected CIDR notation like 10.1.0.0/24"
        )));
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        invalid(format!(
            "invalid subnet {s:?}: {addr:?} is not an IPv4 address; expected CIDR notation like 10.1.0.0/24"
        ))
    })?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| invalid(format!("invalid subnet {s:?}: prefix length must be 0..32")))?;
    if prefix > 30 {
        return Err(invalid(format!(
            "subnet {s} is too small: a network needs room for a gateway and endpoints, use a prefix length of 30 or less"
        )));
    }
    let net = Ipv4Net::new(addr, prefix).expect("prefix checked");
    let first = net.network().octets()[0];
    let last = net.broadcast().octets()[0];
    if first == 0 || first == 127 || last >= 224 || (first..=last).contains(&127) {
        return Err(invalid(format!(
            "subnet {s} overlaps the unspecified, loopback, multicast or reserved ranges; choose a unicast range such as 10.1.0.0/24"
        )));
    }
    if net.network() != addr {
        return Err(invalid(format!(
            "invalid subnet {s}: host bits are set; did you mean {}/{prefix}?",
            net.network()
        )));
    }
    Ok(net)
}

/// What [`parse_mac`] takes: a MAC as text (a request's), or one already typed (a persisted
/// endpoint's, checked when the state was read; `cluster_sync` still passes those through
/// `parse_mac`).
pub(super) trait MacInput {
    fn to_mac(&self) -> Result<MacAddr>;
}

impl MacInput for str {
    fn to_mac(&self) -> Result<MacAddr> {
        self.parse()
            .map_err(|e: weft_switch::MacParseError| invalid(e.to_string()))
    }
}

impl MacInput for MacAddr {
    fn to_mac(&self) -> Result<MacAddr> {
        Ok(*self)
    }
}

/// A unicast, nonzero MAC, or an error saying how to write one.
pub(super) fn parse_mac<M: MacInput + ?Sized>(input: &M) -> Result<MacAddr> {
    let mac = input.to_mac()?;
    if !mac.is_unicast() || mac.is_zero() {
        return Err(invalid(format!(
            "MAC address {mac} is not a unicast address: the first octet must be even and the address nonzero (e.g. 02:42:0a:00:00:05)"
        )));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_parsed_with_helpful_errors() {
        assert_eq!(
            parse_subnet("10.1.0.0/24").unwrap().to_string(),
            "10.1.0.0/24"
        );
        let msg = |s: &str| parse_subnet(s).unwrap_err().to_string();
        assert!(msg("10.1.0.0/33").contains("prefix length must be 0..32"));
        assert!(msg("10.1.0.0").contains("CIDR"));
        assert!(msg("banana/24").contains("not an IPv4 address"));
        assert!(msg("10.1.0.5/24").contains("did you mean 10.1.0.0/24"));
        assert!(msg("10.1.0.0/31").contains("too small"));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("network", "front-end_1.x").is_ok());
        assert!(validate_name("network", "").is_err());
        assert!(validate_name("network", "-x").is_err());
        assert!(validate_name("network", "a b").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("averyveryverylongname").is_err());
        assert!(validate_ifname("a/b").is_err());
    }
}
