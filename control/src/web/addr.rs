//! `--web`'s argument: which address the web view listens on (loopback unless an address is
//! given), and binding it before anything else starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why `--web` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebAddrError {
    #[error("invalid --web {0:?}: expected PORT, :PORT or ADDR:PORT, like 8080 (loopback) or 127.0.0.1:8080 ([::1]:8080 for IPv6)")]
    Syntax(String),
    #[error("invalid --web {0:?}: the port must be 1..65535")]
    Port(String),
    #[error("cannot listen on {addr} for --web: {source}; another program (or weft daemon) may be using the port: pass another one")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Parses `--web`: `PORT` or `:PORT` means loopback (127.0.0.1); any other address must
/// be written out.
pub fn parse_listen(s: &str) -> Result<SocketAddr, WebAddrError> {
    let t = s.trim();
    let port_only = t.strip_prefix(':').unwrap_or(t);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| WebAddrError::Port(s.into()))?;
        return checked((IpAddr::V4(Ipv4Addr::LOCALHOST), port).into(), s);
    }
    let addr: SocketAddr = t.parse().map_err(|_| {
        // "127.0.0.1:99999" parses as nothing: say the port is the problem.
        match t.rsplit_once(':') {
            Some((a, p))
                if a.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && !p.is_empty() =>
            {
                WebAddrError::Port(s.into())
            }
            _ => WebAddrError::Syntax(s.into()),
        }
    })?;
    checked(addr, s)
}

fn checked(addr: SocketAddr, s: &str) -> Result<SocketAddr, WebAddrError> {
    if addr.port() == 0 {
        return Err(WebAddrError::Port(s.into()));
    }
    Ok(addr)
}

/// Binds the web view's listener (before the daemon starts, so that a taken port leaves
/// nothing half-started).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, WebAddrError> {
    let bind_err = |source| WebAddrError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_means_loopback() {
        assert_eq!(
            parse_listen("8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen(":9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
    }

    #[test]
    fn an_address_is_taken_only_as_written() {
        assert_eq!(
            parse_listen("0.0.0.0:8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:8080").unwrap(),
            "[::1]:8080".parse().unwrap()
        );
    }

    #[test]
    fn bad_values_name_the_problem() {
        for bad in ["", "web", "localhost:8080", "1.2.3:80", "127.0.0.1"] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.contains("expected PORT"), "{bad}: {e}");
        }
        for bad in ["0", "65536", ":0", "127.0.0.1:99999", "127.0.0.1:0"] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.contains("port must be 1..65535"), "{bad}: {e}");
        }
    }
}
