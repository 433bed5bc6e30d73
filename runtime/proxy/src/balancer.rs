//! nginx's smooth weighted round robin with passive health
//! (`ngx_http_upstream_round_robin.c`), plus the active health verdicts.
//!
//! Primary and backup servers are two separate round-robin sets like nginx's
//! `peers` and `peers->next`: backups are asked only when no primary is
//! usable for this request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hadeploy_config::proxy::UpstreamServer;

/// Active health-check verdict and counters of one server; shared with the
/// health task and carried over reloads for the same upstream and address.
#[derive(Debug)]
pub(crate) struct PeerHealth {
    /// Starts true: a fresh process must not refuse traffic until the first
    /// checks ran (nginx without `mandatory` does the same).
    pub healthy: AtomicBool,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

impl Default for PeerHealth {
    fn default() -> Self {
        PeerHealth {
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

#[derive(Debug, Clone)]
struct PeerCfg {
    weight: i64,
    max_fails: u32,
    fail_timeout: Duration,
    down: bool,
}

#[derive(Debug, Clone)]
struct PeerState {
    current: i64,
    effective: i64,
    fails: u32,
    accessed: Option<Instant>,
    checked: Instant,
}

/// Servers of one upstream, indexed as in the config.
#[derive(Debug)]
pub(crate) struct Balancer {
    pub addrs: Vec<SocketAddr>,
    cfg: Vec<PeerCfg>,
    primary: Vec<usize>,
    backup: Vec<usize>,
    /// nginx's `peers->single`: one primary is never marked failed.
    single: bool,
    state: Mutex<Vec<PeerState>>,
    pub health: Vec<Arc<PeerHealth>>,
}

/// Servers already tried for one request (`rrp->tried`): a bit set, on
/// the stack up to 64 servers (no allocation per request).
#[derive(Debug, Clone)]
pub(crate) enum Tried {
    Bits(u64),
    Many(Vec<bool>),
}

impl Tried {
    fn get(&self, i: usize) -> bool {
        match self {
            Tried::Bits(b) => i < 64 && b & (1u64 << i) != 0,
            Tried::Many(v) => v.get(i).copied().unwrap_or(false),
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Tried::Bits(b) if i < 64 => *b |= 1u64 << i,
            Tried::Bits(_) => {}
            Tried::Many(v) => {
                if let Some(x) = v.get_mut(i) {
                    *x = true;
                }
            }
        }
    }
}

impl Balancer {
    pub(crate) fn new(servers: &[UpstreamServer], health: Vec<Arc<PeerHealth>>) -> Balancer {
        let now = Instant::now();
        let cfg: Vec<PeerCfg> = servers
            .iter()
            .map(|s| PeerCfg {
                weight: i64::from(s.weight.max(1)),
                max_fails: s.max_fails,
                fail_timeout: s.fail_timeout,
                down: s.down,
            })
            .collect();
        let state = cfg
            .iter()
            .map(|c| PeerState {
                current: 0,
                effective: c.weight,
                fails: 0,
                accessed: None,
                checked: now,
            })
            .collect();
        let primary: Vec<usize> = (0..servers.len()).filter(|i| !servers[*i].backup).collect();
        let backup: Vec<usize> = (0..servers.len()).filter(|i| servers[*i].backup).collect();
        Balancer {
            addrs: servers.iter().map(|s| s.address).collect(),
            single: primary.len() == 1,
            cfg,
            primary,
            backup,
            state: Mutex::new(state),
            health,
        }
    }

    pub(crate) fn new_tried(&self) -> Tried {
        if self.cfg.len() <= 64 {
            Tried::Bits(0)
        } else {
            Tried::Many(vec![false; self.cfg.len()])
        }
    }

    /// nginx's default number of tries: every server that is not `down`.
    pub(crate) fn max_tries(&self) -> usize {
        self.cfg.iter().filter(|c| !c.down).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PeerState>> {
        // A panic while holding this lock leaves plain counters behind;
        // they stay usable, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn actively_healthy(&self, i: usize) -> bool {
        self.health
            .get(i)
            .is_none_or(|h| h.healthy.load(Ordering::Relaxed))
    }

    /// Picks the next server for a request, or None when nothing is usable
    /// (nginx: "no live upstreams" -> 502).
    ///
    /// Active health: failing servers are skipped; if every server that is
    /// not `down` fails its checks, they are tried anyway (passive state and
    /// `down` still apply) so a broken health endpoint cannot take the whole
    /// site down while the application still answers.
    pub(crate) fn select(&self, tried: &mut Tried, now: Instant) -> Option<usize> {
        let mut st = self.lock();
        let any_healthy =
            (0..self.cfg.len()).any(|i| !self.cfg[i].down && self.actively_healthy(i));
        let use_health = any_healthy;
        let pick = self
            .pick(&self.primary, self.single, &mut st, tried, now, use_health)
            .or_else(|| self.pick(&self.backup, false, &mut st, tried, now, use_health));
        if let Some(i) = pick {
            tried.set(i);
        }
        pick
    }

    fn pick(
        &self,
        set: &[usize],
        single: bool,
        st: &mut [PeerState],
        tried: &Tried,
        now: Instant,
        use_health: bool,
    ) -> Option<usize> {
        // (index, current weight) of the best server so far.
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for &i in set {
            let c = &self.cfg[i];
            if tried.get(i) || c.down {
                continue;
            }
            if use_health && !self.actively_healthy(i) {
                continue;
            }
            let p = &mut st[i];
            if !single
                && c.max_fails > 0
                && p.fails >= c.max_fails
                && now.saturating_duration_since(p.checked) <= c.fail_timeout
            {
                continue;
            }
            p.current += p.effective;
            total += p.effective;
            if p.effective < c.weight {
                p.effective += 1;
            }
            // Strictly greater: ties go to the earlier server.
            if best.is_none_or(|(_, cur)| p.current > cur) {
                best = Some((i, p.current));
            }
        }
        let (b, _) = best?;
        st[b].current -= total;
        if now.saturating_duration_since(st[b].checked) > self.cfg[b].fail_timeout {
            st[b].checked = now;
        }
        Some(b)
    }

    /// The attempt on server `i` failed (error or timeout).
    pub(crate) fn failed(&self, i: usize, now: Instant) {
        let mut st = self.lock();
        let c = &self.cfg[i];
        let p = &mut st[i];
        p.fails = p.fails.saturating_add(1);
        p.accessed = Some(now);
        p.checked = now;
        if c.max_fails > 0 {
            p.effective -= c.weight / i64::from(c.max_fails);
            if p.fails >= c.max_fails {
                tracing::warn!(server = %self.addrs[i], "upstream server temporarily disabled");
            }
        }
        if p.effective < 0 {
            p.effective = 0;
        }
        if let Some(h) = self.health.get(i) {
            h.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The attempt on server `i` got a response header.
    pub(crate) fn succeeded(&self, i: usize) {
        let mut st = self.lock();
        let p = &mut st[i];
        if p.accessed.is_none_or(|a| a < p.checked) {
            p.fails = 0;
        }
        if let Some(h) = self.health.get(i) {
            h.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// For metrics: usable right now (not down, healthy, not failed).
    pub(crate) fn is_up(&self, i: usize, now: Instant) -> bool {
        let st = self.lock();
        let c = &self.cfg[i];
        let p = &st[i];
        let failed = !self.exempt_from_fails(i)
            && c.max_fails > 0
            && p.fails >= c.max_fails
            && now.saturating_duration_since(p.checked) <= c.fail_timeout;
        !c.down && self.actively_healthy(i) && !failed
    }

    fn exempt_from_fails(&self, i: usize) -> bool {
        self.single && self.primary.first() == Some(&i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(addr: &str, weight: u32, backup: bool) -> UpstreamServer {
        UpstreamServer {
            address: addr.parse().expect("addr"),
            weight,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup,
            down: false,
        }
    }

    fn health(n: usize) -> Vec<Arc<PeerHealth>> {
        (0..n).map(|_| Arc::new(PeerHealth::default())).collect()
    }

    fn sequence(b: &Balancer, n: usize) -> String {
        let now = Instant::now();
        (0..n)
            .map(|_| {
                let mut t = b.new_tried();
                match b.select(&mut t, now) {
                    Some(i) => char::from(b'a' + i as u8),
                    None => '-',
                }
            })
            .collect()
    }

    #[test]
    fn smooth_wrr_matches_nginx() {
        let b = Balancer::new(
            &[
                server("10.0.0.1:1", 5, false),
                server("10.0.0.2:1", 1, false),
            ],
            health(2),
        );
        // nginx: currents (5,1)->a (4,2)->a (3,3)->a on the tie (2,4)->b ...
        assert_eq!(sequence(&b, 12), "aaabaaaaabaa");
        let b = Balancer::new(
            &[
                server("10.0.0.1:1", 5, false),
                server("10.0.0.2:1", 1, false),
                server("10.0.0.3:1", 1, false),
            ],
            health(3),
        );
        // The example from nginx's commit introducing smooth WRR.
        assert_eq!(sequence(&b, 7), "aabacaa");
    }

    #[test]
    fn failed_server_skipped_then_backup() {
        let b = Balancer::new(
            &[
                server("10.0.0.1:1", 1, false),
                server("10.0.0.2:1", 1, false),
                server("10.0.0.3:1", 1, true),
            ],
            health(3),
        );
        let now = Instant::now();
        b.failed(0, now);
        assert_eq!(sequence(&b, 3), "bbb");
        b.failed(1, now);
        assert_eq!(sequence(&b, 2), "cc");
        // After fail_timeout a failed server gets traffic again.
        let later = now + Duration::from_secs(11);
        let mut t = b.new_tried();
        assert_eq!(b.select(&mut t, later), Some(0));
    }

    #[test]
    fn single_server_never_marked_down() {
        let b = Balancer::new(&[server("10.0.0.1:1", 1, false)], health(1));
        let now = Instant::now();
        b.failed(0, now);
        b.failed(0, now);
        assert_eq!(sequence(&b, 2), "aa");
    }

    #[test]
    fn tried_servers_are_not_reused() {
        let b = Balancer::new(
            &[
                server("10.0.0.1:1", 1, false),
                server("10.0.0.2:1", 1, false),
            ],
            health(2),
        );
        let now = Instant::now();
        let mut t = b.new_tried();
        let first = b.select(&mut t, now).expect("first");
        let second = b.select(&mut t, now).expect("second");
        assert_ne!(first, second);
        assert_eq!(b.select(&mut t, now), None);
        assert_eq!(b.max_tries(), 2);
    }

    #[test]
    fn active_health_and_all_failing_fallback() {
        let h = health(3);
        let b = Balancer::new(
            &[
                server("10.0.0.1:1", 1, false),
                server("10.0.0.2:1", 1, false),
                server("10.0.0.3:1", 1, true),
            ],
            h.clone(),
        );
        h[0].healthy.store(false, Ordering::Relaxed);
        assert_eq!(sequence(&b, 2), "bb");
        h[1].healthy.store(false, Ordering::Relaxed);
        assert_eq!(sequence(&b, 2), "cc");
        h[2].healthy.store(false, Ordering::Relaxed);
        // Everything fails its checks: primaries are tried anyway.
        assert_eq!(sequence(&b, 2), "ab");
    }
}
