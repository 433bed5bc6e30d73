//! The comparison stack works in the lab: keepalived (installed, disabled at boot) on two
//! load balancers elects a master and moves the VIP after a power cut. This proves VRRP
//! multicast crosses the lab bridge and gives the reference failover time.

use std::time::{Duration, Instant};

use hadeploy_lab::{Lab, LabGuard, LabSpec, down_dir};

fn holds(lab: &Lab, node: &str, vip: &str) -> bool {
    lab.exec(node, "ip -4 -o addr show dev host0")
        .is_ok_and(|o| o.stdout.contains(&format!(" {vip}/")))
}

fn wait_holder(lab: &Lab, node: &str, vip: &str, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < within {
        if holds(lab, node, vip) {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
#[ignore = "needs root: boots a systemd-nspawn lab"]
fn keepalived_moves_the_vip_on_power_cut() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    hadeploy_testkit::require_root();
    let spec = LabSpec {
        lbs: 2,
        backends: 0,
        ..LabSpec::new("hdk")
    };
    down_dir(&spec.name, &spec.state_dir).expect("pre-clean");
    let lab = LabGuard::up(&spec).expect("lab up");
    let vip = lab.vip().expect("vip").to_string();
    for (i, n) in lab.lbs().enumerate() {
        let conf = format!(
            "vrrp_instance VI_1 {{\n  state BACKUP\n  interface host0\n  virtual_router_id 51\n  \
             priority {}\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}/24 dev host0\n  }}\n}}\n",
            150 - 50 * i
        );
        lab.exec_ok(
            &n.name,
            &format!(
                "cat > /etc/keepalived/keepalived.conf <<'EOF'\n{conf}EOF\nsystemctl start keepalived"
            ),
        )
        .expect("start keepalived");
    }
    let (lb1, lb2) = (lab.nodes[0].name.clone(), lab.nodes[1].name.clone());
    let elected = wait_holder(&lab, &lb1, &vip, Duration::from_secs(15));
    assert!(elected.is_some(), "{lb1} never became master");
    assert!(!holds(&lab, &lb2, &vip), "both nodes hold the VIP");

    let t = Instant::now();
    lab.kill_node(&lb1).expect("power cut");
    let moved = wait_holder(&lab, &lb2, &vip, Duration::from_secs(15));
    assert!(moved.is_some(), "VIP did not move to {lb2}");
    eprintln!(
        "TIMING keepalived VIP on {lb2} {:.1} s after the power cut (advert_int 1)",
        t.elapsed().as_secs_f64()
    );
    lab.down().expect("down");
}
