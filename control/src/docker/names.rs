//! What weft asks Docker's own API (on its socket): a network's name, which Docker's
//! `CreateNetwork` does not carry, and the name of the container behind an endpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Why Docker's API did not answer a lookup.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("cannot reach Docker's API at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("Docker's API: {0}")]
    Http(String),
    #[error("Docker's API did not answer within {0:?}")]
    Timeout(Duration),
}

/// A client of Docker's API on a Unix socket.
#[derive(Debug, Clone)]
pub struct DockerApi {
    socket: PathBuf,
}

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl DockerApi {
    pub fn new(socket: &Path) -> DockerApi {
        DockerApi {
            socket: socket.to_owned(),
        }
    }

    /// `GET path` → the JSON body (None for 404).
    async fn get(&self, path: &str) -> Result<Option<Value>, LookupError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| LookupError::Connect {
                path: self.socket.display().to_string(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| LookupError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::get(format!("http://docker{path}"))
            .header("host", "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| LookupError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| LookupError::Http(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| LookupError::Http(e.to_string()))?
            .to_bytes();
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(LookupError::Http(format!("{path}: {status}")));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| LookupError::Http(format!("{path}: {e}")))
    }

    async fn get_timed(&self, path: &str) -> Result<Option<Value>, LookupError> {
        tokio::time::timeout(LOOKUP_TIMEOUT, self.get(path))
            .await
            .map_err(|_| LookupError::Timeout(LOOKUP_TIMEOUT))?
    }

    /// The name of Docker network `id`, once Docker has stored it.
    pub async fn network_name(&self, id: &str) -> Result<Option<String>, LookupError> {
        let v = self.get_timed(&format!("/networks/{id}")).await?;
        Ok(v.and_then(|v| v.get("Name")?.as_str().map(str::to_string)))
    }

    /// The name of the container whose endpoint on network `network` is `endpoint`, once
    /// Docker lists it there.
    pub async fn container_name(
        &self,
        network: &str,
        endpoint: &str,
    ) -> Result<Option<String>, LookupError> {
        let Some(v) = self.get_timed(&format!("/networks/{network}")).await? else {
            return Ok(None);
        };
        let containers = v.get("Containers").and_then(Value::as_object);
        Ok(containers.and_then(|m| {
            m.values()
                .find(|c| c.get("EndpointID").and_then(Value::as_str) == Some(endpoint))
                .and_then(|c| c.get("Name")?.as_str())
                .map(|n| n.trim_start_matches('/').to_string())
        }))
    }
}
