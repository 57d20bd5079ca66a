//! Which machine boots what: profile selection per MAC (node, group, default), the
//! one-shot next boot, and the minijinja templates, compiled once per config load.

pub mod grub;

use crate::config::{BootMode, Config};
use crate::nodes::Node;
use minijinja::Environment;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// Templates built into the binary; a file of the same name in `templates_dir` wins.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        crate::config::DISCOVERY_SCRIPT,
        include_str!("../../boot-assets/templates/discovery.ipxe"),
    ),
    (
        crate::config::LOCAL_SCRIPT,
        include_str!("../../boot-assets/templates/local.ipxe"),
    ),
    (
        grub::DEFAULT_TEMPLATE,
        include_str!("../../boot-assets/templates/grub.cfg"),
    ),
];

/// Most extra files read from one profile's directory.
const MAX_PROFILE_FILES: usize = 64;

/// Largest template file bootd reads.
const MAX_TEMPLATE: u64 = 1 << 20;

/// Whether a template exists: a file in the templates dir or one built into bootd.
pub fn template_exists(dir: &Path, name: &str) -> bool {
    BUILTIN.iter().any(|(n, _)| *n == name) || dir.join(name).is_file()
}

/// A template that failed to load or compile, with `file:line`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{place}: {detail}")]
pub struct TemplateError {
    pub place: String,
    pub detail: String,
}

/// The config key that names a template (`profiles.demo.script`), before the message.
fn with_key(cfg: &Config, name: &str, detail: &str) -> String {
    let key = cfg.profiles.iter().find_map(|(p, prof)| {
        if prof.script == name {
            Some(format!("profiles.{p}.script"))
        } else if prof.config.as_deref() == Some(name) {
            Some(format!("profiles.{p}.config"))
        } else {
            name.strip_prefix(&format!("{p}/"))
                .map(|_| format!("profiles.{p} (file {name})"))
        }
    });
    match key {
        Some(k) => format!("{k}: {detail}"),
        None => detail.to_string(),
    }
}

/// Line and column (1-based) of a syntax error. An error inside a tag that runs onto a
/// later line (an unclosed `{{`, `{%` or `{#`) points at the tag's opening, where the
/// mistake is, rather than at the line where the parser gave up.
fn syntax_place(source: &str, e: &minijinja::Error) -> (usize, usize) {
    let mut offset = e
        .range()
        .map_or(source.len(), |r| r.start)
        .min(source.len());
    let before = &source[..offset];
    let open = ["{{", "{%", "{#"]
        .iter()
        .zip(["}}", "%}", "#}"])
        .filter_map(|(o, c)| {
            let at = before.rfind(o)?;
            (!before[at..].contains(c)).then_some(at)
        })
        .max();
    if let Some(at) = open {
        if before[at..].contains('\n') {
            offset = at;
        }
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Every template a config refers to, compiled.
pub struct Templates {
    env: Environment<'static>,
}

/// What a machine boots now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The profile whose script is rendered (`local` for a local boot).
    pub profile: String,
    pub script: String,
    pub config: Option<String>,
    /// True when this render consumes a one-shot `next_boot`.
    pub one_shot: bool,
}

/// The variables every template sees (DESIGN.md, "Templates and callbacks").
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub mac: String,
    pub mac_hyphen: String,
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub profile: String,
    pub arch: String,
    pub base_url: String,
    pub token: String,
    pub phase_url: String,
    pub hardware_url: String,
    pub assets_url: String,
    pub node: serde_json::Value,
}

