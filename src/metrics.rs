//! Prometheus metrics: process figures, nodes per phase, and a registry the services
//! add their own counters to.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// Label of a per-phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// Label of per-profile series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabel {
    pub profile: String,
}

/// A gauge with a fractional value.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Buckets of `bootd_deployment_seconds`: 30 s doubling to about 8.5 h.
fn deployment_histogram() -> Histogram {
    Histogram::new(exponential_buckets(30.0, 2.0, 10))
}

/// Phases that end a deployment, for `bootd_boot_success_ratio`: a success is `running`
/// or `clustered`, a failure `failed` or `timeout`.
pub const FINISHED_OK: &[&str] = &["running", "clustered"];
pub const FINISHED_BAD: &[&str] = &["failed", "timeout"];

/// Per profile: (succeeded, finished) deployments among `(profile, phase)` pairs.
pub fn success_counts<'a>(
    nodes: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (profile, phase) in nodes {
        let ok = FINISHED_OK.contains(&phase);
        if !ok && !FINISHED_BAD.contains(&phase) {
            continue;
        }
        let e = out.entry(profile.to_string()).or_default();
        e.0 += u64::from(ok);
        e.1 += 1;
    }
    out
}

/// Label set of HTTP request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `network` (the HTTP listener) or `control` (the control socket).
    pub listener: String,
    pub route: String,
    pub status: u16,
}

/// Every metric bootd exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    nodes: Family<PhaseLabel, Gauge>,
    resident: Gauge,
    cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    fds: Gauge,
    uptime: Gauge,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_bytes: Counter,
    /// Sampled when /metrics is read.
    pub asset_cache_bytes: Gauge,
    pub renders: Counter,
    /// Running or clustered over finished deployments, by profile (sampled).
    boot_success_ratio: Family<ProfileLabel, FloatGauge>,
    /// Seconds from a deployment's start to `running`, by profile.
    pub deployment_seconds: Family<ProfileLabel, Histogram, fn() -> Histogram>,
    /// Bound, unexpired DHCP leases (sampled).
    pub dhcp_leases_active: Gauge,
    /// Unix time of the health monitor's last complete round.
    pub health_last_round: FloatGauge,
    /// Nodes polled in that round.
    pub health_nodes_checked: Gauge,
    /// `bootd_relay_*`: deliveries and backlog per upstream.
    pub relay: crate::relay::metrics::RelayMetrics,
    /// `bootd_deadline_timed_out_total`: nodes moved to `timeout` by their deadline.
    pub deadline_timed_out: Counter,
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
        let cpu_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "User + system CPU time in seconds",
            cpu_seconds.clone(),
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
        let boot_success_ratio = Family::<ProfileLabel, FloatGauge>::default();
        registry.register(
            "boot_success_ratio",
            "Deployments that reached running or clustered over finished ones, by profile",
            boot_success_ratio.clone(),
        );
        let deployment_seconds =
            Family::<ProfileLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                deployment_histogram,
            );
        registry.register(
            "deployment_seconds",
            "Seconds from the start of a deployment to running, by profile",
            deployment_seconds.clone(),
        );
        let dhcp_leases_active = Gauge::default();
        registry.register(
            "dhcp_leases_active",
            "Bound DHCP leases that have not expired",
            dhcp_leases_active.clone(),
        );
        let health_last_round = FloatGauge::default();
        registry.register(
            "health_last_round_timestamp_seconds",
            "Unix time of the health monitor's last complete round",
            health_last_round.clone(),
        );
        let health_nodes_checked = Gauge::default();
        registry.register(
            "health_nodes_checked",
            "Nodes polled in the health monitor's last complete round",
            health_nodes_checked.clone(),
        );
        let relay = crate::relay::metrics::RelayMetrics::register(&mut registry);
        let deadline_timed_out = Counter::default();
        registry.register(
            "deadline_timed_out",
            "Nodes moved to timeout because their profile's deadline passed",
            deadline_timed_out.clone(),
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
            boot_success_ratio,
            deployment_seconds,
            dhcp_leases_active,
            health_last_round,
            health_nodes_checked,
            registry: Mutex::new(registry),
            nodes,
            resident,
            cpu_seconds,
            fds,
            uptime,
            http_requests,
            http_bytes,
            asset_cache_bytes,
            renders,
            relay,
            deadline_timed_out,
            secrets_withheld,
            callbacks_limited,
            auth_refused,
        }
    }

    /// Sets `bootd_boot_success_ratio` from `(effective profile, phase)` of every node;
    /// a profile with no finished deployment has no series.
    pub fn sample_success<'a>(&self, nodes: impl Iterator<Item = (&'a str, &'a str)>) {
        self.boot_success_ratio.clear();
        for (profile, (ok, all)) in success_counts(nodes) {
            if all > 0 {
                self.boot_success_ratio
                    .get_or_create(&ProfileLabel { profile })
                    .set(ok as f64 / all as f64);
            }
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
        if let Some((rss, cpu_ms)) = read_proc_stat() {
            self.resident.set(rss);
            // A counter only goes up: add what the kernel counted since the last read.
            let seconds = cpu_ms as f64 / 1000.0;
            let grown = seconds - self.cpu_seconds.get();
            if grown > 0.0 {
                self.cpu_seconds.inc_by(grown);
            }
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
    fn success_ratio_counts_finished_deployments_only() {
        let nodes = [
            ("ubuntu", "running"),
            ("ubuntu", "clustered"),
            ("ubuntu", "timeout"),
            ("ubuntu", "installing"),
            ("talos", "failed"),
            ("talos", "unhealthy"),
        ];
        let c = success_counts(nodes.iter().copied());
        assert_eq!(c.get("ubuntu"), Some(&(2, 3)));
        assert_eq!(c.get("talos"), Some(&(0, 1)));
        let m = Metrics::new();
        m.sample_success(nodes.iter().copied());
        m.deployment_seconds
            .get_or_create(&ProfileLabel {
                profile: "ubuntu".into(),
            })
            .observe(95.0);
        let text = m.render(&BTreeMap::new(), 1);
        assert!(
            text.contains("bootd_boot_success_ratio{profile=\"ubuntu\"} 0.666"),
            "{text}"
        );
        assert!(
            text.contains("bootd_deployment_seconds_count{profile=\"ubuntu\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bootd_health_last_round_timestamp_seconds"),
            "{text}"
        );
    }

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
        assert!(
            text.contains("# TYPE bootd_process_cpu_seconds counter\n"),
            "{text}"
        );
        assert!(
            text.contains("bootd_deadline_timed_out_total 0\n"),
            "{text}"
        );
    }
}
