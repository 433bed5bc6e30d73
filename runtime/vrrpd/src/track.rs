//! Track scripts (keepalived's `vrrp_script`) and their effect on an
//! instance's priority.
//!
//! Each referenced script runs on the worker runtime every `interval`, limited
//! by its `timeout`; exit 0 is success. `rise` successes in a row make it
//! good, `fall` failures in a row make it bad. Instances watch the result:
//! a positive weight is added while good, a negative weight subtracted while
//! bad, weight 0 puts the instance in FAULT while bad.

use std::collections::BTreeMap;
use std::time::Duration;

use hadeploy_config::vrrp::{Instance, TrackScript};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::process;

/// rise/fall hysteresis of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    good: bool,
    streak: u32,
}

impl Hysteresis {
    /// Starts good: a script that fails flips within `fall` runs of start,
    /// and starting bad would fire a false FAULT on every daemon start.
    pub fn new(rise: u32, fall: u32) -> Self {
        Hysteresis {
            rise: rise.max(1),
            fall: fall.max(1),
            good: true,
            streak: 0,
        }
    }

    /// Feeds one result; returns the (possibly new) state.
    pub fn feed(&mut self, success: bool) -> bool {
        if success == self.good {
            self.streak = 0;
        } else {
            self.streak += 1;
            let needed = if success { self.rise } else { self.fall };
            if self.streak >= needed {
                self.good = success;
                self.streak = 0;
            }
        }
        self.good
    }
}

/// Running track scripts, by name.
#[derive(Debug, Default)]
pub struct Trackers {
    scripts: BTreeMap<String, (watch::Receiver<bool>, JoinHandle<()>)>,
}

impl Trackers {
    /// Starts every script that some instance references, on `worker`.
    pub fn start(worker: &Handle, scripts: &[TrackScript], instances: &[Instance]) -> Trackers {
        let mut out = Trackers::default();
        for s in scripts {
            let used = instances
                .iter()
                .any(|i| i.track_script.iter().any(|r| r.name == s.name));
            if !used {
                continue;
            }
            let (tx, rx) = watch::channel(true);
            let task = worker.spawn(run_script(s.clone(), tx));
            out.scripts.insert(s.name.clone(), (rx, task));
        }
        out
    }

    /// The result channel of a script.
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<bool>> {
        self.scripts.get(name).map(|(rx, _)| rx.clone())
    }

    pub fn stop(self) {
        for (_, (_, task)) in self.scripts {
            task.abort();
        }
    }
}

async fn run_script(script: TrackScript, tx: watch::Sender<bool>) {
    let mut hyst = Hysteresis::new(script.rise, script.fall);
    let mut tick = tokio::time::interval(script.interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let run = process::run(&script.script, &[], &[], script.timeout).await;
        let ok = run.outcome.success();
        let before = hyst.good;
        let now = hyst.feed(ok);
        if before != now {
            if now {
                tracing::info!(track_script = %script.name, "track script {} is good again", script.name);
            } else {
                tracing::warn!(track_script = %script.name, status = %run.outcome, output = %run.output,
                    "track script {} failed {} times in a row: {}", script.name, script.fall, run.outcome);
            }
        }
        tx.send_replace(now);
        if tx.is_closed() {
            return;
        }
    }
}

/// What the track inputs do to one instance: weight sum and fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackEffect {
    /// Added to the configured priority (may be negative).
    pub delta: i32,
    /// A weight-0 script or a tracked interface is down.
    pub fault: bool,
}

/// keepalived's rule for a script with `weight` in state `good`.
pub fn script_effect(weight: i32, good: bool) -> TrackEffect {
    match (weight, good) {
        (0, false) => TrackEffect {
            delta: 0,
            fault: true,
        },
        (w, true) if w > 0 => TrackEffect {
            delta: w,
            fault: false,
        },
        (w, false) if w < 0 => TrackEffect {
            delta: w,
            fault: false,
        },
        _ => TrackEffect::default(),
    }
}

/// The effective priority: configured plus weights, kept in 1..=254 like
/// keepalived. The address owner (255) is never moved.
pub fn effective_priority(base: u8, delta: i32) -> u8 {
    if base == 255 {
        return 255;
    }
    let p = (i32::from(base) + delta).clamp(1, 254);
    // Clamped into 1..=254 above.
    u8::try_from(p).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_needs_fall_failures_and_rise_successes() {
        let mut h = Hysteresis::new(2, 3);
        assert!(h.feed(false));
        assert!(h.feed(false));
        assert!(!h.feed(false), "third failure flips");
        assert!(!h.feed(true));
        assert!(!h.feed(false), "streak broken");
        assert!(!h.feed(true));
        assert!(h.feed(true), "second success in a row flips");
    }

    #[test]
    fn weights_follow_keepalived() {
        assert_eq!(script_effect(10, true).delta, 10);
        assert_eq!(script_effect(10, false).delta, 0);
        assert_eq!(script_effect(-20, false).delta, -20);
        assert_eq!(script_effect(-20, true).delta, 0);
        assert!(script_effect(0, false).fault);
        assert!(!script_effect(0, true).fault);
    }

    #[test]
    fn priority_is_clamped() {
        assert_eq!(effective_priority(100, 50), 150);
        assert_eq!(effective_priority(100, 500), 254);
        assert_eq!(effective_priority(10, -50), 1);
        assert_eq!(effective_priority(255, -50), 255);
    }

    #[tokio::test]
    async fn failing_script_turns_bad() {
        let s = TrackScript {
            name: "chk".into(),
            script: vec!["/bin/false".into()],
            interval: Duration::from_millis(20),
            timeout: Duration::from_secs(1),
            weight: 0,
            rise: 1,
            fall: 2,
        };
        let (tx, mut rx) = watch::channel(true);
        let task = tokio::spawn(run_script(s, tx));
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|good| !*good))
            .await
            .expect("turns bad in time")
            .expect("channel open");
        task.abort();
    }
}