impl Templates {
    /// Reads and compiles every template the config names (plus the built-ins), and
    /// renders each once with a sample context; all problems are reported together.
    pub fn load(cfg: &Config) -> Result<Templates, Vec<TemplateError>> {
        let mut env = Environment::new();
        // Chainable: `node.hardware.product` renders empty for a machine that has not
        // reported yet instead of failing its boot.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        let mut names: BTreeSet<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        for p in cfg.profiles.values() {
            names.insert(p.script.clone());
            if let Some(c) = &p.config {
                names.insert(c.clone());
            }
        }
        // Extra files of a profile (`templates_dir/<profile>/*`), served at
        // `/config/{mac}/<file>`.
        for profile in cfg.profiles.keys() {
            let dir = cfg.server.templates_dir.join(profile);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten().take(MAX_PROFILE_FILES) {
                    if entry.path().is_file() {
                        if let Some(file) = entry.file_name().to_str() {
                            names.insert(format!("{profile}/{file}"));
                        }
                    }
                }
            }
        }
        let mut errors = Vec::new();
        for name in &names {
            let path = cfg.server.templates_dir.join(name);
            let source = if path.is_file() {
                match read_limited(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(TemplateError {
                            place: path.display().to_string(),
                            detail: e,
                        });
                        continue;
                    }
                }
            } else if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| n == name) {
                text.to_string()
            } else {
                errors.push(TemplateError {
                    place: path.display().to_string(),
                    detail: "template not found".into(),
                });
                continue;
            };
            let at = |e: &minijinja::Error| syntax_place(&source, e);
            if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
                let (line, col) = at(&e);
                errors.push(TemplateError {
                    place: format!("{}:{line}:{col}", path.display()),
                    detail: with_key(cfg, name, e.detail().unwrap_or("syntax error")),
                });
            }
        }
        let templates = Templates { env };
        if errors.is_empty() {
            let sample = Context::sample(cfg);
            for name in &names {
                if let Err(e) = templates.render(name, &sample) {
                    errors.push(TemplateError {
                        place: format!(
                            "{}:{}",
                            cfg.server.templates_dir.join(name).display(),
                            e.line().unwrap_or(0)
                        ),
                        detail: with_key(
                            cfg,
                            name,
                            &e.detail()
                                .map(str::to_string)
                                .unwrap_or_else(|| e.to_string()),
                        ),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(templates)
        } else {
            Err(errors)
        }
    }

    /// Whether a template of this name was loaded.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Renders one template.
    pub fn render(&self, name: &str, ctx: &Context) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_TEMPLATE {
        return Err(format!("larger than {MAX_TEMPLATE} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// What `node` boots now: local disk, its one-shot next boot, its profile, its
/// group's, or the default.
pub fn select(node: Option<&Node>, cfg: &Config) -> Selection {
    select_with_hardware(node, cfg, &|| None)
}

/// The value of one `match` fact in an inventory.
fn fact(inv: &crate::hardware::Inventory, name: &str) -> Option<String> {
    match name {
        "vendor" => inv.vendor.clone(),
        "product" => inv.product.clone(),
        "serial" => inv.serial.clone(),
        "sku" => inv.sku.clone(),
        "uuid" => inv.uuid.clone(),
        "bios_vendor" => inv.bios.vendor.clone(),
        "boot_mode" => serde_json::to_value(inv.boot_mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string)),
        "cpu_model" => inv.cpus.model.clone(),
        _ => None,
    }
}

/// The first profile (by name) whose every `match` fact equals the inventory's.
pub fn matching_profile<'a>(cfg: &'a Config, inv: &crate::hardware::Inventory) -> Option<&'a str> {
    cfg.profiles
        .iter()
        .filter(|(_, p)| !p.matches.is_empty())
        .find(|(_, p)| {
            p.matches
                .iter()
                .all(|(k, want)| fact(inv, k).as_deref() == Some(want.as_str()))
        })
        .map(|(name, _)| name.as_str())
}

/// Like [`select`], and a node with neither its own nor its group's profile gets the
/// first profile whose `match` fits its hardware; `hardware` is read only then.
pub fn select_with_hardware(
    node: Option<&Node>,
    cfg: &Config,
    hardware: &dyn Fn() -> Option<crate::hardware::Inventory>,
) -> Selection {
    let by_name = |name: &str, one_shot: bool| {
        let profile = cfg.profiles.get(name);
        Selection {
            profile: name.to_string(),
            script: profile
                .map(|p| p.script.clone())
                .unwrap_or_else(|| format!("{name}.ipxe")),
            config: profile.and_then(|p| p.config.clone()),
            one_shot,
        }
    };
    let Some(node) = node else {
        return by_name(&cfg.boot.default_profile, false);
    };
    if let Some(next) = node.next_boot.as_deref() {
        return by_name(next, true);
    }
    if node.boot == BootMode::Local {
        return by_name("local", false);
    }
    let name = crate::nodes::effective_profile(node, cfg, hardware).name;
    by_name(&name, false)
}

impl Context {
    /// The context of a node's render.
    pub fn new(node: &Node, profile: &str, arch: &str, token: String, base_url: &str) -> Context {
        let mac = node.mac.to_string();
        Context {
            mac_hyphen: node.mac.hyphenated(),
            ip: node.ip.map(|i| i.to_string()),
            hostname: node.hostname.clone(),
            group: node.group.clone(),
            profile: profile.to_string(),
            arch: arch.to_string(),
            base_url: base_url.to_string(),
            token,
            phase_url: format!("{base_url}/api/v1/nodes/{mac}/phase"),
            hardware_url: format!("{base_url}/api/v1/nodes/{mac}/hardware"),
            assets_url: format!("{base_url}/assets"),
            node: serde_json::to_value(node).unwrap_or(serde_json::Value::Null),
            mac,
        }
    }

    /// A context with every variable set, for checking templates at load.
    pub fn sample(cfg: &Config) -> Context {
        let mut node = Node::new(
            crate::mac::MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            crate::nodes::Origin::Config,
        );
        node.hostname = Some("sample".into());
        node.ip = Some(std::net::Ipv4Addr::new(192, 0, 2, 10));
        Context::new(
            &node,
            &cfg.boot.default_profile,
            "x86_64-efi",
            "0".repeat(40),
            &cfg.server.public_url,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::MacAddr;

    fn cfg() -> Config {
        Config::embedded(Path::new("/nonexistent"))
    }

    #[test]
    fn builtins_compile_and_render_every_variable() {
        let cfg = cfg();
        let t = Templates::load(&cfg).expect("templates");
        let node = Node::new(
            MacAddr([0x52, 0x54, 0, 1, 2, 3]),
            crate::nodes::Origin::Config,
        );
        let ctx = Context::new(&node, "discovery", "bios", "tok".into(), "http://h:8080");
        let out = t.render("discovery.ipxe", &ctx).expect("render");
        assert!(out.starts_with("#!ipxe"));
        assert!(out.contains("http://h:8080/assets/discovery/vmlinuz"));
        assert!(out.contains("bootd.token=tok"));
        assert!(out.contains("bootd.phase_url=http://h:8080/api/v1/nodes/52:54:00:01:02:03/phase"));
        let local = t.render("local.ipxe", &ctx).expect("render");
        assert!(
            local.contains("sanboot") && local.contains("${platform}"),
            "{local}"
        );
    }

    #[test]
    fn broken_template_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("bad.ipxe"),
            "#!ipxe\nline two\n{{ broken \nline four\n",
        )
        .expect("write");
        let mut cfg = cfg();
        cfg.server.templates_dir = dir.path().to_path_buf();
        if let Some(p) = cfg.profiles.get_mut("discovery") {
            p.script = "bad.ipxe".into();
        }
        let errs = Templates::load(&cfg).err().expect("must fail");
        let text = errs[0].to_string();
        // The unclosed `{{` itself, with the key that names the file.
        assert!(
            text.contains("bad.ipxe:3:1: profiles.discovery.script: "),
            "{text}"
        );
    }

    #[test]
    fn selection_order_node_group_default_local_and_one_shot() {
        let cfg = cfg();
        let mut n = Node::new(MacAddr([2, 0, 0, 0, 0, 1]), crate::nodes::Origin::Config);
        assert_eq!(select(Some(&n), &cfg).profile, "discovery");
        assert_eq!(select(None, &cfg).profile, "discovery");
        n.profile = Some("local".into());
        assert_eq!(select(Some(&n), &cfg).script, "local.ipxe");
        n.profile = None;
        n.boot = BootMode::Local;
        assert_eq!(select(Some(&n), &cfg).profile, "local");
        n.next_boot = Some("discovery".into());
        let s = select(Some(&n), &cfg);
        assert_eq!((s.profile.as_str(), s.one_shot), ("discovery", true));
    }
}
