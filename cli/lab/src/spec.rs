//! What a lab is made of (`LabSpec`) and the naming/address plan derived from its name.
//!
//! Names are kept short on purpose: Linux interface names are at most 15 bytes and
//! systemd-nspawn names the host side of a container's veth `vb-<machine>`, shortening
//! (and, depending on the naming scheme, hashing) longer names. With a lab name of at most
//! 6 characters and at most 9 nodes per role, `vb-<name>-web9` always fits, so the host
//! link name is predictable.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// Longest lab name (see the module comment).
pub const MAX_NAME_LEN: usize = 6;
/// Most load balancers (addresses .11-.19).
pub const MAX_PER_ROLE: usize = 9;
/// Most backends (addresses .21-.80; VIPs start at .100). `vb-<6>-web60`
/// is 15 characters, the kernel's limit for the host-side link name.
pub const MAX_BACKENDS: usize = 60;
/// Most VIP addresses reserved (.100-.109).
pub const MAX_VIPS: usize = 10;
/// Second octet of every lab subnet: 10.77.X.0/24.
pub const SUBNET_SECOND_OCTET: u8 = 77;
/// Host part of the client namespace's address on the bridge.
pub const CLIENT_HOST: u8 = 250;

/// Role of a node in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Load balancer (runs the VRRP/proxy stack under test).
    Lb,
    /// Web backend behind the load balancers.
    Backend,
}

/// Description of a lab to bring up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Lab name: `[a-z][a-z0-9]{0,5}`; prefixes node names, bridge and netns.
    pub name: String,
    /// Number of load balancer nodes (`<name>-lb1..N`).
    pub lbs: usize,
    /// Number of backend nodes (`<name>-web1..M`).
    pub backends: usize,
    /// Number of VIP addresses reserved (.100, .101, ...); nothing is configured for them.
    pub vips: usize,
    /// Where the lab keeps its overlays, keys and `lab.json`.
    pub state_dir: PathBuf,
    /// Where the shared base root file system is cached (kept by `down`).
    pub cache_dir: PathBuf,
    /// Force the third octet of 10.77.X.0/24 instead of deriving it from the name.
    pub subnet_index: Option<u8>,
    /// How long to wait for every node to boot and answer over SSH.
    pub boot_timeout: Duration,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec::new("hd")
    }
}

impl LabSpec {
    /// A spec with default sizes and directories for this lab name.
    pub fn new(name: &str) -> Self {
        LabSpec {
            name: name.to_string(),
            lbs: 2,
            backends: 2,
            vips: 1,
            state_dir: default_state_dir(name),
            cache_dir: default_cache_dir(),
            subnet_index: None,
            boot_timeout: Duration::from_secs(120),
        }
    }

    /// Check name and sizes so every derived name fits the kernel's limits.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if self.lbs > MAX_PER_ROLE || self.backends > MAX_BACKENDS {
            return Err(LabError::Spec(format!(
                "at most {MAX_PER_ROLE} load balancers and {MAX_BACKENDS} backends"
            )));
        }
        if self.lbs + self.backends == 0 {
            return Err(LabError::Spec("a lab needs at least one node".into()));
        }
        if self.vips > MAX_VIPS {
            return Err(LabError::Spec(format!("at most {MAX_VIPS} VIPs")));
        }
        if matches!(self.subnet_index, Some(0 | 255)) {
            return Err(LabError::Spec("subnet index must be 1..=254".into()));
        }
        if !self.state_dir.is_absolute() || self.state_dir.parent().is_none() {
            return Err(LabError::Spec(format!(
                "state_dir must be an absolute path below / ({})",
                self.state_dir.display()
            )));
        }
        if !self.cache_dir.is_absolute() || self.cache_dir.parent().is_none() {
            return Err(LabError::Spec(format!(
                "cache_dir must be an absolute path below / ({})",
                self.cache_dir.display()
            )));
        }
        Ok(())
    }

    /// Node names and roles in boot order: load balancers first, then backends.
    pub fn node_plan(&self) -> Vec<(String, Role, u8)> {
        let mut v = Vec::new();
        for i in 1..=self.lbs {
            v.push((lb_name(&self.name, i), Role::Lb, 10 + i as u8));
        }
        for i in 1..=self.backends {
            v.push((backend_name(&self.name, i), Role::Backend, 20 + i as u8));
        }
        v
    }
}

