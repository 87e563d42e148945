//! Docker on weft: a real dockerd (Debian's docker.io, its own data root, no iptables, no
//! docker0) uses weft's remote network and IPAM driver. Containers of an offline busybox
//! image ping each other, resolve the outside through weft's gateway, reach an outside
//! HTTP server through the proxy NAT and serve a published port; `--internal` and
//! `weft.icc=false` hold; a weft restart keeps containers talking; Docker prints weft's
//! messages for bad options; `docker rm` and `docker network rm` leave nothing in weft.

use std::process::Command;
use std::time::Duration;

use weft_tests::docker::{self, Dockerd};
use weft_tests::*;

/// A lab whose weft daemon serves the driver of a fresh dockerd.
fn docker_lab(extra: &[&str]) -> (Lab, Dockerd) {
    let lab = Lab::without_daemon();
    let dockerd = Dockerd::start(&lab);
    let mut args = dockerd.daemon_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.start_daemon_with(&args);
    (lab, dockerd)
}

/// An HTTP GET with busybox nc from inside a container: the response, or "" on failure.
fn http_get(d: &Dockerd, container: &str, addr: &str, port: u16, path: &str) -> String {
    let script = format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {addr} {port}");
    let o = d.exec(container, &["sh", "-c", &script]);
    stdout_of(&o)
}

fn ping(d: &Dockerd, container: &str, to: &str) -> bool {
    d.exec(container, &["ping", "-c", "1", "-W", "2", to])
        .status
        .success()
}

fn wait_ping(d: &Dockerd, container: &str, to: &str) -> bool {
    eventually(Duration::from_secs(10), || ping(d, container, to))
}

