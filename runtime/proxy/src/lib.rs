//! hadeploy-proxy: the reverse proxy and static web server that replaces
//! nginx on a hadeploy node.
//!
//! The runtime binary owns the tokio runtimes and the signals:
//!
//! ```ignore
//! let proxy = Proxy::bind_on(cfg, workers).await?; // listeners bound, serving
//! let handle = proxy.clone();                   // for SIGHUP / SIGUSR1
//! handle.reload(new_cfg)?;                      // atomic; old kept on error
//! handle.reopen_logs();                         // logrotate
//! handle.metrics_text(); handle.status();       // for the admin endpoint
//! proxy.run(sigterm).await;                     // drain, then return
//! ```
//!
//! `ProxyConfig::admin` is not bound here: the binary serves `/metrics`
//! and `/status` (the runtime-wide document) from these two calls.
//! Behaviour and deliberate deviations from nginx: see README.md.

mod access_log;
mod balancer;
mod body;
mod clock;
mod conn;
mod error;
mod exchange;
mod h1;
mod h2;
mod headers;
mod health;
mod message;
mod metrics;
mod pool;
mod router;
mod server;
mod state;
mod static_files;
mod upstream;
mod uri;
mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hadeploy_config::proxy::ProxyConfig;
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

pub use error::ProxyError;

use crate::access_log::LogRegistry;
use crate::metrics::Metrics;
use crate::server::Shared;
use crate::state::State;

struct Listener {
    stop: watch::Sender<bool>,
}

struct Inner {
    shared: Arc<Shared>,
    logs: Arc<LogRegistry>,
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
    health_tasks: Mutex<Vec<AbortHandle>>,
    background: Mutex<Vec<AbortHandle>>,
    /// Permits currently granted to `conn_limit` (max_connections).
    conn_limit_total: Mutex<usize>,
    /// Serializes reloads so two SIGHUPs cannot interleave their swaps.
    reload_lock: Mutex<()>,
    /// Where control tasks run (health checks, the log flusher).
    runtime: tokio::runtime::Handle,
    /// Where connections are accepted and served: every listener has an
    /// accept loop on each (nginx's worker processes on a shared socket).
    workers: Vec<tokio::runtime::Handle>,
}