/// Where the root file system is cached unless configured.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/hadeploy";
/// Environment variable naming the cache directory (also read by `hadeploy lab up`).
pub const CACHE_DIR_ENV: &str = "HADEPLOY_LAB_CACHE";

/// `$HADEPLOY_LAB_CACHE` when set and not empty, else `/var/cache/hadeploy`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_CACHE_DIR),
    }
}

/// Where labs keep their state, one directory per lab; `hadeploy
/// test-failover` looks here for the lab of an inventory.
pub const STATE_ROOT: &str = "/var/lib/hadeploy/lab";

/// `/var/lib/hadeploy/lab/<name>`.
pub fn default_state_dir(name: &str) -> PathBuf {
    PathBuf::from(STATE_ROOT).join(name)
}

pub(crate) fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= MAX_NAME_LEN;
    if ok {
        Ok(())
    } else {
        Err(LabError::Spec(format!(
            "lab name {name:?} must match [a-z][a-z0-9]{{0,{}}}",
            MAX_NAME_LEN - 1
        )))
    }
}

pub fn lb_name(lab: &str, i: usize) -> String {
    format!("{lab}-lb{i}")
}

pub fn backend_name(lab: &str, i: usize) -> String {
    format!("{lab}-web{i}")
}

/// Bridge of a lab: `<name>br0` (at most 9 bytes).
pub fn bridge_name(lab: &str) -> String {
    format!("{lab}br0")
}

/// Host side of a node's veth as systemd-nspawn names it for `--network-bridge`.
pub fn host_link_name(node: &str) -> String {
    format!("vb-{node}")
}

/// Network namespace of the lab's client.
pub fn client_netns_name(lab: &str) -> String {
    format!("{lab}-client")
}

/// Host side of the client's veth (inside the namespace it is `eth0`).
pub fn client_link_name(lab: &str) -> String {
    format!("vc-{lab}")
}

/// Is `node` a node name of lab `lab` (`<lab>-lbN` or `<lab>-webN`)? Used to find
/// leftovers without touching another lab whose name shares a prefix.
pub fn is_node_of(lab: &str, node: &str) -> bool {
    let Some(rest) = node.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let digits = rest.strip_prefix("lb").or_else(|| rest.strip_prefix("web"));
    matches!(digits, Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

/// Preferred third octet for a lab name: FNV-1a of the name onto 1..=254, so different
/// labs usually land on different subnets; `up` still probes for a free one.
pub fn preferred_subnet_index(lab: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in lab.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % 254) as u8 + 1
}

/// Address `10.77.<index>.<host>`.
pub fn lab_addr(index: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, SUBNET_SECOND_OCTET, index, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limits() {
        let spec = LabSpec {
            lbs: 9,
            backends: MAX_BACKENDS,
            ..LabSpec::new("abcdef")
        };
        spec.validate().expect("valid");
        for (node, _, _) in spec.node_plan() {
            assert!(host_link_name(&node).len() <= 15, "{node}");
        }
        assert!(bridge_name("abcdef").len() <= 15);
        assert!(client_link_name("abcdef").len() <= 15);
    }

    #[test]
    fn rejects_bad_names() {
        for n in ["", "Hd", "1ab", "abcdefg", "a-b", "a_b"] {
            assert!(validate_name(n).is_err(), "{n}");
        }
        assert!(
            LabSpec {
                lbs: 10,
                ..LabSpec::new("hd")
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn node_matching_is_exact() {
        assert!(is_node_of("hd", "hd-lb1"));
        assert!(is_node_of("hd", "hd-web12"));
        assert!(!is_node_of("hd", "hdx-lb1"));
        assert!(!is_node_of("hd", "hd-lb"));
        assert!(!is_node_of("hd", "hd-db1"));
    }

    #[test]
    fn address_plan() {
        let plan = LabSpec::new("hd").node_plan();
        let hosts: Vec<u8> = plan.iter().map(|p| p.2).collect();
        assert_eq!(hosts, vec![11, 12, 21, 22]);
        assert_eq!(plan[0].0, "hd-lb1");
        assert_eq!(plan[3].0, "hd-web2");
        let i = preferred_subnet_index("hd");
        assert!((1..=254).contains(&i));
        assert_ne!(preferred_subnet_index("hd"), preferred_subnet_index("hdt"));
    }
}
