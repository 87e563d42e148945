//! The syscall layer of weft: network namespaces, TAP devices, interface configuration
//! (ioctls, per-interface sysctls), hand-written rtnetlink (veth create/delete), AF_PACKET
//! sockets, UDP segmentation offload and GRO, and a thin epoll/eventfd wrapper.
//!
//! Each kind of fd has its owner type: [`Tap`], [`PacketSocket`], [`GsoUdpSocket`],
//! [`Epoll`], [`EventFd`] (the fd closes when it is dropped). The data plane takes any
//! `OwnedFd` as a port, so `Tap` and `PacketSocket` give theirs up with `into_owned()`.
//!
//! All `unsafe` code of weft lives in this crate (every other crate is
//! `#![forbid(unsafe_code)]`); every `unsafe` block carries a `// SAFETY:` comment, enforced
//! by `clippy::undocumented_unsafe_blocks = "deny"` in the workspace lints.
//!
//! Everything that touches the network stack acts on the network namespace of the *calling
//! thread*. To act inside another namespace use [`Netns::run`], which runs a closure on a
//! fresh thread that has `setns()`'d into it. File descriptors (TAP fds, packet sockets, TCP
//! sockets...) opened there stay bound to that namespace and can be used from any thread.

// The daemon does not use every helper; keep the layer complete without dead-code noise.
#![allow(dead_code)]

mod creds;
mod error;
mod ifconf;
mod netlink;
mod netns;
mod packet;
mod poll;
mod sysctl;
mod tap;
mod udp;

#[cfg(test)]
mod tests;

// Re-exports are the module's API; the daemon does not necessarily use all of them.
pub use creds::{group_id, peer_groups};
pub use error::{Result, SysError};
#[allow(unused_imports)]
pub use ifconf::{
    configure_interface, interface_exists, interface_index, interface_mac, interface_names,
    prepare_handover, set_link_up, set_mtu, IfConfig,
};
#[allow(unused_imports)]
pub use netlink::{create_veth, delete_link};
#[allow(unused_imports)]
pub use netns::Netns;
#[allow(unused_imports)]
pub use packet::PacketSocket;
#[allow(unused_imports)]
pub use poll::{read_fd, write_fd, Epoll, EventFd};
#[allow(unused_imports)]
pub use sysctl::{disable_ipv6, make_inert};
#[allow(unused_imports)]
pub use tap::{set_carrier, Tap};
#[allow(unused_imports)]
pub use udp::{GsoUdpSocket, Received};

/// Largest frame (virtio_net_hdr included) that a TAP or packet socket of this module can
/// hand out: a 64 KiB GSO superframe plus Ethernet/VLAN headers and the vnet header. Read
/// buffers smaller than this silently truncate superframes (both the tun driver and
/// AF_PACKET truncate instead of failing).
use weft_wire::VNET_HDR_LEN;

pub const MAX_FRAME_LEN: usize = VNET_HDR_LEN + 65535 + 14 + 4 + 4;

use std::ffi::c_char;

/// Validates an interface name and converts it to the kernel's fixed `IFNAMSIZ` array.
pub(crate) fn ifname_array(ifname: &str) -> Result<[c_char; libc::IFNAMSIZ]> {
    let reason = if ifname.is_empty() {
        Some("name is empty")
    } else if ifname.len() >= libc::IFNAMSIZ {
        Some("name is longer than 15 bytes")
    } else if ifname == "." || ifname == ".." {
        Some("`.` and `..` are reserved")
    } else if ifname
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == b'%' || b.is_ascii_whitespace() || b == 0)
    {
        Some("name must not contain '/', ':', '%', NUL or whitespace")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(SysError::InvalidIfname {
            ifname: ifname.to_owned(),
            reason,
        });
    }
    let mut out = [0 as c_char; libc::IFNAMSIZ];
    for (dst, src) in out.iter_mut().zip(ifname.bytes()) {
        *dst = src as c_char;
    }
    Ok(out)
}

/// Converts a NUL-terminated `IFNAMSIZ` array back to a string.
pub(crate) fn ifname_from_array(name: &[c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Converts a libc return value (-1 = error) into an `io::Result`.
pub(crate) fn cvt(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The effective user id of the process (0 = root, needed for netns/TAP/veth work).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Sets the limits on open descriptors (`RLIMIT_NOFILE`) of this process and of the
/// children it starts afterwards (lowering the hard limit cannot be undone without
/// CAP_SYS_RESOURCE).
pub fn set_nofile_limit(soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit from a struct we own.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    Ok(())
}

/// Raises the soft limit on open descriptors (`RLIMIT_NOFILE`) to the hard limit, so that
/// proxied flows (one host socket each) do not run the daemon out of descriptors at the
/// default 1024. Returns the limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from a struct we own.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// Sends signal `sig` to process `pid` (`kill(2)`).
pub fn send_signal(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill has no memory effects; a wrong pid is an error return, not UB.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// Takes an exclusive, non-blocking `flock` on `file` (held until the file is closed).
/// `Ok(false)` if another process holds it.
pub fn try_lock_exclusive(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is open for the lifetime of the borrow; flock has no memory effects.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    match cvt(rc) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}
