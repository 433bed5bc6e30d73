//! A real lab: bring-up, strict SSH, boot state, node-to-node traffic, failure primitives,
//! client namespace, idempotence and a complete tear-down, twice. Root only: the tests are
//! `#[ignore = "needs root: ..."]`, run by .ci/test as root with `-- --include-ignored`.
//!
//! Uses its own lab name so it never collides with the default `hd` lab.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hadeploy_lab::{LabGuard, LabSpec, bridge_name, client_netns_name, down_dir};

const NAME: &str = "hdt";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ssh(cfg: &Path, node: &str, cmd: &str) -> (bool, String) {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(cfg)
        .args([node, "--", cmd])
        .output()
        .expect("ssh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Nothing of lab `NAME` is left on the host.
fn assert_gone(state_dir: &Path) {
    let bridges = sh("ip -br link show type bridge");
    assert!(
        !bridges.contains(&bridge_name(NAME)),
        "bridge left: {bridges}"
    );
    let links = sh("ip -br link");
    assert!(
        !links.contains(&format!("vb-{NAME}-")),
        "host links left: {links}"
    );
    assert!(
        !links.contains(&format!("vc-{NAME}")),
        "client link left: {links}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&*state_dir.to_string_lossy()),
        "mounts left"
    );
    let netns = sh("ip netns list");
    assert!(
        !netns.contains(&client_netns_name(NAME)),
        "netns left: {netns}"
    );
    // Zombies (PID 1 here reaps orphans lazily) have an empty cmdline: not matched.
    let procs = sh("pgrep -a -x systemd-nspawn || true");
    let ours: Vec<&str> = procs
        .lines()
        .filter(|l| l.contains(&format!("{NAME}-")))
        .collect();
    assert!(ours.is_empty(), "containers left: {ours:?}");
    assert!(!state_dir.exists(), "state dir left");
    for h in ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"] {
        let dir = Path::new(h).join(hadeploy_lab::LAB_CGROUP);
        let ours: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{NAME}-")))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            ours.is_empty(),
            "cgroups left in {}: {ours:?}",
            dir.display()
        );
    }
}

