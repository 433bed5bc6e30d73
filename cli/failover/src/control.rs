//! Reaching the nodes and breaking them: SSH to every node of the cluster
//! (the same connections apply uses), the lab's power / cable / partition
//! primitives when the cluster is a local lab, and an undo list so every
//! fault is repaired at the end, on error and on Ctrl-C.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hadeploy_config::status::RuntimeStatus;
use hadeploy_deploy::Step;
use hadeploy_deploy::ssh::{self, ConnectOptions, Remote};
use hadeploy_inventory::model::{Host, Inventory};
use hadeploy_lab::Lab;

use crate::error::ControlError;

/// SIGKILL every process in the unit's cgroup: frozen first (SIGSTOP), so a
/// parent cannot respawn a child between the kills. Read from the cgroup
/// itself because `systemctl kill --kill-who=all` fails (EIO) under a
/// hybrid cgroup hierarchy such as the lab's containers; works on cgroup v1
/// (CentOS 7, systemd 219) and v2.
const KILL_ALL: &str = r#"cg=$(systemctl show -p ControlGroup "$1" | cut -d= -f2-)
f=
for d in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if [ -n "$cg" ] && [ -r "$d$cg/cgroup.procs" ]; then f="$d$cg/cgroup.procs"; break; fi
done
[ -n "$f" ] || { echo "no cgroup for $1" >&2; exit 1; }
pids=$(cat "$f")
[ -n "$pids" ] || { echo "$1 has no process" >&2; exit 1; }
kill -STOP $pids; kill -KILL $pids"#;

/// A fault to repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    StartUnit(String, String),
    PowerOn(String),
    LinkUp(String),
    Unisolate(Vec<String>),
}

pub struct Control {
    pub hosts: BTreeMap<String, Host>,
    remotes: BTreeMap<String, Remote>,
    pub lab: Option<Lab>,
    undo: Vec<Undo>,
    copts: ConnectOptions,
}

impl Control {
    pub async fn connect(
        inv: &Inventory,
        names: &[String],
        lab: Option<Lab>,
        copts: ConnectOptions,
    ) -> Result<Control, ControlError> {
        let mut c = Control {
            hosts: BTreeMap::new(),
            remotes: BTreeMap::new(),
            lab,
            undo: Vec::new(),
            copts,
        };
        for n in names {
            let h = inv
                .hosts
                .get(n)
                .ok_or_else(|| ControlError::UnknownHost(n.clone()))?
                .clone();
            let r = ssh::connect(&h, copts).await?;
            c.remotes.insert(n.clone(), r);
            c.hosts.insert(n.clone(), h);
        }
        Ok(c)
    }

    async fn remote(&mut self, host: &str) -> Result<&Remote, ControlError> {
        if !self.remotes.contains_key(host) {
            let h = self
                .hosts
                .get(host)
                .ok_or_else(|| ControlError::UnknownHost(host.to_string()))?;
            let r = ssh::connect(h, self.copts).await?;
            self.remotes.insert(host.to_string(), r);
        }
        self.remotes
            .get(host)
            .ok_or_else(|| ControlError::NotConnected(host.to_string()))
    }

    /// Runs a shell snippet as root on `host`.
    pub async fn sh(
        &mut self,
        host: &str,
        script: &str,
        args: &[&str],
    ) -> Result<String, ControlError> {
        let r = self.remote(host).await?;
        match r.sh_ok(Step::Status, script, args, None).await {
            Ok(out) => Ok(out),
            Err(e) => {
                // A dead connection (power cut, reboot) is reopened next time.
                if let Some(r) = self.remotes.remove(host) {
                    r.close().await;
                }
                Err(e.into())
            }
        }
    }

    pub async fn status(&mut self, host: &str) -> Option<RuntimeStatus> {
        let r = self.remote(host).await.ok()?;
        match hadeploy_deploy::status::query(r).await {
            Ok((_, st)) => st,
            Err(_) => {
                if let Some(r) = self.remotes.remove(host) {
                    r.close().await;
                }
                None
            }
        }
    }

