//! Who is at the other end of a Unix socket, and group names: what the API's access check
//! (`weft daemon --api-group`) needs beyond `SO_PEERCRED`.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PEERGROUPS` (socket(7), Linux 4.13): the peer's supplementary groups as they were
/// when it connected. The libc crate does not export it for every target; 59 is its value
/// in the generic socket ABI (x86, arm, riscv...).
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups the peer of the connected Unix socket `fd` had when it
/// connected (race-free, unlike reading `/proc/PID/status` afterwards).
pub fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let room = groups.len() * size_of::<libc::gid_t>();
        let mut len = libc::socklen_t::try_from(room).unwrap_or(libc::socklen_t::MAX);
        // SAFETY: getsockopt writes at most `len` octets into the buffer `groups` owns,
        // which holds `room` >= `len` octets, and `len` is a socklen_t we own.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let len = len as usize;
        if r == 0 {
            groups.truncate(len / size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        // ERANGE: the buffer was too small; `len` is what it takes.
        if e.raw_os_error() == Some(libc::ERANGE) && len > room && len <= 1 << 20 {
            groups.resize(len.div_ceil(size_of::<libc::gid_t>()), 0);
            continue;
        }
        return Err(e);
    }
}

/// The ID of the group named `name` (getgrnam_r(3): /etc/group or whatever NSS says), or
/// None if there is no such group.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut group = MaybeUninit::<libc::group>::uninit();
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is to memory we own and that outlives the call: the
        // NUL-terminated name, the group struct and the string buffer of `buf.len()`
        // octets getgrnam_r fills, and the result pointer.
        let r = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                group.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if r == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-null result points at `group`, which getgrnam_r filled in.
        return Ok(Some(unsafe { (*found).gr_gid }));
    }
}
