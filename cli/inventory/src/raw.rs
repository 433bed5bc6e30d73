//! The inventory file as written: serde types, every key optional where a
//! default or an inherited variable can fill it. Numbers are wide (`i64`) so
//! range errors come from our checks, with our wording, not serde's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::SecretSource;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    #[serde(default)]
    pub all: RawGroup,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, RawCluster>,
}

/// An Ansible-style group: `vars`, `hosts` (name -> host vars), `children`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default, skip_serializing_if = "is_default")]
    pub vars: HostVars,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, Option<HostVars>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, Option<RawGroup>>,
}

/// Variables a host can carry, from `all.vars`, a group's `vars` or the host
/// entry itself. Ansible's names are accepted as aliases.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostVars {
    /// Address or name sshd listens on.
    #[serde(alias = "ansible_host", skip_serializing_if = "Option::is_none")]
    pub ssh_host: Option<String>,
    #[serde(alias = "ansible_port", skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<i64>,
    #[serde(alias = "ansible_user", skip_serializing_if = "Option::is_none")]
    pub ssh_user: Option<String>,
    #[serde(
        alias = "ansible_ssh_private_key_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub ssh_key: Option<String>,
    /// ProxyJump: `[user@]host[:port]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_jump: Option<String>,
    /// known_hosts file to check host keys against (default: ssh's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_known_hosts: Option<String>,
    /// Use sudo when the SSH user is not root.
    #[serde(alias = "ansible_become", skip_serializing_if = "Option::is_none")]
    pub become_root: Option<bool>,
    /// The node's address on the VIP's network, with prefix when known
    /// (`192.168.10.10/24`); defaults to ssh_host when that is an IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Interface carrying the VIPs (keepalived `interface`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp_interface: Option<String>,
    /// Default VRRP priority of this node for every VIP group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp_priority: Option<i64>,
    /// Facts assumed when none were gathered (render without a target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firewalld: Option<bool>,
}

/// A cluster: a set of load balancers sharing VIP groups, sites, upstreams.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// A group name, or a list of host names.
    pub load_balancers: HostSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<RawBackends>,
    /// Defaults for every VIP group of the cluster.
    #[serde(default)]
    pub vrrp: RawVrrpDefaults,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<RawVip>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<RawSite>,
    /// Prometheus/status listeners on each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<RawAdmin>,
    /// Proxy worker threads; 0 = one per core (`worker_processes auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<hadeploy_config::proxy::Limits>,
    /// Scheduling of the VRRP protocol thread on the load balancers
    /// (keepalived's vrrp_rt_priority / vrrp_no_swap); on by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_realtime: Option<hadeploy_config::vrrp::Realtime>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum HostSelector {
    Group(String),
    Hosts(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

/// Backend nodes hadeploy also manages: a static site (the lab's web
/// servers), served by the same runtime.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackends {
    pub hosts: HostSelector,
    #[serde(default = "default_backend_port")]
    pub port: i64,
    #[serde(default = "default_backend_root")]
    pub root: String,
    /// Write an index.html naming the host, so a client can tell which
    /// backend answered.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub index_page: bool,
}

/// `backends.port` when not set.
pub const DEFAULT_BACKEND_PORT: u16 = 8080;
/// Where hadeploy's backends serve their static site from (`backends.root`
/// when not set).
pub const BACKEND_ROOT: &str = "/var/lib/hadeploy/www";

fn default_backend_port() -> i64 {
    i64::from(DEFAULT_BACKEND_PORT)
}
fn default_backend_root() -> String {
    BACKEND_ROOT.to_string()
}
fn yes() -> bool {
    true
}
fn is_true(v: &bool) -> bool {
    *v
}
/// Written files leave out what the loader fills in anyway.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVrrpDefaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<SecretSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<String>,
    /// `true`: unicast to the other load balancers; `false`: multicast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unicast: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v3_checksum: Option<hadeploy_config::vrrp::V3Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garp: Option<hadeploy_config::vrrp::Garp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<RawNotify>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_interface: Option<Vec<String>>,
    /// Third-party routers (not load balancers of the cluster) whose
    /// adverts are accepted, such as a router taking part in the election.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_peers: Option<Vec<String>>,
    /// Accept adverts from any source (keepalived's behaviour). Off by
    /// default: only the cluster's load balancers and `accept_peers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_any_peer: Option<bool>,
}

/// One VRRP instance (keepalived `vrrp_instance`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub name: String,
    /// `192.168.10.100/24`; more addresses in `extra_addresses`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_addresses: Vec<String>,
    pub virtual_router_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Per-host priority; overrides the host's `vrrp_priority`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub priorities: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<SecretSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unicast: Option<RawUnicast>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v3_checksum: Option<hadeploy_config::vrrp::V3Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garp: Option<hadeploy_config::vrrp::Garp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_interface: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<RawTrackScript>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<RawNotify>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_peers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_any_peer: Option<bool>,
}

/// `unicast: true` (peers derived from the other load balancers),
/// `unicast: false` (multicast), or an explicit peer list.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawUnicast {
    Enabled(bool),
    Peers {
        #[serde(default)]
        peers: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrackScript {
    pub name: String,
    pub script: Command,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub weight: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rise: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Command>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<Command>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Command>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Command>,
    /// keepalived's `notify` (four arguments appended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generic: Option<Command>,
    /// Install hadeploy's notify hook (the seed's notify.sh: logs each
    /// transition to syslog) for every state not set above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<bool>,
}

/// A command as a string (split on whitespace, like keepalived) or a list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Command {
    Line(String),
    Argv(Vec<String>),
}

impl Command {
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Line(s) => s.split_whitespace().map(str::to_string).collect(),
            Command::Argv(v) => v.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<RawServer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<hadeploy_config::proxy::HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<hadeploy_config::proxy::Keepalive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_upstream_tries: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `ip:port`.
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fails: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

/// A site: the runtime's own type, with the inventory's listen forms. A
/// key added to the runtime's site is an inventory key too, with the same
/// checks; resolving fills only `listen` and a left-out `name`.
pub type RawSite = hadeploy_config::proxy::Site<ListenList>;

/// `80`, `0.0.0.0:80`, `192.168.10.100:80`, or `vip:80` (every VIP).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ListenList {
    One(Listen),
    Many(Vec<Listen>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Listen {
    Port(i64),
    Addr(String),
}
