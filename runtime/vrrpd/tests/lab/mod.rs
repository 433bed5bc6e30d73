//! Network-namespace labs for the daemon's tests.
//!
//! A lab is a "switch" namespace holding a bridge, plus N router
//! namespaces, each joined to the bridge by a veth pair (`eth0` inside the
//! router, addressed 10.77.0.(11+i)/24). Everything is created inside
//! namespaces this lab made: nothing touches the root namespace or a real
//! interface. Names carry the test name and pid so parallel tests and
//! parallel runs never collide; Drop removes it all, also on panic, and
//! `Lab::new` first removes labs of earlier runs whose process is gone.

#![allow(dead_code)] // each test binary uses a different part

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::Once;
use std::time::{Duration, Instant};

use hadeploy_config::vrrp::VrrpConfig;
use hadeploy_vrrpd::{StateName, Stats, VrrpdError};
use tokio::sync::{mpsc, oneshot};

/// Logs to the test's captured output; RUST_LOG=debug for packet drops.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Root and `ip` are needed; tests skip (pass, saying so) otherwise.
pub fn can_run() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    if !(root && ip) {
        eprintln!("SKIPPED: needs root and iproute2 to create network namespaces");
    }
    root && ip
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn command")
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

const PREFIX: &str = "vrd";

pub struct Lab {
    pub switch: String,
    pub routers: Vec<String>,
}

/// Namespace names of labs whose creating process is gone.
fn stale(test: &str) -> Vec<String> {
    let list = run(&["ip", "netns", "list"]);
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{PREFIX}-{test}-")))
        .filter(|n| {
            let pid = n.split('-').nth(2).and_then(|p| p.parse::<u32>().ok());
            pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        })
        .map(str::to_string)
        .collect()
}

fn kill_and_delete(ns: &str) {
    let pids = run(&["ip", "netns", "pids", ns]);
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = run(&["kill", "-9", pid]);
    }
    let _ = run(&["ip", "netns", "del", ns]);
}

impl Lab {
    /// `test` must be short and unique per test (it names namespaces).
    pub fn new(test: &str, n: usize) -> Lab {
        for ns in stale(test) {
            kill_and_delete(&ns);
        }
        let base = format!("{PREFIX}-{test}-{}", std::process::id());
        let mut lab = Lab {
            switch: format!("{base}-sw"),
            routers: Vec::new(),
        };
        must(&["ip", "netns", "add", &lab.switch]);
        let sw = lab.switch.clone();
        must(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..n {
            let r = format!("{base}-r{i}");
            must(&["ip", "netns", "add", &r]);
            lab.routers.push(r.clone());
            let port = format!("p{i}");
            must(&[
                "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &r,
            ]);
            must(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("{}/24", lab.addr(i));
            must(&["ip", "-n", &r, "addr", "add", &addr, "dev", "eth0"]);
            must(&["ip", "-n", &r, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &r, "link", "set", "lo", "up"]);
        }
        lab
    }

    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 11 + u8::try_from(i).expect("few routers"))
    }

    /// Runs a command inside router `i`'s namespace.
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.routers[i]];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Whether router `i` holds `vip` (no prefix) on any interface, as
    /// `ip -n NS addr` shows it.
    pub fn has_vip(&self, i: usize, vip: &str) -> bool {
        let out = run(&["ip", "-n", &self.routers[i], "-4", "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {vip}/"))
    }

    /// `ip -n NS addr show dev eth0` output, for assertion messages.
    pub fn addrs(&self, i: usize) -> String {
        let out = run(&[
            "ip",
            "-n",
            &self.routers[i],
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets router `i`'s switch port down/up: a cable pull seen by the router
    /// as carrier loss.
    pub fn cable(&self, i: usize, plugged: bool) {
        let port = format!("p{i}");
        must(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "set",
            &port,
            if plugged { "up" } else { "down" },
        ]);
    }

    /// Runs `f` on a new thread that lives in router `i`'s namespace.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.routers[i]);
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open netns");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for r in &self.routers {
            kill_and_delete(r);
        }
        kill_and_delete(&self.switch);
    }
}

/// The daemon running in-process inside a router namespace.
pub struct Node {
    pub stats: Stats,
    shutdown: Option<oneshot::Sender<()>>,
    reload: mpsc::Sender<VrrpConfig>,
    thread: Option<std::thread::JoinHandle<Result<(), VrrpdError>>>,
}

