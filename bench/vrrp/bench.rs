//! One failover measurement and one resource measurement.
//!
//! Failover: master (priority 150) in router 0, backup (100) in router 1,
//! then the master is killed or stopped and the client's monitor tells when
//! the backup's MAC first claims the VIP.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::daemon::{Binaries, Daemon, Impl, Proto};
use crate::monitor::Monitor;
use crate::netns::Lab;
use crate::resources;

pub const MASTER_PRIO: u8 = 150;
pub const BACKUP_PRIO: u8 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    /// kill -9 of the master's daemon.
    Kill,
    /// SIGTERM: the master sends priority 0 and releases the VIP.
    Term,
}

/// One failover, in ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// From the signal to the backup's first VIP claim.
    pub from_signal: f64,
    /// From the master's last advert before the kill (Kill) or its
    /// priority-0 advert (Term) to the claim: what the RFC timers bound.
    pub from_wire: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Starts the pair and waits until router 0 is master and router 1 has
/// heard it long enough to be a settled backup.
fn pair(lab: &Lab, mon: &Monitor, imp: Impl, p: Proto, bin: &Binaries) -> Result<(Daemon, Daemon)> {
    lab.drop_vip(0);
    lab.drop_vip(1);
    let mut master = Daemon::start(lab, 0, imp, p, MASTER_PRIO, bin)?;
    // Both daemons start as backup and wait Master_Down_Interval first.
    if !wait_until(Duration::from_secs(15), || lab.has_vip(0)) {
        bail!("{} never became master:\n{}", imp.name(), master.log_tail());
    }
    let backup = Daemon::start(lab, 1, imp, p, BACKUP_PRIO, bin)?;
    mon.clear();
    let since = crate::monitor::now();
    // Long enough for the backup to open its socket and hear several adverts.
    std::thread::sleep(Duration::from_millis(1000 + 3 * p.advert_ms));
    if !master.alive() || lab.has_vip(1) || mon.adverts_since(lab.router_addr(0), since) < 2 {
        bail!(
            "{} pair did not settle (master alive {}, backup holds VIP {}):\n{}\n--\n{}",
            imp.name(),
            master.alive(),
            lab.has_vip(1),
            master.log_tail(),
            backup.log_tail()
        );
    }
    Ok((master, backup))
}

/// One failover; `phase` delays the stop by part of an advert interval.
pub fn failover(
    lab: &Lab,
    mon: &Monitor,
    imp: Impl,
    p: Proto,
    stop: Stop,
    bin: &Binaries,
    phase: Duration,
) -> Result<Sample> {
    let backup_mac = lab.mac(&lab.routers[1])?;
    let (master, backup) = pair(lab, mon, imp, p, bin)?;
    // The settle time is fixed, so without this every stop would land at
    // the same point of the advert cycle; callers spread it over the reps.
    std::thread::sleep(phase);
    mon.probe(true);
    let t0 = match stop {
        Stop::Kill => master.kill9(),
        Stop::Term => master.term(),
    };
    let claimed = wait_until(Duration::from_secs(10), || {
        mon.first_claim(backup_mac, t0).is_some()
    });
    mon.probe(false);
    let claim = mon.first_claim(backup_mac, t0);
    let anchor = match stop {
        Stop::Kill => mon.last_advert(lab.router_addr(0), t0),
        Stop::Term => mon.first_resign(lab.router_addr(0), t0),
    };
    let (Some(claim), true) = (claim, claimed) else {
        bail!(
            "{}: backup never claimed the VIP\n-- master:\n{}\n-- backup:\n{}",
            imp.name(),
            master.log_tail(),
            backup.log_tail()
        );
    };
    backup.stop(Duration::from_secs(3));
    master.stop(Duration::from_secs(3));
    // Let the stopped backup's last adverts drain before the next run.
    std::thread::sleep(Duration::from_millis(200));
    Ok(Sample {
        from_signal: ms(claim.saturating_sub(t0)),
        from_wire: anchor.map(|a| ms(claim.saturating_sub(a))),
    })
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub master_rss_kib: u64,
    pub backup_rss_kib: u64,
    /// % of one core over the sampling window.
    pub master_cpu_pct: f64,
    pub backup_cpu_pct: f64,
    /// On-CPU ms over the window (schedstat, ns resolution).
    pub master_cpu_ms: f64,
    pub backup_cpu_ms: f64,
    pub processes: usize,
}

/// RSS after `idle` as master, then CPU over `window`.
pub fn usage(
    lab: &Lab,
    mon: &Monitor,
    imp: Impl,
    p: Proto,
    idle: Duration,
    window: Duration,
    bin: &Binaries,
) -> Result<Usage> {
    let (master, backup) = pair(lab, mon, imp, p, bin)?;
    std::thread::sleep(idle);
    let (mp, bp) = (master.pids(), backup.pids());
    let master_rss_kib = resources::rss_kib(&mp)?;
    let backup_rss_kib = resources::rss_kib(&bp)?;
    let (m0, b0) = (resources::cpu_ticks(&mp)?, resources::cpu_ticks(&bp)?);
    let (mn0, bn0) = (resources::cpu_ns(&mp)?, resources::cpu_ns(&bp)?);
    let t = Instant::now();
    std::thread::sleep(window);
    let secs = t.elapsed().as_secs_f64();
    let m1 = resources::cpu_ticks(&mp).context("master died while sampled")?;
    let b1 = resources::cpu_ticks(&bp).context("backup died while sampled")?;
    let mn1 = resources::cpu_ns(&mp)?;
    let bn1 = resources::cpu_ns(&bp)?;
    let hz = resources::ticks_per_sec() as f64;
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / secs * 100.0;
    let u = Usage {
        master_rss_kib,
        backup_rss_kib,
        master_cpu_pct: pct(m0, m1),
        backup_cpu_pct: pct(b0, b1),
        master_cpu_ms: mn1.saturating_sub(mn0) as f64 / 1e6,
        backup_cpu_ms: bn1.saturating_sub(bn0) as f64 / 1e6,
        processes: mp.len(),
    };
    backup.stop(Duration::from_secs(3));
    master.stop(Duration::from_secs(3));
    Ok(u)
}
