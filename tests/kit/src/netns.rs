//! The one network-namespace harness, for the daemon's tests, the wire
//! test and the VRRP benchmark.
//!
//! A [`Netns`] is one namespace this process made; a [`Lab`] is a "switch"
//! namespace holding a bridge plus member namespaces, each joined to the
//! bridge by a veth pair (`eth0` in the member, port `p<i>` in the switch).
//! Guarantees:
//! - Nothing touches the root namespace's interfaces: every link and
//!   address is made with `ip -n <ours>`, veths are born in the switch and
//!   their peer is created straight into the member.
//! - Unique names, `hdns-<pid>-<seq><label>-<member>`: the pid keeps parallel
//!   runs apart, the per-process sequence number parallel tests, the label
//!   says which test made it.
//! - Teardown: a namespace is registered before it is created. Drop (also
//!   while a panic unwinds) kills what runs inside and deletes it; [`cleanup`]
//!   does so for everything this process still holds (a signal handler's
//!   job); and the first namespace a process makes first removes those of
//!   runs whose process is gone (a SIGKILLed run).

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const PREFIX: &str = "hdns";

/// Namespaces this process created and has not removed yet.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "network namespaces need root: run as root (tests that build them are \
         #[ignore = \"needs root: ...\"], run with `-- --include-ignored`)"
    )]
    NotRoot,
    #[error("{cmd}: could not start: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("{ns}: no MAC address on eth0 in `ip link` output")]
    NoMac { ns: String },
    #[error("enter namespace {ns}: {source}")]
    Enter { ns: String, source: std::io::Error },
}

fn run(args: &[&str]) -> Result<Output, NetnsError> {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| NetnsError::Spawn {
            cmd: args.join(" "),
            source,
        })
}

fn must(args: &[&str]) -> Result<(), NetnsError> {
    let out = run(args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Failed {
            cmd: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn lock_created() -> std::sync::MutexGuard<'static, Vec<String>> {
    CREATED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pids of every process inside namespace `ns`.
pub fn pids(ns: &str) -> Vec<i32> {
    let Ok(out) = run(&["ip", "netns", "pids", ns]) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills what runs in `ns` (processes a test started there; never this
/// process) and deletes it.
fn kill_and_delete(ns: &str) {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    for pid in pids(ns).into_iter().filter(|p| *p != me) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = run(&["ip", "netns", "del", ns]);
}

/// Removes every namespace this process still holds. Idempotent, safe from
/// any thread: for a benchmark's signal handler. Tests rely on Drop (other
/// tests of the process hold labs too).
pub fn cleanup() {
    // Held throughout, so a signal during the main thread's cleanup waits
    // for it instead of exiting half way.
    static RUNNING: Mutex<()> = Mutex::new(());
    let _guard = RUNNING.lock();
    let names: Vec<String> = lock_created().drain(..).collect();
    // Members before the switch: their veth peers live in it.
    for ns in names.iter().rev() {
        kill_and_delete(ns);
    }
}

/// Removes namespaces of earlier runs whose process is gone; once per
/// process.
fn remove_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
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
                eprintln!("removing namespace {ns} of an earlier run");
                kill_and_delete(ns);
            }
        }
    });
}

/// A fresh name base `hdns-<pid>-<seq><label>`.
fn base(label: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}-{}-{seq}{label}", std::process::id())
}

