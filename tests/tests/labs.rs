//! `weft lab`: every shipped lab up, checked and down with nothing left behind; an invalid
//! file refused with nothing made; `up` twice is idempotent and a changed file applies only
//! the difference; a failing `up` undoes its own run; the three-host lab across the overlay,
//! surviving one host's daemon killed through `weft lab exec`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use weft_tests::*;

/// A shipped lab's file.
fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../labs")
        .join(name)
        .join("lab.yaml")
}

/// The test's lab: named after the harness's prefix (so its namespaces are `PREFIX-NODE`),
/// taken down at cleanup if a test fails before it does.
struct TestLab<'a> {
    lab: &'a Lab,
    name: String,
}

impl<'a> TestLab<'a> {
    fn new(lab: &'a Lab) -> TestLab<'a> {
        let name = lab.prefix.clone();
        let (socket, prefix, dir) = (lab.socket.clone(), lab.prefix.clone(), lab.dir.clone());
        lab.on_cleanup(move || {
            let _ = run_timeout(
                Command::new(weft_bin())
                    .arg("--socket")
                    .arg(&socket)
                    .args(["lab", "down", &prefix]),
                Duration::from_secs(30),
            );
            // Whatever a failed down left: host daemons, then namespaces.
            kill_daemons_under(&dir);
            for ns in netns_list().into_iter().filter(|n| n.starts_with(&prefix)) {
                let _ = run_timeout(Command::new("ip").args(["netns", "del", &ns]), CLI_TIMEOUT);
                let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&ns));
            }
        });
        TestLab { lab, name }
    }

    fn up(&self, file: &Path) -> String {
        let f = file.to_str().unwrap();
        self.lab.weft_ok(&["lab", "up", f, "--name", &self.name])
    }

    fn down(&self) -> String {
        self.lab.weft_ok(&["lab", "down", &self.name])
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    fn exec(&self, node: &str, cmd: &[&str]) -> std::process::Output {
        let mut args = vec!["lab", "exec", &self.name, node, "--"];
        args.extend_from_slice(cmd);
        run_timeout(self.lab.weft_cmd().args(&args), EXEC_TIMEOUT)
    }

    fn exec_ok(&self, node: &str, cmd: &[&str]) -> String {
        let o = self.exec(node, cmd);
        assert!(
            o.status.success(),
            "`weft lab exec {} {node} -- {}` failed: {}",
            self.name,
            cmd.join(" "),
            describe(&o)
        );
        stdout_of(&o)
    }

    fn pings(&self, node: &str, ip: &str) -> bool {
        self.exec(node, &["ping", "-c", "1", "-W", "1", ip])
            .status
            .success()
    }

    fn inspect(&self) -> Value {
        self.lab.weft_json(&["lab", "inspect", &self.name])
    }

    /// The endpoint a link got: `inspect --json`'s `endpoints.LAB-NODE-NET`.
    fn endpoint(&self, node: &str, net: &str) -> Value {
        let key = format!("{}-{node}-{net}", self.name);
        self.inspect()["endpoints"][&key].clone()
    }

    /// Nothing of the lab is left: no namespace, network, endpoint, daemon or record.
    fn assert_gone(&self) {
        let left: Vec<String> = netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&self.name))
            .collect();
        assert!(left.is_empty(), "namespaces left behind: {left:?}");
        assert_eq!(self.lab.networks(), Vec::<Value>::new(), "networks left");
        assert_eq!(self.lab.ports(), Vec::<Value>::new(), "ports left");
        assert!(
            daemons_under(&self.lab.dir).is_empty(),
            "host daemons left running"
        );
        let ls = self.lab.weft_json(&["lab", "ls"]);
        assert_eq!(ls, Value::Array(Vec::new()), "lab records left: {ls}");
    }
}

/// PIDs of `weft daemon` processes whose command line names a path under `dir`.
fn daemons_under(dir: &Path) -> Vec<u32> {
    let dir = dir.to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("daemon") && cmd.contains(&format!("{dir}/labs/"))
        })
        .collect()
}

