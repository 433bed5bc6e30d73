//! A lab that is up: its description (`lab.json`), node accessors, commands on nodes
//! and the client namespace.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::down::down_dir;
use crate::error::{IoContext, LabError, Result};
use crate::exec::{ExecOutput, exec, ssh_command};
use crate::net;
use crate::node::Node;
use crate::rootfs::{rootfs_path, write_mode};
use crate::spec::{LabSpec, Role, client_link_name, client_netns_name};

/// File in the state dir describing the lab.
pub const LAB_JSON: &str = "lab.json";

/// A lab that is up (or was: see [`Lab::status`]). Serialised as `state_dir/lab.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Shared read-only lower layer of every node.
    pub rootfs: PathBuf,
    pub bridge: String,
    /// X in 10.77.X.0/24.
    pub subnet_index: u8,
    /// `10.77.X.0/24`.
    pub subnet: String,
    pub prefix_len: u8,
    /// The bridge's own address (.1), the host's foot in the lab.
    pub bridge_address: Ipv4Addr,
    /// Reserved VIP addresses (.100, .101, ...); nothing configures them.
    pub vips: Vec<Ipv4Addr>,
    /// Address of the client namespace (.250) once [`Lab::client_netns`] made it.
    pub client_address: Ipv4Addr,
    /// Private key accepted by root on every node.
    pub ssh_key: PathBuf,
    pub known_hosts: PathBuf,
    /// `ssh -F <ssh_config> <node>` reaches a node.
    pub ssh_config: PathBuf,
    pub boot_timeout_secs: u64,
    pub nodes: Vec<Node>,
}

/// The client network namespace on the lab bridge (for sending load to a VIP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientNetns {
    /// `<lab>-client`, usable with `ip netns exec`.
    pub name: String,
    pub address: Ipv4Addr,
    /// Host side of its veth on the bridge.
    pub host_link: String,
}

impl ClientNetns {
    /// `ip netns exec <ns> <program>`: add arguments and run.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Lab {
    /// Read `state_dir/lab.json`.
    pub fn load(state_dir: &Path) -> Result<Lab> {
        let path = state_dir.join(LAB_JSON);
        let text = fs::read_to_string(&path).step(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            message: e.to_string(),
        })
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = self.state_dir.join(LAB_JSON);
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // Written aside then renamed: a crash never leaves a truncated lab.json.
        let tmp = self.state_dir.join(".lab.json.tmp");
        write_mode(&tmp, &text, 0o644)?;
        fs::rename(&tmp, &path).step(|| format!("rename {}", tmp.display()))
    }

    pub(crate) fn matches(&self, spec: &LabSpec) -> bool {
        let plan: Vec<String> = spec.node_plan().into_iter().map(|p| p.0).collect();
        let ours: Vec<&String> = self.nodes.iter().map(|n| &n.name).collect();
        self.name == spec.name
            && ours.len() == plan.len()
            && ours.iter().zip(&plan).all(|(a, b)| *a == b)
            && self.vips.len() == spec.vips
            && spec.subnet_index.is_none_or(|i| i == self.subnet_index)
            // Another cache dir means another root file system under the nodes.
            && self.rootfs == rootfs_path(&spec.cache_dir)
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LabError::UnknownNode(name.to_string()))
    }

    pub fn lbs(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Lb)
    }

    pub fn backends(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Backend)
    }

    /// First reserved VIP (.100).
    pub fn vip(&self) -> Option<Ipv4Addr> {
        self.vips.first().copied()
    }

    /// Run a shell command on a node as root over SSH. A non-zero exit is not an
    /// error here (see `code`); failing to run ssh at all is.
    pub fn exec(&self, node: &str, command: &str) -> Result<ExecOutput> {
        self.node(node)?;
        exec(&self.ssh_config, node, command)
    }

    /// Like [`Lab::exec`] but a non-zero exit is an error naming the node and command.
    pub fn exec_ok(&self, node: &str, command: &str) -> Result<String> {
        let out = self.exec(node, command)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(LabError::node(
                node,
                &format!("exec `{command}`"),
                format!("exit {}: {}", out.code, out.stderr.trim()),
            ))
        }
    }

    /// The `ssh` command for a node, to add options or stdin before running.
    pub fn ssh_command(&self, node: &str, command: &str) -> Result<Command> {
        self.node(node)?;
        Ok(ssh_command(&self.ssh_config, &[], node, command))
    }

    /// Create (or return) the client namespace `<lab>-client` with address .250 on the
    /// lab bridge. Removed by `down`.
    pub fn client_netns(&self) -> Result<ClientNetns> {
        let c = ClientNetns {
            name: client_netns_name(&self.name),
            address: self.client_address,
            host_link: client_link_name(&self.name),
        };
        if !net::netns_exists(&c.name) {
            let made = net::create_client_netns(&c.name, &c.host_link, &self.bridge, c.address);
            if let Err(e) = made {
                let _ = net::delete_link(&c.host_link);
                let _ = net::delete_netns(&c.name);
                return Err(e);
            }
        }
        Ok(c)
    }

    /// Tear this lab down (see [`down_dir`]).
    pub fn down(&self) -> Result<()> {
        down_dir(&self.name, &self.state_dir)
    }
}
