//! What a delivery outcome means for its row: delivered, retried after an exponential
//! backoff with jitter, or dead-lettered. Pure functions, so the policy is unit-tested.

use std::time::Duration;

/// First retry delay (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Attempts after which a rejected event (4xx other than 408/429) is dead-lettered.
pub const MAX_REJECTED_ATTEMPTS: u32 = 5;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status {
        code: u16,
        /// `Retry-After` in seconds, if the answer carried one.
        retry_after: Option<u64>,
    },
    /// No answer: connection refused or reset, TLS failure, timeout. The text says which.
    Transport(String),
}

/// What to do with the row after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again after the delay; the string is the row's `last_error`.
    Retry(Duration, String),
    /// Give up on this event; the string is the row's `last_error`.
    Dead(String),
}

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

/// Decides the fate of a row after its `attempts`-th attempt (counting this one).
pub fn judge(outcome: &Outcome, attempts: u32, jitter: f64) -> Verdict {
    match outcome {
        Outcome::Status { code, .. } if (200..300).contains(code) => Verdict::Delivered,
        Outcome::Status { code, retry_after } => {
            let error = format!("HTTP {code}");
            let retryable = *code == 408 || *code == 429 || *code >= 500;
            if !retryable && attempts >= MAX_REJECTED_ATTEMPTS {
                return Verdict::Dead(format!("{error}, rejected {attempts} times"));
            }
            let mut delay = backoff(attempts, jitter);
            // An upstream that says when to come back is obeyed, within the cap.
            if let Some(secs) = retry_after {
                delay = delay.max(Duration::from_secs(*secs).min(BACKOFF_CAP));
            }
            Verdict::Retry(delay, error)
        }
        Outcome::Transport(e) => Verdict::Retry(backoff(attempts, jitter), e.clone()),
    }
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

    #[test]
    fn outcomes_are_judged_by_status() {
        let st = |code| Outcome::Status {
            code,
            retry_after: None,
        };
        assert_eq!(judge(&st(204), 1, 0.0), Verdict::Delivered);
        for code in [500, 503, 408, 429] {
            assert!(
                matches!(judge(&st(code), 100, 0.0), Verdict::Retry(_, _)),
                "{code} is retried forever"
            );
        }
        assert!(matches!(judge(&st(400), 4, 0.0), Verdict::Retry(_, _)));
        assert_eq!(
            judge(&st(400), 5, 0.0),
            Verdict::Dead("HTTP 400, rejected 5 times".into())
        );
        assert!(matches!(
            judge(&Outcome::Transport("connection refused".into()), 50, 0.0),
            Verdict::Retry(d, e) if d == BACKOFF_CAP / 2 && e == "connection refused"
        ));
        let slow = Outcome::Status {
            code: 429,
            retry_after: Some(30),
        };
        assert_eq!(
            judge(&slow, 1, 0.0),
            Verdict::Retry(Duration::from_secs(30), "HTTP 429".into())
        );
    }
}