fn kill_daemons_under(dir: &Path) {
    for pid in daemons_under(dir) {
        let _ = run_timeout(
            Command::new("kill").args(["-9", &pid.to_string()]),
            CLI_TIMEOUT,
        );
    }
}

#[test]
fn bridge_dns_names_resolve_and_ping() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    t.up(&shipped("bridge-dns"));
    let web = t.endpoint("web", "lan")["ip"].as_str().unwrap().to_string();
    let got = t.exec_ok("client", &["getent", "hosts", "web"]);
    assert!(got.contains(&web), "web should resolve to {web}: {got:?}");
    let alias = t.exec_ok("client", &["getent", "hosts", "www"]);
    assert!(alias.contains(&web), "alias www should resolve: {alias:?}");
    require_tool("dig");
    let dig = t.exec_ok(
        "client",
        &["dig", "+short", "+time=2", "@10.101.0.1", "web"],
    );
    assert_eq!(dig.trim(), web, "dig at the gateway");
    assert!(t.pings("client", "web"), "ping web by name");
    t.down();
    t.assert_gone();
}

#[test]
fn port_mapping_serves_the_published_port() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    t.up(&shipped("port-mapping"));
    let mut body = String::new();
    let ok = eventually(Duration::from_secs(10), || {
        let o = run_timeout(
            Command::new("curl").args(["-s", "-m", "2", "http://127.0.0.1:18102/"]),
            CLI_TIMEOUT,
        );
        body = stdout_of(&o);
        body.contains("hello from the web node")
    });
    assert!(ok, "curl of the published port: {body:?}");
    t.down();
    t.assert_gone();
    let o = run_timeout(
        Command::new("curl").args(["-s", "-m", "2", "http://127.0.0.1:18102/"]),
        CLI_TIMEOUT,
    );
    assert!(!o.status.success(), "the port is closed after down");
}

#[test]
fn two_networks_stay_isolated_but_the_middle_node_reaches_both() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    t.up(&shipped("two-networks"));
    assert!(t.pings("both", "10.103.1.10"), "both -> front");
    assert!(t.pings("both", "10.103.2.10"), "both -> back");
    assert!(t.pings("f", "10.103.1.20"), "front -> both on front");
    assert!(!t.pings("f", "10.103.2.10"), "front must not reach back");
    assert!(
        !t.pings("f", "10.103.2.20"),
        "front must not reach both's back address"
    );
    t.down();
    t.assert_gone();
}

#[test]
fn icc_false_blocks_the_pair_but_not_the_gateway() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    t.up(&shipped("icc"));
    assert!(t.pings("a", "10.104.1.11"), "a -> b on the open network");
    assert!(
        t.pings("a", "10.104.0.1"),
        "a -> the closed network's gateway"
    );
    assert!(
        !t.pings("a", "10.104.0.11"),
        "a -> b on the closed network must fail"
    );
    let port = lab.port(&format!("{}-a-closed", t.name));
    assert!(drops(&port, "icc_denied") > 0, "icc_denied counted: {port}");
    t.down();
    t.assert_gone();
}

#[test]
fn routed_lab_forwards_through_the_router_node() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    let out = t.up(&shipped("routed"));
    assert!(out.contains("ip_forward=1"), "exec ran: {out}");
    let ping = t.exec_ok("a", &["ping", "-c", "2", "-W", "1", "10.105.2.10"]);
    assert!(ping.contains("ttl=63"), "one router hop: {ping}");
    let fwd = t.exec_ok("router", &["sysctl", "-n", "net.ipv4.ip_forward"]);
    assert_eq!(fwd.trim(), "1");
    t.down();
    t.assert_gone();
}

