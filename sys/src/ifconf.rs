//! Interface configuration with the classic ioctls on an AF_INET datagram socket, acting in
//! the network namespace of the calling thread.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{cvt, ifname_array, Result, SysError};

/// Smallest MTU IPv4 allows on an interface.
const MIN_MTU: u32 = 68;
/// Txqueuelen the ports get at least.
const MIN_TXQLEN: i32 = 1000;

/// IPv4 configuration of an interface, see [`configure_interface`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfConfig {
    pub mac: [u8; 6],
    pub mtu: u32,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// Kernel `struct rtentry` (<linux/route.h>) for SIOCADDRT. glibc's libc bindings do not
/// export it.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

/// An AF_INET datagram socket used only as a handle for interface ioctls.
pub(crate) struct CtlSocket {
    fd: OwnedFd,
}

impl CtlSocket {
    pub(crate) fn new() -> Result<CtlSocket> {
        // SAFETY: plain syscall without pointers.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
                .map_err(|source| SysError::Socket {
                kind: "AF_INET control",
                source,
            })?;
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(CtlSocket { fd })
    }

    /// Issues an ifreq ioctl; ENODEV is reported as [`SysError::NoSuchInterface`].
    fn ifreq_ioctl(
        &self,
        ifname: &str,
        request: libc::c_ulong,
        op: &'static str,
        ifr: &mut libc::ifreq,
    ) -> Result<()> {
        // SAFETY: every request passed here reads/writes at most a `struct ifreq`, which `ifr`
        // points to for the duration of the call.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, ifr as *mut libc::ifreq) };
        cvt(rc)
            .map(drop)
            .map_err(|source| ioctl_error(ifname, op, source))
    }

    pub(crate) fn flags(&self, ifname: &str) -> Result<libc::c_short> {
        let mut ifr = new_ifreq(ifname)?;
        self.ifreq_ioctl(ifname, libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
        Ok(unsafe { ifr.ifr_ifru.ifru_flags })
    }

    pub(crate) fn set_flags(&self, ifname: &str, flags: libc::c_short) -> Result<()> {
        let mut ifr = new_ifreq(ifname)?;
        ifr.ifr_ifru.ifru_flags = flags;
        self.ifreq_ioctl(ifname, libc::SIOCSIFFLAGS, "SIOCSIFFLAGS", &mut ifr)
    }

    pub(crate) fn set_up(&self, ifname: &str) -> Result<()> {
        let flags = self.flags(ifname)?;
        if flags & libc::IFF_UP as libc::c_short == 0 {
            self.set_flags(ifname, flags | libc::IFF_UP as libc::c_short)?;
        }
        Ok(())
    }

    pub(crate) fn mtu(&self, ifname: &str) -> Result<u32> {
        let mut ifr = new_ifreq(ifname)?;
        self.ifreq_ioctl(ifname, libc::SIOCGIFMTU, "SIOCGIFMTU", &mut ifr)?;
        // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    pub(crate) fn set_mtu(&self, ifname: &str, mtu: u32) -> Result<()> {
        let mtu_int = libc::c_int::try_from(mtu).map_err(|_| SysError::InvalidConfig {
            ifname: ifname.to_owned(),
            reason: format!("MTU {mtu} is too large"),
        })?;
        if self.mtu(ifname)? == mtu {
            return Ok(());
        }
        let mut ifr = new_ifreq(ifname)?;
        ifr.ifr_ifru.ifru_mtu = mtu_int;
        self.ifreq_ioctl(ifname, libc::SIOCSIFMTU, "SIOCSIFMTU", &mut ifr)
    }

    pub(crate) fn hwaddr(&self, ifname: &str) -> Result<[u8; 6]> {
        let mut ifr = new_ifreq(ifname)?;
        self.ifreq_ioctl(ifname, libc::SIOCGIFHWADDR, "SIOCGIFHWADDR", &mut ifr)?;
        // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(mac)
    }

    fn set_hwaddr(&self, ifname: &str, mac: [u8; 6]) -> Result<()> {
        let mut ifr = new_ifreq(ifname)?;
        // SAFETY: an all-zero sockaddr is valid.
        let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
        sa.sa_family = libc::ARPHRD_ETHER;
        for (d, m) in sa.sa_data.iter_mut().zip(mac) {
            *d = m as libc::c_char;
        }
        ifr.ifr_ifru.ifru_hwaddr = sa;
        self.ifreq_ioctl(ifname, libc::SIOCSIFHWADDR, "SIOCSIFHWADDR", &mut ifr)
    }

    fn set_inet(
        &self,
        ifname: &str,
        request: libc::c_ulong,
        op: &'static str,
        addr: Ipv4Addr,
    ) -> Result<()> {
        let mut ifr = new_ifreq(ifname)?;
        ifr.ifr_ifru.ifru_addr = sockaddr_from_v4(addr);
        self.ifreq_ioctl(ifname, request, op, &mut ifr)
    }

    fn txqlen(&self, ifname: &str) -> Result<i32> {
        let mut ifr = new_ifreq(ifname)?;
        self.ifreq_ioctl(ifname, libc::SIOCGIFTXQLEN, "SIOCGIFTXQLEN", &mut ifr)?;
        // SAFETY: SIOCGIFTXQLEN filled `ifr_qlen`, which aliases `ifru_ifindex`.
        Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
    }

    /// Raises the txqueuelen to at least `min`.
    pub(crate) fn raise_txqlen(&self, ifname: &str, min: i32) -> Result<()> {
        if self.txqlen(ifname)? >= min {
            return Ok(());
        }
        let mut ifr = new_ifreq(ifname)?;
        ifr.ifr_ifru.ifru_ifindex = min;
        self.ifreq_ioctl(ifname, libc::SIOCSIFTXQLEN, "SIOCSIFTXQLEN", &mut ifr)
    }

    /// Adds `0.0.0.0/0 via gateway dev ifname`; an existing identical route is fine.
    fn add_default_route(&self, ifname: &str, gateway: Ipv4Addr) -> Result<()> {
        let dev = CString::new(ifname).map_err(|_| SysError::InvalidIfname {
            ifname: ifname.to_owned(),
            reason: "name contains NUL",
        })?;
        let mut rt = RtEntry {
            rt_pad1: 0,
            rt_dst: sockaddr_from_v4(Ipv4Addr::UNSPECIFIED),
            rt_gateway: sockaddr_from_v4(gateway),
            rt_genmask: sockaddr_from_v4(Ipv4Addr::UNSPECIFIED),
            rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: std::ptr::null_mut(),
            rt_metric: 0,
            rt_dev: dev.as_ptr().cast_mut(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        // SAFETY: SIOCADDRT reads a `struct rtentry` (which `rt` matches) and the
        // NUL-terminated device name `rt_dev` points to; both outlive the call.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SIOCADDRT as _,
                &mut rt as *mut RtEntry,
            )
        };
        match cvt(rc) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(source) => Err(ioctl_error(ifname, "SIOCADDRT (default route)", source)),
        }
    }
}

