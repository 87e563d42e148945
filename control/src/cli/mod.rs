//! Command-line interface (Docker's and iproute2's idiom): the arguments, and each command handed to the file that owns it.

use anyhow::{Context, Result};

use crate::api::client::Client;

mod args;
mod cluster;
mod cni;
mod daemon;
mod demo;
mod explain;
mod impair;
mod network;
mod render;
mod stream;
mod tables;

use args::Command;
pub use args::{Cli, DEFAULT_SOCKET};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(cli: Cli) -> Result<()> {
    let rt = runtime()?;
    match cli.command {
        Command::Daemon(args) => rt.block_on(daemon::run_daemon(&cli.socket, &args)),
        Command::Keygen(args) => cluster::keygen(&args),
        Command::Demo => rt.block_on(demo::run()),
        Command::Cni(command) => cni::cni(&cli.socket, command),
        Command::Lab(command) => {
            Ok(rt.block_on(crate::lab::run(&cli.socket, cli.json, command))?)
        }
        command => {
            let client = Client::new(&cli.socket);
            rt.block_on(run_client(&client, cli.json, command))
        }
    }
}

/// The commands that talk to a running daemon through its API.
async fn run_client(client: &Client, json: bool, command: Command) -> Result<()> {
    match command {
        Command::Daemon(_)
        | Command::Demo
        | Command::Keygen(_)
        | Command::Cni(_)
        | Command::Lab(_) => {
            unreachable!("handled by run")
        }
        Command::Network(command) => network::network(client, json, command).await,
        Command::Connect(a) => network::connect(client, json, a).await,
        Command::Disconnect { network, endpoint } => {
            network::disconnect(client, &network, &endpoint).await
        }
        Command::Publish(a) => network::publish(client, json, a).await,
        Command::Unpublish { endpoint, spec } => {
            network::unpublish(client, json, &endpoint, spec).await
        }
        Command::Fdb(a) => tables::fdb(client, json, a).await,
        Command::Arp { network } => tables::arp(client, json, network.as_deref()).await,
        Command::Ports => tables::ports(client, json).await,
        Command::Stats { network } => tables::stats(client, json, network.as_deref()).await,
        Command::Nat { network } => tables::nat(client, json, network.as_deref()).await,
        Command::Metrics => tables::metrics(client).await,
        Command::Capture(a) => stream::capture(client, a).await,
        Command::Trace(a) => stream::trace(client, a).await,
        Command::Explain(a) => explain::explain(client, json, a).await,
        Command::Impair(a) => impair::impair(client, json, a).await,
        Command::Link { port, state } => impair::link(client, &port, state).await,
        Command::Peer(command) => cluster::peer(client, json, command).await,
        Command::Peers => cluster::peers(client, json).await,
        Command::Cluster => cluster::cluster(client, json).await,
    }
}
