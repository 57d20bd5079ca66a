//! The lease table of full mode: which MAC holds which address, offers held briefly,
//! quarantined (declined) addresses. `plan` reads it (RFC 2131 §4.3), `apply` changes it.
//!
//! Planning without changing anything keeps the decision pure: the state only moves once
//! the decision says a reply goes out, and what must be persisted is returned by `apply`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use super::request::{MessageType, PxeRequest};
use super::{Lease, LeaseState, NodeBoot, Pool};
use crate::mac::MacAddr;

/// How long an offered address is held for the client that got the offer.
pub const OFFER_HOLD: Duration = Duration::from_secs(60);
/// How long a declined address stays out of use (RFC 2131 §3.1.5 leaves it to us).
pub const DECLINE_QUARANTINE: Duration = Duration::from_secs(600);
/// Most addresses examined to find a free one before giving up on the pool.
pub const MAX_SCAN: u32 = 1 << 20;
/// Upper bound on a lease time, so `now + lease_time` cannot overflow.
pub const MAX_LEASE_TIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The address part of an answer, planned from the table without changing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// Not an address question (proxy mode, or port 4011).
    None,
    /// Offer this address from this pool.
    Offer { ip: Ipv4Addr, pool: usize },
    /// Acknowledge (bind or extend) this address.
    Ack { ip: Ipv4Addr, pool: usize },
    /// Refuse the requested address.
    Nak(&'static str),
    /// Answer an INFORM with the pool's options (no address).
    Inform { pool: Option<usize> },
    /// The client gave its address back (no reply).
    Release { ip: Ipv4Addr },
    /// The client found the address in use (no reply; quarantine it).
    Decline { ip: Ipv4Addr },
    /// The client chose another server's offer: drop ours (no reply).
    Forget,
    /// Say nothing.
    Silent(&'static str),
}

#[derive(Clone, Debug)]
struct Entry {
    ip: Ipv4Addr,
    expires: SystemTime,
    state: LeaseState,
    hostname: Option<String>,
}

/// All leases of the pools, indexed by MAC and by address.
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_mac: HashMap<MacAddr, Entry>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    quarantine: HashMap<Ipv4Addr, SystemTime>,
    /// Next address to try, per pool index.
    cursors: HashMap<usize, u32>,
}

