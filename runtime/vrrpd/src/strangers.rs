//! Rate-limited reports of adverts from sources that are not peers.
//!
//! A forged advert or a neighbouring cluster reusing our VRID is something
//! an operator must see at once (a debug line and a counter are not enough),
//! but a hostile sender must not flood the journal: the first advert of each
//! source is reported, then at most one line per source every
//! [`REPORT_EVERY`], saying how many were dropped in between.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::Instant;

/// At most one line per source this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Sources remembered; past this the oldest are forgotten (a spoofed-source
/// flood must not grow memory).
const MAX_SOURCES: usize = 256;

#[derive(Debug, Default)]
pub struct Strangers {
    /// Source -> (last report, dropped since).
    seen: HashMap<Ipv4Addr, (Instant, u64)>,
}

impl Strangers {
    /// Records an advert from `src`; returns `Some(dropped since the last
    /// report)` when it is time to report this source.
    pub fn note(&mut self, src: Ipv4Addr, now: Instant) -> Option<u64> {
        if let Some((last, n)) = self.seen.get_mut(&src) {
            *n += 1;
            if now.duration_since(*last) < REPORT_EVERY {
                return None;
            }
            let dropped = *n - 1;
            *last = now;
            *n = 0;
            return Some(dropped);
        }
        if self.seen.len() >= MAX_SOURCES {
            self.seen
                .retain(|_, (last, _)| now.duration_since(*last) < REPORT_EVERY);
            if self.seen.len() >= MAX_SOURCES {
                // Still full of recent sources: stay quiet, the counter
                // still counts every packet.
                return None;
            }
        }
        self.seen.insert(src, (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_once_per_interval_per_source() {
        let t0 = Instant::now();
        let mut s = Strangers::default();
        let a = Ipv4Addr::new(10, 0, 0, 66);
        let b = Ipv4Addr::new(10, 0, 0, 67);
        assert_eq!(s.note(a, t0), Some(0));
        for k in 1..10 {
            assert_eq!(s.note(a, t0 + Duration::from_secs(k)), None);
        }
        assert_eq!(
            s.note(b, t0 + Duration::from_secs(5)),
            Some(0),
            "per source"
        );
        assert_eq!(s.note(a, t0 + REPORT_EVERY), Some(9));
        assert_eq!(s.note(a, t0 + REPORT_EVERY + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_spoofed_flood_is_bounded() {
        let t0 = Instant::now();
        let mut s = Strangers::default();
        let reported = (0..10_000u32)
            .filter(|&i| s.note(Ipv4Addr::from(i), t0).is_some())
            .count();
        assert_eq!(reported, MAX_SOURCES);
        assert!(s.seen.len() <= MAX_SOURCES);
        // Later, old entries make room again.
        assert!(
            s.note(Ipv4Addr::new(1, 2, 3, 4), t0 + REPORT_EVERY)
                .is_some()
        );
    }
}
