//! The two VRRP daemons under test, started in a router namespace with
//! equivalent configurations (same VRID, VIP, priorities, advert interval,
//! GARP defaults, no authentication), and the ways they are stopped.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use crate::monitor::now;
use crate::netns::{self, Lab, VIP};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Impl {
    #[serde(rename = "hadeploy")]
    Ours,
    #[serde(rename = "keepalived")]
    Keepalived,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Ours => "hadeploy",
            Impl::Keepalived => "keepalived",
        }
    }
}

/// One VRRP setting under test: version and advert interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Proto {
    pub version: u8,
    pub advert_ms: u64,
}

pub struct Binaries {
    pub runtime: PathBuf,
    pub keepalived: PathBuf,
}

pub struct Daemon {
    child: Child,
    ns: String,
    imp: Impl,
    pub log: PathBuf,
}

fn ours_yaml(node: &str, p: Proto, priority: u8) -> String {
    format!(
        "node: {node}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    version: {}
    priority: {priority}
    advert_interval: {}ms
    virtual_ipaddress:
      - address: {VIP}/24
",
        p.version, p.advert_ms
    )
}

fn keepalived_conf(node: &str, p: Proto, priority: u8) -> String {
    let secs = p.advert_ms as f64 / 1000.0;
    format!(
        "global_defs {{
    router_id {node}
    vrrp_version {}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {secs}
    virtual_ipaddress {{
        {VIP}/24 dev eth0
    }}
}}
",
        p.version
    )
}

impl Daemon {
    /// Starts `imp` in router `i` with `priority`.
    pub fn start(
        lab: &Lab,
        i: usize,
        imp: Impl,
        p: Proto,
        priority: u8,
        bin: &Binaries,
    ) -> Result<Daemon> {
        let ns = lab.routers[i].clone();
        let node = format!("bench_r{i}");
        // Fresh files per start: keepalived refuses to start when a pid file
        // of a killed run names a pid that has since been reused.
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let stem = lab
            .dir
            .join(format!("{}-r{i}-v{}-{n}", imp.name(), p.version));
        let log_path = stem.with_extension("log");
        let log = File::create(&log_path).context("daemon log")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]);
        match imp {
            Impl::Ours => {
                let conf = stem.with_extension("yaml");
                std::fs::write(&conf, ours_yaml(&node, p, priority)).context("write config")?;
                cmd.arg(&bin.runtime).arg("vrrp").arg("--config").arg(&conf);
            }
            Impl::Keepalived => {
                let conf = stem.with_extension("conf");
                std::fs::write(&conf, keepalived_conf(&node, p, priority))
                    .context("write config")?;
                cmd.arg(&bin.keepalived)
                    // VRRP only (-P): no checker child and its default pid file,
                    // which a system keepalived may hold.
                    .args(["-P", "-n", "-l", "-D", "-f"])
                    .arg(&conf)
                    .arg("-p")
                    .arg(stem.with_extension("pid"))
                    .arg("-r")
                    .arg(stem.with_extension("vrrp.pid"));
            }
        }
        // Own process group: a Ctrl-C on the terminal reaches only the
        // benchmark, which then tears everything down itself.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("dup log")?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", imp.name()))?;
        Ok(Daemon {
            child,
            ns,
            imp,
            log: log_path,
        })
    }

    /// `ip netns exec` execs the daemon, so this is its (main) pid.
    fn main_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// Every process of the daemon: all processes in its namespace (the
    /// namespace runs nothing else). keepalived = parent + VRRP child.
    pub fn pids(&self) -> Vec<i32> {
        netns::pids(&self.ns)
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL of the whole daemon (a crash); returns the instant of the
    /// kill that stops adverts. keepalived's parent is frozen first: it
    /// would otherwise respawn the VRRP child, and killing the parent first
    /// makes the child exit gracefully (parent-death signal).
    pub fn kill9(&self) -> Duration {
        let main = self.main_pid();
        if self.imp == Impl::Keepalived {
            let _ = kill(main, Signal::SIGSTOP);
        }
        let others: Vec<Pid> = self
            .pids()
            .into_iter()
            .map(Pid::from_raw)
            .filter(|p| *p != main)
            .collect();
        let t0 = now();
        for p in others {
            let _ = kill(p, Signal::SIGKILL);
        }
        let _ = kill(main, Signal::SIGKILL);
        t0
    }

    /// Graceful stop as `systemctl stop` does it (KillMode=control-group,
    /// the default of Debian's keepalived.service): SIGTERM to every process
    /// of the unit. Returns the instant of the signal.
    pub fn term(&self) -> Duration {
        let pids = self.pids();
        let t0 = now();
        for p in pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
        }
        t0
    }

    /// Graceful stop if anything still runs; waits up to `limit` for the
    /// exit, then Drop kills what is left.
    pub fn stop(mut self, limit: Duration) {
        if !self.pids().is_empty() {
            self.term();
        }
        let t = Instant::now();
        while self.alive() && t.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for p in netns::pids(&self.ns) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our runtime colours its log on a non-systemd stderr; error messages
/// quote it plain.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// Whether a path is an executable file (a clear error beats a spawn error
/// inside `ip netns exec`).
pub fn check_binary(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(p).with_context(|| format!("{} not found", p.display()))?;
    anyhow::ensure!(
        m.is_file() && m.permissions().mode() & 0o111 != 0,
        "{} is not executable",
        p.display()
    );
    Ok(())
}
