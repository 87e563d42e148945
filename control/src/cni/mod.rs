//! The CNI plugin (`weft` run with `CNI_COMMAND` set; CNI 0.3.1-1.1.0) and `weft cni install`: a thin client of the daemon's API.
//!
//! The plugin reads the network configuration on stdin and the `CNI_*` environment,
//! asks the daemon (the configuration's `"socket"`, else `WEFT_SOCKET`, else the CLI's
//! default) and prints the result or an error result on stdout, exiting 0 or 1.
//!
//! Error codes: the specification's (1 incompatible version, 3 unknown container or
//! network, 4 invalid environment, 5 I/O, 6 undecodable configuration, 7 invalid
//! configuration, 11 try again later: the daemon is unreachable or slow, 50 STATUS: not
//! available) and two of weft's: 100, the daemon refused the request (its message is the
//! error's `msg`), and 101, CHECK found the endpoint unlike `prevResult`.
//!
//! DEL with the daemon down fails with 11 rather than claiming success: the endpoint, its
//! address and its host ports live in the daemon, and a runtime that thinks them gone
//! would never ask again. Everything already gone (network, endpoint, namespace) is success.

use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod commands;
pub mod config;
pub mod install;
mod remote;
pub mod result;

use config::{Env, NetConf, Version};
use remote::Remote;

/// The error codes the plugin reports.
pub mod codes {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const NOT_AVAILABLE_DISRUPTED: u32 = 51;
    /// The daemon refused the request; `msg` is its message.
    pub const DAEMON_REFUSED: u32 = 100;
    /// CHECK: the endpoint is not what `prevResult` says.
    pub const CHECK_FAILED: u32 = 101;
}

/// A CNI error: its code, the message (the problem and the fix) and optional details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }
}

/// The most the plugin reads from stdin: a configuration is a few kilobytes.
const MAX_STDIN: u64 = 16 << 20;

/// Runs the plugin for this process's environment and stdin; returns the exit code.
pub fn run_plugin(default_socket: &Path) -> i32 {
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match read {
        Ok(_) => plugin(default_socket, &stdin),
        Err(e) => Err((
            Version::LATEST,
            CniError::new(
                codes::IO,
                format!("cannot read the configuration on stdin: {e}"),
            ),
        )),
    }));
    let outcome = outcome.unwrap_or_else(|_| {
        Err((
            Version::LATEST,
            CniError::new(
                codes::IO,
                "the weft plugin failed unexpectedly; please report it",
            ),
        ))
    });
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(None) => 0,
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
            0
        }
        Err((version, e)) => {
            let _ = writeln!(out, "{}", result::error_result(version, &e));
            1
        }
    }
}

type Outcome = Result<Option<Value>, (Version, CniError)>;

/// Decodes the invocation and runs its command.
fn plugin(default_socket: &Path, stdin: &[u8]) -> Outcome {
    let latest = |e| (Version::LATEST, e);
    let env = Env::from_process().map_err(latest)?;
    let command = env.command.clone();
    if command == "VERSION" {
        return Ok(Some(result::version_result(stdin)));
    }
    if !matches!(command.as_str(), "ADD" | "DEL" | "CHECK" | "STATUS" | "GC") {
        return Err(latest(CniError::new(
            codes::INVALID_ENV,
            format!("CNI_COMMAND {command:?} is not a CNI command: ADD, DEL, CHECK, STATUS, GC or VERSION"),
        )));
    }
    let (conf, version) = NetConf::parse(stdin).map_err(latest)?;
    let socket = conf
        .socket
        .clone()
        .or_else(|| std::env::var_os("WEFT_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| default_socket.to_owned());
    let remote = Remote::new(&socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            (
                version,
                CniError::new(codes::IO, format!("cannot start the async runtime: {e}")),
            )
        })?;
    rt.block_on(async {
        match command.as_str() {
            "ADD" => commands::add(&remote, &conf, version, &env).await.map(Some),
            "DEL" => commands::del(&remote, &conf, &env).await.map(|()| None),
            "CHECK" => commands::check(&remote, &conf, version, &env)
                .await
                .map(|()| None),
            "STATUS" => commands::status(&remote, &conf, version)
                .await
                .map(|()| None),
            _ => commands::gc(&remote, &conf, version).await.map(|()| None),
        }
    })
    .map_err(|e| (version, e))
}