#[test]
fn arp_spoofing_is_stopped_by_port_security_only() {
    root_or_skip!();
    require_tool("python3");
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    t.up(&shipped("arp-spoof"));
    let script = shipped("arp-spoof").with_file_name("spoof.py");
    let script = script.to_str().unwrap();
    let victim_mac = t.endpoint("victim", "lan")["mac"]
        .as_str()
        .unwrap()
        .to_string();
    let gw_of = |t: &TestLab| -> String {
        let neigh = t.exec_ok("victim", &["ip", "neigh", "show", "10.107.0.1"]);
        neigh
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert!(t.pings("victim", "10.107.0.1"));
    let real = gw_of(&t);
    assert!(!real.is_empty(), "victim knows its gateway");
    let spoof = [
        "python3",
        script,
        "eth0",
        "10.107.0.1",
        "10.107.0.10",
        &victim_mac,
    ];
    t.exec_ok("mallory", &spoof);
    assert_eq!(gw_of(&t), real, "mallory's lie must not arrive");
    let port = lab.port(&format!("{}-mallory-lan", t.name));
    assert!(
        drops(&port, "spoofed_arp") >= 1,
        "spoofed_arp counted: {port}"
    );
    t.exec_ok("eve", &spoof);
    let eve_mac = t.endpoint("eve", "lan")["mac"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw_of(&t),
        eve_mac,
        "eve (port security off) poisons the cache"
    );
    t.down();
    t.assert_gone();
}

#[test]
fn mtu_lab_fits_the_big_network_only() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    t.up(&shipped("mtu"));
    let ping = |ip: &str, size: &str| {
        t.exec(
            "a",
            &["ping", "-c", "1", "-W", "1", "-M", "do", "-s", size, ip],
        )
        .status
        .success()
    };
    assert!(
        ping("10.108.0.11", "1252"),
        "1280-byte packets fit the small network"
    );
    assert!(
        !ping("10.108.0.11", "1300"),
        "1328 bytes do not fit MTU 1280"
    );
    assert!(ping("10.108.1.11", "1300"), "and fit the big network");
    assert!(ping("10.108.1.11", "8000"), "8028 bytes fit MTU 9000");
    t.down();
    t.assert_gone();
}

#[test]
fn an_invalid_file_is_refused_with_line_and_field_and_nothing_made() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    let file = lab.dir.join("bad.yaml");
    let typo = "name: x\nnetworks:\n  lan: {subnet: 10.110.0.0/24}\nnodes:\n  a:\n    links:\n      - network: lan\n        ipp: 10.110.0.5\n";
    std::fs::write(&file, typo).unwrap();
    let err = lab.weft_err(
        &["lab", "up", file.to_str().unwrap(), "--name", &t.name],
        &["ipp"],
    );
    assert!(err.contains("line 8"), "the typo's line: {err}");
    assert!(err.contains("nodes.a.links[0]"), "the typo's field: {err}");
    let wrong = "name: x\nnetworks:\n  lan:\n    subnet: 10.110.0.0/24\n  dup:\n    subnet: 10.110.0.128/25\nnodes:\n  a:\n    links:\n      - network: lan\n        ip: 10.110.1.5\n  b:\n    links:\n      - network: nowhere\n";
    std::fs::write(&file, wrong).unwrap();
    let err = lab.weft_err(
        &["lab", "up", file.to_str().unwrap(), "--name", &t.name],
        &["nothing was made"],
    );
    for want in [
        "overlaps network",
        ":11: nodes.a.links[0].ip: 10.110.1.5 is not inside subnet 10.110.0.0/24",
        ":14: nodes.b.links[0].network: network nowhere is not defined",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    t.assert_gone();
    // A lab name is never a path.
    let socket_dir = lab.socket.parent().unwrap().to_path_buf();
    lab.weft_err(&["lab", "down", ".."], &["not a lab name"]);
    lab.weft_err(&["lab", "inspect", "../x"], &["not a lab name"]);
    assert!(
        socket_dir.exists() && lab.socket.exists(),
        "the socket's directory is intact"
    );
}

/// A lab of three nodes on one network; `extra` is appended to node c's section.
fn small_lab(nodes: &[&str], impair_a: bool) -> String {
    let mut s = String::from("name: x\nnetworks:\n  lan: {subnet: 10.110.0.0/24}\nnodes:\n");
    for (i, n) in nodes.iter().enumerate() {
        s += &format!(
            "  {n}:\n    links:\n      - network: lan\n        ip: 10.110.0.{}\n",
            10 + i
        );
        if impair_a && *n == "a" {
            s += "        impair: {delay: 20ms}\n";
        }
    }
    s
}

