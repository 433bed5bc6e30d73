//! What the VRRP daemon puts on the wire, as Wireshark's dissector sees it:
//! captured with tshark from the static runtime running in a network
//! namespace this test creates (a veth pair inside it; nothing leaves it).

use std::process::Command;

use hadeploy_testkit::netns::Netns;
use hadeploy_testkit::{runtime_path, stderr};

const CONFIG: &str = "\
node: wire
instances:
  - name: V2
    interface: d0
    virtual_router_id: 51
    version: 2
    priority: 200
    advert_interval: 1s
    auth_pass: \"secret\"
    virtual_ipaddress: [{address: 10.99.0.100/24}]
  - name: V3
    interface: d0
    virtual_router_id: 52
    version: 3
    priority: 200
    advert_interval: 100ms
    virtual_ipaddress: [{address: 10.99.0.101/24}]
  - name: V3RFC
    interface: d0
    virtual_router_id: 53
    version: 3
    priority: 200
    advert_interval: 100ms
    v3_checksum: vrrp_only
    virtual_ipaddress: [{address: 10.99.0.102/24}]
";

/// `vrid -> (count, all checksums good, all TTL 255)` from a capture.
fn dissect(pcap: &str, v3_as_v2: bool) -> std::collections::BTreeMap<u32, (usize, bool, bool)> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        pcap,
        "-Y",
        "vrrp",
        "-T",
        "fields",
        "-e",
        "vrrp.virt_rtr_id",
        "-e",
        "vrrp.checksum.status",
        "-e",
        "ip.ttl",
    ]);
    if v3_as_v2 {
        cmd.args(["-o", "vrrp.v3_checksum_as_in_v2:TRUE"]);
    }
    let o = cmd.output().expect("tshark is installed by .ci/setup-test");
    assert!(o.status.success(), "tshark: {}", stderr(&o));
    let mut m = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let vrid: u32 = f[0].parse().expect("vrid");
        let e = m.entry(vrid).or_insert((0, true, true));
        e.0 += 1;
        e.1 &= f[1] == "1"; // 1 = [Checksum Status: Good]
        e.2 &= f[2] == "255";
    }
    m
}

#[test]
#[ignore = "needs root: a network namespace for the daemon and tshark"]
fn adverts_dissect_as_valid_vrrp_with_correct_checksums() {
    let runtime = runtime_path();
    // Removed (and the daemon in it killed) even when an assertion fails.
    let ns = Netns::new("wire").unwrap_or_else(|e| panic!("{e}"));
    for args in [
        &["link", "add", "d0", "type", "veth", "peer", "name", "d1"][..],
        &["addr", "add", "10.99.0.1/24", "dev", "d0"],
        &["link", "set", "d0", "up"],
        &["link", "set", "d1", "up"],
    ] {
        ns.ip(args).unwrap_or_else(|e| panic!("{e}"));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("vrrp.yaml");
    std::fs::write(&cfg, CONFIG).expect("config");
    let pcap = dir.path().join("vrrp.pcap");
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(&runtime)
        .args(["vrrp", "--config", cfg.to_str().expect("utf8")])
        .spawn()
        .expect("runtime");
    // v2 at 1 s needs Master_Down_Interval (~3.2 s) before it advertises.
    // The window starts once tshark has opened its capture file: under load
    // its start alone can take seconds (a fixed `timeout 6` then captured
    // nothing and failed the test).
    let mut cap = Command::new("ip")
        .args(["netns", "exec", ns.name(), "tshark", "-Q", "-i", "d0", "-w"])
        .arg(&pcap)
        .spawn()
        .expect("tshark");
    let started = std::time::Instant::now();
    while !pcap.exists() && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(6));
    // Our own children, by pid.
    let _ = Command::new("kill")
        .args(["-INT", &cap.id().to_string()])
        .status();
    let cap = cap.wait().expect("tshark exits");
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    assert!(
        pcap.exists(),
        "tshark never opened {}: {cap:?}",
        pcap.display()
    );
    let pcap = pcap.to_str().expect("utf8");
    let default = dissect(pcap, false);
    let rfc = dissect(pcap, true);
    let (n2, good2, ttl2) = default.get(&51).copied().expect("VRRPv2 adverts captured");
    assert!(
        n2 >= 2 && good2 && ttl2,
        "v2: {n2} adverts, checksums good {good2}, ttl 255 {ttl2}"
    );
    // v3 with the IPv4 pseudo-header (keepalived 2.x): good by default.
    let (n3, good3, ttl3) = default.get(&52).copied().expect("VRRPv3 adverts captured");
    assert!(
        n3 >= 10 && good3 && ttl3,
        "v3: {n3} adverts, checksums good {good3}, ttl {ttl3}"
    );
    // v3 without it (RFC 9568): good only with v3_checksum_as_in_v2.
    let (n, good, _) = rfc.get(&53).copied().expect("RFC 9568 form captured");
    assert!(n >= 10 && good, "v3 vrrp_only: {n} adverts, good {good}");
    assert!(
        !default.get(&53).is_some_and(|x| x.1),
        "the RFC 9568 form must not pass as pseudo-header form"
    );
}
