//! Checks that stop the run before anything changes on any node.

use std::net::Ipv4Addr;

use hadeploy_config::Unit;
use hadeploy_inventory::render::NodeTree;

use crate::artifact::Artifact;
use crate::facts::RemoteFacts;

/// The runtime's process name as the kernel truncates it (15 bytes).
const RUNTIME_COMM: &str = "hadeploy-runtim";

pub struct Context<'a> {
    pub tree: &'a NodeTree,
    pub facts: &'a RemoteFacts,
    pub artifact: &'a Artifact,
    pub replace_existing: bool,
}

/// A reason not to touch the node; its message names what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error(
        "connected as uid {uid} without root: set ssh_user: root, or become_root: true with passwordless sudo"
    )]
    NotRoot { uid: u32 },
    #[error("architecture is {arch}, the runtime binary is x86_64")]
    Architecture { arch: String },
    #[error(
        "only {free_kb} KiB free under /usr/local, need {need_kb} KiB for the runtime binary and its temporary copy"
    )]
    Disk { free_kb: u64, need_kb: u64 },
    #[error("VRRP instance {instance}: interface {interface} does not exist (interfaces: {})", .have.join(", "))]
    NoInterface {
        instance: String,
        interface: String,
        /// The node's interfaces, loopback left out.
        have: Vec<String>,
    },
    #[error(
        "VIP {vip} is already configured on {dev} and {} is not running: another VRRP daemon or a static address holds it",
        hadeploy_config::Unit::Vrrp.name()
    )]
    VipHeld { vip: Ipv4Addr, dev: String },
    /// The stock service ours replaces is running.
    #[error(
        "{} is running: pass --replace-existing to stop and disable it in favour of {}",
        .0.replaces(),
        .0.name()
    )]
    Replaceable(Unit),
    #[error("port {port} (site {site}) is held by {}{}", holder(.process), hint(.process))]
    PortHeld {
        port: u16,
        site: String,
        /// The process `ss` names, empty when it could not tell.
        process: String,
    },
}

fn holder(process: &str) -> String {
    if process.is_empty() {
        "another process".to_string()
    } else {
        format!("`{process}`")
    }
}

fn hint(process: &str) -> &'static str {
    if process == Unit::Proxy.replaces() {
        " (pass --replace-existing to replace nginx)"
    } else {
        ""
    }
}

/// Every problem found, in the order of their messages, each once.
pub fn check(c: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = c.facts;
    if f.uid != 0 {
        out.push(Finding::NotRoot { uid: f.uid });
    }
    if f.arch != "x86_64" {
        out.push(Finding::Architecture {
            arch: f.arch.clone(),
        });
    }
    let need_kb = (c.artifact.bytes.len() as u64 * 2) / 1024 + 10 * 1024;
    if f.disk_free_kb < need_kb {
        out.push(Finding::Disk {
            free_kb: f.disk_free_kb,
            need_kb,
        });
    }
    let replaceable = |u: Unit| f.unit_active(u.replaces());
    if let Some(v) = &c.tree.vrrp {
        for i in &v.instances {
            for iface in std::iter::once(&i.interface).chain(i.track_interface.iter()) {
                if !f.links.contains_key(iface) {
                    out.push(Finding::NoInterface {
                        instance: i.name.clone(),
                        interface: iface.clone(),
                        have: f.links.keys().filter(|n| *n != "lo").cloned().collect(),
                    });
                }
            }
            let ours_running = f.unit_active(Unit::Vrrp.name());
            for vip in &i.virtual_ipaddress {
                let a: Ipv4Addr = vip.address.addr();
                if let Some(dev) = f.has_addr(a)
                    && !ours_running
                    && !(c.replace_existing && replaceable(Unit::Vrrp))
                {
                    out.push(Finding::VipHeld {
                        vip: a,
                        dev: dev.to_string(),
                    });
                }
            }
        }
        if replaceable(Unit::Vrrp) && !c.replace_existing {
            out.push(Finding::Replaceable(Unit::Vrrp));
        }
    }
    if let Some(p) = &c.tree.proxy {
        for site in &p.sites {
            for l in &site.listen {
                for (sa, proc_) in &f.listeners {
                    let overlaps = sa.port() == l.port()
                        && (sa.ip().is_unspecified()
                            || l.ip().is_unspecified()
                            || sa.ip() == l.ip());
                    if !overlaps || proc_ == RUNTIME_COMM {
                        continue;
                    }
                    if proc_ == Unit::Proxy.replaces() && c.replace_existing {
                        continue;
                    }
                    out.push(Finding::PortHeld {
                        port: l.port(),
                        site: site.name.clone(),
                        process: proc_.clone(),
                    });
                }
            }
        }
        if replaceable(Unit::Proxy) && !c.replace_existing && c.tree.units.contains(&Unit::Proxy) {
            out.push(Finding::Replaceable(Unit::Proxy));
        }
    }
    out.sort_by_cached_key(ToString::to_string);
    out.dedup();
    out
}
