//! A minimal hand-written rtnetlink client: create a veth pair across namespaces and delete
//! links, each request with NLM_F_ACK and the errno (plus the kernel's extended-ack message)
//! taken from the acknowledgement.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{cvt, ifname_array, interface_exists, Netns, Result, SysError};

// <linux/netlink.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// In an NLMSG_ERROR header: the echoed request was capped to its header.
const NLM_F_CAPPED: u16 = 0x100;
/// In an NLMSG_ERROR header: extended-ack TLVs follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

// <linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

/// How long to wait for the kernel's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builder of one netlink message (header + payload + attributes, all 4-byte aligned).
struct NlMsg {
    buf: Vec<u8>,
}

impl NlMsg {
    fn new(msg_type: u16, flags: u16) -> NlMsg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&msg_type.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        NlMsg { buf }
    }

    fn pad(&mut self) {
        let len = align4(self.buf.len());
        self.buf.resize(len, 0);
    }

    /// A zeroed `struct ifinfomsg` (AF_UNSPEC, ifindex 0).
    fn ifinfomsg(&mut self) {
        self.buf.extend_from_slice(&[0u8; IFINFOMSG_LEN]);
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + data.len()).expect("netlink attribute too large");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(ty, &data);
    }

    /// Opens a nested attribute; close it with [`NlMsg::nest_end`]. Like iproute2, the
    /// NLA_F_NESTED bit is not set (rtnetlink parses these attributes leniently).
    fn nest_start(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        start
    }

    fn nest_end(&mut self, start: usize) {
        self.pad();
        let len = u16::try_from(self.buf.len() - start).expect("netlink attribute too large");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// The errno and extended-ack message of a failed request.
struct NlError {
    source: io::Error,
    detail: String,
}

impl NlError {
    fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    fn into_sys(self, op: String) -> SysError {
        SysError::Netlink {
            op,
            detail: self.detail,
            source: self.source,
        }
    }
}

impl From<io::Error> for NlError {
    fn from(source: io::Error) -> NlError {
        NlError {
            source,
            detail: String::new(),
        }
    }
}

/// A NETLINK_ROUTE socket in the calling thread's network namespace.
struct RtNetlink {
    fd: OwnedFd,
}

impl RtNetlink {
    fn open() -> Result<RtNetlink> {
        // SAFETY: plain syscall without pointers.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })
        .map_err(|source| SysError::Socket {
            kind: "NETLINK_ROUTE",
            source,
        })?;
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = RtNetlink { fd };
        // Best effort: short acks and human-readable error messages (kernel >= 4.12).
        let _ = sock.setsockopt_int(SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = sock.setsockopt_int(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let tv = libc::timeval {
            tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: SO_RCVTIMEO reads a `struct timeval` of the given size from `tv`.
        cvt(unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })
        .map_err(|source| SysError::Socket {
            kind: "NETLINK_ROUTE",
            source,
        })?;
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0 = kernel assigns, no groups).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl of the given size.
        cvt(unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })
        .map_err(|source| SysError::Socket {
            kind: "NETLINK_ROUTE",
            source,
        })?;
        Ok(sock)
    }

    fn setsockopt_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: the option value is one int read from `value`.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&self, msg: NlMsg) -> std::result::Result<(), NlError> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let buf = msg.finish(seq);
        // SAFETY: an all-zero sockaddr_nl addressed to pid 0 is the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `buf` and `kernel` are valid for the given lengths during the call.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    0,
                    (&kernel as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }

        let mut rbuf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `rbuf` is a writable buffer of `rbuf.len()` bytes.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), rbuf.as_mut_ptr().cast(), rbuf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no acknowledgement from the kernel",
                        )
                        .into())
                    }
                    _ => return Err(e.into()),
                }
            }
            if let Some(result) = parse_ack(&rbuf[..n as usize], seq) {
                return result;
            }
        }
    }
}

/// Scans a datagram for the NLMSG_ERROR answering `seq`. `None` if it is not in there.
fn parse_ack(mut data: &[u8], seq: u32) -> Option<std::result::Result<(), NlError>> {
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return None;
        }
        let msg = &data[..len];
        data = &data[align4(len).min(data.len())..];
        let (ty, flags, msg_seq) = (u16_at(msg, 4), u16_at(msg, 6), u32_at(msg, 8));
        if ty != NLMSG_ERROR || msg_seq != seq || msg.len() < NLMSG_HDRLEN + 4 {
            continue;
        }
        let payload = &msg[NLMSG_HDRLEN..];
        let error = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
        if error == 0 {
            return Some(Ok(()));
        }
        // Extended-ack TLVs follow the echoed request (only its header if capped).
        let mut detail = String::new();
        if flags & NLM_F_ACK_TLVS != 0 && payload.len() >= 4 + NLMSG_HDRLEN {
            let echoed = if flags & NLM_F_CAPPED != 0 {
                NLMSG_HDRLEN
            } else {
                align4(u32_at(payload, 4) as usize)
            };
            let mut tlvs = payload.get(4 + echoed..).unwrap_or(&[]);
            while tlvs.len() >= NLA_HDRLEN {
                let alen = u16_at(tlvs, 0) as usize;
                let aty = u16_at(tlvs, 2) & NLA_TYPE_MASK;
                if alen < NLA_HDRLEN || alen > tlvs.len() {
                    break;
                }
                if aty == NLMSGERR_ATTR_MSG {
                    let text = &tlvs[NLA_HDRLEN..alen];
                    let text = text.split(|&b| b == 0).next().unwrap_or(&[]);
                    detail = String::from_utf8_lossy(text).into_owned();
                }
                tlvs = &tlvs[align4(alen).min(tlvs.len())..];
            }
        }
        return Some(Err(NlError {
            source: io::Error::from_raw_os_error(-error),
            detail,
        }));
    }
    None
}

