//! `hadeploy-runtime vrrp`: the VRRP daemon. The protocol runs on its own
//! threads inside `hadeploy-vrrpd`; this runtime only forwards signals,
//! serves the admin endpoint and tells systemd when it is ready.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hadeploy_config::status::{InstanceStatus, RuntimeStatus, VrrpStatus};
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
        let st = self.stats.status();
        let instances = st
            .instances
            .values()
            .map(|i| InstanceStatus {
                name: i.name.clone(),
                vrid: i.vrid,
                state: i.state.as_str().to_string(),
                priority: i.configured_priority,
                effective_priority: i.priority,
                master: i.master_ip,
                vips: i.vips_held.iter().map(|v| v.addr().to_string()).collect(),
                holds_vips: !i.vips_held.is_empty(),
                transitions: i.transitions.values().sum(),
            })
            .collect();
        let doc = RuntimeStatus {
            vrrp: Some(VrrpStatus {
                node: self.node.clone(),
                instances,
            }),
            proxy: None,
        };
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_string())
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
