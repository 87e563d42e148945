//! TAP devices (/dev/net/tun) with virtio-net headers and TSO offloads, owned by [`Tap`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::ifconf::raise_txqlen;
use super::{cvt, ifname_array, ifname_from_array, interface_exists, Result, SysError};
use weft_wire::VNET_HDR_LEN;

/// TUN_F_TSO4/TUN_F_TSO6 from <linux/if_tun.h> (libc has TUN_F_CSUM and TUN_F_TSO_ECN only
/// on some targets, so all four are spelled out here).
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;
const TUN_F_TSO6: libc::c_ulong = 0x04;
const TUN_F_TSO_ECN: libc::c_ulong = 0x08;

/// An open TAP device: the fd of /dev/net/tun attached to one interface, and that
/// interface's name as the kernel reported it. Closing it (dropping the `Tap`) detaches; a
/// TAP that is not persistent disappears then.
///
/// The data plane takes any `OwnedFd` as a port: hand it one with [`Tap::into_owned`] (or
/// `OwnedFd::from`), and type an fd it gives back again with [`Tap::from_owned`].
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

impl Tap {
    /// Opens (creating or re-attaching) the TAP `ifname` in the calling thread's network
    /// namespace, with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 10-byte vnet header, checksum +
    /// TSO offloads (so TCP superframes up to 64 KiB cross whole), an INT_MAX send buffer,
    /// TUNSETPERSIST(`persist`), O_NONBLOCK | O_CLOEXEC, and txqueuelen >= 1000.
    ///
    /// A persistent TAP of that name is re-attached (keeping its addresses); any other kind
    /// of interface of that name gives [`SysError::InterfaceExists`], a TAP that another
    /// process holds open gives [`SysError::TapBusy`].
    pub fn open(ifname: &str, persist: bool) -> Result<Tap> {
        let tap = attach(ifname)?;
        let tun_err = |op: &'static str| {
            move |source: io::Error| SysError::Tun {
                ifname: ifname.to_owned(),
                op,
                source,
            }
        };
        let fd = tap.fd.as_raw_fd();
        let hdr_sz = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which points to `hdr_sz`.
        cvt(unsafe {
            libc::ioctl(
                fd,
                libc::TUNSETVNETHDRSZ as _,
                &hdr_sz as *const libc::c_int,
            )
        })
        .map_err(tun_err("TUNSETVNETHDRSZ"))?;

        let offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        // SAFETY: TUNSETOFFLOAD takes its argument by value, no pointer is involved.
        cvt(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD as _, offload) })
            .map_err(tun_err("TUNSETOFFLOAD"))?;

        let sndbuf: libc::c_int = libc::c_int::MAX;
        // SAFETY: TUNSETSNDBUF reads one int through the pointer, which points to `sndbuf`.
        cvt(unsafe { libc::ioctl(fd, libc::TUNSETSNDBUF as _, &sndbuf as *const libc::c_int) })
            .map_err(tun_err("TUNSETSNDBUF"))?;

        raise_txqlen(ifname)?;

        set_persist(fd, persist).map_err(tun_err("TUNSETPERSIST"))?;
        Ok(tap)
    }

    /// Types an fd that holds a TAP (one [`Tap::into_owned`] gave away, e.g. handed back by
    /// the data plane when its port is removed), asking the kernel for its name (TUNGETIFF).
    /// An fd that is not a TAP is an error, and is closed.
    pub fn from_owned(fd: OwnedFd) -> Result<Tap> {
        let name = kernel_name(fd.as_fd())?;
        Ok(Tap { fd, name })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Clears TUNSETPERSIST, so the interface disappears when the last fd closes.
    pub fn clear_persist(&self) -> Result<()> {
        set_persist(self.fd.as_raw_fd(), false).map_err(|source| SysError::Tun {
            ifname: self.name.clone(),
            op: "TUNSETPERSIST(0)",
            source,
        })
    }

    /// Gives up the type, keeping the fd open: what the data plane takes as a port.
    pub fn into_owned(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Tap> for OwnedFd {
    fn from(tap: Tap) -> OwnedFd {
        tap.into_owned()
    }
}

/// Opens /dev/net/tun and attaches it to the TAP `ifname` (TUNSETIFF), creating it if
/// needed; errors as [`Tap::open`] documents them.
fn attach(ifname: &str) -> Result<Tap> {
    let name = ifname_array(ifname)?;
    // SAFETY: the path is a NUL-terminated literal; plain open(2).
    let raw = cvt(unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    })
    .map_err(|source| SysError::Tun {
        ifname: ifname.to_owned(),
        op: "open /dev/net/tun",
        source,
    })?;
    // SAFETY: `raw` is a freshly opened fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: `struct ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name = name;
    ifr.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `ifr` is.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF as _,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if let Err(source) = cvt(rc) {
        return Err(match source.raw_os_error() {
            // The name exists but is not a TAP (or is a TAP with incompatible flags, e.g.
            // multi-queue): the kernel refuses with EINVAL.
            Some(libc::EINVAL) if interface_exists(ifname) => SysError::InterfaceExists {
                ifname: ifname.to_owned(),
            },
            Some(libc::EBUSY) => SysError::TapBusy {
                ifname: ifname.to_owned(),
            },
            _ => SysError::Tun {
                ifname: ifname.to_owned(),
                op: "TUNSETIFF",
                source,
            },
        });
    }
    // TUNSETIFF wrote back the name the interface got.
    let name = ifname_from_array(&ifr.ifr_name);
    Ok(Tap { fd, name })
}

/// Sets the carrier of the TAP behind `fd` (TUNSETCARRIER): off, the interface shows
/// NO-CARRIER inside its namespace (its operational state is down) as an unplugged cable
/// does; on, it comes back. Fails with ENOTTY or EINVAL on an fd that is not a TAP.
pub fn set_carrier(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let carrier = libc::c_int::from(on);
    // SAFETY: TUNSETCARRIER reads one int through the pointer, which points to `carrier`.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETCARRIER as _,
            &carrier as *const libc::c_int,
        )
    })
    .map(drop)
}

fn set_persist(fd: libc::c_int, persist: bool) -> io::Result<()> {
    // SAFETY: TUNSETPERSIST takes its argument by value, no pointer is involved.
    cvt(unsafe { libc::ioctl(fd, libc::TUNSETPERSIST as _, libc::c_ulong::from(persist)) })
        .map(drop)
}

/// The interface name of an open TAP fd (TUNGETIFF).
fn kernel_name(fd: BorrowedFd<'_>) -> Result<String> {
    // SAFETY: `struct ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes a `struct ifreq`, which `ifr` is.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNGETIFF as _,
            &mut ifr as *mut libc::ifreq,
        )
    };
    cvt(rc).map_err(|source| SysError::Tun {
        ifname: format!("(fd {})", fd.as_raw_fd()),
        op: "TUNGETIFF",
        source,
    })?;
    Ok(ifname_from_array(&ifr.ifr_name))
}
