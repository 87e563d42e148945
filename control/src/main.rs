//! `weft`: the daemon and its command-line client.
#![forbid(unsafe_code)]

use clap::Parser;
use weft_control::cli;

fn main() {
    // Run by a container runtime as a CNI plugin: the environment says so.
    if std::env::var_os("CNI_COMMAND").is_some() {
        let socket = std::path::Path::new(cli::DEFAULT_SOCKET);
        std::process::exit(weft_control::cni::run_plugin(socket));
    }
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
