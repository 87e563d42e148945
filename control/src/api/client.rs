//! The CLI's side of the API: HTTP/1.1 requests over the daemon's Unix socket (hyper).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::ApiError;

/// A client bound to one daemon socket.
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_owned(),
        }
    }

    /// Sends one request and returns the raw response (body not yet read).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| {
            anyhow!(
                "cannot reach the weft daemon at {} ({e}); start it with `weft daemon` (as root), or point --socket / WEFT_SOCKET at a running one",
                self.socket.display()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the weft daemon failed")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let has_body = body.is_some();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://weft{path}"))
            .header("host", "weft");
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        sender
            .send_request(req)
            .await
            .context("the weft daemon closed the connection")
    }

    /// Sends a JSON request and decodes a JSON response; API errors become their message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        check(status, &bytes)?;
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .context("the weft daemon sent a response this CLI cannot read")
    }
}

impl Client {
    /// `PUT /v1/ports/{port}/impair`: returns the impairment as applied (with its seed).
    pub async fn impair(
        &self,
        port: &str,
        body: &crate::types::ImpairBody,
    ) -> Result<crate::types::ImpairBody> {
        let path = format!("/v1/ports/{}/impair", seg(port));
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// `DELETE /v1/ports/{port}/impair`.
    pub async fn clear_impair(&self, port: &str) -> Result<()> {
        let path = format!("/v1/ports/{}/impair", seg(port));
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// `PUT /v1/ports/{port}/link`.
    pub async fn set_link(&self, port: &str, up: bool) -> Result<()> {
        let path = format!("/v1/ports/{}/link", seg(port));
        let body = crate::types::LinkBody { up };
        self.call(Method::PUT, &path, Some(&body)).await
    }
}

/// Turns a non-2xx response into an error carrying the daemon's message.
pub fn check(status: StatusCode, body: &[u8]) -> Result<()> {
    if status.is_success() {
        return Ok(());
    }
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => bail!("{}", e.message),
        Err(_) => bail!(
            "the weft daemon answered {status}: {}",
            String::from_utf8_lossy(body)
        ),
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