    /// Hosts among `lbs` that have `vip` on an interface (the ground truth,
    /// also when a killed daemon left it behind). Unreachable hosts hold nothing.
    pub async fn holders(&mut self, lbs: &[String], vip: Ipv4Addr) -> Vec<String> {
        let mut out = Vec::new();
        for h in lbs {
            let q = self.sh(h, r#"ip -o -4 addr | awk '{print $4}' | cut -d/ -f1 | grep -qx "$1" && echo yes || true"#, &[&vip.to_string()]).await;
            if q.is_ok_and(|o| o.trim() == "yes") {
                out.push(h.clone());
            }
        }
        out
    }

    /// Polls `holders` until `want(holders)` or the timeout; returns the last
    /// holders seen and when the condition first held.
    pub async fn wait_holders(
        &mut self,
        lbs: &[String],
        vip: Ipv4Addr,
        timeout: Duration,
        want: impl Fn(&[String]) -> bool,
    ) -> (Vec<String>, Option<Instant>) {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.holders(lbs, vip).await;
            if want(&h) {
                return (h, Some(Instant::now()));
            }
            if Instant::now() >= deadline {
                return (h, None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn mac(&mut self, host: &str, iface: &str) -> Option<String> {
        self.sh(host, r#"cat "/sys/class/net/$1/address""#, &[iface])
            .await
            .ok()
            .map(|s| s.trim().to_string())
    }

    pub async fn stop_unit(&mut self, host: &str, unit: &str) -> Result<(), ControlError> {
        self.undo
            .push(Undo::StartUnit(host.to_string(), unit.to_string()));
        self.sh(host, r#"systemctl stop "$1""#, &[unit])
            .await
            .map(|_| ())
    }

    pub async fn start_unit(&mut self, host: &str, unit: &str) -> Result<(), ControlError> {
        self.sh(host, r#"systemctl start "$1""#, &[unit]).await?;
        self.undo
            .retain(|u| *u != Undo::StartUnit(host.to_string(), unit.to_string()));
        Ok(())
    }

    /// SIGKILL every process of the unit at once: a crash of the whole
    /// daemon. Killing only the main process is not one for a multi-process
    /// daemon (keepalived): systemd would then SIGTERM its VRRP child, which
    /// releases the VIP gracefully (priority 0). Recorded for restore, since
    /// not every unit has Restart=always.
    pub async fn kill_unit(&mut self, host: &str, unit: &str) -> Result<(), ControlError> {
        let u = Undo::StartUnit(host.to_string(), unit.to_string());
        if !self.undo.contains(&u) {
            self.undo.push(u);
        }
        self.sh(host, KILL_ALL, &[unit]).await.map(|_| ())
    }

    /// Starts the unit unless it is already active (a unit without
    /// Restart= stays failed after a kill; one waiting to restart is started now).
    pub async fn ensure_active(&mut self, host: &str, unit: &str) -> Result<(), ControlError> {
        self.sh(
            host,
            r#"systemctl is-active -q "$1" || systemctl start "$1""#,
            &[unit],
        )
        .await?;
        self.undo
            .retain(|u| *u != Undo::StartUnit(host.to_string(), unit.to_string()));
        Ok(())
    }

    /// `systemctl is-active` of the unit ("active", "failed", ...; "?" when
    /// the host cannot be asked).
    pub async fn unit_state(&mut self, host: &str, unit: &str) -> String {
        self.sh(host, r#"systemctl is-active "$1" || true"#, &[unit])
            .await
            .map_or_else(|_| "?".to_string(), |s| s.trim().to_string())
    }

    fn lab(&self) -> Result<&Lab, ControlError> {
        self.lab.as_ref().ok_or(ControlError::NoLab)
    }

    pub async fn power_cut(&mut self, host: &str) -> Result<(), ControlError> {
        self.undo.push(Undo::PowerOn(host.to_string()));
        if let Some(r) = self.remotes.remove(host) {
            // The master connection dies with the node; drop it first.
            drop(r);
        }
        self.lab()?.kill_node(host).map_err(ControlError::from)
    }

    pub async fn power_on(&mut self, host: &str) -> Result<(), ControlError> {
        self.lab()?.start_node(host).map_err(ControlError::from)?;
        self.undo.retain(|u| *u != Undo::PowerOn(host.to_string()));
        Ok(())
    }

    pub fn cable_pull(&mut self, host: &str) -> Result<(), ControlError> {
        self.undo.push(Undo::LinkUp(host.to_string()));
        self.lab()?.link_down(host).map_err(ControlError::from)
    }

    pub fn cable_plug(&mut self, host: &str) -> Result<(), ControlError> {
        self.lab()?.link_up(host).map_err(ControlError::from)?;
        self.undo.retain(|u| *u != Undo::LinkUp(host.to_string()));
        Ok(())
    }

    /// Bridge port isolation: isolated ports cannot reach each other but
    /// still reach every other port, so the load balancers lose each other
    /// while clients and backends still reach both.
    pub fn partition(&mut self, hosts: &[String]) -> Result<(), ControlError> {
        self.undo.push(Undo::Unisolate(hosts.to_vec()));
        self.isolate(hosts, true)
    }

    pub fn heal(&mut self, hosts: &[String]) -> Result<(), ControlError> {
        self.isolate(hosts, false)?;
        self.undo.retain(|u| *u != Undo::Unisolate(hosts.to_vec()));
        Ok(())
    }

    fn isolate(&self, hosts: &[String], on: bool) -> Result<(), ControlError> {
        let lab = self.lab()?;
        for h in hosts {
            let link = &lab.node(h).map_err(ControlError::from)?.host_link;
            let st = std::process::Command::new("bridge")
                .args([
                    "link",
                    "set",
                    "dev",
                    link,
                    "isolated",
                    if on { "on" } else { "off" },
                ])
                .status()
                .map_err(ControlError::Bridge)?;
            if !st.success() {
                return Err(ControlError::Isolate(link.clone()));
            }
        }
        Ok(())
    }

    /// MAC the lab client has for `ip` (its ARP cache).
    pub fn client_neighbor(&self, ip: Ipv4Addr) -> Option<String> {
        let lab = self.lab.as_ref()?;
        let ns = hadeploy_lab::client_netns_name(&lab.name);
        let out = std::process::Command::new("ip")
            .args(["-n", &ns, "neigh", "show", &ip.to_string()])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        while let Some(w) = it.next() {
            if w == "lladdr" {
                return it.next().map(str::to_string);
            }
        }
        None
    }

    /// Repairs everything still broken, newest first. Errors are collected,
    /// never stop the rest of the repairs.
    pub async fn restore(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(u) = self.undo.pop() {
            let r = match &u {
                Undo::StartUnit(h, unit) => {
                    let (h, unit) = (h.clone(), unit.clone());
                    self.sh(&h, r#"systemctl start "$1""#, &[&unit])
                        .await
                        .map(|_| ())
                }
                Undo::PowerOn(h) => self
                    .lab()
                    .and_then(|l| l.start_node(h).map_err(ControlError::from)),
                Undo::LinkUp(h) => self
                    .lab()
                    .and_then(|l| l.link_up(h).map_err(ControlError::from)),
                Undo::Unisolate(hs) => self.isolate(hs, false),
            };
            if let Err(e) = r {
                errors.push(format!("restoring {u:?}: {e}"));
            }
        }
        errors
    }

    pub async fn close(mut self) {
        for (_, r) in std::mem::take(&mut self.remotes) {
            r.close().await;
        }
    }
}
