//! Whose secrets a requester may see. A script, config or GRUB config that carries a
//! node's callback token is rendered with the token only for a requester whose address
//! belongs to that node's MAC; anyone else gets the same document with the token empty
//! (the firmware still boots; the node's callbacks are then refused), and the refusal is
//! logged with the requester's address.
//!
//! An address belongs to a MAC when, in this order:
//! 1. DHCP saw that MAC use it (our ACKs, a client's ciaddr or requested address, in
//!    full and proxy mode, relayed or not): [`crate::peers::PeerTable`];
//! 2. the kernel's neighbour table of the server's namespace maps it to the MAC (a
//!    machine on the local segment that just talked to us);
//! 3. bootd leased it to the MAC (the lease table, for leases older than this process);
//! 4. the operator listed it in `[http] secrets_trusted` (a provisioning proxy).
//!
//! The case this cannot cover: a machine behind a relay whose DHCP bootd never saw (no
//! lease, no sighting: another DHCP server answers, bootd only serves HTTP). Its
//! address is not on a local segment, so no neighbour entry names it either. bootd
//! then serves the document without a token and logs it; the node boots, but its
//! callbacks are refused until the operator lists the address (or the relay's NAT
//! address) in `[http] secrets_trusted`, or lets bootd see its DHCP.

use crate::app::App;
use crate::mac::MacAddr;
use std::net::IpAddr;

/// Why a requester may (or may not) receive a node's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// DHCP saw the MAC use this address.
    DhcpSighting,
    /// The server's neighbour table maps the address to the MAC.
    Neighbour,
    /// bootd leased the address to the MAC.
    Lease,
    /// `[http] secrets_trusted` lists the address.
    Trusted,
    /// Nothing ties the address to the MAC.
    Stranger,
}

impl Owner {
    /// Whether the document may carry the node's token.
    pub fn may_see_secrets(self) -> bool {
        self != Owner::Stranger
    }
}

/// Who `ip` is with respect to `mac`.
pub fn owner_of(app: &App, mac: MacAddr, ip: IpAddr) -> Owner {
    let ip = ip.to_canonical();
    if let IpAddr::V4(v4) = ip {
        if app.peers.lookup(v4) == Some(mac) {
            return Owner::DhcpSighting;
        }
    }
    if app
        .config()
        .http
        .secrets_trusted
        .iter()
        .any(|t| t.to_canonical() == ip)
    {
        return Owner::Trusted;
    }
    if let IpAddr::V4(v4) = ip {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        match app
            .store
            .lease_holds(&mac.to_string(), &v4.to_string(), now)
        {
            Ok(true) => return Owner::Lease,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%mac, %ip, error = %e, "cannot read leases to check a requester")
            }
        }
    }
    // Last: a netlink dump of the neighbour table is the dearest of the checks.
    if crate::neighbours::mac_of(ip) == Some(mac) {
        return Owner::Neighbour;
    }
    Owner::Stranger
}

/// The token to render for `mac` at generation `gen` for requester `ip`: the real one
/// for its owner, else empty (logged).
pub fn token_for(app: &App, mac: MacAddr, gen: u32, ip: IpAddr, what: &str) -> String {
    let owner = owner_of(app, mac, ip);
    if owner.may_see_secrets() {
        tracing::debug!(%mac, requester = %ip, ?owner, what, "requester owns the node");
        app.tokens.token(mac, gen)
    } else {
        tracing::warn!(%mac, requester = %ip, what,
            "requester's address does not belong to the node: rendered without its token");
        app.metrics.secrets_withheld.inc();
        String::new()
    }
}
