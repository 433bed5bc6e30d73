//! The runtime's status document (`GET /status` on the admin address, and
//! `hadeploy-runtime status --json`), read by `hadeploy status`, `apply`'s
//! health step and `test-failover`. One definition for both sides.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<VrrpStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub node: String,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    /// `INIT`, `BACKUP`, `MASTER` or `FAULT` (keepalived's words).
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    /// Address of the master last heard (or ours when master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<Ipv4Addr>,
    pub vips: Vec<String>,
    pub holds_vips: bool,
    pub transitions: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyStatus {
    pub node: String,
    pub upstreams: Vec<UpstreamStatus>,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub servers: Vec<ServerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub address: String,
    /// Usable now: not down, not failed by passive or active checks.
    pub healthy: bool,
    pub backup: bool,
}
