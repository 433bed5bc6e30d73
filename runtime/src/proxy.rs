//! `hadeploy-runtime proxy`: the reverse proxy (nginx's job) on one
//! single-threaded runtime per worker thread. SIGHUP validates and swaps the
//! config (the old one stays on error), SIGUSR1 reopens access logs,
//! SIGQUIT/SIGTERM drain.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hadeploy_config::status::RuntimeStatus;
use hadeploy_proxy::Proxy;

use crate::{admin, signals};

struct ProxySource(Proxy);

impl admin::Source for ProxySource {
    fn metrics(&self) -> String {
        self.0.metrics_text()
    }

    fn status_json(&self) -> String {
        let doc = RuntimeStatus {
            vrrp: None,
            proxy: Some(self.0.status()),
        };
        serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_string())
    }
}

fn load(path: &Path) -> anyhow::Result<hadeploy_config::proxy::ProxyConfig> {
    let (cfg, warnings) = hadeploy_config::load_proxy(path)?;
    signals::log_warnings(warnings);
    Ok(cfg)
}

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = load(path)?;
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.workers
    };
    // nginx's process model with threads: one single-threaded runtime per
    // worker, each accepting on the shared sockets and serving the
    // connections it accepted; no work stealing, no cross-thread wakeups
    // on the request path (~6% less CPU per request than a work-stealing
    // runtime, bench/README.md). Signals, reloads, health checks and the
    // admin endpoint run on the main thread's runtime.
    let (stop_workers, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        handles.push(rt.handle().clone());
        let mut stopped = stopped.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("proxy-worker-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    });
                })?,
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = serve(&rt, path, cfg, handles, workers);
    let _ = stop_workers.send(true);
    for t in threads {
        let _ = t.join();
    }
    result
}

fn serve(
    rt: &tokio::runtime::Runtime,
    path: &Path,
    cfg: hadeploy_config::proxy::ProxyConfig,
    handles: Vec<tokio::runtime::Handle>,
    workers: usize,
) -> anyhow::Result<ExitCode> {
    rt.block_on(async move {
        let admin_addr = cfg.admin;
        tracing::info!(
            "starting proxy for {} ({} sites, {} upstreams, {workers} workers)",
            cfg.node,
            cfg.sites.len(),
            cfg.upstreams.len()
        );
        let proxy = Proxy::bind_on(cfg, handles).await?;
        if let Some(addr) = admin_addr {
            let l = admin::bind(addr).await?;
            tokio::spawn(admin::serve(l, Arc::new(ProxySource(proxy.clone()))));
        }
        let (mut requests, stop_rx) = signals::watch()?;
        let handle = proxy.clone();
        let config_path = path.to_path_buf();
        tokio::spawn(async move {
            while let Some(req) = requests.recv().await {
                match req {
                    signals::Request::Reload => signals::reloading(|| {
                        match load(&config_path)
                            .and_then(|c| handle.reload(c).map_err(anyhow::Error::from))
                        {
                            Ok(()) => tracing::info!("reloaded {}", config_path.display()),
                            Err(e) => {
                                tracing::error!("reload refused, keeping the running config: {e:#}")
                            }
                        }
                    }),
                    signals::Request::ReopenLogs => {
                        handle.reopen_logs();
                        tracing::info!("access logs reopened");
                    }
                }
            }
        });
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        proxy
            .run(async move {
                let _ = stop_rx.await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                tracing::info!("stopping: draining in-flight requests");
            })
            .await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
