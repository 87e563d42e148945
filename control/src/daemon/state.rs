//! What the daemon persists in its state directory: networks, endpoints and static FDB
//! entries, as one JSON document replaced atomically (write a temporary file, fsync, rename,
//! fsync the directory), so a crash leaves either the old or the new state, never a torn one.
//!
//! The records are the state file's own types (not the API's), so that the API can change
//! without changing what is on disk. A document that is not valid JSON, or whose networks,
//! peers or static entries do not read, fails the whole load; an endpoint record that does
//! not read (a bad MAC, a kind this binary does not know, a missing field) is reported,
//! skipped and kept verbatim (see [`UnreadableEndpoint`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use weft_switch::MacAddr;

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
    #[error("state file {path}: {what}; correct or remove that record (weft wrote it valid: an edit or a corruption changed it), or move the file away to start empty")]
    Invalid { path: PathBuf, what: String },
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
    /// The Docker network ID of a network Docker made through weft's driver: only
    /// `docker network rm` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    /// `--published-source gateway`: connections to published ports reach the containers
    /// from the gateway's address instead of the client's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub published_from_gateway: bool,
    /// The cluster's overlay network, taken on by a Docker network of the same name:
    /// `docker network rm` lets it go again rather than removing it from the cluster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub docker_adopted: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_true() -> bool {
    true
}

/// How an endpoint is attached, as the state file spells it (`"tap"`, `"veth"`: the
/// spelling of the API's `PortKind`, which earlier versions stored here).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A TAP device inside the namespace.
    Tap,
    /// A veth pair; `host_ifname` is the host end.
    Veth,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointRecord {
    pub name: String,
    pub network: String,
    /// As the user gave it: a namespace name or path (PIDs are stored as /proc/PID/ns/net).
    pub netns: String,
    pub ifname: String,
    pub kind: EndpointKind,
    pub ip: Ipv4Addr,
    /// A unicast MAC, stored as text like `02:42:0a:01:00:02`.
    #[serde(with = "mac_text")]
    pub mac: MacAddr,
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
    pub published: Vec<weft_gateway::publish::PortMapping>,
    /// Port security (on unless the endpoint was connected with `--port-security=false`;
    /// written only when off, so older state files read the same).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub port_security: bool,
    /// The container engine's binding (`docker:…`, `cni:…`) of an endpoint an engine made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A TAP weft made in its own namespace and handed to Docker to move into the
    /// container (`Join`): found again by MAC in the container's namespace on restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handed: bool,
    /// `weft impair` on the endpoint's port, applied again on restart (with its seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<crate::types::ImpairBody>,
    /// `weft link PORT down`, kept down across a restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub link_down: bool,
}

/// An interface a connect is about to create, recorded before it is created: if the daemon
/// dies before the endpoint is saved, the next start finds the interface through this
/// record and removes it (see `daemon/leftovers.rs`), so a retried connect does not fail on
/// an `eth0` nobody owns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingEndpoint {
    /// The namespace as the user gave it (name or path).
    pub netns: String,
    /// Identity (device, inode) of the namespace: nothing is removed from another one.
    pub netns_id: (u64, u64),
    pub ifname: String,
    pub kind: EndpointKind,
    /// The host end of a veth pair (its name is weft's own, `wv` and ten hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifname: Option<String>,
}

/// A static FDB entry (`weft fdb add`): the MAC is reached through the endpoint's or
/// tunnel's port named `endpoint`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StaticFdbRecord {
    pub network: String,
    /// A unicast MAC, stored as text like `02:00:00:00:00:01`.
    #[serde(with = "mac_text")]
    pub mac: MacAddr,
    pub endpoint: String,
}

/// An endpoint's MAC as JSON text: written with `MacAddr`'s `Display` (lower-case,
/// colon-separated, as earlier versions stored the string), read with its `FromStr`; a
/// multicast or all-zero address does not read.
mod mac_text {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use weft_switch::MacAddr;

    pub fn serialize<S: Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(mac)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        let mac: MacAddr = text
            .parse()
            .map_err(|e| D::Error::custom(format!("field `mac`: {e}")))?;
        if !mac.is_unicast() || mac.is_zero() {
            return Err(D::Error::custom(format!(
                "field `mac`: {mac} is not a unicast address"
            )));
        }
        Ok(mac)
    }
}

/// What the daemon persists, as it uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersistedState {
    pub version: u32,
    pub networks: Vec<NetworkRecord>,
    pub endpoints: Vec<EndpointRecord>,
    /// Endpoint records of the file that did not read; written back as they were.
    pub unreadable_endpoints: Vec<UnreadableEndpoint>,
    pub static_fdb: Vec<StaticFdbRecord>,
    /// Statically configured VXLAN peers (`weft peer add`).
    pub peers: Vec<PeerRecord>,
    /// Overlay networks removed here (name -> `created_ms` of the removed incarnation): the
    /// cluster removes them everywhere.
    pub removed_networks: BTreeMap<String, u64>,
    /// Interfaces of connects under way when the file was written (see [`PendingEndpoint`]).
    pub pending_endpoints: Vec<PendingEndpoint>,
}

