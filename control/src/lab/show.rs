//! `weft lab ls`, `inspect` and `exec`: read the lab records, and run commands in a node's or
//! host's namespace.

use std::path::Path;
use std::process::Command;

use super::hosts::{alive, env_for};
use super::state::{self, Record};
use super::LabError;

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), LabError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| LabError::Io(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn get(socket: &Path, name: &str) -> Result<Record, LabError> {
    state::load(socket, name)?.ok_or_else(|| {
        LabError::NotUp(format!(
            "no lab {name} is up; `weft lab ls` lists the labs, `weft lab up FILE` makes one"
        ))
    })
}

pub fn ls(socket: &Path, json: bool) -> Result<(), LabError> {
    let labs = state::list(socket)?;
    if json {
        return print_json(&labs);
    }
    println!(
        "{:<20} {:>5} {:>8} {:>5} {:>6}  FILE",
        "NAME", "HOSTS", "NETWORKS", "NODES", "LINKS"
    );
    for r in labs {
        let p = &r.parts;
        println!(
            "{:<20} {:>5} {:>8} {:>5} {:>6}  {}",
            r.name,
            p.hosts.len(),
            p.networks.len(),
            p.nodes.len(),
            p.links.len(),
            r.file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub fn inspect(socket: &Path, json: bool, name: &str) -> Result<(), LabError> {
    let r = get(socket, name)?;
    if json {
        return print_json(&r);
    }
    println!(
        "lab {}{}",
        r.name,
        r.file
            .as_ref()
            .map(|f| format!(" (from {})", f.display()))
            .unwrap_or_default()
    );
    for (h, plan) in &r.parts.hosts {
        let d = r.daemons.get(h);
        println!(
            "host {h}: namespace {}, underlay {}, daemon {}",
            plan.ns,
            d.map(|d| d.address.as_str()).unwrap_or("-"),
            match d {
                Some(d) if alive(d) =>
                    format!("pid {} (WEFT_SOCKET={})", d.pid, d.socket.display()),
                Some(d) => format!("pid {} not running (log {})", d.pid, d.log.display()),
                None => "none".into(),
            }
        );
    }
    for (n, net) in &r.parts.networks {
        let subnet = net
            .create
            .get("subnet")
            .and_then(|s| s.as_str())
            .unwrap_or("?");
        let hosts = if net.hosts.is_empty() {
            String::new()
        } else {
            format!(" on {}", net.hosts.join(", "))
        };
        println!(
            "network {n}: {} {subnet}{}{hosts}",
            net.weft_name,
            if net.overlay { " overlay" } else { "" }
        );
    }
    for (n, node) in &r.parts.nodes {
        let host = node
            .host
            .as_ref()
            .map(|h| format!(" on {h}"))
            .unwrap_or_default();
        println!("node {n}: namespace {}{host}", node.ns);
        for (e, l) in r.parts.links.iter().filter(|(_, l)| &l.node == n) {
            let ep = r.endpoints.get(e);
            println!(
                "  {} {} on {}: {}/{} mac {}{}{}",
                ep.map(|x| x.ifname.as_str()).unwrap_or("?"),
                e,
                l.network,
                ep.map(|x| x.ip.as_str()).unwrap_or("?"),
                ep.map(|x| x.prefix_len).unwrap_or(0),
                ep.map(|x| x.mac.as_str()).unwrap_or("?"),
                l.impair
                    .as_ref()
                    .map(|i| format!(", impaired: {}", super::apply::describe_impair(Some(i))))
                    .unwrap_or_default(),
                if l.down { ", link down" } else { "" }
            );
        }
        for cmd in &node.exec {
            println!("  $ {cmd}");
        }
    }
    Ok(())
}

/// Runs `cmd` in the namespace of a node or host, with `WEFT_SOCKET` naming the daemon that
/// owns it; exits with the command's status.
pub fn exec(socket: &Path, name: &str, node: &str, cmd: &[String]) -> Result<(), LabError> {
    let r = get(socket, name)?;
    let (ns, host) = if let Some(n) = r.parts.nodes.get(node) {
        (n.ns.clone(), n.host.clone())
    } else if let Some(h) = r.parts.hosts.get(node) {
        (h.ns.clone(), Some(node.to_owned()))
    } else {
        let mut known: Vec<&String> = r.parts.nodes.keys().chain(r.parts.hosts.keys()).collect();
        known.sort();
        let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
        return Err(LabError::NotUp(format!(
            "lab {name} has no node or host {node}: it has {}",
            known.join(", ")
        )));
    };
    let env = env_for(socket, host.as_ref().and_then(|h| r.daemons.get(h)));
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .status()
        .map_err(|e| {
            LabError::Io(format!(
                "cannot run `ip netns exec` ({e}): install iproute2"
            ))
        })?;
    std::process::exit(status.code().unwrap_or(128 + 9));
}
