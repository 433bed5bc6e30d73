//! Rendered trees of the shipped inventories: snapshots (insta), byte-for-
//! byte determinism, and the systemd 219 / hardened unit forms.

use std::path::{Path, PathBuf};

use hadeploy_inventory::facts::Facts;
use hadeploy_inventory::render::{self, NodeTree};

mod loadback;

fn inventory(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../inventory")
        .join(name)
}

fn render_assumed(name: &str) -> Vec<NodeTree> {
    let (inv, _) = hadeploy_inventory::load(&inventory(name)).expect("inventory loads");
    render::render_all(&inv, |h| (&h.assumed).into()).expect("renders")
}

fn flatten(trees: &[NodeTree]) -> String {
    let mut out = String::new();
    for t in trees {
        for f in &t.files {
            out.push_str(&format!(
                "===== {}:{} (mode {:04o}{}) =====\n{}",
                t.host,
                f.path,
                f.mode,
                if f.secret { ", secret" } else { "" },
                f.content
            ));
        }
    }
    out
}

#[test]
fn lab_tree_snapshot() {
    insta::assert_snapshot!("lab", flatten(&render_assumed("lab.yaml")));
}

#[test]
fn seed_tree_snapshot() {
    insta::assert_snapshot!("seed", flatten(&render_assumed("seed.yaml")));
}

/// Every shipped inventory (all of inventory/, so a new one is covered
/// without editing this list), under assumed and hardened facts: each
/// node's serialized configs load back to the typed values and pass the
/// runtime's validation.
#[test]
fn every_inventory_loads_back_equal() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("inventory/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    let hardened = Facts {
        os: "rocky:9".into(),
        systemd_version: 252,
        firewalld: true,
    };
    for path in names {
        let (inv, _) = hadeploy_inventory::load(&path).expect("inventory loads");
        for t in render::render_all(&inv, |h| (&h.assumed).into()).expect("renders") {
            loadback::assert_loads_back(&t);
        }
        for t in render::render_all(&inv, |_| hardened.clone()).expect("renders") {
            loadback::assert_loads_back(&t);
        }
    }
}

#[test]
fn render_is_byte_identical_across_runs() {
    for name in ["lab.yaml", "seed.yaml", "reference.yaml"] {
        let a = flatten(&render_assumed(name));
        let b = flatten(&render_assumed(name));
        assert_eq!(a, b, "{name} rendered differently twice");
    }
}

#[test]
fn reference_inventory_renders_every_node() {
    let trees = render_assumed("reference.yaml");
    let hosts: Vec<&str> = trees.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(hosts, ["edge1", "edge2", "int1", "int2", "web1", "web2"]);
}

fn unit(trees: &[NodeTree], host: &str, name: &str) -> String {
    let t = trees.iter().find(|t| t.host == host).expect("host");
    t.files
        .iter()
        .find(|f| f.path == format!("/etc/systemd/system/{name}"))
        .expect("unit")
        .content
        .clone()
}

/// Directives systemd 219 (CentOS 7) does not know: it ignores them with a
/// warning, so hardening silently disappears. notes/deploy.md lists them.
const NOT_IN_219: &[&str] = &[
    "AmbientCapabilities",
    "ReadWritePaths",
    "ProtectSystem=strict",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "StateDirectory",
    "LogsDirectory",
    "ConfigurationDirectory",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RestrictRealtime",
    "RestrictNamespaces",
    "=+",
];

#[test]
fn centos7_units_use_only_systemd_219_directives() {
    let trees = render_assumed("seed.yaml"); // assumed facts: CentOS 7
    for name in ["hadeploy-vrrp.service", "hadeploy-proxy.service"] {
        let text = unit(&trees, "lb1", name);
        for d in NOT_IN_219 {
            assert!(
                !text.lines().any(|l| !l.starts_with('#') && l.contains(d)),
                "{name} uses {d}, unknown to systemd 219:\n{text}"
            );
        }
        assert!(text.contains("ProtectSystem=full"), "{text}");
    }
}

#[test]
fn newer_systemd_gets_hardened_units() {
    let (inv, _) = hadeploy_inventory::load(&inventory("seed.yaml")).expect("loads");
    let facts = Facts {
        os: "rocky:9".into(),
        systemd_version: 252,
        firewalld: true,
    };
    let t = render::render(&inv, "lb1", &facts).expect("renders");
    let proxy = &t
        .files
        .iter()
        .find(|f| f.path.ends_with("hadeploy-proxy.service"))
        .expect("unit")
        .content;
    assert!(proxy.contains("ProtectSystem=strict"));
    assert!(proxy.contains("ReadWritePaths=/var/log/hadeploy"));
}

