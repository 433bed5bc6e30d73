//! `hadeploy uninstall`: stop and disable the units (the VRRP daemon sends
//! priority 0 and releases its VIPs on the way out), remove every file the
//! manifest lists, and confirm no VIP is left on the node.

use hadeploy_inventory::model::{Host, Inventory};

use crate::error::{DeployError, RunError, Step};
use crate::fanout::for_each_host;
use crate::recap::{HostOutcome, HostResult, Recap};
use crate::ssh::{self, ConnectOptions};

const UNINSTALL: &str = concat!(
    r#"
set -u
changed=0
for u in "#,
    hadeploy_config::vrrp_unit!(),
    " ",
    hadeploy_config::proxy_unit!(),
    r#"; do
  if systemctl is-enabled -q $u 2>/dev/null || systemctl is-active -q $u 2>/dev/null; then
    systemctl disable --now $u >/dev/null 2>&1 || { echo "cannot stop $u" >&2; exit 1; }
    changed=$((changed+1))
  fi
done
if command -v firewall-cmd >/dev/null 2>&1 && systemctl is-active -q firewalld 2>/dev/null; then
  firewall-cmd -q --permanent --remove-service=hadeploy 2>/dev/null && changed=$((changed+1))
fi
if [ -f "#,
    hadeploy_config::manifest!(),
    r#" ]; then
  while IFS= read -r f; do
    [ -n "$f" ] && [ -e "$f" ] && rm -f "$f" && changed=$((changed+1))
  done < "#,
    hadeploy_config::manifest!(),
    r#"
  rm -f "#,
    hadeploy_config::manifest!(),
    r#"
fi
rmdir "#,
    hadeploy_config::config_dir!(),
    r#" 2>/dev/null || true
systemctl daemon-reload
command -v firewall-cmd >/dev/null 2>&1 && systemctl is-active -q firewalld 2>/dev/null && firewall-cmd -q --reload
for vip in "$@"; do
  if ip -o -4 addr | awk '{print $4}' | grep -q "^$vip/"; then echo "VIP $vip is still configured" >&2; exit 2; fi
done
echo "changed=$changed"
"#
);

pub async fn uninstall(
    inv: &Inventory,
    limit: &[String],
    copts: ConnectOptions,
    forks: usize,
) -> Result<Recap, RunError> {
    let started = std::time::Instant::now();
    let results = for_each_host(inv, limit, forks, async |h: &Host| {
        let vips: Vec<String> = inv
            .lb_clusters(&h.name)
            .flat_map(|c| {
                c.vips
                    .iter()
                    .flat_map(|v| v.addresses.iter().map(|a| a.addr().to_string()))
            })
            .collect();
        let remote = ssh::connect(h, copts).await?;
        let refs: Vec<&str> = vips.iter().map(String::as_str).collect();
        let r = remote.sh_ok(Step::Uninstall, UNINSTALL, &refs, None).await;
        remote.close().await;
        let out = r?;
        let changed = out
            .lines()
            .find_map(|l| l.strip_prefix("changed="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Ok::<usize, DeployError>(changed)
    })
    .await?;
    let mut recap = Recap::default();
    for (h, r) in results {
        let mut hr = HostResult::new(&h.name);
        match r {
            Ok(c) => {
                hr.ok = 1;
                hr.changed = c;
            }
            Err(e) => hr.outcome = HostOutcome::from_error(&e),
        }
        recap.hosts.push(hr);
    }
    recap.elapsed_ms = started.elapsed().as_millis();
    Ok(recap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_removes_what_the_manifest_lists() {
        assert!(
            UNINSTALL
                .contains("if [ -f /etc/hadeploy/.manifest ]; then\n  while IFS= read -r f; do\n")
        );
        assert!(UNINSTALL.contains(
            "  done < /etc/hadeploy/.manifest\n  rm -f /etc/hadeploy/.manifest\nfi\nrmdir /etc/hadeploy 2>/dev/null || true\n"
        ));
    }
}
