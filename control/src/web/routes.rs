//! The web view's routes, all GET: the embedded page, the daemon's tables as JSON, the
//! counters as server-sent events, a port's trace and capture.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::streams::{bounded, capture_file_name, permit, port_events, Refused};
use super::{WebState, MAX_STREAMS, MAX_WATCHERS};
use crate::api::server::{blocking, stream, ChannelBody};
use crate::daemon::DaemonError;
use crate::dataplane::pcap;
use crate::types::{ClusterInfo, NetworkDetail, PeerRow, PortRow};

type Shared = State<WebState>;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const ICON: &str = include_str!("assets/icon.svg");

/// Frames a capture download holds by default, and at most.
const CAPTURE_COUNT: (u64, u64) = (100, 10_000);
/// Seconds a capture download runs by default, and at most.
const CAPTURE_SECONDS: (u64, u64) = (10, 300);
/// Seconds a trace streams by default, and at most.
const TRACE_SECONDS: (u64, u64) = (300, 3600);

pub(super) fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route("/app.js", get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
        .route("/style.css", get(|| asset("text/css; charset=utf-8", STYLE)))
        .route("/icon.svg", get(|| asset("image/svg+xml", ICON)))
        .route("/api/topology", get(topology))
        .route("/api/ports", get(ports))
        .route("/api/fdb", get(fdb))
        .route("/api/arp", get(arp))
        .route("/api/nat", get(nat))
        .route("/api/stats", get(stats))
        .route("/api/events", get(events))
        .route("/api/ports/{port}/trace", get(trace))
        .route("/api/ports/{port}/capture", get(capture))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such page in weft's web view (it is read-only: change things with the weft command)\n",
            )
        })
        .layer(axum::middleware::from_fn(super::guard::guard))
        .with_state(state)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn json<T: Serialize>(r: Result<T, DaemonError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Everything the topology is drawn from.
#[derive(Serialize)]
struct Topology {
    version: &'static str,
    /// This node in the gossip cluster, if it is in one.
    node: Option<ClusterInfo>,
    networks: Vec<NetworkDetail>,
    /// Static peers and the cluster's other nodes.
    peers: Vec<PeerRow>,
    ports: Vec<PortRow>,
}

async fn topology(State(s): Shared) -> Response {
    let d = s.daemon;
    json(
        blocking(move || {
            let networks = d
                .list_networks()
                .into_iter()
                // A network removed in between is left out.
                .filter_map(|n| d.inspect_network(&n.name).ok())
                .collect();
            Ok(Topology {
                version: env!("CARGO_PKG_VERSION"),
                node: d.cluster_info().ok(),
                networks,
                peers: d.peers(),
                ports: d.ports(),
            })
        })
        .await,
    )
}

async fn ports(State(s): Shared) -> Response {
    let d = s.daemon;
    json(blocking(move || Ok(d.ports())).await)
}

async fn fdb(State(s): Shared) -> Response {
    let d = s.daemon;
    json(blocking(move || d.fdb(None)).await)
}

async fn arp(State(s): Shared) -> Response {
    let d = s.daemon;
    json(blocking(move || d.arp(None)).await)
}

async fn nat(State(s): Shared) -> Response {
    let d = s.daemon;
    json(blocking(move || d.nat_flows(None)).await)
}

async fn stats(State(s): Shared) -> Response {
    let d = s.daemon;
    json(blocking(move || d.stats(None)).await)
}

async fn events(State(s): Shared) -> Result<Response, Refused> {
    let p = permit(&s.watchers, "pages with live counters", MAX_WATCHERS)?;
    Ok(stream(
        "text/event-stream",
        ChannelBody {
            header: None,
            rx: port_events(s.daemon, p),
            render: Box::new(|b| b),
            remaining: None,
        },
    ))
}

#[derive(Deserialize)]
struct StreamQuery {
    count: Option<u64>,
    seconds: Option<u64>,
}

/// `value` (or `default`) if within 1..=`max`, else a refusal naming the range.
fn in_range(name: &str, value: Option<u64>, (default, max): (u64, u64)) -> Result<u64, Refused> {
    let v = value.unwrap_or(default);
    if (1..=max).contains(&v) {
        Ok(v)
    } else {
        Err(Refused {
            status: StatusCode::BAD_REQUEST,
            message: format!("{name} must be 1..{max}, not {v}"),
        })
    }
}

async fn trace(
    State(s): Shared,
    Path(port): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, Refused> {
    let seconds = in_range("seconds", q.seconds, TRACE_SECONDS)?;
    if q.count == Some(0) {
        return Err(Refused {
            status: StatusCode::BAD_REQUEST,
            message: "count must be at least 1 (or left out: until stopped)".into(),
        });
    }
    let p = permit(&s.streams, "live traces and captures", MAX_STREAMS)?;
    let d = s.daemon;
    let (rx, names) = blocking(move || d.trace(&port, q.count)).await?;
    Ok(stream(
        "text/plain; charset=utf-8",
        ChannelBody {
            header: None,
            rx: bounded(rx, Duration::from_secs(seconds), p),
            render: Box::new(move |(_, t): (u32, _)| {
                Bytes::from(crate::dataplane::trace_text::render(&t, &names))
            }),
            remaining: None,
        },
    ))
}

async fn capture(
    State(s): Shared,
    Path(port): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, Refused> {
    let count = in_range("count", q.count, CAPTURE_COUNT)?;
    let seconds = in_range("seconds", q.seconds, CAPTURE_SECONDS)?;
    let p = permit(&s.streams, "live traces and captures", MAX_STREAMS)?;
    let name = capture_file_name(
        &port,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let d = s.daemon;
    let rx = blocking(move || d.capture(&port, Some(count), false)).await?;
    let mut r = stream(
        "application/vnd.tcpdump.pcap",
        ChannelBody {
            header: Some(pcap::global_header()),
            rx: bounded(rx, Duration::from_secs(seconds), p),
            render: Box::new(|(_, r): (u32, crate::dataplane::CaptureRecord)| {
                pcap::record(r.at, &r.frame)
            }),
            remaining: None,
        },
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
