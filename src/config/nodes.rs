//! `[[nodes]]`: machines known by their MAC, with the uniqueness checks (MAC, IP, host
//! name) and the references to profiles, groups and pools.

use super::dhcp::{Dhcp, DhcpMode};
use super::groups::Group;
use super::profiles::{check_profile_ref, Profile};
use super::reader::{shown, Ctx, Field, Section};
use super::values::{check_hostname, check_http_url, check_relative_file, parse_ipv4, parse_mac};
use super::MAX_ID_LEN;
use crate::mac::MacAddr;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use toml_edit::{Item, TableLike, Value};

/// `nodes[].boot`: boot the profile or the local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// Boot the node's profile.
    Profile,
    /// Boot from the local disk.
    Local,
}

impl BootMode {
    /// The spelling of the config file and the API (`profile`, `local`).
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Profile => "profile",
            BootMode::Local => "local",
        }
    }
}

/// `[[nodes]]`: a machine known by its MAC.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    /// The machine's identity.
    pub mac: MacAddr,
    /// Host name (RFC 1123).
    pub hostname: Option<String>,
    /// Group it belongs to.
    pub group: Option<String>,
    /// Profile it boots (else the group's, else `boot.default_profile`).
    pub profile: Option<String>,
    /// Reserved address in full mode; the node's address otherwise.
    pub ip: Option<Ipv4Addr>,
    /// SMBIOS UUID, lower case.
    pub uuid: Option<String>,
    /// The upstream provider's id of this machine.
    pub provider_id: Option<String>,
    /// URL polled by the health monitor.
    pub health_url: Option<String>,
    /// BMC / console link shown in the UI.
    pub console_url: Option<String>,
    /// Boot the profile or the local disk.
    pub boot: BootMode,
    /// Free-form values visible to templates as `node.vars`.
    pub vars: BTreeMap<String, toml::Value>,
    /// Override of the profile's / `boot.bios_file`.
    pub bios_file: Option<String>,
    /// Override of the profile's / `boot.efi_file`.
    pub efi_file: Option<String>,
    /// Override of the profile's / `boot.arm64_file`.
    pub arm64_file: Option<String>,
    /// The line of its `[[nodes]]` header in the config file.
    #[serde(skip)]
    pub line: usize,
}

/// The values that must be unique among nodes (MAC, IP, host name — case-insensitive),
/// each with a description of its first owner: the config reader and runtime node edits
/// check nodes through the same claims, so both refuse the same duplicates.
#[derive(Debug, Default)]
pub struct NodeClaims {
    macs: HashMap<MacAddr, String>,
    ips: HashMap<Ipv4Addr, String>,
    hostnames: HashMap<String, String>,
}

/// A duplicate: what, which value, and who has it.
fn duplicate(what: &str, value: impl std::fmt::Display, owner: &str) -> String {
    format!("duplicate {what} {value}: already used by {owner}")
}

impl NodeClaims {
    /// Claims a MAC for `owner`; a second claim is refused with the first owner.
    pub fn mac(&mut self, mac: MacAddr, owner: &str) -> Result<(), String> {
        match self.macs.get(&mac) {
            Some(first) => Err(duplicate("MAC", mac, first)),
            None => {
                self.macs.insert(mac, owner.to_string());
                Ok(())
            }
        }
    }

    /// Claims an IP address for `owner`.
    pub fn ip(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), String> {
        match self.ips.get(&ip) {
            Some(first) => Err(duplicate("IP address", ip, first)),
            None => {
                self.ips.insert(ip, owner.to_string());
                Ok(())
            }
        }
    }

    /// Checks a host name's shape (RFC 1123) and claims it for `owner`.
    pub fn hostname(&mut self, name: &str, owner: &str) -> Result<(), NodeValueError> {
        let name = check_hostname(name).map_err(NodeValueError::Invalid)?;
        let key = name.to_ascii_lowercase();
        match self.hostnames.get(&key) {
            Some(first) => Err(NodeValueError::Duplicate(duplicate(
                "host name",
                name,
                first,
            ))),
            None => {
                self.hostnames.insert(key, owner.to_string());
                Ok(())
            }
        }
    }

    /// Checks one node's unique values (as the config file holds them) and claims them:
    /// the runtime path's entry, the same rules as `[[nodes]]`.
    pub fn node(
        &mut self,
        owner: &str,
        hostname: Option<&str>,
        ip: Option<Ipv4Addr>,
        dhcp: &Dhcp,
    ) -> Result<(), NodeValueError> {
        if let Some(name) = hostname {
            self.hostname(name, owner)?;
        }
        if let Some(ip) = ip {
            self.ip(ip, owner).map_err(NodeValueError::Duplicate)?;
            check_reserved_ip(dhcp, ip).map_err(NodeValueError::Invalid)?;
        }
        Ok(())
    }
}

