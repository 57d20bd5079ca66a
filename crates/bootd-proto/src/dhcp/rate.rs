//! Per-MAC token buckets, so one looping client cannot flood the service. Memory is
//! bounded and every check is O(1): buckets live in two generations that rotate.
//!
//! A MAC seen in the last generation keeps its bucket; one absent from both starts full.
//! A flood of random MACs therefore costs at most two tables of [`MAX_TRACKED_MACS`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::mac::MacAddr;

/// Most MACs tracked per generation.
pub const MAX_TRACKED_MACS: usize = 65_536;
/// Age of a generation before it is rotated out.
pub const GENERATION: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per MAC: `rate` packets per second, bursts of `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    current: HashMap<MacAddr, Bucket>,
    previous: HashMap<MacAddr, Bucket>,
    started: Instant,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new(now: Instant) -> Self {
        RateLimiter {
            current: HashMap::new(),
            previous: HashMap::new(),
            started: now,
        }
    }

    fn rotate(&mut self, now: Instant) {
        self.previous = std::mem::take(&mut self.current);
        self.started = now;
    }

    /// Takes one token for `mac`; false when it is over its rate. `rate` 0 = no limit.
    pub fn allow(&mut self, mac: MacAddr, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        if now.duration_since(self.started) >= GENERATION || self.current.len() >= MAX_TRACKED_MACS
        {
            self.rotate(now);
        }
        let bucket = match self.current.get_mut(&mac) {
            Some(b) => b,
            None => {
                let carried = self.previous.remove(&mac).unwrap_or(Bucket {
                    tokens: rate,
                    last: now,
                });
                self.current.entry(mac).or_insert(carried)
            }
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// MACs currently tracked (both generations).
    pub fn tracked(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looping_client_is_held_to_its_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0);
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let allowed = (0..100).filter(|_| r.allow(mac, 5, t0)).count();
        assert_eq!(allowed, 5, "burst of `rate`");
        assert!(!r.allow(mac, 5, t0 + Duration::from_millis(100)));
        assert!(
            r.allow(mac, 5, t0 + Duration::from_millis(250)),
            "refills at rate"
        );
        assert!(
            r.allow(MacAddr([2, 0, 0, 0, 0, 2]), 5, t0),
            "other MACs unaffected"
        );
        assert!(r.allow(mac, 0, t0), "0 = unlimited");
    }

    #[test]
    fn memory_stays_bounded_under_a_random_mac_flood() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0);
        for i in 0..(3 * MAX_TRACKED_MACS as u32) {
            let b = i.to_be_bytes();
            assert!(r.allow(MacAddr([2, 0, b[0], b[1], b[2], b[3]]), 5, t0));
        }
        assert!(r.tracked() <= 2 * MAX_TRACKED_MACS);
        // A MAC limited in the previous generation stays limited after a rotation.
        let mac = MacAddr([2, 9, 9, 9, 9, 9]);
        for _ in 0..5 {
            r.allow(mac, 5, t0);
        }
        let later = t0 + GENERATION;
        assert!(r.allow(mac, 5, later), "refilled after 10 s");
    }
}
