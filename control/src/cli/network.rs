//! Networks and endpoints: `network create/ls/inspect/rm`, `connect`, `disconnect`, `publish`, `unpublish`.

use anyhow::Result;
use hyper::Method;
use serde_json::Value;

use super::args::{ConnectArgs, KindArg, NetworkCommand, PublishArgs};
use super::render::{print_json, print_table};
use crate::api::client::{seg, Client};
use crate::gateway::publish::PortMapping;
use crate::types::{
    Connect, CreateNetwork, EndpointInfo, NetworkDetail, NetworkSummary, PortKind, Publish,
    Unpublish,
};

const NONE: Option<&Value> = None;

/// `weft network ...`: one function per subcommand.
pub async fn network(client: &Client, json: bool, command: NetworkCommand) -> Result<()> {
    match command {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
            mtu,
            aging,
            icc,
            nat,
            internal,
            driver,
            vni,
            published_source,
        } => {
            let req = CreateNetwork {
                name,
                subnet,
                gateway,
                mtu,
                aging_seconds: aging,
                icc: Some(icc),
                nat,
                internal,
                driver,
                vni,
                published_source,
            };
            create(client, json, &req).await
        }
        NetworkCommand::Ls => ls(client, json).await,
        NetworkCommand::Inspect { name } => inspect(client, &name).await,
        NetworkCommand::Rm { name, force } => rm(client, &name, force).await,
    }
}

/// `weft network create`: prints the new network's name.
async fn create(client: &Client, json: bool, req: &CreateNetwork) -> Result<()> {
    let n: NetworkSummary = client.call(Method::POST, "/v1/networks", Some(req)).await?;
    if json {
        print_json(&n)?;
    } else {
        println!("{}", n.name);
    }
    Ok(())
}

/// `weft network ls`.
async fn ls(client: &Client, json: bool) -> Result<()> {
    let nets: Vec<NetworkSummary> = client.call(Method::GET, "/v1/networks", NONE).await?;
    if json {
        return print_json(&nets);
    }
    let rows: Vec<Vec<String>> = nets
        .into_iter()
        .map(|n| {
            vec![
                n.name,
                n.subnet,
                n.gateway,
                n.mtu.to_string(),
                format!("{}s", n.aging_seconds),
                n.endpoints.to_string(),
            ]
        })
        .collect();
    print_table(
        &["NAME", "SUBNET", "GATEWAY", "MTU", "AGING", "ENDPOINTS"],
        &rows,
    );
    Ok(())
}

/// `weft network inspect`: always JSON.
async fn inspect(client: &Client, name: &str) -> Result<()> {
    let n: NetworkDetail = client
        .call(Method::GET, &format!("/v1/networks/{}", seg(name)), NONE)
        .await?;
    print_json(&n)
}

/// `weft network rm`: prints the removed network's name.
async fn rm(client: &Client, name: &str, force: bool) -> Result<()> {
    let path = format!("/v1/networks/{}?force={force}", seg(name));
    client.call::<Value>(Method::DELETE, &path, NONE).await?;
    println!("{name}");
    Ok(())
}

/// `weft connect`: prints the new endpoint and its published ports.
pub async fn connect(client: &Client, json: bool, a: ConnectArgs) -> Result<()> {
    let req = Connect {
        netns: a.netns,
        pid: a.pid,
        name: a.name,
        ip: a.ip,
        mac: a.mac,
        ifname: Some(a.ifname),
        kind: Some(match a.kind {
            KindArg::Tap => PortKind::Tap,
            KindArg::Veth => PortKind::Veth,
        }),
        aliases: a.aliases,
        publish: a.publish,
        publish_all: a.publish_all,
        port_security: Some(a.port_security),
        owner: None,
    };
    let path = format!("/v1/networks/{}/endpoints", seg(&a.network));
    let ep: EndpointInfo = client.call(Method::POST, &path, Some(&req)).await?;
    if json {
        return print_json(&ep);
    }
    println!(
        "{}: {} in {} on network {} ({}) {}/{} mac {}{}",
        ep.name,
        ep.ifname,
        ep.netns,
        ep.network,
        ep.kind.as_str(),
        ep.ip,
        ep.prefix_len,
        ep.mac,
        if ep.port_security {
            ""
        } else {
            " (port security off)"
        }
    );
    for m in &ep.published {
        println!("{m}");
    }
    Ok(())
}

/// `weft disconnect`: prints the removed endpoint's name.
pub async fn disconnect(client: &Client, network: &str, endpoint: &str) -> Result<()> {
    let path = format!("/v1/networks/{}/endpoints/{}", seg(network), seg(endpoint));
    client.call::<Value>(Method::DELETE, &path, NONE).await?;
    println!("{endpoint}");
    Ok(())
}

/// `weft publish`: prints the mappings added.
pub async fn publish(client: &Client, json: bool, a: PublishArgs) -> Result<()> {
    let req = Publish {
        specs: a.specs,
        publish_all: a.publish_all,
    };
    let path = format!("/v1/endpoints/{}/publish", seg(&a.endpoint));
    let added: Vec<PortMapping> = client.call(Method::POST, &path, Some(&req)).await?;
    print_mappings(json, &added)
}

/// `weft unpublish`: prints the mappings removed.
pub async fn unpublish(client: &Client, json: bool, endpoint: &str, spec: String) -> Result<()> {
    let path = format!("/v1/endpoints/{}/unpublish", seg(endpoint));
    let removed: Vec<PortMapping> = client
        .call(Method::POST, &path, Some(&Unpublish { spec }))
        .await?;
    print_mappings(json, &removed)
}

/// Port mappings, one a line (or JSON).
fn print_mappings(json: bool, mappings: &[PortMapping]) -> Result<()> {
    if json {
        return print_json(&mappings);
    }
    for m in mappings {
        println!("{m}");
    }
    Ok(())
}
