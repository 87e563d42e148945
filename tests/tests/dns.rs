//! The embedded DNS at each network's gateway address: endpoint names and aliases, PTR,
//! isolation between networks, forwarding to an upstream resolver (a real dnsmasq on
//! loopback), SERVFAIL when the upstream fails, FORMERR for malformed queries, and the
//! resolv.conf written for named namespaces.

use weft_tests::*;

/// `dig @server name [type]` inside `ns`; returns (status, answers) from `+noall +answer +comments`.
fn dig(lab: &Lab, ns: &str, server: &str, args: &[&str]) -> (String, Vec<String>) {
    let mut cmd = vec![
        "dig",
        "+time=3",
        "+tries=1",
        "+noall",
        "+answer",
        "+comments",
    ];
    let at = format!("@{server}");
    cmd.push(&at);
    cmd.extend_from_slice(args);
    let out = lab.exec(ns, &cmd);
    let text = stdout_of(&out);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("NO RESPONSE")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        .collect();
    (status, answers)
}

fn gateway(lab: &Lab, net: &str) -> String {
    lab.inspect(net)["gateway"].as_str().unwrap().to_string()
}

#[test]
fn names_aliases_and_reverse_lookups_resolve_on_their_network_only() {
    root_or_skip!();
    require_tool("dig");
    let lab = Lab::new();
    lab.create_network("n", "10.71.0.0/24", &[]);
    lab.create_network("m", "10.72.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--name", "web1", "--alias", "web"]);
    let b = lab.connect(
        "n",
        &lab.ns("b"),
        &["--name", "web2", "--alias", "web", "--kind", "veth"],
    );
    let c = lab.connect("n", &lab.ns("c"), &["--name", "db"]);
    let o = lab.connect("m", &lab.ns("o"), &["--name", "other"]);
    let gw = gateway(&lab, "n");

    assert_eq!(
        dig(&lab, &c.ns, &gw, &["web1"]),
        ("NOERROR".into(), vec![a.ip.clone()])
    );
    assert_eq!(
        dig(&lab, &a.ns, &gw, &["DB."]),
        ("NOERROR".into(), vec![c.ip.clone()])
    );
    // An alias shared by two endpoints returns both, in rotating order.
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (status, mut answers) = dig(&lab, &c.ns, &gw, &["web"]);
        assert_eq!(status, "NOERROR");
        firsts.insert(answers[0].clone());
        answers.sort();
        let mut want = vec![a.ip.clone(), b.ip.clone()];
        want.sort();
        assert_eq!(answers, want);
    }
    assert_eq!(
        firsts.len(),
        2,
        "the order of the two addresses never rotated"
    );
    // Reverse lookups of endpoint addresses.
    let (status, answers) = dig(&lab, &a.ns, &gw, &["-x", &c.ip]);
    assert_eq!(status, "NOERROR");
    assert_eq!(answers.len(), 1);
    assert!(answers[0].starts_with("db"), "{answers:?}");
    // A name of another network does not resolve here (nor upstream: there is none).
    let (status, answers) = dig(&lab, &a.ns, &gw, &["other"]);
    assert!(
        answers.is_empty() && status != "NOERROR" && status != "NO RESPONSE",
        "{status} {answers:?}"
    );
    // ... but does on its own network.
    let gw_m = gateway(&lab, "m");
    assert_eq!(dig(&lab, &o.ns, &gw_m, &["other"]).1, vec![o.ip.clone()]);

    // After a disconnect the name is gone.
    lab.weft_ok(&["disconnect", "n", &c.name]);
    let (status, answers) = dig(&lab, &a.ns, &gw, &["db"]);
    assert!(
        answers.is_empty() && status != "NOERROR" && status != "NO RESPONSE",
        "db still resolves after its disconnect (or the gateway did not answer): {status} {answers:?}"
    );
}

#[test]
fn named_namespaces_get_a_resolv_conf_and_getent_works() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.73.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--alias", "backend"]);
    let path = format!("/etc/netns/{}/resolv.conf", a.ns);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(text.contains("nameserver 10.73.0.1"), "{text}");
    let out = lab.exec_ok(&a.ns, &["getent", "hosts", "backend"]);
    assert!(out.starts_with(&b.ip), "getent hosts backend: {out}");
    let out = lab.exec_ok(&a.ns, &["getent", "hosts", &b.name]);
    assert!(out.starts_with(&b.ip), "getent hosts {}: {out}", b.name);
    lab.weft_ok(&["disconnect", "n", &a.name]);
    assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
}

