//! The inventory file as written: serde types, every key optional where a
//! default or an inherited variable can fill it. Numbers are wide (`i64`) so
//! range errors come from our checks, with our wording, not serde's.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::secret::SecretSource;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    #[serde(default)]
    pub all: RawGroup,
    #[serde(default)]
    pub clusters: BTreeMap<String, RawCluster>,
}

/// An Ansible-style group: `vars`, `hosts` (name -> host vars), `children`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default)]
    pub vars: HostVars,
    #[serde(default)]
    pub hosts: BTreeMap<String, Option<HostVars>>,
    #[serde(default)]
    pub children: BTreeMap<String, Option<RawGroup>>,
}

/// Variables a host can carry, from `all.vars`, a group's `vars` or the host
/// entry itself. Ansible's names are accepted as aliases.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostVars {
    /// Address or name sshd listens on.
    #[serde(alias = "ansible_host")]
    pub ssh_host: Option<String>,
    #[serde(alias = "ansible_port")]
    pub ssh_port: Option<i64>,
    #[serde(alias = "ansible_user")]
    pub ssh_user: Option<String>,
    #[serde(alias = "ansible_ssh_private_key_file")]
    pub ssh_key: Option<String>,
    /// ProxyJump: `[user@]host[:port]`.
    pub ssh_jump: Option<String>,
    /// known_hosts file to check host keys against (default: ssh's own).
    pub ssh_known_hosts: Option<String>,
    /// Use sudo when the SSH user is not root.
    #[serde(alias = "ansible_become")]
    pub become_root: Option<bool>,
    /// The node's address on the VIP's network, with prefix when known
    /// (`192.168.10.10/24`); defaults to ssh_host when that is an IP.
    pub address: Option<String>,
    /// Interface carrying the VIPs (keepalived `interface`).
    pub vrrp_interface: Option<String>,
    /// Default VRRP priority of this node for every VIP group.
    pub vrrp_priority: Option<i64>,
    /// Facts assumed when none were gathered (render without a target).
    pub os: Option<String>,
    pub systemd_version: Option<i64>,
    pub firewalld: Option<bool>,
}

/// A cluster: a set of load balancers sharing VIP groups, sites, upstreams.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// A group name, or a list of host names.
    pub load_balancers: HostSelector,
    #[serde(default)]
    pub backends: Option<RawBackends>,
    /// Defaults for every VIP group of the cluster.
    #[serde(default)]
    pub vrrp: RawVrrpDefaults,
    #[serde(default)]
    pub vips: Vec<RawVip>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    /// Prometheus/status listeners on each node.
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    /// Proxy worker threads; 0 = one per core (`worker_processes auto`).
    #[serde(default)]
    pub workers: Option<i64>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub limits: Option<hadeploy_config::proxy::Limits>,
    /// Scheduling of the VRRP protocol thread on the load balancers
    /// (keepalived's vrrp_rt_priority / vrrp_no_swap); on by default.
    #[serde(default)]
    pub vrrp_realtime: Option<hadeploy_config::vrrp::Realtime>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum HostSelector {
    Group(String),
    Hosts(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default)]
    pub vrrp: Option<String>,
    #[serde(default)]
    pub proxy: Option<String>,
}

/// Backend nodes hadeploy also manages: a static site (the lab's web
/// servers), served by the same runtime.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackends {
    pub hosts: HostSelector,
    #[serde(default = "default_backend_port")]
    pub port: i64,
    #[serde(default = "default_backend_root")]
    pub root: String,
    /// Write an index.html naming the host, so a client can tell which
    /// backend answered.
    #[serde(default = "yes")]
    pub index_page: bool,
}

