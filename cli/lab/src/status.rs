//! Live state of a lab: processes, links and an SSH probe per node.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::exec::exec;
use crate::lab::Lab;
use crate::net;
use crate::spec::{Role, client_netns_name};

/// Live state of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: Role,
    pub address: Ipv4Addr,
    pub running: bool,
    pub nspawn_pid: Option<i32>,
    pub init_pid: Option<i32>,
    /// Host link present and up (false after `link_down`).
    pub link_up: bool,
    pub ssh_reachable: bool,
}

/// Live state of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabStatus {
    pub name: String,
    pub bridge: String,
    pub bridge_present: bool,
    pub client_netns: bool,
    pub nodes: Vec<NodeStatus>,
}

impl LabStatus {
    /// Every node running and reachable over SSH, bridge present.
    pub fn healthy(&self) -> bool {
        self.bridge_present && self.nodes.iter().all(|n| n.running && n.ssh_reachable)
    }
}

impl Lab {
    /// Live state of every node (processes, links, a quick SSH probe).
    pub fn status(&self) -> LabStatus {
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let nspawn_pid = n.nspawn_pid();
                let link_up = fs::read_to_string(format!("/sys/class/net/{}/flags", n.host_link))
                    .ok()
                    .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
                    .is_some_and(|flags| flags & 1 == 1);
                let ssh_reachable = nspawn_pid.is_some()
                    && exec(&self.ssh_config, &n.name, "true").is_ok_and(|o| o.success());
                NodeStatus {
                    name: n.name.clone(),
                    role: n.role,
                    address: n.address,
                    running: nspawn_pid.is_some(),
                    nspawn_pid,
                    init_pid: n.init_pid(),
                    link_up,
                    ssh_reachable,
                }
            })
            .collect();
        LabStatus {
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            bridge_present: net::link_exists(&self.bridge),
            client_netns: net::netns_exists(&client_netns_name(&self.name)),
            nodes,
        }
    }
}

/// Status of the lab in `state_dir` (`None` when there is no `lab.json`).
pub fn status(state_dir: &Path) -> Option<LabStatus> {
    Lab::load(state_dir).ok().map(|l| l.status())
}
