//! Checks that stop the run before anything changes on any node.

use std::net::Ipv4Addr;

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

/// Every problem found, each a sentence naming what to do.
pub fn check(c: &Context<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let f = c.facts;
    if f.uid != 0 {
        out.push(format!(
            "connected as uid {} without root: set ssh_user: root, or become_root: true with passwordless sudo",
            f.uid
        ));
    }
    if f.arch != "x86_64" {
        out.push(format!(
            "architecture is {}, the runtime binary is x86_64",
            f.arch
        ));
    }
    let need_kb = (c.artifact.bytes.len() as u64 * 2) / 1024 + 10 * 1024;
    if f.disk_free_kb < need_kb {
        out.push(format!(
            "only {} KiB free under /usr/local, need {} KiB for the runtime binary and its temporary copy",
            f.disk_free_kb, need_kb
        ));
    }
    if let Some(v) = &c.tree.vrrp {
        for i in &v.instances {
            for iface in std::iter::once(&i.interface).chain(i.track_interface.iter()) {
                if !f.links.contains_key(iface) {
                    let have: Vec<&str> = f
                        .links
                        .keys()
                        .map(String::as_str)
                        .filter(|n| *n != "lo")
                        .collect();
                    out.push(format!(
                        "VRRP instance {}: interface {iface} does not exist (interfaces: {})",
                        i.name,
                        have.join(", ")
                    ));
                }
            }
            let ours_running = f.unit_active("hadeploy-vrrp");
            for vip in &i.virtual_ipaddress {
                let a: Ipv4Addr = vip.address.addr();
                if let Some(dev) = f.has_addr(a)
                    && !ours_running
                    && !(c.replace_existing && f.unit_active("keepalived"))
                {
                    out.push(format!(
                        "VIP {a} is already configured on {dev} and hadeploy-vrrp is not running: another VRRP daemon or a static address holds it"
                    ));
                }
            }
        }
        if f.unit_active("keepalived") && !c.replace_existing {
            out.push("keepalived is running: pass --replace-existing to stop and disable it in favour of hadeploy-vrrp".into());
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
                    if proc_ == "nginx" && c.replace_existing {
                        continue;
                    }
                    let who = if proc_.is_empty() {
                        "another process".to_string()
                    } else {
                        format!("`{proc_}`")
                    };
                    let hint = if proc_ == "nginx" {
                        " (pass --replace-existing to replace nginx)"
                    } else {
                        ""
                    };
                    out.push(format!(
                        "port {} (site {}) is held by {who}{hint}",
                        l.port(),
                        site.name
                    ));
                }
            }
        }
        if f.unit_active("nginx")
            && !c.replace_existing
            && c.tree.units.iter().any(|u| u == "hadeploy-proxy.service")
        {
            let msg = "nginx is running: pass --replace-existing to stop and disable it in favour of hadeploy-proxy".to_string();
            if !out.contains(&msg) {
                out.push(msg);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
