//! Configuration: the schema of `bootd.toml`, read once into validated, immutable types.
//! Every problem in a file is reported at once, each as `file:line:col: key: message`.
//!
//! One file per TOML section holds that section's struct, its defaults, its reader and its
//! tests (`server.rs`, `dhcp.rs`, `tftp.rs`, `http.rs`, `boot.rs`, `profiles.rs`,
//! `groups.rs`, `nodes.rs`, `health.rs`, `upstream.rs`). `reader.rs` walks the spanned
//! document and turns byte offsets into `line:col`; `values.rs` holds the value checks
//! sections share. This file holds `Config`, loading, errors and the top-level walk.

mod boot;
mod dhcp;
mod groups;
mod health;
mod http;
mod nodes;
mod profiles;
mod reader;
mod server;
#[cfg(test)]
mod testing;
mod tftp;
mod upstream;
mod values;

pub use boot::{Boot, UnknownPolicy, DEFAULT_ARM64_FILE, DEFAULT_BIOS_FILE, DEFAULT_EFI_FILE};
pub use dhcp::{
    Dhcp, DhcpMode, Option43, Pool, DEFAULT_LEASE_TIME, DEFAULT_RATE_PER_MAC, LEASE_TIME_MAX,
    LEASE_TIME_MIN, RATE_PER_MAC_MAX,
};
pub use groups::Group;
pub use health::{
    Health, DEFAULT_HEALTH_INTERVAL, DEFAULT_UNHEALTHY_AFTER, HEALTH_INTERVAL_MAX, HEALTH_MIN,
    UNHEALTHY_AFTER_MAX,
};
pub use http::{
    Http, BODY_LIMIT_MAX, BODY_LIMIT_MIN, DEFAULT_BODY_LIMIT, DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HTTP_CONNECTIONS, HEADER_TIMEOUT_MAX, HTTP_CONNECTIONS_MAX,
};
pub use nodes::{BootMode, NodeClaims, NodeSpec, NodeValueError};
pub use profiles::{
    Loader, Profile, BUILTIN_PHASES, DISCOVERY_PROFILE, DISCOVERY_SCRIPT, LOCAL_PROFILE,
    LOCAL_SCRIPT, MATCH_FACTS, PROFILE_TIMEOUT_MAX, PROFILE_TIMEOUT_MIN,
};
pub use server::{
    Server, DEFAULT_CONTROL_SOCKET, DEFAULT_HTTP_LISTEN, DEFAULT_STATE_DIR, DEFAULT_TEMPLATES_DIR,
    EMBEDDED_HTTP_LISTEN, EMBEDDED_STATE_DIR_NAME,
};
pub use tftp::{
    Tftp, DEFAULT_TFTP_BLKSIZE, DEFAULT_TFTP_LISTEN, DEFAULT_TFTP_SESSIONS,
    DEFAULT_TFTP_SESSIONS_PER_CLIENT, DEFAULT_TFTP_WINDOWSIZE, EMBEDDED_TFTP_LISTEN,
    TFTP_BLKSIZE_MAX, TFTP_BLKSIZE_MIN, TFTP_SESSIONS_MAX, TFTP_WINDOWSIZE_MAX,
};
pub use upstream::Upstream;
pub use values::{
    format_duration, parse_duration, Ipv4Net, Ipv4NetError, MAX_ID_LEN, MAX_IFNAME_LEN,
    MAX_NAME_LEN, MAX_URL_LEN,
};

use crate::mac::MacAddr;
use reader::{Ctx, Section};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use toml_edit::{ImDocument, TableLike};

/// Where `bootd` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bootd/bootd.toml";
/// A config file larger than this is refused before parsing (a typo'd path to a disk image).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `[server]`: paths, listen addresses, public URL.
    pub server: Server,
    /// `[dhcp]`: mode and pools.
    pub dhcp: Dhcp,
    /// `[tftp]`: listener and limits.
    pub tftp: Tftp,
    /// `[http]`: limits of the HTTP server.
    pub http: Http,
    /// `[boot]`: default boot files and policy for unknown machines.
    pub boot: Boot,
    /// `[profiles.NAME]`, always including `discovery` and `local`.
    pub profiles: BTreeMap<String, Profile>,
    /// `[groups.NAME]`.
    pub groups: BTreeMap<String, Group>,
    /// `[[nodes]]`, in file order.
    pub nodes: Vec<NodeSpec>,
    /// `[health]`.
    pub health: Health,
    /// `[[upstream]]`, in file order.
    pub upstream: Vec<Upstream>,
    /// The file this was read from; `None` for the embedded configuration.
    pub source: Option<PathBuf>,
}

