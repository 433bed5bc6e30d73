//! The compiled, immutable form of one config generation. Requests load it
//! once from the `ArcSwap` and keep that `Arc` to the end, so a reload never
//! changes the rules under an in-flight request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hadeploy_config::proxy::{LogFormat, ProxyConfig};

use crate::access_log::{LogFile, LogRegistry};
use crate::error::ProxyError;
use crate::metrics::{Metrics, SiteStats};
use crate::router::{LocationTable, VhostTable};
use crate::upstream::UpstreamRt;

#[derive(Debug)]
pub(crate) struct SiteRt {
    pub locations: LocationTable,
    pub log: Option<(Arc<LogFile>, LogFormat)>,
    /// This site's counters (shared with earlier generations of the same
    /// site name, so a reload does not reset them).
    pub stats: Arc<SiteStats>,
    /// The upstream of each location that proxies (by location index),
    /// resolved once here rather than by name on every request.
    pub upstreams: Vec<Option<Arc<UpstreamRt>>>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub cfg: ProxyConfig,
    pub sites: Vec<SiteRt>,
    pub vhosts: Vec<(SocketAddr, VhostTable)>,
    pub upstreams: HashMap<String, Arc<UpstreamRt>>,
}

/// Rejects a config with errors, with every error in the message.
pub(crate) fn validate(cfg: &ProxyConfig) -> Result<(), ProxyError> {
    let errors: Vec<String> = cfg
        .validate()
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ProxyError::Invalid(errors.join("; ")))
    }
}

impl State {
    pub(crate) fn build(
        cfg: ProxyConfig,
        logs: &LogRegistry,
        metrics: &Metrics,
        prev: Option<&State>,
    ) -> Result<State, ProxyError> {
        validate(&cfg)?;
        let mut upstreams = HashMap::new();
        for (name, up) in &cfg.upstreams {
            // Without health checks nothing would ever clear an old "failing"
            // verdict, so only checked upstreams inherit it.
            let old = prev
                .and_then(|p| p.upstreams.get(name))
                .filter(|_| up.health_check.is_some());
            let rt = UpstreamRt::new(name, up, |addr| {
                let old = old?;
                let i = old.balancer.addrs.iter().position(|a| *a == addr)?;
                old.balancer.health.get(i).cloned()
            });
            upstreams.insert(name.clone(), Arc::new(rt));
        }
        let mut sites = Vec::with_capacity(cfg.sites.len());
        for site in &cfg.sites {
            let log = match &site.access_log {
                Some(al) => Some((logs.get_or_open(&al.path)?, al.format)),
                None => None,
            };
            sites.push(SiteRt {
                locations: LocationTable::build(&site.locations),
                log,
                stats: metrics.site(&site.name),
                upstreams: site
                    .locations
                    .iter()
                    .map(|l| {
                        l.proxy
                            .as_ref()
                            .and_then(|pp| upstreams.get(&pp.upstream).cloned())
                    })
                    .collect(),
            });
        }
        Ok(State {
            vhosts: VhostTable::build_all(&cfg.sites),
            sites,
            upstreams,
            cfg,
        })
    }

    /// The virtual hosts on a listen address.
    pub(crate) fn vhost(&self, addr: &SocketAddr) -> Option<&VhostTable> {
        self.vhosts.iter().find(|(a, _)| a == addr).map(|(_, t)| t)
    }

    pub(crate) fn log_paths(&self) -> Vec<PathBuf> {
        self.cfg
            .sites
            .iter()
            .filter_map(|s| s.access_log.as_ref().map(|a| a.path.clone()))
            .collect()
    }

    /// The sockets to bind: every site address, except specific addresses
    /// whose port also has a wildcard of the same family (Linux refuses
    /// that bind; the wildcard socket serves them, routed by local address).
    pub(crate) fn listen_set(&self) -> Vec<SocketAddr> {
        let all: Vec<SocketAddr> = self.vhosts.iter().map(|(a, _)| *a).collect();
        let covered = |a: &SocketAddr| {
            !a.ip().is_unspecified()
                && all.iter().any(|w| {
                    w.ip().is_unspecified() && w.port() == a.port() && w.is_ipv4() == a.is_ipv4()
                })
        };
        let mut v: Vec<SocketAddr> = all.iter().copied().filter(|a| !covered(a)).collect();
        v.sort();
        v
    }
}