/// Creates a veth pair: `host_ifname` in the calling thread's namespace and its peer
/// `peer_ifname` created directly inside `peer_netns` (RTM_NEWLINK with
/// NLM_F_CREATE | NLM_F_EXCL). Both ends start down. An existing name gives
/// [`SysError::InterfaceExists`] (host side) or [`SysError::PeerInterfaceExists`].
pub fn create_veth(host_ifname: &str, peer_ifname: &str, peer_netns: &Netns) -> Result<()> {
    ifname_array(host_ifname)?;
    ifname_array(peer_ifname)?;
    let ns_fd = peer_netns.file_fd();

    let mut msg = NlMsg::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    msg.ifinfomsg();
    msg.attr_str(IFLA_IFNAME, host_ifname);
    let linkinfo = msg.nest_start(IFLA_LINKINFO);
    msg.attr(IFLA_INFO_KIND, b"veth");
    let data = msg.nest_start(IFLA_INFO_DATA);
    let peer = msg.nest_start(VETH_INFO_PEER);
    msg.ifinfomsg();
    msg.attr_str(IFLA_IFNAME, peer_ifname);
    msg.attr(IFLA_NET_NS_FD, &(ns_fd as u32).to_ne_bytes());
    msg.nest_end(peer);
    msg.nest_end(data);
    msg.nest_end(linkinfo);

    let nl = RtNetlink::open()?;
    match nl.request(msg) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            if interface_exists(host_ifname) {
                Err(SysError::InterfaceExists {
                    ifname: host_ifname.to_owned(),
                })
            } else {
                Err(SysError::PeerInterfaceExists {
                    ifname: peer_ifname.to_owned(),
                    netns: peer_netns.path().to_owned(),
                })
            }
        }
        Err(e) => Err(e.into_sys(format!(
            "RTM_NEWLINK veth {host_ifname} <-> {peer_ifname} (in {})",
            peer_netns.path().display()
        ))),
    }
}

/// Deletes the link `ifname` of the calling thread's namespace (RTM_DELLINK by name; for a
/// veth this removes both ends). A missing interface is `Ok(())`.
pub fn delete_link(ifname: &str) -> Result<()> {
    ifname_array(ifname)?;
    let mut msg = NlMsg::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
    msg.ifinfomsg();
    msg.attr_str(IFLA_IFNAME, ifname);
    let nl = RtNetlink::open()?;
    match nl.request(msg) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(e.into_sys(format!("RTM_DELLINK {ifname}"))),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn message_layout() {
        let mut msg = NlMsg::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
        msg.ifinfomsg();
        msg.attr_str(IFLA_IFNAME, "abc");
        let n = msg.nest_start(IFLA_LINKINFO);
        msg.attr(IFLA_INFO_KIND, b"veth");
        msg.nest_end(n);
        let buf = msg.finish(7);
        // 16 hdr + 16 ifinfomsg + (4+4) ifname + (4 + 4+4) linkinfo
        assert_eq!(buf.len(), 52);
        assert_eq!(u32::from_ne_bytes(buf[0..4].try_into().unwrap()), 52);
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 7);
        assert_eq!(&buf[32..40], &[8, 0, 3, 0, b'a', b'b', b'c', 0]);
        assert_eq!(&buf[40..44], &[12, 0, 18, 0]);
        assert_eq!(&buf[44..52], &[8, 0, 1, 0, b'v', b'e', b't', b'h']);
    }

    #[test]
    fn ack_parsing() {
        // NLMSG_ERROR with errno 17 and an extack message, capped.
        let mut m = Vec::new();
        let text = b"File exists\0";
        let attr_len = 4 + text.len();
        let total = 16 + 4 + 16 + align4(attr_len);
        m.extend_from_slice(&(total as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        m.extend_from_slice(&9u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-17i32).to_ne_bytes());
        m.extend_from_slice(&[0u8; 16]);
        m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        m.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        m.extend_from_slice(text);
        m.resize(total, 0);
        assert!(parse_ack(&m, 8).is_none());
        let e = parse_ack(&m, 9).unwrap().unwrap_err();
        assert_eq!(e.errno(), Some(17));
        assert_eq!(e.detail, "File exists");
    }
}