fn ioctl_error(ifname: &str, op: &'static str, source: io::Error) -> SysError {
    if source.raw_os_error() == Some(libc::ENODEV) {
        SysError::NoSuchInterface {
            ifname: ifname.to_owned(),
        }
    } else {
        SysError::Ioctl {
            ifname: ifname.to_owned(),
            op,
            source,
        }
    }
}

pub(crate) fn new_ifreq(ifname: &str) -> Result<libc::ifreq> {
    let name = ifname_array(ifname)?;
    // SAFETY: `struct ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name = name;
    Ok(ifr)
}

fn sockaddr_from_v4(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16-byte plain-old-data socket address
    // layouts; reinterpreting one as the other is how the socket API is meant to be used.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn prefix_to_mask(prefix_len: u8) -> Ipv4Addr {
    let bits = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    };
    Ipv4Addr::from(bits)
}

fn validate(ifname: &str, cfg: &IfConfig) -> Result<()> {
    let invalid = |reason: String| SysError::InvalidConfig {
        ifname: ifname.to_owned(),
        reason,
    };
    let mac = cfg.mac;
    let mac_str = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(invalid(format!(
            "MAC {mac_str} is not a unicast address (first octet must be even, not all zero)"
        )));
    }
    if !(MIN_MTU..=65535).contains(&cfg.mtu) {
        return Err(invalid(format!(
            "MTU {} is out of range {MIN_MTU}..=65535",
            cfg.mtu
        )));
    }
    if cfg.prefix_len > 32 {
        return Err(invalid(format!(
            "prefix length /{} is larger than 32",
            cfg.prefix_len
        )));
    }
    if cfg.addr.is_unspecified() || cfg.addr.is_multicast() || cfg.addr.is_broadcast() {
        return Err(invalid(format!(
            "{} cannot be an interface address",
            cfg.addr
        )));
    }
    if let Some(gw) = cfg.gateway {
        let mask = u32::from(prefix_to_mask(cfg.prefix_len));
        if gw == cfg.addr {
            return Err(invalid(format!(
                "gateway {gw} is the interface's own address"
            )));
        }
        if u32::from(gw) & mask != u32::from(cfg.addr) & mask {
            return Err(invalid(format!(
                "gateway {gw} is not inside {}/{}",
                cfg.addr, cfg.prefix_len
            )));
        }
    }
    Ok(())
}

