//! One lab node: its overlay root, the files written into it before boot, and its
//! systemd-nspawn process.

use std::fs::{self, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cmd::{describe, tail};
use crate::error::{IoContext, LabError, Result};
use crate::mounts::{is_mounted, mount_overlay};
use crate::procs::{children, cmdline, is_alive, read_pid};
use crate::rootfs::write_mode;
use crate::spec::Role;
use crate::sshkeys::{authorize, ensure_keypair, host_key_line};

/// A node of a lab, as recorded in `lab.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Machine name and hostname, e.g. `hd-lb1`.
    pub name: String,
    pub role: Role,
    /// Static address on `host0` (a /24 on the lab bridge).
    pub address: Ipv4Addr,
    /// Host side of its veth on the bridge (`vb-<name>`): the cable to pull.
    pub host_link: String,
    /// `state_dir/<name>`: overlay upper/work dirs, pid files, console log.
    pub dir: PathBuf,
    /// Merged overlay mount the container boots from.
    pub root: PathBuf,
    /// systemd-nspawn's output (the container's console).
    pub console_log: PathBuf,
}

impl Node {
    pub(crate) fn new(
        state_dir: &Path,
        name: &str,
        role: Role,
        address: Ipv4Addr,
        host_link: String,
    ) -> Self {
        let dir = state_dir.join(name);
        Node {
            name: name.to_string(),
            role,
            address,
            host_link,
            root: dir.join("root"),
            console_log: dir.join("console.log"),
            dir,
        }
    }

    fn nspawn_pid_file(&self) -> PathBuf {
        self.dir.join("nspawn.pid")
    }

    fn init_pid_file(&self) -> PathBuf {
        self.dir.join("init.pid")
    }

    /// PID of the live systemd-nspawn process of this node. The pid file is checked
    /// against the process's arguments, so a recycled pid is never mistaken for it.
    pub fn nspawn_pid(&self) -> Option<i32> {
        let pid = read_pid(&self.nspawn_pid_file())?;
        let root = self.root.to_string_lossy();
        (is_alive(pid) && cmdline(pid).iter().any(|a| a == root.as_ref())).then_some(pid)
    }

    /// PID (in the host's namespace) of the container's init, while the node runs.
    pub fn init_pid(&self) -> Option<i32> {
        let nspawn = self.nspawn_pid()?;
        let pid = read_pid(&self.init_pid_file())?;
        (is_alive(pid) && children(nspawn).contains(&pid)).then_some(pid)
    }

    pub fn is_running(&self) -> bool {
        self.nspawn_pid().is_some()
    }

    pub(crate) fn forget_pids(&self) {
        let _ = fs::remove_file(self.nspawn_pid_file());
        let _ = fs::remove_file(self.init_pid_file());
    }

    /// Last lines of the console log, for error messages.
    pub fn console_tail(&self, lines: usize) -> String {
        fs::read(&self.console_log)
            .map(|b| tail(&String::from_utf8_lossy(&b), lines))
            .unwrap_or_else(|e| format!("(no console log: {e})"))
    }

    /// Mount the overlay (if not mounted yet) on the shared base `lower`.
    pub(crate) fn mount(&self, lower: &Path) -> Result<()> {
        if is_mounted(&self.root) {
            return Ok(());
        }
        let upper = self.dir.join("upper");
        let work = self.dir.join("work");
        for d in [&upper, &work, &self.root] {
            fs::create_dir_all(d).step(|| format!("node {}: create {}", self.name, d.display()))?;
        }
        mount_overlay(&self.name, lower, &upper, &work, &self.root)
    }

    /// Write identity, network, SSH and host key files into the node's root (they land
    /// in the overlay's upper dir). Returns the node's public host key (`type base64`).
    pub(crate) fn prepare(&self, lab_public_key: &str, hosts_file: &str) -> Result<String> {
        let r = &self.root;
        write_mode(&r.join("etc/hostname"), &format!("{}\n", self.name), 0o644)?;
        write_mode(&r.join("etc/hosts"), hosts_file, 0o644)?;
        write_mode(
            &r.join("etc/machine-id"),
            &format!("{}\n", machine_id()?),
            0o444,
        )?;
        // Static address, no gateway (the lab reaches nothing outside its bridge), no
        // IPv6 autoconfiguration chatter. Sorts before nspawn's DHCP default file.
        write_mode(
            &r.join("etc/systemd/network/10-host0.network"),
            &format!(
                "[Match]\nName=host0\n\n[Network]\nAddress={}/24\nLinkLocalAddressing=no\n\
                 IPv6AcceptRA=no\n",
                self.address
            ),
            0o644,
        )?;
        mask_units(r, &self.name)?;
        authorize(r, lab_public_key)?;
        let host_key = r.join("etc/ssh/ssh_host_ed25519_key");
        let public = ensure_keypair(
            &format!("node {}: host key", self.name),
            &host_key,
            &format!("root@{}", self.name),
        )?;
        Ok(host_key_line(&public))
    }

