//! The gossip cluster: membership (`gossip`) over the sealed, replay-protected chitchat
//! transport (`transport`, `replay`), what a node publishes and the checks it must pass
//! (`spec`), the pure view derived from the live nodes' state (`view`) and the plan that
//! brings a node's tables in step with it (`sync`). The daemon applies the plan
//! (`daemon::cluster_sync`).

pub mod gossip;
pub mod replay;
pub mod spec;
pub mod sync;
pub mod transport;
pub mod view;
