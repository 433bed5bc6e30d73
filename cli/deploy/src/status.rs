//! `hadeploy status`: per node, its units, each VRRP instance's state, who
//! holds each VIP, and upstream health as the node's proxy sees it.

use std::sync::Arc;

use hadeploy_config::status::RuntimeStatus;
use hadeploy_inventory::model::{Host, Inventory};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::error::{DeployError, Step};
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

const QUERY: &str = r#"
for u in hadeploy-vrrp hadeploy-proxy; do echo "unit $u $(systemctl is-active $u 2>/dev/null || true)"; done
if [ -x /usr/local/sbin/hadeploy-runtime ]; then
  echo "json $(/usr/local/sbin/hadeploy-runtime status --json 2>/dev/null | tr -d '\n')"
fi
"#;

pub async fn query(
    remote: &Remote,
) -> Result<(Vec<(String, String)>, Option<RuntimeStatus>), DeployError> {
    let out = remote.sh_ok(Step::Status, QUERY, &[], None).await?;
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
) -> Result<Vec<NodeStatus>, String> {
    let hosts: Vec<Host> = inv.limit(limit)?.into_iter().cloned().collect();
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let tasks = hosts.iter().map(|h| {
        let sem = sem.clone();
        async move {
            let _p = sem.acquire().await;
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
        }
    });
    Ok(futures::future::join_all(tasks).await)
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

/// VIP -> holders, from the instances' own reports.
pub fn vip_holders(nodes: &[NodeStatus]) -> Vec<(String, Vec<String>)> {
    let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for n in nodes {
        if let Some(v) = n.runtime.as_ref().and_then(|r| r.vrrp.as_ref()) {
            for i in &v.instances {
                for vip in &i.vips {
                    let e = map.entry(vip.clone()).or_default();
                    if i.holds_vips {
                        e.push(n.host.clone());
                    }
                }
            }
        }
    }
    map.into_iter().collect()
}
