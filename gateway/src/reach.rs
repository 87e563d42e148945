//! Which outside destinations the proxy NAT opens host sockets to for a container. The NAT's
//! sockets are the host's own, so a destination that means something only to the host
//! itself would hand the container the host's view: its loopback services, its link's
//! services (a cloud metadata endpoint at 169.254.169.254), groups and broadcasts.

use std::net::Ipv4Addr;

/// Whether the proxy NAT may connect a container to `dst`. Never: "this network"
/// (0.0.0.0/8, RFC 1122 §3.2.1.3), loopback (127/8, RFC 1122 §3.2.1.3), link-local
/// (169.254/16, RFC 3927 §2.6: never forwarded by a router), multicast (224/4, RFC 5771),
/// reserved (240/4, RFC 1112 §4) and the limited broadcast.
pub fn nat_may_reach(dst: Ipv4Addr) -> bool {
    let first = dst.octets()[0];
    !(first == 0 || dst.is_loopback() || dst.is_link_local() || dst.is_multicast() || first >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_own_destinations_are_refused() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "169.254.0.1",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!nat_may_reach(refused.parse().unwrap()), "{refused}");
        }
        for allowed in [
            "1.1.1.1",
            "10.0.0.1",
            "169.253.0.1",
            "192.0.2.7",
            "223.255.255.254",
        ] {
            assert!(nat_may_reach(allowed.parse().unwrap()), "{allowed}");
        }
    }
}