#[test]
fn other_names_are_forwarded_upstream_and_failures_are_servfail() {
    root_or_skip!();
    require_tool("dig");
    require_tool("dnsmasq");
    // A TXT record of 20 x 250 bytes: its answer fits neither a 1500-byte link nor the
    // 4096 bytes dnsmasq sends over UDP at most, only TCP carries it whole.
    let chunk = "x".repeat(250);
    let big_txt = format!(
        "--txt-record=big.upstream.test,{}",
        vec![format!("\"{chunk}\""); 20].join(",")
    );
    // Killed on drop, so a failed assertion below leaves no dnsmasq behind.
    let (upstream, upstream_addr) =
        dnsmasq_upstream(&["--address=/upstream.test/192.0.2.53".into(), big_txt]);
    let lab = Lab::with_daemon_args(&["--dns-upstream", &upstream_addr]);
    lab.create_network("n", "10.74.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let gw = gateway(&lab, "n");
    let result = dig(&lab, &a.ns, &gw, &["www.upstream.test"]);
    // The big answer comes back truncated (TC set, no records), not as a frame too large
    // for the link.
    let big = lab.exec(
        &a.ns,
        &[
            "dig",
            "+time=3",
            "+tries=1",
            "+ignore",
            "+bufsize=4096",
            &format!("@{gw}"),
            "big.upstream.test",
            "TXT",
        ],
    );
    let big = stdout_of(&big);
    assert_eq!(result, ("NOERROR".into(), vec!["192.0.2.53".to_string()]));
    let flags = big
        .lines()
        .find(|l| l.contains(";; flags:"))
        .unwrap_or_default();
    assert!(
        flags.contains(" tc"),
        "no TC flag on the oversized answer:\n{big}"
    );
    assert!(big.contains("status: NOERROR"), "{big}");
    // Asked again over TCP (as a resolver does after TC), the whole answer arrives: the
    // gateway forwards a TCP query upstream over TCP.
    let whole = stdout_of(&lab.exec(
        &a.ns,
        &[
            "dig",
            "+tcp",
            "+time=3",
            "+tries=1",
            &format!("@{gw}"),
            "big.upstream.test",
            "TXT",
        ],
    ));
    let flags = whole
        .lines()
        .find(|l| l.contains(";; flags:"))
        .unwrap_or_default();
    assert!(
        !flags.contains(" tc") && whole.contains("status: NOERROR"),
        "the TCP answer should be whole:\n{whole}"
    );
    assert_eq!(
        whole.matches(&chunk).count(),
        20,
        "all 20 strings of 250 octets over TCP:\n{whole}"
    );

    drop(upstream);
    // The upstream is gone now: the query is answered SERVFAIL, not left unanswered.
    let (status, answers) = dig(&lab, &a.ns, &gw, &["www.upstream.test"]);
    assert_eq!(status, "SERVFAIL");
    assert!(answers.is_empty());
}

#[test]
fn malformed_queries_get_formerr_or_are_dropped_and_counted() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.75.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    // A 12-byte header claiming one question, followed by garbage: FORMERR with the same id.
    // Then 3 bytes of garbage: no answer, counted as malformed on the port.
    const PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(bytes.fromhex("beef0100000100000000000007ffffff"), (sys.argv[1], 53))
r = s.recv(512)
print("id=%s rcode=%d" % (r[:2].hex(), r[3] & 0x0f))
s.sendto(b"\x01\x02\x03", (sys.argv[1], 53))
try:
    s.recv(512)
    print("answered garbage")
except socket.timeout:
    print("no answer")
"#;
    let out = lab.exec_ok(&a.ns, &["python3", "-c", PY, "10.75.0.1"]);
    assert!(out.contains("id=beef rcode=1"), "{out}");
    assert!(out.contains("no answer"), "{out}");
    let port = lab.port(&a.name);
    assert!(drops(&port, "malformed") >= 1, "{port}");
    assert!(lab.daemon_alive());
}

/// DNS over TCP at the gateway holds at most 8 connections of one client (of a network's
/// 64): a container that opens 20 and sends nothing keeps 8, the other 12 are reset at once;
/// the gateway closes idle ones (RFC 7766 §6.2.3), so it shuts nobody out for long.
#[test]
fn idle_dns_tcp_connections_are_bounded_and_closed() {
    root_or_skip!();
    require_tool("dig");
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("n", "10.76.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let gw = gateway(&lab, "n");
    // 20 connections that send nothing; after a moment, the ones already reset (or refused
    // during the handshake), then how long the others stay open.
    let script = format!(
        r#"
import socket, time, sys
conns, refused = [], 0
for i in range(20):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("{gw}", 53))
        conns.append(s)
    except OSError:
        refused += 1  # reset before the handshake finished here
time.sleep(0.5)
def gone(s, wait):
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True
kept = [s for s in conns if not gone(s, 0.05)]
start = time.time()
closed = sum(1 for s in kept if gone(s, 20))
print(refused + len(conns) - len(kept), len(kept), closed, round(time.time() - start))
"#
    );
    let out = lab.exec(&a.ns, &["python3", "-c", &script]);
    let text = stdout_of(&out);
    let fields: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(
        fields.len(),
        4,
        "python printed {text:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (reset, kept, closed, waited) = (fields[0], fields[1], fields[2], fields[3]);
    assert_eq!(
        (reset, kept),
        (12, 8),
        "8 connections of one client at most: {kept} kept, {reset} reset"
    );
    assert_eq!(
        closed, kept,
        "every idle connection is closed by the gateway (closed of kept, after 20 s)"
    );
    assert!(
        waited <= 15,
        "idle connections closed after about 10 s, not {waited} s"
    );
    // With those gone, DNS over TCP answers again.
    let (status, answers) = dig(&lab, &a.ns, &gw, &["+tcp", &a.name]);
    assert_eq!((status.as_str(), answers), ("NOERROR", vec![a.ip.clone()]));
}
