//! `[profiles.NAME]`: what a machine boots (script and config templates, deadline, extra
//! phases, loader, boot-file overrides, hardware match), including the built-in
//! `discovery` and `local` profiles.

use super::reader::{shown, Ctx, Field, Section};
use super::values::{check_http_url, check_name, check_relative_file, serialize_opt_duration};
use super::MAX_NAME_LEN;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Built-in profile that unknown machines boot (hardware discovery).
pub const DISCOVERY_PROFILE: &str = "discovery";
/// Built-in profile that boots the local disk.
pub const LOCAL_PROFILE: &str = "local";
/// Template of the built-in `discovery` profile.
pub const DISCOVERY_SCRIPT: &str = "discovery.ipxe";
/// Template of the built-in `local` profile.
pub const LOCAL_SCRIPT: &str = "local.ipxe";

/// Phase names of the state machine; a profile's own phases may not reuse them.
pub const BUILTIN_PHASES: [&str; 17] = [
    "discovered",
    "known",
    "server_requested",
    "pending",
    "starting",
    "dhcp",
    "ipxe_boot",
    "config_requested",
    "installing",
    "registered",
    "health_validation",
    "running",
    "clustered",
    "unhealthy",
    "stopped",
    "failed",
    "timeout",
];

/// Shortest profile deadline.
pub const PROFILE_TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// Longest profile deadline.
pub const PROFILE_TIMEOUT_MAX: Duration = Duration::from_secs(30 * 86_400);

/// `profiles.NAME.loader`: which boot loader the profile's script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    /// An iPXE script.
    Ipxe,
    /// A GRUB config (Secure Boot chains through shim and GRUB).
    Grub,
}

/// `[profiles.NAME]`.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// Boot script template in `templates_dir`.
    pub script: String,
    /// Install config template served at `/config/{mac}`.
    pub config: Option<String>,
    /// Deadline from `dhcp` to `running`.
    #[serde(serialize_with = "serialize_opt_duration")]
    pub timeout: Option<Duration>,
    /// Extra phases and their progress (0..=100).
    pub phases: BTreeMap<String, u8>,
    /// Which loader the script is for.
    pub loader: Loader,
    /// Override of `boot.bios_file`.
    pub bios_file: Option<String>,
    /// Override of `boot.efi_file`.
    pub efi_file: Option<String>,
    /// Override of `boot.arm64_file`.
    pub arm64_file: Option<String>,
    /// URL POSTed by `bootctl reprovision` to power-cycle a machine into its install.
    pub power_cycle: Option<String>,
    /// Hardware facts that select this profile for a node with no profile of its own
    /// (`match = { product = "PowerEdge R650" }`); every fact must equal the inventory's.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// Readiness checks (`ready = [ { ssh = 22 } ]`): all pass → health_validation.
    pub ready: Vec<crate::ready::Check>,
    /// Phases besides `registered` in which `ready` checks run (`ready_from =
    /// ["installing"]`): for systems that never post `registered` (Talos).
    pub ready_from: Vec<String>,
}

/// Inventory facts a profile's `match` may name.
pub const MATCH_FACTS: &[&str] = &[
    "vendor",
    "product",
    "serial",
    "sku",
    "uuid",
    "bios_vendor",
    "boot_mode",
    "cpu_model",
];

pub(super) fn builtin_profiles() -> BTreeMap<String, Profile> {
    let mut profiles = BTreeMap::new();
    for (name, script) in [
        (DISCOVERY_PROFILE, DISCOVERY_SCRIPT),
        (LOCAL_PROFILE, LOCAL_SCRIPT),
    ] {
        profiles.insert(name.to_string(), Profile::with_script(script));
    }
    profiles
}

impl Profile {
    fn with_script(script: &str) -> Profile {
        Profile {
            script: script.to_string(),
            config: None,
            timeout: None,
            phases: BTreeMap::new(),
            loader: Loader::Ipxe,
            bios_file: None,
            efi_file: None,
            arm64_file: None,
            power_cycle: None,
            matches: BTreeMap::new(),
            ready: Vec::new(),
            ready_from: Vec::new(),
        }
    }
}

/// Phase names of a profile: lower-case words that are not built-in phases.
fn check_phase_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > MAX_NAME_LEN
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "invalid phase name {:?}: expected 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and '_'",
            shown(s)
        ));
    }
    if BUILTIN_PHASES.contains(&s) {
        return Err(format!(
            "phase {s:?} is built in; a profile cannot redefine it"
        ));
    }
    Ok(())
}