#[test]
#[ignore = "needs root: boots a systemd-nspawn lab"]
fn lab_up_ssh_ping_failures_and_down() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
    hadeploy_testkit::require_root();
    let spec = LabSpec::new(NAME);
    let state_dir = spec.state_dir.clone();
    // A crashed earlier run may have left things behind.
    down_dir(NAME, &state_dir).expect("pre-clean");

    let cold = !hadeploy_lab::rootfs_ready(&spec.cache_dir);
    let t = Instant::now();
    hadeploy_lab::ensure_rootfs(&spec.cache_dir).expect("rootfs");
    eprintln!(
        "TIMING rootfs ({}) {:.1} s",
        if cold { "cold build" } else { "cached" },
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let lab = LabGuard::up(&spec).expect("lab up");
    eprintln!(
        "TIMING up (rootfs cached) {:.1} s",
        t.elapsed().as_secs_f64()
    );

    assert_eq!(lab.nodes.len(), 4);
    assert_eq!(lab.lbs().count(), 2);
    assert_eq!(lab.backends().count(), 2);
    let lab_json = state_dir.join(hadeploy_lab::LAB_JSON);
    assert_eq!(hadeploy_lab::Lab::load(&state_dir).expect("lab.json"), *lab);
    assert!(lab_json.exists());
    let vip = lab.vip().expect("a VIP reserved");
    assert_eq!(vip.octets()[3], 100);

    // Strict host keys: every node answers through the lab's ssh_config...
    for n in &lab.nodes {
        let (ok, state) = ssh(&lab.ssh_config, &n.name, "systemctl is-system-running");
        assert!(ok, "{}: system state {state}", n.name);
        assert_eq!(state, "running", "{}", n.name);
        let (_, host) = ssh(&lab.ssh_config, &n.name, "hostname");
        assert_eq!(host, n.name);
        // Installed for comparisons, not started at boot.
        let (_, active) = ssh(
            &lab.ssh_config,
            &n.name,
            "systemctl is-active nginx keepalived",
        );
        assert_eq!(active, "inactive\ninactive", "{}", n.name);
    }
    // ...and the same node is refused when its key is not in known_hosts (no TOFU).
    let first = &lab.nodes[0];
    let refused = Command::new("ssh")
        .arg("-F")
        .arg(&lab.ssh_config)
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ControlPath=none",
        ])
        .args([&first.name, "true"])
        .output()
        .expect("ssh");
    assert!(
        !refused.status.success(),
        "ssh accepted an unknown host key"
    );

    // Node to node over the bridge.
    for a in &lab.nodes {
        for b in &lab.nodes {
            if a.name != b.name {
                lab.exec_ok(&a.name, &format!("ping -c1 -W2 {}", b.address))
                    .unwrap_or_else(|e| panic!("{} -> {}: {e}", a.name, b.name));
            }
        }
    }

    let t = Instant::now();
    for _ in 0..10 {
        lab.exec_ok(&lab.nodes[0].name, "true").expect("exec");
    }
    eprintln!(
        "TIMING exec (ssh over the master connection) {:.0} ms",
        t.elapsed().as_millis() as f64 / 10.0
    );

    // Each container has a cgroup tree of its own (no host systemd here): the same unit
    // on two nodes is two cgroups, each listing its own node's process only. Shared,
    // the second node read the first one's process as pid 0, and a unit could fail
    // 219/CGROUP when the other node's systemd removed the cgroup it was spawned into.
    if !Path::new("/run/systemd/system").exists() {
        for n in &lab.nodes {
            let init = n.init_pid().expect("init pid");
            let cg = std::fs::read_to_string(format!("/proc/{init}/cgroup")).expect("cgroup");
            let own = format!("/{}/{}/payload/", hadeploy_lab::LAB_CGROUP, n.name);
            assert!(cg.contains(&own), "{}: init not in {own}:\n{cg}", n.name);
        }
        let probe = "systemd-run --quiet --unit=hdt-probe sleep 300";
        for n in &lab.nodes[..2] {
            lab.exec_ok(&n.name, probe).expect("start probe unit");
        }
        for n in &lab.nodes[..2] {
            let listed = lab
                .exec_ok(
                    &n.name,
                    "cat /sys/fs/cgroup/unified/system.slice/hdt-probe.service/cgroup.procs \
                     /sys/fs/cgroup/systemd/system.slice/hdt-probe.service/cgroup.procs \
                     2>/dev/null",
                )
                .expect("read the probe's cgroup");
            let pids: Vec<&str> = listed.split_whitespace().collect();
            assert!(!pids.is_empty(), "{}: probe cgroup empty", n.name);
            assert!(
                pids.iter().all(|p| *p != "0" && *p == pids[0]),
                "{}: the probe's cgroup lists another node's process: {pids:?}",
                n.name
            );
            lab.exec_ok(&n.name, "systemctl stop hdt-probe")
                .expect("stop probe");
        }
    }

    let status = lab.status();
    assert!(status.healthy(), "{status:?}");
    assert!(
        status
            .nodes
            .iter()
            .all(|n| n.link_up && n.init_pid.is_some())
    );

    // Idempotent: a second `up` of a healthy lab returns it as is.
    let t = Instant::now();
    let again = hadeploy_lab::up(&spec).expect("second up");
    assert_eq!(again, *lab);
    eprintln!("TIMING up (already up) {:.1} s", t.elapsed().as_secs_f64());

    // Cable pull and back.
    let (lb1, lb2) = (&lab.nodes[0], &lab.nodes[1]);
    lab.link_down(&lb2.name).expect("link down");
    let ping = lab
        .exec(&lb1.name, &format!("ping -c1 -W1 {}", lb2.address))
        .expect("exec");
    assert!(!ping.success(), "ping crossed a pulled cable");
    lab.link_up(&lb2.name).expect("link up");
    let back = (0..20).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        lab.exec(&lb1.name, &format!("ping -c1 -W1 {}", lb2.address))
            .is_ok_and(|o| o.success())
    });
    assert!(back, "no traffic after the cable was plugged back");

    // Power cut and power on (the node keeps its disk).
    let web2 = lab.nodes[3].name.clone();
    lab.exec_ok(&web2, "echo kept > /root/marker")
        .expect("write marker");
    let t = Instant::now();
    lab.kill_node(&web2).expect("kill");
    eprintln!("TIMING kill_node {:.2} s", t.elapsed().as_secs_f64());
    let st = lab.status();
    let w = st.nodes.iter().find(|n| n.name == web2).expect("node");
    assert!(!w.running && !w.ssh_reachable, "{w:?}");
    let t = Instant::now();
    lab.start_node(&web2).expect("start");
    eprintln!("TIMING start_node {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(
        lab.exec_ok(&web2, "cat /root/marker")
            .expect("marker")
            .trim(),
        "kept"
    );

    // A boot that ends degraded: a unit failing before its program ran (203/EXEC: the
    // program appears only later in the boot) is started again and the node comes up
    // `running`; a unit failing on its own is an error naming it, its result and its
    // journal.
    let web1 = lab.nodes[2].clone();
    lab.stop_node(&web1.name).expect("stop web1");
    let units = web1.root.join("etc/systemd/system");
    let wants = units.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants).expect("wants dir");
    let unit_files = [
        (
            "hdt-flaky.service",
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/run/hdt-flaky\n",
        ),
        (
            "hdt-maker.service",
            "[Unit]\nAfter=hdt-flaky.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
             ExecStart=/bin/sh -c 'printf \"#!/bin/sh\\nexit 0\\n\" > /run/hdt-flaky; \
             chmod +x /run/hdt-flaky'\n",
        ),
    ];
    for (name, text) in unit_files {
        std::fs::write(
            units.join(name),
            format!("{text}[Install]\nWantedBy=multi-user.target\n"),
        )
        .expect("write unit");
        std::os::unix::fs::symlink(units.join(name), wants.join(name)).expect("enable unit");
    }
    lab.start_node(&web1.name)
        .expect("a unit that failed before exec is started again");
    let (_, state) = ssh(&lab.ssh_config, &web1.name, "systemctl is-system-running");
    assert_eq!(state, "running");
    let (_, active) = ssh(&lab.ssh_config, &web1.name, "systemctl is-active hdt-flaky");
    assert_eq!(active, "active");

    lab.stop_node(&web1.name).expect("stop web1");
    std::fs::write(
        units.join("hdt-broken.service"),
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo broken on purpose; exit 3'\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .expect("write unit");
    std::os::unix::fs::symlink(
        units.join("hdt-broken.service"),
        wants.join("hdt-broken.service"),
    )
    .expect("enable unit");
    let err = lab
        .start_node(&web1.name)
        .expect_err("a unit failing on its own fails the boot");
    let msg = err.to_string();
    eprintln!("expected error: {msg}");
    assert!(
        msg.contains(&format!("node {}: boot ended degraded", web1.name)),
        "{msg}"
    );
    assert!(
        msg.contains("hdt-broken.service failed (result exit-code, status 3)"),
        "{msg}"
    );
    assert!(
        msg.contains("broken on purpose"),
        "journal excerpt missing: {msg}"
    );
    assert!(!msg.contains("hdt-flaky"), "{msg}");
    lab.kill_node(&web1.name).expect("kill web1");
    for name in [
        "hdt-flaky.service",
        "hdt-maker.service",
        "hdt-broken.service",
    ] {
        std::fs::remove_file(wants.join(name)).expect("disable unit");
        std::fs::remove_file(units.join(name)).expect("remove unit");
    }
    lab.start_node(&web1.name).expect("web1 back");

    // Client namespace on the bridge: it reads a node's SSH banner over TCP (the host
    // has no ping; bash's /dev/tcp needs nothing else).
    let client = lab.client_netns().expect("client netns");
    assert_eq!(client.address.octets()[3], 250);
    let probe = format!(
        "exec 3<>/dev/tcp/{}/22 && head -c 7 <&3",
        lab.nodes[0].address
    );
    let out = client
        .command("timeout")
        .args(["5", "bash", "-c", &probe])
        .output()
        .expect("probe from client");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "SSH-2.0",
        "client cannot reach {}: {}",
        lab.nodes[0].name,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.client_netns().is_ok(), "client_netns is idempotent");

    // A VIP can be claimed on a load balancer (CAP_NET_ADMIN in the container) and is
    // reachable from the other nodes.
    let lb1_name = lab.nodes[0].name.clone();
    lab.exec_ok(&lb1_name, &format!("ip addr add {vip}/24 dev host0"))
        .expect("add VIP");
    lab.exec_ok(&lab.nodes[2].name, &format!("ping -c1 -W2 {vip}"))
        .expect("VIP reachable from a backend");
    lab.exec_ok(&lb1_name, &format!("ip addr del {vip}/24 dev host0"))
        .expect("remove VIP");

    // Tear-down finds everything even without the lab's records (as after a crash):
    // processes from /proc, links from `ip link`, mounts from the mount table.
    std::fs::remove_file(&lab_json).expect("remove lab.json");
    for n in &lab.nodes {
        let _ = std::fs::remove_file(n.dir.join("nspawn.pid"));
    }
    let t = Instant::now();
    lab.down().expect("down");
    eprintln!("TIMING down {:.1} s", t.elapsed().as_secs_f64());
    assert_gone(&state_dir);
    down_dir(NAME, &state_dir).expect("second down");
    assert_gone(&state_dir);
    assert!(
        hadeploy_lab::rootfs_ready(&spec.cache_dir),
        "down must keep the cache"
    );
}

