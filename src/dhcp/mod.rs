//! DHCP and ProxyDHCP service: answers PXE firmware on ports 67 and 4011 with the right
//! boot file, and in full mode hands out addresses from pools with durable leases.
//!
//! Shape of one packet: `socket` reads a frame and the interface it came in on →
//! `request` summarises it (borrowed, no allocation) → `lease` plans the address part
//! (full mode) → `decide` (pure) picks the answer and says why → `reply` writes it into
//! a reused buffer → `socket` sends it out of the same interface (UDP, or AF_PACKET for
//! a unicast to a client without an address). Leases of a burst are committed together
//! through [`Backend::persist_leases`] before their ACKs leave (`service`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::mac::MacAddr;

pub mod file_backend;
pub mod metrics;
pub mod ra;
mod service;
pub mod socket;

pub use bootd_proto::dhcp::*;
pub use bootd_proto::dhcp::{decide, fuzz, lease, pxe, rate, reply, request, testdata, wire};
pub use metrics::Metrics;

/// A failure of the backend's store.
#[derive(Debug, Error)]
#[error("lease store: {0}")]
pub struct BackendError(pub String);

/// bootd's side of the DHCP service: node lookup, phase reports, lease storage.
pub trait Backend: Send + Sync + 'static {
    /// Boot facts for a MAC; fast, in memory.
    fn node(&self, mac: MacAddr) -> NodeBoot;
    /// An offer (or proxy offer) was sent to `mac`; must not block.
    fn offered(&self, mac: MacAddr, ip: Option<Ipv4Addr>, arch: Option<Arch>, iface: &str);
    /// `mac` was seen using `ip` (a request's ciaddr or requested address, or our ACK);
    /// must not block.
    fn address_seen(&self, _mac: MacAddr, _ip: Ipv4Addr) {}
    /// Leases stored before this start.
    fn load_leases(&self) -> Result<Vec<Lease>, BackendError>;
    /// Stores leases durably; blocking; called on a blocking thread.
    fn persist_leases(&self, leases: &[Lease]) -> Result<(), BackendError>;
    /// The MAC an address is reserved for, if any (keeps dynamic clients off it).
    fn reserved_for(&self, _ip: Ipv4Addr) -> Option<MacAddr> {
        None
    }
}

/// Why the service could not run.
#[derive(Debug, Error)]
pub enum DhcpError {
    /// A socket could not be created or bound.
    #[error("cannot bind {what} on {addr} ({interfaces}): {source}")]
    Bind {
        /// `DHCP`, `PXE` or `IPv6 RA`.
        what: &'static str,
        /// The address and port, or the kind of socket.
        addr: String,
        /// The interfaces served (`all interfaces` when none is named).
        interfaces: String,
        #[source]
        source: std::io::Error,
    },
    /// The IPv6 router advertisement task stopped (it runs beside the DHCP loop).
    #[error("IPv6 router advertisements stopped: {0}")]
    Ra(String),
    /// Leases could not be loaded at start.
    #[error("cannot load leases: {0}")]
    LoadLeases(#[from] BackendError),
    /// Reading or writing a socket failed in a way that is not per-packet.
    #[error("DHCP socket I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub use service::Sockets;

/// Binds the service's sockets for `settings` (67 and 4011 on all addresses, the link
/// sender, the RA socket): done before the daemon reports ready, so a port in use stops
/// the start. Nothing is bound in mode off.
pub fn bind(settings: &Settings) -> Result<Sockets, DhcpError> {
    service::Sockets::bind(settings)
}

/// Runs the DHCP service until `shutdown`: binds its own sockets per the current
/// settings (rebinding when the ports or mode change) and answers until cancelled.
pub async fn serve(
    settings: tokio::sync::watch::Receiver<Arc<Settings>>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    let sockets = Sockets::bind(&settings.borrow())?;
    service::run(sockets, settings, backend, metrics, shutdown).await
}

/// Runs the DHCP service on sockets from [`bind`] until `shutdown`; later settings
/// changes of ports or mode rebind as [`serve`] does.
pub async fn serve_bound(
    sockets: Sockets,
    settings: tokio::sync::watch::Receiver<Arc<Settings>>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    service::run(sockets, settings, backend, metrics, shutdown).await
}
