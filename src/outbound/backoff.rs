//! Exponential backoff with jitter for every outbound retry (relay deliveries, group
//! hooks): pure functions, so the schedule is unit-tested.

use std::time::Duration;

/// First retry delay (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The delay before attempt `attempts + 1`, after `attempts` failures (≥ 1):
/// `base · 2^(attempts-1)` capped, then scaled into [½, 1] of itself by `jitter` ∈ [0, 1)
/// so that many nodes failing together do not retry together.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(31);
    let full = BACKOFF_BASE
        .checked_mul(1u32 << exp)
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    full.mul_f64(0.5 + jitter / 2.0)
}

/// A jitter value in [0, 1) from the OS random source (0.5 if it is unavailable).
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_the_cap() {
        let full: Vec<u64> = (1..=12).map(|n| backoff(n, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(0, 1.0), BACKOFF_BASE);
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        for n in 1..20 {
            let full = backoff(n, 1.0);
            let low = backoff(n, 0.0);
            assert_eq!(low, full / 2);
            let mid = backoff(n, random_unit());
            assert!(mid >= low && mid <= full, "{n}: {mid:?}");
        }
        assert_eq!(backoff(3, f64::NAN), backoff(3, 0.0));
        assert_eq!(backoff(3, 7.0), backoff(3, 1.0));
    }
}
