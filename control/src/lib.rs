//! weft's daemon and command-line client as a library: the `weft` binary (`main.rs`) runs
//! [`cli::run`]; the fuzz targets (`fuzz/`) reach the parsers of hostile input from here
//! (the state file, API request bodies, sealed gossip datagrams).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod daemon;
pub mod dataplane;
pub mod debug;
pub mod docker;
pub mod gateway;
pub mod lab;
pub mod types;
pub mod web;
