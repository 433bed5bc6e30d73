//! The two RFC timer formulas, as pure functions of (version, priority,
//! Master_Adver_Interval).
//!
//! Skew_Time makes the backup with the highest priority claim first, so a
//! master failure elects one new master instead of a burst of them. The
//! arithmetic is done in nanoseconds so the worked numbers in the notes
//! (3.609375 s, 0.609375 s, 0.3609375 s) come out exact, not rounded to
//! keepalived's microseconds.

use std::time::Duration;

use crate::packet::Version;

/// Skew_Time for a router of `priority`.
///
/// v2 (RFC 3768): `(256 - Priority) / 256` seconds, independent of the
/// interval. v3 (RFC 5798/9568): `((256 - Priority) * Master_Adver_Interval)
/// / 256`, so sub-second intervals fail over proportionally faster.
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let weight = 256 - u128::from(priority);
    let base_nanos = match version {
        Version::V2 => 1_000_000_000,
        Version::V3 => master_adver_interval.as_nanos(),
    };
    nanos(base_nanos * weight / 256)
}

/// Master_Down_Interval: `3 * Master_Adver_Interval + Skew_Time`.
///
/// In v2 Master_Adver_Interval always equals the local Adver_Int (adverts
/// with another interval are discarded); in v3 it is learned from the
/// master's adverts while Backup.
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    master_adver_interval * 3 + skew_time(version, priority, master_adver_interval)
}

/// Duration from nanoseconds. Intervals are at most 255 s, so this never
/// saturates in practice; saturating beats panicking in a protocol timer.
fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn v2_worked_numbers_from_the_notes() {
        // Advert 1 s, backup priority 100: (256-100)/256 = 0.609375 s skew,
        // 3.609375 s after the last advert.
        assert_eq!(
            skew_time(Version::V2, 100, S),
            Duration::from_nanos(609_375_000)
        );
        assert_eq!(
            master_down_interval(Version::V2, 100, S),
            Duration::from_nanos(3_609_375_000)
        );
    }

    #[test]
    fn v2_skew_ignores_interval() {
        let a = skew_time(Version::V2, 100, Duration::from_secs(5));
        assert_eq!(a, Duration::from_nanos(609_375_000));
        assert_eq!(
            master_down_interval(Version::V2, 100, Duration::from_secs(5)),
            Duration::from_nanos(15_609_375_000)
        );
    }

    #[test]
    fn v2_priority_extremes() {
        // Owner: 1/256 s. Lowest real priority: 255/256 s.
        assert_eq!(
            skew_time(Version::V2, 255, S),
            Duration::from_nanos(3_906_250)
        );
        assert_eq!(
            skew_time(Version::V2, 1, S),
            Duration::from_nanos(996_093_750)
        );
        // Higher priority always claims earlier.
        for p in 1..255u8 {
            assert!(
                master_down_interval(Version::V2, p + 1, S)
                    < master_down_interval(Version::V2, p, S)
            );
        }
    }

    #[test]
    fn v3_worked_number_from_the_notes() {
        // Advert 0.1 s, priority 100: 0.3 + 156 * 0.1 / 256 = 0.3609375 s.
        let i = Duration::from_millis(100);
        assert_eq!(
            skew_time(Version::V3, 100, i),
            Duration::from_nanos(60_937_500)
        );
        assert_eq!(
            master_down_interval(Version::V3, 100, i),
            Duration::from_nanos(360_937_500)
        );
    }

    #[test]
    fn v3_skew_scales_with_interval() {
        assert_eq!(
            master_down_interval(Version::V3, 100, S),
            Duration::from_nanos(3_609_375_000)
        );
        assert_eq!(
            master_down_interval(Version::V3, 100, Duration::from_millis(40_950)),
            Duration::from_millis(40_950) * 3 + Duration::from_nanos(24_953_906_250)
        );
    }
}
