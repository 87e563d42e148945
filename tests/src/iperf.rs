//! iperf3 runs between two endpoints of a lab (the throughput and impairment tests).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{eventually, run_timeout, stderr_of, stdout_of, Bg, Endpoint, Lab};

/// What iperf3's receiver measured.
pub struct Run {
    pub bps: f64,
    pub bytes: u64,
}

/// An iperf3 server on `server`'s address, port 5201, listening when this returns.
pub fn iperf_server(lab: &Lab, server: &Endpoint) -> Bg {
    let srv = lab.spawn_in(
        &server.ns,
        &["iperf3", "-s", "-B", &server.ip, "-p", "5201"],
    );
    let ok = eventually(Duration::from_secs(5), || {
        lab.exec(&server.ns, &["ss", "-ltn"])
            .stdout
            .windows(5)
            .any(|w| w == b":5201")
    });
    assert!(
        ok,
        "iperf3 server did not start listening; stderr: {}",
        srv.stderr()
    );
    srv
}

/// A 3-second iperf3 TCP run from `client` to `server` (`reverse`: the server sends).
pub fn iperf_client(client: &Endpoint, server: &Endpoint, reverse: bool) -> Run {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &client.ns,
        "iperf3",
        "-c",
        &server.ip,
        "-p",
        "5201",
        "-t",
        "3",
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    if reverse {
        c.arg("-R");
    }
    let o = run_timeout(&mut c, Duration::from_secs(30));
    let out = stdout_of(&o);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "iperf3 printed no JSON ({e}); status {}\nstdout: {out}\nstderr: {}",
            o.status,
            stderr_of(&o)
        )
    });
    assert!(
        o.status.success() && v.get("error").is_none(),
        "iperf3 {} -> {} failed: {}\n{}",
        client.name,
        server.name,
        v.get("error").cloned().unwrap_or_default(),
        stderr_of(&o)
    );
    let recv = &v["end"]["sum_received"];
    let bps = recv["bits_per_second"].as_f64().unwrap_or(0.0);
    let bytes = recv["bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "iperf3 {} ({}) {} {} ({}): {:.1} Mbit/s, {} bytes",
        client.name,
        client.kind,
        if reverse { "<-" } else { "->" },
        server.name,
        server.kind,
        bps / 1e6,
        bytes
    );
    Run { bps, bytes }
}
