//! VXLAN peers and the gossip cluster: `peers`, `peer add/rm/ls`, `cluster`, `keygen`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;
use serde_json::Value;

use super::args::{KeygenArgs, PeerCommand};
use super::render::{fmt_age, print_json, print_table};
use crate::api::client::{seg, Client};
use crate::types::{ClusterInfo, PeerAdd, PeerRow};

const NONE: Option<&Value> = None;

/// `weft keygen [--out FILE [--force]]`: a new cluster key, one line, printed or written to
/// FILE with mode 0600.
pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let line = crate::cluster::gossip::ClusterKey::generate_line()?;
    let Some(path) = &args.out else {
        println!("{line}");
        return Ok(());
    };
    write_private(path, &format!("{line}\n"), args.force)?;
    eprintln!(
        "cluster key written to {} (mode 0600); copy it to the --cluster-key-file of every node",
        path.display()
    );
    Ok(())
}

/// Writes `text` to `path` with mode 0600 from its creation on (the umask can only narrow
/// it). Without `force` an existing file is refused; with it the file is replaced
/// atomically by a new one (temporary file in the same directory, fsync, rename), so the
/// old file's mode does not carry over.
fn write_private(path: &Path, text: &str, force: bool) -> Result<()> {
    let shown = path.display();
    let create = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
    };
    if !force {
        let mut f = create(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!("{shown} exists; pass --force to replace it (every node needs the same key: replacing it means copying the new one everywhere)")
            } else {
                anyhow!("cannot create {shown}: {e}")
            }
        })?;
        return f
            .write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {shown}"));
    }
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{shown} is not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write {shown}: {e}");
    }
    Ok(())
}

/// `weft cluster`: this node and its gossip counters.
pub async fn cluster(client: &Client, json: bool) -> Result<()> {
    let info: ClusterInfo = client.call(Method::GET, "/v1/cluster", NONE).await?;
    if json {
        return print_json(&info);
    }
    println!("node            {}", info.node);
    println!("gossip          {}", info.gossip);
    println!("vtep            {}", info.vtep);
    println!("nodes alive     {}", info.nodes_alive);
    println!(
        "gossip rx/tx    {}/{} (dropped: {} failed authentication, {} malformed, {} replayed, {} stale, {} old format, {} from nodes cut off)",
        info.gossip_rx,
        info.gossip_tx,
        info.gossip_auth_failed,
        info.gossip_malformed,
        info.gossip_replayed,
        info.gossip_stale,
        info.gossip_old_format,
        info.gossip_cut_off
    );
    println!("address blocks  {}", info.leases.join(" "));
    Ok(())
}

/// `weft peer add|rm|ls`.
pub async fn peer(client: &Client, json: bool, command: PeerCommand) -> Result<()> {
    match command {
        PeerCommand::Add { addr, vni, port } => {
            peer_add(client, json, PeerAdd { addr, vni, port }).await
        }
        PeerCommand::Rm { addr, vni } => peer_rm(client, &addr, vni).await,
        PeerCommand::Ls => peers(client, json).await,
    }
}

/// `weft peer add`: prints the new peer's name.
async fn peer_add(client: &Client, json: bool, req: PeerAdd) -> Result<()> {
    let row: PeerRow = client.call(Method::POST, "/v1/peers", Some(&req)).await?;
    if json {
        return print_json(&row);
    }
    println!("{}", row.name);
    Ok(())
}

/// `weft peer rm`: prints the removed peer's address.
async fn peer_rm(client: &Client, addr: &str, vni: u32) -> Result<()> {
    let path = format!("/v1/peers/{}/{vni}", seg(addr));
    client.call::<Value>(Method::DELETE, &path, NONE).await?;
    println!("{addr}");
    Ok(())
}

/// `weft peers` (and `weft peer ls`).
pub async fn peers(client: &Client, json: bool) -> Result<()> {
    let rows: Vec<PeerRow> = client.call(Method::GET, "/v1/peers", NONE).await?;
    if json {
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|p| {
            vec![
                p.name,
                p.vtep,
                p.vni.to_string(),
                p.network,
                p.state,
                p.last_heard_seconds
                    .map_or_else(|| "never".into(), |s| format!("{} ago", fmt_age(s))),
                p.endpoints.map_or_else(|| "-".into(), |n| n.to_string()),
                p.rx_packets.to_string(),
                p.tx_packets.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "VTEP",
            "VNI",
            "NETWORK",
            "STATE",
            "LAST_HEARD",
            "ENDPOINTS",
            "RX_PKTS",
            "TX_PKTS",
        ],
        &rows,
    );
    Ok(())
}