impl Node {
    pub fn start(lab: &Lab, i: usize, cfg: VrrpConfig) -> Node {
        init_tracing();
        let stats = Stats::new();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let st = stats.clone();
        let thread = lab.spawn_in(i, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(hadeploy_vrrpd::run(
                cfg,
                st,
                async {
                    let _ = stop_rx.await;
                },
                reload_rx,
            ))
        });
        Node {
            stats,
            shutdown: Some(stop_tx),
            reload: reload_tx,
            thread: Some(thread),
        }
    }

    pub fn state(&self, instance: &str) -> StateName {
        self.stats
            .status()
            .instances
            .get(instance)
            .map(|i| i.state)
            .unwrap_or_default()
    }

    pub fn reload(&self, cfg: VrrpConfig) {
        self.reload.try_send(cfg).expect("reload queued");
    }

    /// Graceful stop; returns what `run` returned.
    pub fn stop(mut self) -> Result<(), VrrpdError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), VrrpdError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().expect("daemon thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns the
/// time it took.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

/// Parses a vrrp.yaml text (same loader as production).
pub fn config(yaml: &str) -> VrrpConfig {
    let (cfg, _warnings) = hadeploy_config::parse_vrrp(yaml, std::path::Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("bad test config: {e:?}"));
    cfg
}

/// Sends raw IPv4 datagrams (our own IP header, so any TTL) out of router
/// `i`'s eth0: for hostile-packet tests.
pub fn send_raw(lab: &Lab, i: usize, dst: Ipv4Addr, datagrams: Vec<Vec<u8>>) {
    lab.spawn_in(i, move || {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let s =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).expect("raw socket");
        s.set_header_included_v4(true).expect("hdrincl");
        s.bind_device(Some(b"eth0")).expect("bind eth0");
        let to = SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        for d in datagrams {
            s.send_to(&d, &to).expect("send");
        }
    })
    .join()
    .expect("sender thread");
}

/// The MAC of router `i`'s eth0.
pub fn mac(lab: &Lab, i: usize) -> String {
    let out = run(&["ip", "-n", &lab.routers[i], "-o", "link", "show", "eth0"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Router `i`'s ARP entry for `ip` (`ip neigh show`), for GARP checks.
pub fn neigh(lab: &Lab, i: usize, ip: &str) -> String {
    let out = run(&["ip", "-n", &lab.routers[i], "neigh", "show", ip]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ICMP echo from namespace `i` to `dst`, one request every `interval`,
/// `count` of them (no ping binary needed): returns (sent, answered). A
/// reply counts if it comes before the next-but-two request goes out.
pub fn ping(lab: &Lab, i: usize, dst: Ipv4Addr, interval: Duration, count: u16) -> (u16, u16) {
    ping_in(lab.routers[i].clone(), dst, interval, count)
        .join()
        .expect("ping thread")
}

/// [`ping`] on its own thread in namespace `ns`, to run beside other work.
pub fn ping_in(
    ns: String,
    dst: Ipv4Addr,
    interval: Duration,
    count: u16,
) -> std::thread::JoinHandle<(u16, u16)> {
    std::thread::spawn(move || {
        let f = File::open(format!("/run/netns/{ns}")).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("icmp socket");
        s.set_read_timeout(Some(Duration::from_millis(2)))
            .expect("timeout");
        let to = SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        let id: u16 = (std::process::id() & 0xffff) as u16;
        let mut answered = std::collections::BTreeSet::new();
        let mut buf = [0u8; 1500];
        let start = Instant::now();
        for seq in 0..count {
            let mut pkt = vec![8u8, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(b"hadeploy-vrrpd-test");
            let sum = inet_checksum(&pkt);
            pkt[2..4].copy_from_slice(&sum.to_be_bytes());
            let _ = s.send_to(&pkt, &to);
            let next = start + interval * u32::from(seq + 1);
            while Instant::now() < next {
                if let Ok(n) = std::io::Read::read(&mut &s, &mut buf) {
                    let bytes = &buf[..n];
                    let ihl = usize::from(bytes.first().copied().unwrap_or(0) & 0x0f) * 4;
                    if bytes.len() >= ihl + 8
                        && bytes[ihl] == 0
                        && bytes[ihl + 4..ihl + 6] == id.to_be_bytes()
                    {
                        let rseq = u16::from_be_bytes([bytes[ihl + 6], bytes[ihl + 7]]);
                        if seq.saturating_sub(rseq) <= 2 {
                            answered.insert(rseq);
                        }
                    }
                }
            }
        }
        (count, u16::try_from(answered.len()).unwrap_or(u16::MAX))
    })
}

fn inet_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
        sum += w;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
