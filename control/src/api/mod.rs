//! The daemon's HTTP+JSON API on its Unix socket: the server (routes onto the daemon), the
//! client the CLI uses, and the text rendering of live traces.

pub mod client;
pub mod server;
