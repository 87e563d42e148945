//! `weft demo`: a self-contained lab (private daemon, namespaces, pings, a trace, the tables), removed afterwards.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper::Method;
use serde_json::Value;

use super::render::print_table;
use crate::api::client::Client;
use crate::types::{Connect, CreateNetwork, EndpointInfo, FdbRow, PortKind, PortRow};

const SUBNET: &str = "10.213.0.0/24";
const NONE: Option<&Value> = None;

/// Everything the demo created, removed on drop.
struct Lab {
    dir: PathBuf,
    daemon: Option<Child>,
    namespaces: Vec<String>,
}

impl Lab {
    fn socket(&self) -> PathBuf {
        self.dir.join("weft.sock")
    }

    fn cleanup(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // SIGTERM lets the daemon remove its socket; it exits within milliseconds.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes the TAPs and veth ends inside it (and a veth's host end
        // with its peer).
        for ns in self.namespaces.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            crate::gateway::remove_netns_resolv_conf(&ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Starts a private daemon, creates three namespaces on one network (two TAP endpoints and one
/// veth endpoint), pings between them, traces one frame (`weft trace`), prints the learned FDB
/// and the port counters, and removes everything it created — also when interrupted with
/// Ctrl-C.
pub async fn run() -> Result<()> {
    if weft_sys::effective_uid() != 0 {
        bail!("weft demo creates network namespaces and needs root; run it with sudo");
    }
    let tag = format!("{:x}", std::process::id());
    let mut lab = Lab {
        dir: std::env::temp_dir().join(format!("weft-demo-{tag}")),
        daemon: None,
        namespaces: Vec::new(),
    };
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let result = tokio::select! {
        r = steps(&mut lab, &tag) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        _ = hangup.recv() => Err(anyhow::anyhow!("hung up")),
    };
    if result.is_err() {
        eprintln!(
            "\ncleaning up after: {}",
            result
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
    }
    lab.cleanup();
    println!("\ncleaned up: daemon stopped, namespaces removed");
    result
}

/// The demo, one step after another; `run` cleans up whatever they leave.
async fn steps(lab: &mut Lab, tag: &str) -> Result<()> {
    let client = start_daemon(lab).await?;
    create_network(&client).await?;
    let endpoints = connect_endpoints(lab, &client, tag).await?;
    pings(&endpoints).await?;
    trace_one_frame(&client, &endpoints).await?;
    show_fdb(&client).await?;
    show_ports(&client).await
}

/// Starts a private daemon on the lab's socket and waits until it accepts connections.
async fn start_daemon(lab: &mut Lab) -> Result<Client> {
    std::fs::create_dir_all(&lab.dir)?;
    let exe = std::env::current_exe().context("cannot find the weft binary")?;
    let log = std::fs::File::create(lab.dir.join("daemon.log"))?;
    println!(
        "== starting a private weft daemon (socket {})",
        lab.socket().display()
    );
    lab.daemon = Some(
        Command::new(exe)
            .arg("daemon")
            .arg("--socket")
            .arg(lab.socket())
            .arg("--state-dir")
            .arg(lab.dir.join("state"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the demo daemon")?,
    );
    let client = Client::new(&lab.socket());
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(lab.socket()).await.is_ok() {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "the demo daemon did not start; see {}",
        lab.dir.join("daemon.log").display()
    );
}

/// Creates the network `demo` on [`SUBNET`].
async fn create_network(client: &Client) -> Result<()> {
    println!("== network demo {SUBNET}");
    client
        .call::<Value>(
            Method::POST,
            "/v1/networks",
            Some(&CreateNetwork {
                name: "demo".into(),
                subnet: SUBNET.into(),
                gateway: None,
                mtu: None,
                aging_seconds: None,
                icc: None,
                nat: None,
                internal: false,
                driver: None,
                vni: None,
                published_source: None,
            }),
        )
        .await?;
    Ok(())
}

/// Creates the namespaces red, green (TAP ports) and blue (a veth port) and connects them to
/// `demo`; returns each namespace with its endpoint.
async fn connect_endpoints(
    lab: &mut Lab,
    client: &Client,
    tag: &str,
) -> Result<Vec<(String, EndpointInfo)>> {
    let mut endpoints = Vec::new();
    for (short, kind) in [
        ("red", PortKind::Tap),
        ("green", PortKind::Tap),
        ("blue", PortKind::Veth),
    ] {
        let ns = format!("weft-demo-{short}-{tag}");
        ip(&["netns", "add", &ns])?;
        lab.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let ep: EndpointInfo = client
            .call(
                Method::POST,
                "/v1/networks/demo/endpoints",
                Some(&Connect {
                    netns: Some(ns.clone()),
                    pid: None,
                    name: Some(short.to_string()),
                    ip: None,
                    mac: None,
                    ifname: None,
                    kind: Some(kind),
                    aliases: Vec::new(),
                    publish: Vec::new(),
                    publish_all: Vec::new(),
                    port_security: None,
                    owner: None,
                }),
            )
            .await?;
        println!(
            "   {:<6} namespace {ns}: {} {}/{} mac {} ({} port)",
            ep.name,
            ep.ifname,
            ep.ip,
            ep.prefix_len,
            ep.mac,
            ep.kind.as_str()
        );
        endpoints.push((ns, ep));
    }
    Ok(endpoints)
}

/// Each endpoint pings the next, round the ring.
async fn pings(endpoints: &[(String, EndpointInfo)]) -> Result<()> {
    println!("== pings");
    for i in 0..endpoints.len() {
        let (from_ns, from) = &endpoints[i];
        let (_, to) = &endpoints[(i + 1) % endpoints.len()];
        let out = tokio::process::Command::new("ip")
            .args([
                "netns", "exec", from_ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", &to.ip,
            ])
            .kill_on_drop(true)
            .output()
            .await
            .context("cannot run ping (install iputils-ping)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("no reply");
        println!("   {} -> {} ({}): {summary}", from.name, to.name, to.ip);
        if !out.status.success() {
            bail!("ping from {} to {} failed", from.name, to.name);
        }
    }
    Ok(())
}

/// One frame explained: the switch's decision for red's next echo request (other frames,
/// IPv6 neighbour discovery say, may come first and are skipped).
async fn trace_one_frame(client: &Client, endpoints: &[(String, EndpointInfo)]) -> Result<()> {
    let (red_ns, red) = &endpoints[0];
    let (_, green) = &endpoints[1];
    println!(
        "== why a frame goes where it goes (weft trace {}, while {} pings {})",
        red.name, red.name, green.name
    );
    let path = format!("/v1/ports/{}/trace", red.name);
    let resp = client.send(Method::GET, &path, None).await?;
    if !resp.status().is_success() {
        bail!("the daemon refused the trace ({})", resp.status());
    }
    let mut body = resp.into_body();
    let ping = tokio::process::Command::new("ip")
        .args([
            "netns", "exec", red_ns, "ping", "-c", "1", "-W", "1", &green.ip,
        ])
        .kill_on_drop(true)
        .output();
    let echo = format!("{} > {} ICMP", red.ip, green.ip);
    let find = find_block(&mut body, &echo);
    let (found, _) = tokio::join!(tokio::time::timeout(Duration::from_secs(3), find), ping);
    match found {
        Ok(Some(block)) => {
            for line in block.lines() {
                println!("   {line}");
            }
        }
        _ => println!("   (no echo request seen within 3 s)"),
    }
    // Dropping the response ends the trace.
    drop(body);
    Ok(())
}

/// The first whole trace block (each ends with an empty line) that mentions `needle`, or
/// None if the stream ends first.
async fn find_block(body: &mut hyper::body::Incoming, needle: &str) -> Option<String> {
    let mut text = String::new();
    while let Some(Ok(frame)) = http_body_util::BodyExt::frame(body).await {
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        let whole = text.rsplit_once("\n\n").map_or("", |(done, _)| done);
        if let Some(block) = whole.split("\n\n").find(|b| b.contains(needle)) {
            return Some(block.to_string());
        }
    }
    None
}

/// The learned forwarding database, as `weft fdb` would show it (ages with one decimal).
async fn show_fdb(client: &Client) -> Result<()> {
    println!("== learned forwarding database (weft fdb)");
    let fdb: Vec<FdbRow> = client.call(Method::GET, "/v1/fdb", NONE).await?;
    let rows: Vec<Vec<String>> = fdb
        .into_iter()
        .map(|r| {
            vec![
                r.network,
                r.mac,
                r.port,
                r.origin,
                format!("{:.1}s", r.age_seconds),
            ]
        })
        .collect();
    print_table(&["NETWORK", "MAC", "PORT", "ORIGIN", "AGE"], &rows);
    Ok(())
}

/// The port counters, a short `weft ports`.
async fn show_ports(client: &Client) -> Result<()> {
    println!("== port counters (weft ports)");
    let ports: Vec<PortRow> = client.call(Method::GET, "/v1/ports", NONE).await?;
    let rows: Vec<Vec<String>> = ports
        .into_iter()
        .map(|p| {
            vec![
                p.name,
                p.kind.as_str().to_string(),
                p.rx_packets.to_string(),
                p.tx_packets.to_string(),
                p.drops.values().sum::<u64>().to_string(),
            ]
        })
        .collect();
    print_table(&["PORT", "KIND", "RX_PKTS", "TX_PKTS", "DROPS"], &rows);
    Ok(())
}
