//! `weft`: the daemon and its command-line client.
#![forbid(unsafe_code)]

mod api;
mod cli;
mod cluster;
mod daemon;
mod dataplane;
mod gateway;
mod types;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
