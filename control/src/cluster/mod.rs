//! The gossip cluster: the sealed chitchat transport (`gossip`) and the pure view derived from
//! the live nodes' state (`view`). The daemon applies the view (`daemon::cluster_sync`).

pub mod gossip;
pub mod sync;
pub mod view;