/// An endpoint record of the state file that this binary cannot read (a bad MAC, a kind it
/// does not know, a missing field...). The daemon does not attach it, but it does not
/// forget it either: the record is kept as the file had it and written back on every save,
/// so that a fixed (or newer) weft reading the same state directory still finds the
/// endpoint. Its name stays taken meanwhile. (The JSON is kept as a value: its keys may
/// come back in another order, its content does not change.)
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableEndpoint {
    /// Where the record was among the file's endpoint records (1: the first) when read.
    pub position: usize,
    /// The record as the file had it.
    pub raw: serde_json::Value,
    /// Why it did not read.
    pub reason: String,
}

impl UnreadableEndpoint {
    /// The record's `name`, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.raw.get("name")?.as_str()
    }
}

/// The state file as it is on disk. Endpoint records are `E`: raw JSON values when
/// loading (each is read on its own, see [`StateDir::load`]), [`StoredEndpoint`]s when
/// saving; static entries `S`: raw values when loading (one that does not read is dropped
/// with a warning, as the daemon always did with a static entry it could not apply).
#[derive(Debug, Serialize, Deserialize)]
struct Document<E, S> {
    version: u32,
    networks: Vec<NetworkRecord>,
    endpoints: Vec<E>,
    static_fdb: Vec<S>,
    #[serde(default)]
    peers: Vec<PeerRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    removed_networks: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_endpoints: Vec<PendingEndpoint>,
}

/// An endpoint record as it is written: one the daemon read, or one it keeps verbatim.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum StoredEndpoint<'a> {
    Read(&'a EndpointRecord),
    Unreadable(&'a serde_json::Value),
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

    /// Loads the state; a missing file is an empty state. Endpoint records that do not
    /// read are logged (which record, and why) and come back in
    /// [`PersistedState::unreadable_endpoints`], not as an error.
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
        let state = parse_state(&text).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Version {
                path,
                found: state.version,
            });
        }
        for u in &state.unreadable_endpoints {
            log::error!(
                "state file {}: endpoint record {} ({}) cannot be read and is not attached: {}; \
                 it stays in the state file as it is",
                path.display(),
                u.position,
                u.name()
                    .map_or("without a name".into(), |n| format!("{n:?}")),
                u.reason
            );
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
        let text = render_state(state).map_err(|e| err(std::io::Error::other(e)))?;
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

/// Reads a state document: malformed JSON or networks, peers and static entries that do not
/// read are an error; each endpoint record is read on its own, and one that does not read
/// is kept as an [`UnreadableEndpoint`].
pub fn parse_state(text: &str) -> Result<PersistedState, serde_json::Error> {
    let doc: Document<serde_json::Value, serde_json::Value> = serde_json::from_str(text)?;
    let mut static_fdb = Vec::with_capacity(doc.static_fdb.len());
    for (i, raw) in doc.static_fdb.into_iter().enumerate() {
        match StaticFdbRecord::deserialize(&raw) {
            Ok(record) => static_fdb.push(record),
            Err(e) => log::warn!("static FDB entry {} of the state file dropped: {e}", i + 1),
        }
    }
    let mut endpoints = Vec::with_capacity(doc.endpoints.len());
    let mut unreadable_endpoints = Vec::new();
    for (i, raw) in doc.endpoints.into_iter().enumerate() {
        match EndpointRecord::deserialize(&raw) {
            Ok(record) => endpoints.push(record),
            Err(e) => unreadable_endpoints.push(UnreadableEndpoint {
                position: i + 1,
                reason: e.to_string(),
                raw,
            }),
        }
    }
    Ok(PersistedState {
        version: doc.version,
        networks: doc.networks,
        endpoints,
        unreadable_endpoints,
        static_fdb,
        peers: doc.peers,
        removed_networks: doc.removed_networks,
        pending_endpoints: doc.pending_endpoints,
    })
}

/// The state file's text for `state`.
pub fn render_state(state: &PersistedState) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(&document(state))
}