/// Inputs shared by `plan` for one request.
pub struct PlanCtx<'a> {
    /// Pools from the settings.
    pub pools: &'a [Pool],
    /// Index of the pool of the network the request came from (interface or giaddr).
    pub pool: Option<usize>,
    /// Our server identifier on that network.
    pub server_id: Ipv4Addr,
    /// Current time.
    pub now: SystemTime,
    /// Reservation lookup: the MAC an address is reserved for.
    pub reserved_for: &'a dyn Fn(Ipv4Addr) -> Option<MacAddr>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of MACs with an entry.
    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    /// True when no MAC has an entry.
    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    /// Fills the table from stored leases (at start).
    pub fn load(&mut self, leases: impl IntoIterator<Item = Lease>) {
        for l in leases {
            if l.state == LeaseState::Declined {
                self.quarantine.insert(l.ip, l.expires);
                continue;
            }
            self.insert(
                l.mac,
                Entry {
                    ip: l.ip,
                    expires: l.expires,
                    state: l.state,
                    hostname: l.hostname,
                },
            );
        }
    }

    /// The current lease of a MAC.
    pub fn get(&self, mac: MacAddr) -> Option<Lease> {
        self.by_mac.get(&mac).map(|e| Lease {
            mac,
            ip: e.ip,
            expires: e.expires,
            hostname: e.hostname.clone(),
            state: e.state,
        })
    }

    fn insert(&mut self, mac: MacAddr, entry: Entry) {
        if let Some(old) = self.by_mac.get(&mac) {
            if old.ip != entry.ip && self.by_ip.get(&old.ip) == Some(&mac) {
                self.by_ip.remove(&old.ip);
            }
        }
        if let Some(prev) = self.by_ip.insert(entry.ip, mac) {
            if prev != mac {
                self.by_mac.remove(&prev);
            }
        }
        self.by_mac.insert(mac, entry);
    }

    fn remove(&mut self, mac: MacAddr) {
        if let Some(old) = self.by_mac.remove(&mac) {
            if self.by_ip.get(&old.ip) == Some(&mac) {
                self.by_ip.remove(&old.ip);
            }
        }
    }

    /// True if `ip` may be given to `mac` now.
    fn is_free(&self, ip: Ipv4Addr, mac: MacAddr, pool: &Pool, ctx: &PlanCtx<'_>) -> bool {
        let net = u32::from(pool.subnet) & u32::from(pool.mask());
        let bcast = net | !u32::from(pool.mask());
        let raw = u32::from(ip);
        if pool.prefix < 31 && (raw == net || raw == bcast) {
            return false;
        }
        if ip == ctx.server_id || Some(ip) == pool.router {
            return false;
        }
        if self
            .quarantine
            .get(&ip)
            .is_some_and(|until| *until > ctx.now)
        {
            return false;
        }
        if (ctx.reserved_for)(ip).is_some_and(|owner| owner != mac) {
            return false;
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(holder) if *holder == mac => true,
            Some(holder) => self
                .by_mac
                .get(holder)
                .is_none_or(|e| e.state == LeaseState::Released || e.expires <= ctx.now),
        }
    }

    /// A free address in the pool's range, scanning from the pool's cursor; if none,
    /// the address of the oldest outstanding offer (offers are not promises).
    fn allocate(
        &self,
        mac: MacAddr,
        pool_idx: usize,
        pool: &Pool,
        ctx: &PlanCtx<'_>,
    ) -> Option<Ipv4Addr> {
        let lo = u32::from(pool.range.0);
        let hi = u32::from(pool.range.1);
        if hi < lo {
            return None;
        }
        let size = (hi - lo).saturating_add(1);
        let start = self.cursors.get(&pool_idx).copied().unwrap_or(0) % size;
        for i in 0..size.min(MAX_SCAN) {
            let ip = Ipv4Addr::from(lo + (start + i) % size);
            if self.is_free(ip, mac, pool, ctx) {
                return Some(ip);
            }
        }
        // Exhausted: take back the oldest outstanding offer in the range (offers are
        // not promises), scanning the range rather than every lease.
        (0..size.min(MAX_SCAN))
            .filter_map(|i| {
                let ip = Ipv4Addr::from(lo + i);
                let holder = self.by_ip.get(&ip)?;
                let e = self.by_mac.get(holder)?;
                (e.state == LeaseState::Offered && *holder != mac).then_some((e.expires, ip))
            })
            .min()
            .map(|(_, ip)| ip)
    }

    /// The address this request should get, or why not (reads only).
    pub fn plan(&self, req: &PxeRequest<'_>, node: &NodeBoot, ctx: &PlanCtx<'_>) -> LeaseAnswer {
        let mac = req.mac;
        let pool_of = |idx: Option<usize>| idx.and_then(|i| ctx.pools.get(i).map(|p| (i, p)));
        let held = self.by_mac.get(&mac);
        match req.msg_type {
            MessageType::Discover => {
                let Some((idx, pool)) = pool_of(ctx.pool) else {
                    return LeaseAnswer::Silent("no pool for this network");
                };
                let usable = |ip: Ipv4Addr, need_range: bool| {
                    pool.contains(ip)
                        && (!need_range || pool.in_range(ip))
                        && self.is_free(ip, mac, pool, ctx)
                };
                if let Some(ip) = node.reserved_ip {
                    if usable(ip, false) {
                        return LeaseAnswer::Offer { ip, pool: idx };
                    }
                }
                if let Some(e) = held {
                    if usable(e.ip, true) {
                        return LeaseAnswer::Offer {
                            ip: e.ip,
                            pool: idx,
                        };
                    }
                }
                if let Some(ip) = req.requested_ip {
                    if usable(ip, true) {
                        return LeaseAnswer::Offer { ip, pool: idx };
                    }
                }
                match self.allocate(mac, idx, pool, ctx) {
                    Some(ip) => LeaseAnswer::Offer { ip, pool: idx },
                    None => LeaseAnswer::Silent("pool exhausted"),
                }
            }
            MessageType::Request => {
                if let Some(sid) = req.server_id {
                    if sid != ctx.server_id {
                        return LeaseAnswer::Forget;
                    }
                    let Some((idx, _)) = pool_of(ctx.pool) else {
                        return LeaseAnswer::Silent("no pool for this network");
                    };
                    let wanted = req.requested_ip.unwrap_or(req.ciaddr);
                    return match held {
                        Some(e) if e.ip == wanted && self.by_ip.get(&wanted) == Some(&mac) => {
                            LeaseAnswer::Ack {
                                ip: wanted,
                                pool: idx,
                            }
                        }
                        _ => LeaseAnswer::Nak("not the address offered"),
                    };
                }
                let wanted = match (req.requested_ip, req.ciaddr) {
                    (Some(ip), _) => ip,
                    (None, ip) if !ip.is_unspecified() => ip,
                    _ => return LeaseAnswer::Silent("request names no address"),
                };
                let Some((idx, pool)) = pool_of(ctx.pool) else {
                    return LeaseAnswer::Silent("no pool for this network");
                };
                if !pool.contains(wanted) {
                    return LeaseAnswer::Nak("wrong subnet");
                }
                if node
                    .reserved_ip
                    .is_some_and(|r| r != wanted && pool.contains(r))
                {
                    return LeaseAnswer::Nak("address reserved elsewhere for this client");
                }
                let ours = held.is_some_and(|e| e.ip == wanted) || node.reserved_ip == Some(wanted);
                if (ours || pool.in_range(wanted)) && self.is_free(wanted, mac, pool, ctx) {
                    LeaseAnswer::Ack {
                        ip: wanted,
                        pool: idx,
                    }
                } else {
                    LeaseAnswer::Nak("address not available")
                }
            }
            MessageType::Release => match held {
                Some(e) if e.ip == req.ciaddr => LeaseAnswer::Release { ip: e.ip },
                _ => LeaseAnswer::Silent("release of an address not leased to this client"),
            },
            MessageType::Decline => {
                if req.server_id.is_some_and(|s| s != ctx.server_id) {
                    return LeaseAnswer::Silent("decline for another server");
                }
                match (held, req.requested_ip) {
                    (Some(e), Some(ip)) if e.ip == ip => LeaseAnswer::Decline { ip },
                    _ => LeaseAnswer::Silent("decline of an address not offered to this client"),
                }
            }
            MessageType::Inform => LeaseAnswer::Inform { pool: ctx.pool },
            MessageType::Offer | MessageType::Ack | MessageType::Nak => {
                LeaseAnswer::Silent("server message type from a client")
            }
        }
    }

    /// Carries out a planned answer once the reply is decided; returns the lease to
    /// persist before the reply leaves, if any.
    pub fn apply(
        &mut self,
        answer: &LeaseAnswer,
        req: &PxeRequest<'_>,
        node: &NodeBoot,
        pools: &[Pool],
        now: SystemTime,
    ) -> Option<Lease> {
        let mac = req.mac;
        let hostname = || {
            node.hostname.clone().or_else(|| {
                req.hostname
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .map(str::to_owned)
            })
        };
        match *answer {
            LeaseAnswer::Offer { ip, pool } => {
                if let Some(size) = pools.get(pool).map(|p| {
                    u32::from(p.range.1)
                        .wrapping_sub(u32::from(p.range.0))
                        .wrapping_add(1)
                }) {
                    let lo = pools.get(pool).map_or(0, |p| u32::from(p.range.0));
                    let next = u32::from(ip).wrapping_sub(lo).wrapping_add(1);
                    self.cursors
                        .insert(pool, if size == 0 { 0 } else { next % size });
                }
                let keep = self
                    .by_mac
                    .get(&mac)
                    .is_some_and(|e| e.ip == ip && e.state == LeaseState::Bound && e.expires > now);
                if !keep {
                    self.insert(
                        mac,
                        Entry {
                            ip,
                            expires: now + OFFER_HOLD,
                            state: LeaseState::Offered,
                            hostname: None,
                        },
                    );
                }
                None
            }
            LeaseAnswer::Ack { ip, pool } => {
                let time = pools
                    .get(pool)
                    .map_or(OFFER_HOLD, |p| p.lease_time.min(MAX_LEASE_TIME));
                let entry = Entry {
                    ip,
                    expires: now + time,
                    state: LeaseState::Bound,
                    hostname: hostname(),
                };
                self.insert(mac, entry);
                self.get(mac)
            }
            LeaseAnswer::Release { ip } => {
                let entry = Entry {
                    ip,
                    expires: now,
                    state: LeaseState::Released,
                    hostname: hostname(),
                };
                self.insert(mac, entry);
                self.get(mac)
            }
            LeaseAnswer::Decline { ip } => {
                self.remove(mac);
                let until = now + DECLINE_QUARANTINE;
                self.quarantine.insert(ip, until);
                Some(Lease {
                    mac,
                    ip,
                    expires: until,
                    hostname: None,
                    state: LeaseState::Declined,
                })
            }
            LeaseAnswer::Forget => {
                if self
                    .by_mac
                    .get(&mac)
                    .is_some_and(|e| e.state == LeaseState::Offered)
                {
                    self.remove(mac);
                }
                None
            }
            LeaseAnswer::None
            | LeaseAnswer::Nak(_)
            | LeaseAnswer::Inform { .. }
            | LeaseAnswer::Silent(_) => None,
        }
    }

    /// Drops offers and quarantines that have run out (bound leases stay: their MAC
    /// gets the same address back even after expiry, unless someone took it).
    pub fn sweep(&mut self, now: SystemTime) {
        let stale: Vec<MacAddr> = self
            .by_mac
            .iter()
            .filter(|(_, e)| e.state == LeaseState::Offered && e.expires <= now)
            .map(|(m, _)| *m)
            .collect();
        for m in stale {
            self.remove(m);
        }
        self.quarantine.retain(|_, until| *until > now);
    }
}
