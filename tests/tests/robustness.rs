//! What the daemon does when the world changes under it or is misused: a namespace deleted
//! behind its back, the daemon's own namespace, a second daemon on the same state, and
//! address ranges that cannot be a network.

use std::process::Command;
use std::time::Duration;
use weft_tests::*;

/// CPU time (user + system, in clock ticks) the daemon process has used.
fn daemon_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("daemon stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn daemon_pid(lab: &Lab) -> u32 {
    let out = Command::new("pgrep")
        .args(["-f", &format!("daemon --socket {}", lab.socket.display())])
        .output()
        .expect("pgrep");
    stdout_of(&out)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("daemon pid")
}

#[test]
fn a_namespace_deleted_behind_the_daemons_back_does_not_make_it_spin() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.91.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let gone = lab.connect("n", &lab.ns("gone"), &[]);
    lab.assert_ping(&a, &gone);
    let out = Command::new("ip")
        .args(["netns", "del", &gone.ns])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(500));
    let pid = daemon_pid(&lab);
    let before = daemon_cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = daemon_cpu_ticks(pid) - before;
    // 2 s at 100 ticks/s: a spinning worker would use ~200 ticks.
    assert!(
        used < 40,
        "the daemon used {used} ticks in 2 s after its namespace vanished"
    );
    lab.assert_ping(&a, &b);
    // The endpoint can still be disconnected cleanly.
    lab.weft_ok(&["disconnect", "n", &gone.name]);
    assert!(lab.daemon_alive());
}

#[test]
fn the_daemons_own_namespace_is_refused() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.92.0.0/24", &[]);
    let me = std::process::id().to_string();
    lab.weft_err(&["connect", "n", "--pid", &me], &["own network namespace"]);
    lab.weft_err(
        &["connect", "n", "--netns", "/proc/self/ns/net"],
        &["own network namespace"],
    );
    assert!(lab.endpoints("n").is_empty());
}

#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused() {
    root_or_skip!();
    let lab = Lab::new();
    let other_socket = lab.dir.join("second.sock");
    let out = run_timeout(
        Command::new(weft_bin())
            .arg("daemon")
            .arg("--socket")
            .arg(&other_socket)
            .arg("--state-dir")
            .arg(&lab.state_dir),
        Duration::from_secs(10),
    );
    assert!(
        !out.status.success(),
        "second daemon started: {}",
        stderr_of(&out)
    );
    let err = stderr_of(&out);
    assert!(err.contains("in use by another weft daemon"), "{err}");
    assert!(lab.daemon_alive());
}

#[test]
fn unusable_ranges_and_interface_templates_are_refused() {
    root_or_skip!();
    let lab = Lab::new();
    for subnet in [
        "127.0.0.0/24",
        "224.0.0.0/24",
        "0.0.0.0/8",
        "126.0.0.0/7",
        "240.1.0.0/16",
    ] {
        lab.weft_err(
            &["network", "create", "bad", "--subnet", subnet],
            &["choose a unicast range"],
        );
    }
    assert!(lab.networks().is_empty());
    lab.create_network("n", "10.93.0.0/24", &[]);
    let ns = lab.ns("a");
    lab.weft_err(
        &["connect", "n", "--netns", &ns, "--ifname", "eth%d"],
        &["interface name"],
    );
    assert!(lab.endpoints("n").is_empty());
    assert_eq!(lab.link_names(&ns), vec!["lo".to_string()]);
}
