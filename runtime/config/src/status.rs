//! The runtime's status document (`GET /status` on the admin address, and
//! `hadeploy-runtime status --json`), read by `hadeploy status`, `apply`'s
//! health step and `test-failover`. One definition for both sides.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use hadeploy_vrrp::State;
use serde::{Deserialize, Serialize};

/// An instance's VRRP state as operators, the status document, metrics and
/// notify hooks see it (keepalived's words: `MASTER`, `BACKUP`, ...).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    /// Configured, not started yet.
    #[default]
    Init,
    Backup,
    Master,
    Fault,
    /// Shut down (the machine went back to Initialize).
    Stopped,
}

impl VrrpState {
    pub const ALL: [VrrpState; 5] = [
        VrrpState::Init,
        VrrpState::Backup,
        VrrpState::Master,
        VrrpState::Fault,
        VrrpState::Stopped,
    ];

    /// The word on the wire and in metrics labels: `INIT`, `BACKUP`,
    /// `MASTER`, `FAULT`, `STOPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
            VrrpState::Stopped => "STOPPED",
        }
    }

    /// The state word keepalived passes to `notify` scripts, so existing
    /// hook scripts keep working: stopping is `STOP`.
    pub fn notify_word(self) -> &'static str {
        match self {
            VrrpState::Stopped => "STOP",
            s => s.as_str(),
        }
    }

    /// Taking part in the election normally (not starting, failed or
    /// stopped).
    pub fn is_running(self) -> bool {
        matches!(self, VrrpState::Master | VrrpState::Backup)
    }
}

/// Entering Initialize is stopping: a machine is in it only before it
/// starts (reported as [`VrrpState::Init`] until then) and after shutdown.
impl From<State> for VrrpState {
    fn from(s: State) -> Self {
        match s {
            State::Initialize => VrrpState::Stopped,
            State::Backup => VrrpState::Backup,
            State::Master => VrrpState::Master,
            State::Fault => VrrpState::Fault,
        }
    }
}

/// A state word that is none of [`VrrpState::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown VRRP state `{0}` (expected INIT, BACKUP, MASTER, FAULT or STOPPED)")]
pub struct UnknownState(pub String);

impl std::str::FromStr for VrrpState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VrrpState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

impl std::fmt::Display for VrrpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// `INIT`, `BACKUP`, `MASTER`, `FAULT` or `STOPPED` (keepalived's words).
    pub state: VrrpState,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words_on_the_wire_are_keepalived_s() {
        for (s, word) in [
            (VrrpState::Init, "INIT"),
            (VrrpState::Backup, "BACKUP"),
            (VrrpState::Master, "MASTER"),
            (VrrpState::Fault, "FAULT"),
            (VrrpState::Stopped, "STOPPED"),
        ] {
            let json = serde_json::to_string(&s).expect("json");
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<VrrpState>(&json).expect("back"), s);
            assert_eq!(s.as_str(), word);
            assert_eq!(s.to_string(), word);
            assert_eq!(word.parse::<VrrpState>(), Ok(s));
        }
        assert!(serde_json::from_str::<VrrpState>("\"master\"").is_err());
    }

    #[test]
    fn notify_words_and_machine_states() {
        let words: Vec<_> = [
            State::Initialize,
            State::Backup,
            State::Master,
            State::Fault,
        ]
        .into_iter()
        .map(|s| VrrpState::from(s).notify_word())
        .collect();
        assert_eq!(words, ["STOP", "BACKUP", "MASTER", "FAULT"]);
        assert_eq!(VrrpState::Init.notify_word(), "INIT");
    }

    #[test]
    fn an_instance_status_round_trips_with_its_state_word() {
        let text = r#"{"name":"VI_1","vrid":51,"state":"MASTER","priority":150,"effective_priority":150,"vips":["10.0.0.1/24"],"holds_vips":true,"transitions":1}"#;
        let i: InstanceStatus = serde_json::from_str(text).expect("parse");
        assert_eq!(i.state, VrrpState::Master);
        assert_eq!(serde_json::to_string(&i).expect("json"), text);
    }
}
