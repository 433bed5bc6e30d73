//! `hadeploy status`: per node, its units, each VRRP instance's state, who
//! holds each VIP, and upstream health as the node's proxy sees it.

use hadeploy_config::Unit;
use hadeploy_config::status::RuntimeStatus;
use hadeploy_inventory::model::{Host, Inventory};
use serde::Serialize;

use crate::error::{DeployError, RunError, Step};
use crate::fanout::for_each_host;
use crate::ssh::{self, ConnectOptions, Remote};

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub host: String,
    pub reachable: bool,
    pub error: Option<String>,
    /// unit -> systemctl is-active word.
    pub units: Vec<(String, String)>,
    pub runtime: Option<RuntimeStatus>,
}

/// Shell lines printing `json <the runtime's status document>` when the
/// runtime is installed; a literal, for `concat!`.
macro_rules! runtime_status_json {
    () => {
        concat!(
            "if [ -x ",
            hadeploy_config::runtime_bin!(),
            " ]; then\n  echo \"json $(",
            hadeploy_config::runtime_bin!(),
            " status --json 2>/dev/null | tr -d '\\n')\"\nfi\n"
        )
    };
}
pub(crate) use runtime_status_json;

/// $@: our unit names.
const QUERY: &str = concat!(
    r#"for u in "$@"; do echo "unit $u $(systemctl is-active $u 2>/dev/null || true)"; done
"#,
    runtime_status_json!()
);

pub async fn query(
    remote: &Remote,
) -> Result<(Vec<(String, String)>, Option<RuntimeStatus>), DeployError> {
    let units = Unit::ALL.map(Unit::name);
    let out = remote.sh_ok(Step::Status, QUERY, &units, None).await?;
    let mut units = Vec::new();
    let mut runtime = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("unit ") {
            let mut it = rest.splitn(2, ' ');
            units.push((
                it.next().unwrap_or("").to_string(),
                it.next().unwrap_or("").to_string(),
            ));
        } else if let Some(json) = line.strip_prefix("json ") {
            runtime = serde_json::from_str(json).ok();
        }
    }
    Ok((units, runtime))
}

pub async fn status(
    inv: &Inventory,
    limit: &[String],
    copts: ConnectOptions,
    forks: usize,
) -> Result<Vec<NodeStatus>, RunError> {
    let nodes = for_each_host(inv, limit, forks, async |h: &Host| {
        let remote = match ssh::connect(h, copts).await {
            Ok(r) => r,
            Err(e) => {
                return NodeStatus {
                    host: h.name.clone(),
                    reachable: false,
                    error: Some(e.to_string()),
                    units: Vec::new(),
                    runtime: None,
                };
            }
        };
        let r = query(&remote).await;
        remote.close().await;
        match r {
            Ok((units, runtime)) => NodeStatus {
                host: h.name.clone(),
                reachable: true,
                error: None,
                units,
                runtime,
            },
            Err(e) => NodeStatus {
                host: h.name.clone(),
                reachable: true,
                error: Some(e.to_string()),
                units: Vec::new(),
                runtime: None,
            },
        }
    })
    .await?;
    Ok(nodes.into_iter().map(|(_, n)| n).collect())
}

