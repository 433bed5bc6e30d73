//! Prometheus text exposition of request counts, latency and upstream health.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hadeploy_config::status::{ProxyStatus, ServerStatus, UpstreamStatus};

use crate::state::State;

/// Latency bucket bounds in seconds (Prometheus' client defaults).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The same bounds in microseconds, for the hot path.
const BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
/// Statuses 100..=599 are counted in an array; anything else (a backend's
/// 999) in the last slot, shown as status="other".
const STATUS_SLOTS: usize = 501;

/// Counters of one site: plain atomics, so a request updates them without
/// a lock (requests on every worker thread update the same site).
#[derive(Debug)]
pub(crate) struct SiteStats {
    by_status: Box<[AtomicU64]>,
    /// Requests per latency bucket (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for SiteStats {
    fn default() -> Self {
        SiteStats {
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

fn slot(status: u16) -> usize {
    if (100..=599).contains(&status) {
        usize::from(status - 100)
    } else {
        STATUS_SLOTS - 1
    }
}

impl SiteStats {
    fn count_status(&self, status: u16) {
        if let Some(c) = self.by_status.get(slot(status)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Process-wide counters. Sites are registered by name and kept across
/// reloads, so counters do not restart when the config changes.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    sites: Mutex<BTreeMap<String, Arc<SiteStats>>>,
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub requests_total: AtomicU64,
}

impl Metrics {
    /// The counters of `site` (created on first use).
    pub(crate) fn site(&self, site: &str) -> Arc<SiteStats> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.entry(site.to_string()).or_default().clone()
    }

    /// Counts a request without timing it (heads refused before routing).
    pub(crate) fn count(&self, site: &SiteStats, status: u16) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        site.count_status(status);
    }

    pub(crate) fn observe(&self, site: &SiteStats, status: u16, took: Duration) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        site.count_status(status);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b)
            && let Some(b) = site.buckets.get(i)
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        site.count.fetch_add(1, Ordering::Relaxed);
        site.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, state: &State) -> String {
        let mut s = String::new();
        s.push_str("# HELP hadeploy_proxy_requests_total Requests served, by site and status.\n");
        s.push_str("# TYPE hadeploy_proxy_requests_total counter\n");
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (site, st) in &sites {
            for (i, n) in st.by_status.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = if i == STATUS_SLOTS - 1 {
                    "other".to_string()
                } else {
                    (i + 100).to_string()
                };
                let _ = writeln!(
                    s,
                    "hadeploy_proxy_requests_total{{site=\"{}\",status=\"{status}\"}} {n}",
                    label(site)
                );
            }
        }
        s.push_str("# HELP hadeploy_proxy_request_duration_seconds Time from request head to last body byte.\n");
        s.push_str("# TYPE hadeploy_proxy_request_duration_seconds histogram\n");
        for (site, st) in &sites {
            let site = label(site);
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += st.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "hadeploy_proxy_request_duration_seconds_bucket{{site=\"{site}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let count = st.count.load(Ordering::Relaxed);
            let sum = st.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                s,
                "hadeploy_proxy_request_duration_seconds_bucket{{site=\"{site}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                s,
                "hadeploy_proxy_request_duration_seconds_sum{{site=\"{site}\"}} {sum}"
            );
            let _ = writeln!(
                s,
                "hadeploy_proxy_request_duration_seconds_count{{site=\"{site}\"}} {count}"
            );
        }
        s.push_str("# HELP hadeploy_proxy_upstream_up 1 when the server gets traffic (not down, passing checks, not failed).\n");
        s.push_str("# TYPE hadeploy_proxy_upstream_up gauge\n");
        let now = Instant::now();
        let mut ups: Vec<_> = state.upstreams.iter().collect();
        ups.sort_by(|a, b| a.0.cmp(b.0));
        let mut fails = String::new();
        for (name, up) in &ups {
            for (i, addr) in up.balancer.addrs.iter().enumerate() {
                let v = u8::from(up.balancer.is_up(i, now));
                let _ = writeln!(
                    s,
                    "hadeploy_proxy_upstream_up{{upstream=\"{}\",server=\"{addr}\"}} {v}",
                    label(name)
                );
                if let Some(h) = up.balancer.health.get(i) {
                    let _ = writeln!(
                        fails,
                        "hadeploy_proxy_upstream_failures_total{{upstream=\"{}\",server=\"{addr}\"}} {}",
                        label(name),
                        h.failures.load(Ordering::Relaxed)
                    );
                }
            }
        }
        s.push_str("# HELP hadeploy_proxy_upstream_idle_connections Kept-alive connections waiting in the pool per server.\n");
        s.push_str("# TYPE hadeploy_proxy_upstream_idle_connections gauge\n");
        for (name, up) in &ups {
            for (addr, n) in up.balancer.addrs.iter().zip(up.pool.idle_counts()) {
                let _ = writeln!(
                    s,
                    "hadeploy_proxy_upstream_idle_connections{{upstream=\"{}\",server=\"{addr}\"}} {n}",
                    label(name)
                );
            }
        }
        s.push_str("# HELP hadeploy_proxy_upstream_failures_total Failed attempts (errors, timeouts) per server.\n");
        s.push_str("# TYPE hadeploy_proxy_upstream_failures_total counter\n");
        s.push_str(&fails);
        s.push_str("# HELP hadeploy_proxy_connections Open client connections.\n");
        s.push_str("# TYPE hadeploy_proxy_connections gauge\n");
        let _ = writeln!(
            s,
            "hadeploy_proxy_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        s.push_str("# HELP hadeploy_proxy_connections_total Accepted client connections.\n");
        s.push_str("# TYPE hadeploy_proxy_connections_total counter\n");
        let _ = writeln!(
            s,
            "hadeploy_proxy_connections_total {}",
            self.connections_total.load(Ordering::Relaxed)
        );
        s
    }
}

/// The proxy half of the runtime's `GET /status` document.
pub(crate) fn status(metrics: &Metrics, state: &State) -> ProxyStatus {
    let now = Instant::now();
    let mut upstreams: Vec<UpstreamStatus> = state
        .upstreams
        .iter()
        .map(|(name, up)| UpstreamStatus {
            name: name.clone(),
            servers: up
                .cfg
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| ServerStatus {
                    address: s.address.to_string(),
                    healthy: up.balancer.is_up(i, now),
                    backup: s.backup,
                })
                .collect(),
        })
        .collect();
    upstreams.sort_by(|a, b| a.name.cmp(&b.name));
    ProxyStatus {
        node: state.cfg.node.clone(),
        upstreams,
        requests: metrics.requests_total.load(Ordering::Relaxed),
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
