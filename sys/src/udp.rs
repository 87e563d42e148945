//! UDP segmentation offload (UDP_SEGMENT, Linux 4.18): one `sendmsg` carries many equal-sized
//! datagrams, which the kernel cuts apart (or a NIC does). Used for VXLAN: every segment of a
//! TCP superframe entering a tunnel becomes one datagram, all sent with one system call.
//! Receiving, UDP GRO (Linux 5.0) hands over runs of one flow's datagrams merged. Both on a
//! [`GsoUdpSocket`].

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use super::packet::set_socket_buffers;

/// An IPv4 UDP socket that sends with segmentation offload and receives with GRO: the
/// VXLAN sockets. Wraps a `std::net::UdpSocket` (bound, and made non-blocking, by the
/// caller).
#[derive(Debug)]
pub struct GsoUdpSocket {
    socket: UdpSocket,
}

/// What one [`GsoUdpSocket::recv_segments`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes read: one datagram, or several merged back to back.
    pub len: usize,
    /// The sender; None if not IPv4.
    pub from: Option<SocketAddrV4>,
    /// The size of each merged datagram (the last may be shorter); None: one datagram.
    pub segment: Option<u16>,
}

impl GsoUdpSocket {
    /// Sends the concatenation of `bufs` (a gather write: the kernel copies each part once)
    /// to `to` as datagrams of `segment` octets each (the last may be shorter). `segment` 0
    /// or at least the total length: one plain datagram.
    pub fn send_segments(
        &self,
        bufs: &[io::IoSlice<'_>],
        to: SocketAddrV4,
        segment: u16,
    ) -> io::Result<usize> {
        send_udp_segments(self.socket.as_fd(), bufs, to, segment)
    }

    /// Non-blocking receive of one datagram, or of several merged by
    /// [`GsoUdpSocket::enable_gro`].
    pub fn recv_segments(&self, buf: &mut [u8]) -> io::Result<Received> {
        recv_udp_segments(self.socket.as_fd(), buf)
    }

    /// Asks the kernel to hand this socket runs of equal-sized datagrams merged into one
    /// buffer (receive offload, Linux 5.0); read them with [`GsoUdpSocket::recv_segments`].
    pub fn enable_gro(&self) -> io::Result<()> {
        enable_udp_gro(self.socket.as_fd())
    }

    /// Sets the receive and send buffers to `bytes` (the kernel doubles it), past
    /// `net.core.rmem_max`/`wmem_max` where the caller has CAP_NET_ADMIN, else as far as
    /// those limits allow.
    pub fn set_buffers(&self, bytes: libc::c_int) -> io::Result<()> {
        set_socket_buffers(self.socket.as_fd(), bytes)
    }

    /// The socket as the standard library's type (addresses, options).
    pub fn as_std(&self) -> &UdpSocket {
        &self.socket
    }
}

impl From<UdpSocket> for GsoUdpSocket {
    fn from(socket: UdpSocket) -> GsoUdpSocket {
        GsoUdpSocket { socket }
    }
}

impl AsFd for GsoUdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// `UDP_SEGMENT` (include/uapi/linux/udp.h), the cmsg type and socket option at `SOL_UDP`.
const UDP_SEGMENT: libc::c_int = 103;

/// See [`GsoUdpSocket::send_segments`].
fn send_udp_segments(
    fd: BorrowedFd<'_>,
    bufs: &[io::IoSlice<'_>],
    to: SocketAddrV4,
    segment: u16,
) -> io::Result<usize> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    // Room for one cmsg carrying a u16, aligned as the kernel expects.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&addr as *const libc::sockaddr_in).cast_mut().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // `IoSlice` is ABI-compatible with `struct iovec` on Unix (documented by std), and
    // sendmsg only reads the array.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast::<libc::iovec>();
    msg.msg_iovlen = bufs.len() as _;
    if segment > 0 && usize::from(segment) < total {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as _;
        // SAFETY: msg_control points at `control`, large enough for one u16 cmsg (checked by
        // the size computation above), so CMSG_FIRSTHDR is non-null and CMSG_DATA lies inside.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
        }
    }
    loop {
        // SAFETY: `msg` and everything it points to are valid for the duration of the call.
        let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `UDP_GRO` (include/uapi/linux/udp.h): the socket takes datagrams of one flow merged, with
/// their size in a cmsg.
const UDP_GRO: libc::c_int = 104;

/// See [`GsoUdpSocket::enable_gro`].
fn enable_udp_gro(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the option value is one int read from `on`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// See [`GsoUdpSocket::recv_segments`].
fn recv_udp_segments(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: an all-zero sockaddr_in and msghdr are valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: see above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: `msg` and everything it points to are valid and writable for the call.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut segment = None;
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR stay
    // within it and return null at its end; the GRO cmsg carries one int.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                segment = u16::try_from(size).ok().filter(|&s| s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let from = (addr.sin_family == libc::AF_INET as libc::sa_family_t).then(|| {
        SocketAddrV4::new(
            std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        )
    });
    Ok(Received {
        len: n,
        from,
        segment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn bound() -> (GsoUdpSocket, SocketAddrV4) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let std::net::SocketAddr::V4(addr) = socket.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        (GsoUdpSocket::from(socket), addr)
    }

    /// Reads one datagram (or merged run), waiting up to 2 s for it.
    fn recv(socket: &GsoUdpSocket, buf: &mut [u8]) -> Received {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match socket.recv_segments(buf) {
                Ok(r) => return r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "nothing arrived");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// One gather write of 250 octets in segments of 100 leaves as datagrams of 100, 100
    /// and 50 (loopback does not merge them again); segment 0 sends one datagram.
    #[test]
    fn segments_leave_as_separate_datagrams() {
        let (tx, tx_addr) = bound();
        let (rx, rx_addr) = bound();
        rx.set_buffers(1 << 20).unwrap();
        // Not every kernel has UDP_GRO; the reads below work either way.
        let gro = rx.enable_gro().is_ok();
        let payload: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        let bufs = [
            io::IoSlice::new(&payload[..30]),
            io::IoSlice::new(&payload[30..]),
        ];
        assert_eq!(tx.send_segments(&bufs, rx_addr, 100).unwrap(), 250);
        let mut buf = [0u8; 1000];
        let mut got = Vec::new();
        while got.len() < 250 {
            let r = recv(&rx, &mut buf);
            assert_eq!(r.from, Some(tx_addr));
            let segment = r.segment.map_or(r.len, usize::from);
            assert!(segment == 100 || r.len == 50, "{r:?} (GRO {gro})");
            got.extend_from_slice(&buf[..r.len]);
        }
        assert_eq!(got, payload);

        assert_eq!(tx.send_segments(&bufs, rx_addr, 0).unwrap(), 250);
        let r = recv(&rx, &mut buf);
        assert_eq!((r.len, r.segment), (250, None));
        assert_eq!(&buf[..250], &payload[..]);
        assert!(matches!(
            rx.recv_segments(&mut buf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        ));
    }
}