/// A plain-text table for humans.
pub fn render(nodes: &[NodeStatus]) -> String {
    let mut s = String::new();
    for n in nodes {
        let units = n
            .units
            .iter()
            .map(|(u, st)| format!("{u}={st}"))
            .collect::<Vec<_>>()
            .join(" ");
        s.push_str(&format!(
            "{}: {}\n",
            n.host,
            if n.reachable {
                units
            } else {
                "UNREACHABLE".to_string()
            }
        ));
        if let Some(e) = &n.error {
            s.push_str(&format!("  error: {e}\n"));
        }
        if let Some(rt) = &n.runtime {
            if let Some(v) = &rt.vrrp {
                for i in &v.instances {
                    s.push_str(&format!(
                        "  vrrp {} (vrid {}): {} priority {}/{}{}{}\n",
                        i.name,
                        i.vrid,
                        i.state,
                        i.effective_priority,
                        i.priority,
                        if i.holds_vips {
                            format!(", holds {}", i.vips.join(" "))
                        } else {
                            String::new()
                        },
                        i.master
                            .map(|m| format!(", master {m}"))
                            .unwrap_or_default(),
                    ));
                }
            }
            if let Some(p) = &rt.proxy {
                for u in &p.upstreams {
                    let servers = u
                        .servers
                        .iter()
                        .map(|x| {
                            format!(
                                "{}{}{}",
                                x.address,
                                if x.backup { "(backup)" } else { "" },
                                if x.healthy { " up" } else { " DOWN" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    s.push_str(&format!("  upstream {}: {servers}\n", u.name));
                }
            }
        }
    }
    s
}

/// VIP -> holders, for every VIP of the clusters whose load balancers were
/// queried (from the inventory: a VIP nobody holds is listed, with no
/// holder), holders from the instances' own reports.
pub fn vip_holders(inv: &Inventory, nodes: &[NodeStatus]) -> Vec<(String, Vec<String>)> {
    let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in &inv.clusters {
        if c.load_balancers
            .iter()
            .any(|h| nodes.iter().any(|n| &n.host == h))
        {
            for a in c.vips.iter().flat_map(|g| &g.addresses) {
                map.entry(a.addr().to_string()).or_default();
            }
        }
    }
    for n in nodes {
        if let Some(v) = n.runtime.as_ref().and_then(|r| r.vrrp.as_ref()) {
            for i in v.instances.iter().filter(|i| i.holds_vips) {
                for vip in &i.vips {
                    let vip = vip.split('/').next().unwrap_or(vip).to_string();
                    let e = map.entry(vip).or_default();
                    if !e.contains(&n.host) {
                        e.push(n.host.clone());
                    }
                }
            }
        }
    }
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadeploy_config::status::{InstanceStatus, VrrpStatus};

    #[test]
    fn the_status_lines_ask_the_installed_runtime() {
        assert_eq!(
            runtime_status_json!(),
            r#"if [ -x /usr/local/sbin/hadeploy-runtime ]; then
  echo "json $(/usr/local/sbin/hadeploy-runtime status --json 2>/dev/null | tr -d '\n')"
fi
"#
        );
        assert!(QUERY.starts_with(r#"for u in "$@"; do"#), "{QUERY}");
    }

    fn node(host: &str, state: &str, held: &[&str]) -> NodeStatus {
        NodeStatus {
            host: host.into(),
            reachable: true,
            error: None,
            units: Vec::new(),
            runtime: Some(RuntimeStatus {
                vrrp: Some(VrrpStatus {
                    node: host.into(),
                    instances: vec![InstanceStatus {
                        name: "VI_1".into(),
                        vrid: 66,
                        state: state.parse().expect("state word"),
                        priority: 100,
                        effective_priority: 100,
                        master: None,
                        vips: held.iter().map(|s| s.to_string()).collect(),
                        holds_vips: !held.is_empty(),
                        transitions: 1,
                        last_transition: None,
                        peers: Vec::new(),
                        discards: Default::default(),
                    }],
                    realtime: None,
                }),
                proxy: None,
            }),
        }
    }

    /// Before: the VIP list came from what instances held, so with every
    /// node BACKUP (right after a first apply) the VIP was not listed at
    /// all and `status` exited 0.
    #[test]
    fn a_vip_nobody_holds_is_listed_without_holder() {
        let (inv, _) = hadeploy_inventory::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../inventory/lab.yaml"
        )))
        .expect("lab inventory");
        let nodes = [node("hd-lb1", "BACKUP", &[]), node("hd-lb2", "BACKUP", &[])];
        assert_eq!(
            vip_holders(&inv, &nodes),
            [("10.77.238.100".to_string(), Vec::<String>::new())]
        );
        let nodes = [
            node("hd-lb1", "MASTER", &["10.77.238.100"]),
            node("hd-lb2", "BACKUP", &[]),
        ];
        assert_eq!(
            vip_holders(&inv, &nodes),
            [("10.77.238.100".to_string(), vec!["hd-lb1".to_string()])]
        );
        // Only clusters whose load balancers were asked (--limit).
        assert!(vip_holders(&inv, &[node("hd-web1", "BACKUP", &[])]).is_empty());
    }
}
