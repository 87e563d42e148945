//! VXLAN peers and the gossip cluster: `peers`, `peer add/rm/ls`, `cluster`, `keygen`.

use anyhow::Result;
use hyper::Method;
use serde_json::Value;

use super::args::PeerCommand;
use super::render::{fmt_age, print_json, print_table};
use crate::api::client::{seg, Client};
use crate::types::{ClusterInfo, PeerAdd, PeerRow};

const NONE: Option<&Value> = None;

/// `weft keygen`: a new cluster key, one line.
pub fn keygen() -> Result<()> {
    println!("{}", crate::cluster::gossip::ClusterKey::generate_line()?);
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
        "gossip rx/tx    {}/{} (dropped: {} failed authentication, {} malformed)",
        info.gossip_rx, info.gossip_tx, info.gossip_auth_failed, info.gossip_malformed
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