#[test]
fn up_twice_is_idempotent_and_a_changed_file_applies_only_the_difference() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    let file = lab.dir.join("lab.yaml");
    std::fs::write(&file, small_lab(&["a", "b"], false)).unwrap();
    t.up(&file);
    let mac_a = t.endpoint("a", "lan")["mac"].clone();
    // A process inside a: it dies if a's namespace is made again.
    let mut sleeper = lab.spawn_in(&t.ns("a"), &["sleep", "300"]);
    assert!(t.pings("a", "10.110.0.11"));
    let again = t.up(&file);
    assert!(
        again.contains("up to date"),
        "second up changes nothing: {again}"
    );
    std::fs::write(&file, small_lab(&["a", "c"], false)).unwrap();
    let diff = t.up(&file);
    assert!(
        diff.contains("- node b") && diff.contains("+ node c"),
        "{diff}"
    );
    assert!(
        !diff.contains("node a") && !diff.contains("network lan"),
        "a and lan untouched: {diff}"
    );
    assert!(sleeper.running(), "a's namespace was left alone");
    assert_eq!(t.endpoint("a", "lan")["mac"], mac_a);
    assert!(!netns_list().contains(&t.ns("b")), "b's namespace removed");
    assert!(
        t.pings("a", "10.110.0.11"),
        "c got b's old address, a reaches it"
    );
    sleeper.kill();
    // down by the file (its name: line names the lab).
    let named = std::fs::read_to_string(&file)
        .unwrap()
        .replace("name: x", &format!("name: {}", t.name));
    std::fs::write(&file, named).unwrap();
    let out = lab.weft_ok(&["lab", "down", file.to_str().unwrap()]);
    assert!(out.contains("down"), "{out}");
    t.assert_gone();
}

#[test]
fn a_failing_up_undoes_what_it_made() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    let file = lab.dir.join("lab.yaml");
    let mut text = small_lab(&["a", "b"], false);
    text += "    exec:\n      - echo about to fail; exit 3\n";
    std::fs::write(&file, text).unwrap();
    let err = lab.weft_err(
        &["lab", "up", file.to_str().unwrap(), "--name", &t.name],
        &["about to fail"],
    );
    assert!(err.contains("exit status: 3"), "{err}");
    t.assert_gone();
}

