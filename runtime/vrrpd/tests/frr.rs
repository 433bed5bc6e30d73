//! The daemon against FRR's vrrpd (FRR 8.4, Debian's `frr` package) in
//! network namespaces (root only: `#[ignore = "needs root: ..."]`; FRR is
//! installed by .ci/setup-test, and missing it fails the test). FRR
//! runs with its own config directory, pid files and vty sockets in a
//! temporary directory of the test; nothing of a system FRR is touched.
//!
//! FRR checksums VRRPv3 over IPv4 with the pseudo-header and drops the
//! other form: with `v3_checksum: vrrp_only` it never hears us, and both
//! routers are MASTER (issue 10). These tests show both settings, and that
//! the form FRR sends is exported per peer.

mod lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hadeploy_vrrpd::VrrpState;
use lab::{Lab, Node, config, wait_for};

const VIP: &str = "10.77.0.100";
const ZEBRA: &str = "/usr/lib/frr/zebra";
const VRRPD: &str = "/usr/lib/frr/vrrpd";

/// FRR missing is a failure with the install hint, not a skip.
fn require_frr() {
    hadeploy_testkit::require_tool(ZEBRA, "frr");
    hadeploy_testkit::require_tool(VRRPD, "frr");
}

/// zebra + vrrpd of one namespace, stopped (by their pid files) on drop.
struct Frr {
    dir: PathBuf,
    ns: String,
}

