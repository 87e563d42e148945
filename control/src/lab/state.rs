//! What a lab made, recorded beside the daemon's socket (`labs/NAME.json`), so `down` removes
//! exactly that; written after every step, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::Parts;
use super::LabError;
use crate::types::EndpointInfo;

/// A host's daemon, started by `lab up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub pid: u32,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    /// Its underlay address.
    pub address: String,
}

/// Everything one lab made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The file it was brought up from, last.
    pub file: Option<PathBuf>,
    pub parts: Parts,
    #[serde(default)]
    pub daemons: BTreeMap<String, DaemonRecord>,
    /// What the daemons answered for each link.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointInfo>,
}

/// Where the labs of the daemon at `socket` are recorded.
pub fn labs_dir(socket: &Path) -> PathBuf {
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/run/weft"))
        .join("labs")
}

/// The record file of lab `name`.
pub fn record_path(socket: &Path, name: &str) -> PathBuf {
    labs_dir(socket).join(format!("{name}.json"))
}

/// The lab's own directory: host daemons, the cluster key, logs of its commands.
pub fn lab_dir(socket: &Path, name: &str) -> PathBuf {
    labs_dir(socket).join(name)
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> LabError {
    move |e| LabError::Io(format!("{what}: {e}"))
}

/// A lab name as the checks allow it (never a path: `..` or `/` would leave the labs'
/// directory).
fn checked(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LabError::NotUp(format!(
            "{name:?} is not a lab name (1-24 lower-case letters, digits and '-'); `weft lab ls` lists the labs"
        )))
    }
}

/// The record of lab `name`, if it is up.
pub fn load(socket: &Path, name: &str) -> Result<Option<Record>, LabError> {
    checked(name)?;
    let p = record_path(socket, name);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot read {}", p.display()))(e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        LabError::Io(format!(
            "the lab record {} cannot be read ({e}); remove what it lists by hand and delete it",
            p.display()
        ))
    })
}

/// Writes the record (temp file and rename: a crash leaves the old or the new one).
pub fn save(socket: &Path, r: &Record) -> Result<(), LabError> {
    checked(&r.name)?;
    let dir = labs_dir(socket);
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let p = record_path(socket, &r.name);
    let tmp = p.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(r).map_err(|e| LabError::Io(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, &p).map_err(io(format!("cannot write {}", p.display())))
}

/// Forgets the lab: its record and its directory.
pub fn remove(socket: &Path, name: &str) -> Result<(), LabError> {
    checked(name)?;
    let _ = std::fs::remove_dir_all(lab_dir(socket, name));
    let _ = std::fs::remove_file(labs_dir(socket).join(format!("{name}.lock")));
    match std::fs::remove_file(record_path(socket, name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot remove the lab record".into())(e)),
    }
}

/// Every recorded lab.
pub fn list(socket: &Path) -> Result<Vec<Record>, LabError> {
    let dir = labs_dir(socket);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(lab) = name.strip_suffix(".json").filter(|l| checked(l).is_ok()) {
            if let Some(r) = load(socket, lab)? {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Held while one `weft lab` command changes a lab: a second one at the same time is refused.
pub struct LabLock {
    _file: std::fs::File,
}

/// Takes lab `name`'s lock (`labs/NAME.lock`), or says who holds it.
pub fn lock(socket: &Path, name: &str) -> Result<LabLock, LabError> {
    checked(name)?;
    let dir = labs_dir(socket);
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let p = dir.join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io(format!("cannot open {}", p.display())))?;
    match weft_sys::try_lock_exclusive(&file) {
        Ok(true) => Ok(LabLock { _file: file }),
        Ok(false) => Err(LabError::Io(format!(
            "another `weft lab` command is changing lab {name} right now: wait for it to finish"
        ))),
        Err(e) => Err(io(format!("cannot lock {}", p.display()))(e)),
    }
}
