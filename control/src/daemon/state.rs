//! What the daemon persists in its state directory: networks, endpoints and static FDB
//! entries, as one JSON document replaced atomically (write a temporary file, fsync, rename,
//! fsync the directory), so a crash leaves either the old or the new state, never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::types::PortKind;

pub const STATE_FILE: &str = "state.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({source}); move it away to start empty")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "state file {path} has format version {found}, this weft understands {FORMAT_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("state directory {path} is in use by another weft daemon; stop it, or give this one its own --state-dir")]
    Locked { path: PathBuf },
    #[error("cannot lock state directory {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkRecord {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub aging_seconds: u64,
    /// Inter-container communication (`--icc`); false: endpoints reach the gateway only.
    #[serde(default = "default_true")]
    pub icc: bool,
    /// Outbound NAT through host sockets (`--nat proxy`, the default); false: `--nat none`.
    #[serde(default = "default_true")]
    pub nat: bool,
    /// `--internal`: no outbound NAT and no published ports.
    #[serde(default)]
    pub internal: bool,
    /// The VXLAN network identifier of an overlay network (`--driver overlay`); None for a
    /// local (bridge) network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// When an overlay network was created (ms since the Unix epoch): tells incarnations of
    /// one name apart in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointRecord {
    pub name: String,
    pub network: String,
    /// As the user gave it: a namespace name or path (PIDs are stored as /proc/PID/ns/net).
    pub netns: String,
    pub ifname: String,
    pub kind: PortKind,
    pub ip: Ipv4Addr,
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifname: Option<String>,
    /// Identity (device, inode) of the namespace when connected: a restored endpoint is
    /// re-attached only to the same namespace (a PID may have been reused since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<(u64, u64)>,
    /// Extra DNS names of the endpoint on its network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Published ports (`-p`, `-P`, `weft publish`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<crate::gateway::publish::PortMapping>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StaticFdbRecord {
    pub network: String,
    pub mac: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PersistedState {
    pub version: u32,
    pub networks: Vec<NetworkRecord>,
    pub endpoints: Vec<EndpointRecord>,
    pub static_fdb: Vec<StaticFdbRecord>,
    /// Statically configured VXLAN peers (`weft peer add`).
    #[serde(default)]
    pub peers: Vec<PeerRecord>,
    /// Overlay networks removed here (name -> `created_ms` of the removed incarnation): the
    /// cluster removes them everywhere.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub removed_networks: std::collections::BTreeMap<String, u64>,
}

/// A static VXLAN peer: a remote VTEP taking part in one overlay network's VNI.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PeerRecord {
    pub addr: Ipv4Addr,
    pub vni: u32,
    /// The peer's VXLAN UDP port.
    pub port: u16,
}

impl PeerRecord {
    /// The name of its tunnel port (in `weft ports`, `weft fdb`, `weft capture`).
    pub fn port_name(&self) -> String {
        crate::cluster::sync::tunnel_name(self.vni, self.addr)
    }
}

/// The state directory, locked for one daemon at a time.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    /// The open lock file; the `flock` on it lasts as long as the daemon.
    _lock: std::sync::Arc<File>,
}

impl StateDir {
    /// Creates the directory (mode 0700) if needed and locks it, so that two daemons never
    /// restore and rewrite the same state.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        let lock_path = dir.join("lock");
        let lock_err = |source| StateError::Lock {
            path: dir.to_owned(),
            source,
        };
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(lock_err)?;
        if !weft_sys::try_lock_exclusive(&lock).map_err(lock_err)? {
            return Err(StateError::Locked {
                path: dir.to_owned(),
            });
        }
        Ok(StateDir {
            dir: dir.to_owned(),
            _lock: std::sync::Arc::new(lock),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Loads the state; a missing file is an empty state.
    pub fn load(&self) -> Result<PersistedState, StateError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PersistedState {
                    version: FORMAT_VERSION,
                    ..Default::default()
                })
            }
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let state: PersistedState =
            serde_json::from_str(&text).map_err(|source| StateError::Parse {
                path: path.clone(),
                source,
            })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Version {
                path,
                found: state.version,
            });
        }
        Ok(state)
    }

    /// Replaces the state file atomically.
    pub fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        let path = self.path();
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let mut doc = state.clone();
        doc.version = FORMAT_VERSION;
        let text = serde_json::to_vec_pretty(&doc).expect("state serializes");
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = std::env::temp_dir().join(format!("weft-state-test-{}", std::process::id()));
        let sd = StateDir::open(&dir).unwrap();
        assert_eq!(sd.load().unwrap().networks.len(), 0);
        let state = PersistedState {
            version: FORMAT_VERSION,
            networks: vec![NetworkRecord {
                name: "n".into(),
                subnet: "10.0.0.0/24".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 0, 0, 1),
                mtu: 1500,
                aging_seconds: 300,
                icc: true,
                nat: true,
                internal: false,
                vni: None,
                created_ms: None,
            }],
            endpoints: vec![],
            static_fdb: vec![],
            peers: vec![],
            removed_networks: Default::default(),
        };
        sd.save(&state).unwrap();
        assert_eq!(sd.load().unwrap(), state);
        let second = StateDir::open(&dir).unwrap_err().to_string();
        assert!(second.contains("in use by another weft daemon"), "{second}");
        fs::write(sd.path(), "{not json").unwrap();
        let err = sd.load().unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
