//! Machine callbacks (phase and hardware posts) rate limited per node and per source
//! address, so a flood from one host cannot starve the others. Memory is bounded: each
//! limiter tracks at most [`TRACKED`] keys (the least recently used goes first).

use crate::mac::MacAddr;
use bootd_proto::limit::KeyedLimiter;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Callbacks per second one node may post, sustained.
pub const PER_NODE_RATE: f64 = 5.0;
/// Callbacks one node may post at once.
pub const PER_NODE_BURST: u32 = 20;
/// Callbacks per second one source address may post, sustained (a NAT or a relay may
/// speak for many machines).
pub const PER_ADDRESS_RATE: f64 = 20.0;
/// Callbacks one source address may post at once.
pub const PER_ADDRESS_BURST: u32 = 50;
/// Keys each limiter tracks at most.
pub const TRACKED: usize = 4096;

/// The two limiters behind one lock.
#[derive(Debug)]
pub struct CallbackLimits {
    inner: Mutex<(KeyedLimiter<MacAddr>, KeyedLimiter<IpAddr>)>,
}

impl Default for CallbackLimits {
    fn default() -> Self {
        CallbackLimits {
            inner: Mutex::new((
                KeyedLimiter::new(PER_NODE_RATE, PER_NODE_BURST, TRACKED),
                KeyedLimiter::new(PER_ADDRESS_RATE, PER_ADDRESS_BURST, TRACKED),
            )),
        }
    }
}

impl CallbackLimits {
    /// Whether a callback for `mac` from `addr` may go now (taking a token of each);
    /// otherwise how long to wait. A refusal by one limiter takes nothing from the other.
    pub fn admit(&self, mac: Option<MacAddr>, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (nodes, addrs) = &mut *guard;
        addrs.check(&addr, now)?;
        if let Some(m) = mac {
            nodes.check(&m, now)?;
            nodes.take(&m, now)?;
        }
        addrs.take(&addr, now)
    }
}