/// One network namespace this process made; removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace named after `label` (short, no `-`), loopback up.
    pub fn new(label: &str) -> Result<Netns, NetnsError> {
        Netns::create(base(label))
    }

    fn create(name: String) -> Result<Netns, NetnsError> {
        if !crate::is_root() {
            return Err(NetnsError::NotRoot);
        }
        remove_stale();
        // Our pid in the name, yet not registered: left by an earlier
        // process that had the same pid.
        if std::path::Path::new("/run/netns").join(&name).exists() {
            kill_and_delete(&name);
        }
        lock_created().push(name.clone());
        let ns = Netns { name };
        must(&["ip", "netns", "add", &ns.name])?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <this> <args>`, failing unless it succeeds.
    pub fn ip(&self, args: &[&str]) -> Result<(), NetnsError> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        must(&full)
    }

    /// `ip -n <this> <args>` output, whatever its status.
    pub fn ip_output(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a command inside this namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// The MAC of `eth0` here.
    pub fn mac(&self) -> Result<[u8; 6], NetnsError> {
        let out = self.ip_output(&["-o", "link", "show", "eth0"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let no_mac = || NetnsError::NoMac {
            ns: self.name.clone(),
        };
        let word = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(no_mac)?;
        let mut mac = [0u8; 6];
        let mut parts = word.split(':');
        for b in &mut mac {
            let part = parts.next().ok_or_else(no_mac)?;
            *b = u8::from_str_radix(part, 16).map_err(|_| no_mac())?;
        }
        Ok(mac)
    }

    /// Whether `addr` (no prefix) is on any interface here.
    pub fn has_addr(&self, addr: Ipv4Addr) -> bool {
        self.ip_output(&["-4", "-o", "addr", "show"])
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")))
    }

    /// Runs `f` on a new thread that lives in this namespace.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name).expect("enter the lab's namespace");
            f()
        })
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_and_delete(&self.name);
        lock_created().retain(|n| *n != self.name);
    }
}

/// Moves the calling thread into namespace `ns` (for sockets that must
/// live there).
pub fn enter(ns: &str) -> Result<(), NetnsError> {
    let enter_err = |source| NetnsError::Enter {
        ns: ns.to_string(),
        source,
    };
    let f = File::open(format!("/run/netns/{ns}")).map_err(enter_err)?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| enter_err(std::io::Error::from(e)))
}

/// A switch namespace with a bridge, and members joined to it.
#[derive(Debug)]
pub struct Lab {
    pub switch: Netns,
    /// Member namespaces, in the order they were attached.
    pub nodes: Vec<Netns>,
    addrs: Vec<Ipv4Addr>,
    net: [u8; 3],
    base: String,
}

impl Lab {
    /// The switch alone, for members in `net`.0/24; `label` names it (short,
    /// unique per test, no `-`).
    pub fn new(label: &str, net: [u8; 3]) -> Result<Lab, NetnsError> {
        let base = base(label);
        let switch = Netns::create(format!("{base}-sw"))?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        Ok(Lab {
            switch,
            nodes: Vec::new(),
            addrs: Vec::new(),
            net,
            base,
        })
    }

    /// `n` members `r0..`, addressed `net`.(11 + i).
    pub fn with_nodes(label: &str, net: [u8; 3], n: u8) -> Result<Lab, NetnsError> {
        let mut lab = Lab::new(label, net)?;
        for i in 0..n {
            lab.attach(&format!("r{i}"), 11 + i)?;
        }
        Ok(lab)
    }

    /// Joins a new member `name` to the bridge as `eth0` with address
    /// `net`.`host`/24; returns its index.
    pub fn attach(&mut self, name: &str, host: u8) -> Result<usize, NetnsError> {
        let i = self.nodes.len();
        let ns = Netns::create(format!("{}-{name}", self.base))?;
        let addr = Ipv4Addr::new(self.net[0], self.net[1], self.net[2], host);
        let port = format!("p{i}");
        self.nodes.push(ns);
        let ns = &self.nodes[i];
        self.switch.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])?;
        self.switch
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        self.addrs.push(addr);
        Ok(i)
    }

    /// Member `i`'s address on eth0.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.addrs[i]
    }

    /// Sets member `i`'s switch port down or up: a cable pull the member
    /// sees as carrier loss.
    pub fn cable(&self, i: usize, plugged: bool) -> Result<(), NetnsError> {
        let port = format!("p{i}");
        self.switch
            .ip(&["link", "set", &port, if plugged { "up" } else { "down" }])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Members before the switch: their veth peers live in it.
        while let Some(ns) = self.nodes.pop() {
            drop(ns);
        }
    }
}
