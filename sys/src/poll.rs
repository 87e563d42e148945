use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, Result, SysError};

/// Non-blocking `read(2)` on a raw fd (TAP, packet socket, ...). EINTR is retried;
/// "no data" surfaces as `io::ErrorKind::WouldBlock`.
pub fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid writable region of `buf.len()` bytes and `fd` is open for
        // the lifetime of the borrow.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Non-blocking `write(2)` on a raw fd. EINTR is retried; a full queue surfaces as
/// `io::ErrorKind::WouldBlock`.
pub fn write_fd(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid readable region of `buf.len()` bytes and `fd` is open for
        // the lifetime of the borrow.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Most events fetched by one [`Epoll::wait`] call.
const MAX_EVENTS: usize = 256;

/// Thin epoll wrapper: level-triggered EPOLLIN with `u64` tokens. `Send + Sync`
/// (epoll_ctl/epoll_wait are thread-safe).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> Result<Epoll> {
        // SAFETY: plain syscall without pointers.
        let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(|source| {
            SysError::Poll {
                op: "epoll_create1",
                source,
            }
        })?;
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Epoll { fd })
    }

    /// Watches `fd` for readability (level-triggered); `token` is reported by [`Epoll::wait`].
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        self.add_events(fd, token, libc::EPOLLIN as u32)
    }

    /// Watches `fd` edge-triggered for any change: readable, writable, peer closed, error.
    /// The owner keeps its own "may read"/"may write" flags and clears them on `EAGAIN`.
    pub fn add_edge(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.add_events(fd, token, events as u32)
    }

    fn add_events(&self, fd: BorrowedFd<'_>, token: u64, events: u32) -> Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; both fds are open.
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        })
        .map_err(|source| SysError::Poll {
            op: "epoll_ctl(EPOLL_CTL_ADD)",
            source,
        })?;
        Ok(())
    }

    /// Stops watching `fd`. An fd that was not registered is not an error.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer (NULL is allowed since 2.6.9).
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        match cvt(rc) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(source) => Err(SysError::Poll {
                op: "epoll_ctl(EPOLL_CTL_DEL)",
                source,
            }),
        }
    }

    /// Clears `out` and fills it with the tokens of ready fds (at most `max`, capped at 256).
    /// `timeout_ms` -1 blocks, 0 polls. A signal interruption (EINTR) returns `Ok(0)`.
    pub fn wait(&self, out: &mut Vec<u64>, max: usize, timeout_ms: i32) -> Result<usize> {
        out.clear();
        let max = max.clamp(1, MAX_EVENTS);
        // Not zeroed: this runs once per data-plane wake-up, and the kernel writes the first
        // `n` entries, which are the only ones read.
        let mut events = std::mem::MaybeUninit::<[libc::epoll_event; MAX_EVENTS]>::uninit();
        // SAFETY: `events` has room for `max` (<= MAX_EVENTS) entries; epoll_wait only writes.
        let rc = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr().cast::<libc::epoll_event>(),
                max as libc::c_int,
                timeout_ms,
            )
        };
        let n = match cvt(rc) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(source) => {
                return Err(SysError::Poll {
                    op: "epoll_wait",
                    source,
                })
            }
        };
        let first = events.as_ptr().cast::<libc::epoll_event>();
        // SAFETY: the kernel initialised exactly the first `n` (<= max) entries.
        let ready = unsafe { std::slice::from_raw_parts(first, n) };
        // By-value field reads (epoll_event is packed on x86_64, so no references).
        out.extend(ready.iter().map(|ev| ev.u64));
        Ok(n)
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Non-blocking eventfd, used to wake an epoll loop from another thread.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> Result<EventFd> {
        // SAFETY: plain syscall without pointers.
        let raw = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
            .map_err(|source| SysError::Poll {
                op: "eventfd",
                source,
            })?;
        // SAFETY: `raw` is a freshly created fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(EventFd { fd })
    }

    /// Makes the eventfd readable (wakes a waiting epoll). Never blocks.
    pub fn notify(&self) {
        // The only possible failure is EAGAIN on counter overflow, when it is readable anyway.
        let _ = write_fd(self.fd.as_fd(), &1u64.to_ne_bytes());
    }

    /// Resets the eventfd to non-readable. Never blocks.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        let _ = read_fd(self.fd.as_fd(), &mut buf);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
