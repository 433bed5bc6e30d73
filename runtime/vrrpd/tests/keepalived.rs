//! Interop with Debian's real keepalived as the peer, both roles, v2 and
//! v3 (root only: `#[ignore = "needs root: ..."]`; keepalived is installed by
//! .ci/setup-test, and missing it fails the test).

mod lab;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hadeploy_vrrp::Discard;
use hadeploy_vrrpd::VrrpState;
use lab::{Lab, Node, config, wait_for};

const KEEPALIVED: &str = "/usr/sbin/keepalived";
const VIP: &str = "10.77.0.100";

/// keepalived missing is a failure with the install hint, not a skip.
fn require_keepalived() {
    hadeploy_testkit::require_tool(KEEPALIVED, "keepalived");
}

/// keepalived running in a lab router, killed (and its files removed) on drop.
struct Keepalived {
    child: Child,
    dir: PathBuf,
}

impl Keepalived {
    fn start(
        lab: &Lab,
        i: usize,
        test: &str,
        version: u8,
        priority: u8,
        auth: Option<&str>,
    ) -> Keepalived {
        let dir = std::env::temp_dir().join(format!("vrrpd-ka-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let auth = auth
            .map(|p| {
                format!(
                    "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n"
                )
            })
            .unwrap_or_default();
        let conf = format!(
            "global_defs {{\n    router_id ka_{test}\n}}\n\
             vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
             version {version}\n    priority {priority}\n    advert_int 1\n{auth}    \
             virtual_ipaddress {{\n        {VIP}/24 dev eth0 label eth0:vip\n    }}\n}}\n"
        );
        let conf_path = dir.join("keepalived.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        let log = std::fs::File::create(dir.join("keepalived.log")).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                lab.ns(i),
                KEEPALIVED,
                // VRRP only (-P): no checker child, so no default checker
                // pid file that a system keepalived could hold.
                "-P",
                "-n",
                "-l",
                "-D",
                "-f",
            ])
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start keepalived");
        Keepalived { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }

    /// SIGTERM, as `systemctl stop` does, and wait for it to exit.
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        // `ip netns exec` execs keepalived, so the child pid is keepalived.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ours(node: &str, version: u8, priority: u8, auth: Option<&str>) -> String {
    let auth = auth
        .map(|p| format!("    auth_pass: {p}\n"))
        .unwrap_or_default();
    format!(
        "node: {node}
instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    version: {version}
    priority: {priority}
    advert_interval: 1s
    virtual_ipaddress:
      - address: {VIP}/24
        label: eth0:vip
{auth}"
    )
}

fn status(n: &Node) -> hadeploy_vrrpd::InstanceStatus {
    n.stats
        .status()
        .instances
        .get("VI_1")
        .cloned()
        .unwrap_or_default()
}

/// hadeploy master, keepalived backup; then hadeploy stops gracefully.
fn we_lead(test: &str, version: u8, auth: Option<&str>) {
    let lab = Lab::new(test, 2);
    let a = Node::start(&lab, 0, config(&ours("a", version, 150, auth)));
    wait_for(Duration::from_secs(6), "hadeploy master", || {
        a.state("VI_1") == VrrpState::Master
    });
    let mut ka = Keepalived::start(&lab, 1, test, version, 100, auth);
    wait_for(Duration::from_secs(5), "keepalived backup", || {
        ka.log().contains("Entering BACKUP STATE")
    });
    std::thread::sleep(Duration::from_secs(4)); // > keepalived's Master_Down_Interval
    assert!(
        !lab.has_vip(1, VIP),
        "keepalived took the VIP:\n{}",
        ka.log()
    );
    assert!(!ka.log().contains("Entering MASTER STATE"), "{}", ka.log());
    assert_eq!(a.state("VI_1"), VrrpState::Master);
    a.stop().expect("stop");
    let took = wait_for(Duration::from_secs(3), "VIP on keepalived", || {
        lab.has_vip(1, VIP)
    });
    assert!(
        took < Duration::from_millis(1500),
        "keepalived took over after {took:?}:\n{}",
        ka.log()
    );
    ka.stop();
}

/// keepalived master, hadeploy backup; then keepalived gets SIGTERM.
fn they_lead(test: &str, version: u8, auth: Option<&str>) {
    let lab = Lab::new(test, 2);
    let ka = Keepalived::start(&lab, 1, test, version, 150, auth);
    let mut ka = ka;
    wait_for(Duration::from_secs(8), "keepalived master", || {
        lab.has_vip(1, VIP)
    });
    let a = Node::start(&lab, 0, config(&ours("a", version, 100, auth)));
    wait_for(Duration::from_secs(4), "hadeploy hears keepalived", || {
        status(&a).adverts_received >= 2
    });
    let s = status(&a);
    assert_eq!(s.state, VrrpState::Backup, "{s:?}");
    assert_eq!(s.master_ip, Some(lab.addr(1)));
    assert_eq!(s.discarded(Discard::BadChecksum), 0, "{s:?}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        a.state("VI_1"),
        VrrpState::Backup,
        "hadeploy claimed:\n{}",
        ka.log()
    );
    assert!(!lab.has_vip(0, VIP));
    ka.stop();
    let took = wait_for(Duration::from_secs(3), "VIP on hadeploy", || {
        lab.has_vip(0, VIP)
    });
    assert!(
        took < Duration::from_millis(1500),
        "took over after {took:?}"
    );
    assert_eq!(a.state("VI_1"), VrrpState::Master);
}

#[test]
#[ignore = "needs root: network namespaces (and keepalived, from .ci/setup-test)"]
fn keepalived_backup_v3() {
    require_keepalived();
    we_lead("kabv3", 3, None);
}

#[test]
#[ignore = "needs root: network namespaces (and keepalived, from .ci/setup-test)"]
fn keepalived_master_v3() {
    require_keepalived();
    they_lead("kamv3", 3, None);
}

#[test]
#[ignore = "needs root: network namespaces (and keepalived, from .ci/setup-test)"]
fn keepalived_backup_v2_auth() {
    require_keepalived();
    we_lead("kabv2", 2, Some("s3cret"));
}

#[test]
#[ignore = "needs root: network namespaces (and keepalived, from .ci/setup-test)"]
fn keepalived_master_v2_auth() {
    require_keepalived();
    they_lead("kamv2", 2, Some("s3cret"));
}
