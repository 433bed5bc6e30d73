//! Targets, statistics and the printed table / JSON document.

use serde::Serialize;

use crate::bench::{BACKUP_PRIO, Sample, Stop, Usage};
use crate::daemon::{Impl, Proto};

/// What a measurement may exceed its RFC bound by.
pub const SLACK_MS: f64 = 50.0;
pub const RSS_TARGET_KIB: u64 = 8 * 1024;

/// All failovers of one daemon in one setting.
#[derive(Debug, Serialize)]
pub struct Series {
    pub daemon: Impl,
    pub proto: Proto,
    pub stop: Stop,
    pub samples: Vec<Sample>,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub environment: String,
    pub reps: usize,
    pub failover: Vec<Series>,
    pub usage: Vec<(Impl, Usage)>,
    pub usage_idle_secs: u64,
    pub usage_window_secs: u64,
}

/// RFC timers for the backup's priority, in ms: the VRRP crate's own
/// functions (v2's Skew_Time does not scale with the advert interval).
fn version(p: Proto) -> hadeploy_vrrp::Version {
    if p.version == 2 {
        hadeploy_vrrp::Version::V2
    } else {
        hadeploy_vrrp::Version::V3
    }
}

fn advert(p: Proto) -> std::time::Duration {
    std::time::Duration::from_millis(p.advert_ms)
}

fn skew(p: Proto) -> f64 {
    hadeploy_vrrp::skew_time(version(p), BACKUP_PRIO, advert(p)).as_secs_f64() * 1000.0
}

fn master_down(p: Proto) -> f64 {
    hadeploy_vrrp::master_down_interval(version(p), BACKUP_PRIO, advert(p)).as_secs_f64() * 1000.0
}

/// The bound a stop is judged against: Master_Down_Interval after the last
/// advert for a kill, Skew_Time after the signal for a graceful stop.
pub fn bound(p: Proto, stop: Stop) -> f64 {
    match stop {
        Stop::Kill => master_down(p),
        Stop::Term => skew(p),
    }
}

/// The measurement the bound applies to (see `Sample`).
pub fn judged(s: &Sample, stop: Stop) -> Option<f64> {
    match stop {
        Stop::Kill => s.from_wire,
        Stop::Term => Some(s.from_signal),
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

pub fn stats(mut v: Vec<f64>) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        n,
        min: v[0],
        median,
        max: v[n - 1],
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

pub fn setting(p: Proto) -> String {
    format!("v{} {}s", p.version, p.advert_ms as f64 / 1000.0)
}

fn stop_name(s: Stop) -> &'static str {
    match s {
        Stop::Kill => "kill -9",
        Stop::Term => "SIGTERM",
    }
}

fn row(s: &Series, label: &str, vals: Vec<f64>, target: Option<f64>) -> String {
    let head = format!(
        "{:<8} {:<8} {:<10} {:<17}",
        setting(s.proto),
        stop_name(s.stop),
        s.daemon.name(),
        label
    );
    let Some(st) = stats(vals) else {
        return format!("{head} no successful run ({} failed)", s.failed);
    };
    let fails = if s.failed > 0 {
        format!(" ({} failed)", s.failed)
    } else {
        String::new()
    };
    let judged = match target {
        Some(t) => format!(
            "{:>6.0} <={:>5.0} {}",
            t - SLACK_MS,
            t,
            verdict(st.max <= t)
        ),
        None => format!("{:>6} {:>7} info", "", ""),
    };
    format!(
        "{head} {:>2} {:>7.1} {:>7.1} {:>7.1} {judged}{fails}",
        st.n, st.min, st.median, st.max
    )
}

pub fn median_judged(s: &Series) -> Option<f64> {
    stats(s.samples.iter().filter_map(|x| judged(x, s.stop)).collect()).map(|st| st.median)
}

pub fn print(r: &Report) {
    println!("{}", r.environment);
    println!("\nFailover in ms: until the client first sees the backup's MAC claim the VIP (ARP)");
    println!(
        "{:<8} {:<8} {:<10} {:<17} {:>2} {:>7} {:>7} {:>7} {:>6} {:>7} result",
        "setting",
        "stop",
        "daemon",
        "measured from",
        "n",
        "min",
        "median",
        "max",
        "bound",
        "target"
    );
    for s in &r.failover {
        let b = bound(s.proto, s.stop);
        let (judged_label, info_label) = match s.stop {
            Stop::Kill => ("last advert", "kill"),
            Stop::Term => ("SIGTERM", "priority-0 advert"),
        };
        let j = s.samples.iter().filter_map(|x| judged(x, s.stop)).collect();
        println!("{}", row(s, judged_label, j, Some(b + SLACK_MS)));
        let info = s
            .samples
            .iter()
            .filter_map(|x| match s.stop {
                Stop::Kill => Some(x.from_signal),
                Stop::Term => x.from_wire,
            })
            .collect();
        println!("{}", row(s, info_label, info, None));
    }
    println!(
        "\nours / keepalived (medians of the bounded measurement; target <= 1.00, never slower)"
    );
    for s in r.failover.iter().filter(|s| s.daemon == Impl::Ours) {
        let theirs = r
            .failover
            .iter()
            .find(|t| t.daemon == Impl::Keepalived && t.proto == s.proto && t.stop == s.stop);
        if let (Some(a), Some(b)) = (median_judged(s), theirs.and_then(median_judged)) {
            let ratio = a / b;
            println!(
                "{:<8} {:<8} {:>7.1} / {:>7.1} = {:.3} {}",
                setting(s.proto),
                stop_name(s.stop),
                a,
                b,
                ratio,
                verdict(ratio <= 1.0)
            );
        }
    }
    print_usage(r);
}

fn print_usage(r: &Report) {
    if r.usage.is_empty() {
        return;
    }
    println!(
        "\nResources, settled pair at v3 advert 0.1 s: VmRSS after {} s as master; CPU (utime+stime, % of one core) over {} s",
        r.usage_idle_secs, r.usage_window_secs
    );
    println!(
        "{:<10} {:>5} {:>11} {:>11} {:>8} {:>8} {:>16}  target",
        "daemon", "procs", "master RSS", "backup RSS", "CPU mst", "CPU bkp", "on-CPU ms m/b"
    );
    for (imp, u) in &r.usage {
        let target = match imp {
            Impl::Ours => format!(
                "master RSS <= 8 MiB {}",
                verdict(u.master_rss_kib <= RSS_TARGET_KIB)
            ),
            Impl::Keepalived => "info".to_string(),
        };
        println!(
            "{:<10} {:>5} {:>7.1} MiB {:>7.1} MiB {:>7.2}% {:>7.2}% {:>16}  {target}",
            imp.name(),
            u.processes,
            u.master_rss_kib as f64 / 1024.0,
            u.backup_rss_kib as f64 / 1024.0,
            u.master_cpu_pct,
            u.backup_cpu_pct,
            format!("{:.1} / {:.1}", u.master_cpu_ms, u.backup_cpu_ms)
        );
    }
}