/// Why a node's value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeValueError {
    /// Not a valid value (a host name with a space).
    #[error("{0}")]
    Invalid(String),
    /// Already used by another node.
    #[error("{0}")]
    Duplicate(String),
}

/// In full mode a reserved address must be a host of one of the pools.
fn check_reserved_ip(dhcp: &Dhcp, ip: Ipv4Addr) -> Result<(), String> {
    if dhcp.mode == DhcpMode::Full && !dhcp.pools.iter().any(|p| p.subnet.is_host(ip)) {
        let subnets: Vec<String> = dhcp.pools.iter().map(|p| p.subnet.to_string()).collect();
        return Err(format!(
            "reserved address {ip} is not a host address of any pool subnet ({})",
            subnets.join(", ")
        ));
    }
    Ok(())
}

/// SMBIOS UUIDs as in option 97: 8-4-4-4-12 hex digits; stored lower case.
fn check_uuid(s: &str) -> Result<String, String> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() == GROUPS.len()
        && parts
            .iter()
            .zip(GROUPS)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid UUID {:?}: expected 8-4-4-4-12 hex digits such as 4c4c4544-0042-3010-8052-b4c04f4e3132",
            shown(s)
        ))
    }
}

fn check_provider_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        Err(format!(
            "invalid provider id {:?}: expected 1 to {MAX_ID_LEN} characters without control characters",
            shown(s)
        ))
    } else {
        Ok(s.to_string())
    }
}

/// Converts a spanned TOML value to a plain one for templates.
fn plain_value(v: &Value) -> toml::Value {
    match v {
        Value::String(s) => toml::Value::String(s.value().clone()),
        Value::Integer(i) => toml::Value::Integer(*i.value()),
        Value::Float(f) => toml::Value::Float(*f.value()),
        Value::Boolean(b) => toml::Value::Boolean(*b.value()),
        Value::Datetime(d) => toml::Value::Datetime(*d.value()),
        Value::Array(a) => toml::Value::Array(a.iter().map(plain_value).collect()),
        Value::InlineTable(t) => plain_table(t),
    }
}

fn plain_item(item: &Item) -> Option<toml::Value> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(plain_value(v)),
        Item::Table(t) => Some(plain_table(t)),
        Item::ArrayOfTables(a) => Some(toml::Value::Array(
            a.iter().map(|t| plain_table(t)).collect(),
        )),
    }
}

fn plain_table(t: &dyn TableLike) -> toml::Value {
    let mut map = toml::map::Map::new();
    for (k, item) in t.iter() {
        if let Some(v) = plain_item(item) {
            map.insert(k.to_string(), v);
        }
    }
    toml::Value::Table(map)
}

const NODE_KEYS: [&str; 14] = [
    "mac",
    "hostname",
    "group",
    "profile",
    "ip",
    "uuid",
    "provider_id",
    "health_url",
    "console_url",
    "boot",
    "vars",
    "bios_file",
    "efi_file",
    "arm64_file",
];

