//! Prometheus metrics: process figures, nodes per phase, and a registry the services
//! add their own counters to.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Label of a per-phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// Label set of HTTP request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

/// Every metric bootd exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    nodes: Family<PhaseLabel, Gauge>,
    resident: Gauge,
    cpu_ms: Gauge,
    fds: Gauge,
    uptime: Gauge,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_bytes: Counter,
    /// Sampled when /metrics is read.
    pub asset_cache_bytes: Gauge,
    pub renders: Counter,
    /// Scripts and configs rendered without their token for a requester that is not
    /// the node.
    pub secrets_withheld: Counter,
    /// Machine callbacks refused 429 by the rate limit.
    pub callbacks_limited: Counter,
    /// API requests refused 401 (no, unknown, revoked or expired token).
    pub auth_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the core metrics.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bootd");
        let nodes = Family::<PhaseLabel, Gauge>::default();
        registry.register("nodes", "Nodes per deployment phase", nodes.clone());
        let resident = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size",
            resident.clone(),
        );
        let cpu_ms = Gauge::default();
        registry.register(
            "process_cpu_milliseconds",
            "User + system CPU time",
            cpu_ms.clone(),
        );
        let fds = Gauge::default();
        registry.register("process_open_fds", "Open file descriptors", fds.clone());
        let uptime = Gauge::default();
        registry.register("uptime_seconds", "Seconds since start", uptime.clone());
        let http_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let http_bytes = Counter::default();
        registry.register(
            "http_sent_bytes",
            "HTTP body bytes sent",
            http_bytes.clone(),
        );
        let asset_cache_bytes = Gauge::default();
        registry.register(
            "http_asset_cache_bytes",
            "Asset bytes held in memory for HTTP",
            asset_cache_bytes.clone(),
        );
        let renders = Counter::default();
        registry.register(
            "renders",
            "Boot scripts and configs rendered",
            renders.clone(),
        );
        let secrets_withheld = Counter::default();
        registry.register(
            "secrets_withheld",
            "Scripts and configs rendered without the node's token for another requester",
            secrets_withheld.clone(),
        );
        let callbacks_limited = Counter::default();
        registry.register(
            "callbacks_rate_limited",
            "Machine callbacks refused 429 by the per-node or per-address rate limit",
            callbacks_limited.clone(),
        );
        let auth_refused = Counter::default();
        registry.register(
            "api_auth_refused",
            "API requests refused 401 for want of a valid token",
            auth_refused.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            nodes,
            resident,
            cpu_ms,
            fds,
            uptime,
            http_requests,
            http_bytes,
            asset_cache_bytes,
            renders,
            secrets_withheld,
            callbacks_limited,
            auth_refused,
        }
    }

    /// Lets a service register its own metrics.
    pub fn with_registry(&self, f: impl FnOnce(&mut Registry)) {
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut reg);
    }

    /// The text exposition, after refreshing the sampled gauges.
    pub fn render(&self, by_phase: &BTreeMap<String, u64>, uptime_secs: u64) -> String {
        self.nodes.clear();
        // Every built-in phase is exported, 0 when empty, so a series does not vanish
        // (and rate()/absent() alerts keep working) when its last node moves on.
        for (name, _, _) in crate::nodes::phase::BUILTIN {
            self.nodes
                .get_or_create(&PhaseLabel {
                    phase: (*name).to_string(),
                })
                .set(0);
        }
        for (phase, n) in by_phase {
            self.nodes
                .get_or_create(&PhaseLabel {
                    phase: phase.clone(),
                })
                .set(*n as i64);
        }
        if let Some((rss, cpu)) = read_proc_stat() {
            self.resident.set(rss);
            self.cpu_ms.set(cpu);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as i64);
        }
        self.uptime.set(uptime_secs as i64);
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

/// (resident bytes, cpu milliseconds) of this process from /proc/self/stat.
fn read_proc_stat() -> Option<(i64, i64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100i64; // USER_HZ on Linux
    let utime: i64 = f.get(11)?.parse().ok()?;
    let stime: i64 = f.get(12)?.parse().ok()?;
    let rss_pages: i64 = f.get(21)?.parse().ok()?;
    let page = 4096i64;
    Some((rss_pages * page, (utime + stime) * 1000 / ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_phase_is_exported_with_zero_when_empty() {
        let m = Metrics::new();
        let by_phase = BTreeMap::from([
            ("running".to_string(), 3),
            ("foundation_boot".to_string(), 1),
        ]);
        let text = m.render(&by_phase, 5);
        for (name, _, _) in crate::nodes::phase::BUILTIN {
            let want = match *name {
                "running" => 3,
                _ => 0,
            };
            let line = format!("bootd_nodes{{phase=\"{name}\"}} {want}\n");
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(
            text.contains("bootd_nodes{phase=\"foundation_boot\"} 1\n"),
            "{text}"
        );
        // Once its nodes are gone a profile's own phase goes away; built-in ones stay at 0.
        let text = m.render(&BTreeMap::new(), 6);
        assert!(
            text.contains("bootd_nodes{phase=\"running\"} 0\n"),
            "{text}"
        );
        assert!(!text.contains("foundation_boot"), "{text}");
    }
}
