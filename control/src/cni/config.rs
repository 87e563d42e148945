//! What the runtime hands the plugin: the network configuration on stdin, the `CNI_*`
//! environment, `CNI_ARGS`, and what weft makes of them (endpoint names, `-p` specs).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::{codes, CniError};
use crate::types::{CreateNetwork, PortKind};

/// The longest endpoint name weft takes (the daemon's `MAX_NAME_LEN`).
const MAX_NAME_LEN: usize = 64;
/// The longest engine binding an endpoint records (the daemon's `MAX_OWNER_LEN`).
const MAX_OWNER_LEN: usize = 200;

/// A CNI specification version this plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V031,
    V040,
    V100,
    V110,
}

/// Every version, oldest first, as `VERSION` reports them.
pub const SUPPORTED: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

impl Version {
    pub const LATEST: Version = Version::V110;

    pub fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "0.3.1" => Version::V031,
            "0.4.0" => Version::V040,
            "1.0.0" => Version::V100,
            "1.1.0" => Version::V110,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V031 => "0.3.1",
            Version::V040 => "0.4.0",
            Version::V100 => "1.0.0",
            Version::V110 => "1.1.0",
        }
    }
}

/// One entry of `runtimeConfig.portMappings` (the `portMappings` capability).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

impl PortMapping {
    /// weft's `-p` syntax: `[HOST_IP:]HOST_PORT:CONTAINER_PORT/proto`.
    pub fn to_spec(&self) -> Result<String, CniError> {
        let proto = match self.protocol.as_deref().map(str::to_ascii_lowercase) {
            None => "tcp".to_string(),
            Some(p) if p.is_empty() => "tcp".to_string(),
            Some(p) => p,
        };
        let ports = format!("{}:{}/{proto}", self.host_port, self.container_port);
        match self.host_ip.as_deref().filter(|h| !h.is_empty()) {
            None => Ok(ports),
            Some(h) if h.parse::<std::net::Ipv4Addr>().is_ok() => Ok(format!("{h}:{ports}")),
            Some(h) => Err(CniError::new(
                codes::INVALID_CONFIG,
                format!("port mapping {}: host address {h:?} is not an IPv4 address; weft publishes on IPv4 only: give an IPv4 host address or none", self.host_port),
            )),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

/// One `(containerID, ifname)` of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The plugin's network configuration (a conflist's plugin entry with `name` and
/// `cniVersion` injected by the runtime). Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub plugin_type: String,
    /// The weft network (default: `name`).
    #[serde(default)]
    pub network: Option<String>,
    /// The daemon's API socket.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub icc: Option<bool>,
    #[serde(default)]
    pub internal: Option<bool>,
    #[serde(default)]
    pub nat: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub vni: Option<u32>,
    /// `publishedSource`: "client" (default) or "gateway" (`weft network create --published-source`).
    #[serde(default)]
    pub published_source: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The same list under the name an earlier 1.1 draft used (libcni sends both).
    #[serde(default, rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// Decodes stdin: bad JSON is code 6, a version this plugin does not speak code 1.
    pub fn parse(stdin: &[u8]) -> Result<(NetConf, Version), CniError> {
        let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                codes::DECODE,
                format!("cannot decode the network configuration on stdin: {e}"),
            )
        })?;
        let version = Version::parse(&conf.cni_version).ok_or_else(|| {
            CniError::new(
                codes::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {:?} is not supported; weft speaks {}",
                    conf.cni_version,
                    SUPPORTED.join(", ")
                ),
            )
        })?;
        Ok((conf, version))
    }

    /// The weft network this configuration attaches to.
    pub fn network(&self) -> Result<&str, CniError> {
        let net = self.network.as_deref().unwrap_or(&self.name);
        if net.is_empty() {
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                "the configuration names no network: set \"network\" (or \"name\") to a weft network",
            ));
        }
        Ok(net)
    }

    /// The port kind (`tap` by default).
    pub fn port_kind(&self) -> Result<PortKind, CniError> {
        match self.kind.as_deref() {
            None | Some("tap") => Ok(PortKind::Tap),
            Some("veth") => Ok(PortKind::Veth),
            Some(k) => Err(CniError::new(
                codes::INVALID_CONFIG,
                format!("\"kind\": {k:?} is not a port kind: use \"tap\" or \"veth\""),
            )),
        }
    }

    /// The request that creates the network, if the configuration describes one.
    pub fn create_request(&self) -> Result<Option<CreateNetwork>, CniError> {
        let Some(subnet) = &self.subnet else {
            return Ok(None);
        };
        Ok(Some(CreateNetwork {
            name: self.network()?.to_string(),
            subnet: subnet.clone(),
            gateway: self.gateway.clone(),
            mtu: self.mtu,
            aging_seconds: None,
            icc: self.icc,
            nat: self.nat.clone(),
            internal: self.internal.unwrap_or(false),
            driver: self.driver.clone(),
            vni: self.vni,
            published_source: self.published_source.clone(),
        }))
    }

    /// The runtime's still-valid attachments (GC); required there.
    pub fn gc_valid(&self) -> Result<&[Attachment], CniError> {
        self.valid_attachments
            .as_deref()
            .or(self.attachments.as_deref())
            .ok_or_else(|| {
                CniError::new(
                    codes::INVALID_CONFIG,
                    "GC needs \"cni.dev/valid-attachments\" (the attachments to keep); without it nothing is removed",
                )
            })
    }
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
}

