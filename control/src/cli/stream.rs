//! `weft capture` and `weft trace`: live streams about one port, and the stream they share.

use std::io::Write;

use anyhow::{bail, Context, Result};
use http_body_util::BodyExt;
use hyper::Method;

use super::args::{CaptureArgs, TraceArgs};
use crate::api::client::{check, seg, Client};
use crate::dataplane::pcap;

/// A live stream from the daemon about one port (`capture`, `trace`): chunks of the
/// response body until the daemon ends it (count reached), or SIGINT or SIGTERM arrives.
struct PortStream {
    body: hyper::body::Incoming,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl PortStream {
    /// `GET /v1/ports/PORT/KIND[?count=N]`; a refusal becomes the daemon's error message.
    async fn open(client: &Client, port: &str, kind: &str, count: Option<u64>) -> Result<Self> {
        let path = format!("/v1/ports/{}/{kind}", seg(port));
        Self::open_path(client, path, kind, count).await
    }

    /// `GET PATH[?count=N]` (more query parameters may already be in `path`).
    async fn open_path(
        client: &Client,
        mut path: String,
        kind: &str,
        count: Option<u64>,
    ) -> Result<Self> {
        if let Some(c) = count {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!("count={c}"));
        }
        let resp = client.send(Method::GET, &path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await?.to_bytes();
            check(status, &bytes)?;
            bail!("the weft daemon refused the {kind} ({status})");
        }
        use tokio::signal::unix::{signal, SignalKind};
        Ok(PortStream {
            body: resp.into_body(),
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next chunk, or None at the end.
    async fn next(&mut self) -> Result<Option<bytes::Bytes>> {
        loop {
            let frame = tokio::select! {
                f = self.body.frame() => f,
                _ = self.term.recv() => None,
                _ = self.int.recv() => None,
            };
            let Some(frame) = frame else {
                return Ok(None);
            };
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
    }
}

/// Streams a trace: the daemon sends a block of lines per frame; printed as it arrives,
/// until the count is reached or Ctrl-C.
pub async fn trace(client: &Client, a: TraceArgs) -> Result<()> {
    if a.inject.is_some() || a.hex.is_some() {
        let body = crate::types::InjectBody {
            spec: a.inject,
            hex: a.hex,
        };
        let path = format!("/v1/ports/{}/trace/inject", seg(&a.port));
        let r: crate::types::InjectResult = client.call(Method::POST, &path, Some(&body)).await?;
        print!("{}", r.trace);
        return Ok(());
    }
    let mut stream = PortStream::open(client, &a.port, "trace", a.count).await?;
    eprintln!("tracing frames entering {}", a.port);
    let mut stdout = std::io::stdout();
    while let Some(data) = stream.next().await? {
        stdout.write_all(&data)?;
        stdout.flush()?;
    }
    Ok(())
}

/// Streams a capture: whole pcap records only, so the output stays a valid pcap file when
/// interrupted.
pub async fn capture(client: &Client, a: CaptureArgs) -> Result<()> {
    let mut out: Option<Box<dyn Write + Send>> = match a.write.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(file) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(file).with_context(|| format!("cannot create {file}"))?,
        ))),
    };
    if let Some(net) = &a.network {
        let path = format!("/v1/networks/{}/capture", seg(net));
        let stream = PortStream::open_path(client, path, "capture", a.count).await?;
        eprintln!("capturing every port of network {net}");
        return capture_pcapng(stream, out).await;
    }
    let port = a.port.as_deref().unwrap_or_default();
    let path = format!("/v1/ports/{}/capture?outer={}", seg(port), a.outer);
    let mut stream = PortStream::open_path(client, path, "capture", a.count).await?;
    let what = if a.outer { " (VXLAN datagrams)" } else { "" };
    eprintln!("capturing on {port}{what}");
    let mut pending: Vec<u8> = Vec::new();
    let mut header_done = false;
    let mut frames = 0u64;
    while let Some(data) = stream.next().await? {
        pending.extend_from_slice(&data);
        if !header_done {
            if pending.len() < pcap::GLOBAL_HEADER_LEN {
                continue;
            }
            if let Some(w) = out.as_mut() {
                w.write_all(&pending[..pcap::GLOBAL_HEADER_LEN])?;
                w.flush()?;
            }
            pending.drain(..pcap::GLOBAL_HEADER_LEN);
            header_done = true;
        }
        let mut used = 0;
        while let Some(h) = pcap::parse_record_header(&pending[used..]) {
            let end = used + pcap::RECORD_HEADER_LEN + h.caplen as usize;
            if pending.len() < end {
                break;
            }
            let rec = &pending[used..end];
            match out.as_mut() {
                Some(w) => w.write_all(rec)?,
                None => println!("{}", summarize(&h, &rec[pcap::RECORD_HEADER_LEN..])),
            }
            frames += 1;
            used = end;
        }
        pending.drain(..used);
        if let Some(w) = out.as_mut() {
            w.flush()?;
        }
    }
    if let Some(w) = out.as_mut() {
        w.flush()?;
    }
    eprintln!("{frames} frames captured");
    Ok(())
}

/// Streams a pcapng capture of several ports: whole blocks only; without a file, a line per
/// frame with its port and direction.
async fn capture_pcapng(
    mut stream: PortStream,
    mut out: Option<Box<dyn Write + Send>>,
) -> Result<()> {
    use crate::dataplane::pcapng;
    let mut pending: Vec<u8> = Vec::new();
    let mut interfaces: Vec<String> = Vec::new();
    let mut frames = 0u64;
    while let Some(data) = stream.next().await? {
        pending.extend_from_slice(&data);
        let mut used = 0;
        while let Some((block, len)) = pcapng::next_block(&pending[used..]) {
            if let Some(w) = out.as_mut() {
                w.write_all(&pending[used..used + len])?;
            }
            if let Some(name) = pcapng::interface_name(&block) {
                interfaces.push(name);
            } else if let Some((i, ts, orig, frame, outbound)) = pcapng::parse_packet(&block) {
                frames += 1;
                if out.is_none() {
                    let port = interfaces.get(i as usize).map_or("?", String::as_str);
                    let dir = if outbound { "out" } else { "in " };
                    println!(
                        "{}.{:06} {port} {dir} {}",
                        ts / 1_000_000,
                        ts % 1_000_000,
                        crate::dataplane::trace_text::describe_frame(frame, orig as usize)
                    );
                }
            }
            used += len;
        }
        pending.drain(..used);
        if let Some(w) = out.as_mut() {
            w.flush()?;
        }
    }
    eprintln!("{frames} frames captured");
    Ok(())
}

/// One line per frame, tcpdump-like: time, MACs, ethertype, length.
fn summarize(h: &pcap::RecordHeader, frame: &[u8]) -> String {
    format!(
        "{}.{:06} {}",
        h.ts_sec,
        h.ts_usec,
        crate::dataplane::trace_text::describe_frame(frame, h.origlen as usize)
    )
}