/// One problem in a config file. `line` and `col` are 1-based and point at the offending
/// value (or at the key / table header for unknown and missing keys); `line == 0` means
/// the problem has no position (the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, 0 when there is no position.
    pub line: usize,
    /// 1-based column in characters, 0 when there is no position.
    pub col: usize,
    /// Dotted path of the key, such as `nodes[2].mac` (array indices are 0-based);
    /// empty for syntax and I/O errors.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A `template_exists` for `Config::load`: a template exists if it is one of `builtin`
/// or a regular file in the templates directory.
pub fn template_lookup<'a>(builtin: &'a [&'a str]) -> impl Fn(&Path, &str) -> bool + 'a {
    move |dir, name| builtin.contains(&name) || dir.join(name).is_file()
}

impl Config {
    /// The configuration used when there is no config file: everything under
    /// `base/bootd-state`, HTTP and TFTP on unprivileged loopback ports, DHCP off.
    pub fn embedded(base: &Path) -> Config {
        let state_dir = base.join(EMBEDDED_STATE_DIR_NAME);
        Config {
            server: Server {
                assets_dir: state_dir.join("assets"),
                templates_dir: state_dir.join("templates"),
                control_socket: state_dir.join("control.sock"),
                state_dir,
                http_listen: EMBEDDED_HTTP_LISTEN,
                public_url: format!("http://{EMBEDDED_HTTP_LISTEN}"),
                control_group: None,
                interfaces: Vec::new(),
            },
            dhcp: Dhcp {
                mode: DhcpMode::Off,
                ..Dhcp::default()
            },
            tftp: Tftp {
                listen: EMBEDDED_TFTP_LISTEN,
                ..Tftp::default()
            },
            http: Http::default(),
            boot: Boot::default(),
            profiles: profiles::builtin_profiles(),
            groups: BTreeMap::new(),
            nodes: Vec::new(),
            health: Health::default(),
            upstream: Vec::new(),
            source: None,
        }
    }

    /// Reads and validates a config file. `template_exists(templates_dir, name)` says
    /// whether a template named by a profile in the file exists.
    pub fn load(
        path: &Path,
        template_exists: &dyn Fn(&Path, &str) -> bool,
    ) -> Result<Config, ConfigErrors> {
        let io_error = |message: String| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                col: 0,
                key: String::new(),
                message,
            }])
        };
        let file = std::fs::File::open(path).map_err(|e| io_error(format!("cannot open: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(io_error(format!(
                "larger than {MAX_CONFIG_BYTES} bytes: not a config file"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            io_error(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Config::parse_str(&text, path, template_exists)
    }

    /// Like [`Config::load`], but when the file has errors it also hands back what could
    /// be read (bad values replaced by their defaults), so `check-config` can check the
    /// templates of its profiles in the same pass and list every error at once.
    pub fn load_partial(
        path: &Path,
        template_exists: &dyn Fn(&Path, &str) -> bool,
    ) -> Result<Config, (ConfigErrors, Option<Box<Config>>)> {
        let text = match Config::load(path, template_exists) {
            Ok(config) => return Ok(config),
            Err(errors) => match std::fs::read_to_string(path) {
                Ok(text) if text.len() as u64 <= MAX_CONFIG_BYTES => (errors, text),
                _ => return Err((errors, None)),
            },
        };
        let (errors, text) = text;
        let (config, _) = Config::parse_inner(&text, path, template_exists);
        Err((errors, config.map(Box::new)))
    }

    /// Validates config text as if read from `file` (relative paths in it are resolved
    /// against `file`'s directory).
    pub fn parse_str(
        text: &str,
        file: &Path,
        template_exists: &dyn Fn(&Path, &str) -> bool,
    ) -> Result<Config, ConfigErrors> {
        match Config::parse_inner(text, file, template_exists) {
            (Some(config), errors) if errors.is_empty() => Ok(config),
            (_, errors) => Err(ConfigErrors(errors)),
        }
    }

    /// The config as far as it could be read (None when the text is not TOML at all) and
    /// every error found, in file order.
    fn parse_inner(
        text: &str,
        file: &Path,
        template_exists: &dyn Fn(&Path, &str) -> bool,
    ) -> (Option<Config>, Vec<ConfigError>) {
        let mut cx = Ctx::new(file, text);
        if text.len() as u64 > MAX_CONFIG_BYTES {
            cx.error(
                0,
                "",
                format!("larger than {MAX_CONFIG_BYTES} bytes: not a config file"),
            );
            return (None, cx.errors);
        }
        let doc = match ImDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let at = e.span().map_or(0, |r| r.start);
                let message = e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                cx.error(at, "", format!("TOML syntax error: {message}"));
                return (None, cx.errors);
            }
        };
        let base = base_dir(file);
        let root = Section {
            table: Some(doc.as_table() as &dyn TableLike),
            path: String::new(),
            at: 0,
            broken: false,
        };
        let mut config = walk(&mut cx, &root, &base, template_exists);
        config.source = Some(file.to_path_buf());
        let mut errors = cx.errors;
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        (Some(config), errors)
    }

    /// Checks that every profile's templates exist (built-in profiles included), for a
    /// re-check at reload or with the lead's embedded templates. Errors carry no position.
    pub fn validate_templates(&self, exists: impl Fn(&str) -> bool) -> Vec<ConfigError> {
        let file = self.source.clone().unwrap_or_default();
        let mut errors = Vec::new();
        for (name, profile) in &self.profiles {
            let wanted = std::iter::once(("script", Some(&profile.script)))
                .chain(std::iter::once(("config", profile.config.as_ref())));
            for (key, template) in wanted {
                if let Some(template) = template {
                    if !exists(template) {
                        errors.push(ConfigError {
                            file: file.clone(),
                            line: 0,
                            col: 0,
                            key: format!("profiles.{name}.{key}"),
                            message: format!(
                                "template {template:?} not found in {}",
                                self.server.templates_dir.display()
                            ),
                        });
                    }
                }
            }
        }
        errors
    }

    /// The profile a node boots: its own, else its group's, else `boot.default_profile`.
    pub fn profile_name_for<'a>(&'a self, node: &'a NodeSpec) -> &'a str {
        node.profile
            .as_deref()
            .or_else(|| {
                node.group
                    .as_ref()
                    .and_then(|g| self.groups.get(g))
                    .and_then(|g| g.profile.as_deref())
            })
            .unwrap_or(&self.boot.default_profile)
    }

    /// The configured node with this MAC.
    pub fn node(&self, mac: MacAddr) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.mac == mac)
    }
}

