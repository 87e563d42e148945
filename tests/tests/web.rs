//! `weft daemon --web`: the live web view in a real browser (Debian's headless Chromium
//! driven by chromium-driver and python3-selenium, `tests/web/web_view.py`), its read-only
//! surface and its refusals, checked with curl. The daemon runs in a host namespace of its
//! own, and so do the browser and curl: the view's loopback port is that namespace's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_tests::hosts::{key_file, tunnel_name, veth_underlay, HostDaemon};
use weft_tests::*;

/// Set to a path to keep the browser test's screenshot there (the lab's directory, where
/// it is taken, is removed at the end).
const SCREENSHOT_ENV: &str = "WEFT_WEB_SCREENSHOT";

fn require_browser() {
    require_tool("chromium");
    require_tool("chromedriver");
    let o = run_timeout(
        Command::new("/usr/bin/python3").args(["-c", "import selenium"]),
        CLI_TIMEOUT,
    );
    assert!(
        o.status.success(),
        "the browser test needs Debian's python3-selenium for /usr/bin/python3 (apt-get install python3-selenium): {}",
        describe(&o)
    );
}

/// `curl` inside `ns`: (status code, headers, body).
fn curl(lab: &Lab, ns: &str, args: &[&str]) -> (u16, String, String) {
    let mut cmd = vec!["curl", "-sS", "-m", "10", "-D", "-"];
    cmd.extend_from_slice(args);
    let out = lab.exec_ok(ns, &cmd);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from curl {args:?}: {out}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A daemon in its own host namespace with `--web WEB`.
fn web_daemon(lab: &Lab, web: &str) -> (String, HostDaemon) {
    let host = lab.ns("host");
    let args = ["--web", web].map(String::from);
    let d = HostDaemon::start(lab, "web", &host, "127.0.0.1", &args);
    (host, d)
}

/// Polls `f` every 100 ms until it holds; panics naming `what` after `timeout`.
fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_web_view_shows_the_daemon_live_in_a_real_browser() {
    root_or_skip!();
    require_browser();
    require_tool("tcpdump");
    let lab = Lab::without_daemon();
    // Two cluster nodes over a veth underlay; the web view is host-a's.
    let key = key_file(&lab, "cluster.key");
    let key = key.to_string_lossy().into_owned();
    let (host, hb) = (lab.ns("host"), lab.ns("hostb"));
    veth_underlay(&host, "10.133.0.1", &hb, "10.133.0.2");
    let d = HostDaemon::start(
        &lab,
        "a",
        &host,
        "10.133.0.1",
        &[
            "--web",
            "8080",
            "--cluster-key-file",
            &key,
            "--node-name",
            "host-a",
        ]
        .map(String::from),
    );
    let other = HostDaemon::start(
        &lab,
        "b",
        &hb,
        "10.133.0.2",
        &[
            "--cluster-key-file",
            &key,
            "--node-name",
            "host-b",
            "--join",
            "10.133.0.1",
        ]
        .map(String::from),
    );
    wait(
        "host-a to see host-b alive",
        Duration::from_secs(20),
        || d.peer_state("host-b").as_deref() == Some("alive"),
    );
    d.weft_ok(&["network", "create", "lab", "--subnet", "10.130.0.0/24"]);
    d.weft_ok(&[
        "network",
        "create",
        "ovl",
        "--subnet",
        "10.131.0.0/24",
        "--driver",
        "overlay",
        "--vni",
        "4242",
    ]);
    let a = d.connect("lab", &lab.ns("a"), &["--name", "web"]);
    let b = d.connect("lab", &lab.ns("b"), &["--name", "db", "--kind", "veth"]);
    let c = d.connect("ovl", &lab.ns("c"), &["--name", "app"]);
    wait("ovl on host-b", Duration::from_secs(20), || {
        other.network("ovl").is_some()
    });
    other.connect("ovl", &lab.ns("far"), &["--name", "far"]);
    let tunnel = tunnel_name(4242, "10.133.0.2");
    wait("host-a's tunnel to host-b", Duration::from_secs(20), || {
        d.has_port(&tunnel)
    });
    // Impairments and link state, as `weft impair` and `weft link` set them.
    d.weft_ok(&["impair", &b.name, "--delay", "20ms", "--jitter", "5ms"]);
    d.weft_ok(&["link", &c.name, "down"]);
    assert!(
        lab.wait_ping(&a.ns, &b.ip, Duration::from_secs(5)),
        "a pings b"
    );

    let out = lab.dir.join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/web_view.py");
    let ping = format!("ip netns exec {} ping -c 10 -i 0.2 -W 1 {}", a.ns, b.ip);
    let started = Instant::now();
    let o = lab.exec(
        &host,
        &[
            "/usr/bin/python3",
            &script.to_string_lossy(),
            "--url",
            "http://127.0.0.1:8080/",
            "--out",
            &out.to_string_lossy(),
            "--port",
            &a.name,
            "--network",
            "lab",
            "--network",
            "ovl",
            "--endpoint",
            &a.name,
            "--endpoint",
            &b.name,
            "--endpoint",
            &c.name,
            "--ping",
            &ping,
            "--link",
            &format!("{}=delay 20ms±5ms", b.name),
            "--link",
            &format!("{}=down", c.name),
            "--link",
            &format!("{}=up", a.name),
        ],
    );
    let keep = std::env::var_os(SCREENSHOT_ENV).map(PathBuf::from);
    if let Some(dst) = &keep {
        for shot in ["web-view.png", "web-view-failed.png"] {
            if out.join(shot).is_file() {
                let _ = std::fs::copy(out.join(shot), dst);
            }
        }
    }
    assert!(
        o.status.success(),
        "the browser check failed after {:?}: {}\nchromedriver log tail: {}",
        started.elapsed(),
        describe(&o),
        tail(&out.join("chromedriver.log"))
    );
    let line = stdout_of(&o);
    let result: Value = line
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("the script's RESULT is JSON"))
        .unwrap_or_else(|| panic!("no RESULT line from the browser check: {}", describe(&o)));
    check_browser_result(&result, &a, &b);
    let topology = result["topology"].as_str().unwrap();
    for want in [tunnel.as_str(), "host-b", "alive · 10.133.0.2:4789"] {
        assert!(
            topology.contains(want),
            "topology lacks {want:?}: {topology}"
        );
    }
}

