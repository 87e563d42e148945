//! The daemon's API as the plugin uses it: each call bounded in time, its failures turned
//! into CNI error codes with the daemon's own message.

use std::path::Path;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{codes, CniError};
use crate::api::client::{seg, Client};
use crate::types::{ApiError, Connect, CreateNetwork, EndpointInfo, NetworkDetail, NetworkSummary};

/// How long one API call may take before the plugin gives up ("try again later").
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed call: the daemon could not be reached, or it answered an error.
#[derive(Debug)]
pub enum CallError {
    Unreachable(String),
    Status(StatusCode, String),
}

impl CallError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CallError::Status(StatusCode::NOT_FOUND, _))
    }

    /// The CNI error: unreachable is "try again later" (11); 400 an invalid configuration
    /// (7); 404 an unknown container or network (3); anything else the daemon's refusal
    /// (100).
    pub fn into_cni(self) -> CniError {
        match self {
            CallError::Unreachable(m) => CniError::new(codes::TRY_AGAIN, m),
            CallError::Status(s, m) => {
                let code = match s {
                    StatusCode::BAD_REQUEST => codes::INVALID_CONFIG,
                    StatusCode::NOT_FOUND => codes::UNKNOWN_CONTAINER,
                    _ => codes::DAEMON_REFUSED,
                };
                CniError::new(code, m).with_details(format!("the weft daemon answered {s}"))
            }
        }
    }
}

impl From<CallError> for CniError {
    fn from(e: CallError) -> CniError {
        e.into_cni()
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// The daemon behind one socket.
pub struct Remote {
    client: Client,
}

impl Remote {
    pub fn new(socket: &Path) -> Remote {
        Remote {
            client: Client::new(socket),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> CallResult<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| CallError::Unreachable(format!("cannot encode a request: {e}")))?;
        let exchange = async {
            let resp = self.client.send(method, path, body).await.map_err(|e| {
                CallError::Unreachable(format!(
                    "{e:#} (the CNI configuration's \"socket\" names the daemon's socket)"
                ))
            })?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.map_err(|e| {
                CallError::Unreachable(format!("the weft daemon's answer broke off: {e}"))
            })?;
            Ok::<_, CallError>((status, bytes.to_bytes()))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                CallError::Unreachable(format!(
                    "the weft daemon did not answer within {} s; see its log",
                    CALL_TIMEOUT.as_secs()
                ))
            })??;
        if !status.is_success() {
            let msg = match serde_json::from_slice::<ApiError>(&bytes) {
                Ok(e) => e.message,
                Err(_) => format!(
                    "the weft daemon answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            };
            return Err(CallError::Status(status, msg));
        }
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| {
            CallError::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the weft daemon sent an answer this plugin cannot read ({e}); are the plugin and the daemon the same version?"),
            )
        })
    }

    /// `GET /v1/networks/NAME`: `None` when there is no such network.
    pub async fn network(&self, name: &str) -> CallResult<Option<NetworkDetail>> {
        let path = format!("/v1/networks/{}", seg(name));
        match self.call(Method::GET, &path, None::<&()>).await {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/networks`.
    pub async fn create_network(&self, req: &CreateNetwork) -> CallResult<NetworkSummary> {
        self.call(Method::POST, "/v1/networks", Some(req)).await
    }

    /// Every endpoint name in use, on any network (endpoint names are the daemon's keys).
    pub async fn endpoint_names(&self) -> CallResult<Vec<String>> {
        let nets: Vec<NetworkSummary> = self.call(Method::GET, "/v1/networks", None::<&()>).await?;
        let mut names = Vec::new();
        for n in nets {
            if let Some(d) = self.network(&n.name).await? {
                names.extend(d.endpoints.into_iter().map(|e| e.name));
            }
        }
        Ok(names)
    }

    /// `POST /v1/networks/NAME/endpoints`.
    pub async fn connect(&self, network: &str, req: &Connect) -> CallResult<EndpointInfo> {
        let path = format!("/v1/networks/{}/endpoints", seg(network));
        self.call(Method::POST, &path, Some(req)).await
    }

    /// `DELETE /v1/networks/NAME/endpoints/EP`; an endpoint already gone is no error.
    pub async fn disconnect(&self, network: &str, endpoint: &str) -> CallResult<()> {
        let path = format!("/v1/networks/{}/endpoints/{}", seg(network), seg(endpoint));
        match self
            .call::<serde_json::Value>(Method::DELETE, &path, None::<&()>)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
