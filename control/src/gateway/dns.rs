//! Forwarding DNS queries the gateway does not answer itself to the host's upstream
//! resolvers, over UDP or TCP (tokio). The zones and answers are `weft_gateway::dns`'s
//! (re-exported here).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

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
static IN_FLIGHT: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_FORWARDS_IN_FLIGHT);

/// Forwards `query` to the upstreams in order (over `transport`: UDP from an ephemeral socket
/// bound to an unspecified address of the matching family, or a TCP connection per query,
/// falling back to UDP for an upstream that does not take TCP; `timeout` per upstream and
/// transport, accepting only a response whose ID matches, over UDP only from that upstream's
/// address) and returns the upstream's response bytes unchanged. If every upstream fails or
/// times out, or [`MAX_FORWARDS_IN_FLIGHT`] queries are already out, returns [`servfail`]
/// of the query (or None if even that is impossible). Never panics.
pub async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    timeout: Duration,
    transport: Transport,
) -> Option<Vec<u8>> {
    let Ok(_permit) = IN_FLIGHT.try_acquire() else {
        log::debug!("dns: {MAX_FORWARDS_IN_FLIGHT} queries already wait on upstreams");
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
        let r = forward(&q, &[up], T, Transport::Udp).await.unwrap();
        assert_eq!(r, upstream_answer(&q));
    }

    #[tokio::test]
    async fn forward_silent_upstream_servfails() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let q = query_bytes(0x7778, "example.com", TYPE::A);
        let start = std::time::Instant::now();
        let r = forward(&q, &[silent.local_addr().unwrap()], T, Transport::Udp).await;
        assert!(start.elapsed() < Duration::from_millis(600));
        assert_eq!(r, servfail(&q));
        assert_eq!(
            Packet::parse(&r.unwrap()).unwrap().rcode(),
            RCODE::ServerFailure
        );
        // No upstreams at all.
        assert_eq!(forward(&q, &[], T, Transport::Udp).await, servfail(&q));
        // A query we cannot even SERVFAIL.
        assert_eq!(forward(&[1, 2, 3], &[], T, Transport::Udp).await, None);
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
            forward(&q, &[up], T, Transport::Udp).await.unwrap(),
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
            T,
            Transport::Udp,
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
        let r = forward(&q, &[up], T, Transport::Tcp).await.unwrap();
        assert!(r.len() > 4096, "the whole answer: {} bytes", r.len());
        assert_eq!(r, large_answer(&q));
        // Over UDP the same address has no listener: the answer is SERVFAIL.
        let r = forward(&q, &[up], T, Transport::Udp).await.unwrap();
        assert_eq!(r, servfail(&q).unwrap());
    }

    #[tokio::test]
    async fn a_tcp_query_falls_back_to_udp_for_an_upstream_without_tcp() {
        // A UDP-only upstream: the TCP connection is refused, the UDP answer comes back.
        let up = fake_upstream(|q| vec![upstream_answer(q)]).await;
        let q = query_bytes(0x777D, "example.com", TYPE::A);
        let r = forward(&q, &[up], T, Transport::Tcp).await.unwrap();
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
        let r = forward(&q, &[up], T, Transport::Tcp).await.unwrap();
        assert_eq!(r, servfail(&q).unwrap());
    }
}
