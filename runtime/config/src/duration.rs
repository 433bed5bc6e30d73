//! Durations written the way ops people write them: `1s`, `100ms`, `2m`.

use std::time::Duration;

/// Parses a humantime duration, with the one message both `hadeploy check`
/// (inventory keys) and `hadeploy-runtime check` (config keys) give.
pub fn parse(text: &str) -> Result<Duration, NotADuration> {
    humantime::parse_duration(text).map_err(|e| NotADuration {
        text: text.to_string(),
        reason: e,
    })
}

/// A value that is not a humantime duration.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a duration ({reason}); write e.g. 1s, 500ms, 2m")]
pub struct NotADuration {
    pub text: String,
    #[source]
    pub reason: humantime::DurationError,
}

/// Reads a duration inside the deserializer (an error raised after it
/// returned would be placed at the enclosing mapping, not at the value).
struct Visitor;

impl serde::de::Visitor<'_> for Visitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as 1s, 500ms or 2m")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }
}

/// serde adapter: `humantime` strings in, canonical strings out, so a
/// rendered file always shows `1s` rather than a float of seconds.
pub mod human {
    use std::time::Duration;

    use serde::Deserializer;

    pub use humantime_serde::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(super::Visitor)
    }
}

/// serde adapter for `Option<Duration>`.
pub mod human_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub use humantime_serde::option::serialize;

    /// `Some` of a duration read by [`super::Visitor`].
    struct Human(Duration);

    impl<'de> Deserialize<'de> for Human {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(super::Visitor).map(Human)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Human>::deserialize(d)?.map(|h| h.0))
    }
}

/// Canonical text form used by templates and error messages.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
