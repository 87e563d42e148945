//! Carries out a lab's steps through the daemons' API and iproute2, recording each one; when
//! a step fails, what this run made is removed again, last first.

use std::path::PathBuf;

use hyper::Method;

use super::plan::{Parts, Step};
use super::state::{self, Record};
use super::{hosts, netns, LabError};
use crate::api::client::{seg, Client};
use crate::types::{EndpointInfo, NetworkSummary, PortRow};

/// One run of `lab up` or `lab down`.
pub struct Applier {
    /// The daemon `weft lab` talks to (`--socket`).
    pub socket: PathBuf,
    pub record: Record,
    pub want: Parts,
    /// Additions this run made, to undo if a later step fails.
    made: Vec<Step>,
    /// Printed lines, one per step.
    pub quiet: bool,
}

fn api(e: anyhow::Error) -> LabError {
    LabError::Api(format!("{e:#}"))
}

impl Applier {
    pub fn new(socket: PathBuf, record: Record, want: Parts) -> Applier {
        Applier {
            socket,
            record,
            want,
            made: Vec::new(),
            quiet: false,
        }
    }

    /// The client of the daemon that owns a part placed on `host` (None: `--socket`'s).
    pub fn client(&self, host: Option<&str>) -> Client {
        match host.and_then(|h| self.record.daemons.get(h)) {
            Some(d) => Client::new(&d.socket),
            None => Client::new(&self.socket),
        }
    }

    /// Forgets impairments and downed links the daemons no longer have (cleared by hand, or
    /// lost in a restart), so that the diff sets them again.
    pub async fn refresh_from_ports(&mut self) {
        let mut daemons: Vec<Option<String>> = vec![None];
        daemons.extend(self.record.daemons.keys().cloned().map(Some));
        for host in daemons {
            if self.host_down(host.as_deref()) {
                continue;
            }
            let client = self.client(host.as_deref());
            let rows: Vec<PortRow> = match client.call(Method::GET, "/v1/ports", None::<&()>).await
            {
                Ok(rows) => rows,
                Err(_) => continue,
            };
            for (e, link) in self.record.parts.links.iter_mut() {
                if link.host != host {
                    continue;
                }
                let Some(row) = rows.iter().find(|r| &r.name == e) else {
                    continue;
                };
                if row.impair.is_none() {
                    link.impair = None;
                }
                if !row.link_down {
                    link.down = false;
                }
            }
        }
    }

