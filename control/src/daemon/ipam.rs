//! IPv4 address management for one network: the gateway default, the next free address, and
//! the checks an explicit address must pass. Pure functions over the set of taken addresses.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Why an address cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("address {addr} is outside subnet {subnet}; pick an address inside it or omit --ip")]
    OutsideSubnet { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is the network address of {subnet}; pick a host address")]
    NetworkAddress { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is the broadcast address of {subnet}; pick a host address")]
    BroadcastAddress { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is the gateway of this network; pick another address or omit --ip")]
    GatewayAddress { addr: Ipv4Addr },
    #[error(
        "address {addr} is already used by endpoint {owner}; pick another address or omit --ip"
    )]
    Taken { addr: Ipv4Addr, owner: String },
    #[error(
        "subnet {subnet} has no free address left; disconnect an endpoint or use a larger subnet"
    )]
    Exhausted { subnet: Ipv4Net },
}

/// First host address of the subnet: Docker's and weft's default gateway.
pub fn default_gateway(subnet: Ipv4Net) -> Option<Ipv4Addr> {
    subnet.hosts().next()
}

/// Whether `addr` is a usable host address of `subnet` (not network or broadcast).
pub fn check_host(subnet: Ipv4Net, addr: Ipv4Addr) -> Result<(), IpamError> {
    if !subnet.contains(&addr) {
        return Err(IpamError::OutsideSubnet { addr, subnet });
    }
    if subnet.prefix_len() < 31 {
        if addr == subnet.network() {
            return Err(IpamError::NetworkAddress { addr, subnet });
        }
        if addr == subnet.broadcast() {
            return Err(IpamError::BroadcastAddress { addr, subnet });
        }
    }
    Ok(())
}

/// Checks an address the user asked for. `taken` maps used addresses to their owners.
pub fn check_explicit<'a>(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    addr: Ipv4Addr,
    mut taken: impl Iterator<Item = (Ipv4Addr, &'a str)>,
) -> Result<(), IpamError> {
    check_host(subnet, addr)?;
    if addr == gateway {
        return Err(IpamError::GatewayAddress { addr });
    }
    if let Some((_, owner)) = taken.find(|(a, _)| *a == addr) {
        return Err(IpamError::Taken {
            addr,
            owner: owner.to_string(),
        });
    }
    Ok(())
}

/// The lowest free host address of the subnet, skipping the gateway.
pub fn next_free(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    taken: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    subnet
        .hosts()
        .find(|a| *a != gateway && !taken.contains(a))
        .ok_or(IpamError::Exhausted { subnet })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn next_free_skips_gateway_and_taken() {
        let subnet = net("10.0.0.0/29");
        let gw = default_gateway(subnet).unwrap();
        assert_eq!(gw, Ipv4Addr::new(10, 0, 0, 1));
        let mut taken = BTreeSet::new();
        assert_eq!(
            next_free(subnet, gw, &taken),
            Ok(Ipv4Addr::new(10, 0, 0, 2))
        );
        taken.insert(Ipv4Addr::new(10, 0, 0, 2));
        taken.insert(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(
            next_free(subnet, gw, &taken),
            Ok(Ipv4Addr::new(10, 0, 0, 4))
        );
        for i in 4..=6 {
            taken.insert(Ipv4Addr::new(10, 0, 0, i));
        }
        assert_eq!(
            next_free(subnet, gw, &taken),
            Err(IpamError::Exhausted { subnet })
        );
    }

    #[test]
    fn explicit_addresses_are_checked() {
        let subnet = net("10.0.0.0/24");
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let taken = [(Ipv4Addr::new(10, 0, 0, 5), "web")];
        let check =
            |a: [u8; 4]| check_explicit(subnet, gw, Ipv4Addr::from(a), taken.iter().copied());
        assert!(check([10, 0, 0, 9]).is_ok());
        assert!(matches!(
            check([10, 0, 1, 9]),
            Err(IpamError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            check([10, 0, 0, 0]),
            Err(IpamError::NetworkAddress { .. })
        ));
        assert!(matches!(
            check([10, 0, 0, 255]),
            Err(IpamError::BroadcastAddress { .. })
        ));
        assert!(matches!(
            check([10, 0, 0, 1]),
            Err(IpamError::GatewayAddress { .. })
        ));
        let err = check([10, 0, 0, 5]).unwrap_err();
        assert!(err.to_string().contains("web"), "{err}");
    }
}
