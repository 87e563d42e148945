//! AF_PACKET raw sockets carrying the same virtio_net_hdr as the TAPs, owned by
//! [`PacketSocket`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, interface_index, Result, SysError};

// <linux/if_packet.h>
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const ETH_P_ALL: u16 = 0x0003;

/// Socket buffer size requested with SO_RCVBUFFORCE/SO_SNDBUFFORCE (the kernel doubles it).
const SOCKET_BUF: libc::c_int = 8 << 20;

/// `struct packet_mreq`.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// An AF_PACKET socket bound to one interface: a switch port on the host end of a veth
/// pair. The data plane takes any `OwnedFd` as a port: hand it one with
/// [`PacketSocket::into_owned`] (or `OwnedFd::from`).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

impl PacketSocket {
    /// Opens an AF_PACKET SOCK_RAW socket bound to `ifname` (calling thread's namespace) for
    /// all ethertypes, with PACKET_VNET_HDR (every read/write carries a 10-byte
    /// virtio_net_hdr and GSO superframes pass whole), PACKET_IGNORE_OUTGOING (our own
    /// writes are not read back), promiscuous membership, 8 MiB buffers
    /// (SO_RCVBUFFORCE/SO_SNDBUFFORCE) and O_NONBLOCK | O_CLOEXEC.
    pub fn open(ifname: &str) -> Result<PacketSocket> {
        let fd = open_packet_socket(ifname)?;
        Ok(PacketSocket {
            fd,
            ifname: ifname.to_owned(),
        })
    }

    /// The interface the socket is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Gives up the type, keeping the fd open: what the data plane takes as a port.
    pub fn into_owned(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<PacketSocket> for OwnedFd {
    fn from(socket: PacketSocket) -> OwnedFd {
        socket.into_owned()
    }
}

/// The socket of [`PacketSocket::open`].
fn open_packet_socket(ifname: &str) -> Result<OwnedFd> {
    let ifindex = interface_index(ifname)?;
    let err = |op: &'static str| {
        move |source: io::Error| SysError::PacketSocket {
            ifname: ifname.to_owned(),
            op,
            source,
        }
    };

    // Protocol 0: receive nothing until bind() selects the interface, so no frame of another
    // interface is ever queued.
    // SAFETY: plain syscall without pointers.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })
    .map_err(|source| SysError::Socket {
        kind: "AF_PACKET",
        source,
    })?;
    // SAFETY: `raw` is a freshly created fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    setsockopt_int(fd.as_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, 1)
        .map_err(err("PACKET_VNET_HDR"))?;
    setsockopt_int(fd.as_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        .map_err(err("PACKET_IGNORE_OUTGOING"))?;
    set_socket_buffers(fd.as_fd(), SOCKET_BUF).map_err(err("SO_RCVBUFFORCE/SO_SNDBUFFORCE"))?;

    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid sockaddr_ll of the given size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map_err(err("bind"))?;

    // A switch port sees every frame, whatever its destination MAC (veth delivers all frames
    // anyway; real NICs need this). Dropped automatically when the socket closes.
    let mreq = PacketMreq {
        mr_ifindex: ifindex as libc::c_int,
        mr_type: PACKET_MR_PROMISC,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: PACKET_ADD_MEMBERSHIP reads a `struct packet_mreq`, which `mreq` matches.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            (&mreq as *const PacketMreq).cast(),
            std::mem::size_of::<PacketMreq>() as libc::socklen_t,
        )
    })
    .map_err(err("PACKET_ADD_MEMBERSHIP(PROMISC)"))?;

    Ok(fd)
}

/// Sets a socket's receive and send buffers to `bytes` (the kernel doubles it), past
/// `net.core.rmem_max`/`wmem_max` where the caller has CAP_NET_ADMIN (SO_*BUFFORCE), else as
/// far as those limits allow.
pub(crate) fn set_socket_buffers(fd: BorrowedFd<'_>, bytes: libc::c_int) -> io::Result<()> {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(fd, libc::SOL_SOCKET, force, bytes).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, plain, bytes)?;
        }
    }
    Ok(())
}

fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is one int read from `value`.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}
