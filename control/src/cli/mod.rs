//! Command-line interface: argument parsing and the commands, in Docker's and iproute2's
//! idiom. Listings print tables by default and JSON with `--json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use crate::api::client::{check, seg, Client};
use crate::dataplane::pcap;
use crate::gateway::publish::PortMapping;
use crate::types::{
    ArpRow, ClusterInfo, Connect, CreateNetwork, EndpointInfo, FdbAdd, FdbRow, NatRow,
    NetworkDetail, NetworkStatsRow, NetworkSummary, PeerAdd, PeerRow, PortKind, PortRow, Publish,
    Unpublish,
};

pub mod demo;

pub const DEFAULT_SOCKET: &str = "/run/weft/weft.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/weft";

#[derive(Parser, Debug)]
#[command(
    name = "weft",
    version,
    about = "A userspace virtual switch: networks of namespaces joined through TAP and veth ports"
)]
pub struct Cli {
    /// API socket of the daemon
    #[arg(long, global = true, env = "WEFT_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print listings as JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground
    Daemon(DaemonArgs),
    /// Create, list, inspect and remove networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Attach a network namespace to a network
    Connect(ConnectArgs),
    /// Detach an endpoint and remove its interface
    Disconnect { network: String, endpoint: String },
    /// Show the forwarding database, or add/remove static entries
    Fdb(FdbArgs),
    /// Show the neighbour table (IP -> MAC) the switch answers ARP requests from
    Arp {
        /// Only this network
        network: Option<String>,
    },
    /// List ports with counters and drops by reason
    Ports,
    /// Learning, aging and gateway counters per network
    Stats {
        /// Only this network
        network: Option<String>,
    },
    /// Every counter in Prometheus text format (for a textfile collector)
    Metrics,
    /// Publish ports of an endpoint on the host: [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]
    Publish(PublishArgs),
    /// Stop publishing: [HOST_IP:]HOST_PORT[-END][/tcp|/udp]
    Unpublish {
        endpoint: String,
        /// Host port (or range) to unpublish
        spec: String,
    },
    /// Active NAT flows: outbound UDP, TCP and ICMP, and connections to published ports
    Nat {
        /// Only this network
        network: Option<String>,
    },
    /// Capture frames crossing one port, as pcap
    Capture(CaptureArgs),
    /// Explain what the switch does with each frame entering one port: learning, the
    /// gateway, ICC, the FDB lookup or flood, and where the frame went
    Trace(TraceArgs),
    /// Add or remove static VXLAN peers (remote VTEPs)
    #[command(subcommand)]
    Peer(PeerCommand),
    /// List VXLAN peers: name, VTEP, VNI, state, last heard
    Peers,
    /// Run a self-contained lab: namespaces, a network, pings, the learned tables
    Demo,
    /// Print a new random cluster key (one line; save it to the --cluster-key-file of every node)
    Keygen,
    /// This node in the gossip cluster: name, addresses, gossip counters
    Cluster,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Directory for persistent state (networks, endpoints, static entries)
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Microseconds the data plane keeps polling after traffic before it sleeps (0: never
    /// spin); trades CPU for round-trip time
    #[arg(long, default_value_t = crate::dataplane::DEFAULT_BUSY_POLL.as_micros() as u64)]
    pub busy_poll_us: u64,
    /// Forwarding threads; each port's receive side belongs to one of them. More than one
    /// spreads the two directions of a flow over CPUs but adds a thread wake-up to every
    /// round trip
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Upstream resolver for names the embedded DNS does not know (repeatable; default: the
    /// nameservers of /etc/resolv.conf)
    #[arg(long = "dns-upstream", value_name = "ADDR:PORT")]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Seconds an outbound UDP flow may stay idle before its host socket is closed
    #[arg(long, default_value_t = crate::gateway::udp_nat::DEFAULT_UDP_IDLE.as_secs(), value_name = "SECONDS")]
    pub udp_idle_timeout: u64,
    /// Underlay address of this host's VTEP: VXLAN is sent from and received on it
    /// (default: any address, the outer source chosen by routing)
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<std::net::Ipv4Addr>,
    /// UDP port of VXLAN, sent to and received on (RFC 7348: 4789; Linux's default is 8472)
    #[arg(long, default_value_t = weft_vtep::VXLAN_DEFAULT_PORT)]
    pub vxlan_port: u16,
    /// Join a cluster through these nodes' gossip addresses (ADDR or ADDR:PORT, comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR]")]
    pub join: Vec<String>,
    /// The cluster key (one line from `weft keygen`, the same file on every node); turns the
    /// gossip on
    #[arg(long, value_name = "FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// UDP port of the gossip
    #[arg(long, default_value_t = crate::cluster::gossip::DEFAULT_GOSSIP_PORT)]
    pub gossip_port: u16,
    /// This node's name in the cluster (default: its --advertise address)
    #[arg(long)]
    pub node_name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Send an overlay network's traffic to a remote VTEP (weft or a kernel vxlan device)
    Add {
        /// The VTEP's IPv4 address
        addr: String,
        /// The overlay network's VNI
        #[arg(long)]
        vni: u32,
        /// The VTEP's UDP port (default: this daemon's --vxlan-port)
        #[arg(long)]
        port: Option<u16>,
    },
    /// Remove a static peer
    #[command(alias = "del")]
    Rm {
        addr: String,
        #[arg(long)]
        vni: u32,
    },
    /// List peers (same as `weft peers`)
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        name: String,
        /// IPv4 subnet in CIDR notation, e.g. 10.1.0.0/24
        #[arg(long)]
        subnet: String,
        /// Gateway address (default: the first host address)
        #[arg(long)]
        gateway: Option<String>,
        /// MTU of the endpoints' interfaces
        #[arg(long)]
        mtu: Option<u32>,
        /// FDB aging time in seconds (default 300)
        #[arg(long)]
        aging: Option<u64>,
        /// Inter-container communication; --icc=false lets endpoints reach the gateway only
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        icc: bool,
        /// Outbound NAT: proxy (through host sockets, the default) or none
        #[arg(long, value_name = "proxy|none")]
        nat: Option<String>,
        /// Isolated network: no outbound NAT and no published ports (DNS still works)
        #[arg(long)]
        internal: bool,
        /// bridge (this host only, the default) or overlay (VXLAN between hosts)
        #[arg(long, value_name = "bridge|overlay")]
        driver: Option<String>,
        /// VXLAN network identifier of an overlay network (default: the first free from 4096)
        #[arg(long)]
        vni: Option<u32>,
    },
    /// List networks
    #[command(alias = "list")]
    Ls,
    /// Show a network and its endpoints (JSON)
    Inspect { name: String },
    /// Remove a network
    #[command(alias = "remove")]
    Rm {
        name: String,
        /// Disconnect attached endpoints first
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    pub network: String,
    /// Namespace name (as in `ip netns`) or path to a namespace file
    #[arg(long, conflicts_with = "pid")]
    pub netns: Option<String>,
    /// PID of a process whose network namespace to use
    #[arg(long)]
    pub pid: Option<u32>,
    /// Endpoint name (default: the namespace name)
    #[arg(long)]
    pub name: Option<String>,
    /// IPv4 address (default: the next free address)
    #[arg(long)]
    pub ip: Option<String>,
    /// MAC address (default: 02:42 followed by the IPv4 address)
    #[arg(long)]
    pub mac: Option<String>,
    /// Interface name inside the namespace
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
    /// Port kind: a TAP inside the namespace, or a veth pair
    #[arg(long, value_enum, default_value = "tap")]
    pub kind: KindArg,
    /// Extra DNS name on the network (repeatable; several endpoints may share one)
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// Publish a port: [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp] (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish a container port on a free host port: PORT[/tcp|/udp] (repeatable)
    #[arg(short = 'P', long = "publish-all", value_name = "PORT")]
    pub publish_all: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Endpoint name
    pub endpoint: String,
    /// Port specs: [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]
    pub specs: Vec<String>,
    /// Publish a container port on a free host port: PORT[/tcp|/udp] (repeatable)
    #[arg(short = 'P', long = "publish-all", value_name = "PORT")]
    pub publish_all: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    Tap,
    Veth,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FdbArgs {
    /// Only this network
    pub network: Option<String>,
    #[command(subcommand)]
    pub action: Option<FdbAction>,
}

#[derive(Subcommand, Debug)]
pub enum FdbAction {
    /// Add a static entry: frames to MAC go to ENDPOINT's port
    Add {
        network: String,
        mac: String,
        endpoint: String,
    },
    /// Remove a static entry
    Del { network: String, mac: String },
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Port (endpoint name)
    pub port: String,
    /// Write pcap to FILE ('-' for standard output) instead of printing a summary
    #[arg(short = 'w', long = "write")]
    pub write: Option<String>,
    /// Stop after COUNT frames
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Port (endpoint or tunnel port name, as in `weft ports`)
    pub port: String,
    /// Stop after COUNT frames
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(cli: Cli) -> Result<()> {
    let rt = runtime()?;
    match cli.command {
        Command::Daemon(args) => rt.block_on(run_daemon(&cli.socket, &args)),
        Command::Keygen => {
            println!("{}", crate::cluster::gossip::ClusterKey::generate_line()?);
            Ok(())
        }
        Command::Demo => rt.block_on(demo::run()),
        command => {
            let client = Client::new(&cli.socket);
            rt.block_on(run_client(&client, cli.json, command))
        }
    }
}

async fn run_daemon(socket: &Path, args: &DaemonArgs) -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let running = crate::daemon::start(crate::daemon::RunConfig {
        socket: socket.to_path_buf(),
        state_dir: args.state_dir.clone(),
        workers: args.workers,
        busy_poll: std::time::Duration::from_micros(args.busy_poll_us),
        dns_upstream: args.dns_upstream.clone(),
        udp_idle: std::time::Duration::from_secs(args.udp_idle_timeout.max(1)),
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
        stopper,
    } = running;
    crate::api::server::serve(daemon, listener, socket, crate::daemon::shutdown_signal()).await?;
    stopper.stop();
    Ok(())
}

fn cluster_config(args: &DaemonArgs) -> Result<Option<crate::cluster::gossip::GossipConfig>> {
    let Some(key_file) = &args.cluster_key_file else {
        if !args.join.is_empty() {
            bail!("--join needs --cluster-key-file FILE (the cluster key: create it once with `weft keygen > FILE` and copy it to every node)");
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

/// Prints rows as an aligned table with a header line.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == headers.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A listing path, optionally limited to one network.
fn filtered(path: &str, network: Option<&str>) -> String {
    match network {
        Some(n) => format!("{path}?network={}", seg(n)),
        None => path.to_string(),
    }
}

/// Published ports for a table cell: up to three, then a count.
fn published(mappings: &[String]) -> String {
    match mappings.len() {
        0 => "-".into(),
        1..=3 => mappings.join(","),
        n => format!("{},... ({n} ports)", mappings[..2].join(",")),
    }
}

fn fmt_age(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    }
}

async fn run_client(client: &Client, json: bool, command: Command) -> Result<()> {
    let none: Option<&Value> = None;
    match command {
        Command::Daemon(_) | Command::Demo | Command::Keygen => unreachable!("handled by run"),
        Command::Cluster => {
            let info: ClusterInfo = client.call(Method::GET, "/v1/cluster", none).await?;
            if json {
                return print_json(&info);
            }
            println!("node            {}", info.node);
            println!("gossip          {}", info.gossip);
            println!("vtep            {}", info.vtep);
            println!("nodes alive     {}", info.nodes_alive);
            println!(
                "gossip rx/tx    {}/{} (dropped: {} failed authentication, {} malformed)",
                info.gossip_rx, info.gossip_tx, info.gossip_auth_failed, info.gossip_malformed
            );
            println!("address blocks  {}", info.leases.join(" "));
        }
        Command::Network(NetworkCommand::Create {
            name,
            subnet,
            gateway,
            mtu,
            aging,
            icc,
            nat,
            internal,
            driver,
            vni,
        }) => {
            let req = CreateNetwork {
                name,
                subnet,
                gateway,
                mtu,
                aging_seconds: aging,
                icc: Some(icc),
                nat,
                internal,
                driver,
                vni,
            };
            let n: NetworkSummary = client
                .call(Method::POST, "/v1/networks", Some(&req))
                .await?;
            if json {
                print_json(&n)?;
            } else {
                println!("{}", n.name);
            }
        }
        Command::Network(NetworkCommand::Ls) => {
            let nets: Vec<NetworkSummary> = client.call(Method::GET, "/v1/networks", none).await?;
            if json {
                return print_json(&nets);
            }
            let rows: Vec<Vec<String>> = nets
                .into_iter()
                .map(|n| {
                    vec![
                        n.name,
                        n.subnet,
                        n.gateway,
                        n.mtu.to_string(),
                        format!("{}s", n.aging_seconds),
                        n.endpoints.to_string(),
                    ]
                })
                .collect();
            print_table(
                &["NAME", "SUBNET", "GATEWAY", "MTU", "AGING", "ENDPOINTS"],
                &rows,
            );
        }
        Command::Network(NetworkCommand::Inspect { name }) => {
            let n: NetworkDetail = client
                .call(Method::GET, &format!("/v1/networks/{}", seg(&name)), none)
                .await?;
            print_json(&n)?;
        }
        Command::Network(NetworkCommand::Rm { name, force }) => {
            let path = format!("/v1/networks/{}?force={force}", seg(&name));
            client.call::<Value>(Method::DELETE, &path, none).await?;
            println!("{name}");
        }
        Command::Connect(a) => {
            let req = Connect {
                netns: a.netns,
                pid: a.pid,
                name: a.name,
                ip: a.ip,
                mac: a.mac,
                ifname: Some(a.ifname),
                kind: Some(match a.kind {
                    KindArg::Tap => PortKind::Tap,
                    KindArg::Veth => PortKind::Veth,
                }),
                aliases: a.aliases,
                publish: a.publish,
                publish_all: a.publish_all,
            };
            let path = format!("/v1/networks/{}/endpoints", seg(&a.network));
            let ep: EndpointInfo = client.call(Method::POST, &path, Some(&req)).await?;
            if json {
                print_json(&ep)?;
            } else {
                println!(
                    "{}: {} in {} on network {} ({}) {}/{} mac {}",
                    ep.name,
                    ep.ifname,
                    ep.netns,
                    ep.network,
                    ep.kind.as_str(),
                    ep.ip,
                    ep.prefix_len,
                    ep.mac
                );
                for m in &ep.published {
                    println!("{m}");
                }
            }
        }
        Command::Publish(a) => {
            let req = Publish {
                specs: a.specs,
                publish_all: a.publish_all,
            };
            let path = format!("/v1/endpoints/{}/publish", seg(&a.endpoint));
            let added: Vec<PortMapping> = client.call(Method::POST, &path, Some(&req)).await?;
            if json {
                return print_json(&added);
            }
            for m in added {
                println!("{m}");
            }
        }
        Command::Unpublish { endpoint, spec } => {
            let path = format!("/v1/endpoints/{}/unpublish", seg(&endpoint));
            let removed: Vec<PortMapping> = client
                .call(Method::POST, &path, Some(&Unpublish { spec }))
                .await?;
            if json {
                return print_json(&removed);
            }
            for m in removed {
                println!("{m}");
            }
        }
        Command::Disconnect { network, endpoint } => {
            let path = format!(
                "/v1/networks/{}/endpoints/{}",
                seg(&network),
                seg(&endpoint)
            );
            client.call::<Value>(Method::DELETE, &path, none).await?;
            println!("{endpoint}");
        }
        Command::Fdb(FdbArgs {
            action:
                Some(FdbAction::Add {
                    network,
                    mac,
                    endpoint,
                }),
            ..
        }) => {
            let path = format!("/v1/networks/{}/fdb", seg(&network));
            client
                .call::<Value>(Method::POST, &path, Some(&FdbAdd { mac, endpoint }))
                .await?;
        }
        Command::Fdb(FdbArgs {
            action: Some(FdbAction::Del { network, mac }),
            ..
        }) => {
            let path = format!("/v1/networks/{}/fdb/{}", seg(&network), seg(&mac));
            client.call::<Value>(Method::DELETE, &path, none).await?;
        }
        Command::Fdb(FdbArgs {
            network,
            action: None,
        }) => {
            let path = filtered("/v1/fdb", network.as_deref());
            let rows: Vec<FdbRow> = client.call(Method::GET, &path, none).await?;
            if json {
                return print_json(&rows);
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    let age = if r.origin == "static" {
                        "-".into()
                    } else {
                        fmt_age(r.age_seconds)
                    };
                    vec![r.network, r.mac, r.port, r.origin, age]
                })
                .collect();
            print_table(&["NETWORK", "MAC", "PORT", "ORIGIN", "AGE"], &rows);
        }
        Command::Arp { network } => {
            let path = filtered("/v1/arp", network.as_deref());
            let rows: Vec<ArpRow> = client.call(Method::GET, &path, none).await?;
            if json {
                return print_json(&rows);
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| vec![r.network, r.ip, r.mac, r.owner, r.origin])
                .collect();
            print_table(&["NETWORK", "IP", "MAC", "OWNER", "ORIGIN"], &rows);
        }
        Command::Stats { network } => {
            let path = filtered("/v1/stats", network.as_deref());
            let rows: Vec<NetworkStatsRow> = client.call(Method::GET, &path, none).await?;
            if json {
                return print_json(&rows);
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|s| {
                    vec![
                        s.network,
                        s.fdb_entries.to_string(),
                        s.learned.to_string(),
                        s.mac_moves.to_string(),
                        s.learn_refused_table_full.to_string(),
                        s.aged_out.to_string(),
                        s.arp_suppressed.to_string(),
                        s.gateway_arp_replies.to_string(),
                        s.gateway_echo_replies.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NETWORK",
                    "FDB",
                    "LEARNED",
                    "MOVES",
                    "REFUSED",
                    "AGED_OUT",
                    "ARP_SUPPRESSED",
                    "GW_ARP",
                    "GW_PING",
                ],
                &rows,
            );
        }
        Command::Nat { network } => {
            let path = filtered("/v1/nat", network.as_deref());
            let rows: Vec<NatRow> = client.call(Method::GET, &path, none).await?;
            if json {
                return print_json(&rows);
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    vec![
                        r.protocol,
                        r.direction,
                        r.network,
                        r.container,
                        r.outside,
                        r.host_socket,
                        r.bytes_out.to_string(),
                        r.bytes_in.to_string(),
                        fmt_age(r.age_seconds),
                        fmt_age(r.idle_seconds),
                    ]
                })
                .collect();
            print_table(
                &[
                    "PROTO",
                    "DIR",
                    "NETWORK",
                    "CONTAINER",
                    "OUTSIDE",
                    "HOST_SOCKET",
                    "BYTES_OUT",
                    "BYTES_IN",
                    "AGE",
                    "IDLE",
                ],
                &rows,
            );
        }
        Command::Metrics => {
            let resp = client.send(Method::GET, "/v1/metrics", None).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            check(status, &body)?;
            print!("{}", String::from_utf8_lossy(&body));
        }
        Command::Ports => {
            let ports: Vec<PortRow> = client.call(Method::GET, "/v1/ports", none).await?;
            if json {
                return print_json(&ports);
            }
            let rows: Vec<Vec<String>> = ports
                .into_iter()
                .map(|p| {
                    let drops = if p.drops.is_empty() {
                        "-".to_string()
                    } else {
                        p.drops
                            .iter()
                            .map(|(r, n)| format!("{r}={n}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    vec![
                        p.name,
                        p.kind.as_str().to_string(),
                        p.network,
                        p.rx_packets.to_string(),
                        p.rx_bytes.to_string(),
                        p.tx_packets.to_string(),
                        p.tx_bytes.to_string(),
                        drops,
                        published(&p.published),
                    ]
                })
                .collect();
            print_table(
                &[
                    "PORT",
                    "KIND",
                    "NETWORK",
                    "RX_PKTS",
                    "RX_BYTES",
                    "TX_PKTS",
                    "TX_BYTES",
                    "DROPS",
                    "PUBLISHED",
                ],
                &rows,
            );
        }
        Command::Capture(a) => capture(client, a).await?,
        Command::Trace(a) => trace(client, a).await?,
        Command::Peer(PeerCommand::Add { addr, vni, port }) => {
            let row: PeerRow = client
                .call(
                    Method::POST,
                    "/v1/peers",
                    Some(&PeerAdd { addr, vni, port }),
                )
                .await?;
            if json {
                return print_json(&row);
            }
            println!("{}", row.name);
        }
        Command::Peer(PeerCommand::Rm { addr, vni }) => {
            let path = format!("/v1/peers/{}/{vni}", seg(&addr));
            client.call::<Value>(Method::DELETE, &path, none).await?;
            println!("{addr}");
        }
        Command::Peer(PeerCommand::Ls) | Command::Peers => {
            let rows: Vec<PeerRow> = client.call(Method::GET, "/v1/peers", none).await?;
            if json {
                return print_json(&rows);
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|p| {
                    vec![
                        p.name,
                        p.vtep,
                        p.vni.to_string(),
                        p.network,
                        p.state,
                        p.last_heard_seconds
                            .map_or_else(|| "never".into(), |s| format!("{} ago", fmt_age(s))),
                        p.endpoints.map_or_else(|| "-".into(), |n| n.to_string()),
                        p.rx_packets.to_string(),
                        p.tx_packets.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "VTEP",
                    "VNI",
                    "NETWORK",
                    "STATE",
                    "LAST_HEARD",
                    "ENDPOINTS",
                    "RX_PKTS",
                    "TX_PKTS",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// A live stream from the daemon about one port (`capture`, `trace`): chunks of the
/// response body until the daemon ends it (count reached), or SIGINT or SIGTERM arrives.
struct PortStream {
    body: hyper::body::Incoming,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl PortStream {
    /// `GET /v1/ports/PORT/KIND[?count=N]`; a refusal becomes the daemon's error message.
    async fn open(client: &Client, port: &str, kind: &str, count: Option<u64>) -> Result<Self> {
        let mut path = format!("/v1/ports/{}/{kind}", seg(port));
        if let Some(c) = count {
            path.push_str(&format!("?count={c}"));
        }
        let resp = client.send(Method::GET, &path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await?.to_bytes();
            check(status, &bytes)?;
            bail!("the weft daemon refused the {kind} ({status})");
        }
        use tokio::signal::unix::{signal, SignalKind};
        Ok(PortStream {
            body: resp.into_body(),
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next chunk, or None at the end.
    async fn next(&mut self) -> Result<Option<bytes::Bytes>> {
        loop {
            let frame = tokio::select! {
                f = self.body.frame() => f,
                _ = self.term.recv() => None,
                _ = self.int.recv() => None,
            };
            let Some(frame) = frame else {
                return Ok(None);
            };
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
    }
}

/// Streams a trace: the daemon sends a block of lines per frame; printed as it arrives,
/// until the count is reached or Ctrl-C.
async fn trace(client: &Client, a: TraceArgs) -> Result<()> {
    let mut stream = PortStream::open(client, &a.port, "trace", a.count).await?;
    eprintln!("tracing frames entering {}", a.port);
    let mut stdout = std::io::stdout();
    while let Some(data) = stream.next().await? {
        stdout.write_all(&data)?;
        stdout.flush()?;
    }
    Ok(())
}

/// Streams a capture: whole pcap records only, so the output stays a valid pcap file when
/// interrupted.
async fn capture(client: &Client, a: CaptureArgs) -> Result<()> {
    let mut stream = PortStream::open(client, &a.port, "capture", a.count).await?;
    eprintln!("capturing on {}", a.port);
    let mut out: Option<Box<dyn Write + Send>> = match a.write.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(file) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(file).with_context(|| format!("cannot create {file}"))?,
        ))),
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut header_done = false;
    let mut frames = 0u64;
    while let Some(data) = stream.next().await? {
        pending.extend_from_slice(&data);
        if !header_done {
            if pending.len() < pcap::GLOBAL_HEADER_LEN {
                continue;
            }
            if let Some(w) = out.as_mut() {
                w.write_all(&pending[..pcap::GLOBAL_HEADER_LEN])?;
                w.flush()?;
            }
            pending.drain(..pcap::GLOBAL_HEADER_LEN);
            header_done = true;
        }
        let mut used = 0;
        while let Some(h) = pcap::parse_record_header(&pending[used..]) {
            let end = used + pcap::RECORD_HEADER_LEN + h.caplen as usize;
            if pending.len() < end {
                break;
            }
            let rec = &pending[used..end];
            match out.as_mut() {
                Some(w) => w.write_all(rec)?,
                None => println!("{}", summarize(&h, &rec[pcap::RECORD_HEADER_LEN..])),
            }
            frames += 1;
            used = end;
        }
        pending.drain(..used);
        if let Some(w) = out.as_mut() {
            w.flush()?;
        }
    }
    if let Some(w) = out.as_mut() {
        w.flush()?;
    }
    eprintln!("{frames} frames captured");
    Ok(())
}

/// One line per frame, tcpdump-like: time, MACs, ethertype, length.
fn summarize(h: &pcap::RecordHeader, frame: &[u8]) -> String {
    format!(
        "{}.{:06} {}",
        h.ts_sec,
        h.ts_usec,
        crate::dataplane::trace_text::describe_frame(frame, h.origlen as usize)
    )
}
