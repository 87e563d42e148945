//! Port publishing: the `-p`/`-P` specs and the mappings they expand to (pure, in
//! [`weft_gateway::publish`], re-exported here) and binding the host sockets all-or-nothing.
//! The connections themselves are served by the gateway's stack ([`crate::gateway::stack`]).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

pub use weft_gateway::publish::{
    parse_publish_all, parse_spec, parse_unpublish, PortMapping, Protocol,
};

/// Why a host socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("host port {port}/{protocol} on {ip} is already in use; pick another host port (or -P for a free one) or stop what listens on it")]
    InUse {
        ip: Ipv4Addr,
        port: u16,
        protocol: &'static str,
    },
    #[error(
        "{ip} is not an address of this host; publish on 0.0.0.0 or one of the host's addresses"
    )]
    NotLocal { ip: Ipv4Addr },
    #[error("cannot bind {ip}:{port}/{protocol}: {source}")]
    Other {
        ip: Ipv4Addr,
        port: u16,
        protocol: &'static str,
        source: std::io::Error,
    },
}

/// Binds one host socket for `m` (port 0: the kernel picks one) and returns the mapping
/// with the real port.
pub fn bind(m: &PortMapping) -> Result<(PortMapping, PublishedSocket), BindError> {
    let addr = m.host_addr();
    let err = |source: std::io::Error| match source.raw_os_error() {
        Some(libc::EADDRINUSE) => BindError::InUse {
            ip: m.host_ip,
            port: m.host_port,
            protocol: m.protocol.as_str(),
        },
        Some(libc::EADDRNOTAVAIL) => BindError::NotLocal { ip: m.host_ip },
        _ => BindError::Other {
            ip: m.host_ip,
            port: m.host_port,
            protocol: m.protocol.as_str(),
            source,
        },
    };
    let (socket, local) = match m.protocol {
        Protocol::Tcp => {
            let l = TcpListener::bind(addr).map_err(err)?;
            let local = l.local_addr().map_err(err)?;
            (PublishedSocket::Tcp(l), local)
        }
        Protocol::Udp => {
            let u = UdpSocket::bind(addr).map_err(err)?;
            let local = u.local_addr().map_err(err)?;
            (PublishedSocket::Udp(u), local)
        }
    };
    let mut bound = *m;
    bound.host_port = local.port();
    Ok((bound, socket))
}

/// Binds every mapping or none: on the first failure the sockets bound so far are closed.
pub fn bind_all(
    mappings: &[PortMapping],
) -> Result<Vec<(PortMapping, PublishedSocket)>, BindError> {
    mappings.iter().map(bind).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: [u8; 4], host: u16, container: u16, protocol: Protocol) -> PortMapping {
        PortMapping::new(Ipv4Addr::from(ip), host, container, protocol)
    }

    #[test]
    fn binding_is_all_or_nothing_and_names_the_busy_port() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let free = m([127, 0, 0, 1], 0, 80, Protocol::Tcp);
        let clash = m([127, 0, 0, 1], busy, 81, Protocol::Tcp);
        let e = bind_all(&[free, clash]).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
        let (bound, _socket) = bind(&free).unwrap();
        assert_ne!(
            bound.host_port, 0,
            "port 0 is replaced by the kernel's pick"
        );
    }
}

/// A bound host socket of a published port, handed to the gateway's stack.
#[derive(Debug)]
pub enum PublishedSocket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl PublishedSocket {
    pub(crate) fn local(&self) -> Option<SocketAddr> {
        match self {
            PublishedSocket::Tcp(l) => l.local_addr().ok(),
            PublishedSocket::Udp(u) => u.local_addr().ok(),
        }
    }
}
