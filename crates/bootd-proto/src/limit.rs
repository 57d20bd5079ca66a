//! Token buckets per key (a node, a source address) with bounded memory: at most
//! `capacity` keys are tracked; a new key past that evicts the key used least recently.
//! Every check is O(log n).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Order of last use (for eviction).
    tick: u64,
}

/// Token buckets per key: `rate` per second, bursts of `burst`.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    buckets: HashMap<K, Bucket>,
    /// (tick, key) of every bucket: the first is the least recently used.
    order: BTreeSet<(u64, K)>,
    capacity: usize,
    rate: f64,
    burst: f64,
    tick: u64,
}

impl<K: Hash + Eq + Ord + Clone> KeyedLimiter<K> {
    /// A limiter of `rate` requests per second per key, bursts of `burst`, tracking at
    /// most `capacity` keys (at least one).
    pub fn new(rate: f64, burst: u32, capacity: usize) -> Self {
        KeyedLimiter {
            buckets: HashMap::new(),
            order: BTreeSet::new(),
            capacity: capacity.max(1),
            rate: rate.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            tick: 0,
        }
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Whether `key` may go now; without taking a token, the wait until it may.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.buckets.get(key) {
            None => Ok(()),
            Some(b) => {
                let tokens = self.refilled(b, now);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
                }
            }
        }
    }

    /// Takes one token for `key`; when it has none, the wait until it has one.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.tick += 1;
        let tick = self.tick;
        let bucket = match self.buckets.get(key) {
            Some(b) => {
                let mut b = *b;
                self.order.remove(&(b.tick, key.clone()));
                b.tokens = self.refilled(&b, now);
                b
            }
            None => {
                if self.buckets.len() >= self.capacity {
                    if let Some((_, oldest)) = self.order.pop_first() {
                        self.buckets.remove(&oldest);
                    }
                }
                Bucket {
                    tokens: self.burst,
                    last: now,
                    tick,
                }
            }
        };
        let mut b = Bucket {
            last: now,
            tick,
            ..bucket
        };
        let answer = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        };
        self.buckets.insert(key.clone(), b);
        self.order.insert((tick, key.clone()));
        answer
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        (b.tokens + elapsed * self.rate).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = KeyedLimiter::new(2.0, 3, 10);
        for _ in 0..3 {
            assert!(l.take(&1u32, t0).is_ok());
        }
        let wait = l.take(&1u32, t0).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(l.check(&1u32, t0).is_err());
        // Another key is not affected.
        assert!(l.take(&2u32, t0).is_ok());
        // Half a second later one token is back (2 per second).
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check(&1u32, t1).is_ok());
        assert!(l.take(&1u32, t1).is_ok());
        assert!(l.take(&1u32, t1).is_err());
        // Refill stops at the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.take(&1u32, t2).is_ok());
        }
        assert!(l.take(&1u32, t2).is_err());
    }

    #[test]
    fn memory_is_bounded_and_the_least_recent_key_goes() {
        let t0 = Instant::now();
        let mut l = KeyedLimiter::new(1.0, 1, 4);
        for k in 0..4u32 {
            assert!(l.take(&k, t0).is_ok());
        }
        // Key 0 used again: it is now the most recent.
        assert!(l.take(&0, t0).is_err());
        for k in 100..10_000u32 {
            let _ = l.take(&k, t0);
            assert!(l.len() <= 4);
        }
        assert_eq!(l.len(), 4);
        // Keys 1..3 and 0 were evicted by the flood: they start full again.
        assert!(l.take(&0, t0).is_ok());
        assert_eq!(l.order.len(), l.buckets.len());
    }

    #[test]
    fn a_flood_of_new_keys_does_not_evict_a_busy_key_between_its_uses() {
        let t0 = Instant::now();
        let mut l = KeyedLimiter::new(1.0, 2, 3);
        assert!(l.take(&"busy", t0).is_ok());
        assert!(l.take(&"busy", t0).is_ok());
        assert!(l.take(&"a", t0).is_ok());
        assert!(l.take(&"busy", t0).is_err()); // touched: most recent again
        assert!(l.take(&"b", t0).is_ok()); // evicts "a", the least recent
        assert!(
            l.take(&"busy", t0).is_err(),
            "busy was evicted and refilled"
        );
    }
}
