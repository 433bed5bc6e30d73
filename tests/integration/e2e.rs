//! The README's first command as a test, on a lab of its own: bring the lab
//! up, apply, re-apply (0 changed), status, test-failover (every step
//! passes), uninstall, tear down. Needs root (`#[ignore = "needs root: ..."]`,
//! run by .ci/test with `-- --include-ignored`) and the static runtime
//! (`.ci/test` builds it first).

use hadeploy_lab::inventory::{INVENTORY_YAML, LabVrrp, inventory_yaml};
use hadeploy_lab::{LabGuard, LabSpec};
use hadeploy_testkit::{run, runtime_path, stderr, stdout};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

#[test]
#[ignore = "needs root: boots a systemd-nspawn lab"]
fn lab_apply_reapply_failover_uninstall() {
    hadeploy_testkit::require_root();
    runtime_path(); // apply pushes it: missing or stale fails here, naming the build
    let lab = LabGuard::up(&LabSpec::new("hde2e")).expect("lab up");
    let inv = lab.state_dir.join(INVENTORY_YAML);
    std::fs::write(
        &inv,
        inventory_yaml(&lab, &LabVrrp::default()).expect("serializes"),
    )
    .expect("inventory");
    let inv = inv.to_str().expect("utf8");

    let o = run("hadeploy", &["--json", "apply", inv]);
    assert!(
        o.status.success(),
        "apply failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let first = json(&o);
    let changed: u64 = first["recap"]["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["changed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        changed >= 20,
        "a cold apply installs files on 4 nodes: {first}"
    );
    // apply returned once the service is served: the VIP on lb1, the site
    // answering through it, and `status` says so at once.
    let served = &first["recap"]["served"][0];
    assert_eq!(served["ok"], true, "{first}");
    assert_eq!(served["holder"], "hde2e-lb1", "{served}");
    assert_eq!(served["sites"][0]["status"], 200, "{served}");
    eprintln!(
        "e2e: VIP served {} ms after the rolling apply (Master_Down_Interval {} ms)",
        served["elapsed_ms"], served["master_down_interval_ms"]
    );
    let o = run("hadeploy", &["status", inv]);
    assert!(
        o.status.success() && stdout(&o).contains(": hde2e-lb1\n"),
        "status right after the first apply: {}{}",
        stdout(&o),
        stderr(&o)
    );

    let o = run("hadeploy", &["--json", "apply", inv]);
    assert!(o.status.success(), "re-apply failed: {}", stderr(&o));
    let again = json(&o);
    for h in again["recap"]["hosts"].as_array().expect("hosts") {
        assert_eq!(h["changed"], 0, "re-apply changed something: {h}");
    }

    let o = run("hadeploy", &["--json", "test-failover", inv]);
    let report = json(&o);
    let rows = report["rows"].as_array().expect("rows");
    let table: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["step"], r["verdict"], r["outage_ms"], r["note"]
            )
        })
        .collect();
    assert!(
        o.status.success(),
        "test-failover failed:\n{}\n{}",
        table.join("\n"),
        stderr(&o)
    );
    assert_eq!(rows.len(), 8, "{}", table.join("\n"));
    assert!(
        rows.iter().all(|r| r["verdict"] == "PASS"),
        "{}",
        table.join("\n")
    );

    let o = run("hadeploy", &["status", inv]);
    assert!(
        o.status.success(),
        "status after failover: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("VIP 10.77."), "{}", stdout(&o));

    let o = run("hadeploy", &["uninstall", inv]);
    assert!(
        o.status.success(),
        "uninstall: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let left = lab
        .exec_ok("hde2e-lb1", "ls /etc/hadeploy /usr/local/sbin/hadeploy-runtime 2>&1; systemctl is-active hadeploy-vrrp || true")
        .expect("exec");
    assert!(
        left.contains("No such file") && left.contains("inactive"),
        "{left}"
    );
    lab.down().expect("down");
}
