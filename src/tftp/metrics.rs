//! Prometheus counters of the TFTP service: bytes, transfers, sessions, cache loads and
//! one error counter per kind, so every refusal and drop reason is visible.

pub use bootd_proto::tftp::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

/// All TFTP metrics; cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    bytes_sent: Counter,
    transfers_started: Counter,
    transfers_completed: Counter,
    retransmits: Counter,
    cache_loads: Counter,
    errors: Family<ErrorLabels, Counter>,
    active_sessions: Gauge,
}

impl Metrics {
    /// Fresh, all-zero metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every metric under the `tftp_` prefix.
    pub fn register(&self, reg: &mut Registry) {
        reg.register(
            "tftp_bytes_sent",
            "DATA payload bytes sent, retransmissions included",
            self.bytes_sent.clone(),
        );
        reg.register(
            "tftp_transfers_started",
            "Read requests whose file was opened",
            self.transfers_started.clone(),
        );
        reg.register(
            "tftp_transfers_completed",
            "Transfers whose last block was acknowledged",
            self.transfers_completed.clone(),
        );
        reg.register(
            "tftp_retransmits",
            "Packets sent again after a timeout or a client's gap report",
            self.retransmits.clone(),
        );
        reg.register(
            "tftp_cache_loads",
            "Files read from disk into the shared cache",
            self.cache_loads.clone(),
        );
        reg.register(
            "tftp_errors",
            "Refused requests and failed transfers by kind",
            self.errors.clone(),
        );
        reg.register(
            "tftp_active_sessions",
            "Sessions currently open",
            self.active_sessions.clone(),
        );
    }

    /// Sessions open right now.
    pub fn active_sessions(&self) -> i64 {
        self.active_sessions.get()
    }

    /// Bytes of DATA payload sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.get()
    }

    /// Transfers started so far.
    pub fn transfers_started(&self) -> u64 {
        self.transfers_started.get()
    }

    /// Transfers completed so far.
    pub fn transfers_completed(&self) -> u64 {
        self.transfers_completed.get()
    }

    /// Packets retransmitted so far.
    pub fn retransmits(&self) -> u64 {
        self.retransmits.get()
    }

    /// Files loaded into the cache from disk so far.
    pub fn cache_loads(&self) -> u64 {
        self.cache_loads.get()
    }

    /// Errors of one kind so far.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors.get_or_create(&ErrorLabels { kind: kind.as_str() }).get()
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        self.errors.get_or_create(&ErrorLabels { kind: kind.as_str() }).inc();
    }

    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes_sent.inc_by(n);
    }

    pub(crate) fn add_retransmits(&self, n: u64) {
        self.retransmits.inc_by(n);
    }

    pub(crate) fn started(&self) {
        self.transfers_started.inc();
    }

    pub(crate) fn completed(&self) {
        self.transfers_completed.inc();
    }

    pub(crate) fn cache_loaded(&self) {
        self.cache_loads.inc();
    }

    pub(crate) fn session_opened(&self) {
        self.active_sessions.inc();
    }

    pub(crate) fn session_closed(&self) {
        self.active_sessions.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_labels() {
        let m = Metrics::new();
        m.error(ErrorKind::NotFound);
        m.add_bytes(10);
        m.session_opened();
        let mut reg = Registry::default();
        m.register(&mut reg);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("tftp_errors_total{kind=\"not_found\"} 1"),
            "{out}"
        );
        assert!(out.contains("tftp_bytes_sent_total 10"), "{out}");
        assert!(out.contains("tftp_active_sessions 1"), "{out}");
        assert_eq!(m.errors(ErrorKind::NotFound), 1);
    }
}
