//! A SYN flood from one container (issue 10): 3 000 SYNs to a black-holed outside address
//! fill the flooding endpoint's share of connects under way, not the gateway's: a neighbour
//! on the same network and a container on another network still connect within a second,
//! the daemon's descriptors stay under its limit, and the refusals are counted on the
//! flooder's port.

use std::fs;
use std::time::{Duration, Instant};

use weft_tests::*;

/// Sends argv[3] SYNs from argv[4] (distinct source ports) to argv[1]:argv[2] through a raw
/// socket (no socket of the flooder's kernel waits for them), then prints "sent".
const FLOODER: &str = r#"
import socket, struct, sys
dst, dport, n, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.connect((dst, 0))
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
for i in range(n):
    sport = 20000 + i
    h = struct.pack("!HHIIBBHHH", sport, dport, 1000 + i, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(h))
    h = h[:16] + struct.pack("!H", csum(pseudo + h)) + h[18:]
    s.send(h)
print("sent")
"#;

/// Connects to argv[1]:argv[2] with a timeout of argv[3] s; prints the seconds it took.
const CONNECTOR: &str = r#"
import socket, sys, time
t = time.monotonic()
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
print("%.3f" % (time.monotonic() - t))
"#;

fn open_files(pid: u32) -> (usize, usize) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .expect("Max open files in /proc/PID/limits");
    (fds, soft)
}

#[test]
fn a_syn_flood_fills_the_flooders_share_only() {
    root_or_skip!();
    let lab = Lab::new();
    let out = lab.outside(234);
    // 10.234.0.3 is a black hole: the host sends its SYNs to a MAC nobody has.
    let host_end = format!("{}o234", lab.prefix);
    let o = std::process::Command::new("ip")
        .args([
            "neigh",
            "replace",
            "10.234.0.3",
            "lladdr",
            "02:00:00:00:99:99",
        ])
        .args(["dev", &host_end, "nud", "permanent"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ip neigh: {o:?}");
    let _server = lab.spawn_in(
        &out,
        &["python3", "-c", "import socket,time\ns=socket.create_server(('10.234.0.2',8080),backlog=64)\nprint('ready',flush=True)\nwhile True:\n  c,_=s.accept()\n"],
    );
    lab.create_network("a", "10.76.0.0/24", &[]);
    lab.create_network("b", "10.77.0.0/24", &[]);
    let flooder = lab.connect("a", &lab.ns("flooder"), &["--name", "flooder"]);
    let neighbour = lab.connect("a", &lab.ns("neighbour"), &["--name", "neighbour"]);
    let other = lab.connect("b", &lab.ns("other"), &["--name", "other"]);
    // The control: before the flood, the neighbour connects.
    let connect = |e: &Endpoint| {
        lab.exec(
            &e.ns,
            &["python3", "-c", CONNECTOR, "10.234.0.2", "8080", "1"],
        )
    };
    let wait = Instant::now() + Duration::from_secs(5);
    while !connect(&neighbour).status.success() {
        assert!(
            Instant::now() < wait,
            "control: the neighbour cannot connect before the flood"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let sent = lab.exec_ok(
        &flooder.ns,
        &[
            "python3",
            "-c",
            FLOODER,
            "10.234.0.3",
            "80",
            "3000",
            &flooder.ip,
        ],
    );
    assert!(sent.contains("sent"), "{sent}");
    for e in [&neighbour, &other] {
        let o = connect(e);
        assert!(
            o.status.success(),
            "{} could not connect within 1 s during the flood: {}\n{}",
            e.name,
            stderr_of(&o),
            lab.weft_ok(&["ports"])
        );
    }
    let pid = lab.daemon_pid().expect("daemon running");
    let (fds, soft) = open_files(pid);
    assert!(fds < soft / 2, "{fds} descriptors open, soft limit {soft}");
    let busy = |name: &str| {
        lab.port(name)["drops"]["gateway_busy"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(busy("flooder") > 2_000, "{}", lab.port("flooder"));
    assert_eq!(busy("neighbour"), 0, "{}", lab.port("neighbour"));
}
