//! How answers are printed: tables and short sheets, or bootd's JSON with `--json`.

use crate::client::Answer;
use crate::timeline;
use bootd_api::{
    DiscoveredList, Dropped, GroupList, HardwareAnswer, NodeDetail, NodeList, NodeView, Phase,
    PhaseAnswer, RelayEntry, RelayOverview, ReloadAnswer, Removed, Retried, Status, Timestamp,
};
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde::Serialize;
use std::fmt::Display;

/// Recent deliveries `bootctl relay` prints (all are in `--json`).
const RECENT_ON_SCREEN: usize = 10;
/// Space between two columns.
const GAP: u16 = 2;

/// How answers are printed.
pub struct Output {
    pub json: bool,
}

/// A value or `-` when there is none.
pub fn or_dash<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// A value as its JSON spelling without quotes (enums of the inventory), `-` for none.
fn spelled<T: Serialize>(v: &Option<T>) -> String {
    match v.as_ref().map(serde_json::to_value) {
        Some(Ok(serde_json::Value::String(s))) => s,
        Some(Ok(other)) => other.to_string(),
        _ => "-".to_string(),
    }
}

/// Rows as aligned, left-justified columns two spaces apart, however wide, no borders.
pub fn table_text(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for r in rows {
        t.add_row(r.iter().map(String::as_str));
    }
    for col in t.column_iter_mut() {
        col.set_padding((0, GAP));
        col.set_cell_alignment(CellAlignment::Left);
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `bootctl nodes` shows: filters and layout.
#[derive(Debug, Clone, Default)]
pub struct NodesView {
    /// Only these phases (empty: all).
    pub phases: Vec<String>,
    /// Only this group.
    pub group: Option<String>,
    /// Print the header line.
    pub headers: bool,
    /// Extra columns.
    pub wide: bool,
}

impl NodesView {
    fn wants(&self, n: &NodeView) -> bool {
        let phase = n.phase.to_string();
        (self.phases.is_empty() || self.phases.contains(&phase))
            && self
                .group
                .as_ref()
                .is_none_or(|g| n.group.as_ref() == Some(g))
    }

    /// What an empty table says: nothing known, or nothing matched the filters.
    fn empty_text(&self, total: usize) -> String {
        if total == 0 {
            "no nodes".to_string()
        } else {
            format!("no nodes match (of {total})")
        }
    }
}

/// Prints a table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    println!("{}", table_text(headers, rows));
}

impl Output {
    /// With `--json`, prints the answer as bootd sent it and says so.
    fn raw<T>(&self, a: &Answer<T>) -> bool {
        if self.json {
            println!("{}", a.raw);
        }
        self.json
    }

    /// `bootctl status`.
    pub fn status(&self, a: &Answer<Status>) {
        if self.raw(a) {
            return;
        }
        let v = &a.body;
        println!("bootd {} up {}s", v.version, v.uptime_seconds);
        let rows: [(&str, String); 8] = [
            ("config", or_dash(&v.config)),
            ("state_dir", v.state_dir.clone()),
            ("database", v.database.clone()),
            ("http_listen", v.http_listen.clone()),
            ("public_url", v.public_url.clone()),
            ("tftp", or_dash(&v.tftp)),
            ("dhcp_mode", v.dhcp_mode.clone()),
            ("control_socket", v.control_socket.clone()),
        ];
        for (key, value) in rows {
            println!("  {:<15} {}", format!("{key}:"), value);
        }
        println!("  {:<15} {}", "nodes:", v.nodes);
        for (p, n) in &v.phases {
            println!("    {p:<20} {n}");
        }
        if v.relay.is_empty() {
            println!("  {:<15} no upstreams", "relay:");
        } else {
            println!("  {:<15}", "relay:");
        }
        for r in &v.relay {
            let oldest = r
                .oldest_pending
                .as_ref()
                .map(|t| format!(", oldest since {t}"))
                .unwrap_or_default();
            println!(
                "    {:<20} {} pending ({} failing), {} dead{oldest}",
                r.upstream, r.pending, r.failing, r.dead
            );
        }
    }

    /// `bootctl nodes`.
    pub fn nodes(&self, a: &Answer<NodeList>, view: &NodesView) {
        if self.raw(a) {
            return;
        }
        let now = Timestamp::now();
        let rows: Vec<Vec<String>> = a
            .body
            .nodes
            .iter()
            .map(|e| &e.node)
            .filter(|n| view.wants(n))
            .map(|n| {
                let mut row = vec![
                    n.mac.to_string(),
                    or_dash(&n.hostname),
                    or_dash(&n.group),
                    or_dash(&n.profile),
                    or_dash(&n.ip),
                    n.phase.to_string(),
                    format!("{}%", n.progress),
                    crate::timeline::human(now.since(n.phase_since)),
                    n.message.clone(),
                ];
                if view.wide {
                    row.extend([
                        or_dash(&n.health),
                        n.origin.clone(),
                        or_dash(&n.profile_source),
                        n.updated_at.to_string(),
                    ]);
                }
                row
            })
            .collect();
        if rows.is_empty() {
            println!("{}", view.empty_text(a.body.nodes.len()));
            return;
        }
        let mut headers = vec![
            "MAC", "HOSTNAME", "GROUP", "PROFILE", "IP", "PHASE", "PROGRESS", "IN PHASE", "MESSAGE",
        ];
        if view.wide {
            headers.extend(["HEALTH", "ORIGIN", "PROFILE FROM", "UPDATED"]);
        }
        let text = table_text(&headers, &rows);
        let skip = usize::from(!view.headers);
        for line in text.lines().skip(skip) {
            println!("{line}");
        }
    }

    /// `bootctl node show`.
    pub fn node(&self, a: &Answer<NodeDetail>) {
        if self.raw(a) {
            return;
        }
        let n = &a.body.node;
        let sheet: [(&str, String); 13] = [
            ("mac", n.mac.to_string()),
            ("hostname", or_dash(&n.hostname)),
            ("group", or_dash(&n.group)),
            ("profile", or_dash(&n.profile)),
            ("ip", or_dash(&n.ip)),
            ("boot", n.boot.clone()),
            ("next_boot", or_dash(&n.next_boot)),
            ("origin", n.origin.clone()),
            ("phase", n.phase.to_string()),
            ("progress", n.progress.to_string()),
            ("message", n.message.clone()),
            ("phase_since", n.phase_since.to_string()),
            ("updated_at", n.updated_at.to_string()),
        ];
        for (key, value) in sheet {
            println!("{:<12} {}", format!("{key}:"), value);
        }
        let visits = timeline::timeline(&a.body.history, std::time::SystemTime::now());
        let rows: Vec<Vec<String>> = visits
            .iter()
            .map(|t| {
                vec![
                    t.at.to_string(),
                    t.phase.to_string(),
                    format!("{}%", t.progress),
                    timeline::spent_text(t),
                    t.source.to_string(),
                    t.message.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!();
            println!("timeline:");
            table(
                &[
                    "SINCE",
                    "PHASE",
                    "PROGRESS",
                    "TIME IN PHASE",
                    "SOURCE",
                    "MESSAGE",
                ],
                &rows,
            );
        }
        if let Some((start, end, took)) = timeline::last_deployment(&visits) {
            println!();
            println!(
                "last deployment: {} ({} at {} to {} at {})",
                timeline::human(took),
                start.phase,
                start.at,
                end.phase,
                end.at
            );
        }
    }

    /// `bootctl groups`.
    pub fn groups(&self, a: &Answer<GroupList>) {
        if self.raw(a) {
            return;
        }
        let rows: Vec<Vec<String>> = a
            .body
            .groups
            .iter()
            .map(|g| {
                let live = g
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.phase, Phase::Running | Phase::Clustered))
                    .count();
                let p = crate::stages::of_group(g);
                vec![
                    g.name.clone(),
                    or_dash(&g.profile),
                    g.state.to_string(),
                    format!("{:>3}% {}", p.percent, p.stage.label()),
                    format!("{live}/{}", g.nodes.len()),
                    g.reason.clone(),
                ]
            })
            .collect();
        table(
            &["GROUP", "PROFILE", "STATE", "PROGRESS", "RUNNING", "REASON"],
            &rows,
        );
    }

    /// Answers of node add/set/adopt.
    pub fn changed(&self, what: &str, a: &Answer<NodeView>) {
        if !self.raw(a) {
            println!("{what} {}", a.body.mac);
        }
    }

    /// Answer of node rm.
    pub fn removed(&self, a: &Answer<Removed>) {
        if !self.raw(a) {
            println!("removed {}", a.body.removed);
        }
    }

    /// Answer of `bootctl phase`.
    pub fn phase(&self, a: &Answer<PhaseAnswer>) {
        if self.raw(a) {
            return;
        }
        let n = a.body.node.as_ref();
        println!(
            "{} {} {}% {}",
            or_dash(&n.map(|n| n.mac)),
            or_dash(&n.map(|n| &n.phase)),
            or_dash(&n.map(|n| n.progress)),
            if a.body.changed { "" } else { "(unchanged)" }
        );
    }

    /// `bootctl hardware MAC`: the inventory as a short sheet.
    pub fn hardware(&self, a: &Answer<HardwareAnswer>) {
        if self.raw(a) {
            return;
        }
        let v = &a.body;
        let inv = &v.inventory;
        println!("{} (reported {})", v.mac, v.at);
        let sheet: [(&str, String); 7] = [
            ("vendor", or_dash(&inv.vendor)),
            ("product", or_dash(&inv.product)),
            ("serial", or_dash(&inv.serial)),
            ("uuid", or_dash(&inv.uuid)),
            ("sku", or_dash(&inv.sku)),
            ("boot_mode", spelled(&inv.boot_mode)),
            ("secure_boot", or_dash(&inv.secure_boot)),
        ];
        for (key, value) in sheet {
            println!("  {:<12} {}", format!("{key}:"), value);
        }
        let cpus = &inv.cpus;
        println!(
            "  {:<12} {} ({} sockets, {} cores, {} threads)",
            "cpu:",
            or_dash(&cpus.model),
            or_dash(&cpus.sockets),
            or_dash(&cpus.cores),
            or_dash(&cpus.threads)
        );
        let human = bootd_proto::hardware::human_bytes;
        println!(
            "  {:<12} {}",
            "memory:",
            inv.memory
                .total_bytes
                .map_or_else(|| "-".to_string(), human)
        );
        println!("  {:<12} {}", "disks:", inv.disks.len());
        for d in &inv.disks {
            println!(
                "    {:<10} {:>10}  {} {}{}",
                or_dash(&d.name),
                d.size_bytes.map_or_else(|| "-".to_string(), human),
                or_dash(&d.model),
                or_dash(&d.transport),
                match d.rotational {
                    Some(true) => " (spinning)",
                    Some(false) => " (solid state)",
                    None => "",
                }
            );
        }
        println!("  {:<12} {}", "nics:", inv.nics.len());
        for n in &inv.nics {
            println!(
                "    {:<10} {}  {}{}",
                or_dash(&n.name),
                or_dash(&n.mac),
                n.speed_mbps
                    .map_or_else(|| "-".to_string(), |m| format!("{m} Mbit/s")),
                match n.link {
                    Some(true) => ", link up",
                    Some(false) => ", no link",
                    None => "",
                }
            );
        }
        if let Some(bmc) = inv.bmc.as_ref().and_then(|b| b.address.as_ref()) {
            println!("  {:<12} {bmc}", "bmc:");
        }
        if !v.changes.is_empty() {
            println!("  changed since the previous report:");
            for c in &v.changes {
                println!("    - {c}");
            }
        }
    }

    /// `bootctl hardware`: discovered machines that reported.
    pub fn discovered(&self, a: &Answer<DiscoveredList>) {
        if self.raw(a) {
            return;
        }
        let rows: Vec<Vec<String>> = a
            .body
            .discovered
            .iter()
            .map(|m| {
                vec![
                    m.mac.to_string(),
                    m.summary.clone(),
                    m.first_seen.to_string(),
                    m.last_seen.to_string(),
                ]
            })
            .collect();
        table(&["MAC", "HARDWARE", "FIRST SEEN", "LAST SEEN"], &rows);
    }

    /// `bootctl hardware --all`: every node that reported hardware.
    pub fn reported(&self, a: &Answer<NodeList>) {
        if self.raw(a) {
            return;
        }
        let rows: Vec<Vec<String>> = a
            .body
            .nodes
            .iter()
            .filter_map(|e| {
                let hw = e.hardware.as_ref()?;
                Some(vec![
                    e.node.mac.to_string(),
                    or_dash(&e.node.hostname),
                    e.node.origin.clone(),
                    hw.summary.clone(),
                ])
            })
            .collect();
        if rows.is_empty() {
            println!("no node has reported hardware");
            return;
        }
        table(&["MAC", "HOSTNAME", "ORIGIN", "HARDWARE"], &rows);
    }

    /// Answer of `bootctl reload`.
    pub fn reload(&self, a: &Answer<ReloadAnswer>) {
        if !self.raw(a) {
            println!("reloaded: {}", a.body.summary);
        }
    }

    /// `bootctl relay`: per upstream the backlog, then failing events, dead letters and
    /// the most recent deliveries.
    pub fn relay(&self, a: &Answer<RelayOverview>) {
        if self.raw(a) {
            return;
        }
        let v = &a.body;
        let rows: Vec<Vec<String>> = v
            .upstreams
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.pending.to_string(),
                    u.failing.to_string(),
                    u.dead.to_string(),
                    u.delivered.to_string(),
                    or_dash(&u.oldest_pending),
                    if u.configured {
                        or_dash(&u.secret)
                    } else {
                        "not configured".into()
                    },
                ]
            })
            .collect();
        table(
            &[
                "UPSTREAM",
                "PENDING",
                "FAILING",
                "DEAD",
                "DELIVERED",
                "OLDEST PENDING",
                "SECRET",
            ],
            &rows,
        );
        type When = fn(&RelayEntry) -> String;
        let events = |title: &str, list: &[RelayEntry], when: When, head: &str, max: usize| {
            let rows: Vec<Vec<String>> = list
                .iter()
                .take(max)
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.upstream.clone(),
                        r.node.clone(),
                        r.seq.to_string(),
                        or_dash(&r.phase),
                        r.attempts.to_string(),
                        when(r),
                        or_dash(&r.last_error),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                println!();
                println!("{title}:");
                table(
                    &[
                        "ID",
                        "UPSTREAM",
                        "NODE",
                        "SEQ",
                        "PHASE",
                        "ATTEMPTS",
                        head,
                        "LAST ERROR",
                    ],
                    &rows,
                );
            }
        };
        events(
            "failing (retried with backoff)",
            &v.failing,
            |r| or_dash(&r.next_attempt),
            "NEXT ATTEMPT",
            usize::MAX,
        );
        events(
            "dead letters (bootctl relay retry --id N | --all-dead)",
            &v.dead,
            |r| r.created_at.to_string(),
            "CREATED",
            usize::MAX,
        );
        // The full list of recent deliveries is in --json; a screen shows the last few.
        events(
            "recently delivered",
            &v.recent,
            |r| or_dash(&r.delivered_at),
            "DELIVERED",
            RECENT_ON_SCREEN,
        );
    }

    /// Answer of `bootctl relay retry`.
    pub fn retried(&self, a: &Answer<Retried>) {
        if !self.raw(a) {
            println!("retried {}", a.body.retried);
        }
    }

    /// Answer of `bootctl relay drop`.
    pub fn dropped(&self, a: &Answer<Dropped>) {
        if !self.raw(a) {
            println!("dropped {}", a.body.dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_two_spaces_apart_without_trailing_blanks() {
        let text = table_text(
            &["MAC", "PHASE", "MESSAGE"],
            &[
                vec!["52:54:00:aa:00:01".into(), "running".into(), "".into()],
                vec!["x".into(), "installing".into(), "a long message".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "MAC                PHASE       MESSAGE",
                "52:54:00:aa:00:01  running",
                "x                  installing  a long message",
            ]
        );
    }
}
