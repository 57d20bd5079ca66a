//! The storm's results: latency percentiles per step, failures by kind, bytes, wall time,
//! and the server processes' CPU time and peak memory read from /proc.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::machine::{Outcome, Step};

/// How often the servers' RSS is sampled while the storm runs.
pub const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Failure details kept per kind in the report.
const DETAILS_PER_KIND: usize = 3;

/// CPU ticks (utime + stime) of a process, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces, ends with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field of /proc/PID/status, in bytes.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    })
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The server processes under observation.
pub struct Servers {
    pids: Vec<u32>,
    cpu_start: Vec<u64>,
    /// Largest sum of VmRSS over all pids seen by [`Servers::sample`].
    pub peak_rss_sum: u64,
}

impl Servers {
    /// Starts watching: records each pid's CPU time now.
    pub fn watch(pids: Vec<u32>) -> Servers {
        let cpu_start = pids.iter().map(|&p| cpu_ticks(p).unwrap_or(0)).collect();
        let mut s = Servers {
            pids,
            cpu_start,
            peak_rss_sum: 0,
        };
        s.sample();
        s
    }

    /// Adds one RSS sample.
    pub fn sample(&mut self) {
        let sum: u64 = self
            .pids
            .iter()
            .filter_map(|&p| status_kb(p, "VmRSS"))
            .sum();
        self.peak_rss_sum = self.peak_rss_sum.max(sum);
    }

    /// CPU seconds used since [`Servers::watch`], summed, and the sum of each pid's VmHWM.
    pub fn finish(&mut self) -> Value {
        self.sample();
        let ticks: u64 = self
            .pids
            .iter()
            .zip(&self.cpu_start)
            .map(|(&p, &s)| cpu_ticks(p).unwrap_or(s).saturating_sub(s))
            .sum();
        let hwm: u64 = self
            .pids
            .iter()
            .filter_map(|&p| status_kb(p, "VmHWM"))
            .sum();
        json!({
            "pids": self.pids,
            "cpu_seconds": ticks as f64 / ticks_per_second() as f64,
            "vm_hwm_bytes_sum": hwm,
            "peak_rss_sampled_bytes": self.peak_rss_sum,
        })
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Builds the JSON report.
pub fn build(outcomes: &[Outcome], wall: Duration, servers: Value, args: Value) -> Value {
    let mut by_step: BTreeMap<Step, Vec<Duration>> = BTreeMap::new();
    let mut failures: BTreeMap<&str, (u64, Vec<String>)> = BTreeMap::new();
    let (mut tftp, mut http) = (0u64, 0u64);
    for o in outcomes {
        for (s, d) in &o.steps {
            by_step.entry(*s).or_default().push(*d);
        }
        tftp += o.tftp_bytes;
        http += o.http_bytes;
        if let Some(f) = &o.failure {
            let e = failures.entry(f.kind).or_default();
            e.0 += 1;
            if e.1.len() < DETAILS_PER_KIND {
                e.1.push(format!("{} at {}: {}", o.mac, f.step.name(), f.detail));
            }
        }
    }
    let mut steps = serde_json::Map::new();
    for s in Step::ALL {
        let mut v = by_step.remove(&s).unwrap_or_default();
        v.sort();
        steps.insert(
            s.name().into(),
            json!({
                "count": v.len(),
                "p50_ms": ms(percentile(&v, 50.0)),
                "p95_ms": ms(percentile(&v, 95.0)),
                "p99_ms": ms(percentile(&v, 99.0)),
                "max_ms": ms(v.last().copied().unwrap_or_default()),
            }),
        );
    }
    let failed: u64 = failures.values().map(|(n, _)| n).sum();
    json!({
        "args": args,
        "machines": outcomes.len(),
        "booted": outcomes.len() as u64 - failed,
        "failed": failed,
        "failures": failures.iter().map(|(k, (n, d))| (k.to_string(), json!({"count": n, "examples": d}))).collect::<serde_json::Map<_, _>>(),
        "steps": steps,
        "bytes": { "tftp": tftp, "http": http },
        "wall_seconds": wall.as_secs_f64(),
        // The load generator shares the machine's cores with the server: its own cost.
        "client_cpu_seconds": cpu_ticks(std::process::id()).unwrap_or(0) as f64 / ticks_per_second() as f64,
        "server": servers,
    })
}

/// The report as a text table.
pub fn text(r: &Value) -> String {
    let mut s = format!(
        "machines {}  booted {}  failed {}  wall {:.2} s  tftp {} B  http {} B\n",
        r["machines"],
        r["booted"],
        r["failed"],
        r["wall_seconds"].as_f64().unwrap_or(0.0),
        r["bytes"]["tftp"],
        r["bytes"]["http"]
    );
    s.push_str(&format!(
        "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10}\n",
        "step", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"
    ));
    for st in Step::ALL {
        let v = &r["steps"][st.name()];
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        s.push_str(&format!(
            "{:<10} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}\n",
            st.name(),
            v["count"].as_u64().unwrap_or(0),
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            f("max_ms")
        ));
    }
    if let Some(f) = r["failures"].as_object() {
        for (k, v) in f {
            s.push_str(&format!("failure {k}: {}\n", v["count"]));
            for e in v["examples"].as_array().into_iter().flatten() {
                s.push_str(&format!("  {}\n", e.as_str().unwrap_or_default()));
            }
        }
    }
    let srv = &r["server"];
    s.push_str(&format!(
        "client cpu {:.2} s\n",
        r["client_cpu_seconds"].as_f64().unwrap_or(0.0)
    ));
    if srv["pids"].as_array().is_some_and(|p| !p.is_empty()) {
        s.push_str(&format!(
            "server cpu {:.2} s  VmHWM sum {:.1} MiB  sampled peak RSS {:.1} MiB\n",
            srv["cpu_seconds"].as_f64().unwrap_or(0.0),
            srv["vm_hwm_bytes_sum"].as_f64().unwrap_or(0.0) / 1048576.0,
            srv["peak_rss_sampled_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn own_process_has_cpu_and_memory() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(status_kb(me, "VmRSS").is_some_and(|b| b > 0));
    }
}
