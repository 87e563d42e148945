//! `weft daemon`: the daemon started in the foreground from its flags (cli's one use of `crate::daemon`).

use std::path::Path;

use anyhow::{bail, Result};

use super::args::DaemonArgs;

/// Runs the daemon and serves the API on `socket` until SIGINT or SIGTERM.
pub async fn run_daemon(socket: &Path, args: &DaemonArgs) -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Bound before anything starts: a bad or taken --web leaves nothing half-started.
    let web = match &args.web {
        Some(w) => Some(crate::web::bind(crate::web::parse_listen(w)?)?),
        None => None,
    };
    let running = crate::daemon::start(crate::daemon::RunConfig {
        socket: socket.to_path_buf(),
        state_dir: args.state_dir.clone(),
        workers: args.workers,
        busy_poll: std::time::Duration::from_micros(args.busy_poll_us),
        dns_upstream: args.dns_upstream.clone(),
        udp_idle: std::time::Duration::from_secs(args.udp_idle_timeout.max(1)),
        tcp_idle: std::time::Duration::from_secs(args.tcp_idle_timeout.max(1)),
        api_group: args.api_group.clone(),
        vtep: crate::daemon::VtepConfig {
            advertise: args.advertise,
            port: args.vxlan_port,
        },
        cluster: cluster_config(args)?,
        join: args.join.clone(),
    })
    .await?;
    let crate::daemon::Running {
        daemon,
        listener,
        api_group,
        stopper,
    } = running;
    let access = crate::api::peer::Access {
        owner: weft_sys::effective_uid(),
        group: api_group,
    };
    let (stop_docker, docker_stopped) = tokio::sync::oneshot::channel::<()>();
    let docker = if args.docker {
        let config = crate::docker::DockerConfig {
            plugin_socket: args.docker_socket.clone(),
            docker_host: args.docker_host.clone(),
        };
        let listener = crate::docker::bind(&config.plugin_socket)?;
        let stopped = async move {
            let _ = docker_stopped.await;
        };
        let served = crate::docker::serve(daemon.clone(), (listener, config), stopped);
        Some(tokio::spawn(served))
    } else {
        None
    };
    let (stop_web, web_stopped) = tokio::sync::oneshot::channel::<()>();
    let web = web.map(|listener| {
        let stopped = async move {
            let _ = web_stopped.await;
        };
        tokio::spawn(crate::web::serve(daemon.clone(), listener, stopped))
    });
    let shutdown = crate::daemon::shutdown_signal();
    crate::api::server::serve(daemon, (listener, access), socket, shutdown).await?;
    let _ = stop_docker.send(());
    let _ = stop_web.send(());
    for task in [docker, web].into_iter().flatten() {
        let _ = task.await;
    }
    stopper.stop();
    Ok(())
}

/// The gossip configuration from the cluster flags: none without a cluster key.
fn cluster_config(args: &DaemonArgs) -> Result<Option<crate::cluster::gossip::GossipConfig>> {
    let Some(key_file) = &args.cluster_key_file else {
        if !args.join.is_empty() {
            bail!("--join needs --cluster-key-file FILE (the cluster key: create it once with `weft keygen --out FILE` and copy it to every node)");
        }
        return Ok(None);
    };
    let key = crate::cluster::gossip::ClusterKey::load(key_file)?;
    let Some(advertise) = args.advertise else {
        bail!("a cluster node needs --advertise ADDR: the underlay address other nodes reach its gossip and VXLAN on");
    };
    let mut seeds = Vec::new();
    for j in &args.join {
        let j = j.trim();
        if j.is_empty() {
            continue;
        }
        let addr: std::net::SocketAddr = match j.parse::<std::net::IpAddr>() {
            Ok(ip) => (ip, args.gossip_port).into(),
            Err(_) => j.parse().map_err(|_| {
                anyhow::anyhow!("invalid --join address {j:?}: expected ADDR or ADDR:PORT, like 192.168.1.10 or 192.168.1.10:7946")
            })?,
        };
        seeds.push(addr);
    }
    Ok(Some(crate::cluster::gossip::GossipConfig {
        node_name: args
            .node_name
            .clone()
            .unwrap_or_else(|| advertise.to_string()),
        advertise,
        gossip_port: args.gossip_port,
        seeds,
        key,
    }))
}
