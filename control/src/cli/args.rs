//! The command line's shape: every command, subcommand and flag, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Explain whether FROM reaches TO and why: networks, port security, --icc, ARP and FDB,
    /// NAT, published ports, overlay peers, MTU, link state; ends with the verdict and the fix
    Explain(ExplainArgs),
    /// Impair the frames leaving toward a port (netem in the switch): delay, jitter, loss,
    /// duplication, reordering, corruption, a rate limit; --clear removes it
    Impair(ImpairArgs),
    /// Take a port's link down (frames to and from it are dropped) or up again
    Link { port: String, state: LinkState },
    /// Add or remove static VXLAN peers (remote VTEPs)
    #[command(subcommand)]
    Peer(PeerCommand),
    /// List VXLAN peers: name, VTEP, VNI, state, last heard
    Peers,
    /// Run a self-contained lab: namespaces, a network, pings, the learned tables
    Demo,
    /// A new random cluster key: one line, written to FILE with mode 0600 (--out), else printed
    Keygen(KeygenArgs),
    /// This node in the gossip cluster: name, addresses, gossip counters
    Cluster,
    /// weft as a CNI plugin (podman, containerd): `weft cni install`
    #[command(subcommand)]
    Cni(CniCommand),
    /// Labs from YAML files: `weft lab up FILE`, `down`, `ls`, `inspect`, `exec`
    #[command(subcommand)]
    Lab(crate::lab::LabCommand),
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
    #[arg(long, default_value_t = crate::gateway::stack::udp_nat::DEFAULT_UDP_IDLE.as_secs(), value_name = "SECONDS")]
    pub udp_idle_timeout: u64,
    /// Seconds an established proxied TCP connection (outbound or to a published port) may
    /// stay idle before it is closed (default 2 h 4 min, RFC 5382 REQ-5)
    #[arg(long, default_value_t = weft_gateway::tcp::TCP_IDLE.as_secs(), value_name = "SECONDS")]
    pub tcp_idle_timeout: u64,
    /// Serve the API to members of this group too: the socket is made 0660 and owned by the
    /// group (default: root and the daemon's own user only, socket 0600)
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,
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
    /// Serve Docker's remote network and IPAM driver (`docker network create -d weft
    /// --ipam-driver weft ...`); start weft before dockerd
    #[arg(long)]
    pub docker: bool,
    /// The plugin socket Docker finds the driver on (its file name is the driver's name)
    #[arg(long, value_name = "PATH", default_value = crate::docker::DEFAULT_PLUGIN_SOCKET)]
    pub docker_socket: PathBuf,
    /// Docker's API socket, asked for the names of networks and containers
    #[arg(long, value_name = "PATH", default_value = crate::docker::DEFAULT_DOCKER_HOST)]
    pub docker_host: PathBuf,
    /// Serve the live web view (read-only) on PORT or :PORT (loopback) or ADDR:PORT (any
    /// other address only when written out); off by default
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub web: Option<String>,
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
        /// Where connections to published ports come from in the containers: the client's
        /// own address (default) or the gateway's (for containers that route clients elsewhere)
        #[arg(long, value_name = "client|gateway")]
        published_source: Option<String>,
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
pub struct KeygenArgs {
    /// Write the key to FILE, readable by its owner only (mode 0600), instead of printing it;
    /// copy that file to the --cluster-key-file of every node
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace FILE if it exists
    #[arg(long, requires = "out")]
    pub force: bool,
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
    /// Port security: the endpoint may send only with its own MAC and IPv4 address (false:
    /// a nested router, or a lab that teaches spoofing)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub port_security: bool,
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
    /// Port (endpoint or tunnel port name, as in `weft ports`)
    #[arg(required_unless_present = "network", conflicts_with = "network")]
    pub port: Option<String>,
    /// Capture every port of network NET into one pcapng file (an interface per port, with
    /// directions)
    #[arg(long = "network", value_name = "NET")]
    pub network: Option<String>,
    /// On a tunnel port: capture its VXLAN datagrams (outer Ethernet/IPv4/UDP headers)
    /// instead of the inner frames
    #[arg(long = "outer", conflicts_with = "network")]
    pub outer: bool,
    /// Write pcap to FILE ('-' for standard output) instead of printing a summary
    #[arg(short = 'w', long = "write")]
    pub write: Option<String>,
    /// Stop after COUNT frames
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// An endpoint, an address (an endpoint's, or outside every network)
    pub from: String,
    /// An endpoint, an address, or HOST:PORT of a published port
    pub to: String,
    /// The destination port, like 80/tcp or 53/udp
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Port (endpoint or tunnel port name, as in `weft ports`)
    pub port: String,
    /// Stop after COUNT frames
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
    /// Trace one synthetic frame instead of live ones, changing nothing and sending nothing:
    /// 'arp who-has IP', 'icmp [SRC >] DST', 'tcp [SRC:PORT >] DST:PORT [syn|ack|fin|rst]',
    /// 'udp [SRC:PORT >] DST:PORT' (an address may be GW or an endpoint name; left out is
    /// filled in from the port's endpoint)
    #[arg(long = "inject", value_name = "SPEC", conflicts_with_all = ["hex", "count"])]
    pub inject: Option<String>,
    /// Trace one synthetic frame given as hex (Ethernet header first)
    #[arg(long = "hex", value_name = "HEX", conflicts_with = "count")]
    pub hex: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum CniCommand {
    /// Copy this binary to BIN_DIR/weft and write CONF_DIR/NETWORK.conflist (the network is
    /// created at the first container's ADD when --subnet is given)
    Install(CniInstallArgs),
}

#[derive(Args, Debug)]
pub struct CniInstallArgs {
    /// The runtime's CNI plugin directory
    #[arg(long, default_value = "/opt/cni/bin")]
    pub bin_dir: PathBuf,
    /// The runtime's CNI configuration directory
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub conf_dir: PathBuf,
    /// The weft network, also the CNI network's name (`podman run --network NAME`)
    #[arg(long)]
    pub network: String,
    /// Subnet to create the network with if it does not exist (as `network create`)
    #[arg(long)]
    pub subnet: Option<String>,
    /// Gateway address (as `network create`)
    #[arg(long)]
    pub gateway: Option<String>,
    /// bridge or overlay (as `network create`)
    #[arg(long, value_name = "bridge|overlay")]
    pub driver: Option<String>,
    /// Inter-container communication (as `network create`)
    #[arg(long, value_name = "BOOL")]
    pub icc: Option<bool>,
    /// No outbound NAT and no published ports (as `network create`)
    #[arg(long)]
    pub internal: bool,
    /// Outbound NAT: proxy or none (as `network create`)
    #[arg(long, value_name = "proxy|none")]
    pub nat: Option<String>,
    /// MTU of the containers' interfaces (as `network create`)
    #[arg(long)]
    pub mtu: Option<u32>,
    /// VNI of an overlay network (as `network create`)
    #[arg(long)]
    pub vni: Option<u32>,
    /// Port kind of the containers' interfaces
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

#[derive(Args, Debug)]
pub struct ImpairArgs {
    /// The port (as `weft ports` lists it)
    pub port: String,
    /// Delay every frame, e.g. 20ms
    #[arg(long)]
    pub delay: Option<String>,
    /// Vary the delay by up to this much either way, e.g. 5ms
    #[arg(long)]
    pub jitter: Option<String>,
    /// Drop this share of frames, e.g. 10%
    #[arg(long)]
    pub loss: Option<String>,
    /// Send this share of frames twice, e.g. 1%
    #[arg(long)]
    pub duplicate: Option<String>,
    /// Send this share of frames at once, ahead of the delayed ones (needs --delay), e.g. 25%
    #[arg(long)]
    pub reorder: Option<String>,
    /// Flip one bit in this share of frames, e.g. 0.1%
    #[arg(long)]
    pub corrupt: Option<String>,
    /// Limit the port to this rate, e.g. 10mbit (frames beyond 1 s of backlog are dropped)
    #[arg(long)]
    pub rate: Option<String>,
    /// Seed of the random choices: the same seed, the same fates (default: from the clock)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Remove the port's impairment
    #[arg(long, conflicts_with_all = ["delay", "jitter", "loss", "duplicate", "reorder", "corrupt", "rate", "seed"])]
    pub clear: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LinkState {
    Up,
    Down,
}