pub(super) fn read_profiles(
    cx: &mut Ctx<'_>,
    s: &Section<'_>,
    templates_dir: &Path,
    template_exists: &dyn Fn(&Path, &str) -> bool,
) -> BTreeMap<String, Profile> {
    let mut profiles = builtin_profiles();
    for entry in s.entries() {
        if let Err(message) = check_name(entry.name) {
            cx.error(entry.key_at, &entry.path, message);
        }
        let Some(p) = cx.table(&entry) else {
            // Still defined, so references to it do not add a second error.
            profiles.insert(entry.name.to_string(), Profile::with_script(""));
            continue;
        };
        p.check_keys(
            cx,
            &[
                "script",
                "config",
                "timeout",
                "phases",
                "loader",
                "bios_file",
                "efi_file",
                "arm64_file",
                "power_cycle",
                "match",
                "ready",
                "ready_from",
            ],
        );
        let script = p
            .require(cx, "script")
            .and_then(|f| read_template(cx, &f, templates_dir, template_exists));
        let config = p
            .get("config")
            .and_then(|f| read_template(cx, &f, templates_dir, template_exists));
        let timeout = p
            .get("timeout")
            .and_then(|f| cx.duration(&f, PROFILE_TIMEOUT_MIN, PROFILE_TIMEOUT_MAX));
        let phases = p
            .get("phases")
            .map(|f| read_phases(cx, &f))
            .unwrap_or_default();
        let loader = p
            .get("loader")
            .and_then(|f| cx.choice(&f, &[("ipxe", Loader::Ipxe), ("grub", Loader::Grub)]))
            .unwrap_or(Loader::Ipxe);
        let mut asset = |key: &str| p.get(key).and_then(|f| cx.parsed(&f, check_relative_file));
        let (bios_file, efi_file, arm64_file) =
            (asset("bios_file"), asset("efi_file"), asset("arm64_file"));
        let power_cycle = p
            .get("power_cycle")
            .and_then(|f| cx.parsed(&f, check_http_url));
        let matches = p
            .get("match")
            .map(|f| read_match(cx, &f))
            .unwrap_or_default();
        let ready = p.get("ready").map_or_else(Vec::new, |f| {
            let (checks, errors) = crate::ready::spec::parse(f.item, &f.path, f.at);
            for e in errors {
                cx.error(e.at, &e.path, e.message);
            }
            checks
        });
        let ready_from = p
            .get("ready_from")
            .map(|f| read_ready_from(cx, &f, &phases))
            .unwrap_or_default();
        profiles.insert(
            entry.name.to_string(),
            Profile {
                script: script.unwrap_or_default(),
                config,
                timeout,
                phases,
                loader,
                bios_file,
                efi_file,
                arm64_file,
                power_cycle,
                matches,
                ready,
                ready_from,
            },
        );
    }
    profiles
}

/// Phases `ready_from` may name: the post-install ones a machine may sit in (and the
/// profile's own phases).
pub const READY_FROM_PHASES: &[&str] = &["config_requested", "installing", "registered"];

/// `ready_from = ["installing", ...]`: built-in post-install phases or the profile's own.
fn read_ready_from(cx: &mut Ctx<'_>, f: &Field<'_>, own: &BTreeMap<String, u8>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, at) in cx.strings(f).unwrap_or_default() {
        if READY_FROM_PHASES.contains(&name) || own.contains_key(name) {
            out.push(name.to_string());
        } else {
            cx.error(
                at.at,
                &at.path,
                format!(
                    "{name:?} is not a phase readiness can start from; expected one of {} \
                     or a phase of this profile",
                    READY_FROM_PHASES.join(", ")
                ),
            );
        }
    }
    out
}

/// `match = { fact = "value", ... }` of a profile: known facts, string values.
fn read_match(cx: &mut Ctx<'_>, f: &Field<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(table) = cx.table(f) else {
        return out;
    };
    for fact in table.entries() {
        if !MATCH_FACTS.contains(&fact.name) {
            cx.error(
                fact.key_at,
                &fact.path,
                format!(
                    "unknown hardware fact; expected one of {}",
                    MATCH_FACTS.join(", ")
                ),
            );
            continue;
        }
        if let Some(value) = cx.string(&fact) {
            out.insert(fact.name.to_string(), value.to_string());
        }
    }
    out
}

