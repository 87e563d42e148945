//! The daemon's HTTP+JSON API on its Unix socket: the server (routes onto the daemon), who
//! may connect (peer credentials), the client the CLI uses, and the Prometheus text
//! rendering of the metrics.

pub mod client;
pub mod metrics;
pub mod peer;
pub mod server;
