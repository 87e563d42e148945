use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Result, SysError};

/// Where `ip netns add NAME` bind-mounts named namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)` from `<linux/nsfs.h>`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Network namespace handle: an open fd of /run/netns/NAME, another path, or /proc/PID/ns/net.
///
/// Holding the handle keeps the namespace alive even if it is deleted with `ip netns del`.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// `NAME` (no '/') -> /run/netns/NAME; anything containing a '/' is used as a path.
    pub fn from_name_or_path(s: &str) -> Result<Netns> {
        if s.is_empty() || s == "." || s == ".." {
            return Err(SysError::Netns {
                path: PathBuf::from(s),
                source: io::Error::new(io::ErrorKind::InvalidInput, "empty or invalid name"),
            });
        }
        if s.contains('/') {
            let path = PathBuf::from(s);
            let file = open_ns_file(&path).map_err(|source| SysError::Netns {
                path: path.clone(),
                source,
            })?;
            return Netns::checked(file, path);
        }
        let path = Path::new(NETNS_RUN_DIR).join(s);
        match open_ns_file(&path) {
            Ok(file) => Netns::checked(file, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SysError::NoSuchNetns {
                name: s.to_owned(),
                path,
            }),
            Err(source) => Err(SysError::Netns { path, source }),
        }
    }

    /// The network namespace of process `pid` (/proc/PID/ns/net).
    pub fn from_pid(pid: u32) -> Result<Netns> {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        match open_ns_file(&path) {
            Ok(file) => Netns::checked(file, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound || pid == 0 => {
                Err(SysError::NoSuchProcess { pid })
            }
            Err(source) => Err(SysError::Netns { path, source }),
        }
    }

    /// The network namespace of the calling thread (/proc/thread-self/ns/net).
    pub fn current() -> Result<Netns> {
        let path = PathBuf::from("/proc/thread-self/ns/net");
        let file = open_ns_file(&path).map_err(|source| SysError::Netns {
            path: path.clone(),
            source,
        })?;
        Netns::checked(file, path)
    }

    fn checked(file: File, path: PathBuf) -> Result<Netns> {
        // SAFETY: NS_GET_NSTYPE takes no argument and only returns an integer; `file` is an
        // open fd for the duration of the call.
        let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if nstype != libc::CLONE_NEWNET {
            return Err(SysError::NotNetns { path });
        }
        Ok(Netns { file, path })
    }

    /// The raw nsfs fd (for IFLA_NET_NS_FD); valid while `self` lives.
    pub(crate) fn file_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inode identity (st_dev, st_ino) of the namespace: two handles to the same namespace
    /// compare equal whatever path they were opened by.
    pub fn id(&self) -> (u64, u64) {
        match self.file.metadata() {
            Ok(m) => (m.dev(), m.ino()),
            // fstat on an open nsfs fd cannot fail in practice; keep the API infallible.
            Err(_) => (0, 0),
        }
    }

    /// Runs `f` on a fresh thread that has `setns()`'d into this namespace; the thread exits
    /// afterwards (it is never reused, so no other code ever runs in the wrong namespace).
    /// Blocks the caller until `f` returns and hands back its result; a panic in `f` is
    /// propagated to the caller. From async code call it inside `spawn_blocking`.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let file = self.file.try_clone().map_err(|source| SysError::Netns {
            path: self.path.clone(),
            source,
        })?;
        let path = self.path.clone();
        let thread_path = path.clone();
        let handle = std::thread::Builder::new()
            .name("weft-netns".to_owned())
            .spawn(move || {
                // SAFETY: setns() only changes the calling thread's namespace membership;
                // `file` is an open nsfs fd for the duration of the call.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(SysError::Setns {
                        path: thread_path,
                        source: io::Error::last_os_error(),
                    });
                }
                drop(file);
                f()
            })
            .map_err(|source| SysError::Thread { path, source })?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn open_ns_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}
