//! The benchmark's private network: a "switch" namespace holding a bridge,
//! two router namespaces and one client namespace, each joined to the bridge
//! by a veth pair created inside the switch namespace. Nothing is created in
//! (or sent into) the root namespace.
//!
//! Every namespace is registered before it is created, so `cleanup` (run by
//! `Lab`'s Drop, by the signal thread on Ctrl-C, and at the next start for
//! namespaces of a dead run) kills whatever runs inside and deletes it.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const PREFIX: &str = "vrb";
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 100);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);

/// Namespaces and the temp dir this process created and has not removed yet.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static TMPDIR: Mutex<Option<PathBuf>> = Mutex::new(None);

fn run(args: &[&str]) -> Result<Output> {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("spawn {args:?}"))
}

fn must(args: &[&str]) -> Result<()> {
    let out = run(args)?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Pids of every process inside namespace `ns`.
pub fn pids(ns: &str) -> Vec<i32> {
    run(&["ip", "netns", "pids", ns])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill_and_delete(ns: &str) {
    for pid in pids(ns) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = run(&["ip", "netns", "del", ns]);
}

/// Removes everything this process created. Idempotent; safe from any thread.
pub fn cleanup() {
    // Held throughout, so a Ctrl-C during the main thread's cleanup waits
    // for it instead of exiting half way.
    static RUNNING: Mutex<()> = Mutex::new(());
    let _guard = RUNNING.lock();
    let names: Vec<String> = match CREATED.lock() {
        Ok(mut v) => v.drain(..).collect(),
        Err(p) => p.into_inner().drain(..).collect(),
    };
    // Routers and client first: their veth peers live in the switch.
    for ns in names.iter().rev() {
        kill_and_delete(ns);
    }
    let dir = match TMPDIR.lock() {
        Ok(mut d) => d.take(),
        Err(p) => p.into_inner().take(),
    };
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Catches SIGINT/SIGTERM/SIGHUP on a dedicated thread that cleans up and
/// exits: a Ctrl-C at any point leaves no namespace behind. A handler (via
/// tokio), not a blocked mask + sigwait: the daemons we spawn would inherit
/// the mask and then ignore the SIGTERM of the graceful-stop measurement.
pub fn install_signal_cleanup() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let kinds = [
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::hangup(),
            ];
            let mut streams = Vec::new();
            for k in kinds {
                match signal(k) {
                    Ok(s) => streams.push(s),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
            }
            let _ = ready_tx.send(Ok(()));
            let [a, b, c] = &mut streams[..] else {
                return;
            };
            tokio::select! {
                _ = a.recv() => {}
                _ = b.recv() => {}
                _ = c.recv() => {}
            }
            eprintln!("\ninterrupted: removing the benchmark's namespaces");
            cleanup();
            std::process::exit(130);
        });
    });
    ready_rx
        .recv()
        .context("signal thread died")?
        .context("install signal handlers")
}

/// Namespaces left by earlier runs whose process is gone (a SIGKILLed run).
fn remove_stale() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for ns in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{PREFIX}-")))
    {
        let pid = ns.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            eprintln!("removing stale namespace {ns} of an earlier run");
            kill_and_delete(ns);
        }
    }
}

pub struct Lab {
    pub switch: String,
    pub routers: [String; 2],
    pub client: String,
    pub dir: PathBuf,
}

fn register(ns: &str) {
    match CREATED.lock() {
        Ok(mut v) => v.push(ns.to_string()),
        Err(p) => p.into_inner().push(ns.to_string()),
    }
}

/// Joins namespace `ns` to the switch's bridge as `eth0` with `addr`/24.
fn attach(sw: &str, ns: &str, port: &str, addr: Ipv4Addr) -> Result<()> {
    register(ns);
    must(&["ip", "netns", "add", ns])?;
    must(&[
        "ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    must(&["ip", "-n", sw, "link", "set", port, "master", "br0", "up"])?;
    let cidr = format!("{addr}/24");
    must(&["ip", "-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    must(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
    must(&["ip", "-n", ns, "link", "set", "lo", "up"])
}

impl Lab {
    pub fn new() -> Result<Lab> {
        remove_stale();
        let base = format!("{PREFIX}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("vrrp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("temp dir")?;
        if let Ok(mut d) = TMPDIR.lock() {
            *d = Some(dir.clone());
        }
        let lab = Lab {
            switch: format!("{base}-sw"),
            routers: [format!("{base}-r0"), format!("{base}-r1")],
            client: format!("{base}-cl"),
            dir,
        };
        let sw = &lab.switch;
        register(sw);
        must(&["ip", "netns", "add", sw])?;
        must(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])?;
        must(&["ip", "-n", sw, "link", "set", "br0", "up"])?;
        for (i, r) in lab.routers.iter().enumerate() {
            attach(sw, r, &format!("p{i}"), lab.router_addr(i))?;
        }
        attach(sw, &lab.client, "pc", CLIENT)?;
        Ok(lab)
    }

    pub fn router_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 79, 0, if i == 0 { 11 } else { 12 })
    }

    /// The MAC of `eth0` in namespace `ns`.
    pub fn mac(&self, ns: &str) -> Result<[u8; 6]> {
        let out = run(&["ip", "-n", ns, "-o", "link", "show", "eth0"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let word = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .context("no link/ether")?;
        let mut mac = [0u8; 6];
        for (b, part) in mac.iter_mut().zip(word.split(':')) {
            *b = u8::from_str_radix(part, 16).context("bad MAC")?;
        }
        Ok(mac)
    }

    /// Whether router `i` holds the VIP.
    pub fn has_vip(&self, i: usize) -> bool {
        run(&["ip", "-n", &self.routers[i], "-4", "-o", "addr", "show"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {VIP}/")))
            .unwrap_or(false)
    }

    /// Removes a VIP a killed daemon left behind, so the next repetition
    /// starts clean.
    pub fn drop_vip(&self, i: usize) {
        if self.has_vip(i) {
            let cidr = format!("{VIP}/24");
            let _ = run(&[
                "ip",
                "-n",
                &self.routers[i],
                "addr",
                "del",
                &cidr,
                "dev",
                "eth0",
            ]);
        }
    }

    /// Moves the calling thread into namespace `ns` (for sockets that must
    /// live there).
    pub fn enter(ns: &str) -> Result<()> {
        let f = File::open(format!("/run/netns/{ns}")).context("open netns")?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        cleanup();
    }
}
