//! The benchmark's private network, built by the test kit's netns harness
//! (`hadeploy_testkit::netns`): a "switch" namespace holding a bridge, two
//! router namespaces and one client namespace, each joined to the bridge by
//! a veth pair created inside the switch namespace. Nothing is created in
//! (or sent into) the root namespace.
//!
//! The kit registers every namespace before it creates it, so `cleanup`
//! (run by `Lab`'s Drop, by the signal thread on Ctrl-C, and by the kit at
//! the next start for namespaces of a dead run) kills whatever runs inside
//! and deletes it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use hadeploy_testkit::netns;

pub use netns::pids;

pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 100);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
const NET: [u8; 3] = [10, 79, 0];

/// The temp dir this process created and has not removed yet.
static TMPDIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes everything this process created. Idempotent; safe from any thread.
pub fn cleanup() {
    netns::cleanup();
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

pub struct Lab {
    net: netns::Lab,
    pub routers: [String; 2],
    pub client: String,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new() -> Result<Lab> {
        let dir = std::env::temp_dir().join(format!("vrrp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("temp dir")?;
        if let Ok(mut d) = TMPDIR.lock() {
            *d = Some(dir.clone());
        }
        let mut net = netns::Lab::new("bench", NET)?;
        let r0 = net.attach("r0", 11)?;
        let r1 = net.attach("r1", 12)?;
        let cl = net.attach("cl", CLIENT.octets()[3])?;
        let name = |i: usize| net.nodes[i].name().to_string();
        Ok(Lab {
            routers: [name(r0), name(r1)],
            client: name(cl),
            dir,
            net,
        })
    }

    pub fn router_addr(&self, i: usize) -> Ipv4Addr {
        self.net.addr(i)
    }

    fn node(&self, ns: &str) -> Result<&netns::Netns> {
        self.net
            .nodes
            .iter()
            .find(|n| n.name() == ns)
            .with_context(|| format!("no namespace {ns} in the lab"))
    }

    /// The MAC of `eth0` in namespace `ns`.
    pub fn mac(&self, ns: &str) -> Result<[u8; 6]> {
        Ok(self.node(ns)?.mac()?)
    }

    /// Whether router `i` holds the VIP.
    pub fn has_vip(&self, i: usize) -> bool {
        self.net.nodes[i].has_addr(VIP)
    }

    /// Removes a VIP a killed daemon left behind, so the next repetition
    /// starts clean.
    pub fn drop_vip(&self, i: usize) {
        if self.has_vip(i) {
            let cidr = format!("{VIP}/24");
            let _ = self.net.nodes[i].ip(&["addr", "del", &cidr, "dev", "eth0"]);
        }
    }

    /// Moves the calling thread into namespace `ns` (for sockets that must
    /// live there).
    pub fn enter(ns: &str) -> Result<()> {
        Ok(netns::enter(ns)?)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        cleanup();
    }
}