fn endpoint_names(lab: &Lab, net: &str) -> Vec<String> {
    lab.endpoints(net)
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

/// The host-side names of the TAPs weft handed to Docker for `net`'s endpoints.
fn handed_taps(lab: &Lab, net: &str) -> Vec<String> {
    lab.endpoints(net)
        .iter()
        .filter_map(|e| e["ifname"].as_str().map(str::to_string))
        .collect()
}

/// Those of `taps` still in the host namespace.
fn left(taps: &[String]) -> Vec<String> {
    let links = link_names_in(None);
    taps.iter().filter(|t| links.contains(t)).cloned().collect()
}

#[test]
fn docker_containers_talk_resolve_reach_out_and_publish() {
    root_or_skip!();
    let (_dns, upstream) = dnsmasq_upstream(&["--address=/outside.test/10.248.0.2".into()]);
    let (lab, d) = docker_lab(&["--dns-upstream", &upstream]);
    let out = lab.outside(248);
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let token = format!("outside-{}", lab.prefix);
    std::fs::write(www.join("t.html"), &token).unwrap();
    let _server = lab.spawn_in(
        &out,
        &[
            "python3",
            "-m",
            "http.server",
            "80",
            "--bind",
            "10.248.0.2",
            "--directory",
            www.to_str().unwrap(),
        ],
    );

    let id = d.network_create("dn", "10.83.0.0/24", &[]);
    // The weft network has Docker's name (looked up after CreateNetwork) and its ID.
    assert!(
        eventually(Duration::from_secs(10), || lab
            .networks()
            .iter()
            .any(|n| n["name"] == "dn" && n["docker_id"] == id.as_str())),
        "weft network dn with docker_id {id}: {:?}",
        lab.networks()
    );
    let host_port = 18000 + (std::process::id() % 1000) as u16;
    let publish = format!("{host_port}:80");
    d.run(
        "c1",
        &["--network", "dn", "--dns", "10.83.0.1"],
        &["sleep", "600"],
    );
    d.run(
        "c2",
        &["--network", "dn", "-p", &publish],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    let (ip1, ip2) = (d.ip("c1", "dn"), d.ip("c2", "dn"));
    assert_eq!((ip1.as_str(), ip2.as_str()), ("10.83.0.2", "10.83.0.3"));
    assert!(wait_ping(&d, "c1", &ip2), "c1 cannot ping c2 at {ip2}");
    // Endpoints are named after the containers, in weft's tables too.
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut names = endpoint_names(&lab, "dn");
            names.sort();
            names == ["c1", "c2"]
        }),
        "endpoints: {:?}",
        endpoint_names(&lab, "dn")
    );
    let ports = lab.weft_ok(&["ports"]);
    assert!(
        ports.contains("c1") && ports.contains(&format!("0.0.0.0:{host_port}->80/tcp")),
        "{ports}"
    );

    // The outside's name through Docker's resolver, forwarded to weft's gateway.
    let ns = d.exec("c1", &["nslookup", "www.outside.test"]);
    assert!(
        stdout_of(&ns).contains("10.248.0.2"),
        "nslookup: {}",
        describe(&ns)
    );
    // An outside HTTP server through the proxy NAT.
    let got = http_get(&d, "c1", "10.248.0.2", 80, "/t.html");
    assert!(got.contains(&token), "outside server through NAT: {got:?}");
    // The published port from the host, and by hairpin through a host address.
    let url = format!("http://127.0.0.1:{host_port}/index.html");
    assert!(
        eventually(Duration::from_secs(5), || {
            let o = run_timeout(
                Command::new("curl").args(["-s", "-m", "3", &url]),
                Duration::from_secs(5),
            );
            stdout_of(&o).contains("weftbox")
        }),
        "curl {url} from the host"
    );
    let hairpin = http_get(&d, "c1", "10.248.0.1", host_port, "/index.html");
    assert!(hairpin.contains("weftbox"), "hairpin: {hairpin:?}");
    // The container's server sees an outside client's own address (no userland proxy
    // hiding it, moby#15086).
    let cgi = format!("http://10.248.0.1:{host_port}/cgi-bin/addr");
    let o = lab.exec(&out, &["curl", "-s", "-m", "3", &cgi]);
    assert!(
        stdout_of(&o).contains("client=") && stdout_of(&o).contains("10.248.0.2"),
        "the container's server saw: {}",
        describe(&o)
    );

    // weft trace and capture see the container's port by its name.
    let pcap = lab.dir.join("c1.pcap");
    let mut cap = lab.capture("c1", &pcap, Some(2));
    cap.wait_active(Duration::from_secs(5));
    assert!(ping(&d, "c1", &ip2));
    cap.wait(Duration::from_secs(10));
    let frames = read_pcap(&pcap).expect("pcap of c1").frames;
    assert!(frames.len() >= 2, "capture on c1: {} frames", frames.len());
    let mut trace = Bg::spawn({
        let mut c = lab.weft_cmd();
        c.args(["trace", "c1", "-c", "1"]);
        c
    });
    assert!(
        eventually(Duration::from_secs(10), || trace
            .stderr()
            .contains("tracing frames entering c1")),
        "weft trace c1: {}",
        trace.stderr()
    );
    assert!(ping(&d, "c1", &ip2));
    trace.wait(Duration::from_secs(10));
    assert!(
        trace.stdout().contains("c2"),
        "trace of c1: {}",
        trace.stdout()
    );

    // The API does not hand out Docker's bindings: a connect may not claim one, nor take
    // another endpoint's.
    let ns = lab.ns("claim");
    let post = |owner: &str| {
        let body = format!(r#"{{"netns":"{ns}","owner":"{owner}"}}"#);
        let url = "http://weft/v1/networks/dn/endpoints";
        let sock = lab.socket.display().to_string();
        let args = ["-s", "--unix-socket", &sock, "-X", "POST", "-H"];
        let o = run_timeout(
            Command::new("curl").args(args).args([
                "content-type: application/json",
                "-d",
                &body,
                url,
            ]),
            Duration::from_secs(10),
        );
        stdout_of(&o)
    };
    let c1_owner = lab.endpoints("dn")[0]["owner"]
        .as_str()
        .unwrap()
        .to_string();
    let claimed = post(&c1_owner);
    assert!(
        claimed.contains("Docker driver"),
        "claiming {c1_owner}: {claimed}"
    );
    let first = post("cni:abc/eth0");
    assert!(first.contains("\"owner\":\"cni:abc/eth0\""), "{first}");
    let again = post("cni:abc/eth0");
    assert!(again.contains("already"), "a second cni:abc/eth0: {again}");
    lab.weft_ok(&["disconnect", "dn", &ns]);

    // Docker owns the network: weft refuses to remove it.
    let err = lab.weft_err(&["network", "rm", "dn"], &["docker network rm"]);
    assert!(err.contains("Docker"), "{err}");

    // Bad options: Docker prints weft's message.
    let e = d.network_create_err("bad1", "10.84.0.0/24", &["-o", "weft.mtu=70000"]);
    assert!(e.contains("576..9000"), "mtu 70000: {e}");
    let e = d.network_create_err("bad2", "10.83.0.128/25", &[]);
    assert!(e.contains("overlaps") && e.contains("dn"), "overlap: {e}");

    // docker rm and docker network rm leave nothing in weft.
    let taps = handed_taps(&lab, "dn");
    assert_eq!(taps.len(), 2, "{taps:?}");
    d.docker_ok(&["rm", "-f", "c1", "c2"]);
    assert!(
        eventually(Duration::from_secs(10), || lab.endpoints("dn").is_empty()),
        "endpoints after docker rm: {:?}",
        lab.endpoints("dn")
    );
    assert!(lab.weft_ok(&["ports"]).lines().count() <= 1);
    d.docker_ok(&["network", "rm", "dn"]);
    assert!(lab.networks().is_empty(), "{:?}", lab.networks());
    assert!(left(&taps).is_empty(), "TAPs left: {:?}", left(&taps));
}

