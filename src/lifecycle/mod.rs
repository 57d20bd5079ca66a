//! The deployment lifecycle around the phase table: deadlines that turn stuck deployments
//! into `timeout`, group hooks that make a formed group `clustered`, and reprovisioning.

pub mod deadline;
pub mod durations;
pub mod groups;
pub mod hook;
pub mod reprovision;

use crate::app::App;
use crate::mac::MacAddr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Live event streams (`GET /api/v1/events`) served at once.
pub const MAX_EVENT_STREAMS: usize = 256;

/// Lifecycle state shared by the services and the API.
#[derive(Default)]
pub struct Lifecycle {
    /// Where each group's `on_complete` hook stands.
    pub groups: groups::Board,
    streams: Arc<AtomicUsize>,
    /// When each node's last reprovision began (RFC 3339), since this daemon started;
    /// `GET /api/v1/nodes/{mac}` also reads it from the history.
    reprovisions: Mutex<HashMap<MacAddr, String>>,
}

/// A held slot of `MAX_EVENT_STREAMS`; released on drop.
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lifecycle {
    /// Remembers when a node's reprovision began.
    pub fn note_reprovision(&self, mac: MacAddr, at: String) {
        let mut m = self.reprovisions.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(mac, at);
    }

    /// When a node's last reprovision began, if this daemon started it.
    pub fn reprovision_started(&self, mac: MacAddr) -> Option<String> {
        let m = self.reprovisions.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&mac).cloned()
    }

    /// Takes an event-stream slot, or None when `MAX_EVENT_STREAMS` are open.
    pub fn stream_slot(&self) -> Option<StreamSlot> {
        let taken = self
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_EVENT_STREAMS).then_some(n + 1)
            });
        taken.ok().map(|_| StreamSlot(self.streams.clone()))
    }
}

/// The lifecycle service: the deadline watcher and the group hooks, until shutdown.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let (d, g) = tokio::join!(deadline::serve(app.clone()), groups::serve(app));
    d.and(g)
}
