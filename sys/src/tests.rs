//! Integration checks against real kernel objects (needs root, `ip`, `ping`). Every netns and
//! interface is named `wsys<PID>...` and removed by a Drop guard, also when a check fails.

use super::*;
use weft_wire::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// False, with a line on stderr saying why, when the test cannot run: it needs root.
fn root_or_skip(test: &str) -> bool {
    if effective_uid() == 0 {
        return true;
    }
    eprintln!(
        "skipped: {test} (sys/src/tests.rs) needs root (network namespaces, TAPs); run as root"
    );
    false
}

fn uniq(suffix: &str) -> String {
    format!("wsys{}{}", std::process::id(), suffix)
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns add` races with itself when it first sets up /run/netns; serialise it.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// A named netns created with `ip netns add`, deleted on drop.
struct NsGuard {
    name: String,
}

impl NsGuard {
    fn new(suffix: &str) -> NsGuard {
        let name = uniq(suffix);
        let _lock = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        NsGuard { name }
    }

    fn netns(&self) -> Netns {
        Netns::from_name_or_path(&self.name).expect("open netns")
    }

    fn exec(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _lock = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A link in the test thread's (root) namespace, deleted on drop.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = delete_link(&self.0);
    }
}

/// A child process killed on drop.
struct ChildGuard(Child);

impl ChildGuard {
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cfg(mac_last: u8, addr: [u8; 4], prefix_len: u8, gateway: Option<[u8; 4]>) -> IfConfig {
    IfConfig {
        mac: [0x02, 0x57, 0x53, 0x00, 0x00, mac_last],
        mtu: 1500,
        addr: Ipv4Addr::from(addr),
        prefix_len,
        gateway: gateway.map(Ipv4Addr::from),
    }
}

fn link_flags(link: &str) -> Vec<String> {
    let start = link.find('<').expect("flags") + 1;
    let end = link[start..].find('>').expect("flags") + start;
    link[start..end].split(',').map(str::to_owned).collect()
}

fn in_ns_exists(netns: &Netns, ifname: &'static str) -> bool {
    netns.run(move || Ok(interface_exists(ifname))).unwrap()
}

#[test]
fn tap_configure_persist_reattach() {
    if !root_or_skip("tap_configure_persist_reattach") {
        return;
    }
    let ns = NsGuard::new("a");
    let netns = ns.netns();

    // Namespace identity: same inode whatever the path, different from ours.
    let inner_id = netns.run(|| Ok(Netns::current()?.id())).unwrap();
    assert_eq!(inner_id, netns.id());
    assert_ne!(inner_id, Netns::current().unwrap().id());
    let by_path = Netns::from_name_or_path(&format!("/run/netns/{}", ns.name)).unwrap();
    assert_eq!(by_path.id(), netns.id());

    let mut c = cfg(0x01, [198, 18, 1, 2], 24, Some([198, 18, 1, 1]));
    c.mtu = 1400;
    let tap = netns
        .run(move || {
            let tap = Tap::open("eth0", true)?;
            configure_interface("eth0", &c)?;
            configure_interface("eth0", &c)?;
            Ok(tap)
        })
        .unwrap();
    assert_eq!(tap.name(), "eth0");

    let link = ip(&["-n", &ns.name, "-d", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:57:53:00:00:01"), "{link}");
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(link_flags(&link).iter().any(|f| f == "UP"), "{link}");
    assert!(link.contains("qlen 1000"), "{link}");
    assert!(link.contains("tun type tap"), "{link}");
    assert!(link.contains("pi off"), "{link}");
    assert!(link.contains("vnet_hdr on"), "{link}");
    assert!(link.contains("persist on"), "{link}");
    let addr = ip(&["-n", &ns.name, "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addr.contains("inet 198.18.1.2/24 brd 198.18.1.255"),
        "{addr}"
    );
    assert_eq!(addr.matches("inet ").count(), 1, "{addr}");
    let route = ip(&["-n", &ns.name, "route", "show", "default"]);
    assert!(route.contains("default via 198.18.1.1 dev eth0"), "{route}");
    assert_eq!(route.lines().count(), 1, "{route}");
    if let Ok(out) = ns.exec(&["ethtool", "-k", "eth0"]).output() {
        if out.status.success() {
            let k = String::from_utf8_lossy(&out.stdout);
            assert!(k.contains("tcp-segmentation-offload: on"), "{k}");
            assert!(k.contains("tx-checksumming: on"), "{k}");
        }
    }

    // A non-TAP name and a TAP that is held open are refused with clear errors.
    match netns.run(|| Tap::open("lo", false)) {
        Err(SysError::InterfaceExists { ifname }) => assert_eq!(ifname, "lo"),
        other => panic!("expected InterfaceExists, got {other:?}"),
    }
    match netns.run(|| Tap::open("eth0", true)) {
        Err(e @ SysError::TapBusy { .. }) => eprintln!("busy: {e}"),
        other => panic!("expected TapBusy, got {other:?}"),
    }

    // Persistent: survives closing its fd, re-attaches with its configuration intact.
    drop(tap);
    assert!(in_ns_exists(&netns, "eth0"));
    let tap = netns
        .run(move || {
            let tap = Tap::open("eth0", true)?;
            configure_interface("eth0", &c)?;
            Ok(tap)
        })
        .unwrap();
    let addr = ip(&["-n", &ns.name, "-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("inet 198.18.1.2/24"), "{addr}");
    let link = ip(&["-n", &ns.name, "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:57:53:00:00:01"), "{link}");

    // Changing the MAC of an UP interface works too.
    let mut c2 = c;
    c2.mac[5] = 0x09;
    netns.run(move || configure_interface("eth0", &c2)).unwrap();
    let link = ip(&["-n", &ns.name, "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:57:53:00:00:09"), "{link}");
    assert!(link_flags(&link).iter().any(|f| f == "UP"), "{link}");

    // Through the data plane's hands (an untyped fd) and back: the same TAP.
    let fd: OwnedFd = tap.into();
    let tap = Tap::from_owned(fd).unwrap();
    assert_eq!(tap.name(), "eth0");
    tap.clear_persist().unwrap();
    assert!(in_ns_exists(&netns, "eth0"));
    drop(tap);
    assert!(!in_ns_exists(&netns, "eth0"));
    // An fd that is not a TAP is refused.
    let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    match Tap::from_owned(a.into()) {
        Err(SysError::Tun {
            op: "TUNGETIFF", ..
        }) => {}
        other => panic!("expected a TUNGETIFF error, got {other:?}"),
    }
}

fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn veth_packet_socket() {
    if !root_or_skip("veth_packet_socket") {
        return;
    }
    let ns = NsGuard::new("b");
    let netns = ns.netns();
    let host = uniq("h");
    let _link = LinkGuard(host.clone());

    create_veth(&host, "eth0", &netns).unwrap();
    assert!(interface_exists(&host));
    assert!(in_ns_exists(&netns, "eth0"));
    match create_veth(&host, "eth1", &netns) {
        Err(SysError::InterfaceExists { ifname }) => assert_eq!(ifname, host),
        other => panic!("expected InterfaceExists, got {other:?}"),
    }
    make_inert(&host).unwrap();
    set_link_up(&host).unwrap();
    set_mtu(&host, 1500).unwrap();
    // Inert: up, but without any address of its own.
    let conf = |key: &str| std::fs::read_to_string(format!("/proc/sys/net/{key}")).unwrap();
    assert_eq!(conf(&format!("ipv6/conf/{host}/disable_ipv6")).trim(), "1");
    assert_eq!(conf(&format!("ipv4/conf/{host}/rp_filter")).trim(), "1");
    assert_eq!(
        ip(&["addr", "show", "dev", &host]).matches("inet").count(),
        0
    );
    let c = cfg(0x11, [198, 18, 2, 1], 24, None);
    netns.run(move || configure_interface("eth0", &c)).unwrap();
    let pkt = PacketSocket::open(&host).unwrap();
    assert_eq!(pkt.ifname(), host);
    let epoll = Epoll::new().unwrap();
    epoll.add(pkt.as_fd(), 7).unwrap();

    let rx_before: u64 = {
        let out = ns
            .exec(&["cat", "/sys/class/net/eth0/statistics/rx_packets"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };

    // Ping a neighbour that this test impersonates: answer its ARP and its echo request.
    let mut ping = ChildGuard(
        ns.exec(&["ping", "-n", "-c", "1", "-W", "5", "198.18.2.2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fake_mac = [0x02, 0x57, 0x53, 0x00, 0x00, 0x22];
    let neighbour = [198, 18, 2, 2];
    let (mut saw_arp, mut saw_echo) = (false, false);
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut tokens = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !saw_echo {
        epoll.wait(&mut tokens, 8, 100).unwrap();
        loop {
            let n = match read_fd(pkt.as_fd(), &mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            };
            let hdr = VnetHdr::parse(&buf[..n]).expect("vnet header");
            assert!(!hdr.is_gso(), "{hdr:?}");
            let f = &buf[VNET_HDR_LEN..n];
            assert!(f.len() >= 14);
            let ethertype = u16::from_be_bytes([f[12], f[13]]);
            if ethertype == 0x0806 && f.len() >= 42 && f[20..22] == [0, 1] && f[38..42] == neighbour
            {
                saw_arp = true;
                let mut reply = vec![0u8; VNET_HDR_LEN];
                reply.extend_from_slice(&f[6..12]); // dst: the asker
                reply.extend_from_slice(&fake_mac);
                reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
                reply.extend_from_slice(&fake_mac);
                reply.extend_from_slice(&neighbour);
                reply.extend_from_slice(&f[22..28]); // target MAC = sender MAC
                reply.extend_from_slice(&f[28..32]); // target IP = sender IP
                reply.resize(VNET_HDR_LEN + 60, 0);
                assert_eq!(write_fd(pkt.as_fd(), &reply).unwrap(), reply.len());
            } else if ethertype == 0x0800 && f[0..6] == fake_mac && f[23] == 1 {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
                let icmp = 14 + ihl;
                if f[icmp] != 8 {
                    continue;
                }
                saw_echo = true;
                let mut r = vec![0u8; VNET_HDR_LEN];
                r.extend_from_slice(&f[..14 + total]);
                let e = &mut r[VNET_HDR_LEN..];
                e.copy_within(6..12, 0);
                e[6..12].copy_from_slice(&fake_mac);
                let (src, dst) = ([e[26], e[27], e[28], e[29]], [e[30], e[31], e[32], e[33]]);
                e[26..30].copy_from_slice(&dst);
                e[30..34].copy_from_slice(&src);
                e[icmp] = 0; // echo reply
                e[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
                let sum = inet_checksum(&e[icmp..14 + total]);
                e[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
                assert_eq!(write_fd(pkt.as_fd(), &r).unwrap(), r.len());
            }
        }
    }
    assert!(saw_arp, "no ARP request read from the packet socket");
    assert!(saw_echo, "no ICMP echo request read from the packet socket");
    let status = ping
        .wait_timeout(Duration::from_secs(5))
        .expect("ping hangs");
    assert!(status.success(), "ping did not get the forged echo reply");

    let rx_after: u64 = {
        let out = ns
            .exec(&["cat", "/sys/class/net/eth0/statistics/rx_packets"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    assert!(rx_after >= rx_before + 2, "rx {rx_before} -> {rx_after}");

    delete_link(&host).unwrap();
    assert!(!interface_exists(&host));
    assert!(!in_ns_exists(&netns, "eth0"));
    delete_link(&host).unwrap();
}

#[derive(Debug, Default)]
struct FwdStats {
    frames: usize,
    gso_frames: usize,
    max_len: usize,
    write_errors: usize,
    gso_sizes: Vec<u16>,
    /// GSO frames read per side (index = token of the fd they were read from).
    gso_from: [usize; 2],
}

/// Forwards frames between two port fds (TAP or packet socket, both directions) on a
/// thread, with Epoll.
struct Forwarder {
    stop: Arc<EventFd>,
    handle: Option<JoinHandle<FwdStats>>,
}

impl Forwarder {
    fn start(a: OwnedFd, b: OwnedFd) -> Forwarder {
        let stop = Arc::new(EventFd::new().unwrap());
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let ep = Epoll::new().unwrap();
            ep.add(a.as_fd(), 0).unwrap();
            ep.add(b.as_fd(), 1).unwrap();
            ep.add(stop2.fd(), 2).unwrap();
            let mut stats = FwdStats::default();
            let mut buf = vec![0u8; MAX_FRAME_LEN];
            let mut tokens = Vec::new();
            loop {
                ep.wait(&mut tokens, 16, 1000).unwrap();
                for &t in &tokens {
                    let (src, dst) = match t {
                        0 => (&a, &b),
                        1 => (&b, &a),
                        _ => {
                            stop2.drain();
                            return stats;
                        }
                    };
                    loop {
                        let n = match read_fd(src.as_fd(), &mut buf) {
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => panic!("port read: {e}"),
                        };
                        let hdr = VnetHdr::parse(&buf[..n]).expect("vnet header");
                        stats.frames += 1;
                        stats.max_len = stats.max_len.max(n);
                        if hdr.is_gso() {
                            stats.gso_frames += 1;
                            stats.gso_from[t as usize] += 1;
                            assert!(hdr.needs_csum(), "{hdr:?}");
                            assert!(
                                hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN == VIRTIO_NET_HDR_GSO_TCPV4,
                                "{hdr:?}"
                            );
                            stats.gso_sizes.push(hdr.gso_size);
                        }
                        match write_fd(dst.as_fd(), &buf[..n]) {
                            Ok(w) if w == n => {}
                            _ => stats.write_errors += 1,
                        }
                    }
                }
            }
        });
        Forwarder {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> FwdStats {
        self.stop.notify();
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.stop.notify();
            let _ = handle.join();
        }
    }
}

/// Sends `bytes` over TCP from a socket in `from` to a listener on `to_ip` in `to`, and
/// checks they all arrive.
fn tcp_transfer(from: &Netns, to: &Netns, to_ip: Ipv4Addr, bytes: usize) {
    let listener = to
        .run(move || {
            TcpListener::bind((to_ip, 0)).map_err(|source| SysError::Io {
                op: "bind".into(),
                source,
            })
        })
        .unwrap();
    let server_addr: SocketAddr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || -> std::io::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut total = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    });
    let sent = from
        .run(move || {
            let io = |op: &str| {
                let op = op.to_owned();
                move |source| SysError::Io { op, source }
            };
            let mut s = TcpStream::connect_timeout(&server_addr, Duration::from_secs(5))
                .map_err(io("connect"))?;
            s.set_write_timeout(Some(Duration::from_secs(10)))
                .map_err(io("timeout"))?;
            let chunk = vec![0x5au8; 256 * 1024];
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                s.write_all(&chunk[..n]).map_err(io("write"))?;
                sent += n;
            }
            s.shutdown(std::net::Shutdown::Write)
                .map_err(io("shutdown"))?;
            Ok(sent)
        })
        .unwrap();
    let received = server.join().unwrap().unwrap();
    assert_eq!(received, sent);
}

#[test]
fn tap_to_tap_ping_and_tso() {
    if !root_or_skip("tap_to_tap_ping_and_tso") {
        return;
    }
    let nsa = NsGuard::new("c");
    let nsb = NsGuard::new("d");
    let (na, nb) = (nsa.netns(), nsb.netns());
    let b_ip = Ipv4Addr::new(198, 18, 3, 2);
    let ca = cfg(0x31, [198, 18, 3, 1], 24, None);
    let cb = cfg(0x32, b_ip.octets(), 24, None);
    let fa = na
        .run(move || {
            let tap = Tap::open("eth0", false)?;
            configure_interface("eth0", &ca)?;
            Ok(tap)
        })
        .unwrap();
    let fb = nb
        .run(move || {
            let tap = Tap::open("eth0", false)?;
            configure_interface("eth0", &cb)?;
            Ok(tap)
        })
        .unwrap();
    let fwd = Forwarder::start(fa.into(), fb.into());

    let status = nsa
        .exec(&[
            "ping",
            "-n",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "3",
            "198.18.3.2",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ping across the forwarded TAPs failed");

    // TCP transfer: the sender's TAP has TSO, so superframes must cross whole.
    tcp_transfer(&na, &nb, b_ip, 4 << 20);

    let stats = fwd.stop();
    eprintln!(
        "forwarded {} frames, {} GSO, largest {} bytes, gso_size {:?}",
        stats.frames,
        stats.gso_frames,
        stats.max_len,
        &stats.gso_sizes[..stats.gso_sizes.len().min(5)]
    );
    assert_eq!(stats.write_errors, 0);
    assert!(stats.gso_frames > 0, "no GSO frame crossed: {stats:?}");
    assert!(stats.max_len > VNET_HDR_LEN + 1514, "{stats:?}");
    assert!(
        stats.gso_sizes.iter().all(|&s| s > 0 && s <= 1460),
        "{:?}",
        stats.gso_sizes
    );
}

/// What the switch does: a veth port (AF_PACKET on the host end) and a TAP port exchange
/// GSO superframes in both directions.
#[test]
fn veth_to_tap_tso_both_ways() {
    if !root_or_skip("veth_to_tap_tso_both_ways") {
        return;
    }
    let nsa = NsGuard::new("e");
    let nsb = NsGuard::new("f");
    let (na, nb) = (nsa.netns(), nsb.netns());
    let host = uniq("v");
    let _link = LinkGuard(host.clone());
    let a_ip = Ipv4Addr::new(198, 18, 4, 1);
    let b_ip = Ipv4Addr::new(198, 18, 4, 2);
    let ca = cfg(0x41, a_ip.octets(), 24, None);
    let cb = cfg(0x42, b_ip.octets(), 24, None);

    create_veth(&host, "eth0", &na).unwrap();
    disable_ipv6(&host).unwrap();
    set_link_up(&host).unwrap();
    na.run(move || configure_interface("eth0", &ca)).unwrap();
    let pkt = PacketSocket::open(&host).unwrap();
    let tap = nb
        .run(move || {
            let tap = Tap::open("eth0", false)?;
            configure_interface("eth0", &cb)?;
            Ok(tap)
        })
        .unwrap();
    let fwd = Forwarder::start(pkt.into_owned(), tap.into_owned());

    let status = nsa
        .exec(&[
            "ping",
            "-n",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "3",
            "198.18.4.2",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ping veth -> TAP failed");
    tcp_transfer(&na, &nb, b_ip, 4 << 20);
    tcp_transfer(&nb, &na, a_ip, 4 << 20);

    let stats = fwd.stop();
    eprintln!(
        "veth<->tap: {} frames, GSO from veth {} / from tap {}, largest {} bytes",
        stats.frames, stats.gso_from[0], stats.gso_from[1], stats.max_len
    );
    assert_eq!(stats.write_errors, 0, "{stats:?}");
    assert!(
        stats.gso_from[0] > 0,
        "no GSO frame read from the packet socket"
    );
    assert!(stats.gso_from[1] > 0, "no GSO frame read from the TAP");
}

#[test]
fn epoll_and_eventfd() {
    let ep = Epoll::new().unwrap();
    let ev = EventFd::new().unwrap();
    ep.add(ev.fd(), 42).unwrap();
    let mut out = vec![1, 2, 3];
    assert_eq!(ep.wait(&mut out, 4, 0).unwrap(), 0);
    assert!(out.is_empty());
    ev.notify();
    ev.notify();
    assert_eq!(ep.wait(&mut out, 4, 1000).unwrap(), 1);
    assert_eq!(out, [42]);
    ev.drain();
    assert_eq!(ep.wait(&mut out, 4, 0).unwrap(), 0);
    ep.delete(ev.fd()).unwrap();
    ep.delete(ev.fd()).unwrap();
    ev.notify();
    assert_eq!(ep.wait(&mut out, 4, 0).unwrap(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(read_fd(ev.fd(), &mut buf).unwrap(), 8);
    let e = read_fd(ev.fd(), &mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
}

#[test]
fn errors_are_specific_and_readable() {
    if !root_or_skip("errors_are_specific_and_readable") {
        return;
    }
    let name = uniq("nope");
    let e = Netns::from_name_or_path(&name).unwrap_err();
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(matches!(e, SysError::NoSuchNetns { .. }));
    assert!(msg.contains(&name) && msg.contains("ip netns"), "{msg}");

    let e = Netns::from_pid(999_999_999).unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, SysError::NoSuchProcess { pid: 999_999_999 }));
    assert!(e.to_string().contains("999999999"));

    let e = Netns::from_name_or_path("/proc/self/ns/mnt").unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, SysError::NotNetns { .. }));
    let e = Netns::from_name_or_path("/proc/version").unwrap_err();
    assert!(matches!(e, SysError::NotNetns { .. }));
    let e = Netns::from_name_or_path("/nonexistent/netns").unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, SysError::Netns { .. }));

    let cur = Netns::current().unwrap();
    assert_eq!(cur.id(), Netns::from_pid(std::process::id()).unwrap().id());

    match create_veth("lo", &uniq("p"), &cur) {
        Err(e @ SysError::InterfaceExists { .. }) => {
            eprintln!("{e}");
            assert!(e.to_string().contains("lo"));
        }
        other => panic!("expected InterfaceExists, got {other:?}"),
    }
    assert!(!interface_exists(&uniq("p")));
    let host = uniq("x");
    let _guard = LinkGuard(host.clone());
    match create_veth(&host, "lo", &cur) {
        Err(e @ SysError::PeerInterfaceExists { .. }) => eprintln!("{e}"),
        other => panic!("expected PeerInterfaceExists, got {other:?}"),
    }
    assert!(!interface_exists(&host));

    let gone = uniq("gone");
    delete_link(&gone).unwrap();
    assert!(matches!(
        interface_index(&gone),
        Err(SysError::NoSuchInterface { .. })
    ));
    assert!(interface_index("lo").unwrap() > 0);
    let e = interface_index("this-name-is-too-long").unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, SysError::InvalidIfname { .. }));
    let c = cfg(0x01, [198, 18, 9, 1], 24, None);
    let e = configure_interface(&gone, &c).unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, SysError::NoSuchInterface { .. }));
    let e = PacketSocket::open(&gone).unwrap_err();
    assert!(matches!(e, SysError::NoSuchInterface { .. }));
    let bad_gw = cfg(0x01, [198, 18, 9, 1], 24, Some([198, 18, 10, 1]));
    let e = configure_interface("lo", &bad_gw).unwrap_err();
    eprintln!("{e}");
    assert!(matches!(e, SysError::InvalidConfig { .. }));
    let mut bad_mac = c;
    bad_mac.mac[0] = 0x01;
    assert!(matches!(
        configure_interface("lo", &bad_mac),
        Err(SysError::InvalidConfig { .. })
    ));
}

#[test]
fn group_names_resolve_and_peers_report_their_groups() {
    assert_eq!(crate::group_id("root").unwrap(), Some(0));
    assert_eq!(crate::group_id("no-such-group-weft").unwrap(), None);
    assert!(crate::group_id("a\0b").is_err());
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    use std::os::fd::AsFd;
    // The peer is this process: its supplementary groups.
    let groups = crate::peer_groups(a.as_fd()).unwrap();
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = ours.lines().find(|l| l.starts_with("Groups:")).unwrap();
    let want: Vec<u32> = line[7..]
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    assert_eq!(groups, want);
}