#[test]
fn docker_internal_and_icc_false_are_enforced() {
    root_or_skip!();
    let (lab, d) = docker_lab(&[]);
    let _out = lab.outside(249);
    let _listener = lab.spawn_in(
        &_out,
        &["sh", "-c", "exec nc -l -k -p 80 -s 10.249.0.2 -e echo open"],
    );
    d.network_create("inner", "10.85.0.0/24", &["--internal"]);
    d.network_create(
        "noicc",
        "10.86.0.0/24",
        &["-o", "weft.icc=false", "-o", "weft.mtu=1400"],
    );
    d.run("i1", &["--network", "inner"], &["sleep", "600"]);
    d.run("i2", &["--network", "inner"], &["sleep", "600"]);
    d.run("n1", &["--network", "noicc"], &["sleep", "600"]);
    d.run("n2", &["--network", "noicc"], &["sleep", "600"]);
    let inner = lab.inspect("inner");
    assert_eq!(inner["internal"], true, "{inner}");
    assert_eq!(lab.inspect("noicc")["icc"], false);

    // --internal: the containers reach each other, not the outside.
    assert!(wait_ping(&d, "i1", &d.ip("i2", "inner")));
    let o = d.exec("i1", &["sh", "-c", "nc -w 3 10.249.0.2 80 </dev/null"]);
    assert!(
        !o.status.success() || !stdout_of(&o).contains("open"),
        "internal reached out: {}",
        describe(&o)
    );
    let route = stdout_of(&d.exec("i1", &["ip", "route"]));
    assert!(
        !route.contains("default"),
        "internal network got a default route: {route}"
    );

    // The TAP came with the network's MTU.
    let link = stdout_of(&d.exec("n1", &["ip", "link", "show", "eth0"]));
    assert!(link.contains("mtu 1400"), "n1's eth0: {link}");
    // weft.icc=false: the gateway only.
    let n2 = d.ip("n2", "noicc");
    assert!(
        wait_ping(&d, "n1", "10.86.0.1"),
        "n1 cannot ping its gateway"
    );
    assert!(!ping(&d, "n1", &n2), "icc=false: n1 pinged n2");
    let n1 = &lab.port("n1");
    assert!(
        drops(n1, "icc_denied") > 0,
        "no icc drop counted on n1: {n1}"
    );
}