impl Env {
    /// Reads the environment; a variable that is not UTF-8 is code 4.
    pub fn from_process() -> Result<Env, CniError> {
        let var = |name: &str| -> Result<Option<String>, CniError> {
            match std::env::var(name) {
                Ok(v) if v.is_empty() => Ok(None),
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(CniError::new(
                    codes::INVALID_ENV,
                    format!("{name} is not valid UTF-8"),
                )),
            }
        };
        Ok(Env {
            command: var("CNI_COMMAND")?.unwrap_or_default(),
            container_id: var("CNI_CONTAINERID")?,
            netns: var("CNI_NETNS")?,
            ifname: var("CNI_IFNAME")?,
            args: var("CNI_ARGS")?,
        })
    }

    /// `CNI_CONTAINERID`, checked as the specification describes it.
    pub fn container_id(&self) -> Result<&str, CniError> {
        let id = self
            .container_id
            .as_deref()
            .ok_or_else(|| missing("CNI_CONTAINERID"))?;
        let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok || id.len() > MAX_OWNER_LEN - 24 {
            return Err(CniError::new(
                codes::INVALID_ENV,
                format!("CNI_CONTAINERID {id:?} is not a container ID: letters, digits, '_', '.', '-', starting with a letter or digit, at most {} characters", MAX_OWNER_LEN - 24),
            ));
        }
        Ok(id)
    }

    /// `CNI_IFNAME`: a Linux interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let name = self
            .ifname
            .as_deref()
            .ok_or_else(|| missing("CNI_IFNAME"))?;
        let ok = name.len() < 16
            && name != "."
            && name != ".."
            && !name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if !ok {
            return Err(CniError::new(
                codes::INVALID_ENV,
                format!("CNI_IFNAME {name:?} is not an interface name: 1-15 characters without '/', ':' or spaces"),
            ));
        }
        Ok(name)
    }

    /// `CNI_NETNS` (required by ADD and CHECK).
    pub fn netns(&self) -> Result<&str, CniError> {
        self.netns.as_deref().ok_or_else(|| missing("CNI_NETNS"))
    }

    /// The endpoint's owner: `cni:CONTAINERID/IFNAME`.
    pub fn owner(&self) -> Result<String, CniError> {
        Ok(owner(self.container_id()?, self.ifname()?))
    }
}

fn missing(var: &str) -> CniError {
    CniError::new(
        codes::INVALID_ENV,
        format!("{var} is not set; the container runtime must pass it"),
    )
}

/// The owner weft records for an attachment.
pub fn owner(container_id: &str, ifname: &str) -> String {
    format!("cni:{container_id}/{ifname}")
}

