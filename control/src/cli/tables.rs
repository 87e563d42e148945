//! The switch's tables and counters: `fdb` (and static entries), `arp`, `ports`, `stats`, `nat`, `metrics`.

use anyhow::Result;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::args::{FdbAction, FdbArgs};
use super::render::{fmt_age, print_json, print_table, published};
use crate::api::client::{check, seg, Client};
use crate::types::{ArpRow, FdbAdd, FdbRow, ImpairBody, NatRow, NetworkStatsRow, PortRow};

const NONE: Option<&Value> = None;

/// A listing path, optionally limited to one network.
fn filtered(path: &str, network: Option<&str>) -> String {
    match network {
        Some(n) => format!("{path}?network={}", seg(n)),
        None => path.to_string(),
    }
}

/// `weft fdb [NETWORK]`, `weft fdb add`, `weft fdb del`.
pub async fn fdb(client: &Client, json: bool, a: FdbArgs) -> Result<()> {
    match a.action {
        Some(FdbAction::Add {
            network,
            mac,
            endpoint,
        }) => {
            let path = format!("/v1/networks/{}/fdb", seg(&network));
            client
                .call::<Value>(Method::POST, &path, Some(&FdbAdd { mac, endpoint }))
                .await?;
            Ok(())
        }
        Some(FdbAction::Del { network, mac }) => {
            let path = format!("/v1/networks/{}/fdb/{}", seg(&network), seg(&mac));
            client.call::<Value>(Method::DELETE, &path, NONE).await?;
            Ok(())
        }
        None => fdb_list(client, json, a.network.as_deref()).await,
    }
}

/// `weft fdb [NETWORK]`: static entries show no age.
async fn fdb_list(client: &Client, json: bool, network: Option<&str>) -> Result<()> {
    let rows: Vec<FdbRow> = client
        .call(Method::GET, &filtered("/v1/fdb", network), NONE)
        .await?;
    if json {
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            let age = if r.origin == "static" {
                "-".into()
            } else {
                fmt_age(r.age_seconds)
            };
            vec![r.network, r.mac, r.port, r.origin, age]
        })
        .collect();
    print_table(&["NETWORK", "MAC", "PORT", "ORIGIN", "AGE"], &rows);
    Ok(())
}

/// `weft arp [NETWORK]`.
pub async fn arp(client: &Client, json: bool, network: Option<&str>) -> Result<()> {
    let rows: Vec<ArpRow> = client
        .call(Method::GET, &filtered("/v1/arp", network), NONE)
        .await?;
    if json {
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| vec![r.network, r.ip, r.mac, r.owner, r.origin])
        .collect();
    print_table(&["NETWORK", "IP", "MAC", "OWNER", "ORIGIN"], &rows);
    Ok(())
}

/// `weft stats [NETWORK]`.
pub async fn stats(client: &Client, json: bool, network: Option<&str>) -> Result<()> {
    let rows: Vec<NetworkStatsRow> = client
        .call(Method::GET, &filtered("/v1/stats", network), NONE)
        .await?;
    if json {
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|s| {
            vec![
                s.network,
                s.fdb_entries.to_string(),
                s.learned.to_string(),
                s.mac_moves.to_string(),
                s.learn_refused_table_full.to_string(),
                s.aged_out.to_string(),
                s.arp_suppressed.to_string(),
                s.gateway_arp_replies.to_string(),
                s.gateway_echo_replies.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "NETWORK",
            "FDB",
            "LEARNED",
            "MOVES",
            "REFUSED",
            "AGED_OUT",
            "ARP_SUPPRESSED",
            "GW_ARP",
            "GW_PING",
        ],
        &rows,
    );
    Ok(())
}

/// `weft nat [NETWORK]`.
pub async fn nat(client: &Client, json: bool, network: Option<&str>) -> Result<()> {
    let rows: Vec<NatRow> = client
        .call(Method::GET, &filtered("/v1/nat", network), NONE)
        .await?;
    if json {
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.protocol,
                r.direction,
                r.network,
                r.container,
                r.outside,
                r.host_socket,
                r.bytes_out.to_string(),
                r.bytes_in.to_string(),
                fmt_age(r.age_seconds),
                fmt_age(r.idle_seconds),
            ]
        })
        .collect();
    print_table(
        &[
            "PROTO",
            "DIR",
            "NETWORK",
            "CONTAINER",
            "OUTSIDE",
            "HOST_SOCKET",
            "BYTES_OUT",
            "BYTES_IN",
            "AGE",
            "IDLE",
        ],
        &rows,
    );
    Ok(())
}

/// `weft metrics`: the daemon's Prometheus text, as it comes.
pub async fn metrics(client: &Client) -> Result<()> {
    let resp = client.send(Method::GET, "/v1/metrics", None).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    check(status, &body)?;
    print!("{}", String::from_utf8_lossy(&body));
    Ok(())
}

/// `weft ports`: counters, drops by reason and published ports.
pub async fn ports(client: &Client, json: bool) -> Result<()> {
    let ports: Vec<PortRow> = client.call(Method::GET, "/v1/ports", NONE).await?;
    if json {
        return print_json(&ports);
    }
    let detached: Vec<String> = ports
        .iter()
        .filter_map(|p| {
            let why = p.detached.as_ref()?;
            Some(format!(
                "{} is detached: {why}; `weft disconnect {} {}` releases its address and ports",
                p.name, p.network, p.name
            ))
        })
        .collect();
    let rows: Vec<Vec<String>> = ports
        .into_iter()
        .map(|p| {
            let drops = if p.drops.is_empty() {
                "-".to_string()
            } else {
                p.drops
                    .iter()
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                p.name,
                p.kind.as_str().to_string(),
                p.network,
                p.rx_packets.to_string(),
                p.rx_bytes.to_string(),
                p.tx_packets.to_string(),
                p.tx_bytes.to_string(),
                drops,
                published(&p.published),
                if p.link_down { "down" } else { "up" }.to_string(),
                p.impair
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ImpairBody::summary),
            ]
        })
        .collect();
    print_table(
        &[
            "PORT",
            "KIND",
            "NETWORK",
            "RX_PKTS",
            "RX_BYTES",
            "TX_PKTS",
            "TX_BYTES",
            "DROPS",
            "PUBLISHED",
            "LINK",
            "IMPAIR",
        ],
        &rows,
    );
    for line in detached {
        println!("{line}");
    }
    Ok(())
}
