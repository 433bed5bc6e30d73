//! Prometheus text exposition of request counts, latency and upstream health.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hadeploy_config::status::{ProxyStatus, ServerStatus, UpstreamStatus};

use crate::state::State;

/// Latency bucket bounds in seconds (Prometheus' client defaults).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Per-site counters, one lock for both (a request updates both).
#[derive(Debug, Default, Clone)]
struct SiteStats {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    sites: Mutex<BTreeMap<String, SiteStats>>,
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub requests_total: AtomicU64,
}

impl Metrics {
    fn with_site(&self, site: &str, f: impl FnOnce(&mut SiteStats)) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        // Look up before inserting: the hot path allocates nothing.
        match sites.get_mut(site) {
            Some(st) => f(st),
            None => f(sites.entry(site.to_string()).or_default()),
        }
    }

    /// Counts a request without timing it (heads hyper refused).
    pub(crate) fn count(&self, site: &str, status: u16) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        self.with_site(site, |st| *st.by_status.entry(status).or_default() += 1);
    }

    pub(crate) fn observe(&self, site: &str, status: u16, took: Duration) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        self.with_site(site, |st| {
            *st.by_status.entry(status).or_default() += 1;
            let h = &mut st.latency;
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        });
    }

    pub(crate) fn render(&self, state: &State) -> String {
        let mut s = String::new();
        s.push_str("# HELP hadeploy_proxy_requests_total Requests served, by site and status.\n");
        s.push_str("# TYPE hadeploy_proxy_requests_total counter\n");
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (site, st) in &sites {
            for (status, n) in &st.by_status {
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
            let h = &st.latency;
            let site = label(site);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "hadeploy_proxy_request_duration_seconds_bucket{{site=\"{site}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                s,
                "hadeploy_proxy_request_duration_seconds_bucket{{site=\"{site}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "hadeploy_proxy_request_duration_seconds_sum{{site=\"{site}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "hadeploy_proxy_request_duration_seconds_count{{site=\"{site}\"}} {}",
                h.count
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
