//! The `hadeploy` command line: exit codes, JSON output, generated docs.

use hadeploy_tests::{run, stderr, stdout};

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
