//! Prometheus counters of the DHCP service: messages by type and port, replies by type,
//! drops by reason, and how many leases each group commit carried.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the message counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MsgLabels {
    /// DHCP message type (`discover`, `offer`, ...).
    pub kind: &'static str,
}

/// Labels of the drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why the packet got no answer.
    pub reason: &'static str,
}

/// The DHCP service's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Requests received, by message type.
    pub received: Family<MsgLabels, Counter>,
    /// Replies sent, by message type.
    pub sent: Family<MsgLabels, Counter>,
    /// Requests that got no reply, by reason.
    pub dropped: Family<DropLabels, Counter>,
    /// Leases per `persist_leases` call.
    pub commit_batch: Histogram,
    /// Failed `persist_leases` calls (their ACKs were not sent).
    pub commit_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Metrics {
            received: Family::default(),
            sent: Family::default(),
            dropped: Family::default(),
            commit_batch: Histogram::new(
                [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0].into_iter(),
            ),
            commit_failures: Counter::default(),
        }
    }

    /// Registers every metric under the `dhcp` prefix.
    pub fn register(&self, reg: &mut Registry) {
        let sub = reg.sub_registry_with_prefix("dhcp");
        sub.register(
            "received",
            "DHCP requests received by message type",
            self.received.clone(),
        );
        sub.register(
            "sent",
            "DHCP replies sent by message type",
            self.sent.clone(),
        );
        sub.register(
            "dropped",
            "DHCP requests not answered, by reason",
            self.dropped.clone(),
        );
        sub.register(
            "commit_batch_leases",
            "Leases persisted per group commit",
            self.commit_batch.clone(),
        );
        sub.register(
            "commit_failures",
            "Group commits that failed (ACKs withheld)",
            self.commit_failures.clone(),
        );
    }

    /// Counts a drop.
    pub fn count_drop(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropLabels { reason }).inc();
    }
}