#[test]
fn a_weft_restart_keeps_docker_containers_talking() {
    root_or_skip!();
    let (lab, d) = docker_lab(&[]);
    d.network_create("keep", "10.87.0.0/24", &[]);
    d.run("k1", &["--network", "keep"], &["sleep", "600"]);
    d.run("k2", &["--network", "keep"], &["sleep", "600"]);
    let k2 = d.ip("k2", "keep");
    assert!(wait_ping(&d, "k1", &k2));
    lab.stop_daemon();
    let args = d.daemon_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.start_daemon_with(&args);
    assert!(
        wait_ping(&d, "k1", &k2),
        "k1 cannot ping k2 after weft restarted"
    );
    assert!(
        lab.daemon_log().contains("re-attached endpoint"),
        "{}",
        lab.daemon_log()
    );
    // The restarted daemon still serves Docker: a new container joins, then all leave.
    d.run("k3", &["--network", "keep"], &["sleep", "600"]);
    assert!(wait_ping(&d, "k3", &k2));
    let taps = handed_taps(&lab, "keep");
    assert_eq!(taps.len(), 3, "{taps:?}");
    d.docker_ok(&["rm", "-f", "k1", "k2", "k3"]);
    assert!(eventually(Duration::from_secs(10), || lab
        .endpoints("keep")
        .is_empty()));
    d.docker_ok(&["network", "rm", "keep"]);
    assert!(lab.networks().is_empty());
    assert!(left(&taps).is_empty(), "TAPs left: {:?}", left(&taps));
}

#[test]
fn docker_ip_publish_all_and_a_dockerd_restart() {
    root_or_skip!();
    let (lab, d) = docker_lab(&[]);
    let id = d.network_create("again", "10.93.0.0/24", &[]);
    // --ip is honoured; -P publishes on a port weft picks.
    d.run(
        "r1",
        &[
            "--network",
            "again",
            "--ip",
            "10.93.0.50",
            "--expose",
            "80",
            "-P",
        ],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    assert_eq!(d.ip("r1", "again"), "10.93.0.50");
    let ep = lab
        .endpoints("again")
        .into_iter()
        .find(|e| e["ip"] == "10.93.0.50")
        .expect("r1's endpoint");
    let published = ep["published"][0].as_str().unwrap_or_default().to_string();
    let host_port: u16 = published
        .split_once("->")
        .and_then(|(h, _)| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("-P published nothing: {ep}"));
    let url = format!("http://127.0.0.1:{host_port}/index.html");
    let curl = || {
        run_timeout(
            Command::new("curl").args(["-s", "-m", "3", &url]),
            Duration::from_secs(5),
        )
    };
    assert!(
        eventually(Duration::from_secs(5), || stdout_of(&curl())
            .contains("weftbox")),
        "-P port {host_port}: {}",
        describe(&curl())
    );
    // An address taken is refused with weft's message.
    let e = d.docker_err(&[
        "run",
        "-d",
        "--name",
        "r2",
        "--network",
        "again",
        "--ip",
        "10.93.0.50",
        docker::IMAGE,
        "sleep",
        "60",
    ]);
    assert!(e.contains("10.93.0.50"), "taken --ip: {e}");

    // dockerd restarts (its containers stop, leaving weft) and finds its network again.
    d.restart();
    assert!(
        eventually(Duration::from_secs(10), || lab
            .endpoints("again")
            .is_empty()),
        "endpoints after dockerd stopped: {:?}",
        lab.endpoints("again")
    );
    assert!(stdout_of(&d.docker(&["network", "ls"])).contains("again"));
    d.docker_ok(&["start", "r1"]);
    d.run("r3", &["--network", "again"], &["sleep", "600"]);
    assert!(wait_ping(&d, "r3", "10.93.0.50"), "after dockerd restarted");
    assert_eq!(lab.inspect("again")["docker_id"], id.as_str());
}