/// The directory relative paths in `file` are resolved against, made absolute so a later
/// change of working directory does not move them.
fn base_dir(file: &Path) -> PathBuf {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

const TOP_KEYS: [&str; 10] = [
    "server", "dhcp", "tftp", "http", "boot", "profiles", "groups", "nodes", "health", "upstream",
];

/// Reads every section, in an order where whatever a section refers to is read first;
/// fields with errors take their defaults (the caller discards the result then).
fn walk(
    cx: &mut Ctx<'_>,
    root: &Section<'_>,
    base: &Path,
    template_exists: &dyn Fn(&Path, &str) -> bool,
) -> Config {
    root.check_keys(cx, &TOP_KEYS);
    let [server_section, dhcp_section, tftp_section, http_section, health_section, profiles_section, groups_section, boot_section] =
        [
            "server", "dhcp", "tftp", "http", "health", "profiles", "groups", "boot",
        ]
        .map(|key| root.sub(cx, key));
    let server = server::read_server(cx, &server_section, base);
    let dhcp = dhcp::read_dhcp(cx, &dhcp_section);
    let tftp = tftp::read_tftp(cx, &tftp_section);
    let http = http::read_http(cx, &http_section);
    let health = health::read_health(cx, &health_section);
    let upstream = upstream::read_upstreams(cx, root, base);
    let profiles = profiles::read_profiles(
        cx,
        &profiles_section,
        &server.templates_dir,
        template_exists,
    );
    let groups = groups::read_groups(cx, &groups_section, &profiles);
    let boot = boot::read_boot(cx, &boot_section, &profiles);
    let nodes = nodes::read_nodes(cx, root, &dhcp, &profiles, &groups);
    Config {
        server,
        dhcp,
        tftp,
        http,
        boot,
        profiles,
        groups,
        nodes,
        health,
        upstream,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{defaults, errors, where_, FILE, SERVER};
    use super::*;

    #[test]
    fn embedded_defaults() {
        let c = Config::embedded(Path::new("/tmp/work"));
        assert_eq!(c.server.state_dir, Path::new("/tmp/work/bootd-state"));
        assert_eq!(
            c.server.assets_dir,
            Path::new("/tmp/work/bootd-state/assets")
        );
        assert_eq!(
            c.server.templates_dir,
            Path::new("/tmp/work/bootd-state/templates")
        );
        assert_eq!(
            c.server.control_socket,
            Path::new("/tmp/work/bootd-state/control.sock")
        );
        assert_eq!(c.server.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.tftp.listen.to_string(), "127.0.0.1:6969");
        assert!(c.tftp.enabled);
        assert_eq!(c.dhcp.mode, DhcpMode::Off);
        assert_eq!(c.boot.unknown, UnknownPolicy::Discover);
        assert_eq!(c.boot.default_profile, "discovery");
        assert_eq!(
            c.profiles.get("discovery").map(|p| p.script.as_str()),
            Some("discovery.ipxe")
        );
        assert_eq!(
            c.profiles.get("local").map(|p| p.script.as_str()),
            Some("local.ipxe")
        );
        assert!(c.nodes.is_empty() && c.upstream.is_empty() && c.source.is_none());
    }

    #[test]
    fn unknown_keys_at_top_level_and_nested() {
        let text = format!("colour = 1\n{SERVER}[tftp]\nmax_blksiz = 1400\n");
        assert_eq!(
            errors(&text),
            [
                "t.toml:1:1: colour: unknown key \"colour\"; known keys: server, dhcp, tftp, http, boot, profiles, groups, nodes, health, upstream",
                "t.toml:5:1: tftp.max_blksiz: unknown key \"max_blksiz\" (did you mean \"max_blksize\"?); known keys: enabled, listen, max_blksize, max_windowsize, max_sessions, max_sessions_per_client",
            ]
        );
        let text = format!(
            "{SERVER}[[nodes]]\nmac = \"52:54:00:12:34:56\"\n  vars.x = 1\n  nmae = \"a\"\n"
        );
        assert_eq!(where_(&text), ["t.toml:6:3: nodes[0].nmae"]);
    }

    #[test]
    fn wrong_types() {
        let text = format!("{SERVER}[tftp]\nenabled = \"yes\"\nmax_sessions = \"10\"\n[http]\nheader_timeout = 10\n");
        assert_eq!(
            errors(&text),
            [
                "t.toml:4:11: tftp.enabled: expected true or false, found a string",
                "t.toml:5:16: tftp.max_sessions: expected an integer, found a string",
                "t.toml:7:18: http.header_timeout: expected a duration string such as \"30s\", found an integer",
            ]
        );
        assert_eq!(where_("server = 3\n"), ["t.toml:1:10: server"]);
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let text = format!(
            "{SERVER}[profiles.x]\nscript = \"x.ipxe\"\ntimeout = \"45 min\"\n[[nodes]]\nmac = \"52:54:00:12:34\"\n[[nodes]]\nmac = \"52:54:00:12:34:57\"\nip = \"10.0.0.300\"\n"
        );
        assert_eq!(
            where_(&text),
            [
                "t.toml:5:11: profiles.x.timeout",
                "t.toml:7:7: nodes[0].mac",
                "t.toml:10:6: nodes[1].ip",
            ]
        );
        let e = errors(&text);
        assert!(
            e.iter().any(|e| e.contains("invalid duration \"45 min\"")),
            "{e:?}"
        );
        assert!(e.iter().any(|e| e.contains("invalid MAC address")), "{e:?}");
        assert!(
            e.iter()
                .any(|e| e.contains("invalid IPv4 address \"10.0.0.300\"")),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_error_is_one_error_with_position() {
        let e = errors("[server]\npublic_url = \"http://h\"\nstate_dir = \n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e.first()
                .is_some_and(|e| e.starts_with("t.toml:3:13: TOML syntax error: ")),
            "{e:?}"
        );
        let dup = errors("[server]\nstate_dir = \"a\"\nstate_dir = \"b\"\n");
        assert!(
            dup.first().is_some_and(|e| e.starts_with("t.toml:3:1: ")),
            "{dup:?}"
        );
    }

    #[test]
    fn many_errors_all_reported_in_file_order() {
        let text = "[server]\n\
                    http_listen = \"8080\"\n\
                    [dhcp]\n\
                    mode = \"fulll\"\n\
                    [tftp]\n\
                    max_blksize = 70000\n\
                    [health]\n\
                    interval = \"2m\"\n\
                    [[nodes]]\n\
                    mac = \"nope\"\n\
                    boot = \"disk\"\n\
                    [[upstream]]\n\
                    url = \"ftp://x\"\n";
        assert_eq!(
            where_(text),
            [
                "t.toml:2:15: server.http_listen",
                "t.toml:4:8: dhcp.mode",
                "t.toml:6:15: tftp.max_blksize",
                "t.toml:7:1: health.unhealthy_after",
                "t.toml:10:7: nodes[0].mac",
                "t.toml:11:8: nodes[0].boot",
                "t.toml:12:1: upstream[0].name",
                "t.toml:13:7: upstream[0].url",
            ]
        );
    }

    #[test]
    fn columns_count_characters() {
        // "ü" is two bytes: a byte column would say 28 for the bad value.
        let text = format!(
            "{SERVER}[profiles.u]\nscript = \"u.ipxe\"\nphases = {{ \"ü\" = 1, bad = 101 }}\n"
        );
        assert_eq!(
            where_(&text),
            [
                "t.toml:5:12: profiles.u.phases.ü",
                "t.toml:5:27: profiles.u.phases.bad"
            ]
        );
    }

    #[test]
    fn file_defaults_are_production_defaults() {
        let c = defaults();
        assert!(c.profiles.contains_key("discovery") && c.profiles.contains_key("local"));
        assert_eq!(c.source.as_deref(), Some(Path::new(FILE)));
    }
}
