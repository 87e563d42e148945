//! Multi-host labs: a namespace per host joined to the lab's underlay (a weft network of the
//! daemon `weft lab` talks to), each with its own `weft daemon` in a gossip cluster.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::apply::{delete_if_there, Applier};
use super::names;
use super::netns;
use super::state::{self, DaemonRecord};
use super::LabError;
use crate::api::client::{seg, Client};
use crate::types::{Connect, EndpointInfo, NetworkSummary, PortKind};

fn api(e: anyhow::Error) -> LabError {
    LabError::Api(format!("{e:#}"))
}

pub async fn add_underlay(a: &mut Applier) -> Result<(), LabError> {
    let Some(plan) = a.want.underlay.clone() else {
        return Ok(());
    };
    let n: NetworkSummary = a
        .client(None)
        .call(Method::POST, "/v1/networks", Some(&plan.create))
        .await
        .map_err(api)?;
    println!("+ underlay: network {} {}", n.name, n.subnet);
    a.record.parts.underlay = Some(plan);
    Ok(())
}

pub async fn remove_underlay(a: &mut Applier) -> Result<(), LabError> {
    let Some(plan) = a.record.parts.underlay.clone() else {
        return Ok(());
    };
    let path = format!("/v1/networks/{}?force=true", seg(&plan.weft_name));
    delete_if_there(&a.client(None), &path).await?;
    println!("- underlay: network {}", plan.weft_name);
    a.record.parts.underlay = None;
    Ok(())
}

/// The host's namespace, its underlay link, and its daemon joined to the others.
pub async fn add_host(a: &mut Applier, h: &str) -> Result<(), LabError> {
    let plan = a.want.hosts[h].clone();
    let lab = a.record.name.clone();
    netns::add(&plan.ns)?;
    a.record.parts.hosts.insert(h.to_owned(), plan.clone());
    let underlay = names::underlay(&lab);
    let connect = Connect {
        netns: Some(plan.ns.clone()),
        name: Some(names::host_uplink(&lab, h)),
        ip: plan.address.clone(),
        ifname: Some("eth0".into()),
        kind: Some(PortKind::Tap),
        ..Connect::default()
    };
    let path = format!("/v1/networks/{}/endpoints", seg(&underlay));
    let ep: EndpointInfo = a
        .client(None)
        .call(Method::POST, &path, Some(&connect))
        .await
        .map_err(api)?;
    let dir = state::lab_dir(&a.socket, &lab).join(h);
    let key = state::lab_dir(&a.socket, &lab).join("cluster.key");
    let join: Vec<String> = a
        .record
        .daemons
        .values()
        .map(|d| d.address.clone())
        .collect();
    let d = start_daemon(&plan.ns, h, &ep.ip, &dir, &key, &join)?;
    println!(
        "+ host {h}: namespace {}, underlay {}, daemon pid {} (socket {})",
        plan.ns,
        ep.ip,
        d.pid,
        d.socket.display()
    );
    a.record.daemons.insert(h.to_owned(), d);
    Ok(())
}

