//! `weft capture PORT --outer`: the UDP socket hands over only a VXLAN datagram's payload,
//! so the outer Ethernet, IPv4 and UDP headers a capture shows are written around it here
//! (addresses and ports as on the underlay, zero MACs, UDP checksum 0 as RFC 7348 allows).

use std::net::SocketAddrV4;

const ETH: usize = 14;
const IP: usize = 20;
const UDP: usize = 8;

/// An Ethernet/IPv4/UDP frame from `from` to `to` carrying `payload`.
pub fn frame(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let ip_len = (IP + UDP + payload.len()).min(usize::from(u16::MAX));
    let mut f = vec![0u8; ETH + IP + UDP];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[ETH..ETH + IP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&from.ip().octets());
    ip[16..20].copy_from_slice(&to.ip().octets());
    let sum = weft_wire::checksum::fold(weft_wire::checksum::ones_sum(ip, 0));
    ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
    let udp = &mut f[ETH + IP..];
    udp[0..2].copy_from_slice(&from.port().to_be_bytes());
    udp[2..4].copy_from_slice(&to.port().to_be_bytes());
    udp[4..6].copy_from_slice(&((ip_len - IP) as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, UdpPacket};

    #[test]
    fn the_outer_headers_parse_and_the_ip_checksum_holds() {
        let from: SocketAddrV4 = "10.140.0.1:50000".parse().unwrap();
        let to: SocketAddrV4 = "10.140.0.2:4789".parse().unwrap();
        let f = frame(from, to, &[7u8; 58]);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), *from.ip());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (udp.src_port(), udp.dst_port(), udp.len()),
            (50000, 4789, 66)
        );
        assert_eq!(udp.payload(), &[7u8; 58]);
    }
}
