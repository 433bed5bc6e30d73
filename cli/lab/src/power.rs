//! Failure primitives for failover tests: power cut, clean stop, power on, cable pull.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::boot::wait_ready;
use crate::down::STOP_GRACE;
use crate::error::{LabError, Result};
use crate::exec::close_master;
use crate::lab::Lab;
use crate::net;
use crate::node::Node;
use crate::procs;

impl Lab {
    /// Power cut: SIGKILL the node's systemd-nspawn (and its init, so the container
    /// dies at once whatever nspawn's death signal handling does).
    pub fn kill_node(&self, node: &str) -> Result<()> {
        let n = self.node(node)?;
        let pids: Vec<i32> = [n.nspawn_pid(), n.init_pid()]
            .into_iter()
            .flatten()
            .collect();
        for &p in &pids {
            procs::signal(p, Signal::SIGKILL);
        }
        if !procs::wait_dead(&pids, Duration::from_secs(5)) {
            return Err(LabError::node(
                node,
                "kill",
                format!("still alive: {pids:?}"),
            ));
        }
        n.forget_pids();
        // After the kill, so the cut itself is not delayed.
        close_master(&self.ssh_config, node);
        tracing::info!(node, "power cut");
        Ok(())
    }

    /// Clean shutdown (SIGTERM to nspawn: systemd halts the container).
    pub fn stop_node(&self, node: &str) -> Result<()> {
        let n = self.node(node)?;
        close_master(&self.ssh_config, node);
        if let Some(p) = n.nspawn_pid() {
            let left = procs::terminate(&[p], STOP_GRACE);
            if !left.is_empty() {
                return Err(LabError::node(
                    node,
                    "stop",
                    format!("still alive: {left:?}"),
                ));
            }
        }
        n.forget_pids();
        Ok(())
    }

    /// Power on a node that was killed or stopped (its disk, the overlay, is kept), and
    /// wait until it answers over SSH. No-op when it is running.
    pub fn start_node(&self, node: &str) -> Result<()> {
        let n = self.node(node)?;
        if n.is_running() {
            return Ok(());
        }
        close_master(&self.ssh_config, node);
        if !net::link_exists(&self.bridge) {
            return Err(LabError::node(
                node,
                "start",
                format!("bridge {} is gone", self.bridge),
            ));
        }
        n.mount(&self.rootfs)?;
        let deadline = Instant::now() + Duration::from_secs(self.boot_timeout_secs);
        n.boot(&self.bridge)?;
        wait_ready(&self.ssh_config, n, deadline)?;
        Ok(())
    }

    /// Cable pull: the host side of the node's veth goes down.
    pub fn link_down(&self, node: &str) -> Result<()> {
        let n = self.node(node)?;
        self.check_link(n)?;
        net::set_link(&n.host_link, false)?;
        // Commands then time out on connect (3 s) instead of hanging on the old
        // connection until keep-alives give up.
        close_master(&self.ssh_config, node);
        Ok(())
    }

    /// Cable back in.
    pub fn link_up(&self, node: &str) -> Result<()> {
        let n = self.node(node)?;
        self.check_link(n)?;
        net::set_link(&n.host_link, true)
    }

    fn check_link(&self, n: &Node) -> Result<()> {
        if net::link_exists(&n.host_link) {
            return Ok(());
        }
        Err(LabError::node(
            &n.name,
            "find host link",
            format!(
                "{} not found (node running: {}); links present: {:?}",
                n.host_link,
                n.is_running(),
                net::link_names()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|l| l.starts_with("vb-"))
                    .collect::<Vec<_>>()
            ),
        ))
    }
}
