//! `hadeploy-runtime vrrp`: the VRRP daemon. The protocol runs on its own
//! threads inside `hadeploy-vrrpd`; this runtime only forwards signals,
//! serves the admin endpoint and tells systemd when it is ready.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hadeploy_config::status::{
    InstanceStatus, LastTransition, PeerStatus, RealtimeStatus, RuntimeStatus, VrrpStatus,
};
use hadeploy_vrrpd::Stats;

use crate::{admin, signals};

struct VrrpSource {
    node: String,
    stats: Stats,
}

impl admin::Source for VrrpSource {
    fn metrics(&self) -> String {
        self.stats.render_prometheus()
    }

    fn status_json(&self) -> String {
        let doc = status_doc(&self.node, &self.stats.status());
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_string())
    }
}

/// The shared status document from the daemon's live status.
fn status_doc(node: &str, st: &hadeploy_vrrpd::Status) -> RuntimeStatus {
    let instances = st
        .instances
        .values()
        .map(|i| InstanceStatus {
            name: i.name.clone(),
            vrid: i.vrid,
            state: i.state,
            priority: i.configured_priority,
            effective_priority: i.priority,
            master: i.master_ip,
            vips: i.vips_held.iter().map(|v| v.addr().to_string()).collect(),
            holds_vips: !i.vips_held.is_empty(),
            transitions: i.transitions.values().sum(),
            last_transition: i.last_transition.map(|(reason, sender)| LastTransition {
                reason: reason.as_str().to_string(),
                peer: sender.map(|s| s.address),
                peer_priority: sender.map(|s| s.priority),
            }),
            peers: i
                .peers
                .iter()
                .map(|(addr, p)| PeerStatus {
                    address: *addr,
                    checksum: p.checksum.as_str().to_string(),
                    priority: p.priority,
                    adverts: p.adverts,
                })
                .collect(),
            discards: i
                .discards
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(d, n)| (d.as_str().to_string(), *n))
                .collect(),
        })
        .collect();
    RuntimeStatus {
        vrrp: Some(VrrpStatus {
            node: node.to_string(),
            instances,
            realtime: st.realtime.as_ref().map(|r| RealtimeStatus {
                rr_priority: r.rr_priority,
                memory_locked: r.memory_locked,
                problems: r.problems.clone(),
            }),
        }),
        proxy: None,
    }
}

fn load(path: &Path) -> anyhow::Result<hadeploy_config::vrrp::VrrpConfig> {
    let (cfg, warnings) = hadeploy_config::load_vrrp(path)?;
    signals::log_warnings(warnings);
    Ok(cfg)
}

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = load(path)?;
    // The control runtime is small: the protocol has its own threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stats = Stats::new();
        let admin = match cfg.admin {
            Some(addr) => Some(admin::bind(addr).await?),
            None => None,
        };
        if let Some(l) = admin {
            let source = Arc::new(VrrpSource {
                node: cfg.node.clone(),
                stats: stats.clone(),
            });
            tokio::spawn(admin::serve(l, source));
        }
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let (mut requests, stop_rx) = signals::watch()?;
        let config_path = path.to_path_buf();
        tokio::spawn(async move {
            while let Some(req) = requests.recv().await {
                if req != signals::Request::Reload {
                    continue;
                }
                signals::reloading(|| match load(&config_path) {
                    Ok(c) => {
                        tracing::info!("reloading {}", config_path.display());
                        // Capacity 4: a reload storm keeps the latest few.
                        if reload_tx.try_send(c).is_err() {
                            tracing::warn!("reload dropped: the daemon is busy or stopping");
                        }
                    }
                    Err(e) => tracing::error!("reload refused, keeping the running config: {e:#}"),
                });
            }
        });
        tracing::info!(
            "starting VRRP for {} ({} instances)",
            cfg.node,
            cfg.instances.len()
        );
        let daemon = hadeploy_vrrpd::run(
            cfg,
            stats,
            async move {
                let _ = stop_rx.await;
            },
            reload_rx,
        );
        tokio::pin!(daemon);
        // Ready once the daemon has had a moment to open its sockets: a
        // startup error (missing interface) returns before this.
        let early = tokio::time::timeout(std::time::Duration::from_millis(200), &mut daemon).await;
        let result = match early {
            Ok(r) => r,
            Err(_) => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                daemon.await
            }
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        result.map_err(anyhow::Error::from)?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hadeploy_vrrp::{ChecksumForm, Discard, Reason, Sender};
    use hadeploy_vrrpd::{InstanceStatus as Live, PeerStatus as LivePeer, Status};

    use super::*;

    /// Regression (issue 10): the checksum form each peer sends was known
    /// to the decoder but not exported; `v3_checksum: vrrp_only` against
    /// FRR then gave two silent MASTERs.
    #[test]
    fn status_names_each_peer_checksum_form_and_the_last_cause() {
        let peer = Ipv4Addr::new(10, 0, 0, 12);
        let mut live = Live {
            name: "VI_1".into(),
            last_transition: Some((
                Reason::PriorityZero,
                Some(Sender {
                    address: peer,
                    priority: 0,
                }),
            )),
            ..Live::default()
        };
        live.peers.insert(
            peer,
            LivePeer {
                checksum: ChecksumForm::V3PseudoHeader,
                priority: 200,
                adverts: 3,
            },
        );
        live.discards.insert(Discard::UnknownPeer, 4);
        live.discards.insert(Discard::BadTtl, 0);
        let mut st = Status::default();
        st.instances.insert("VI_1".into(), live);
        let json = serde_json::to_value(status_doc("lb1", &st)).expect("json");
        let i = &json["vrrp"]["instances"][0];
        assert_eq!(i["peers"][0]["address"], "10.0.0.12");
        assert_eq!(i["peers"][0]["checksum"], "v3_pseudo_header");
        assert_eq!(i["peers"][0]["priority"], 200);
        assert_eq!(i["last_transition"]["reason"], "priority_zero");
        assert_eq!(i["last_transition"]["peer"], "10.0.0.12");
        assert_eq!(i["discards"]["unknown_peer"], 4);
        assert!(i["discards"].get("bad_ttl").is_none(), "zeros left out");
    }
}
