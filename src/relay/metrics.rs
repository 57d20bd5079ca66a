//! The relay's Prometheus series: deliveries per upstream and result, and the backlog per
//! upstream and state (sampled from the outbox when `/metrics` is read).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `bootd_relay_deliveries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub upstream: String,
    /// `ok`, `failed` (retried later) or `dead` (set aside).
    pub result: String,
}

/// Labels of `bootd_relay_backlog`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BacklogLabels {
    pub upstream: String,
    /// `pending` (still to deliver) or `dead` (waiting for an operator).
    pub state: String,
}

/// The relay's series.
#[derive(Clone, Default)]
pub struct RelayMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    backlog: Family<BacklogLabels, Gauge>,
}

impl RelayMetrics {
    /// Registers the series under the registry's prefix (`bootd_relay_*`).
    pub fn register(registry: &mut Registry) -> RelayMetrics {
        let m = RelayMetrics::default();
        registry.register(
            "relay_deliveries",
            "Delivery attempts per upstream and result (ok, failed, dead)",
            m.deliveries.clone(),
        );
        registry.register(
            "relay_backlog",
            "Events not delivered per upstream and state (pending, dead)",
            m.backlog.clone(),
        );
        m
    }

    /// Counts one delivery attempt.
    pub fn delivered(&self, upstream: &str, result: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                upstream: upstream.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Replaces the backlog gauges: every configured upstream (0 when empty) and every
    /// upstream that still has rows.
    pub fn set_backlog(&self, configured: &[String], counts: &[crate::store::OutboxCounts]) {
        self.backlog.clear();
        let set = |upstream: &str, pending: u64, dead: u64| {
            for (state, n) in [("pending", pending), ("dead", dead)] {
                self.backlog
                    .get_or_create(&BacklogLabels {
                        upstream: upstream.to_string(),
                        state: state.to_string(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        };
        for name in configured {
            set(name, 0, 0);
        }
        for c in counts {
            set(&c.upstream, c.pending, c.dead);
        }
    }
}

/// Samples the outbox into the backlog gauges (before `/metrics` renders).
pub fn sample(app: &crate::app::App) {
    let configured: Vec<String> = app
        .config()
        .upstream
        .iter()
        .map(|u| u.name.clone())
        .collect();
    match app.store.outbox_upstream_counts() {
        Ok(counts) => app.metrics.relay.set_backlog(&configured, &counts),
        Err(e) => tracing::debug!(error = %e, "relay backlog not sampled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn backlog_and_deliveries_are_exported_per_upstream() {
        let mut reg = Registry::with_prefix("bootd");
        let m = RelayMetrics::register(&mut reg);
        m.delivered("crm", "ok");
        m.delivered("crm", "failed");
        m.delivered("crm", "failed");
        let counts = [crate::store::OutboxCounts {
            upstream: "crm".into(),
            pending: 3,
            dead: 1,
            ..Default::default()
        }];
        m.set_backlog(&["crm".into(), "cmdb".into()], &counts);
        let mut text = String::new();
        encode(&mut text, &reg).expect("encode");
        for line in [
            "bootd_relay_deliveries_total{upstream=\"crm\",result=\"ok\"} 1\n",
            "bootd_relay_deliveries_total{upstream=\"crm\",result=\"failed\"} 2\n",
            "bootd_relay_backlog{upstream=\"crm\",state=\"pending\"} 3\n",
            "bootd_relay_backlog{upstream=\"crm\",state=\"dead\"} 1\n",
            "bootd_relay_backlog{upstream=\"cmdb\",state=\"pending\"} 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