/// Configures `ifname` in the calling thread's network namespace: MAC (SIOCSIFHWADDR; the
/// interface is brought down first if the driver refuses a live change), MTU, IPv4 address
/// and netmask, IFF_UP, and a default route via `gateway`. Idempotent.
pub fn configure_interface(ifname: &str, cfg: &IfConfig) -> Result<()> {
    validate(ifname, cfg)?;
    let sock = CtlSocket::new()?;

    if sock.hwaddr(ifname)? != cfg.mac {
        match sock.set_hwaddr(ifname, cfg.mac) {
            Ok(()) => {}
            Err(SysError::Ioctl { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
                let flags = sock.flags(ifname)?;
                sock.set_flags(ifname, flags & !(libc::IFF_UP as libc::c_short))?;
                sock.set_hwaddr(ifname, cfg.mac)?;
            }
            Err(e) => return Err(e),
        }
    }
    sock.set_mtu(ifname, cfg.mtu)?;
    // Setting the address that is already there is a no-op in the kernel; setting the
    // netmask afterwards fixes the classful prefix SIOCSIFADDR assigns (and the broadcast).
    sock.set_inet(ifname, libc::SIOCSIFADDR, "SIOCSIFADDR", cfg.addr)?;
    sock.set_inet(
        ifname,
        libc::SIOCSIFNETMASK,
        "SIOCSIFNETMASK",
        prefix_to_mask(cfg.prefix_len),
    )?;
    sock.set_up(ifname)?;
    if let Some(gw) = cfg.gateway {
        sock.add_default_route(ifname, gw)?;
    }
    Ok(())
}

/// Readies a TAP that a container engine will move into a container: sets its MAC and MTU
/// (both survive the move) and leaves it down, with no address (the engine configures it
/// in the container). Idempotent.
pub fn prepare_handover(ifname: &str, mac: [u8; 6], mtu: u32) -> Result<()> {
    let sock = CtlSocket::new()?;
    if sock.hwaddr(ifname)? != mac {
        sock.set_hwaddr(ifname, mac)?;
    }
    sock.set_mtu(ifname, mtu)
}

/// The MAC address of `ifname` in the calling thread's network namespace.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6]> {
    CtlSocket::new()?.hwaddr(ifname)
}

/// The names of the interfaces in the calling thread's network namespace
/// (if_nameindex(3), which asks the kernel over a netlink socket opened in that namespace).
pub fn interface_names() -> Result<Vec<String>> {
    // SAFETY: if_nameindex takes no arguments; it returns NULL or an array it allocated.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(SysError::Io {
            op: "if_nameindex".into(),
            source: io::Error::last_os_error(),
        });
    }
    let mut names = Vec::new();
    let mut i = 0;
    loop {
        // SAFETY: the array ends with an entry whose if_index is 0 and if_name NULL; every
        // entry before it is valid until if_freenameindex, and `i` stops at that end.
        let entry = unsafe { &*list.add(i) };
        if entry.if_index == 0 || entry.if_name.is_null() {
            break;
        }
        // SAFETY: if_name of a valid entry is a NUL-terminated string owned by the array.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.if_name) };
        names.push(name.to_string_lossy().into_owned());
        i += 1;
    }
    // SAFETY: `list` came from if_nameindex and is freed once; nothing refers to it after.
    unsafe { libc::if_freenameindex(list) };
    Ok(names)
}

/// Whether `ifname` exists in the calling thread's network namespace.
pub fn interface_exists(ifname: &str) -> bool {
    interface_index(ifname).is_ok()
}

/// The ifindex of `ifname` in the calling thread's network namespace.
pub fn interface_index(ifname: &str) -> Result<u32> {
    ifname_array(ifname)?;
    let name = CString::new(ifname).map_err(|_| SysError::InvalidIfname {
        ifname: ifname.to_owned(),
        reason: "name contains NUL",
    })?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(SysError::NoSuchInterface {
            ifname: ifname.to_owned(),
        })
    } else {
        Ok(index)
    }
}

/// Sets IFF_UP on `ifname` (no-op if already up).
pub fn set_link_up(ifname: &str) -> Result<()> {
    CtlSocket::new()?.set_up(ifname)
}

/// Sets the MTU of `ifname` (no-op if unchanged).
pub fn set_mtu(ifname: &str, mtu: u32) -> Result<()> {
    CtlSocket::new()?.set_mtu(ifname, mtu)
}

/// Raises the txqueuelen of `ifname` to at least 1000.
pub(crate) fn raise_txqlen(ifname: &str) -> Result<()> {
    CtlSocket::new()?.raise_txqlen(ifname, MIN_TXQLEN)
}
