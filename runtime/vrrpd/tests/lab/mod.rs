//! Network-namespace labs for the daemon's tests: the test kit's
//! [`hadeploy_testkit::netns::Lab`] (a switch namespace with a bridge, N
//! router namespaces joined to it, `eth0` inside each router addressed
//! 10.77.0.(11+i)/24; unique names, torn down on drop and on panic, nothing
//! in the root namespace), with the panicking, index-based calls these
//! tests use, and the daemon run in-process in a router.
//!
//! Every test that builds a lab needs root: it is
//! `#[ignore = "needs root: ..."]`, run by `.ci/test` with
//! `-- --include-ignored`.

#![allow(dead_code)] // each test binary uses a different part

use std::net::Ipv4Addr;
use std::process::Output;
use std::sync::Once;
use std::time::{Duration, Instant};

use hadeploy_config::vrrp::VrrpConfig;
use hadeploy_testkit::netns;
use hadeploy_vrrpd::{Stats, VrrpState, VrrpdError};
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

/// The routers' subnet, 10.77.0.0/24.
const NET: [u8; 3] = [10, 77, 0];

pub struct Lab(netns::Lab);

impl Lab {
    /// `test` must be short and unique per test (it names namespaces).
    pub fn new(test: &str, n: u8) -> Lab {
        Lab(netns::Lab::with_nodes(test, NET, n).unwrap_or_else(|e| panic!("lab {test}: {e}")))
    }

    /// Router `i`'s namespace name.
    pub fn ns(&self, i: usize) -> &str {
        self.0.nodes[i].name()
    }

    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.0.addr(i)
    }

    /// Runs a command inside router `i`'s namespace.
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        self.0.nodes[i].exec(args).expect("ip netns exec")
    }

    /// Whether router `i` holds `vip` (no prefix) on any interface.
    pub fn has_vip(&self, i: usize, vip: &str) -> bool {
        self.0.nodes[i].has_addr(vip.parse().expect("an IPv4 VIP"))
    }

    /// `ip -n NS addr show dev eth0` output, for assertion messages.
    pub fn addrs(&self, i: usize) -> String {
        let out = self.0.nodes[i]
            .ip_output(&["-4", "-o", "addr", "show", "dev", "eth0"])
            .expect("ip addr");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets router `i`'s switch port down/up: a cable pull seen by the router
    /// as carrier loss.
    pub fn cable(&self, i: usize, plugged: bool) {
        self.0.cable(i, plugged).expect("cable");
    }

    /// Runs `f` on a new thread that lives in router `i`'s namespace.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        self.0.nodes[i].spawn_in(f)
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

    pub fn state(&self, instance: &str) -> VrrpState {
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

/// The MAC of router `i`'s eth0, as `ip neigh` prints it.
pub fn mac(lab: &Lab, i: usize) -> String {
    let m = lab.0.nodes[i].mac().expect("mac");
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Router `i`'s ARP entry for `ip` (`ip neigh show`), for GARP checks.
pub fn neigh(lab: &Lab, i: usize, ip: &str) -> String {
    let out = lab.0.nodes[i]
        .ip_output(&["neigh", "show", ip])
        .expect("ip neigh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ICMP echo from namespace `i` to `dst`, one request every `interval`,
/// `count` of them (no ping binary needed): returns (sent, answered). A
/// reply counts if it comes before the next-but-two request goes out.
pub fn ping(lab: &Lab, i: usize, dst: Ipv4Addr, interval: Duration, count: u16) -> (u16, u16) {
    ping_in(lab.ns(i).to_string(), dst, interval, count)
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
        netns::enter(&ns).expect("enter netns");
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
