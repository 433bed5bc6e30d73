//! The resolved inventory: every default applied, every variable inherited,
//! every reference checked. Code past `resolve` trusts these invariants:
//! - every host named by a cluster exists in `hosts`;
//! - priorities are 1..=255 and distinct within a VIP group, 255 only for the
//!   owner of the VIP address;
//! - VRIDs are 1..=255 and unique per (host, interface);
//! - a unicast VIP group knows every member's address;
//! - every location's upstream exists in its cluster.
//!
//! Sites and upstreams are `hadeploy_config`'s own types, checked by the
//! same rule functions `hadeploy-runtime check` uses: render copies them into
//! the node's proxy config unchanged.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A cluster's site is the runtime's own type (re-exported so model users
/// need not know where it lives).
pub use hadeploy_config::proxy::Site;
use hadeploy_config::proxy::{Limits, Upstream};
use hadeploy_config::vrrp::{Garp, TrackScript, V3Checksum, Version};
use ipnet::{IpNet, Ipv4Net};

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Inventory {
    pub file: PathBuf,
    pub hosts: BTreeMap<String, Host>,
    /// Group name -> member hosts (children included), for `--limit`.
    pub groups: BTreeMap<String, Vec<String>>,
    pub clusters: Vec<Cluster>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// YAML path of the host's entry, for diagnostics.
    pub path: String,
    pub ssh: SshTarget,
    /// Address on the VIP network; the prefix is 32 when it was not given.
    pub address: Option<Ipv4Net>,
    pub prefix_known: bool,
    pub vrrp_interface: String,
    pub vrrp_priority: Option<u8>,
    pub assumed: AssumedFacts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
    pub jump: Option<String>,
    pub known_hosts: Option<PathBuf>,
    pub become_root: bool,
}

/// Facts used when rendering without contacting the host. Defaults describe
/// CentOS 7, the first target: systemd 219 and firewalld running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedFacts {
    pub os: String,
    pub systemd_version: u32,
    pub firewalld: bool,
}

impl Default for AssumedFacts {
    fn default() -> Self {
        AssumedFacts {
            os: "centos:7".to_string(),
            systemd_version: 219,
            firewalld: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub load_balancers: Vec<String>,
    pub backends: Option<Backends>,
    pub vips: Vec<VipGroup>,
    pub upstreams: BTreeMap<String, Upstream>,
    pub sites: Vec<Site>,
    pub admin_vrrp: Option<SocketAddr>,
    pub admin_proxy: Option<SocketAddr>,
    pub workers: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: Limits,
    pub track_scripts: Vec<TrackScript>,
    pub vrrp_realtime: Option<hadeploy_config::vrrp::Realtime>,
}

#[derive(Debug, Clone)]
pub struct Backends {
    pub hosts: Vec<String>,
    pub port: u16,
    pub root: PathBuf,
    pub index_page: bool,
}

#[derive(Debug, Clone)]
pub struct VipGroup {
    pub name: String,
    pub addresses: Vec<Ipv4Net>,
    pub vrid: u8,
    pub label: Option<String>,
    pub version: Version,
    pub advert_interval: Duration,
    pub auth_pass: Option<Secret>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub members: Vec<Member>,
    pub transport: Transport,
    pub v3_checksum: V3Checksum,
    pub garp: Garp,
    pub track_interface: Vec<String>,
    pub track_script: Vec<(String, Option<i32>)>,
    pub notify: Hooks,
    /// Sources accepted besides the members (third-party routers).
    pub accept_peers: Vec<Ipv4Addr>,
    /// Any source accepted: set by the operator, or forced because a
    /// member's address is unknown (resolve warns).
    pub accept_any_peer: bool,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub host: String,
    pub priority: u8,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Multicast(Ipv4Addr),
    /// Peers derived from the other members' addresses.
    UnicastDerived,
    UnicastPeers(Vec<Ipv4Addr>),
}

#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
    pub generic: Option<Vec<String>>,
    /// Install the bundled notify hook and use it for unset states.
    pub builtin: bool,
}

impl Inventory {
    /// Clusters in which `host` is a load balancer.
    pub fn lb_clusters<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Cluster> + 'a {
        self.clusters
            .iter()
            .filter(move |c| c.load_balancers.iter().any(|h| h == host))
    }

    /// Clusters in which `host` is a managed backend.
    pub fn backend_clusters<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Cluster> + 'a {
        self.clusters.iter().filter(move |c| {
            c.backends
                .as_ref()
                .is_some_and(|b| b.hosts.iter().any(|h| h == host))
        })
    }

    /// Hosts matching `--limit` patterns (host or group names); all when empty.
    pub fn limit(&self, patterns: &[String]) -> Result<Vec<&Host>, LimitError> {
        let mut out: Vec<&Host> = Vec::new();
        if patterns.is_empty() {
            return Ok(self.managed_hosts());
        }
        for p in patterns.iter().flat_map(|p| p.split(',')) {
            let names: Vec<String> = if let Some(h) = self.hosts.get(p) {
                vec![h.name.clone()]
            } else if let Some(g) = self.groups.get(p) {
                g.clone()
            } else if let Some(c) = self.clusters.iter().find(|c| c.name == p) {
                let mut v = c.load_balancers.clone();
                v.extend(c.backends.iter().flat_map(|b| b.hosts.clone()));
                v
            } else {
                return Err(LimitError {
                    pattern: p.to_string(),
                });
            };
            for n in names {
                if let Some(h) = self.hosts.get(&n)
                    && !out.iter().any(|o| o.name == h.name)
                {
                    out.push(h);
                }
            }
        }
        let managed: Vec<&str> = self
            .managed_hosts()
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        out.retain(|h| managed.contains(&h.name.as_str()));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Hosts that receive anything, in name order.
    pub fn managed_hosts(&self) -> Vec<&Host> {
        self.hosts
            .values()
            .filter(|h| {
                self.lb_clusters(&h.name).next().is_some()
                    || self.backend_clusters(&h.name).next().is_some()
            })
            .collect()
    }
}

/// A `--limit` pattern that names no host, group or cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--limit {pattern}: no host, group or cluster by that name")]
pub struct LimitError {
    pub pattern: String,
}

#[cfg(test)]
mod tests {
    use super::LimitError;

    #[test]
    fn limit_error_reads_as_before() {
        let e = LimitError {
            pattern: "web9".into(),
        };
        assert_eq!(
            e.to_string(),
            "--limit web9: no host, group or cluster by that name"
        );
    }
}
