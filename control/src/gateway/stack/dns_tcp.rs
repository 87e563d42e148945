//! DNS over TCP (RFC 7766) at every gateway address, from the same zones as over UDP. The
//! framing and the one-query-at-a-time order are [`weft_gateway::dns_tcp::DnsStream`]'s;
//! this file moves bytes between it and the smoltcp sockets and asks the zones or the
//! upstreams.

use std::net::Ipv4Addr;
use std::sync::Arc;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use weft_gateway::dns_tcp::{AnswerError, DnsStream};
use weft_gateway::Timestamp;
use weft_switch::NetworkId;

use super::link::{NetworkIface, DNS_LISTENERS};
use super::{StackInput, StackThread};
use crate::gateway;
use crate::gateway::dns::{self, Outcome};

/// DNS-over-TCP connections one network's gateway keeps open at once.
const MAX_DNS_CONNS: usize = 64;
/// Of those, what one client may hold: a container opening connections and leaving them
/// idle has its further ones reset, and its neighbours still connect.
const MAX_DNS_CONNS_PER_CLIENT: usize = 8;

pub(in crate::gateway::stack) struct DnsConn {
    handle: SocketHandle,
    /// Unique per network, so that a late answer never reaches a later connection that
    /// got the same handle.
    id: u64,
    /// The client's address, which forwarded queries are charged to.
    client: Ipv4Addr,
    /// Reset at accept (the client holds its share): removed at the pass after, once
    /// smoltcp has sent the reset.
    refused: bool,
    stream: DnsStream,
}

impl DnsConn {
    /// The connection's smoltcp socket.
    pub(in crate::gateway::stack) fn handle(&self) -> SocketHandle {
        self.handle
    }
}

/// A query read from a connection.
struct Query {
    conn: SocketHandle,
    /// The connection's number.
    id: u64,
    client: Ipv4Addr,
    query: Vec<u8>,
}

/// Listeners that took a connection become connections.
fn accept_conns(net: &mut NetworkIface, now: Timestamp) {
    let mut taken = Vec::new();
    net.dns_listeners.retain(|&h| {
        let active = net.sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen;
        if active {
            taken.push(h);
        }
        !active
    });
    for handle in taken {
        let socket = net.sockets.get_mut::<tcp::Socket>(handle);
        let client = match socket.remote_endpoint().map(|e| e.addr) {
            Some(IpAddress::Ipv4(a)) => a,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let held = net.dns_conns.iter().filter(|c| c.client == client).count();
        let refused = held >= MAX_DNS_CONNS_PER_CLIENT;
        if refused {
            socket.abort();
        }
        net.next_dns_conn += 1;
        net.dns_conns.push(DnsConn {
            handle,
            id: net.next_dns_conn,
            client,
            refused,
            stream: DnsStream::new(now),
        });
    }
}

/// Sends a connection's pending answer if its socket has room for all of it.
fn transmit(conn: &mut DnsConn, socket: &mut tcp::Socket, now: Timestamp) {
    let room = socket.send_capacity() - socket.send_queue();
    if let Some(message) = conn.stream.transmit(room, now) {
        let _ = socket.send_slice(&message);
    }
}

/// One pass over a connection: send what waits, read what came, take the next query, close
/// it when done or idle. False once the connection is gone.
fn service_conn(
    conn: &mut DnsConn,
    net: &mut smoltcp::iface::SocketSet<'static>,
    now: Timestamp,
    queries: &mut Vec<Query>,
) -> bool {
    if std::mem::take(&mut conn.refused) {
        return true;
    }
    let socket = net.get_mut::<tcp::Socket>(conn.handle);
    let state = socket.state();
    if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
        // Gone (reset, or closed by both sides): no query is taken from what it left in
        // the buffer — its socket is removed now and a query would outlive it.
        net.remove(conn.handle);
        return false;
    }
    transmit(conn, socket, now);
    while socket.can_recv() && conn.stream.room() > 0 {
        let stream = &mut conn.stream;
        let _ = socket.recv(|b| (stream.receive(b, now), ()));
    }
    if let Some(query) = conn.stream.next_query() {
        queries.push(Query {
            conn: conn.handle,
            id: conn.id,
            client: conn.client,
            query,
        });
    }
    if state == tcp::State::CloseWait && !conn.stream.is_waiting() {
        socket.close();
    }
    // RFC 7766 §6.2.3: a server closes idle connections; one whose forwarded query never
    // came back (its answer lost) is closed too. The socket stays until the next pass, so
    // that smoltcp sends the reset first.
    if conn.stream.timed_out(now) {
        socket.abort();
    }
    true
}

