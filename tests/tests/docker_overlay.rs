//! Docker overlay networks on weft's gossip cluster, with no swarm and no key-value store:
//! host A is the root namespace (dockerd and a weft daemon serving its driver), host B a
//! namespace with its own weft daemon; a veth pair is the underlay. A Docker network made
//! with `-o weft.driver=overlay` on A appears on B, and a container on A reaches an endpoint
//! on B through it; a Docker network created on A with the name of an overlay network B
//! made joins that network (the same one across the cluster).

use std::time::Duration;

use weft_tests::docker::Dockerd;
use weft_tests::hosts::{key_file, HostDaemon};
use weft_tests::*;

/// Ports of this test's cluster (not the defaults other tests' daemons may use).
const VXLAN_PORT: &str = "14789";
const GOSSIP_PORT: &str = "17946";

/// A member's daemon arguments (HostDaemon adds `--advertise` itself).
fn cluster_args(key: &str, node: &str, join: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = [
        "--cluster-key-file",
        key,
        "--node-name",
        node,
        "--vxlan-port",
        VXLAN_PORT,
        "--gossip-port",
        GOSSIP_PORT,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(j) = join {
        v.extend(["--join".to_string(), format!("{j}:{GOSSIP_PORT}")]);
    }
    v
}

#[test]
fn a_docker_overlay_network_spans_the_cluster() {
    root_or_skip!();
    let lab = Lab::without_daemon();
    let d = Dockerd::start(&lab);
    // The underlay: host B's namespace is 10.254.0.2, the root namespace 10.254.0.1.
    let host_b = lab.outside(254);
    let key = key_file(&lab, "cluster.key").display().to_string();
    let mut args = d.daemon_args();
    args.extend(cluster_args(&key, "a", None));
    args.extend(["--advertise".to_string(), "10.254.0.1".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.start_daemon_with(&args);
    let b = HostDaemon::start(
        &lab,
        "b",
        &host_b,
        "10.254.0.2",
        &cluster_args(&key, "b", Some("10.254.0.1")),
    );

    // A Docker overlay network made on A is the cluster's: B has it too.
    d.network_create("ovl", "10.91.0.0/24", &["-o", "weft.driver=overlay"]);
    assert!(
        eventually(Duration::from_secs(20), || b.network("ovl").is_some()),
        "host B never got network ovl; B: {:?}\nA log:\n{}",
        b.networks(),
        lab.daemon_log()
    );
    let on_b = b.connect("ovl", &lab.ns("bc"), &[]);
    d.run("c1", &["--network", "ovl"], &["sleep", "600"]);
    let reached = eventually(Duration::from_secs(20), || {
        d.exec("c1", &["ping", "-c", "1", "-W", "1", &on_b.ip])
            .status
            .success()
    });
    assert!(
        reached,
        "the container on A cannot reach {} on B\nA log:\n{}\nB log:\n{}",
        on_b.ip,
        lab.daemon_log(),
        b.log()
    );

    // An overlay network B made: Docker on A creating one of that name joins it.
    b.weft_ok(&[
        "network",
        "create",
        "shared",
        "--driver",
        "overlay",
        "--subnet",
        "10.92.0.0/24",
    ]);
    assert!(
        eventually(Duration::from_secs(20), || lab
            .networks()
            .iter()
            .any(|n| n["name"] == "shared")),
        "host A never got network shared"
    );
    let id = d.network_create("shared", "10.92.0.0/24", &["-o", "weft.driver=overlay"]);
    // Docker's name for it is looked up once CreateNetwork has returned.
    assert!(
        eventually(Duration::from_secs(10), || lab.inspect("shared")
            ["docker_id"]
            == id.as_str()),
        "{}",
        lab.inspect("shared")
    );
    let on_b2 = b.connect("shared", &lab.ns("bd"), &[]);
    d.run("c2", &["--network", "shared"], &["sleep", "600"]);
    let reached = eventually(Duration::from_secs(20), || {
        d.exec("c2", &["ping", "-c", "1", "-W", "1", &on_b2.ip])
            .status
            .success()
    });
    assert!(
        reached,
        "c2 on A cannot reach {} on B's network shared",
        on_b2.ip
    );
    // IPAM was the cluster's: the container's address is not B's endpoint's.
    assert_ne!(d.ip("c2", "shared"), on_b2.ip);
    // Docker letting go of the network it joined leaves the cluster's network in place.
    d.docker_ok(&["rm", "-f", "c2"]);
    d.docker_ok(&["network", "rm", "shared"]);
    let shared = lab.inspect("shared");
    assert!(shared["docker_id"].is_null(), "{shared}");
    assert!(
        b.network("shared").is_some(),
        "docker network rm on A removed B's network"
    );
    assert!(
        b.weft_json(&["network", "inspect", "shared"])["endpoints"]
            .as_array()
            .is_some_and(|e| e.len() == 1),
        "B's endpoint on shared is gone"
    );
}