/// What the browser saw: the page's title and topology, the counters growing, the trace,
/// the capture (read by tcpdump), a screenshot, and no errors in the console.
fn check_browser_result(r: &Value, a: &Endpoint, b: &Endpoint) {
    assert_eq!(r["title"], "weft");
    let topology = r["topology"].as_str().unwrap();
    for want in [
        "lab",
        "ovl",
        "10.130.0.0/24",
        "overlay vni 4242",
        &a.ip,
        &b.ip,
    ] {
        assert!(
            topology.contains(want),
            "topology lacks {want:?}: {topology}"
        );
    }
    let (before, after) = (
        r["rx_before"].as_f64().unwrap(),
        r["rx_after"].as_f64().unwrap(),
    );
    assert!(after >= before + 5.0, "RX packets {before} -> {after}");
    assert!(r["rx_pps_peak"].as_f64().unwrap() > 0.0, "{r}");
    let trace = r["trace"].as_str().unwrap();
    assert!(
        trace.contains(&format!(
            "{}: {} > {} IPv4 {} > {} ICMP",
            a.name, a.mac, b.mac, a.ip, b.ip
        )),
        "{trace}"
    );
    assert!(
        // b's port delays what leaves toward it (`weft impair`), and the trace says so.
        trace.contains(&format!("output    {}: held by its impairment", b.name)),
        "{trace}"
    );
    let pcap = PathBuf::from(r["pcap"].as_str().unwrap());
    let name = pcap.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("weft-{}-", a.name)), "{name}");
    let parsed = read_pcap(&pcap).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(parsed.linktype, 1);
    assert!(
        (1..=8).contains(&parsed.frames.len()),
        "count=8 asked for, {} frames",
        parsed.frames.len()
    );
    let (ok, text, err) = tcpdump_read(&pcap, &[]);
    assert!(ok, "tcpdump -r {name}: {err}");
    assert!(
        text.contains(&format!("{} > {}: ICMP echo request", a.ip, b.ip)),
        "tcpdump -r {name}:\n{text}"
    );
    let shot = std::fs::read(r["screenshot"].as_str().unwrap()).expect("the screenshot");
    assert!(shot.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors");
    assert!(r["link"][&b.name].as_str().unwrap().contains("up"), "{r}");
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[test]
fn the_web_view_is_read_only_and_keeps_other_origins_out() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::without_daemon();
    let (host, mut d) = web_daemon(&lab, ":8081");
    d.weft_ok(&["network", "create", "lab", "--subnet", "10.132.0.0/24"]);
    let a = d.connect("lab", &lab.ns("a"), &[]);
    let url = |p: &str| format!("http://127.0.0.1:8081{p}");
    // A port alone: loopback only.
    let listening = lab.exec_ok(&host, &["ss", "-Hltn", "sport = :8081"]);
    let local: Vec<&str> = listening
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(local, ["127.0.0.1:8081"], "{listening}");

    let (status, head, body) = curl(&lab, &host, &[&url("/")]);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(body.contains("<script src=\"app.js\""), "{body}");
    let (status, _, body) = curl(&lab, &host, &[&url("/api/ports")]);
    assert_eq!(status, 200);
    let ports: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ports[0]["name"], a.name.as_str(), "{body}");

    // Nothing changes state: other methods are refused, the Unix API's paths are absent.
    for (method, path) in [
        ("POST", "/api/ports"),
        ("DELETE", "/api/topology"),
        ("PUT", "/api/fdb"),
        ("POST", "/v1/networks"),
        ("DELETE", "/v1/networks/lab"),
        ("PUT", &format!("/v1/ports/{}/impair", a.name)),
    ] {
        let (status, _, _) = curl(
            &lab,
            &host,
            &[
                "-X",
                method,
                "-H",
                "content-type: application/json",
                "-d",
                "{}",
                &url(path),
            ],
        );
        assert!(
            status == 404 || status == 405,
            "{method} {path} answered {status}"
        );
    }
    let (status, _, body) = curl(&lab, &host, &[&url("/v1/networks")]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(d.networks().len(), 1, "still one network");
    assert_eq!(d.ports().len(), 1, "still one endpoint");

    // Other origins: a rebinding name, a cross-site request, CORS.
    let (status, _, body) = curl(
        &lab,
        &host,
        &["-H", "Host: evil.example:8081", &url("/api/ports")],
    );
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("by IP address or as localhost"), "{body}");
    let (status, _, body) = curl(
        &lab,
        &host,
        &[
            "-H",
            "Sec-Fetch-Site: cross-site",
            &url(&format!("/api/ports/{}/capture", a.name)),
        ],
    );
    assert_eq!(status, 403, "{body}");
    // A link on another site may open the page itself.
    let (status, _, _) = curl(
        &lab,
        &host,
        &["-H", "Sec-Fetch-Site: cross-site", &url("/")],
    );
    assert_eq!(status, 200);
    let (status, head, _) = curl(
        &lab,
        &host,
        &["-H", "Origin: http://evil.example", &url("/api/ports")],
    );
    assert_eq!(status, 200);
    assert!(!head.contains("access-control-"), "no CORS headers: {head}");
    let (status, head, _) = curl(
        &lab,
        &host,
        &[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: http://evil.example",
            "-H",
            "Access-Control-Request-Method: GET",
            &url("/api/ports"),
        ],
    );
    assert_eq!(status, 405, "{head}");
    assert!(!head.contains("access-control-"), "no CORS headers: {head}");

    // Bad requests say what is wrong.
    let (status, _, body) = curl(&lab, &host, &[&url("/api/ports/nope/capture")]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no port named \\\"nope\\\""), "{body}");
    let (status, _, body) = curl(
        &lab,
        &host,
        &[&url(&format!("/api/ports/{}/capture?count=0", a.name))],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("count must be 1..10000"), "{body}");
    let trace = url(&format!("/api/ports/{}/trace?count=0", a.name));
    let (status, _, body) = curl(&lab, &host, &[&trace]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("count must be at least 1"), "{body}");

    // The event stream: a first event at once; and the daemon stops while a page watches.
    let mut watcher = lab.spawn_in(&host, &["curl", "-sN", "-m", "30", &url("/api/events")]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watcher.stdout().contains("event: ports") {
        assert!(Instant::now() < deadline, "no event: {}", watcher.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let data = watcher.stdout();
    let json = data
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let ev: Value = serde_json::from_str(json).unwrap();
    assert_eq!(ev["ports"][0]["name"], a.name.as_str(), "{json}");
    assert!(ev["ports"][0]["rates"]["rx_pps"].is_number(), "{json}");
    let stopped = Instant::now();
    let st = d.stop();
    assert!(
        st.success(),
        "the daemon exits cleanly with a page watching: {st}"
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    let end = watcher.wait(Duration::from_secs(5));
    assert!(end.code().is_some(), "curl ended: {end}");
}

#[test]
fn bad_web_addresses_are_refused_before_anything_starts() {
    root_or_skip!();
    let lab = Lab::without_daemon();
    let o = run_timeout(
        lab.daemon_command().args(["--web", "localhost:8080"]),
        CLI_TIMEOUT,
    );
    check_error(
        &o,
        "weft daemon --web localhost:8080",
        &["invalid --web", "ADDR:PORT"],
    );
    let o = run_timeout(lab.daemon_command().args(["--web", "70000"]), CLI_TIMEOUT);
    check_error(&o, "weft daemon --web 70000", &["port must be 1..65535"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = run_timeout(lab.daemon_command().args(["--web", &port]), CLI_TIMEOUT);
    check_error(
        &o,
        "weft daemon --web (a taken port)",
        &["cannot listen on 127.0.0.1"],
    );
    assert!(!lab.socket.exists(), "no API socket was made");
    assert!(
        std::fs::read_dir(&lab.state_dir).unwrap().next().is_none(),
        "nothing written to the state directory"
    );
}
