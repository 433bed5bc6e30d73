//! The `hadeploy` command line: exit codes, JSON output, generated docs.

use hadeploy_testkit::{run, stderr, stdout};

#[test]
fn check_accepts_the_shipped_inventories() {
    for inv in [
        "inventory/lab.yaml",
        "inventory/seed.yaml",
        "inventory/reference.yaml",
    ] {
        let o = run("hadeploy", &["check", inv]);
        assert!(o.status.success(), "{inv}: {}", stderr(&o));
        assert!(stdout(&o).contains(": ok:"), "{}", stdout(&o));
    }
}

#[test]
fn check_fails_with_located_error_and_exit_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "all:\n  hosts:\n    lb1: {address: 10.0.0.1/24, vrrp_priority: 300}\nclusters: {}\n",
    )
    .expect("write");
    let o = run("hadeploy", &["check", path.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("bad.yaml:3:33: error: all.hosts.lb1.vrrp_priority: vrrp_priority must be 1..255, not 300"),
        "{err}"
    );
}

#[test]
fn check_json_lists_diagnostics() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "al:\n  hosts: {}\n").expect("write");
    let o = run(
        "hadeploy",
        &["--json", "check", path.to_str().expect("utf8")],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("\"ok\": false"), "{out}");
    assert!(
        out.contains("unknown key `al` (did you mean `all`?)"),
        "{out}"
    );
    assert!(out.contains("\"line\": 1"), "{out}");
}

/// An unreadable inventory is named once with its OS error once (issue 10:
/// `cannot read: ... (os error 2): ... (os error 2)`).
#[test]
fn unreadable_inventory_names_path_and_error_once() {
    for sub in ["check", "apply", "render"] {
        let o = run("hadeploy", &[sub, "/nonexistent/inventory.yaml"]);
        assert_eq!(o.status.code(), Some(1), "{sub}");
        let err = stderr(&o);
        assert_eq!(
            err.matches("/nonexistent/inventory.yaml").count(),
            1,
            "{sub}: {err}"
        );
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{sub}: {err}"
        );
    }
}

#[test]
fn usage_error_exits_2() {
    let o = run("hadeploy", &["check"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn render_out_writes_trees_and_show_masks_secrets() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().to_str().expect("utf8");
    let o = run("hadeploy", &["render", "inventory/seed.yaml", "--out", out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("lb1/etc/hadeploy/vrrp.yaml").exists());
    assert!(
        dir.path()
            .join("lb2/etc/systemd/system/hadeploy-proxy.service")
            .exists()
    );
    // The plan listing never shows the secret.
    assert!(!stdout(&o).contains("changeme"));
    let o = run(
        "hadeploy",
        &[
            "render",
            "inventory/seed.yaml",
            "--host",
            "lb1",
            "--show",
            "/etc/hadeploy/vrrp.yaml",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("auth_pass: \"****\""), "{}", stdout(&o));
    assert!(!stdout(&o).contains("changeme"));
}

/// The hash of a secret file is a way to test guesses of a short password
/// offline: neither the listing nor `--json` prints it (issue 10).
#[test]
fn render_never_prints_the_hash_of_a_secret_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().to_str().expect("utf8");
    let o = run("hadeploy", &["render", "inventory/seed.yaml", "--out", out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let secret = std::fs::read(dir.path().join("lb1/etc/hadeploy/vrrp.yaml")).expect("vrrp.yaml");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&secret))
    };
    let listing = stdout(&o);
    assert!(
        listing.contains("/etc/hadeploy/vrrp.yaml (secret)"),
        "{listing}"
    );
    assert!(!listing.contains(&hash[..12]), "{listing}");
    let o = run("hadeploy", &["--json", "render", "inventory/seed.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = stdout(&o);
    assert!(!json.contains(&hash), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let f = v[0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "/etc/hadeploy/vrrp.yaml")
        .expect("vrrp.yaml listed");
    assert_eq!(f["secret"], true);
    assert!(f["sha256"].is_null(), "{f}");
    // A file that is not secret still shows its hash.
    assert!(v[0]["files"][0]["sha256"].is_string() || v[0]["files"][1]["sha256"].is_string());
}

/// `render --json` carries what scripts need from the resolved model (the
/// bench reads it instead of the inventory YAML), and never the VRRP
/// password the typed config holds.
#[test]
fn render_json_summarizes_each_node_without_secrets() {
    let o = run("hadeploy", &["--json", "render", "inventory/seed.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = stdout(&o);
    assert!(!json.contains("changeme"), "{json}");
    assert!(!json.contains("auth_pass"), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let node = |h: &str| {
        v.as_array()
            .expect("array")
            .iter()
            .find(|n| n["host"] == h)
            .unwrap_or_else(|| panic!("{h} in {json}"))
    };
    for (host, priority) in [("lb1", 100), ("lb2", 90)] {
        let s = &node(host)["summary"];
        let i = &s["instances"][0];
        assert_eq!(i["name"], "VI_1", "{s}");
        assert_eq!(i["virtual_router_id"], 66, "{s}");
        assert_eq!(i["version"], 2, "{s}");
        assert_eq!(i["priority"], priority, "{s}");
        assert_eq!(
            i["addresses"],
            serde_json::json!(["192.168.10.100/24"]),
            "{s}"
        );
        let servers = &s["upstreams"]["backend"]["servers"];
        assert_eq!(servers[0]["address"], "192.168.10.1:8080", "{s}");
        assert_eq!(servers[0]["weight"], 5, "{s}");
        assert_eq!(servers[1]["address"], "192.168.10.2:8080", "{s}");
        assert_eq!(servers[1]["weight"], 1, "{s}");
    }
}

#[test]
fn render_unknown_host_fails() {
    let o = run(
        "hadeploy",
        &["render", "inventory/seed.yaml", "--host", "nope"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--host nope: no such host"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn completions_and_man_page_are_generated() {
    let o = run("hadeploy", &["completions", "bash"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("_hadeploy"));
    let o = run("hadeploy", &["man"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains(".TH hadeploy"), "{}", stdout(&o));
}

#[test]
fn version_flag() {
    let o = run("hadeploy", &["--version"]);
    assert!(stdout(&o).starts_with("hadeploy "));
}
