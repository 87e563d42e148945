//! Forwarding DNS queries the gateway does not answer itself to the host's upstream
//! resolvers, over UDP or TCP (tokio). The zones and answers are `weft_gateway::dns`'s
//! (re-exported here).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use weft_switch::NetworkId;

use tokio::net::UdpSocket;

pub use weft_gateway::dns::*;

/// How a query reached the gateway, and so how it goes upstream: a client that asked over
/// TCP (typically after a truncated UDP answer) must get the whole answer, which only TCP
/// carries when it is large (RFC 7766 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Queries waiting on upstreams at once, over UDP and TCP together; past that a client
/// hears SERVFAIL at once instead of the daemon piling up sockets and tasks.
pub const MAX_FORWARDS_IN_FLIGHT: usize = 256;
/// Of those, what one network's clients may have waiting.
pub const MAX_FORWARDS_PER_NETWORK: usize = 128;
/// Of those, what one client may have waiting: a container asking for names no upstream
/// answers fills its own share, not its neighbours'.
pub const MAX_FORWARDS_PER_CLIENT: usize = 32;

/// Who a forwarded query is charged to: the network and the client's address (the port's
/// own address: port security lets an endpoint send from no other).
pub type DnsClient = (NetworkId, Ipv4Addr);

/// The forwards waiting on upstreams: in all, per network, per client.
#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    per_network: BTreeMap<NetworkId, usize>,
    per_client: BTreeMap<DnsClient, usize>,
}

impl InFlight {
    const fn new() -> InFlight {
        InFlight {
            total: 0,
            per_network: BTreeMap::new(),
            per_client: BTreeMap::new(),
        }
    }

    /// Takes a place for `client`'s forward, if every share has room.
    fn take(&mut self, client: DnsClient) -> bool {
        let network = self.per_network.get(&client.0).copied().unwrap_or(0);
        let own = self.per_client.get(&client).copied().unwrap_or(0);
        if self.total >= MAX_FORWARDS_IN_FLIGHT
            || network >= MAX_FORWARDS_PER_NETWORK
            || own >= MAX_FORWARDS_PER_CLIENT
        {
            return false;
        }
        self.total += 1;
        *self.per_network.entry(client.0).or_default() += 1;
        *self.per_client.entry(client).or_default() += 1;
        true
    }

    /// Gives back a place [`InFlight::take`] gave; an empty share is forgotten.
    fn give(&mut self, client: DnsClient) {
        fn release<K: Ord>(map: &mut BTreeMap<K, usize>, key: &K) {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        if !self.per_client.contains_key(&client) {
            return;
        }
        self.total = self.total.saturating_sub(1);
        release(&mut self.per_network, &client.0);
        release(&mut self.per_client, &client);
    }
}

static IN_FLIGHT: Mutex<InFlight> = Mutex::new(InFlight::new());

/// A place among the forwards in flight, given back when dropped (the forward finished,
/// however it ended).
struct Permit(DnsClient);

impl Permit {
    fn take(client: DnsClient) -> Option<Permit> {
        let mut flights = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        // `then`, not `then_some`: a Permit built and dropped here would lock again.
        flights.take(client).then(|| Permit(client))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut flights = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        flights.give(self.0);
    }
}

/// Forwards `query` to the upstreams in order (over `transport`: UDP from an ephemeral socket
/// bound to an unspecified address of the matching family, or a TCP connection per query,
/// falling back to UDP for an upstream that does not take TCP; `timeout` per upstream and
/// transport, accepting only a response whose ID matches, over UDP only from that upstream's
/// address) and returns the upstream's response bytes unchanged. If every upstream fails or
/// times out, or the forwards in flight fill `client`'s share (its own, its network's or
/// [`MAX_FORWARDS_IN_FLIGHT`]), returns [`servfail`] of the query (or None if even that is
/// impossible). Never panics.
pub async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    (timeout, transport): (Duration, Transport),
    client: DnsClient,
) -> Option<Vec<u8>> {
    let Some(_permit) = Permit::take(client) else {
        log::debug!(
            "dns: {} on network {} holds its share of queries waiting on upstreams",
            client.1,
            client.0
        );
        return servfail(query);
    };
    if query.len() >= HEADER_LEN {
        for &upstream in upstreams {
            if transport == Transport::Tcp {
                match tokio::time::timeout(timeout, exchange_tcp(query, upstream)).await {
                    Ok(Ok(response)) => return Some(response),
                    // A resolver without TCP (or a firewall in the way): ask it over UDP;
                    // a truncated answer is still better than none.
                    Ok(Err(e)) => log::debug!("dns: upstream {upstream} over TCP: {e}"),
                    Err(_) => log::debug!(
                        "dns: upstream {upstream} over TCP: no answer within {timeout:?}"
                    ),
                }
            }
            match tokio::time::timeout(timeout, exchange(query, upstream)).await {
                Ok(Ok(response)) => return Some(response),
                Ok(Err(e)) => log::debug!("dns: upstream {upstream}: {e}"),
                Err(_) => log::debug!("dns: upstream {upstream}: no answer within {timeout:?}"),
            }
        }
    }
    servfail(query)
}

