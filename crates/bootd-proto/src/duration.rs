//! The one duration grammar of bootd and bootctl: `"500ms"`, `"30s"`, `"45m"`,
//! `"1h30m"`, `"2d"` — numbers with units, largest first, each unit at most once.

use std::time::Duration;
use thiserror::Error;

/// A string that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration {shown:?}: {why}; expected a number and a unit (ms, s, m, h, d) such as \"30s\" or \"1h30m\"")]
pub struct DurationError {
    /// The input (its first 64 characters).
    pub shown: String,
    /// What was wrong with it.
    pub why: String,
}

/// Duration units, largest first (a duration string lists them in this order).
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `"500ms"`, `"30s"`, `"45m"`, `"1h30m"`, `"2d"`: numbers with units d, h, m, s,
/// ms, largest unit first, each at most once.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let bad = |why: &str| DurationError {
        shown: s.chars().take(64).collect(),
        why: why.to_string(),
    };
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    // Index into DURATION_UNITS of the last unit seen, to enforce largest-first order.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("a number is missing"));
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(letters);
        if unit.is_empty() {
            return Err(bad("a unit is missing"));
        }
        let index = DURATION_UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| bad(&format!("unknown unit {unit:?}")))?;
        if last_unit.is_some_and(|last| index <= last) {
            return Err(bad("units must go from largest to smallest, each once"));
        }
        last_unit = Some(index);
        let scale = DURATION_UNITS.get(index).map_or(1, |(_, ms)| *ms);
        let value: u64 = number.parse().map_err(|_| bad("number too large"))?;
        total_ms = value
            .checked_mul(scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| bad("too large"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse`] reads it (`"1h30m"`, `"500ms"`, `"0s"`);
/// precision below a millisecond is dropped.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (name, scale) in DURATION_UNITS {
        let scale = u128::from(scale);
        let count = ms / scale;
        if count > 0 {
            out.push_str(&format!("{count}{name}"));
            ms %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_same_grammar() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)));
            assert_eq!(format(Duration::from_millis(ms)), text);
        }
        assert_eq!(format(Duration::ZERO), "0s");
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "30",
            "s",
            "5x",
            "30s1m",
            "1m1m",
            "99999999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
