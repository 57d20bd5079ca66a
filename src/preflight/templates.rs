//! Template checks: every configured node's boot script and install config render with
//! that node's own context, for every firmware architecture it may boot with.

use super::{Check, Verdict};
use crate::boot::{select, Context, Templates};
use crate::config::Config;
use crate::nodes::Node;

/// The architectures a script may be rendered for (DESIGN.md, template variable `arch`).
const ARCHES: [&str; 3] = ["bios", "x86_64-efi", "arm64-efi"];
/// Length of the stand-in callback token (a real one is 40 hex digits).
const SAMPLE_TOKEN_LEN: usize = 40;
/// Failing renders listed one by one; the rest are counted.
const MAX_LISTED: usize = 10;

/// One `templates` check: ok with a count, or a fail per broken (node, template, arch).
pub fn check(cfg: &Config, templates: &Templates) -> Vec<Check> {
    let token = "0".repeat(SAMPLE_TOKEN_LEN);
    let mut failures = Vec::new();
    let mut renders = 0usize;
    for spec in &cfg.nodes {
        let node = Node::from_spec(spec);
        let sel = select(Some(&node), cfg);
        let names = std::iter::once(sel.script.clone()).chain(sel.config.clone());
        for name in names {
            for arch in ARCHES {
                let ctx = Context::new(
                    &node,
                    &sel.profile,
                    arch,
                    token.clone(),
                    &cfg.server.public_url,
                );
                renders += 1;
                if let Err(e) = templates.render(&name, &ctx) {
                    let detail = e
                        .detail()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string());
                    failures.push((spec.mac, name.clone(), arch, detail));
                }
            }
        }
    }
    if failures.is_empty() {
        let message = if cfg.nodes.is_empty() {
            "every template compiles and renders (no [[nodes]] configured)".to_string()
        } else {
            let n = cfg.nodes.len();
            let nodes = if n == 1 { "node" } else { "nodes" };
            format!("every template compiles; {renders} renders for {n} {nodes} succeed")
        };
        return vec![Check::ok(
            "templates",
            cfg.server.templates_dir.display().to_string(),
            message,
        )];
    }
    let total = failures.len();
    let mut out: Vec<Check> = failures
        .into_iter()
        .take(MAX_LISTED)
        .map(|(mac, name, arch, detail)| {
            Check::new(
                "templates",
                name,
                Verdict::Fail,
                format!("node {mac} ({arch}): {detail}"),
                "fix the template or the node's vars it uses",
            )
        })
        .collect();
    if total > MAX_LISTED {
        out.push(Check::new(
            "templates",
            "",
            Verdict::Fail,
            format!("{} more renders failed", total - MAX_LISTED),
            "fix the templates listed above first",
        ));
    }
    out
}
