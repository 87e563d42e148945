//! Forwarding database: learning, aging, static entries, no flooding of
//! known unicast.

use serde_json::Value;
use std::time::{Duration, Instant};
use weft_tests::*;

fn origin(e: &Value) -> &str {
    e.get("origin")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("fdb entry without origin: {e}"))
}

#[test]
fn learned_entries_match_endpoints() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.41.0.0/24", &[]);
    lab.create_network("other", "10.42.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let c = lab.connect("n", &lab.ns("c"), &[]);
    let o = lab.connect("other", &lab.ns("o"), &[]);
    lab.assert_ping(&a, &b);
    lab.assert_ping(&a, &c);
    lab.assert_ping(&b, &c);

    let inspect = lab.endpoints("n");
    let fdb = lab.fdb("n");
    for ep in [&a, &b, &c] {
        let mac = inspect
            .iter()
            .find(|e| e["name"] == ep.name.clone())
            .and_then(|e| e["mac"].as_str())
            .unwrap_or_else(|| panic!("{} not in inspect: {inspect:?}", ep.name))
            .to_ascii_lowercase();
        assert_eq!(mac, ep.mac);
        let e = fdb_entry(&fdb, &mac)
            .unwrap_or_else(|| panic!("MAC {mac} of {} not learned: {fdb:?}", ep.name));
        // An endpoint's MAC is pinned to its port (port security), not learned.
        assert_eq!(origin(e), "endpoint", "{e}");
        assert!(
            ep.is_port(&e["port"]),
            "MAC {mac} learned on port {} but endpoint {} has port {}",
            e["port"],
            ep.name,
            ep.port
        );
        assert_eq!(e["network"], "n", "{e}");
        let age = e
            .get("age_seconds")
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("age_seconds not a number: {e}"));
        assert!((0.0..30.0).contains(&age), "implausible age {age}: {e}");
    }
    assert!(
        fdb_entry(&fdb, &o.mac).is_none(),
        "MAC of another network's endpoint in n's FDB: {fdb:?}"
    );
    assert!(
        fdb.iter().all(|e| e["network"] == "n"),
        "fdb n lists entries of other networks: {fdb:?}"
    );

    // `weft fdb` without a network lists all networks
    let all = as_vec(lab.weft_json(&["fdb"]));
    for e in &fdb {
        let mac = e["mac"].as_str().expect("fdb entry has a mac");
        assert!(
            all.iter().any(|a| a["network"] == "n"
                && a["mac"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))),
            "fdb (all) lacks n's entry for {mac}: {all:?}"
        );
    }
    let table = lab.weft_ok(&["fdb", "n"]);
    assert!(
        table.to_ascii_lowercase().contains(&a.mac),
        "fdb table lacks {}: {table}",
        a.mac
    );
}

fn as_vec(v: Value) -> Vec<Value> {
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("expected array: {v}"))
}

#[test]
fn learned_entries_age_out() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.43.0.0/24", &["--aging", "3"]);
    assert_eq!(lab.networks()[0]["aging_seconds"], 3);
    // A nested router (port security off) sends for a station behind it: that MAC is
    // learned. The endpoints' own MACs are pinned to their ports and never age.
    let a = lab.connect("n", &lab.ns("a"), &["--port-security=false"]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    lab.weft_ok(&["fdb", "add", "n", "02:00:00:00:43:01", &b.name]);
    let behind = "02:00:00:00:43:0a";
    let behind_bytes = [2, 0, 0, 0, 0x43, 0x0a];
    let from_behind = || {
        let frame = eth_frame([0xff; 6], behind_bytes, 0x88b5, &[0u8; 46]);
        assert_eq!(lab.send_frames(&a.ns, &a.ifname, &[frame]), 1);
    };
    lab.assert_ping(&a, &b);
    from_behind();
    let silent_since = Instant::now();
    let fdb = lab.fdb("n");
    let e = fdb_entry(&fdb, behind).unwrap_or_else(|| panic!("{behind} not learned: {fdb:?}"));
    assert_eq!(origin(e), "learned");
    assert!(a.is_port(&e["port"]), "{e}");
    for ep in [&a, &b] {
        let e = fdb_entry(&fdb, &ep.mac).unwrap_or_else(|| panic!("{} missing: {fdb:?}", ep.mac));
        assert_eq!(origin(e), "endpoint");
    }

    // Ages grow while nothing is sent.
    std::thread::sleep(Duration::from_millis(1200));
    let fdb2 = lab.fdb("n");
    let age = |f: &[Value], m: &str| fdb_entry(f, m).and_then(|e| e["age_seconds"].as_f64());
    if let (Some(x), Some(y)) = (age(&fdb, behind), age(&fdb2, behind)) {
        assert!(y >= x + 0.8, "age_seconds does not grow: {x} then {y}");
    }

    // After ~5 s of silence the learned entry is gone; the static and endpoint ones stay.
    let gone = eventually(Duration::from_secs(8), || {
        let f = lab.fdb("n");
        f.iter().all(|e| origin(e) != "learned")
    });
    let waited = silent_since.elapsed();
    let fdb = lab.fdb("n");
    assert!(
        gone,
        "learned entries still present {waited:?} after the last frame (aging 3 s): {fdb:?}"
    );
    assert!(
        waited >= Duration::from_millis(2500),
        "entries vanished too early ({waited:?}) for aging 3 s"
    );
    let s = fdb_entry(&fdb, "02:00:00:00:43:01")
        .unwrap_or_else(|| panic!("static entry aged out: {fdb:?}"));
    assert_eq!(origin(s), "static");
    for ep in [&a, &b] {
        let e = fdb_entry(&fdb, &ep.mac).unwrap_or_else(|| panic!("{} aged out: {fdb:?}", ep.mac));
        assert_eq!(origin(e), "endpoint");
    }

    // and it is learned again on new traffic
    from_behind();
    let fdb = lab.fdb("n");
    assert!(fdb_entry(&fdb, behind).is_some(), "not relearned: {fdb:?}");
}

