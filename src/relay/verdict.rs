//! What a delivery outcome means for its row: delivered, retried after the outbound
//! backoff, or dead-lettered. Pure functions, so the policy is unit-tested.

use crate::outbound::{backoff, Answer, OutboundError, BACKOFF_CAP};
use std::time::Duration;

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
        /// The start of the answer's body (for the log, not the row).
        excerpt: String,
    },
    /// No answer: connection refused or reset, TLS failure, timeout.
    Transport(OutboundError),
}

impl Outcome {
    /// The outcome of one request: any answer is a status, anything else is transport.
    pub fn of(result: Result<Answer, OutboundError>) -> Outcome {
        match result {
            Ok(a) => Outcome::Status {
                code: a.status,
                retry_after: a.retry_after,
                excerpt: crate::outbound::excerpt(&a.body),
            },
            Err(e) => Outcome::Transport(e),
        }
    }
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

/// Decides the fate of a row after its `attempts`-th attempt (counting this one).
pub fn judge(outcome: &Outcome, attempts: u32, jitter: f64) -> Verdict {
    match outcome {
        Outcome::Status { code, .. } if (200..300).contains(code) => Verdict::Delivered,
        Outcome::Status {
            code, retry_after, ..
        } => {
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
        Outcome::Transport(e) => Verdict::Retry(backoff(attempts, jitter), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_judged_by_status() {
        let st = |code| Outcome::Status {
            code,
            retry_after: None,
            excerpt: String::new(),
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
            judge(
                &Outcome::Transport(OutboundError::Transport("connection refused".into())),
                50,
                0.0
            ),
            Verdict::Retry(d, e) if d == BACKOFF_CAP / 2 && e == "connection refused"
        ));
        let slow = Outcome::Status {
            code: 429,
            retry_after: Some(30),
            excerpt: "slow down".into(),
        };
        assert_eq!(
            judge(&slow, 1, 0.0),
            Verdict::Retry(Duration::from_secs(30), "HTTP 429".into())
        );
    }
}