impl Frr {
    /// FRR's vrrpd in router `i`: VRID 51, v3, 100 ms, priority `prio`.
    fn start(lab: &Lab, i: usize, prio: u8) -> Frr {
        // Named after the router's namespace: unique per test and run.
        let dir = std::env::temp_dir().join(format!("frr-{}", lab.ns(i)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("frr dir");
        // FRR drops to its own user (root is not in its vty group): the
        // directory is theirs. Never /etc/frr or /run/frr.
        let st = Command::new("chown")
            .args(["frr:frr", &dir.display().to_string()])
            .status()
            .expect("chown");
        assert!(st.success(), "chown frr:frr {}", dir.display());
        // FRR's vrrpd needs a macvlan with the virtual MAC, holding the VIP.
        let ns = lab.ns(i).to_string();
        for args in [
            vec![
                "link",
                "add",
                "vrrp4-2-51",
                "link",
                "eth0",
                "type",
                "macvlan",
                "mode",
                "bridge",
            ],
            vec![
                "link",
                "set",
                "dev",
                "vrrp4-2-51",
                "address",
                "00:00:5e:00:01:33",
            ],
            vec!["addr", "add", &format!("{VIP}/24"), "dev", "vrrp4-2-51"],
            vec!["link", "set", "dev", "vrrp4-2-51", "up"],
        ] {
            let mut full = vec!["-n", ns.as_str()];
            full.extend(args.iter().copied());
            let st = Command::new("ip").args(&full).status().expect("ip");
            assert!(st.success(), "ip {full:?}");
        }
        std::fs::write(dir.join("zebra.conf"), "hostname frr-zebra\n").expect("conf");
        std::fs::write(
            dir.join("vrrpd.conf"),
            format!(
                "hostname frr-vrrpd\ninterface eth0\n vrrp 51 version 3\n vrrp 51 priority {prio}\n \
                 vrrp 51 advertisement-interval 100\n vrrp 51 ip {VIP}\n"
            ),
        )
        .expect("conf");
        let zsock = dir.join("zserv.api");
        for (bin, name) in [(ZEBRA, "zebra"), (VRRPD, "vrrpd")] {
            let d = |f: &str| dir.join(f).display().to_string();
            let st = Command::new("ip")
                .args(["netns", "exec", &ns, bin, "-d"])
                .args(["-f", &d(&format!("{name}.conf"))])
                .args(["-i", &d(&format!("{name}.pid"))])
                .args(["-z", &zsock.display().to_string()])
                .args(["--vty_socket", &dir.display().to_string()])
                .args(["-P", "0", "-u", "frr", "-g", "frr"])
                .args(["--log", &format!("file:{}", d(&format!("{name}.log")))])
                .status()
                .expect("start FRR");
            assert!(
                st.success(),
                "{bin} did not start; logs in {}",
                dir.display()
            );
            if name == "zebra" {
                wait_for(Duration::from_secs(5), "zebra's socket", || zsock.exists());
            }
        }
        Frr { dir, ns }
    }

    /// `show vrrp` through FRR's own vtysh and vty sockets.
    fn show(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", "show vrrp"])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for name in ["vrrpd", "zebra"] {
            let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ours(node: &str, prio: u8, frr: std::net::Ipv4Addr, extra: &str) -> String {
    format!(
        "node: {node}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    version: 3
    priority: {prio}
    advert_interval: 100ms
    peers: [{frr}]
    virtual_ipaddress:
      - address: {VIP}/24
{extra}"
    )
}

/// FRR's adverts accepted, and counted, by our daemon.
fn frr_adverts(n: &Node, frr: std::net::Ipv4Addr) -> u64 {
    n.stats
        .status()
        .instances
        .get("VI_1")
        .and_then(|i| i.peers.get(&frr).map(|p| p.adverts))
        .unwrap_or(0)
}

/// Default (pseudo-header): one master (us, 150), FRR backup (100), and
/// the form FRR sends is exported.
#[test]
#[ignore = "needs root: network namespaces (and FRR, from .ci/setup-test)"]
fn frr_backup_hears_our_pseudo_header_adverts() {
    require_frr();
    let lab = Lab::new("frrok", 2);
    let frr_addr = lab.addr(1);
    let frr = Frr::start(&lab, 1, 100);
    let a = Node::start(&lab, 0, config(&ours("a", 150, frr_addr, "")));
    wait_for(Duration::from_secs(5), "a master", || {
        a.state("VI_1") == VrrpState::Master
    });
    // FRR may have become master while we started; once it hears our 150
    // it steps down and stops advertising.
    std::thread::sleep(Duration::from_secs(2));
    let n = frr_adverts(&a, frr_addr);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        frr_adverts(&a, frr_addr),
        n,
        "FRR still advertising: it does not hear us; show vrrp:\n{}",
        frr.show()
    );
    assert_eq!(a.state("VI_1"), VrrpState::Master);
    let shown = frr.show();
    eprintln!("FRR adverts heard: {n}; FRR's show vrrp:\n{shown}");
    assert!(
        shown.is_empty() || shown.contains("Backup"),
        "FRR's view: {shown}"
    );
    if n > 0 {
        let st = a.stats.status();
        let p = &st.instances["VI_1"].peers[&frr_addr];
        assert_eq!(p.checksum.as_str(), "v3_pseudo_header", "{p:?}");
    }
}

/// `v3_checksum: vrrp_only` against FRR: FRR drops our adverts and is
/// MASTER too (what issue 10 found silent). Now the config check warns,
/// and our status shows FRR's form beside ours.
#[test]
#[ignore = "needs root: network namespaces (and FRR, from .ci/setup-test)"]
fn frr_drops_vrrp_only_adverts_and_the_mismatch_shows() {
    require_frr();
    let lab = Lab::new("frrbad", 2);
    let frr_addr = lab.addr(1);
    let text = ours("a", 150, frr_addr, "    v3_checksum: vrrp_only\n");
    let (_, warnings) =
        hadeploy_config::parse_vrrp(&text, Path::new("vrrp.yaml")).expect("valid config");
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "instances[0].v3_checksum" && w.message.contains("FRR")),
        "{warnings:?}"
    );
    let frr = Frr::start(&lab, 1, 100);
    let a = Node::start(&lab, 0, config(&text));
    wait_for(Duration::from_secs(5), "a master", || {
        a.state("VI_1") == VrrpState::Master
    });
    std::thread::sleep(Duration::from_secs(2));
    let n = frr_adverts(&a, frr_addr);
    std::thread::sleep(Duration::from_secs(1));
    let m = frr_adverts(&a, frr_addr);
    // FRR keeps advertising as MASTER (100 ms adverts: ~10 a second).
    eprintln!(
        "FRR adverts heard: {n} -> {m}; FRR's show vrrp:\n{}",
        frr.show()
    );
    assert!(
        m >= n + 5,
        "FRR stopped advertising ({n} -> {m}): {}",
        frr.show()
    );
    assert_eq!(a.state("VI_1"), VrrpState::Master, "both MASTER");
    let st = a.stats.status();
    let p = &st.instances["VI_1"].peers[&frr_addr];
    assert_eq!(p.checksum.as_str(), "v3_pseudo_header", "{p:?}");
    let metrics = a.stats.render_prometheus();
    assert!(
        metrics.contains(&format!(
            "hadeploy_vrrp_peer_adverts_total{{instance=\"VI_1\",peer=\"{frr_addr}\",checksum=\"v3_pseudo_header\"}}"
        )),
        "{metrics}"
    );
}
