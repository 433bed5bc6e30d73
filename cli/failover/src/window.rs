//! What the client saw during one step: the longest stretch without a
//! successful response (the outage), failed and total requests, and which
//! backends answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::load::Sample;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Observed {
    pub total: usize,
    pub failed: usize,
    pub outage_ms: u64,
    pub backends: BTreeMap<String, usize>,
    pub first_error: Option<String>,
}

/// Requests started in `[from, to)`; the outage is the longest gap between
/// successive successful completions, counting from `from`, and up to `to`
/// when the requests after the last success failed (a step that ends while
/// clients still fail has an open outage).
pub fn observe(samples: &[Sample], from: Instant, to: Instant) -> Observed {
    let mut o = Observed::default();
    let mut ends: Vec<Instant> = Vec::new();
    for s in samples.iter().filter(|s| s.start >= from && s.start < to) {
        o.total += 1;
        if s.ok {
            ends.push(s.end);
            if let Some(b) = &s.backend {
                *o.backends.entry(b.clone()).or_default() += 1;
            }
        } else {
            o.failed += 1;
            if o.first_error.is_none() {
                o.first_error.clone_from(&s.error);
            }
        }
    }
    ends.sort();
    let mut last = from;
    let mut worst = Duration::ZERO;
    for e in ends.iter().filter(|e| **e >= from) {
        worst = worst.max(e.saturating_duration_since(last));
        last = *e;
    }
    // The trailing gap: when requests started after the last success still
    // failed, clients are out from `last` up to the end of the window.
    let last_ok_start = samples
        .iter()
        .filter(|s| s.ok && s.start >= from && s.start < to)
        .map(|s| s.start)
        .max();
    let failing_at_end = samples
        .iter()
        .any(|s| !s.ok && s.start < to && last_ok_start.is_some_and(|l| s.start > l));
    if failing_at_end || ends.is_empty() {
        worst = worst.max(to.saturating_duration_since(last));
    }
    o.outage_ms = u64::try_from(worst.as_millis()).unwrap_or(u64::MAX);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t0: Instant, start_ms: u64, end_ms: u64, ok: bool) -> Sample {
        Sample {
            start: t0 + Duration::from_millis(start_ms),
            end: t0 + Duration::from_millis(end_ms),
            ok,
            backend: ok.then(|| "web1".to_string()),
            error: (!ok).then(|| "x".to_string()),
        }
    }

    #[test]
    fn outage_is_the_longest_gap_between_successes() {
        let t0 = Instant::now();
        let v = vec![
            s(t0, 0, 5, true),
            s(t0, 10, 15, true),
            s(t0, 20, 2000, false),
            s(t0, 30, 900, true),
            s(t0, 40, 905, true),
        ];
        let o = observe(&v, t0, t0 + Duration::from_secs(3));
        assert_eq!(o.total, 5);
        assert_eq!(o.failed, 1);
        assert_eq!(o.outage_ms, 885);
        assert_eq!(o.backends["web1"], 4);
    }

    #[test]
    fn failures_until_the_end_of_the_window_are_an_outage() {
        let t0 = Instant::now();
        let v = vec![
            s(t0, 0, 5, true),
            s(t0, 10, 15, true),
            s(t0, 20, 2020, false),
            s(t0, 30, 2030, false),
        ];
        let o = observe(&v, t0, t0 + Duration::from_millis(2500));
        assert_eq!(o.failed, 2);
        assert_eq!(o.outage_ms, 2485);
    }

    #[test]
    fn no_success_means_the_whole_window_is_an_outage() {
        let t0 = Instant::now();
        let v = vec![s(t0, 0, 5, false)];
        let o = observe(&v, t0, t0 + Duration::from_millis(700));
        assert_eq!(o.outage_ms, 700);
    }
}
