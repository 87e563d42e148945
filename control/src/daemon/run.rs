//! The composition root: starts the data plane, the gateway's runtime, the gossip cluster
//! and the daemon on top of them; the caller serves the API on the returned [`Running`]
//! daemon and stops it when the API server returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::state::StateDir;
use super::{Daemon, VtepConfig};
use crate::cluster::gossip::{Gossip, GossipConfig};
use crate::dataplane::Dataplane;

/// Everything `weft daemon` was asked for.
pub struct RunConfig {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub workers: usize,
    pub busy_poll: Duration,
    pub dns_upstream: Vec<SocketAddr>,
    pub udp_idle: Duration,
    pub tcp_idle: Duration,
    /// `--api-group`: a group whose members may use the API too.
    pub api_group: Option<String>,
    pub vtep: VtepConfig,
    /// The gossip cluster to join, if a key file was given.
    pub cluster: Option<GossipConfig>,
    /// Addresses to join (for the log line).
    pub join: Vec<String>,
}

/// Starts everything below the API and binds its socket (mode 0600).
pub async fn start(config: RunConfig) -> Result<Running> {
    let socket = config.socket.as_path();
    if weft_sys::effective_uid() != 0 {
        bail!("weft daemon needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create interfaces in namespaces); run it with sudo");
    }
    if tokio::net::UnixStream::connect(socket).await.is_ok() {
        bail!(
            "another weft daemon is already listening on {}; stop it or pass another --socket",
            socket.display()
        );
    }
    let api_group = api_group(config.api_group.as_deref())?;
    let gid = api_group.as_ref().map(|g| g.1);
    let _ = std::fs::remove_file(socket);
    if let Some(dir) = socket.parent() {
        socket_dir(dir, gid)?;
    }
    let descriptors = weft_sys::raise_nofile_limit().unwrap_or_else(|e| {
        log::warn!("cannot raise the open-descriptor limit (RLIMIT_NOFILE): {e}; assuming 1024");
        1024
    });
    let limits = crate::gateway::FlowLimits::for_descriptors(descriptors);
    log::info!(
        "open descriptors: up to {descriptors}; proxied flows: up to {} TCP and {} UDP ({} kept for the API, gossip, ports and DNS)",
        limits.tcp,
        limits.udp,
        crate::gateway::RESERVED_DESCRIPTORS
    );
    if limits.tcp < 256 {
        log::warn!("the descriptor limit {descriptors} leaves room for few proxied flows: raise the hard limit (LimitNOFILE= in the service unit, or ulimit -Hn)");
    }
    let state = StateDir::open(&config.state_dir)?;
    let dataplane = Dataplane::new(config.workers, config.busy_poll)?;
    let threads = dataplane
        .spawn()
        .context("cannot start the data-plane threads")?;
    // Containers may not reach the underlay's tunnel and gossip ports through the NAT: a
    // datagram from this host's address would pass for this node's VXLAN or gossip traffic.
    let underlay = crate::gateway::UnderlayPorts {
        vxlan: config.vtep.port,
        gossip: config.cluster.as_ref().map(|c| c.gossip_port),
    };
    let gateway = crate::gateway::start(
        &dataplane,
        &config.dns_upstream,
        crate::gateway::FlowOptions {
            udp_idle: config.udp_idle,
            tcp_idle: config.tcp_idle,
            limits,
        },
        underlay,
    )
    .context("cannot start the gateway's TCP/IP stack")?;
    let gossip = match config.cluster {
        Some(c) => Some(Arc::new(Gossip::start(c).await?)),
        None => None,
    };
    let cluster_link = gossip
        .clone()
        .map(|g| (g, tokio::runtime::Handle::current()));
    let dp = Arc::clone(&dataplane);
    let vtep = config.vtep;
    let daemon =
        tokio::task::spawn_blocking(move || Daemon::start(state, dp, gateway, vtep, cluster_link))
            .await??;
    let daemon = Arc::new(daemon);
    if let Some(g) = &gossip {
        log::info!(
            "node {} gossips on {} (joining {:?})",
            g.node_name,
            g.gossip_addr,
            config.join
        );
        tokio::spawn(super::run_cluster_sync(Arc::clone(&daemon)));
    }
    let listener = bind_private(socket, gid)?;
    log::info!(
        "weft daemon listening on {} (state in {})",
        socket.display(),
        config.state_dir.display()
    );
    Ok(Running {
        daemon,
        listener,
        api_group,
        stopper: Stopper { dataplane, threads },
    })
}

/// A started daemon: serve the API on `listener`, then [`Stopper::stop`].
/// The `--api-group` by name and ID; an unknown group is an error that says what to do.
fn api_group(name: Option<&str>) -> Result<Option<(String, u32)>> {
    let Some(name) = name else {
        return Ok(None);
    };
    match weft_sys::group_id(name) {
        Ok(Some(gid)) => Ok(Some((name.to_string(), gid))),
        Ok(None) => bail!("--api-group {name}: no such group; create it (groupadd {name}) or leave out --api-group"),
        Err(e) => bail!("--api-group {name:?}: cannot look the group up: {e}"),
    }
}

/// Creates the socket's directory if it is missing: 0700, or 0750 owned by the API group
/// (a directory that exists is left as it is: it may be /run).
fn socket_dir(dir: &std::path::Path, group: Option<u32>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let err = || format!("cannot create socket directory {}", dir.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(err)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(dir, None, Some(gid)).with_context(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).with_context(err)?;
    }
    Ok(())
}

/// Binds the API socket with its final mode from its first moment (0600, or 0660 owned by
/// the API group): bound under a temporary name in the same directory, given its mode and
/// group, then renamed into place, so no other user can connect in between (each
/// connection's credentials are checked too, `api::peer`).
fn bind_private(socket: &std::path::Path, group: Option<u32>) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let name = socket
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weft.sock".into());
    let tmp = socket.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    let private = std::os::unix::fs::chown(&tmp, None, group)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&tmp, socket));
    if let Err(e) = private {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot set up {}", socket.display()));
    }
    Ok(listener)
}

pub struct Running {
    pub daemon: Arc<Daemon>,
    pub listener: tokio::net::UnixListener,
    /// `--api-group`: its name and ID.
    pub api_group: Option<(String, u32)>,
    pub stopper: Stopper,
}

/// Stops what [`start`] started below the daemon.
pub struct Stopper {
    dataplane: Arc<Dataplane>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Stopper {
    /// Stops the data plane and waits for its threads.
    pub fn stop(self) {
        self.dataplane.shutdown();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    log::info!("shutting down");
}