#[test]
#[ignore = "needs root: tears down (nonexistent) lab links and mounts"]
fn down_of_a_lab_that_never_existed_is_fine() {
    hadeploy_testkit::require_root();
    let dir = hadeploy_lab::default_state_dir("hdnone");
    down_dir("hdnone", &dir).expect("down of nothing");
    down_dir("hdnone", &dir).expect("down of nothing, twice");
}

#[test]
#[ignore = "needs root: boots a systemd-nspawn lab"]
fn boot_timeout_names_node_and_console_and_tears_down() {
    hadeploy_testkit::require_root();
    let spec = LabSpec {
        lbs: 1,
        backends: 0,
        // Already over when the first node is checked.
        boot_timeout: Duration::from_millis(1),
        ..LabSpec::new("hdf")
    };
    down_dir(&spec.name, &spec.state_dir).expect("pre-clean");
    // Should `up` wrongly succeed, the guard still removes the lab.
    let result = hadeploy_lab::up(&spec).map(LabGuard::new);
    let err = result.expect_err("a 1 ms boot cannot succeed");
    let msg = err.to_string();
    eprintln!("expected error: {msg}");
    assert!(msg.contains("node hdf-lb1"), "{msg}");
    assert!(
        msg.contains("/var/lib/hadeploy/lab/hdf/hdf-lb1/console.log"),
        "{msg}"
    );
    // A failed bring-up leaves nothing behind.
    assert!(!spec.state_dir.exists());
    assert!(!sh("ip -br link").contains("hdfbr0"));
    let procs = sh("pgrep -a -x systemd-nspawn || true");
    assert!(!procs.contains("hdf-lb1"), "{procs}");
}