impl StackThread {
    /// Serves DNS over TCP at every gateway address.
    pub(super) fn service_dns(&mut self) {
        let now = self.ts();
        let networks: Vec<NetworkId> = self.nets.keys().copied().collect();
        for network in networks {
            let net = self.nets.get_mut(&network).expect("listed");
            accept_conns(net, now);
            let mut queries = Vec::new();
            let sockets = &mut net.sockets;
            net.dns_conns
                .retain_mut(|conn| service_conn(conn, sockets, now, &mut queries));
            // A bounded number of DNS connections per network (each holds two 66 KiB
            // buffers): listeners are kept only while the bound leaves room, so past it new
            // connections are refused until one closes.
            while net.dns_listeners.len() < DNS_LISTENERS
                && net.dns_conns.len() + net.dns_listeners.len() < MAX_DNS_CONNS
            {
                net.add_dns_listener();
            }
            for query in queries {
                self.dns_query(network, query);
            }
        }
    }

    /// Answers a query from the zone, or forwards it upstream (over TCP).
    fn dns_query(&mut self, network: NetworkId, q: Query) {
        let Query {
            conn: handle,
            id,
            client,
            query,
        } = q;
        self.rotation = self.rotation.wrapping_add(1);
        match gateway::answer_query(&self.zones, Some(network), &query, self.rotation) {
            Outcome::Reply(answer) => self.dns_answer(network, handle, id, &answer),
            Outcome::Forward => {
                let upstreams = Arc::clone(&self.upstreams);
                let stack = self.handle.clone();
                self.runtime.spawn(async move {
                    let how = (gateway::UPSTREAM_TIMEOUT, dns::Transport::Tcp);
                    let answer = dns::forward(&query, &upstreams, how, (network, client))
                        .await
                        .or_else(|| dns::servfail(&query))
                        .unwrap_or_default();
                    stack.try_send(StackInput::DnsAnswer {
                        network,
                        conn: handle,
                        id,
                        answer,
                    });
                });
            }
            Outcome::Drop(_) => {
                // Garbage on a stream: close it (RFC 7766 §6.2.2 leaves it to us), if it is
                // still the connection that asked.
                let Some(net) = self.nets.get_mut(&network) else {
                    return;
                };
                if net
                    .dns_conns
                    .iter()
                    .any(|c| c.handle == handle && c.id == id)
                {
                    net.sockets.get_mut::<tcp::Socket>(handle).abort();
                }
            }
        }
    }

    /// The answer to connection `id`'s query: framed and sent, or kept until the send
    /// buffer has room.
    pub(super) fn dns_answer(
        &mut self,
        network: NetworkId,
        handle: SocketHandle,
        id: u64,
        answer: &[u8],
    ) {
        let now = self.ts();
        let Some(net) = self.nets.get_mut(&network) else {
            return;
        };
        // Only the connection that asked, and only while it waits for this answer.
        let Some(conn) = net
            .dns_conns
            .iter_mut()
            .find(|c| c.handle == handle && c.id == id)
        else {
            return;
        };
        let socket = net.sockets.get_mut::<tcp::Socket>(handle);
        match conn.stream.answer(answer, now) {
            Ok(()) => transmit(conn, socket, now),
            Err(AnswerError::BadLength) => socket.abort(),
            Err(AnswerError::NotWaiting) => {}
        }
    }
}
