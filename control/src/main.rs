//! `weft`: the daemon and its command-line client.
#![forbid(unsafe_code)]

use clap::Parser;
use weft_control::cli;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
