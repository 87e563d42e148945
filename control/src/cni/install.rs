//! `weft cni install`: the running binary into the runtime's plugin directory, and a
//! network configuration list for one weft network.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::config::sanitise_name;

/// What to install and where.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub network: String,
    /// The daemon's socket, when it is not the default.
    pub socket: Option<PathBuf>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub driver: Option<String>,
    pub icc: Option<bool>,
    pub internal: bool,
    pub nat: Option<String>,
    pub mtu: Option<u32>,
    pub vni: Option<u32>,
    pub kind: Option<String>,
}

/// An installation that could not be made: what and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InstallError(String);

/// The files written.
#[derive(Debug)]
pub struct Installed {
    pub plugin: PathBuf,
    pub conflist: PathBuf,
}

/// The configuration list: CNI 1.0.0, one plugin of type `weft` taking port mappings.
pub fn conflist(o: &InstallOptions) -> Value {
    let mut plugin = Map::new();
    plugin.insert("type".into(), json!("weft"));
    plugin.insert("network".into(), json!(o.network));
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            plugin.insert(key.into(), v);
        }
    };
    put("socket", o.socket.as_ref().map(|s| json!(s)));
    put("subnet", o.subnet.as_ref().map(|s| json!(s)));
    put("gateway", o.gateway.as_ref().map(|s| json!(s)));
    put("driver", o.driver.as_ref().map(|s| json!(s)));
    put("icc", o.icc.map(|b| json!(b)));
    put("internal", o.internal.then_some(Value::Bool(true)));
    put("nat", o.nat.as_ref().map(|s| json!(s)));
    put("mtu", o.mtu.map(|m| json!(m)));
    put("vni", o.vni.map(|v| json!(v)));
    put("kind", o.kind.as_ref().map(|s| json!(s)));
    plugin.insert("capabilities".into(), json!({"portMappings": true}));
    json!({"cniVersion": "1.0.0", "name": o.network, "plugins": [plugin]})
}

/// Copies this binary to `BIN_DIR/weft` and writes `CONF_DIR/NETWORK.conflist`, each
/// replaced atomically.
pub fn install(o: &InstallOptions) -> Result<Installed, InstallError> {
    if sanitise_name(&o.network).as_deref() != Some(o.network.as_str()) {
        return Err(InstallError(format!(
            "invalid network name {:?}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit",
            o.network
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| InstallError(format!("cannot find the running weft binary: {e}")))?;
    let plugin = o.bin_dir.join("weft");
    let same = |a: &Path, b: &Path| matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y);
    if !same(&exe, &plugin) {
        let bytes = fs::read(&exe)
            .map_err(|e| InstallError(format!("cannot read {}: {e}", exe.display())))?;
        write_atomic(&plugin, &bytes, 0o755)?;
    }
    let conflist_path = o.conf_dir.join(format!("{}.conflist", o.network));
    let mut text = serde_json::to_string_pretty(&conflist(o))
        .map_err(|e| InstallError(format!("cannot encode the configuration: {e}")))?;
    text.push('\n');
    write_atomic(&conflist_path, text.as_bytes(), 0o644)?;
    Ok(Installed {
        plugin,
        conflist: conflist_path,
    })
}

/// Writes `path` through a temporary file in its directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        InstallError(format!(
            "cannot {what} {}: {e}; run as root or pick another directory (--bin-dir, --conf-dir)",
            p.display()
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.weft-tmp"));
    fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(|e| io("set the mode of", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("replace", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_carries_the_network() {
        let o = InstallOptions {
            network: "lab".into(),
            subnet: Some("10.9.0.0/24".into()),
            icc: Some(false),
            socket: Some("/tmp/w.sock".into()),
            ..Default::default()
        };
        let c = conflist(&o);
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["name"], "lab");
        let p = &c["plugins"][0];
        assert_eq!(p["type"], "weft");
        assert_eq!(p["network"], "lab");
        assert_eq!(p["subnet"], "10.9.0.0/24");
        assert_eq!(p["icc"], false);
        assert_eq!(p["socket"], "/tmp/w.sock");
        assert_eq!(p["capabilities"]["portMappings"], true);
        assert!(p.get("gateway").is_none() && p.get("internal").is_none());
    }

    #[test]
    fn install_writes_both_files() {
        let dir = std::env::temp_dir().join(format!("weft-cni-install-{}", std::process::id()));
        let o = InstallOptions {
            bin_dir: dir.join("bin"),
            conf_dir: dir.join("net.d"),
            network: "lab".into(),
            ..Default::default()
        };
        let done = install(&o).unwrap();
        let mode = fs::metadata(&done.plugin).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let text = fs::read_to_string(&done.conflist).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), conflist(&o));
        let bad = InstallOptions {
            network: "a b".into(),
            ..o
        };
        assert!(install(&bad)
            .unwrap_err()
            .to_string()
            .contains("invalid network name"));
        let _ = fs::remove_dir_all(&dir);
    }
}
