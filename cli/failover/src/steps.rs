//! The steps of test-failover, in order. Each returns a table row; between
//! steps the cluster is brought back to steady state (the highest priority
//! node holding the VIP) so every step starts from the same place.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hadeploy_config::Unit;
use hadeploy_config::status::VrrpState;
use hadeploy_inventory::model::Cluster;

use crate::control::Control;
use crate::error::ControlError;
use crate::load::{Load, LoadSpec};
use crate::report::{Report, Row, Verdict};
use crate::window::{Observed, observe};
use crate::{Timers, ms};

pub struct Ctx {
    pub cluster: Cluster,
    /// (host, priority, interface), highest priority first.
    pub members: Vec<(String, u8, String)>,
    pub preempt: bool,
    pub vip: Ipv4Addr,
    pub timers: Timers,
    pub slack: Duration,
    pub only: Vec<String>,
    /// Units under test: ours by default; keepalived/nginx to measure the
    /// seed's stack in the same lab.
    pub vrrp_unit: String,
    pub proxy_unit: String,
}

impl Ctx {
    fn lbs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.0.clone()).collect()
    }
    fn top(&self) -> &str {
        &self.members[0].0
    }
    fn second(&self) -> &str {
        &self.members[1].0
    }
    fn wanted(&self, step: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| step.starts_with(o.as_str()))
    }
    /// Longest a takeover may take after a silent master: the RFC bound.
    fn unplanned_bound(&self) -> Duration {
        self.timers.master_down + self.slack
    }
    fn planned_bound(&self) -> Duration {
        self.timers.skew + self.slack
    }
}

/// `note`: what was seen, or the error that stopped the step.
fn row(
    step: &str,
    expectation: String,
    o: Option<&Observed>,
    ok: bool,
    note: impl std::fmt::Display,
) -> Row {
    Row {
        step: step.to_string(),
        expectation,
        outage_ms: o.map(|o| o.outage_ms),
        failed: o.map_or(0, |o| o.failed),
        total: o.map_or(0, |o| o.total),
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
        note: note.to_string(),
    }
}

fn skip(step: &str, expectation: &str, why: &str) -> Row {
    Row {
        step: step.to_string(),
        expectation: expectation.to_string(),
        outage_ms: None,
        failed: 0,
        total: 0,
        verdict: Verdict::Skip,
        note: why.to_string(),
    }
}

fn err_note(o: &Observed) -> String {
    o.first_error
        .as_ref()
        .map(|e| format!("first error: {e}"))
        .unwrap_or_default()
}

pub async fn run_all(mut ctl: Control, spec: LoadSpec, ctx: &Ctx, report: &mut Report) {
    let mut load = match Load::start(spec) {
        Ok(l) => l,
        Err(e) => {
            report
                .rows
                .push(row("load", "HTTP load on the VIP".into(), None, false, e));
            ctl.close().await;
            return;
        }
    };
    let rows = {
        let work = async {
            let mut rows = Vec::new();
            rows.push(steady(&mut ctl, &load, ctx).await);
            if rows[0].verdict == Verdict::Fail {
                return rows;
            }
            type StepFn = for<'a> fn(
                &'a mut Control,
                &'a Load,
                &'a Ctx,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Vec<Row>> + 'a>,
            >;
            let list: [(&str, StepFn); 6] = [
                ("planned switchover", |c, l, x| {
                    Box::pin(switchover(c, l, x))
                }),
                ("kill -9", |c, l, x| {
                    Box::pin(async move { vec![kill9(c, l, x).await] })
                }),
                ("power cut", |c, l, x| {
                    Box::pin(async move { vec![power_cut(c, l, x).await] })
                }),
                ("cable pull", |c, l, x| {
                    Box::pin(async move { vec![cable_pull(c, l, x).await] })
                }),
                ("backend failure", |c, l, x| {
                    Box::pin(async move { vec![backend_failure(c, l, x).await] })
                }),
                ("split brain", |c, l, x| {
                    Box::pin(async move { vec![split_brain(c, l, x).await] })
                }),
            ];
            for (name, f) in list {
                if !ctx.wanted(name) {
                    continue;
                }
                rows.extend(f(&mut ctl, &load, ctx).await);
                if let Err(e) = settle(&mut ctl, ctx).await {
                    rows.push(row("settle", "back to steady state".into(), None, false, e));
                    break;
                }
            }
            rows
        };
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    };
    match rows {
        Some(r) => report.rows = r,
        None => report.interrupted = true,
    }
    load.stop();
    report.restore_errors = ctl.restore().await;
    ctl.close().await;
}