/// The `(containerID, ifname)` of an owner this plugin recorded.
pub fn parse_owner(owner: &str) -> Option<(&str, &str)> {
    owner.strip_prefix("cni:")?.rsplit_once('/')
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;` (pairs without `=` are ignored).
pub fn parse_args(args: &str) -> Vec<(&str, &str)> {
    args.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// An endpoint name made of `name` by weft's rules (letters, digits, `-_.`, starting with a
/// letter or digit, at most 64 characters); `None` when nothing usable is left.
pub fn sanitise_name(name: &str) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut: String = trimmed.chars().take(MAX_NAME_LEN).collect();
    (!cut.is_empty()).then_some(cut)
}

/// The endpoint names to try, best first: the pod's name from `CNI_ARGS`
/// (`K8S_POD_NAME`), the container ID's first 12 characters, those with the interface
/// name, the whole ID.
pub fn name_candidates(env: &Env) -> Result<Vec<String>, CniError> {
    let id = env.container_id()?;
    let ifname = env.ifname()?;
    let pod = env.args.as_deref().and_then(|a| {
        parse_args(a)
            .into_iter()
            .find(|(k, _)| *k == "K8S_POD_NAME")
            .map(|(_, v)| v)
    });
    let short: String = id.chars().take(12).collect();
    let mut out = Vec::new();
    for cand in [
        pod.and_then(sanitise_name),
        sanitise_name(&short),
        sanitise_name(&format!("{short}-{ifname}")),
        sanitise_name(id),
    ]
    .into_iter()
    .flatten()
    {
        if !out.contains(&cand) {
            out.push(cand);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(args: Option<&str>) -> Env {
        Env {
            command: "ADD".into(),
            container_id: Some("0123456789abcdef0123".into()),
            netns: Some("/run/netns/x".into()),
            ifname: Some("eth0".into()),
            args: args.map(String::from),
        }
    }

    #[test]
    fn cni_args_are_parsed() {
        let a = parse_args("IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=front end;junk;=x");
        assert_eq!(
            a,
            vec![
                ("IgnoreUnknown", "1"),
                ("K8S_POD_NAMESPACE", "web"),
                ("K8S_POD_NAME", "front end")
            ]
        );
        assert!(parse_args("").is_empty());
    }

    #[test]
    fn names_follow_weft_rules() {
        assert_eq!(sanitise_name("front end/1").as_deref(), Some("front-end-1"));
        assert_eq!(sanitise_name("_-x").as_deref(), Some("x"));
        assert_eq!(sanitise_name("--"), None);
        assert_eq!(sanitise_name(&"a".repeat(80)).unwrap().len(), 64);
        let c = name_candidates(&env(Some("K8S_POD_NAME=web_1;IgnoreUnknown=1"))).unwrap();
        assert_eq!(
            c,
            [
                "web_1",
                "0123456789ab",
                "0123456789ab-eth0",
                "0123456789abcdef0123"
            ]
        );
        let c = name_candidates(&env(None)).unwrap();
        assert_eq!(c[0], "0123456789ab");
    }

    #[test]
    fn env_is_checked() {
        let mut e = env(None);
        assert_eq!(e.owner().unwrap(), "cni:0123456789abcdef0123/eth0");
        e.container_id = Some("-bad".into());
        assert_eq!(e.container_id().unwrap_err().code, codes::INVALID_ENV);
        e.container_id = None;
        assert_eq!(e.container_id().unwrap_err().code, codes::INVALID_ENV);
        e.ifname = Some("a/b".into());
        assert_eq!(e.ifname().unwrap_err().code, codes::INVALID_ENV);
        e.netns = None;
        assert!(e.netns().unwrap_err().msg.contains("CNI_NETNS"));
        assert_eq!(parse_owner("cni:abc/eth0"), Some(("abc", "eth0")));
        assert_eq!(parse_owner("docker:abc"), None);
    }

    #[test]
    fn config_is_parsed() {
        let (c, v) = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"lab","type":"weft","subnet":"10.9.0.0/24","icc":false,
                 "capabilities":{"portMappings":true},
                 "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""},
                                                  {"hostPort":53,"containerPort":5353,"protocol":"UDP","hostIP":"127.0.0.1"}]},
                 "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(v, Version::V100);
        assert_eq!(c.network().unwrap(), "lab");
        let specs: Vec<String> = c
            .runtime_config
            .port_mappings
            .iter()
            .map(|m| m.to_spec().unwrap())
            .collect();
        assert_eq!(specs, ["8080:80/tcp", "127.0.0.1:53:5353/udp"]);
        let req = c.create_request().unwrap().unwrap();
        assert_eq!((req.subnet.as_str(), req.icc), ("10.9.0.0/24", Some(false)));
        assert_eq!(c.gc_valid().unwrap()[0].container_id, "a");
        assert_eq!(c.port_kind().unwrap(), PortKind::Tap);
    }

    #[test]
    fn config_errors_have_their_codes() {
        assert_eq!(NetConf::parse(b"{").unwrap_err().code, codes::DECODE);
        assert_eq!(NetConf::parse(b"[]").unwrap_err().code, codes::DECODE);
        let e = NetConf::parse(br#"{"cniVersion":"0.2.0","name":"x"}"#).unwrap_err();
        assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
        let (c, _) =
            NetConf::parse(br#"{"cniVersion":"1.1.0","name":"x","kind":"vxlan"}"#).unwrap();
        assert_eq!(c.port_kind().unwrap_err().code, codes::INVALID_CONFIG);
        assert!(c.create_request().unwrap().is_none());
        assert_eq!(c.gc_valid().unwrap_err().code, codes::INVALID_CONFIG);
        let m = PortMapping {
            host_port: 1,
            container_port: 2,
            protocol: None,
            host_ip: Some("::1".into()),
        };
        assert_eq!(m.to_spec().unwrap_err().code, codes::INVALID_CONFIG);
    }
}
