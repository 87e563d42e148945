//! The daemon's API server: HTTP/1.1 + JSON on a root-only Unix socket (axum), versioned
//! under `/v1`. Handlers run the blocking control operations on tokio's blocking pool.

use std::future::IntoFuture;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use crate::daemon::{Daemon, DaemonError};
use crate::dataplane::pcap;
use crate::types::{ApiError, Connect, CreateNetwork, FdbAdd, PeerAdd, Publish, Unpublish};

type Shared = State<Arc<Daemon>>;

impl IntoResponse for DaemonError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(ApiError {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// Runs a blocking control operation off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DaemonError> + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(DaemonError::Internal(e.to_string())))
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/networks", get(list_networks).post(create_network))
        .route(
            "/v1/networks/{name}",
            get(inspect_network).delete(remove_network),
        )
        .route("/v1/networks/{name}/endpoints", post(connect))
        .route(
            "/v1/networks/{name}/endpoints/{endpoint}",
            delete(disconnect),
        )
        .route("/v1/networks/{name}/fdb", post(fdb_add))
        .route("/v1/networks/{name}/fdb/{mac}", delete(fdb_del))
        .route("/v1/fdb", get(fdb))
        .route("/v1/arp", get(arp))
        .route("/v1/stats", get(stats))
        .route("/v1/nat", get(nat))
        .route("/v1/metrics", get(metrics))
        .route("/v1/ports", get(ports))
        .route("/v1/endpoints/{endpoint}/publish", post(publish))
        .route("/v1/peers", get(peers).post(peer_add))
        .route("/v1/cluster", get(cluster))
        .route("/v1/peers/{addr}/{vni}", delete(peer_rm))
        .route("/v1/endpoints/{endpoint}/unpublish", post(unpublish))
        .route("/v1/ports/{port}/capture", get(capture))
        .route("/v1/networks/{name}/capture", get(capture_network))
        .route("/v1/ports/{port}/trace", get(trace))
        .route("/v1/explain", get(explain))
        .route("/v1/ports/{port}/trace/inject", post(trace_inject))
        .route(
            "/v1/ports/{port}/impair",
            axum::routing::put(impair).delete(clear_impair),
        )
        .route("/v1/ports/{port}/link", axum::routing::put(set_link))
        .with_state(daemon)
}

async fn list_networks(State(d): Shared) -> Response {
    match blocking(move || Ok(d.list_networks())).await {
        Ok(n) => Json(n).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn create_network(State(d): Shared, Json(req): Json<CreateNetwork>) -> Response {
    match blocking(move || d.create_network(req)).await {
        Ok(n) => (StatusCode::CREATED, Json(n)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn inspect_network(State(d): Shared, UrlPath(name): UrlPath<String>) -> Response {
    match blocking(move || d.inspect_network(&name)).await {
        Ok(n) => Json(n).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

async fn remove_network(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<RemoveQuery>,
) -> Response {
    match blocking(move || d.remove_network(&name, q.force)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn connect(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<Connect>,
) -> Response {
    match blocking(move || d.connect(&name, req)).await {
        Ok(ep) => (StatusCode::CREATED, Json(ep)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn cluster(State(d): Shared) -> Response {
    match blocking(move || d.cluster_info()).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn peers(State(d): Shared) -> Response {
    match blocking(move || Ok(d.peers())).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn peer_add(State(d): Shared, Json(req): Json<PeerAdd>) -> Response {
    match blocking(move || d.peer_add(req)).await {
        Ok(p) => (StatusCode::CREATED, Json(p)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn peer_rm(State(d): Shared, UrlPath((addr, vni)): UrlPath<(String, u32)>) -> Response {
    match blocking(move || d.peer_rm(&addr, vni)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn publish(
    State(d): Shared,
    UrlPath(endpoint): UrlPath<String>,
    Json(req): Json<Publish>,
) -> Response {
    match blocking(move || d.publish(&endpoint, req)).await {
        Ok(m) => (StatusCode::CREATED, Json(m)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn unpublish(
    State(d): Shared,
    UrlPath(endpoint): UrlPath<String>,
    Json(req): Json<Unpublish>,
) -> Response {
    match blocking(move || d.unpublish(&endpoint, &req.spec)).await {
        Ok(m) => Json(m).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn disconnect(
    State(d): Shared,
    UrlPath((name, endpoint)): UrlPath<(String, String)>,
) -> Response {
    match blocking(move || d.disconnect(&name, &endpoint)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn impair(
    State(d): Shared,
    UrlPath(port): UrlPath<String>,
    Json(body): Json<crate::types::ImpairBody>,
) -> Response {
    match blocking(move || d.impair(&port, &body)).await {
        Ok(applied) => Json(applied).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn clear_impair(State(d): Shared, UrlPath(port): UrlPath<String>) -> Response {
    match blocking(move || d.clear_impair(&port)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn set_link(
    State(d): Shared,
    UrlPath(port): UrlPath<String>,
    Json(body): Json<crate::types::LinkBody>,
) -> Response {
    match blocking(move || d.set_link(&port, body.up)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct FdbQuery {
    network: Option<String>,
}

async fn fdb(State(d): Shared, Query(q): Query<FdbQuery>) -> Response {
    match blocking(move || d.fdb(q.network.as_deref())).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn arp(State(d): Shared, Query(q): Query<FdbQuery>) -> Response {
    match blocking(move || d.arp(q.network.as_deref())).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn stats(State(d): Shared, Query(q): Query<FdbQuery>) -> Response {
    match blocking(move || d.stats(q.network.as_deref())).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn nat(State(d): Shared, Query(q): Query<FdbQuery>) -> Response {
    match blocking(move || d.nat_flows(q.network.as_deref())).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(d): Shared) -> Response {
    let gossip = d.gossip_counters();
    match blocking(move || d.metrics_data()).await {
        Ok(data) => {
            let mut text = super::metrics::render(&data);
            if let Some(c) = gossip {
                super::metrics::render_gossip(&mut text, &c);
            }
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn fdb_add(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<FdbAdd>,
) -> Response {
    match blocking(move || d.fdb_add(&name, &req.mac, &req.endpoint)).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn fdb_del(State(d): Shared, UrlPath((name, mac)): UrlPath<(String, String)>) -> Response {
    match blocking(move || d.fdb_del(&name, &mac)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ports(State(d): Shared) -> Response {
    match blocking(move || Ok(d.ports())).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct CaptureQuery {
    count: Option<u64>,
    #[serde(default)]
    outer: bool,
}

/// A response body fed by one of the data plane's channels (a capture's pcap records, a
/// trace's frame records), each item rendered as bytes, after an optional header, until the
/// channel closes (count reached) or the client goes away.
pub(crate) struct ChannelBody<T> {
    pub(crate) header: Option<Bytes>,
    pub(crate) rx: tokio::sync::mpsc::Receiver<T>,
    pub(crate) render: Box<dyn Fn(T) -> Bytes + Send>,
    /// Items left before the body ends (a capture of several ports counts here).
    pub(crate) remaining: Option<u64>,
}

impl<T> http_body::Body for ChannelBody<T> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(h) = this.header.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(h))));
        }
        if this.remaining == Some(0) {
            return std::task::Poll::Ready(None);
        }
        let remaining = &mut this.remaining;
        this.rx.poll_recv(cx).map(|r| {
            r.map(|item| {
                if let Some(n) = remaining.as_mut() {
                    *n -= 1;
                }
                Ok(http_body::Frame::data((this.render)(item)))
            })
        })
    }
}

/// A streamed response of `content_type`.
pub(crate) fn stream<T: Send + 'static>(
    content_type: &'static str,
    body: ChannelBody<T>,
) -> Response {
    ([(header::CONTENT_TYPE, content_type)], Body::new(body)).into_response()
}

async fn capture(
    State(d): Shared,
    UrlPath(port): UrlPath<String>,
    Query(q): Query<CaptureQuery>,
) -> Response {
    match blocking(move || d.capture(&port, q.count, q.outer)).await {
        Ok(rx) => stream(
            "application/vnd.tcpdump.pcap",
            ChannelBody {
                header: Some(pcap::global_header()),
                rx,
                render: Box::new(|(_, r): (u32, crate::dataplane::CaptureRecord)| {
                    pcap::record(r.at, &r.frame)
                }),
                remaining: None,
            },
        ),
        Err(e) => e.into_response(),
    }
}

/// Every port of a network in one pcapng stream: an interface per port, directions marked.
async fn capture_network(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<CaptureQuery>,
) -> Response {
    if q.count == Some(0) {
        return DaemonError::Invalid("-c/--count must be at least 1".into()).into_response();
    }
    match blocking(move || d.capture_network(&name)).await {
        Ok((rx, interfaces)) => stream(
            "application/x-pcapng",
            ChannelBody {
                header: Some(crate::dataplane::pcapng::header(&interfaces)),
                rx,
                render: Box::new(|(i, r): (u32, crate::dataplane::CaptureRecord)| {
                    crate::dataplane::pcapng::packet(i, r.at, r.outbound, &r.frame)
                }),
                remaining: q.count,
            },
        ),
        Err(e) => e.into_response(),
    }
}

async fn trace(
    State(d): Shared,
    UrlPath(port): UrlPath<String>,
    Query(q): Query<CaptureQuery>,
) -> Response {
    match blocking(move || d.trace(&port, q.count)).await {
        Ok((rx, names)) => stream(
            "text/plain; charset=utf-8",
            ChannelBody {
                header: None,
                rx,
                remaining: None,
                render: Box::new(move |(_, t)| {
                    Bytes::from(crate::dataplane::trace_text::render(&t, &names))
                }),
            },
        ),
        Err(e) => e.into_response(),
    }
}

async fn trace_inject(
    State(d): Shared,
    UrlPath(port): UrlPath<String>,
    Json(body): Json<crate::types::InjectBody>,
) -> Response {
    match blocking(move || d.trace_inject(&port, &body)).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct ExplainQuery {
    from: String,
    to: String,
    port: Option<String>,
}

async fn explain(State(d): Shared, Query(q): Query<ExplainQuery>) -> Response {
    match blocking(move || d.explain(&q.from, &q.to, q.port.as_deref())).await {
        Ok(e) => Json(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Serves the API on `socket` until `shutdown` resolves, to root, the daemon's own user and
/// the `--api-group` only ([`super::peer`]: checked on every connection, whatever the
/// socket's mode). The socket was bound with its final mode; it is removed on exit.
pub async fn serve(
    daemon: Arc<Daemon>,
    (listener, access): (tokio::net::UnixListener, super::peer::Access),
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(daemon);
    let listener = super::peer::CheckedListener::new(listener, access);
    // Not a graceful shutdown: a live capture stream would hold it open forever.
    let result = tokio::select! {
        r = axum::serve(listener, app).into_future() => r,
        () = shutdown => Ok(()),
    };
    let _ = std::fs::remove_file(socket);
    result
}
