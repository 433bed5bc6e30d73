//! The runtime's status document (`GET /status` on the admin address, and
//! `hadeploy-runtime status --json`), read by `hadeploy status`, `apply`'s
//! health step and `test-failover`. One definition for both sides.

use std::collections::BTreeMap;
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
    /// Scheduling of the protocol thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RealtimeStatus {
    /// SCHED_RR priority in force; absent when running normal scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rr_priority: Option<u8>,
    pub memory_locked: bool,
    /// Why a requested setting is not in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One peer as its adverts show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: Ipv4Addr,
    /// The checksum form it sends: `v2`, `v3_pseudo_header`,
    /// `v3_vrrp_only`, `v3_pseudo_header_multicast_dst`.
    pub checksum: String,
    /// Priority of its last advert.
    pub priority: u8,
    pub adverts: u64,
}

/// Why the instance is in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTransition {
    /// `master_down`, `priority_zero`, `preempt`, `higher_priority`, ...
    pub reason: String,
    /// The advert behind it, if one caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_priority: Option<u8>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition: Option<LastTransition>,
    /// Peers heard, with the checksum form each sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerStatus>,
    /// Dropped adverts by reason (non-zero only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub discards: BTreeMap<String, u64>,
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