/// The document `state` is saved as: the endpoints read, then the unreadable ones as
/// they were.
fn document(state: &PersistedState) -> Document<StoredEndpoint<'_>, StaticFdbRecord> {
    let read = state.endpoints.iter().map(StoredEndpoint::Read);
    let kept = state
        .unreadable_endpoints
        .iter()
        .map(|u| StoredEndpoint::Unreadable(&u.raw));
    Document {
        version: FORMAT_VERSION,
        networks: state.networks.clone(),
        endpoints: read.chain(kept).collect(),
        static_fdb: state.static_fdb.clone(),
        peers: state.peers.clone(),
        removed_networks: state.removed_networks.clone(),
        pending_endpoints: state.pending_endpoints.clone(),
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
                docker_id: None,
                published_from_gateway: false,
                docker_adopted: false,
            }],
            endpoints: vec![],
            unreadable_endpoints: vec![],
            static_fdb: vec![],
            peers: vec![],
            removed_networks: Default::default(),
            pending_endpoints: vec![PendingEndpoint {
                netns: "web".into(),
                netns_id: (4, 4026532000),
                ifname: "eth0".into(),
                kind: EndpointKind::Veth,
                host_ifname: Some("wv0000000002".into()),
            }],
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

    /// A state file as an earlier weft wrote it (kind and MAC as the API's strings), with
    /// one good endpoint record and one whose MAC is broken.
    const ONE_GOOD_ONE_BAD: &str = r#"{
  "version": 1,
  "networks": [
    {"name": "n", "subnet": "10.7.0.0/24", "gateway": "10.7.0.1", "mtu": 1500,
     "aging_seconds": 300, "icc": true, "nat": true, "internal": false}
  ],
  "endpoints": [
    {"name": "bad", "network": "n", "netns": "b", "ifname": "eth0", "kind": "tap",
     "ip": "10.7.0.3", "mac": "02:42:0a:07:00:zz", "aliases": ["db"]},
    {"name": "good", "network": "n", "netns": "g", "ifname": "eth0", "kind": "veth",
     "ip": "10.7.0.2", "mac": "02:42:0a:07:00:02", "host_ifname": "wv0000000001",
     "netns_id": [4, 4026532000]}
  ],
  "static_fdb": [{"network": "n", "mac": "02:00:00:00:00:01", "endpoint": "good"}]
}"#;

    #[test]
    fn static_entries_hold_checked_macs_and_one_that_does_not_read_is_dropped() {
        let text = ONE_GOOD_ONE_BAD.replace(
            r#""static_fdb": [{"#,
            r#""static_fdb": [{"network": "n", "mac": "01:00:5e:00:00:01", "endpoint": "good"}, {"#,
        );
        let state = parse_state(&text).unwrap();
        let [entry] = &state.static_fdb[..] else {
            panic!("the multicast entry should be dropped: {state:?}")
        };
        assert_eq!(entry.mac, MacAddr([2, 0, 0, 0, 0, 1]));
        let doc: serde_json::Value =
            serde_json::from_slice(&render_state(&state).unwrap()).unwrap();
        assert_eq!(doc["static_fdb"][0]["mac"], "02:00:00:00:00:01");
    }

    #[test]
    fn an_endpoint_record_that_does_not_read_is_reported_skipped_and_kept() {
        let state = parse_state(ONE_GOOD_ONE_BAD).unwrap();
        assert_eq!(state.networks.len(), 1);
        assert_eq!(state.static_fdb.len(), 1);
        assert_eq!(state.endpoints.len(), 1, "{state:?}");
        let good = &state.endpoints[0];
        assert_eq!(good.name, "good");
        assert_eq!(good.kind, EndpointKind::Veth);
        assert_eq!(good.mac, MacAddr([0x02, 0x42, 0x0a, 0x07, 0x00, 0x02]));
        assert_eq!(good.host_ifname.as_deref(), Some("wv0000000001"));

        let [bad] = &state.unreadable_endpoints[..] else {
            panic!("one unreadable record expected: {state:?}")
        };
        assert_eq!((bad.position, bad.name()), (1, Some("bad")));
        assert!(
            bad.reason.contains("mac") && bad.reason.contains("02:42:0a:07:00:zz"),
            "the reason names the field and the value: {}",
            bad.reason
        );

        // Written back: the good record as it was read, the bad one verbatim; and read
        // again, the same.
        let text = serde_json::to_string_pretty(&document(&state)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let original: serde_json::Value = serde_json::from_str(ONE_GOOD_ONE_BAD).unwrap();
        let endpoints = doc["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 2, "{text}");
        assert_eq!(endpoints[0], original["endpoints"][1], "{text}");
        assert_eq!(endpoints[1], original["endpoints"][0], "{text}");
        let again = parse_state(&text).unwrap();
        assert_eq!(again.endpoints, state.endpoints);
        assert_eq!(again.unreadable_endpoints[0].raw, bad.raw);
    }

    #[test]
    fn unknown_kinds_and_group_macs_do_not_read_but_malformed_json_fails_the_load() {
        let with = |field: &str, value: &str| {
            ONE_GOOD_ONE_BAD
                .replace("\"kind\": \"veth\"", &format!("\"{field}\": {value}"))
                .replace("02:42:0a:07:00:zz", "02:42:0a:07:00:03")
        };
        let state = parse_state(&with("kind", "\"vxlan\"")).unwrap();
        assert_eq!(state.endpoints.len(), 1);
        assert_eq!(state.endpoints[0].name, "bad", "the other one reads now");
        assert!(
            state.unreadable_endpoints[0].reason.contains("vxlan"),
            "{:?}",
            state.unreadable_endpoints
        );
        let multicast = ONE_GOOD_ONE_BAD.replace("02:42:0a:07:00:zz", "03:42:0a:07:00:03");
        let state = parse_state(&multicast).unwrap();
        assert_eq!(state.endpoints.len(), 1);
        assert!(state.unreadable_endpoints[0].reason.contains("unicast"));

        assert!(parse_state(&ONE_GOOD_ONE_BAD.replace("\"endpoints\"", "endpoints")).is_err());
        let bad_network = ONE_GOOD_ONE_BAD.replace("\"mtu\": 1500", "\"mtu\": \"big\"");
        assert!(parse_state(&bad_network).is_err());
    }
}
