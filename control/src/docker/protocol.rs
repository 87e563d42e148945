//! The JSON of Docker's remote network driver and IPAM driver protocols (libnetwork's
//! `docs/remote.md` and `docs/ipam.md`): what dockerd posts to the plugin, and the answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `/Plugin.Activate`: one socket serves both drivers.
pub const IMPLEMENTS: &str = r#"{"Implements":["NetworkDriver","IpamDriver"]}"#;

/// The media type of plugin answers.
pub const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// The option key under which `docker network create -o K=V` arrives.
pub const GENERIC: &str = "com.docker.network.generic";
/// The option key of `--internal`.
pub const INTERNAL: &str = "com.docker.network.internal";
/// The option key of `-p`/`-P` mappings.
pub const PORT_MAP: &str = "com.docker.network.portmap";
/// `RequestAddressType` of the gateway's address.
pub const GATEWAY_REQUEST: &str = "com.docker.network.gateway";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub sub_pool: String,
    #[serde(default, rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PoolReply {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub pool: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressReply {
    pub address: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleasePool {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
    #[serde(default, rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(default, rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub gateway: String,
}

/// Any request that names a network (and perhaps an endpoint).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default, rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub interface: Option<EndpointInterface>,
    #[serde(default)]
    pub options: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(
        default,
        rename = "AddressIPv6",
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub sandbox_key: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinReply {
    pub interface_name: InterfaceName,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

/// One `-p` mapping as Docker sends it (`types.PortBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// IANA protocol number: 6 TCP, 17 UDP.
    pub proto: u8,
    pub port: u16,
    #[serde(default, rename = "HostIP")]
    pub host_ip: String,
    #[serde(default)]
    pub host_port: u16,
    #[serde(default)]
    pub host_port_end: u16,
}