#[test]
fn static_entries_add_del_and_errors() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.44.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let mac = "02:00:00:00:44:01";

    lab.weft_ok(&["fdb", "add", "n", mac, &b.name]);
    let fdb = lab.fdb("n");
    let e = fdb_entry(&fdb, mac).unwrap_or_else(|| panic!("static entry missing: {fdb:?}"));
    assert_eq!(origin(e), "static", "{e}");
    assert!(
        b.is_port(&e["port"]),
        "static entry on wrong port: {e} (want {})",
        b.port
    );
    let table = lab.weft_ok(&["fdb", "n"]);
    assert!(
        table.contains(mac) && table.contains("static"),
        "table: {table}"
    );

    // upper-case input is the same MAC
    lab.weft_ok(&["fdb", "del", "n", &mac.to_ascii_uppercase()]);
    let fdb = lab.fdb("n");
    assert!(
        fdb_entry(&fdb, mac).is_none(),
        "static entry not removed: {fdb:?}"
    );

    // errors leave the FDB untouched
    lab.weft_ok(&["fdb", "add", "n", mac, &a.name]);
    let before = lab.fdb("n");
    lab.weft_err(
        &["fdb", "add", "n", "02:00:00:00:44:02", "nosuch"],
        &["nosuch", "endpoint", "not found", "unknown"],
    );
    lab.weft_err(
        &["fdb", "add", "nonet", "02:00:00:00:44:02", &a.name],
        &["nonet", "network"],
    );
    lab.weft_err(&["fdb", "add", "n", "zz:zz", &a.name], &["zz:zz", "mac"]);
    let after = lab.fdb("n");
    let macs = |f: &[Value]| {
        let mut v: Vec<String> = f
            .iter()
            .map(|e| e["mac"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        macs(&before),
        macs(&after),
        "failed fdb commands changed the FDB"
    );
}

/// Once both ends are learned, unicast between them is not flooded to a third
/// port; a static entry steers frames to its port only.
#[test]
fn known_unicast_is_not_flooded_and_static_entries_steer() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.45.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let c = lab.connect("n", &lab.ns("c"), &[]);
    let static_mac = "02:00:00:00:45:01";
    lab.weft_ok(&["fdb", "add", "n", static_mac, &b.name]);

    let pb = lab.dir.join("b.pcap");
    let pc = lab.dir.join("c.pcap");
    let mut cap_b = lab.capture(&b.name, &pb, None);
    let mut cap_c = lab.capture(&c.name, &pc, None);
    cap_b.wait_active(Duration::from_secs(10));
    cap_c.wait_active(Duration::from_secs(10));

    lab.assert_ping(&a, &b); // ARP request is flooded to c, the rest is not
                             // frames to the static MAC go to b only
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut payload = vec![0u8; 46];
            payload[0] = 0x5a;
            payload[1] = i;
            eth_frame(mac_bytes(static_mac), a.mac_bytes(), 0x88b5, &payload)
        })
        .collect();
    assert_eq!(lab.send_frames(&a.ns, &a.ifname, &frames), 3);
    lab.assert_ping(&a, &c); // proves the capture on c is live
    std::thread::sleep(Duration::from_millis(300));
    let (sb, sc) = (cap_b.stop(), cap_c.stop());
    assert!(
        sb.code().is_some() && sc.code().is_some(),
        "capture killed by the signal instead of exiting: {sb} {sc}"
    );

    let on_b = read_pcap(&pb).unwrap_or_else(|e| panic!("b capture invalid: {e}"));
    let on_c = read_pcap(&pc).unwrap_or_else(|e| panic!("c capture invalid: {e}"));
    let is_icmp_between = |f: &Vec<u8>, x: &Endpoint, y: &Endpoint| {
        f.len() >= 34
            && f[12..14] == [0x08, 0x00]
            && f[23] == 1
            && ((f[26..30] == ipb(&x.ip) && f[30..34] == ipb(&y.ip))
                || (f[26..30] == ipb(&y.ip) && f[30..34] == ipb(&x.ip)))
    };
    let to_static = |f: &Vec<u8>| f[0..6] == mac_bytes(static_mac);
    assert!(
        on_b.frames.iter().any(|f| is_icmp_between(f, &a, &b)),
        "b's capture lacks a<->b ICMP"
    );
    assert_eq!(
        on_b.frames.iter().filter(|f| to_static(f)).count(),
        3,
        "b should get the 3 frames for its static MAC"
    );
    assert!(
        on_c.frames.iter().any(|f| is_icmp_between(f, &a, &c)),
        "c's capture lacks a<->c ICMP (capture not live?)"
    );
    let leaked: Vec<String> = on_c
        .frames
        .iter()
        .filter(|f| is_icmp_between(f, &a, &b) || to_static(f))
        .map(|f| to_hex(f))
        .collect();
    assert!(
        leaked.is_empty(),
        "known unicast a<->b / static-MAC frames were flooded to c: {leaked:?}"
    );
    let p = lab.port(&c.name);
    assert_eq!(drops(&p, "unknown_port"), 0, "{p}");
}

fn ipb(ip: &str) -> [u8; 4] {
    let v: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap()).collect();
    v.try_into().unwrap()
}