/// Waits for the highest-priority node to hold the VIP alone (or, with
/// nopreempt, for exactly one holder).
async fn settle(ctl: &mut Control, ctx: &Ctx) -> Result<(), ControlError> {
    let lbs = ctx.lbs();
    let top = ctx.top().to_string();
    let preempt = ctx.preempt;
    let timeout = ctx.timers.master_down * 3 + Duration::from_secs(30);
    let (h, ok) = ctl
        .wait_holders(&lbs, ctx.vip, timeout, |h| {
            if preempt {
                h == [top.as_str()]
            } else {
                h.len() == 1
            }
        })
        .await;
    // Let the proxies' health checks see the backends again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok.map(|_| ()).ok_or(ControlError::Unsettled {
        secs: timeout.as_secs(),
        holders: h,
    })
}

async fn steady(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Row {
    let step = "steady state";
    let expect = format!(
        "{} alone holds {}, weights kept, 0 failed",
        ctx.top(),
        ctx.vip
    );
    if let Err(e) = settle(ctl, ctx).await {
        return row(step, expect, None, false, e);
    }
    // The daemons' own view must agree with the interfaces. Another stack
    // (keepalived) has no hadeploy status: its unit must at least be active
    // on every node.
    let ours = Unit::from_service(&ctx.vrrp_unit) == Some(Unit::Vrrp);
    let mut states = Vec::new();
    let mut states_ok = true;
    for (i, (h, _, _)) in ctx.members.iter().enumerate() {
        let s = if ours {
            let state = ctl
                .status(h)
                .await
                .and_then(|s| s.vrrp)
                .and_then(|v| v.instances.into_iter().next())
                .map(|i| i.state);
            let want = if i == 0 {
                VrrpState::Master
            } else {
                VrrpState::Backup
            };
            states_ok &= state == Some(want);
            state.map_or_else(|| "?".to_string(), |s| s.to_string())
        } else {
            let active = ctl.unit_state(h, &ctx.vrrp_unit).await;
            states_ok &= active == "active";
            format!("{} {active}", ctx.vrrp_unit)
        };
        states.push((h.clone(), s));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let o = observe(&load.samples(), t0, Instant::now());
    // Backend host -> configured weight, via the upstream server addresses.
    let mut weights: BTreeMap<String, u32> = BTreeMap::new();
    if let Some(b) = &ctx.cluster.backends {
        for up in ctx.cluster.upstreams.values() {
            for s in up.servers.iter().filter(|s| !s.backup && !s.down) {
                for h in &b.hosts {
                    if ctl
                        .hosts
                        .get(h)
                        .and_then(|x| x.address)
                        .is_some_and(|a| std::net::IpAddr::V4(a.addr()) == s.address.ip())
                    {
                        weights.insert(h.clone(), s.weight);
                    }
                }
            }
        }
    }
    let served: usize = o.backends.values().sum();
    let total_w: u32 = weights.values().sum();
    let mut ratio_ok = true;
    let mut shares = Vec::new();
    if total_w > 0 && served > 0 {
        for (h, w) in &weights {
            let want = f64::from(*w) / f64::from(total_w);
            let got = o.backends.get(h).copied().unwrap_or(0) as f64 / served as f64;
            ratio_ok &= (want - got).abs() <= 0.05;
            shares.push(format!("{h} {:.0}%/{:.0}%", got * 100.0, want * 100.0));
        }
    }
    let ok = o.failed == 0 && o.total > 0 && ratio_ok && states_ok;
    let states = states
        .iter()
        .map(|(h, s)| format!("{h} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let note = if shares.is_empty() {
        format!("{states}; {}", err_note(&o))
    } else {
        format!("{states}; served/weight: {}", shares.join(", "))
    };
    row(step, expect, Some(&o), ok, note)
}

async fn switchover(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Vec<Row> {
    let lbs = ctx.lbs();
    let (top, second) = (ctx.top().to_string(), ctx.second().to_string());
    let step = "planned switchover";
    let expect = format!(
        "{second} takes over, outage <= Skew_Time+{} ms, 0 failed",
        ms(ctx.slack)
    );
    let t0 = Instant::now();
    if let Err(e) = ctl.stop_unit(&top, &ctx.vrrp_unit).await {
        return vec![row(step, expect, None, false, e)];
    }
    let (h, took) = ctl
        .wait_holders(
            &lbs,
            ctx.vip,
            ctx.timers.master_down + Duration::from_secs(3),
            |h| h == [second.as_str()],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = observe(&load.samples(), t0, Instant::now());
    let ok = took.is_some() && o.failed == 0 && o.outage_ms <= ms(ctx.planned_bound());
    let note = if took.is_none() {
        format!("holders {h:?}")
    } else {
        err_note(&o)
    };
    let mut rows = vec![row(step, expect, Some(&o), ok, note)];

    let step = "recovery";
    let expect = if ctx.preempt {
        format!("{top} preempts back within Master_Down_Interval, 0 failed")
    } else {
        format!("nopreempt: {second} keeps the VIP, 0 failed")
    };
    let t0 = Instant::now();
    if let Err(e) = ctl.start_unit(&top, &ctx.vrrp_unit).await {
        rows.push(row(step, expect, None, false, e));
        return rows;
    }
    let want = if ctx.preempt {
        top.clone()
    } else {
        second.clone()
    };
    let wait = ctx.timers.master_down * 2 + Duration::from_secs(3);
    let (h, took) = if ctx.preempt {
        ctl.wait_holders(&lbs, ctx.vip, wait, |h| h == [want.as_str()])
            .await
    } else {
        tokio::time::sleep(wait).await;
        let h = ctl.holders(&lbs, ctx.vip).await;
        let ok = h == [want.as_str()];
        (h, ok.then(Instant::now))
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let o = observe(&load.samples(), t0, Instant::now());
    let ok = took.is_some() && o.failed == 0;
    let note = if took.is_none() {
        format!("holders {h:?}")
    } else {
        err_note(&o)
    };
    rows.push(row(step, expect, Some(&o), ok, note));
    rows
}

async fn unplanned(ctl: &mut Control, load: &Load, ctx: &Ctx, step: &str, t0: Instant) -> Row {
    let lbs = ctx.lbs();
    let second = ctx.second().to_string();
    let expect = format!(
        "{second} serves, outage <= Master_Down_Interval+{} ms",
        ms(ctx.slack)
    );
    let (h, took) = ctl
        .wait_holders(
            &lbs,
            ctx.vip,
            ctx.timers.master_down + Duration::from_secs(5),
            |h| h.contains(&second),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let o = observe(&load.samples(), t0, Instant::now());
    let ok = took.is_some() && o.outage_ms <= ms(ctx.unplanned_bound());
    let note = if took.is_none() {
        format!("holders {h:?}")
    } else {
        err_note(&o)
    };
    row(step, expect, Some(&o), ok, note)
}

async fn kill9(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Row {
    let step = "kill -9 of the VRRP daemon";
    let top = ctx.top().to_string();
    let t0 = Instant::now();
    if let Err(e) = ctl.kill_unit(&top, &ctx.vrrp_unit).await {
        return row(step, "backup takes over".into(), None, false, e);
    }
    // systemd restarts the daemon after 1 s; it starts as BACKUP and clears
    // the VIP it left, so the backup's takeover is what ends the outage.
    let r = unplanned(ctl, load, ctx, step, t0).await;
    // A unit without Restart= (Debian's keepalived) stays dead: start it
    // after the measurement so the next steps start from steady state.
    if let Err(e) = ctl.ensure_active(&top, &ctx.vrrp_unit).await {
        return row(step, r.expectation, None, false, format!("restart: {e}"));
    }
    r
}

async fn power_cut(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Row {
    let step = "power cut of the master";
    if ctl.lab.is_none() {
        return skip(step, "backup takes over", "needs the local lab");
    }
    let top = ctx.top().to_string();
    let t0 = Instant::now();
    if let Err(e) = ctl.power_cut(&top).await {
        return row(step, "backup takes over".into(), None, false, e);
    }
    let r = unplanned(ctl, load, ctx, step, t0).await;
    if let Err(e) = ctl.power_on(&top).await {
        return row(step, r.expectation, None, false, format!("power on: {e}"));
    }
    r
}

async fn cable_pull(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Row {
    let step = "cable pull on the master";
    if ctl.lab.is_none() {
        return skip(step, "backup takes over", "needs the local lab");
    }
    let top = ctx.top().to_string();
    let t0 = Instant::now();
    if let Err(e) = ctl.cable_pull(&top) {
        return row(step, "backup takes over".into(), None, false, e);
    }
    let r = unplanned(ctl, load, ctx, step, t0).await;
    if let Err(e) = ctl.cable_plug(&top) {
        return row(step, r.expectation, None, false, format!("plug: {e}"));
    }
    r
}

async fn backend_failure(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Row {
    let step = "backend failure";
    let Some(b) = ctx
        .cluster
        .backends
        .as_ref()
        .and_then(|b| b.hosts.first().cloned())
    else {
        return skip(step, "0 failed", "no managed backends in the cluster");
    };
    let expect = format!("{b} stopped: 0 failed, others serve");
    let t0 = Instant::now();
    if let Err(e) = ctl.stop_unit(&b, &ctx.proxy_unit).await {
        return row(step, expect, None, false, e);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t1 = Instant::now();
    let o = observe(&load.samples(), t0, t1);
    let restored = ctl.start_unit(&b, &ctx.proxy_unit).await;
    // After the restore the backend must serve again (health checks rise).
    let mut back = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let later = observe(&load.samples(), t1, Instant::now());
        if later.backends.get(&b).copied().unwrap_or(0) > 0 {
            back = true;
            break;
        }
    }
    let late = o
        .backends
        .iter()
        .filter(|(h, _)| **h == b)
        .map(|(_, n)| *n)
        .sum::<usize>();
    let ok = o.failed == 0 && restored.is_ok() && back;
    let note = match (restored, back) {
        (Err(e), _) => format!("restore: {e}"),
        (Ok(()), false) => format!("{b} did not serve again within 15 s"),
        _ if o.failed > 0 => err_note(&o),
        _ => format!("{b} served {late} before it stopped; back after restore"),
    };
    row(step, expect, Some(&o), ok, note)
}

async fn split_brain(ctl: &mut Control, load: &Load, ctx: &Ctx) -> Row {
    let step = "split brain and heal";
    let expect = format!(
        "both MASTER while split; after heal one holder within 3 adverts ({} ms), client ARP on it",
        ms(ctx.timers.advert * 3)
    );
    if ctl.lab.is_none() {
        return skip(step, &expect, "needs the local lab");
    }
    let lbs = ctx.lbs();
    let top = ctx.top().to_string();
    let t0 = Instant::now();
    if let Err(e) = ctl.partition(&lbs) {
        return row(step, expect, None, false, e);
    }
    let (h, split) = ctl
        .wait_holders(
            &lbs,
            ctx.vip,
            ctx.timers.master_down + Duration::from_secs(5),
            |h| h.len() == lbs.len(),
        )
        .await;
    if split.is_none() {
        let _ = ctl.heal(&lbs);
        return row(
            step,
            expect,
            None,
            false,
            format!("while split, holders were {h:?}"),
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let healed_at = Instant::now();
    if let Err(e) = ctl.heal(&lbs) {
        return row(step, expect, None, false, e);
    }
    let limit = ctx.timers.advert * 3;
    let (h, one) = ctl
        .wait_holders(&lbs, ctx.vip, limit + Duration::from_secs(3), |h| {
            h == [top.as_str()]
        })
        .await;
    let converged = one.map(|t| t.duration_since(healed_at));
    // The client follows the survivor's gratuitous ARPs; Linux ignores ARP
    // updates within 1 s (locktime) of the last change, so give the spread
    // burst its time, then poll.
    let iface = ctx.members[0].2.clone();
    let mac = ctl.mac(&top, &iface).await;
    let check_from = healed_at + limit.max(Duration::from_millis(1500));
    let mut client = None;
    while Instant::now() < check_from + Duration::from_secs(3) {
        if Instant::now() >= check_from {
            client = ctl.client_neighbor(ctx.vip);
            if client.is_some() && client == mac {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = observe(&load.samples(), t0, Instant::now());
    let in_time = converged.is_some_and(|d| d <= limit + ctx.slack);
    let arp_ok = mac.is_some() && mac == client;
    let note = format!(
        "one holder after {}; client ARP {} vs {top} {}",
        converged.map_or("never".to_string(), |d| format!("{} ms", d.as_millis())),
        client.unwrap_or_else(|| "none".into()),
        mac.unwrap_or_else(|| "?".into())
    );
    let note = if h.len() != 1 {
        format!("{note}; holders {h:?}")
    } else {
        note
    };
    let note = if o.failed > 0 {
        format!("{note}; {}", err_note(&o))
    } else {
        note
    };
    row(step, expect, Some(&o), in_time && arp_ok, note)
}