    /// Start the container detached (own session, stdin from /dev/null, output to the
    /// console log) and record the nspawn and container init pids.
    pub(crate) fn boot(&self, bridge: &str) -> Result<i32> {
        wait_link_gone(&self.host_link)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.console_log)
            .step(|| format!("node {}: open {}", self.name, self.console_log.display()))?;
        let log2 = log
            .try_clone()
            .step(|| format!("node {}: console log", self.name))?;
        // The nspawn process joins its own cgroups (see cgroup.rs) before it starts:
        // `sh` writes its pid, then execs setsid, which execs nspawn in place.
        let cgroup_procs = crate::cgroup::prepare(&self.name)?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(JOIN_CGROUPS_AND_EXEC)
            .arg("sh")
            .args(&cgroup_procs)
            .args(["--", "setsid", "systemd-nspawn"])
            .args(["-b", "-D"])
            .arg(&self.root)
            .args(["-M", &self.name])
            // Without these two, nspawn asks a host systemd (absent here) for a scope.
            .args(["--register=no", "--keep-unit"])
            .arg(format!("--network-bridge={bridge}"))
            // Leave the host's journal directory, resolv.conf and timezone alone.
            .args(["--link-journal=no", "--resolv-conf=off", "--timezone=off"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        tracing::info!(node = %self.name, command = %describe(&cmd), "boot");
        // `sh` and `setsid` exec in place (the child is not a group leader), so the
        // child's pid is systemd-nspawn's. The handle is dropped without waiting: the container
        // outlives this call; `procs::reap` collects it when it exits while we live.
        let child = cmd
            .spawn()
            .step(|| format!("node {}: spawn systemd-nspawn", self.name))?;
        let pid = child.id() as i32;
        drop(child);
        write_mode(&self.nspawn_pid_file(), &format!("{pid}\n"), 0o644)?;

        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if !is_alive(pid) {
                return Err(LabError::node(
                    &self.name,
                    "boot",
                    format!(
                        "systemd-nspawn exited; console log {}:\n{}",
                        self.console_log.display(),
                        self.console_tail(30)
                    ),
                ));
            }
            // The container's init is nspawn's child once it has exec'd systemd.
            let init = children(pid).into_iter().find(|&c| {
                fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "systemd")
            });
            if let Some(init) = init {
                write_mode(&self.init_pid_file(), &format!("{init}\n"), 0o644)?;
                return Ok(pid);
            }
            if Instant::now() >= deadline {
                return Err(LabError::node(
                    &self.name,
                    "boot",
                    format!(
                        "no container init under systemd-nspawn pid {pid} after 15 s; console \
                         log {}",
                        self.console_log.display()
                    ),
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

/// Write each `cgroup.procs` file given before `--` with the shell's pid, then exec
/// the command after it.
const JOIN_CGROUPS_AND_EXEC: &str = r#"while [ "$1" != -- ]; do
  echo $$ > "$1" || { echo "cannot join cgroup $1" >&2; exit 1; }
  shift
done
shift
exec "$@""#;

/// Units that make no sense in a lab container, masked in the node's overlay (the
/// shared rootfs stays as debootstrap made it):
/// - systemd-network-generator reads network settings from the kernel command line,
///   which in a container is the host's; the node's network is its .network file.
/// - apt-daily(-upgrade) would run apt against a mirror the lab cannot reach (no
///   gateway), fail, and turn the node "degraded" in the middle of a long test.
/// - e2scrub checks ext4 LVM snapshots; a node's disk is an overlay.
pub const MASKED_UNITS: &[&str] = &[
    "systemd-network-generator.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
];

/// `systemctl mask` done by hand before boot: a symlink to /dev/null in /etc.
fn mask_units(root: &Path, node: &str) -> Result<()> {
    let dir = root.join("etc/systemd/system");
    fs::create_dir_all(&dir).step(|| format!("node {node}: create {}", dir.display()))?;
    for unit in MASKED_UNITS {
        let link = dir.join(unit);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link)
            .step(|| format!("node {node}: mask {unit}"))?;
    }
    Ok(())
}

/// A fresh machine id (32 hex digits) from the kernel's random UUID source.
fn machine_id() -> Result<String> {
    let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid")
        .step(|| "read /proc/sys/kernel/random/uuid".into())?;
    Ok(uuid.trim().replace('-', ""))
}

/// After a power cut the old veth disappears with the container's namespace, which the
/// kernel may finish slightly later; nspawn fails if the name is still taken.
fn wait_link_gone(link: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while crate::net::link_exists(link) {
        if Instant::now() >= deadline {
            tracing::warn!(link, "stale host link, deleting it");
            return crate::net::delete_link(link);
        }
        sleep(Duration::from_millis(50));
    }
    Ok(())
}