/// One query/response exchange with one upstream over TCP: each message preceded by its
/// length as two octets (RFC 1035 §4.2.2, RFC 7766 §8). A response with another ID is an
/// error (the connection carries only this query).
async fn exchange_tcp(query: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query longer than 65535"))?;
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let mut message = Vec::with_capacity(2 + query.len());
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(query);
    stream.write_all(&message).await?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut response).await?;
    if response.len() < HEADER_LEN || response[..2] != query[..2] || response[2] & 0x80 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the upstream's TCP answer is not a response to the query",
        ));
    }
    Ok(response)
}

/// One query/response exchange with one upstream (RFC 1035 §4.2.1). The socket is connected, so
/// the kernel only delivers datagrams from `upstream` and reports ICMP port unreachable as an
/// error; datagrams with another ID (or that are no response) are ignored, as RFC 5452 §9.1 asks.
async fn exchange(query: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let local = match upstream {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await?;
        let response = &buf[..n];
        if n >= HEADER_LEN && response[..2] == query[..2] && response[2] & 0x80 != 0 {
            buf.truncate(n);
            return Ok(buf);
        }
        log::debug!("dns: upstream {upstream}: ignoring unrelated datagram of {n} bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: DnsClient = (NetworkId(1), Ipv4Addr::new(10, 0, 0, 2));
    use simple_dns::rdata::{RData, A};
    use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, RCODE, TYPE};
    use std::net::Ipv4Addr;

    fn query_bytes(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(id);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    /// A fake upstream on 127.0.0.1 that answers each query with `respond(query)` (a list of
    /// datagrams to send back, in order).
    async fn fake_upstream(respond: fn(&[u8]) -> Vec<Vec<u8>>) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                for d in respond(&buf[..n]) {
                    let _ = sock.send_to(&d, peer).await;
                }
            }
        });
        addr
    }

    /// An upstream answer to `query`: 93.184.216.34 for its name.
    fn upstream_answer(query: &[u8]) -> Vec<u8> {
        let q = Packet::parse(query).unwrap();
        let mut p = Packet::new_reply(q.id());
        p.set_flags(PacketFlag::RECURSION_AVAILABLE | PacketFlag::RECURSION_DESIRED);
        let name = q.questions[0].qname.clone();
        p.questions.push(q.questions[0].clone());
        p.answers.push(ResourceRecord::new(
            name,
            CLASS::IN,
            30,
            RData::A(A::from(Ipv4Addr::new(93, 184, 216, 34))),
        ));
        p.build_bytes_vec_compressed().unwrap()
    }

    const T: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn forward_returns_upstream_bytes() {
        let up = fake_upstream(|q| vec![upstream_answer(q)]).await;
        let q = query_bytes(0x7777, "example.com", TYPE::A);
        let r = forward(&q, &[up], (T, Transport::Udp), CLIENT)
            .await
            .unwrap();
        assert_eq!(r, upstream_answer(&q));
    }

    #[tokio::test]
    async fn forward_silent_upstream_servfails() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let q = query_bytes(0x7778, "example.com", TYPE::A);
        let start = std::time::Instant::now();
        let r = forward(
            &q,
            &[silent.local_addr().unwrap()],
            (T, Transport::Udp),
            CLIENT,
        )
        .await;
        assert!(start.elapsed() < Duration::from_millis(600));
        assert_eq!(r, servfail(&q));
        assert_eq!(
            Packet::parse(&r.unwrap()).unwrap().rcode(),
            RCODE::ServerFailure
        );
        // No upstreams at all.
        assert_eq!(
            forward(&q, &[], (T, Transport::Udp), CLIENT).await,
            servfail(&q)
        );
        // A query we cannot even SERVFAIL.
        assert_eq!(
            forward(&[1, 2, 3], &[], (T, Transport::Udp), CLIENT).await,
            None
        );
    }

    #[tokio::test]
    async fn forward_ignores_wrong_id() {
        let up = fake_upstream(|q| {
            let good = upstream_answer(q);
            let mut wrong = good.clone();
            wrong[0] ^= 0xFF;
            let mut not_a_response = q.to_vec(); // right id but QR=0
            not_a_response.truncate(HEADER_LEN);
            vec![wrong, vec![1, 2, 3], not_a_response, good]
        })
        .await;
        let q = query_bytes(0x7779, "example.com", TYPE::A);
        assert_eq!(
            forward(&q, &[up], (T, Transport::Udp), CLIENT)
                .await
                .unwrap(),
            upstream_answer(&q)
        );
    }

    #[tokio::test]
    async fn forward_falls_through_to_next_upstream() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // A closed port: the connected socket gets ECONNREFUSED right away.
        let closed = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let up = fake_upstream(|q| vec![upstream_answer(q)]).await;
        let q = query_bytes(0x777A, "example.com", TYPE::A);
        let start = std::time::Instant::now();
        let r = forward(
            &q,
            &[closed, silent.local_addr().unwrap(), up],
            (T, Transport::Udp),
            CLIENT,
        )
        .await
        .unwrap();
        assert_eq!(r, upstream_answer(&q));
        assert!(start.elapsed() < Duration::from_millis(600));
    }

    /// A fake TCP upstream on 127.0.0.1: reads one length-prefixed query per connection and
    /// answers with `respond(query)`, length-prefixed (RFC 1035 §4.2.2).
    async fn fake_tcp_upstream(respond: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).await.is_err() {
                    continue;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut query).await.is_err() {
                    continue;
                }
                let answer = respond(&query);
                let mut out = (answer.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&answer);
                let _ = conn.write_all(&out).await;
            }
        });
        addr
    }

    /// An answer too large for any UDP datagram without EDNS: 300 addresses for the name.
    fn large_answer(query: &[u8]) -> Vec<u8> {
        let q = Packet::parse(query).unwrap();
        let mut p = Packet::new_reply(q.id());
        let name = q.questions[0].qname.clone();
        p.questions.push(q.questions[0].clone());
        for i in 0..300u32 {
            p.answers.push(ResourceRecord::new(
                name.clone(),
                CLASS::IN,
                30,
                RData::A(A::from(Ipv4Addr::from(0x0a00_0000 + i))),
            ));
        }
        p.build_bytes_vec_compressed().unwrap()
    }

    #[tokio::test]
    async fn tcp_queries_go_upstream_over_tcp_whole() {
        let up = fake_tcp_upstream(large_answer).await;
        let q = query_bytes(0x777B, "many.example.com", TYPE::A);
        let r = forward(&q, &[up], (T, Transport::Tcp), CLIENT)
            .await
            .unwrap();
        assert!(r.len() > 4096, "the whole answer: {} bytes", r.len());
        assert_eq!(r, large_answer(&q));
        // Over UDP the same address has no listener: the answer is SERVFAIL.
        let r = forward(&q, &[up], (T, Transport::Udp), CLIENT)
            .await
            .unwrap();
        assert_eq!(r, servfail(&q).unwrap());
    }

    #[tokio::test]
    async fn a_tcp_query_falls_back_to_udp_for_an_upstream_without_tcp() {
        // A UDP-only upstream: the TCP connection is refused, the UDP answer comes back.
        let up = fake_upstream(|q| vec![upstream_answer(q)]).await;
        let q = query_bytes(0x777D, "example.com", TYPE::A);
        let r = forward(&q, &[up], (T, Transport::Tcp), CLIENT)
            .await
            .unwrap();
        assert_eq!(r, upstream_answer(&q));
    }

    #[tokio::test]
    async fn a_tcp_answer_with_another_id_is_not_taken() {
        let up = fake_tcp_upstream(|q| {
            let mut a = upstream_answer(q);
            a[0] ^= 0xff;
            a
        })
        .await;
        let q = query_bytes(0x777C, "example.com", TYPE::A);
        let r = forward(&q, &[up], (T, Transport::Tcp), CLIENT)
            .await
            .unwrap();
        assert_eq!(r, servfail(&q).unwrap());
    }

    #[test]
    fn one_client_fills_its_own_share_of_forwards_and_its_neighbours_still_forward() {
        let mut f = InFlight::new();
        let client = |net, last| (NetworkId(net), Ipv4Addr::new(10, 0, 0, last));
        for _ in 0..MAX_FORWARDS_PER_CLIENT {
            assert!(f.take(client(1, 2)));
        }
        assert!(!f.take(client(1, 2)), "a client past its share");
        assert!(f.take(client(1, 3)), "its neighbour");
        // Every client of network 1 together: the network's share.
        let mut last = 4;
        while f.take(client(1, last)) {
            last += 1;
        }
        assert_eq!(f.per_network[&NetworkId(1)], MAX_FORWARDS_PER_NETWORK);
        assert!(f.take(client(2, 2)), "a client of another network");
        f.give(client(1, 2));
        assert!(f.take(client(1, 2)), "a place given back is taken again");
        for _ in 0..MAX_FORWARDS_PER_CLIENT {
            f.give(client(1, 2));
        }
        assert!(
            !f.per_client.contains_key(&client(1, 2)),
            "an empty share is forgotten"
        );
        f.give(client(9, 9)); // a place never taken: nothing changes
        assert_eq!(
            f.total,
            MAX_FORWARDS_PER_NETWORK + 1 - MAX_FORWARDS_PER_CLIENT
        );
    }

    #[test]
    fn permits_past_a_share_are_refused_and_given_back_when_dropped() {
        let client = (NetworkId(77), Ipv4Addr::new(10, 0, 0, 2));
        let held: Vec<Permit> = (0..MAX_FORWARDS_PER_CLIENT)
            .map(|_| Permit::take(client).expect("within the share"))
            .collect();
        assert!(Permit::take(client).is_none());
        drop(held);
        assert!(Permit::take(client).is_some());
    }
}