/// The running proxy. Cheap to clone: clones share one server, so the
/// binary can keep a clone for `reload` / `reopen_logs` / `metrics_text`
/// while `run` owns another.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data are handles and counters, valid even if a holder
    // panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Proxy {
    /// Validates the config, opens the access logs, binds every listen
    /// address and starts serving (and health checking) on the current
    /// tokio runtime.
    pub async fn bind(cfg: ProxyConfig) -> Result<Proxy, ProxyError> {
        let current = tokio::runtime::Handle::try_current()
            .map_err(|e| ProxyError::Runtime(e.to_string()))?;
        Proxy::bind_on(cfg, vec![current]).await
    }

    /// As [`bind`](Self::bind), with connections accepted and served on
    /// `workers` (one single-threaded runtime per core, as nginx's worker
    /// processes; a connection stays on the worker that accepted it).
    /// Control tasks run on the current runtime.
    pub async fn bind_on(
        cfg: ProxyConfig,
        workers: Vec<tokio::runtime::Handle>,
    ) -> Result<Proxy, ProxyError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ProxyError::Runtime(e.to_string()))?;
        if workers.is_empty() {
            return Err(ProxyError::Runtime("no worker runtimes".into()));
        }
        let logs = Arc::new(LogRegistry::default());
        let metrics = Arc::new(Metrics::default());
        let state = State::build(cfg, &logs, &metrics, None)?;
        let mut bound = Vec::new();
        for addr in state.listen_set() {
            bound.push((addr, server::bind_listener(addr)?));
        }
        let max_conns = state.cfg.limits.max_connections.max(1);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(state),
            metrics,
            conn_limit: Arc::new(Semaphore::new(max_conns)),
            shutdown,
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let inner = Arc::new(Inner {
            shared,
            logs,
            listeners: Mutex::new(HashMap::new()),
            health_tasks: Mutex::new(Vec::new()),
            background: Mutex::new(Vec::new()),
            conn_limit_total: Mutex::new(max_conns),
            reload_lock: Mutex::new(()),
            runtime,
            workers,
        });
        let proxy = Proxy { inner };
        for (addr, l) in bound {
            proxy.start_listener(addr, l);
        }
        proxy.restart_health_checks();
        let logs = proxy.inner.logs.clone();
        let flusher = proxy.inner.runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                logs.flush_all();
            }
        });
        lock(&proxy.inner.background).push(flusher.abort_handle());
        Ok(proxy)
    }

    fn start_listener(&self, addr: SocketAddr, l: std::net::TcpListener) {
        let (stop, stop_rx) = watch::channel(false);
        // Every worker accepts on the same socket (its own descriptor);
        // the socket is registered with a worker's reactor inside the
        // accept loop, on that worker.
        let n = self.inner.workers.len();
        let mut socket = Some(l);
        for (i, w) in self.inner.workers.iter().enumerate() {
            let fd = if i + 1 == n {
                socket.take()
            } else {
                match socket.as_ref().map(std::net::TcpListener::try_clone) {
                    Some(Ok(c)) => Some(c),
                    Some(Err(e)) => {
                        tracing::error!(%addr, error = %e, "cannot share listener with worker {i}");
                        None
                    }
                    None => None,
                }
            };
            if let Some(fd) = fd {
                let shared = self.inner.shared.clone();
                w.spawn(server::accept_loop(shared, fd, addr, stop_rx.clone()));
            }
        }
        lock(&self.inner.listeners).insert(addr, Listener { stop });
        tracing::info!(%addr, "listening");
    }

    fn restart_health_checks(&self) {
        let _guard = self.inner.runtime.enter();
        let state = self.inner.shared.state.load();
        let mut new = Vec::new();
        for up in state.upstreams.values() {
            new.extend(health::spawn(up));
        }
        let old = std::mem::replace(&mut *lock(&self.inner.health_tasks), new);
        for h in old {
            h.abort();
        }
    }

    /// Applies a new config atomically (nginx SIGHUP). Requests in flight
    /// finish under the config they started with; new listen addresses are
    /// bound before the swap (a bind failure keeps the old config), removed
    /// ones stop accepting after it. Upstream health carries over for
    /// servers that stay.
    pub fn reload(&self, cfg: ProxyConfig) -> Result<(), ProxyError> {
        let _serial = lock(&self.inner.reload_lock);
        let old = self.inner.shared.state.load_full();
        let state = State::build(
            cfg,
            &self.inner.logs,
            &self.inner.shared.metrics,
            Some(&old),
        )?;
        let wanted = state.listen_set();
        let mut fresh = Vec::new();
        {
            let listeners = lock(&self.inner.listeners);
            for addr in &wanted {
                if !listeners.contains_key(addr) {
                    fresh.push((*addr, server::bind_listener(*addr)?));
                }
            }
        }
        let max_conns = state.cfg.limits.max_connections.max(1);
        let log_paths = state.log_paths();
        self.inner.shared.state.store(Arc::new(state));
        for (addr, l) in fresh {
            self.start_listener(addr, l);
        }
        {
            let mut listeners = lock(&self.inner.listeners);
            listeners.retain(|addr, l| {
                let keep = wanted.contains(addr);
                if !keep {
                    let _ = l.stop.send(true);
                    tracing::info!(%addr, "stopped listening");
                }
                keep
            });
        }
        self.resize_conn_limit(max_conns);
        self.inner.logs.retain(&log_paths);
        self.restart_health_checks();
        tracing::info!("proxy config reloaded");
        Ok(())
    }

    fn resize_conn_limit(&self, want: usize) {
        let mut total = lock(&self.inner.conn_limit_total);
        let sem = self.inner.shared.conn_limit.clone();
        if want > *total {
            sem.add_permits(want - *total);
        } else if want < *total {
            // tokio can only take back permits nobody holds: forget the idle
            // ones now and collect the rest as busy connections close.
            let took = sem.forget_permits(*total - want);
            if let Ok(debt) = u32::try_from(*total - want - took)
                && debt > 0
            {
                self.inner.runtime.spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(debt).await {
                        p.forget();
                    }
                });
            }
        }
        *total = want;
    }

    /// Reopens every access log at its path (SIGUSR1 after logrotate).
    pub fn reopen_logs(&self) {
        self.inner.logs.reopen_all();
        tracing::info!("access logs reopened");
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish for up to `limits.drain_timeout`, flushes
    /// the logs and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let shared = &self.inner.shared;
        let drain = shared.state.load().cfg.limits.drain_timeout;
        tracing::info!(?drain, "proxy shutting down: draining connections");
        shared.stopping.store(true, Ordering::Relaxed);
        let _ = shared.shutdown.send(true);
        for (_, l) in lock(&self.inner.listeners).drain() {
            let _ = l.stop.send(true);
        }
        let deadline = tokio::time::Instant::now() + drain;
        while shared.metrics.connections.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = shared.metrics.connections.load(Ordering::Relaxed);
        if left > 0 {
            tracing::warn!(
                connections = left,
                "drain timeout: closing remaining connections"
            );
        }
        for h in lock(&self.inner.health_tasks).drain(..) {
            h.abort();
        }
        for h in lock(&self.inner.background).drain(..) {
            h.abort();
        }
        self.inner.logs.flush_all();
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn metrics_text(&self) -> String {
        let state = self.inner.shared.state.load();
        self.inner.shared.metrics.render(&state)
    }

    /// The proxy part of the runtime's status document (`GET /status`):
    /// node, per-server usability (not down, passing checks, not failed)
    /// and the number of requests served.
    pub fn status(&self) -> hadeploy_config::status::ProxyStatus {
        let state = self.inner.shared.state.load();
        metrics::status(&self.inner.shared.metrics, &state)
    }

    /// Addresses currently listened on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = lock(&self.inner.listeners).keys().copied().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The binary spawns these on a multi-threaded runtime.
    #[test]
    fn futures_are_send() {
        let cfg: ProxyConfig = hadeploy_config::parse_proxy(
            "node: n\nsites: [{name: s, listen: [\"127.0.0.1:1\"], root: /tmp}]\n",
            std::path::Path::new("t.yaml"),
        )
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e:?}"));
        let bind = Proxy::bind(cfg);
        assert_send(&bind);
        fn run_is_send(p: Proxy) {
            let fut = p.run(std::future::ready(()));
            assert_send(&fut);
        }
        let _ = run_is_send;
        fn sync<T: Send + Sync>() {}
        sync::<Proxy>();
    }
}