    /// Whether the daemon of `host` is gone (what it held went with it).
    pub fn host_down(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.record.daemons.get(h).is_none_or(|d| !hosts::alive(d)))
    }

    fn say(&self, line: String) {
        if !self.quiet {
            println!("{line}");
        }
    }

    fn save(&self) -> Result<(), LabError> {
        state::save(&self.socket, &self.record)
    }

    /// Applies every step; on a failure undoes this run's additions and returns the error.
    pub async fn run(&mut self, steps: &[Step]) -> Result<(), LabError> {
        for step in steps {
            if let Err(e) = self.step(step).await {
                // What the failed step made before it failed goes too.
                if is_addition(step) {
                    self.made.push(step.clone());
                }
                self.undo().await;
                if self.record.parts == Parts::default() && self.record.daemons.is_empty() {
                    let _ = state::remove(&self.socket, &self.record.name);
                }
                return Err(e);
            }
            if is_addition(step) {
                self.made.push(step.clone());
            }
            self.save()?;
        }
        Ok(())
    }

    /// Removes what this run added, last first; errors are printed, not returned.
    async fn undo(&mut self) {
        let made = std::mem::take(&mut self.made);
        if !made.is_empty() {
            println!("undoing what this run made:");
        }
        for step in made.iter().rev() {
            let inverse = match step {
                Step::AddLink(e) => Step::RemoveLink(e.clone()),
                Step::AddNode(n) => Step::RemoveNode(n.clone()),
                Step::AddNetwork(n) => Step::RemoveNetwork(n.clone()),
                Step::AddHost(h) => Step::RemoveHost(h.clone()),
                Step::AddUnderlay => Step::RemoveUnderlay,
                _ => continue,
            };
            if let Err(e) = self.step(&inverse).await {
                eprintln!(
                    "  could not undo ({e}); `weft lab down {}` retries",
                    self.record.name
                );
            }
            let _ = self.save();
        }
    }

    async fn step(&mut self, step: &Step) -> Result<(), LabError> {
        match step {
            Step::AddUnderlay => hosts::add_underlay(self).await,
            Step::RemoveUnderlay => hosts::remove_underlay(self).await,
            Step::AddHost(h) => hosts::add_host(self, h).await,
            Step::RemoveHost(h) => hosts::remove_host(self, h).await,
            Step::AddNetwork(n) => self.add_network(n).await,
            Step::RemoveNetwork(n) => self.remove_network(n).await,
            Step::AddNode(n) => self.add_node(n),
            Step::RemoveNode(n) => self.remove_node(n),
            Step::AddLink(e) => self.add_link(e).await,
            Step::RemoveLink(e) => self.remove_link(e).await,
            Step::Impair(e) => self.impair(e).await,
            Step::LinkState(e) => self.link_state(e).await,
            Step::Exec(n) => self.exec(n),
        }
    }

    async fn add_network(&mut self, n: &str) -> Result<(), LabError> {
        let plan = self.want.networks[n].clone();
        let daemons: Vec<Option<&str>> = if plan.hosts.is_empty() {
            vec![None]
        } else if plan.overlay {
            // The cluster carries an overlay network to every node.
            vec![plan.hosts.first().map(String::as_str)]
        } else {
            plan.hosts.iter().map(|h| Some(h.as_str())).collect()
        };
        for (i, host) in daemons.into_iter().enumerate() {
            let created: NetworkSummary = self
                .client(host)
                .call(Method::POST, "/v1/networks", Some(&plan.create))
                .await
                .map_err(api)?;
            // Recorded once made (a name taken by someone else is never the lab's to
            // remove); made on one host, it is the lab's on every host.
            if i == 0 {
                self.record
                    .parts
                    .networks
                    .insert(n.to_owned(), plan.clone());
            }
            self.say(format!(
                "+ network {n}: {} {}{}",
                created.name,
                created.subnet,
                host.map(|h| format!(" on {h}")).unwrap_or_default()
            ));
        }
        if plan.overlay {
            for h in &plan.hosts {
                hosts::wait_network(&self.client(Some(h)), &plan.weft_name, h).await?;
            }
        }
        Ok(())
    }

    async fn remove_network(&mut self, n: &str) -> Result<(), LabError> {
        let Some(plan) = self.record.parts.networks.get(n).cloned() else {
            return Ok(());
        };
        let daemons: Vec<Option<&str>> = if plan.hosts.is_empty() {
            vec![None]
        } else {
            plan.hosts.iter().map(|h| Some(h.as_str())).collect()
        };
        let path = format!("/v1/networks/{}?force=true", seg(&plan.weft_name));
        for host in daemons {
            if self.host_down(host) {
                continue;
            }
            delete_if_there(&self.client(host), &path).await?;
            if plan.overlay {
                break;
            }
        }
        self.record.parts.networks.remove(n);
        self.say(format!("- network {n}: {}", plan.weft_name));
        Ok(())
    }

    fn add_node(&mut self, n: &str) -> Result<(), LabError> {
        let plan = self.want.nodes[n].clone();
        netns::add(&plan.ns)?;
        self.say(format!("+ node {n}: namespace {}", plan.ns));
        // Commands run later (after every link); recorded as run only then.
        let mut rec = plan;
        rec.exec.clear();
        self.record.parts.nodes.insert(n.to_owned(), rec);
        Ok(())
    }

    fn remove_node(&mut self, n: &str) -> Result<(), LabError> {
        let Some(plan) = self.record.parts.nodes.get(n).cloned() else {
            return Ok(());
        };
        netns::remove(&plan.ns)?;
        self.record.parts.nodes.remove(n);
        self.say(format!("- node {n}: namespace {}", plan.ns));
        Ok(())
    }

    async fn add_link(&mut self, e: &str) -> Result<(), LabError> {
        let plan = self.want.links[e].clone();
        let net_plan = &self.want.networks[&plan.network];
        let net = &net_plan.weft_name;
        if let (true, Some(h)) = (net_plan.overlay, plan.host.as_deref()) {
            hosts::wait_network(&self.client(Some(h)), net, h).await?;
        }
        let path = format!("/v1/networks/{}/endpoints", seg(net));
        let ep: EndpointInfo = self
            .client(plan.host.as_deref())
            .call(Method::POST, &path, Some(&plan.connect))
            .await
            .map_err(api)?;
        self.say(format!(
            "+ link {}:{} on {}: {} {}/{} mac {}{}",
            plan.node,
            ep.ifname,
            plan.network,
            ep.name,
            ep.ip,
            ep.prefix_len,
            ep.mac,
            if ep.published.is_empty() {
                String::new()
            } else {
                format!(" published {}", ep.published.join(", "))
            }
        ));
        let mut rec = plan;
        rec.impair = None;
        rec.down = false;
        self.record.parts.links.insert(e.to_owned(), rec);
        self.record.endpoints.insert(e.to_owned(), ep);
        Ok(())
    }

    async fn remove_link(&mut self, e: &str) -> Result<(), LabError> {
        let Some(plan) = self.record.parts.links.get(e).cloned() else {
            return Ok(());
        };
        let host_gone = self.host_down(plan.host.as_deref());
        if let (false, Some(net)) = (host_gone, self.record.parts.networks.get(&plan.network)) {
            let path = format!("/v1/networks/{}/endpoints/{}", seg(&net.weft_name), seg(e));
            delete_if_there(&self.client(plan.host.as_deref()), &path).await?;
        }
        self.record.parts.links.remove(e);
        self.record.endpoints.remove(e);
        self.say(format!("- link {}: {e}", plan.node));
        Ok(())
    }

    async fn impair(&mut self, e: &str) -> Result<(), LabError> {
        let want = self.want.links[e].impair.clone();
        let client = self.client(self.want.links[e].host.as_deref());
        match &want {
            Some(body) => client.impair(e, body).await.map(drop),
            None => client.clear_impair(e).await,
        }
        .map_err(api)?;
        self.say(format!("~ impair {e}: {}", describe_impair(want.as_ref())));
        if let Some(l) = self.record.parts.links.get_mut(e) {
            l.impair = want;
        }
        Ok(())
    }

    async fn link_state(&mut self, e: &str) -> Result<(), LabError> {
        let down = self.want.links[e].down;
        let client = self.client(self.want.links[e].host.as_deref());
        client.set_link(e, !down).await.map_err(api)?;
        self.say(format!("~ link {e}: {}", if down { "down" } else { "up" }));
        if let Some(l) = self.record.parts.links.get_mut(e) {
            l.down = down;
        }
        Ok(())
    }

    fn exec(&mut self, n: &str) -> Result<(), LabError> {
        let plan = self.want.nodes[n].clone();
        let dir = state::lab_dir(&self.socket, &self.record.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LabError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let log = dir.join(format!("{n}.log"));
        let env = hosts::exec_env(self, plan.host.as_deref());
        for cmd in &plan.exec {
            // Said before it runs: a lab file's commands run as root.
            self.say(format!("$ {n}: {cmd}"));
            netns::run_logged(&plan.ns, cmd, &log, &env)?;
        }
        if let Some(rec) = self.record.parts.nodes.get_mut(n) {
            rec.exec = plan.exec;
        }
        Ok(())
    }
}

fn is_addition(step: &Step) -> bool {
    matches!(
        step,
        Step::AddLink(_)
            | Step::AddNode(_)
            | Step::AddNetwork(_)
            | Step::AddHost(_)
            | Step::AddUnderlay
    )
}

/// DELETE that takes "not found" as done (removed by hand, or with its network).
pub async fn delete_if_there(client: &Client, path: &str) -> Result<(), LabError> {
    use http_body_util::BodyExt;
    let resp = client.send(Method::DELETE, path, None).await.map_err(api)?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| LabError::Api(e.to_string()))?
        .to_bytes();
    if status == hyper::StatusCode::NOT_FOUND {
        return Ok(());
    }
    crate::api::client::check(status, &body).map_err(api)
}

pub fn describe_impair(i: Option<&super::file::ImpairSpec>) -> String {
    let Some(i) = i else { return "cleared".into() };
    let parts: Vec<String> = i.parts().iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}