#[test]
fn three_hosts_ping_across_the_overlay_and_notice_a_dead_daemon() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    let out = t.up(&shipped("three-host"));
    assert_eq!(out.matches("+ host").count(), 3, "{out}");
    assert!(
        eventually(Duration::from_secs(10), || t.pings("n1", "10.106.10.13")),
        "n1 -> n3 across the overlay"
    );
    assert!(t.pings("n1", "10.106.10.12"), "n1 -> n2");
    assert!(t.pings("n3", "10.106.10.12"), "n3 -> n2");
    assert_eq!(daemons_under(&lab.dir).len(), 3, "one daemon per host");
    // The host's own daemon, through `lab exec` (WEFT_SOCKET names it).
    let peers = t.exec_ok("h1", &[weft_bin().to_str().unwrap(), "--json", "peers"]);
    assert!(
        peers.contains("\"h2\"") && peers.contains("\"h3\""),
        "{peers}"
    );
    t.exec_ok("h2", &["sh", "-c", "kill -9 $WEFT_DAEMON_PID"]);
    let h2_state = |node: &str| -> String {
        let o = t.exec(node, &[weft_bin().to_str().unwrap(), "--json", "peers"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "h2")
            .map(|p| p["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    for h in ["h1", "h3"] {
        assert!(
            eventually(Duration::from_secs(15), || matches!(
                h2_state(h).as_str(),
                "dead" | "suspect"
            )),
            "{h} should see h2 dead or suspect, sees {:?}",
            h2_state(h)
        );
    }
    assert!(
        t.pings("n1", "10.106.10.13"),
        "n1 -> n3 survives h2's death"
    );
    let inspect = lab.weft_ok(&["lab", "inspect", &t.name]);
    assert!(
        inspect.contains("not running"),
        "inspect shows h2's daemon down: {inspect}"
    );
    t.down();
    t.assert_gone();
}

/// The average RTT in ms of `n` pings from `node` to `ip` (None: no answer).
fn rtt_ms(t: &TestLab, node: &str, ip: &str, n: &str) -> Option<f64> {
    let o = t.exec(node, &["ping", "-c", n, "-i", "0.2", "-W", "2", ip]);
    let out = stdout_of(&o);
    let line = out.lines().find(|l| l.contains("min/avg/max"))?;
    line.split('=')
        .nth(1)?
        .split('/')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

#[test]
fn impairments_and_link_state_from_the_file_change_in_place() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    let file = lab.dir.join("lab.yaml");
    std::fs::write(&file, small_lab(&["a", "b"], true)).unwrap();
    let out = t.up(&file);
    assert!(
        out.contains("~ impair") && out.contains("delay 20ms"),
        "{out}"
    );
    let port = lab.port(&format!("{}-a-lan", t.name));
    assert_eq!(
        port["impair"]["delay"], "20ms",
        "weft ports shows it: {port}"
    );
    // An impairment cleared behind the lab's back: the next up sees it and sets it again.
    lab.weft_ok(&["impair", &format!("{}-a-lan", t.name), "--clear"]);
    let port = lab.port(&format!("{}-a-lan", t.name));
    assert!(port["impair"].is_null(), "cleared by hand: {port}");
    let out = t.up(&file);
    assert!(out.contains("~ impair") && !out.contains("+ link"), "{out}");
    let port = lab.port(&format!("{}-a-lan", t.name));
    assert_eq!(port["impair"]["delay"], "20ms", "set again: {port}");
    let slow = rtt_ms(&t, "b", "10.110.0.10", "5").expect("pings answered");
    assert!(slow >= 20.0, "RTT with a 20ms delay toward a: {slow} ms");
    // Cleared in place: the link is not made again.
    let mac_a = t.endpoint("a", "lan")["mac"].clone();
    std::fs::write(&file, small_lab(&["a", "b"], false)).unwrap();
    let out = t.up(&file);
    assert!(out.contains("cleared") && !out.contains("+ link"), "{out}");
    assert_eq!(t.endpoint("a", "lan")["mac"], mac_a);
    let fast = rtt_ms(&t, "b", "10.110.0.10", "5").expect("pings answered");
    assert!(fast < 10.0, "RTT without the delay: {fast} ms");
    // link: down drops frames toward a; up again restores them.
    let down = small_lab(&["a", "b"], false)
        .replace("ip: 10.110.0.10\n", "ip: 10.110.0.10\n        link: down\n");
    std::fs::write(&file, &down).unwrap();
    assert!(t.up(&file).contains("down"));
    assert!(!t.pings("b", "10.110.0.10"), "a's link is down");
    std::fs::write(&file, small_lab(&["a", "b"], false)).unwrap();
    t.up(&file);
    assert!(t.pings("b", "10.110.0.10"), "a's link is up again");
    t.down();
    t.assert_gone();
}

#[test]
fn a_failing_up_leaves_a_network_of_the_same_name_it_did_not_make() {
    root_or_skip!();
    let lab = Lab::new();
    let t = TestLab::new(&lab);
    // Someone's own network that happens to carry the name the lab would give its network.
    let theirs = format!("{}-lan", t.name);
    lab.create_network(&theirs, "10.111.0.0/24", &[]);
    let mine = lab.connect(&theirs, &lab.ns("mine"), &[]);
    let file = lab.dir.join("lab.yaml");
    std::fs::write(&file, small_lab(&["a"], false)).unwrap();
    lab.weft_err(
        &["lab", "up", file.to_str().unwrap(), "--name", &t.name],
        &["exists", "already"],
    );
    let eps = lab.endpoints(&theirs);
    assert!(
        eps.iter().any(|e| e["name"] == mine.name.as_str()),
        "the failed up removed a network it did not make: {eps:?}"
    );
    assert!(
        !netns_list().contains(&t.ns("a")),
        "the lab's node was undone"
    );
}
