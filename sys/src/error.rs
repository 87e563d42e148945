use std::io;
use std::path::PathBuf;

/// Errors of the syscall layer. Every variant names the object it was acting on so the
/// message can be shown to a user as is.
#[derive(thiserror::Error, Debug)]
pub enum SysError {
    #[error(
        "network namespace `{name}` does not exist ({path} not found); \
         create it with `ip netns add {name}` or list the existing ones with `ip netns list`"
    )]
    NoSuchNetns { name: String, path: PathBuf },

    #[error("cannot open network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path} is not a network namespace (expected a file like /run/netns/NAME or /proc/PID/ns/net)")]
    NotNetns { path: PathBuf },

    #[error("no process with PID {pid}")]
    NoSuchProcess { pid: u32 },

    #[error("cannot enter network namespace {path}: {source}")]
    Setns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot start a thread to enter network namespace {path}: {source}")]
    Thread {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("TAP {ifname}: {op} failed: {source}")]
    Tun {
        ifname: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "TAP {ifname} is already open elsewhere (a single-queue TAP can be attached only once)"
    )]
    TapBusy { ifname: String },

    #[error("interface {ifname}: {op} failed: {source}")]
    Ioctl {
        ifname: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("netlink {op} failed: {source}{}", detail_suffix(.detail))]
    Netlink {
        op: String,
        /// The kernel's extended-ack message, if it sent one (may be empty).
        detail: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot create {kind} socket: {source}")]
    Socket {
        kind: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("packet socket on {ifname}: {op} failed: {source}")]
    PacketSocket {
        ifname: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("interface {ifname} already exists")]
    InterfaceExists { ifname: String },

    #[error("interface {ifname} already exists in network namespace {netns}")]
    PeerInterfaceExists { ifname: String, netns: PathBuf },

    #[error("no interface named {ifname}")]
    NoSuchInterface { ifname: String },

    #[error("invalid interface name {ifname:?}: {reason}")]
    InvalidIfname {
        ifname: String,
        reason: &'static str,
    },

    #[error("invalid configuration for interface {ifname}: {reason}")]
    InvalidConfig { ifname: String, reason: String },

    #[error("{op} failed: {source}")]
    Poll {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("interface {ifname}: cannot set {key}={value}: {source}")]
    Sysctl {
        ifname: String,
        /// The sysctl, like `net.ipv6.conf.IFNAME.disable_ipv6`.
        key: String,
        value: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{op} failed: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

pub type Result<T> = std::result::Result<T, SysError>;
