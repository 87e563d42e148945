//! Docker's remote network driver and IPAM driver (`weft daemon --docker`): one socket in
//! Docker's plugin directory serves both; Docker's calls become the daemon's operations.

pub mod driver;
pub mod names;
pub mod options;
pub mod protocol;

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::daemon::Daemon;
use driver::Driver;

/// Where Docker finds the plugin (its name is the file's stem: `weft`).
pub const DEFAULT_PLUGIN_SOCKET: &str = "/run/docker/plugins/weft.sock";
/// Docker's own API, asked for network and container names.
pub const DEFAULT_DOCKER_HOST: &str = "/var/run/docker.sock";

/// `--docker`: where to serve and whom to ask.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub plugin_socket: PathBuf,
    pub docker_host: PathBuf,
}

/// Why the plugin socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create Docker's plugin directory {dir}: {source}; create it or pass another --docker-socket")]
    Dir { dir: String, source: std::io::Error },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
}

/// Serves Docker's calls on `listener` (from [`bind`]) until `shutdown`; the socket is
/// removed on exit.
pub async fn serve(
    daemon: Arc<Daemon>,
    (listener, config): (tokio::net::UnixListener, DockerConfig),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let driver = Arc::new(Driver::new(
        daemon,
        names::DockerApi::new(&config.docker_host),
        tokio::runtime::Handle::current(),
    ));
    let app = Router::new().fallback(call).with_state(driver);
    let access = crate::api::peer::Access {
        owner: weft_sys::effective_uid(),
        group: None,
    };
    let listener = crate::api::peer::CheckedListener::new(listener, access);
    log::info!(
        "Docker network and IPAM driver on {} (Docker's API at {})",
        config.plugin_socket.display(),
        config.docker_host.display()
    );
    tokio::select! {
        r = axum::serve(listener, app).into_future() => {
            if let Err(e) = r {
                log::error!("Docker plugin socket: {e}");
            }
        }
        () = shutdown => {}
    }
    let _ = std::fs::remove_file(&config.plugin_socket);
}

/// Binds the plugin socket, root only (Docker runs as root).
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    let _ = std::fs::remove_file(path);
    let bind_err = |source| ServeError::Bind {
        path: path.display().to_string(),
        source,
    };
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

/// One call: `/Plugin.Activate`, or a driver method by its path. The network driver's
/// errors are `{"Err": ...}`, IPAM's `{"Error": ...}`, with status 200: libnetwork reads
/// the field then and shows Docker's user the message as it is.
async fn call(State(driver): State<Arc<Driver>>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path == "/Plugin.Activate" {
        return reply(StatusCode::OK, protocol::IMPLEMENTS.to_string());
    }
    let ipam = path.starts_with("/IpamDriver.");
    let d = Arc::clone(&driver);
    let p = path.clone();
    let answer = tokio::task::spawn_blocking(move || d.call(&p, &body))
        .await
        .unwrap_or_else(|e| Err(options::Refusal(format!("internal error: {e}"))));
    match answer {
        Ok(v) => reply(StatusCode::OK, v.to_string()),
        Err(e) => {
            log::warn!("Docker {path}: {e}");
            let key = if ipam { "Error" } else { "Err" };
            reply(StatusCode::OK, serde_json::json!({ key: e.0 }).to_string())
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, protocol::MEDIA_TYPE)], body).into_response()
}
