//! The live web view (`weft daemon --web ADDR:PORT`): one embedded page on a TCP listener
//! (loopback unless an address is given), read-only: GET routes onto the daemon's queries,
//! its port counters as server-sent events, a port's trace as text and its capture as a
//! pcap download. The Unix API's mutating routes are not reachable from here.

pub mod addr;
mod conn;
pub mod guard;
pub mod rates;
mod routes;
mod streams;

use std::future::IntoFuture;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::daemon::Daemon;

pub use addr::{bind, parse_listen, WebAddrError};

/// Live traces and captures the web view serves at once.
pub const MAX_STREAMS: usize = 8;
/// Pages receiving the counters at once.
pub const MAX_WATCHERS: usize = 32;

/// What the routes share.
#[derive(Clone)]
struct WebState {
    daemon: Arc<Daemon>,
    /// Permits for live traces and captures.
    streams: Arc<Semaphore>,
    /// Permits for the counters' event streams.
    watchers: Arc<Semaphore>,
}

/// Serves the web view on `listener` (from [`bind`]) until `shutdown` resolves.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: std::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let addr = listener.local_addr().ok();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("web view: cannot use its listener: {e}");
            return;
        }
    };
    let state = WebState {
        daemon,
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
    };
    let app = routes::router(state);
    if let Some(a) = addr {
        log::info!("web view (read-only) on http://{a}/");
        if !a.ip().is_loopback() {
            log::warn!("the web view on {a} is reachable from other hosts: anyone who can connect sees the tables and can download captures of the ports' traffic");
        }
    }
    // Not a graceful shutdown: a live event stream would hold it open forever.
    tokio::select! {
        r = axum::serve(conn::CappedListener::new(listener, conn::MAX_CONNECTIONS), app).into_future() => {
            if let Err(e) = r {
                log::error!("web view: {e}");
            }
        }
        () = shutdown => {}
    }
}