pub(super) fn read_nodes(
    cx: &mut Ctx<'_>,
    root: &Section<'_>,
    dhcp: &Dhcp,
    profiles: &BTreeMap<String, Profile>,
    groups: &BTreeMap<String, Group>,
) -> Vec<NodeSpec> {
    let sections = root.get("nodes").map(|f| cx.tables(&f)).unwrap_or_default();
    let mut claims = NodeClaims::default();
    let mut nodes = Vec::new();
    for s in &sections {
        s.check_keys(cx, &NODE_KEYS);
        let line = cx.position(s.at).0;
        let mac = s.require(cx, "mac").and_then(|f| {
            let mac = cx.parsed(&f, parse_mac)?;
            let owner = format!("{} (line {})", s.path, cx.position(f.at).0);
            if let Err(e) = claims.mac(mac, &owner) {
                cx.error(f.at, &f.path, e);
            }
            Some(mac)
        });
        let hostname = s.get("hostname").and_then(|f| {
            let name = cx.string(&f)?.to_string();
            let owner = format!("{} (line {})", s.path, cx.position(f.at).0);
            match claims.hostname(&name, &owner) {
                Ok(()) => Some(name),
                Err(e @ NodeValueError::Duplicate(_)) => {
                    cx.error(f.at, &f.path, e.to_string());
                    Some(name)
                }
                Err(e) => {
                    cx.error(f.at, &f.path, e.to_string());
                    None
                }
            }
        });
        let group = s.get("group").and_then(|f| {
            let name = cx.string(&f)?;
            if groups.contains_key(name) {
                return Some(name.to_string());
            }
            let known: Vec<&str> = groups.keys().map(String::as_str).collect();
            let defined = if known.is_empty() {
                "no groups are defined".to_string()
            } else {
                format!("defined groups: {}", known.join(", "))
            };
            cx.error(
                f.at,
                &f.path,
                format!("unknown group {:?}; {defined}", shown(name)),
            );
            None
        });
        let profile = s
            .get("profile")
            .and_then(|f| check_profile_ref(cx, &f, profiles));
        let ip = s.get("ip").and_then(|f| {
            let ip = cx.parsed(&f, parse_ipv4)?;
            let owner = format!("{} (line {})", s.path, cx.position(f.at).0);
            if let Err(e) = claims.ip(ip, &owner) {
                cx.error(f.at, &f.path, e);
            }
            if let Err(e) = check_reserved_ip(dhcp, ip) {
                cx.error(f.at, &f.path, e);
            }
            Some(ip)
        });
        let uuid = s.get("uuid").and_then(|f| cx.parsed(&f, check_uuid));
        let provider_id = s
            .get("provider_id")
            .and_then(|f| cx.parsed(&f, check_provider_id));
        let health_url = s
            .get("health_url")
            .and_then(|f| cx.parsed(&f, check_http_url));
        let console_url = s
            .get("console_url")
            .and_then(|f| cx.parsed(&f, check_http_url));
        let boot = s
            .get("boot")
            .and_then(|f| {
                cx.choice(
                    &f,
                    &[("profile", BootMode::Profile), ("local", BootMode::Local)],
                )
            })
            .unwrap_or(BootMode::Profile);
        let vars = s.get("vars").map(|f| read_vars(cx, &f)).unwrap_or_default();
        let mut asset = |key: &str| s.get(key).and_then(|f| cx.parsed(&f, check_relative_file));
        let (bios_file, efi_file, arm64_file) =
            (asset("bios_file"), asset("efi_file"), asset("arm64_file"));
        if let Some(mac) = mac {
            nodes.push(NodeSpec {
                mac,
                hostname,
                group,
                profile,
                ip,
                uuid,
                provider_id,
                health_url,
                console_url,
                boot,
                vars,
                bios_file,
                efi_file,
                arm64_file,
                line,
            });
        }
    }
    nodes
}

fn read_vars(cx: &mut Ctx<'_>, f: &Field<'_>) -> BTreeMap<String, toml::Value> {
    let Some(table) = cx.table(f) else {
        return BTreeMap::new();
    };
    table
        .entries()
        .into_iter()
        .filter_map(|v| Some((v.name.to_string(), plain_item(v.item)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{errors, parse, SERVER};
    use crate::config::Loader;

    #[test]
    fn duplicate_mac_in_any_spelling_and_duplicate_ip() {
        let text = format!(
            "{SERVER}[[nodes]]\nmac = \"52:54:00:AB:CD:EF\"\nip = \"10.0.0.5\"\n[[nodes]]\nmac = \"5254.00ab.cdef\"\nip = \"10.0.0.5\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:7:7: nodes[1].mac: duplicate MAC 52:54:00:ab:cd:ef: already used by nodes[0] (line 4)",
                "t.toml:8:6: nodes[1].ip: duplicate IP address 10.0.0.5: already used by nodes[0] (line 5)",
            ]
        );
    }

    #[test]
    fn full_node_is_read_and_serializes() {
        let text = format!(
            "{SERVER}[profiles.u]\nscript = \"u.ipxe\"\nloader = \"grub\"\n[groups.g]\nprofile = \"u\"\n\
             [[nodes]]\nmac = \"52-54-00-12-34-56\"\nhostname = \"n1\"\ngroup = \"g\"\nuuid = \"4C4C4544-0042-3010-8052-B4C04F4E3132\"\n\
             provider_id = \"srv 1\"\nboot = \"local\"\nefi_file = \"snponly.efi\"\n[nodes.vars]\ndisk = \"/dev/sda\"\nn = [1, 2]\nt = {{ a = true }}\n"
        );
        let c = match parse(&text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let n = c.nodes.first().cloned();
        let n = n.unwrap_or_else(|| panic!("no node"));
        assert_eq!(n.mac.to_string(), "52:54:00:12:34:56");
        assert_eq!(c.profile_name_for(&n), "u");
        assert_eq!(n.boot, BootMode::Local);
        assert_eq!(
            n.uuid.as_deref(),
            Some("4c4c4544-0042-3010-8052-b4c04f4e3132")
        );
        assert_eq!(
            n.vars.get("disk").and_then(|v| v.as_str()),
            Some("/dev/sda")
        );
        assert_eq!(c.profiles.get("u").map(|p| p.loader), Some(Loader::Grub));
        assert!(c.node(n.mac).is_some());
    }

    #[test]
    fn uuids() {
        assert_eq!(
            check_uuid("4C4C4544-0042-3010-8052-B4C04F4E3132"),
            Ok("4c4c4544-0042-3010-8052-b4c04f4e3132".to_string())
        );
        assert!(check_uuid("4c4c4544004230108052b4c04f4e3132").is_err());
    }
}
