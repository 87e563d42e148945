//! UDP segmentation offload (UDP_SEGMENT, Linux 4.18): one `sendmsg` carries many equal-sized
//! datagrams, which the kernel cuts apart (or a NIC does). Used for VXLAN: every segment of a
//! TCP superframe entering a tunnel becomes one datagram, all sent with one system call.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `UDP_SEGMENT` (include/uapi/linux/udp.h), the cmsg type and socket option at `SOL_UDP`.
const UDP_SEGMENT: libc::c_int = 103;

/// Sends the concatenation of `bufs` (a gather write: the kernel copies each part once) to
/// `to` as datagrams of `segment` octets each (the last may be shorter). `segment` 0 or at
/// least the total length: one plain datagram.
pub fn send_udp_segments(
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

/// Asks the kernel to hand this socket runs of equal-sized datagrams merged into one buffer
/// (receive offload, Linux 5.0); read them with [`recv_udp_segments`].
pub fn enable_udp_gro(fd: BorrowedFd<'_>) -> io::Result<()> {
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

/// Non-blocking receive of one datagram, or of several merged by [`enable_udp_gro`]: the
/// bytes read, the sender (None if not IPv4), and the size of each merged datagram (the last
/// may be shorter; None: one datagram).
pub fn recv_udp_segments(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddrV4>, Option<u16>)> {
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
    Ok((n, from, segment))
}