/// Starts `weft daemon` inside the host's namespace, in its own process group (it outlives
/// `lab up`), and waits for its socket.
fn start_daemon(
    ns: &str,
    h: &str,
    addr: &str,
    dir: &Path,
    key: &Path,
    join: &[String],
) -> Result<DaemonRecord, LabError> {
    use std::os::unix::process::CommandExt;
    let io = |e: std::io::Error| LabError::Io(format!("host {h}: {e}"));
    std::fs::create_dir_all(dir.join("state")).map_err(io)?;
    let exe = std::env::current_exe().map_err(io)?;
    if !key.exists() {
        let st = Command::new(&exe)
            .arg("keygen")
            .arg("--out")
            .arg(key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(io)?;
        if !st.success() {
            return Err(LabError::Io(format!(
                "weft keygen --out {} failed",
                key.display()
            )));
        }
    }
    let d = DaemonRecord {
        pid: 0,
        socket: dir.join("weft.sock"),
        state_dir: dir.join("state"),
        log: dir.join("daemon.log"),
        address: addr.to_owned(),
    };
    let log = std::fs::File::create(&d.log).map_err(io)?;
    let log2 = log.try_clone().map_err(io)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(&exe)
        .arg("daemon")
        .arg("--socket")
        .arg(&d.socket)
        .arg("--state-dir")
        .arg(&d.state_dir)
        .args(["--advertise", addr, "--node-name", h])
        .arg("--cluster-key-file")
        .arg(key);
    if !join.is_empty() {
        cmd.arg("--join").arg(join.join(","));
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(io)?;
    let d = DaemonRecord {
        pid: child.id(),
        ..d
    };
    for _ in 0..200 {
        if std::os::unix::net::UnixStream::connect(&d.socket).is_ok() {
            return Ok(d);
        }
        if !matches!(child.try_wait(), Ok(None)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop_daemon(&d);
    let text = std::fs::read_to_string(&d.log).unwrap_or_default();
    Err(LabError::Io(format!(
        "host {h}'s daemon did not start; its log ({}):\n{text}",
        d.log.display()
    )))
}

/// Whether the recorded daemon still runs (its PID's command line names its socket: a PID
/// reused by another process is not taken for it).
pub fn alive(d: &DaemonRecord) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", d.pid)) else {
        return false;
    };
    let socket = d.socket.to_string_lossy();
    let zombie = std::fs::read_to_string(format!("/proc/{}/stat", d.pid)).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    !zombie && String::from_utf8_lossy(&cmdline).contains(socket.as_ref())
}

/// SIGTERM, then SIGKILL after 5 s.
fn stop_daemon(d: &DaemonRecord) {
    if !alive(d) {
        return;
    }
    let _ = weft_sys::send_signal(d.pid, libc::SIGTERM);
    for _ in 0..100 {
        if !alive(d) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = weft_sys::send_signal(d.pid, libc::SIGKILL);
}

pub async fn remove_host(a: &mut Applier, h: &str) -> Result<(), LabError> {
    let lab = a.record.name.clone();
    if let Some(d) = a.record.daemons.get(h) {
        stop_daemon(d);
    }
    a.record.daemons.remove(h);
    if let Some(net) = &a.record.parts.underlay {
        let path = format!(
            "/v1/networks/{}/endpoints/{}",
            seg(&net.weft_name),
            seg(&names::host_uplink(&lab, h))
        );
        delete_if_there(&a.client(None), &path).await?;
    }
    if let Some(plan) = a.record.parts.hosts.get(h) {
        netns::remove(&plan.ns)?;
    }
    let _ = std::fs::remove_dir_all(state::lab_dir(&a.socket, &lab).join(h));
    a.record.parts.hosts.remove(h);
    println!(
        "- host {h}: daemon stopped, namespace {} removed",
        names::netns(&lab, h)
    );
    Ok(())
}

/// Waits (up to 20 s) until the gossip has brought an overlay network to host `h`.
pub async fn wait_network(client: &Client, name: &str, h: &str) -> Result<(), LabError> {
    let path = format!("/v1/networks/{}", seg(name));
    for _ in 0..100 {
        if client
            .call::<Value>(Method::GET, &path, None::<&Value>)
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(LabError::Api(format!(
        "overlay network {name} did not reach host {h} within 20 s: see `weft lab exec LAB {h} -- weft peers` and the host's daemon log"
    )))
}

/// The environment of a command run in a node or host: `WEFT_SOCKET` names the daemon that
/// owns it, `WEFT_DAEMON_PID` a host's daemon.
pub fn exec_env(a: &Applier, host: Option<&str>) -> Vec<(&'static str, String)> {
    env_for(&a.socket, host.and_then(|h| a.record.daemons.get(h)))
}

pub fn env_for(socket: &Path, d: Option<&DaemonRecord>) -> Vec<(&'static str, String)> {
    match d {
        Some(d) => vec![
            ("WEFT_SOCKET", d.socket.display().to_string()),
            ("WEFT_DAEMON_PID", d.pid.to_string()),
        ],
        None => vec![("WEFT_SOCKET", socket.display().to_string())],
    }
}