#[test]
fn firewalld_rules_only_where_firewalld_runs() {
    let trees = render_assumed("seed.yaml");
    let fw = trees[0]
        .files
        .iter()
        .find(|f| f.path == "/etc/firewalld/services/hadeploy.xml")
        .expect("firewalld service on CentOS 7");
    assert!(fw.content.contains(r#"<port protocol="tcp" port="80"/>"#));
    assert!(fw.content.contains(r#"<protocol value="vrrp"/>"#));
    let lab = render_assumed("lab.yaml"); // firewalld: false
    assert!(
        lab.iter()
            .all(|t| t.files.iter().all(|f| !f.path.contains("firewalld")))
    );
}

#[test]
fn secret_files_are_0600() {
    for t in render_assumed("seed.yaml") {
        let f = t
            .files
            .iter()
            .find(|f| f.path == "/etc/hadeploy/vrrp.yaml")
            .expect("vrrp");
        assert!(f.secret);
        assert_eq!(f.mode, 0o600);
    }
}

#[test]
fn written_trees_keep_secret_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = render_assumed("seed.yaml");
    render::write_trees(&trees, dir.path()).expect("write");
    let meta = std::fs::metadata(dir.path().join("lb1/etc/hadeploy/vrrp.yaml")).expect("file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let unit = std::fs::read_to_string(
        dir.path()
            .join("lb2/etc/systemd/system/hadeploy-vrrp.service"),
    )
    .expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/sbin/hadeploy-runtime vrrp"));
}

#[test]
fn seed_unicast_peers_are_the_other_load_balancer() {
    let trees = render_assumed("seed.yaml");
    let lb1 = trees[0].vrrp.as_ref().expect("vrrp");
    let u = lb1.instances[0].unicast.as_ref().expect("unicast");
    assert_eq!(u.src_ip.to_string(), "192.168.10.10");
    assert_eq!(
        u.peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["192.168.10.11"]
    );
}

/// Issue 10: the VRRP protocol thread runs SCHED_RR with locked memory, so
/// the unit must allow both (systemd 219 knows both limits) and must not
/// refuse realtime scheduling in its hardened form.
#[test]
fn vrrp_unit_allows_realtime_scheduling_in_both_forms() {
    let (inv, _) = hadeploy_inventory::load(&inventory("seed.yaml")).expect("loads");
    for facts in [
        Facts {
            os: "centos:7".into(),
            systemd_version: 219,
            firewalld: true,
        },
        Facts {
            os: "rocky:9".into(),
            systemd_version: 252,
            firewalld: true,
        },
    ] {
        let t = render::render(&inv, "lb1", &facts).expect("renders");
        let u = &t
            .files
            .iter()
            .find(|f| f.path.ends_with("hadeploy-vrrp.service"))
            .expect("unit")
            .content;
        let directives: Vec<&str> = u.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(directives.contains(&"LimitRTPRIO=99"), "{u}");
        assert!(directives.contains(&"LimitMEMLOCK=infinity"), "{u}");
        assert!(
            !directives.iter().any(|l| l.starts_with("RestrictRealtime")),
            "{u}"
        );
        let cfg = t.vrrp.as_ref().expect("vrrp");
        assert!(cfg.realtime.enabled && cfg.realtime.lock_memory);
    }
}

/// Issue 10: every load balancer accepts adverts only from the other load
/// balancers of the VIP group, in multicast mode as in unicast mode.
#[test]
fn vrrp_peers_are_the_other_load_balancers() {
    let trees = render_assumed("reference.yaml");
    let peers = |host: &str, vip: &str| -> Vec<String> {
        let t = trees.iter().find(|t| t.host == host).expect("host");
        let i = (t.vrrp.as_ref().expect("vrrp").instances.iter())
            .find(|i| i.name == vip)
            .expect("instance");
        assert!(!i.accept_any_peer);
        i.peers
            .as_ref()
            .expect("peers rendered")
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(peers("edge1", "VI_1"), ["192.168.10.11"]); // unicast cluster
    assert_eq!(peers("edge2", "VI_1"), ["192.168.10.10"]);
    assert_eq!(peers("int1", "INT_1"), ["192.168.20.11"]); // multicast cluster
    assert_eq!(peers("int2", "INT_1"), ["192.168.20.10"]);
}

/// Where the inventory was read from is not configuration: the same text
/// saved under another name and directory (a CI checkout, a copy) renders
/// byte-identical trees, so a re-apply from it changes nothing on any node.
#[test]
fn inventory_file_name_and_path_do_not_reach_the_nodes() {
    let tmp = tempfile::tempdir().expect("tmp");
    for name in ["lab.yaml", "seed.yaml", "reference.yaml"] {
        let text = std::fs::read_to_string(inventory(name)).expect("read");
        let a = tmp.path().join(format!("a-{name}"));
        let b_dir = tmp.path().join("checkout/inventories");
        std::fs::create_dir_all(&b_dir).expect("mkdir");
        let b = b_dir.join("production.yml");
        std::fs::write(&a, &text).expect("write");
        std::fs::write(&b, &text).expect("write");
        let render_from = |p: &Path| {
            let (inv, _) = hadeploy_inventory::load(p).expect("inventory loads");
            flatten(&render::render_all(&inv, |h| (&h.assumed).into()).expect("renders"))
        };
        let (ta, tb) = (render_from(&a), render_from(&b));
        assert_eq!(
            ta, tb,
            "{name}: the inventory's file name changed what nodes receive"
        );
        for needle in ["production.yml", "checkout"] {
            assert!(
                !tb.contains(needle),
                "{name}: {needle:?} from the inventory's path reached a rendered file"
            );
        }
    }
}