fn default_backend_port() -> i64 {
    8080
}
fn default_backend_root() -> String {
    "/var/lib/hadeploy/www".to_string()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVrrpDefaults {
    pub version: Option<i64>,
    pub advert_interval: Option<String>,
    pub auth_pass: Option<SecretSource>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<String>,
    /// `true`: unicast to the other load balancers; `false`: multicast.
    pub unicast: Option<bool>,
    pub multicast_group: Option<String>,
    pub v3_checksum: Option<hadeploy_config::vrrp::V3Checksum>,
    pub garp: Option<hadeploy_config::vrrp::Garp>,
    pub notify: Option<RawNotify>,
    pub track_interface: Option<Vec<String>>,
    /// Third-party routers (not load balancers of the cluster) whose
    /// adverts are accepted, such as a router taking part in the election.
    pub accept_peers: Option<Vec<String>>,
    /// Accept adverts from any source (keepalived's behaviour). Off by
    /// default: only the cluster's load balancers and `accept_peers`.
    pub accept_any_peer: Option<bool>,
}

/// One VRRP instance (keepalived `vrrp_instance`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub name: String,
    /// `192.168.10.100/24`; more addresses in `extra_addresses`.
    pub address: String,
    #[serde(default)]
    pub extra_addresses: Vec<String>,
    pub virtual_router_id: i64,
    pub interface: Option<String>,
    pub label: Option<String>,
    /// Per-host priority; overrides the host's `vrrp_priority`.
    #[serde(default)]
    pub priorities: BTreeMap<String, i64>,
    pub version: Option<i64>,
    pub advert_interval: Option<String>,
    pub auth_pass: Option<SecretSource>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<String>,
    pub unicast: Option<RawUnicast>,
    pub multicast_group: Option<String>,
    pub v3_checksum: Option<hadeploy_config::vrrp::V3Checksum>,
    pub garp: Option<hadeploy_config::vrrp::Garp>,
    pub track_interface: Option<Vec<String>>,
    #[serde(default)]
    pub track_script: Vec<RawTrackScript>,
    pub notify: Option<RawNotify>,
    pub accept_peers: Option<Vec<String>>,
    pub accept_any_peer: Option<bool>,
}

/// `unicast: true` (peers derived from the other load balancers),
/// `unicast: false` (multicast), or an explicit peer list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawUnicast {
    Enabled(bool),
    Peers {
        #[serde(default)]
        peers: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrackScript {
    pub name: String,
    pub script: Command,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub weight: i64,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub master: Option<Command>,
    pub backup: Option<Command>,
    pub fault: Option<Command>,
    pub stop: Option<Command>,
    /// keepalived's `notify` (four arguments appended).
    pub generic: Option<Command>,
    /// Install hadeploy's notify hook (the seed's notify.sh: logs each
    /// transition to syslog) for every state not set above.
    pub builtin: Option<bool>,
}

/// A command as a string (split on whitespace, like keepalived) or a list.
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub servers: Vec<RawServer>,
    pub health_check: Option<hadeploy_config::proxy::HealthCheck>,
    pub keepalive: Option<hadeploy_config::proxy::Keepalive>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub next_upstream_tries: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `ip:port`.
    pub address: String,
    pub weight: Option<i64>,
    pub max_fails: Option<i64>,
    pub fail_timeout: Option<String>,
    #[serde(default)]
    pub backup: bool,
    #[serde(default)]
    pub down: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Option<String>,
    /// `80`, `0.0.0.0:80`, `192.168.10.100:80`, or `vip:80` (every VIP).
    pub listen: ListenList,
    #[serde(default)]
    pub server_names: Vec<String>,
    #[serde(default)]
    pub default_server: bool,
    pub root: Option<String>,
    pub index: Option<Vec<String>>,
    #[serde(default)]
    pub error_pages: BTreeMap<i64, String>,
    pub access_log: Option<hadeploy_config::proxy::AccessLog>,
    /// The runtime's own type: a location key added there is an inventory
    /// key too.
    #[serde(default)]
    pub locations: Vec<hadeploy_config::proxy::Location>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ListenList {
    One(Listen),
    Many(Vec<Listen>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Listen {
    Port(i64),
    Addr(String),
}