/// A template file name, reported if `template_exists` does not know it.
fn read_template(
    cx: &mut Ctx<'_>,
    f: &Field<'_>,
    templates_dir: &Path,
    template_exists: &dyn Fn(&Path, &str) -> bool,
) -> Option<String> {
    let name = cx.parsed(f, check_relative_file)?;
    if !template_exists(templates_dir, &name) {
        cx.error(
            f.at,
            &f.path,
            format!("template {name:?} not found in {}", templates_dir.display()),
        );
    }
    Some(name)
}

fn read_phases(cx: &mut Ctx<'_>, f: &Field<'_>) -> BTreeMap<String, u8> {
    let mut phases = BTreeMap::new();
    let Some(table) = cx.table(f) else {
        return phases;
    };
    for phase in table.entries() {
        if let Err(message) = check_phase_name(phase.name) {
            cx.error(phase.key_at, &phase.path, message);
            continue;
        }
        if let Some(progress) = cx
            .integer(&phase, 0, 100)
            .and_then(|v| u8::try_from(v).ok())
        {
            phases.insert(phase.name.to_string(), progress);
        }
    }
    phases
}

/// Reports a reference to a profile that does not exist.
pub(super) fn check_profile_ref(
    cx: &mut Ctx<'_>,
    f: &Field<'_>,
    profiles: &BTreeMap<String, Profile>,
) -> Option<String> {
    let name = cx.string(f)?;
    if profiles.contains_key(name) {
        return Some(name.to_string());
    }
    let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
    cx.error(
        f.at,
        &f.path,
        format!(
            "unknown profile {:?}; defined profiles: {}",
            shown(name),
            known.join(", ")
        ),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{parse, where_, FILE, SERVER};
    use crate::config::{Config, DEFAULT_TEMPLATES_DIR};

    #[test]
    fn power_cycle_is_an_http_url() {
        let ok = format!(
            "{SERVER}[profiles.x]\nscript = \"x.ipxe\"\npower_cycle = \"http://10.0.0.5:9000/cycle\"\n"
        );
        let c = parse(&ok).expect("valid");
        assert_eq!(
            c.profiles.get("x").and_then(|p| p.power_cycle.as_deref()),
            Some("http://10.0.0.5:9000/cycle")
        );
        let bad = format!(
            "{SERVER}[profiles.x]\nscript = \"x.ipxe\"\npower_cycle = \"ftp://10.0.0.5/cycle\"\n"
        );
        assert_eq!(where_(&bad), ["t.toml:5:15: profiles.x.power_cycle"]);
    }

    #[test]
    fn missing_template_and_missing_key() {
        let text = format!("{SERVER}[profiles.u]\nscript = \"u.ipxe\"\nconfig = \"seed.yaml\"\n[profiles.v]\ntimeout = \"1h\"\n");
        let only_u =
            |dir: &Path, name: &str| dir == Path::new(DEFAULT_TEMPLATES_DIR) && name == "u.ipxe";
        let e = Config::parse_str(&text, Path::new(FILE), &only_u).map_err(|e| e.to_string());
        assert_eq!(
            e.err().as_deref(),
            Some(
                "t.toml:5:10: profiles.u.config: template \"seed.yaml\" not found in /etc/bootd/templates\n\
                 t.toml:6:1: profiles.v.script: missing required key"
            )
        );
    }

    #[test]
    fn profile_phases() {
        let text = format!("{SERVER}[profiles.u]\nscript = \"u.ipxe\"\nphases = {{ foundation_boot = 40, running = 50, late = 101, Bad = 1 }}\n");
        assert_eq!(
            where_(&text),
            [
                "t.toml:5:34: profiles.u.phases.running",
                "t.toml:5:55: profiles.u.phases.late",
                "t.toml:5:60: profiles.u.phases.Bad",
            ]
        );
        let ok = format!("{SERVER}[profiles.u]\nscript = \"u.ipxe\"\n[profiles.u.phases]\nfoundation_boot = 40\n");
        let phases = parse(&ok)
            .ok()
            .and_then(|c| c.profiles.get("u").map(|p| p.phases.clone()));
        assert_eq!(
            phases.and_then(|p| p.get("foundation_boot").copied()),
            Some(40)
        );
    }
}
