//! ICMP echo to outside addresses through one raw ICMP socket (the daemon is root;
//! `ping_group_range` is closed here, so no ICMP datagram sockets). The identifier
//! rewriting and the flows are [`weft_gateway::echo::EchoNat`]'s.

use std::io::Read;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;

use weft_gateway::reach::nat_may_reach;
use weft_gateway::Timestamp;
use weft_switch::{
    write_icmp_from, DropReason, EchoViaGateway, GatewayConfig, MacAddr, NetworkId, PortId,
    ETHERNET_HEADER_LEN, ICMP_NET_UNREACHABLE,
};

use super::{token, unreachable_code, StackThread, TAG_ICMP};
use weft_sys::Epoll;

/// Where an echo flow's replies go.
#[derive(Debug, Clone, Copy)]
pub(super) struct EchoBack {
    port: PortId,
    container_mac: MacAddr,
    gateway_mac: MacAddr,
}

/// The raw ICMP socket, watched by `epoll`; None (echo through the gateway off) if it
/// cannot be opened.
pub(super) fn open_icmp_socket(
    epoll: &Epoll,
) -> Result<Option<socket2::Socket>, weft_sys::SysError> {
    let opened = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::ICMPV4),
    )
    .and_then(|s| s.set_nonblocking(true).map(|()| s));
    match opened {
        Ok(socket) => {
            epoll.add(socket.as_fd(), token(TAG_ICMP, 0))?;
            Ok(Some(socket))
        }
        Err(e) => {
            log::warn!("ICMP echo through the gateway is off: cannot open a raw ICMP socket: {e}");
            Ok(None)
        }
    }
}

impl StackThread {
    /// A container's echo request to an outside address: out through the raw socket with
    /// the flow's wire identifier.
    pub(super) fn outbound_echo(
        &mut self,
        network: NetworkId,
        port: PortId,
        gateway: GatewayConfig,
        echo: &EchoViaGateway,
        frame: &[u8],
    ) {
        if !crate::gateway::nat_allowed(&self.zones, network, echo.dst_ip) {
            self.record_drop(port, DropReason::GatewayUnsupported);
            return self.unreachable(
                network,
                port,
                &frame[ETHERNET_HEADER_LEN..],
                ICMP_NET_UNREACHABLE,
            );
        }
        if !nat_may_reach(echo.dst_ip) {
            return self.nat_refused(network, port, &frame[ETHERNET_HEADER_LEN..]);
        }
        let Some(socket) = self.icmp.as_ref() else {
            return self.record_drop(port, DropReason::GatewayUnsupported);
        };
        let mut message = frame[echo.icmp.clone()].to_vec();
        let back = || EchoBack {
            port,
            container_mac: echo.src_mac,
            gateway_mac: gateway.mac,
        };
        let now = self.ts();
        let addresses = (echo.src_ip, echo.dst_ip);
        let Ok(wire) = self
            .echo
            .outbound(network, addresses, &mut message, back, now)
        else {
            return self.record_drop(port, DropReason::GatewayBusy);
        };
        let to = SocketAddr::V4(SocketAddrV4::new(echo.dst_ip, 0));
        match socket.send_to(&message, &to.into()) {
            Ok(_) => self.echo.sent(wire, message.len(), now),
            Err(e) => {
                log::debug!("echo to {} not sent: {e}", echo.dst_ip);
                self.unreachable(
                    network,
                    port,
                    &frame[ETHERNET_HEADER_LEN..],
                    unreachable_code(&e),
                );
            }
        }
    }

    /// Echo replies from the outside: back to the container with its own identifier.
    pub(super) fn on_icmp(&mut self) {
        let Some(socket) = self.icmp.as_ref() else {
            return;
        };
        for _ in 0..64 {
            let n = match (&*socket).read(&mut self.buf) {
                Ok(n) => n,
                Err(_) => break,
            };
            let now = Timestamp::from_millis(
                u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX),
            );
            let Some((flow, icmp)) = self.echo.inbound(&mut self.buf[..n], now) else {
                continue;
            };
            let (back, key) = (flow.back, flow.key);
            if let Some(len) = write_icmp_from(
                back.gateway_mac,
                key.outside,
                (back.container_mac, key.container),
                &self.buf[icmp],
                &mut self.frame,
            ) {
                self.dataplane.inject(back.port, &self.frame[..len]);
            }
        }
    }
}
