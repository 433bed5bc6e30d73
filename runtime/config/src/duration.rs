//! Durations written the way ops people write them: `1s`, `100ms`, `2m`.

use std::time::Duration;

/// serde adapter: `humantime` strings in, canonical strings out, so a
/// rendered file always shows `1s` rather than a float of seconds.
pub mod human {
    pub use humantime_serde::{deserialize, serialize};
}

/// serde adapter for `Option<Duration>`.
pub mod human_opt {
    pub use humantime_serde::option::{deserialize, serialize};
}

/// Canonical text form used by templates and error messages.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
