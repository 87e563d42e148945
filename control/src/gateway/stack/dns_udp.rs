//! DNS over UDP at every gateway address (RFC 1035 §4.2.1): names of the network answered
//! from its zone in the stack thread, others forwarded to the upstream resolvers on the tokio
//! runtime, their answers coming back to the thread as [`StackInput::DnsUdpAnswer`].

use std::sync::Arc;

use weft_gateway::dns::{self as zone_dns, Outcome};
use weft_switch::{
    write_udp_from_gateway, DropReason, GatewayConfig, MacAddr, NetworkId, PortId, UdpToGateway,
    DNS_PORT,
};

use super::{StackInput, StackThread};
use crate::gateway::{self, dns};

/// IPv4 and UDP headers around a DNS message.
const IPV4_UDP_HEADERS: usize = 20 + 8;

/// Where a DNS answer over UDP goes: the client's port, MAC, address and UDP port, and the
/// gateway it asked.
#[derive(Debug, Clone, Copy)]
pub struct DnsClient {
    pub port: PortId,
    pub gateway: GatewayConfig,
    pub mac: MacAddr,
    pub ip: std::net::Ipv4Addr,
    pub udp_port: u16,
}

impl StackThread {
    /// A query to the gateway's port 53: answered from the zone, or forwarded upstream.
    pub(super) fn dns_udp(
        &mut self,
        network: NetworkId,
        port: PortId,
        gateway: GatewayConfig,
        d: &UdpToGateway,
        query: &[u8],
    ) {
        let client = DnsClient {
            port,
            gateway,
            mac: d.src_mac,
            ip: d.src_ip,
            udp_port: d.src_port,
        };
        self.rotation = self.rotation.wrapping_add(1);
        match gateway::answer_query(&self.zones, Some(network), query, self.rotation) {
            Outcome::Reply(answer) => self.send_dns_udp(&client, &answer),
            Outcome::Forward => {
                let upstreams = Arc::clone(&self.upstreams);
                let stack = self.handle.clone();
                let query = query.to_vec();
                self.runtime.spawn(async move {
                    let how = (gateway::UPSTREAM_TIMEOUT, dns::Transport::Udp);
                    let charged = (network, client.ip);
                    if let Some(answer) = dns::forward(&query, &upstreams, how, charged).await {
                        stack.try_send(StackInput::DnsUdpAnswer {
                            client,
                            query,
                            answer,
                        });
                    }
                });
            }
            Outcome::Drop(_) => self.record_drop(port, DropReason::Malformed),
        }
    }

    /// A forwarded query's answer. One larger than the client's link (EDNS lets upstreams
    /// send up to 4 KiB) is replaced by a truncated one: the client knows to ask again over
    /// TCP rather than wait for a frame that cannot pass (RFC 1035 §4.2.1, TC).
    pub(super) fn dns_udp_answer(&mut self, client: &DnsClient, query: &[u8], answer: &[u8]) {
        let mtu = self.dataplane.with_bridge(|b| {
            b.port_network(client.port)
                .and_then(|n| b.network_config(n))
                .map_or(1500, |c| usize::from(c.mtu))
        });
        if answer.len() + IPV4_UDP_HEADERS > mtu {
            if let Some(short) = zone_dns::truncated(query, answer) {
                self.send_dns_udp(client, &short);
            }
        } else {
            self.send_dns_udp(client, answer);
        }
    }

    /// Sends `answer` from the gateway's port 53 back to the client that asked.
    fn send_dns_udp(&mut self, client: &DnsClient, answer: &[u8]) {
        let to = (client.mac, client.ip, client.udp_port);
        match write_udp_from_gateway(&client.gateway, DNS_PORT, to, answer, &mut self.frame) {
            Some(len) => {
                self.dataplane.inject(client.port, &self.frame[..len]);
            }
            None => self.record_drop(client.port, DropReason::Oversized),
        }
    }
}
