//! `weft network create --icc=false`: endpoints reach the gateway (ARP, ping, DNS) but not
//! each other; ping and TCP both fail and the drops are counted by reason. The outside and
//! published ports still work.

use std::time::Duration;
use weft_tests::*;

#[test]
fn without_icc_endpoints_reach_the_gateway_but_not_each_other() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("closed", "10.95.0.0/24", &["--icc=false"]);
    lab.create_network("open", "10.96.0.0/24", &[]);
    let a = lab.connect("closed", &lab.ns("a"), &[]);
    let b = lab.connect("closed", &lab.ns("b"), &["--kind", "veth"]);
    let c = lab.connect("open", &lab.ns("c"), &[]);
    let d = lab.connect("open", &lab.ns("d"), &[]);

    let nets = lab.networks();
    let closed = nets
        .iter()
        .find(|n| n["name"] == "closed")
        .expect("closed listed");
    assert_eq!(closed["icc"], false, "{closed}");
    assert_eq!(lab.inspect("open")["icc"], true);

    // The gateway answers both endpoints.
    assert!(lab.ping(&a.ns, "10.95.0.1"));
    assert!(lab.ping(&b.ns, "10.95.0.1"));
    // Endpoints of the closed network cannot reach each other: ping ...
    assert!(
        !lab.ping(&a.ns, &b.ip),
        "ping crossed an --icc=false network"
    );
    // ... nor TCP (a listener on b, a connect from a).
    let mut server = lab.spawn_in(
        &b.ns,
        &["python3", "-c", "import socket; s=socket.socket(); s.bind(('0.0.0.0', 7777)); s.listen(); s.settimeout(8); s.accept()"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.exec(
        &a.ns,
        &[
            "python3",
            "-c",
            &format!(
                "import socket; socket.create_connection(('{}', 7777), timeout=2)",
                b.ip
            ),
        ],
    );
    assert!(!out.status.success(), "TCP connected across --icc=false");
    server.kill();
    let port = lab.port(&a.name);
    assert!(drops(&port, "icc_denied") >= 2, "{port}");

    // The open network is unaffected.
    lab.assert_ping(&c, &d);
    // The setting persists across a restart.
    let st = lab.stop_daemon();
    assert!(st.success(), "daemon did not exit cleanly: {st}");
    lab.start_daemon();
    assert!(lab.ping(&a.ns, "10.95.0.1"));
    assert!(!lab.ping(&a.ns, &b.ip));
    assert_eq!(lab.inspect("closed")["icc"], false);
}

/// Without inter-container communication, endpoints still reach the outside through the
/// gateway's proxy NAT, and their published ports still answer the host.
#[test]
fn without_icc_the_outside_and_published_ports_still_work() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let out_ns = lab.outside(220);
    lab.create_network("closed", "10.94.0.0/24", &["--icc=false"]);
    let a = lab.connect("closed", &lab.ns("a"), &[]);
    let dir = std::env::temp_dir().join(format!("weft-icc-{}", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), format!("token-{}\n", lab.prefix)).unwrap();
    let dir_s = dir.to_str().unwrap().to_string();
    let _outside_server = lab.spawn_in(
        &out_ns,
        &[
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
            "10.220.0.2",
            "--directory",
            &dir_s,
        ],
    );
    let _container_server = lab.spawn_in(
        &a.ns,
        &[
            "python3",
            "-m",
            "http.server",
            "80",
            "--bind",
            "0.0.0.0",
            "--directory",
            &dir_s,
        ],
    );
    let published = lab.weft_ok(&["publish", &a.name, "-P", "80"]);
    let host_port = published
        .trim()
        .split("->")
        .next()
        .and_then(|h| h.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no host port in {published:?}"));
    let fetch = |ns: Option<&str>, url: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let args = ["curl", "-sS", "--noproxy", "*", "--max-time", "3", url];
            let o = match ns {
                Some(ns) => lab.exec(ns, &args),
                None => run_timeout(
                    std::process::Command::new(args[0]).args(&args[1..]),
                    Duration::from_secs(5),
                ),
            };
            if o.status.success() || std::time::Instant::now() > deadline {
                return stdout_of(&o);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let token = format!("token-{}", lab.prefix);
    assert_eq!(
        fetch(Some(&a.ns), "http://10.220.0.2:8000/index.html").trim(),
        token,
        "the outside through the proxy NAT"
    );
    assert_eq!(
        fetch(None, &format!("http://127.0.0.1:{host_port}/index.html")).trim(),
        token,
        "the published port from the host"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
