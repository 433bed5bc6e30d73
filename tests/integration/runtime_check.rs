//! `hadeploy-runtime check` on what `hadeploy render` produced: the node's
//! own validator accepts every rendered config, and names file:line:col for
//! a broken one.

use hadeploy_testkit::{run, stderr, stdout};

#[test]
fn every_rendered_runtime_config_passes_runtime_check() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut checked = 0;
    for inv in [
        "inventory/lab.yaml",
        "inventory/seed.yaml",
        "inventory/reference.yaml",
    ] {
        let out = dir.path().join(inv.replace('/', "_"));
        let o = run(
            "hadeploy",
            &["render", inv, "--out", out.to_str().expect("utf8")],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        for host in std::fs::read_dir(&out).expect("out") {
            let etc = host.expect("entry").path().join("etc/hadeploy");
            for name in ["vrrp.yaml", "proxy.yaml"] {
                let f = etc.join(name);
                if f.exists() {
                    let o = run(
                        "hadeploy-runtime",
                        &["check", "--config", f.to_str().expect("utf8")],
                    );
                    assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
                    assert!(stdout(&o).contains("test is successful"));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 14, "only {checked} configs checked");
}

#[test]
fn runtime_check_reports_file_line_column() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("vrrp.yaml");
    std::fs::write(
        &f,
        "node: n\ninstances:\n  - name: V\n    interface: eth0\n    virtual_router_id: 0\n    version: 2\n    priority: 100\n    advert_interval: 1s\n    virtual_ipaddress: [{address: 10.0.0.9/24}]\n",
    )
    .expect("write");
    let o = run(
        "hadeploy-runtime",
        &["check", "--config", f.to_str().expect("utf8")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "vrrp.yaml:5:5: error: instances[0].virtual_router_id: virtual_router_id must be 1..255"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn runtime_check_rejects_unknown_keys_with_suggestion() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("proxy.yaml");
    std::fs::write(
        &f,
        "node: n\nsites:\n  - name: s\n    listen: [\"0.0.0.0:80\"]\n    rooot: /srv\n",
    )
    .expect("write");
    let o = run(
        "hadeploy-runtime",
        &["check", "--config", f.to_str().expect("utf8")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown key `rooot` (did you mean `root`?)"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("proxy.yaml:5:"), "{}", stderr(&o));
}
