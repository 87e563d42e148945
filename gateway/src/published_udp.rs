//! Published UDP ports: every host client of a published port gets its own gateway source
//! port towards the container, so that the container's answers (sent to that port) find
//! their client. Ports come from the ephemeral range (RFC 6335 §6), are reused once a
//! client has been idle for the idle time, and a full range refuses a new client rather
//! than hand out a live client's port.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use weft_switch::Timestamp;

/// First port the gateway uses as its own source port (IANA dynamic range, RFC 6335 §6).
pub const EPHEMERAL_FIRST: u16 = 49152;

/// One host client of a published UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpClient {
    /// The published port (the runtime's index of it).
    pub published: usize,
    pub client: SocketAddr,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    client: UdpClient,
    last_active: Timestamp,
}

/// The gateway source ports of one network's published UDP clients, and the ports handed to
/// inbound TCP connections from the same range.
#[derive(Debug)]
pub struct UdpClients {
    by_port: HashMap<u16, Entry>,
    by_client: HashMap<UdpClient, u16>,
    /// The ports of the range no client holds, in the order they are handed out: taking
    /// one is O(1) however full the range is (a flood of new clients costs no scan).
    free: VecDeque<u16>,
    idle: Duration,
}

impl UdpClients {
    /// Ports from `first..=last`; clients idle for `idle` are forgotten.
    pub fn new(first: u16, last: u16, idle: Duration) -> UdpClients {
        UdpClients {
            by_port: HashMap::new(),
            by_client: HashMap::new(),
            free: (first..=last.max(first)).collect(),
            idle,
        }
    }

    pub fn len(&self) -> usize {
        self.by_port.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_port.is_empty()
    }

    /// The next port of the range no UDP client holds (also used as the gateway's port of
    /// inbound TCP connections); None when every port is held.
    pub fn free_port(&mut self) -> Option<u16> {
        let port = self.free.pop_front()?;
        self.free.push_back(port);
        Some(port)
    }

    /// The gateway port of a datagram from `client` to published port `published`: the
    /// client's port, or a new one. None when the range is exhausted.
    pub fn port_for(
        &mut self,
        published: usize,
        client: SocketAddr,
        now: Timestamp,
    ) -> Option<u16> {
        let key = UdpClient { published, client };
        let port = match self.by_client.get(&key) {
            Some(&port) => port,
            None => {
                let port = self.free.pop_front()?;
                self.by_client.insert(key, port);
                port
            }
        };
        self.by_port.insert(
            port,
            Entry {
                client: key,
                last_active: now,
            },
        );
        Some(port)
    }

    /// The client a container's answer to gateway port `port` is for (keeps it alive).
    pub fn client_for(&mut self, port: u16, now: Timestamp) -> Option<UdpClient> {
        let entry = self.by_port.get_mut(&port)?;
        entry.last_active = now;
        Some(entry.client)
    }

    /// The client holding gateway port `port`, without counting it as activity.
    pub fn holder(&self, port: u16) -> Option<UdpClient> {
        self.by_port.get(&port).map(|e| e.client)
    }

    /// Forgets the clients idle for the idle time; their ports are free again.
    pub fn expire(&mut self, now: Timestamp) {
        let idle = self.idle;
        self.retain(|e| now.saturating_duration_since(e.last_active) < idle);
    }

    /// Forgets the clients of a published port that was withdrawn.
    pub fn forget_published(&mut self, published: usize) {
        self.retain(|e| e.client.published != published);
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        let free = &mut self.free;
        self.by_port.retain(|&port, e| {
            let kept = keep(e);
            if !kept {
                free.push_back(port);
            }
            kept
        });
        let by_port = &self.by_port;
        self.by_client.retain(|_, port| by_port.contains_key(port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    fn client(n: u16) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, 1], 40_000 + n))
    }

    #[test]
    fn two_clients_get_different_ports_and_replies_find_their_client() {
        let mut c = UdpClients::new(EPHEMERAL_FIRST, u16::MAX, Duration::from_secs(60));
        let a = c.port_for(0, client(1), at(0)).unwrap();
        let b = c.port_for(0, client(2), at(0)).unwrap();
        assert_ne!(a, b);
        assert!(a >= EPHEMERAL_FIRST && b >= EPHEMERAL_FIRST);
        assert_eq!(
            c.port_for(0, client(1), at(1)),
            Some(a),
            "a client keeps its port"
        );
        // The same client of another published port is another client.
        let other = c.port_for(1, client(1), at(1)).unwrap();
        assert!(other != a && other != b);
        let want = |n| UdpClient {
            published: 0,
            client: client(n),
        };
        assert_eq!(c.client_for(b, at(2)), Some(want(2)));
        assert_eq!(c.client_for(a, at(2)), Some(want(1)));
        assert_eq!(c.client_for(EPHEMERAL_FIRST + 100, at(2)), None);
        c.forget_published(1);
        assert_eq!(c.client_for(other, at(2)), None);
    }

    #[test]
    fn expiry_frees_the_port_and_exhaustion_refuses() {
        let mut c = UdpClients::new(60_000, 60_001, Duration::from_secs(60));
        let a = c.port_for(0, client(1), at(0)).unwrap();
        let b = c.port_for(0, client(2), at(30)).unwrap();
        assert_eq!(c.free_port(), None);
        // A third client while both are live: refused, not given a live client's port.
        assert_eq!(c.port_for(0, client(3), at(59)), None);
        assert_eq!(c.client_for(a, at(59)).unwrap().client, client(1));
        assert_eq!(c.client_for(b, at(59)).unwrap().client, client(2));
        c.expire(at(118));
        assert_eq!(c.len(), 2, "a reply at 59 s keeps a client alive");
        c.client_for(a, at(100));
        c.expire(at(119));
        assert_eq!(c.client_for(b, at(119)), None, "b idle for 60 s is gone");
        let third = c.port_for(0, client(3), at(119)).unwrap();
        assert_eq!(third, b, "its port is reused");
        assert_eq!(c.client_for(third, at(119)).unwrap().client, client(3));
        assert_eq!(c.client_for(a, at(119)).unwrap().client, client(1));
    }

    #[test]
    fn a_full_range_costs_no_scan_and_freed_ports_come_back() {
        let mut c = UdpClients::new(EPHEMERAL_FIRST, u16::MAX, Duration::from_secs(60));
        let range = usize::from(u16::MAX - EPHEMERAL_FIRST) + 1;
        for n in 0..range {
            assert!(c.port_for(n, client(1), at(0)).is_some(), "client {n}");
        }
        assert_eq!(c.len(), range);
        // Full: a new client is refused at once (the free list is empty, nothing scanned).
        assert_eq!(c.port_for(range, client(1), at(1)), None);
        assert_eq!(c.free_port(), None);
        c.forget_published(7);
        assert_eq!(
            c.port_for(range, client(1), at(1)).map(|_| c.len()),
            Some(range)
        );
    }
}
