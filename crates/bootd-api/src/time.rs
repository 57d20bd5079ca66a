//! Points in time on the wire: RFC 3339 in UTC with milliseconds,
//! `"2026-11-23T09:00:00.000Z"`, as the store writes them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A time of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

/// Why a text is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown:?} is not an RFC 3339 time")]
pub struct TimestampError {
    shown: String,
}

impl Timestamp {
    /// Now.
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }

    /// Unix milliseconds (the outbox keeps those).
    pub fn from_unix_millis(ms: u64) -> Timestamp {
        Timestamp(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Reads RFC 3339 (`Z` or an offset, with or without fractions).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        humantime::parse_rfc3339_weak(text)
            .map(Timestamp)
            .map_err(|_| TimestampError {
                shown: text.chars().take(64).collect(),
            })
    }

    /// A time the daemon's store wrote; the epoch if the text is damaged.
    pub fn from_stored(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap_or(Timestamp(UNIX_EPOCH))
    }

    /// The time since `earlier` (zero if it is not earlier).
    pub fn since(&self, earlier: Timestamp) -> Duration {
        self.0.duration_since(earlier.0).unwrap_or_default()
    }

    /// `HH:MM:SS` in UTC, for one-line displays.
    pub fn clock(&self) -> String {
        let text = self.to_string();
        text.get(11..19).map(str::to_string).unwrap_or(text)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_text_round_trips() {
        let text = "2026-11-23T09:00:00.250Z";
        let t: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        assert_eq!(t.clock(), "09:00:00");
        let whole = Timestamp::parse("2026-11-23T09:00:00Z").unwrap();
        assert_eq!(whole.to_string(), "2026-11-23T09:00:00.000Z");
        assert_eq!(t.since(whole), Duration::from_millis(250));
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"noon\"").is_err());
    }
}
