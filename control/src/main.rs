//! `weft`: the daemon and its command-line client.
#![forbid(unsafe_code)]

mod api;
mod cli;
mod client;
mod cluster;
mod daemon;
mod dataplane;
mod demo;
mod dns;
mod gateway;
mod gossip;
mod ipam;
mod nat;
mod pcap;
mod publish;
mod server;
mod stack;
mod state;
mod trace;
mod tunnel;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
