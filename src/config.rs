//! Configuration: the schema of `bootd.toml`, read once into validated, immutable types.
//! Every problem in a file is reported at once, each as `file:line:col: key: message`.

use crate::mac::MacAddr;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// Where `bootd` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bootd/bootd.toml";
/// Production default of `server.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bootd";
/// Production default of `server.templates_dir`.
pub const DEFAULT_TEMPLATES_DIR: &str = "/etc/bootd/templates";
/// Production default of `server.control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/bootd/control.sock";
/// Production default of `server.http_listen`.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
/// Production default of `tftp.listen`.
pub const DEFAULT_TFTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 69);
/// `http_listen` of the embedded (no file) configuration: unprivileged, loopback only.
pub const EMBEDDED_HTTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// `tftp.listen` of the embedded (no file) configuration: unprivileged, loopback only.
pub const EMBEDDED_TFTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6969);
/// Name of the embedded configuration's state directory, under the working directory.
pub const EMBEDDED_STATE_DIR_NAME: &str = "bootd-state";

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

/// A config file larger than this is refused before parsing (a typo'd path to a disk image).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Longest profile, group or upstream name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest Linux interface name (IFNAMSIZ without the NUL).
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest free-form identifier (`provider_id`).
pub const MAX_ID_LEN: usize = 256;
/// Longest URL accepted anywhere in the file.
pub const MAX_URL_LEN: usize = 2048;

/// Smallest TFTP block size a client may negotiate (RFC 2348).
pub const TFTP_BLKSIZE_MIN: u16 = 8;
/// Largest TFTP block size a client may negotiate (RFC 2348).
pub const TFTP_BLKSIZE_MAX: u16 = 65464;
/// Default cap on the negotiated TFTP block size: one Ethernet frame.
pub const DEFAULT_TFTP_BLKSIZE: u16 = 1468;
/// Largest TFTP window size we allow (RFC 7440); more only adds loss bursts.
pub const TFTP_WINDOWSIZE_MAX: u16 = 64;
/// Default cap on the negotiated TFTP window size.
pub const DEFAULT_TFTP_WINDOWSIZE: u16 = 16;
/// Default number of concurrent TFTP transfers (dnsmasq's 50 breaks boot storms; a
/// 5,000-machine storm fits, each session costs a socket and a few KiB).
pub const DEFAULT_TFTP_SESSIONS: usize = 10_000;
/// Upper bound of `tftp.max_sessions` (each session holds a socket).
pub const TFTP_SESSIONS_MAX: usize = 100_000;
/// Default number of concurrent TFTP transfers from one client address.
pub const DEFAULT_TFTP_SESSIONS_PER_CLIENT: usize = 64;

/// Default number of concurrent HTTP connections (past it, new ones wait in the listen
/// backlog rather than being refused).
pub const DEFAULT_HTTP_CONNECTIONS: usize = 4096;
/// Upper bound of `http.max_connections`.
pub const HTTP_CONNECTIONS_MAX: usize = 100_000;
/// Default largest request body (hardware reports with lshw output are the big ones).
pub const DEFAULT_BODY_LIMIT: u64 = 8 << 20;
/// Smallest `http.body_limit`.
pub const BODY_LIMIT_MIN: u64 = 1 << 10;
/// Largest `http.body_limit`.
pub const BODY_LIMIT_MAX: u64 = 1 << 30;
/// Default time a client has to send its request headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `http.header_timeout`.
pub const HEADER_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// Default DHCP replies per MAC per second.
pub const DEFAULT_RATE_PER_MAC: u32 = 20;
/// Upper bound of `dhcp.rate_per_mac`.
pub const RATE_PER_MAC_MAX: u32 = 10_000;
/// Default lease time of a pool.
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(3600);
/// Shortest lease time (shorter ones make clients renew constantly).
pub const LEASE_TIME_MIN: Duration = Duration::from_secs(60);
/// Longest lease time (fits DHCP's 32-bit seconds with room).
pub const LEASE_TIME_MAX: Duration = Duration::from_secs(365 * 86_400);

/// Shortest profile deadline.
pub const PROFILE_TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// Longest profile deadline.
pub const PROFILE_TIMEOUT_MAX: Duration = Duration::from_secs(30 * 86_400);
/// Default health poll interval.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
/// Default time a running node must fail before it is `unhealthy` (DESIGN: within 60 s).
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(60);
/// Shortest health interval and unhealthy_after.
pub const HEALTH_MIN: Duration = Duration::from_secs(1);
/// Longest health interval.
pub const HEALTH_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Longest unhealthy_after.
pub const UNHEALTHY_AFTER_MAX: Duration = Duration::from_secs(86_400);

// ---------------------------------------------------------------------------
// The validated configuration
// ---------------------------------------------------------------------------

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

/// `[server]`.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    /// SQLite database and runtime state.
    pub state_dir: PathBuf,
    /// TFTP root and `/assets/*`.
    pub assets_dir: PathBuf,
    /// Boot script and install config templates.
    pub templates_dir: PathBuf,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Base URL rendered into scripts, without a trailing slash.
    pub public_url: String,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// Group that owns the control socket, if not root's.
    pub control_group: Option<String>,
    /// DHCP and RA only on these interfaces (empty: all). Relayed requests sent to one of
    /// our addresses are answered whichever interface they come in on.
    pub interfaces: Vec<String>,
}

/// `dhcp.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// No DHCP at all (another server does PXE).
    Off,
    /// ProxyDHCP beside an existing DHCP server.
    Proxy,
    /// Authoritative DHCP for the configured pools.
    Full,
}

/// `boot.unknown`: what an unknown machine gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    /// Boot the default profile and record it as `discovered`.
    Discover,
    /// Do not answer it.
    Ignore,
}

/// `profiles.NAME.loader`: which boot loader the profile's script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    /// An iPXE script.
    Ipxe,
    /// A GRUB config (Secure Boot chains through shim and GRUB).
    Grub,
}

/// `nodes[].boot`: boot the profile or the local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// Boot the node's profile.
    Profile,
    /// Boot from the local disk.
    Local,
}

/// `dhcp.proxy_option43`: how much PXE vendor information ProxyDHCP offers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Option43 {
    /// Discovery control, boot servers and a one-entry menu (what Intel PXE ROMs expect).
    Menu,
    /// Only discovery control (some firmware chokes on menus).
    Minimal,
}

/// `[dhcp]`.
#[derive(Debug, Clone, Serialize)]
pub struct Dhcp {
    /// Off, proxy or full.
    pub mode: DhcpMode,
    /// Send a minimal IPv6 router advertisement so iPXE stops waiting for one.
    pub ipv6_ra: bool,
    /// Option 43 contents in ProxyDHCP offers.
    pub proxy_option43: Option43,
    /// DHCP replies per MAC per second; more are dropped and counted.
    pub rate_per_mac: u32,
    /// Address pools (used in full mode only).
    pub pools: Vec<Pool>,
}

/// `[[dhcp.pools]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    /// The subnet this pool serves.
    pub subnet: Ipv4Net,
    /// First address of the dynamic range (inside `subnet`).
    pub start: Ipv4Addr,
    /// Last address of the dynamic range (inside `subnet`, not below `start`).
    pub end: Ipv4Addr,
    /// Default gateway (option 3), inside `subnet` and outside the range.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Lease time offered.
    #[serde(serialize_with = "serialize_duration")]
    pub lease_time: Duration,
    /// Domain name (option 15).
    pub domain: Option<String>,
}

/// `[tftp]`.
#[derive(Debug, Clone, Serialize)]
pub struct Tftp {
    /// Serve TFTP at all.
    pub enabled: bool,
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Largest block size granted to a client.
    pub max_blksize: u16,
    /// Largest window size granted to a client.
    pub max_windowsize: u16,
    /// Concurrent transfers in total.
    pub max_sessions: usize,
    /// Concurrent transfers per client address.
    pub max_sessions_per_client: usize,
}

/// `[http]`.
#[derive(Debug, Clone, Serialize)]
pub struct Http {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Largest request body in bytes.
    pub body_limit: u64,
    /// Time a client has to send its request headers.
    #[serde(serialize_with = "serialize_duration")]
    pub header_timeout: Duration,
}

/// `[boot]`.
#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    /// What unknown machines get.
    pub unknown: UnknownPolicy,
    /// Profile of nodes that name none (directly or through their group).
    pub default_profile: String,
    /// Boot file for BIOS clients, relative to `assets_dir`.
    pub bios_file: String,
    /// Boot file for x86-64 UEFI clients, relative to `assets_dir`.
    pub efi_file: String,
    /// Boot file for ARM64 UEFI clients, relative to `assets_dir`.
    pub arm64_file: String,
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

/// `[groups.NAME]`.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Profile of members that name none.
    pub profile: Option<String>,
    /// URL POSTed when every member is running.
    pub on_complete: Option<String>,
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
}

/// `[health]`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Poll interval of running nodes.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// How long a node must keep failing before it is `unhealthy`.
    #[serde(serialize_with = "serialize_duration")]
    pub unhealthy_after: Duration,
    /// How often a node waiting for its profile's `ready` checks is checked.
    #[serde(serialize_with = "serialize_duration")]
    pub ready_interval: Duration,
    /// The bound of one readiness check.
    #[serde(serialize_with = "serialize_duration")]
    pub ready_timeout: Duration,
}

/// `[[upstream]]`: a provider API that receives phase events.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    /// Unique name (shown by `bootctl relay`).
    pub name: String,
    /// Event endpoint (http or https).
    pub url: String,
    /// File holding the HMAC-SHA256 key.
    pub secret_file: Option<PathBuf>,
    /// Provider state URL to poll; may contain `{provider_id}`.
    pub status_url: Option<String>,
    /// CA bundle to verify the endpoint with.
    pub ca_file: Option<PathBuf>,
}

/// An IPv4 network such as `10.0.0.0/24` (host bits are always zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

/// Why a string is not an IPv4 network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4NetError {
    /// Not `ADDRESS/PREFIX`.
    #[error("invalid subnet {0:?}: expected ADDRESS/PREFIX such as 10.0.0.0/24")]
    Syntax(String),
    /// Prefix above 32.
    #[error("invalid subnet {0:?}: the prefix length must be 0..=32")]
    Prefix(String),
    /// Host bits set.
    #[error("invalid subnet {input:?}: host bits are set (did you mean {network}?)")]
    HostBits {
        /// The text given.
        input: String,
        /// The network it probably meant.
        network: String,
    },
}

impl Ipv4Net {
    /// The netmask as a 32-bit number.
    pub fn mask(&self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// The netmask as an address (option 1).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// True if `ip` is inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// True if the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// True if `ip` can be given to a host: inside, and not the network or broadcast
    /// address (/31 and /32 have none of those).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.addr && ip != self.broadcast()))
    }
}

impl FromStr for Ipv4Net {
    type Err = Ipv4NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input: String = s.chars().take(64).collect();
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| Ipv4NetError::Syntax(input.clone()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| Ipv4NetError::Syntax(input.clone()))?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Ipv4NetError::Syntax(input));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| Ipv4NetError::Syntax(input.clone()))?;
        if prefix > 32 {
            return Err(Ipv4NetError::Prefix(input));
        }
        let net = Ipv4Net { addr, prefix };
        let network = Ipv4Addr::from(u32::from(addr) & net.mask());
        if network != addr {
            return Err(Ipv4NetError::HostBits {
                input,
                network: format!("{network}/{prefix}"),
            });
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Pool {
    /// True if `ip` is inside the dynamic range.
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(ip))
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------

/// Parses `"500ms"`, `"30s"`, `"45m"`, `"1h30m"`, `"2d"` (bootd-proto's one grammar).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    bootd_proto::duration::parse(s).map_err(|e| e.to_string())
}

pub use bootd_proto::duration::format as format_duration;

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_duration(*d))
}

fn serialize_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

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
            profiles: builtin_profiles(),
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

    /// Validates config text as if read from `file` (relative paths in it are resolved
    /// against `file`'s directory).
    pub fn parse_str(
        text: &str,
        file: &Path,
        template_exists: &dyn Fn(&Path, &str) -> bool,
    ) -> Result<Config, ConfigErrors> {
        let mut cx = Ctx::new(file, text);
        if text.len() as u64 > MAX_CONFIG_BYTES {
            cx.error(
                0,
                "",
                format!("larger than {MAX_CONFIG_BYTES} bytes: not a config file"),
            );
            return Err(ConfigErrors(cx.errors));
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
                return Err(ConfigErrors(cx.errors));
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
        if cx.errors.is_empty() {
            Ok(config)
        } else {
            let mut errors = cx.errors;
            errors.sort_by_key(|e| (e.line, e.col));
            errors.dedup();
            Err(ConfigErrors(errors))
        }
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

fn builtin_profiles() -> BTreeMap<String, Profile> {
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
        }
    }
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            mode: DhcpMode::Proxy,
            ipv6_ra: false,
            proxy_option43: Option43::Menu,
            rate_per_mac: DEFAULT_RATE_PER_MAC,
            pools: Vec::new(),
        }
    }
}

impl Default for Tftp {
    fn default() -> Self {
        Tftp {
            enabled: true,
            listen: DEFAULT_TFTP_LISTEN,
            max_blksize: DEFAULT_TFTP_BLKSIZE,
            max_windowsize: DEFAULT_TFTP_WINDOWSIZE,
            max_sessions: DEFAULT_TFTP_SESSIONS,
            max_sessions_per_client: DEFAULT_TFTP_SESSIONS_PER_CLIENT,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            max_connections: DEFAULT_HTTP_CONNECTIONS,
            body_limit: DEFAULT_BODY_LIMIT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            unknown: UnknownPolicy::Discover,
            default_profile: DISCOVERY_PROFILE.to_string(),
            bios_file: "undionly.kpxe".to_string(),
            efi_file: "ipxe.efi".to_string(),
            arm64_file: "arm64/ipxe.efi".to_string(),
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health {
            interval: DEFAULT_HEALTH_INTERVAL,
            unhealthy_after: DEFAULT_UNHEALTHY_AFTER,
            ready_interval: crate::ready::DEFAULT_READY_INTERVAL,
            ready_timeout: crate::ready::DEFAULT_READY_TIMEOUT,
        }
    }
}

// ---------------------------------------------------------------------------
// The walk over the spanned document
// ---------------------------------------------------------------------------

/// Error collector with the file's line index.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Ctx {
            file,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based line and character column of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line, col + 1)
    }

    fn error(&mut self, at: usize, key: &str, message: impl Into<String>) {
        let (line, col) = self.position(at);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, f: &Field<'_>, expected: &str) {
        let found = a_type(f.item);
        self.error(f.at, &f.path, format!("expected {expected}, found {found}"));
    }

    fn string<'d>(&mut self, f: &Field<'d>) -> Option<&'d str> {
        let s = f.item.as_str();
        if s.is_none() {
            self.wrong_type(f, "a string");
        }
        s
    }

    /// A string turned into a typed value by `parse`, whose error is the whole message.
    fn parsed<T>(
        &mut self,
        f: &Field<'_>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(f)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(f.at, &f.path, message);
                None
            }
        }
    }

    fn integer(&mut self, f: &Field<'_>, min: i64, max: i64) -> Option<i64> {
        let Some(v) = f.item.as_integer() else {
            self.wrong_type(f, "an integer");
            return None;
        };
        if !(min..=max).contains(&v) {
            self.error(
                f.at,
                &f.path,
                format!("must be between {min} and {max}, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    fn boolean(&mut self, f: &Field<'_>) -> Option<bool> {
        let b = f.item.as_bool();
        if b.is_none() {
            self.wrong_type(f, "true or false");
        }
        b
    }

    fn duration(&mut self, f: &Field<'_>, min: Duration, max: Duration) -> Option<Duration> {
        if f.item.as_str().is_none() {
            self.wrong_type(f, "a duration string such as \"30s\"");
            return None;
        }
        let d = self.parsed(f, parse_duration)?;
        if d < min || d > max {
            self.error(
                f.at,
                &f.path,
                format!(
                    "must be between {} and {}, found {}",
                    format_duration(min),
                    format_duration(max),
                    format_duration(d)
                ),
            );
            return None;
        }
        Some(d)
    }

    fn choice<T: Copy>(&mut self, f: &Field<'_>, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(f)?;
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.error(
            f.at,
            &f.path,
            format!("expected one of {}, found {:?}", names.join(", "), shown(s)),
        );
        None
    }

    /// A filesystem path; relative ones are resolved against `base`.
    fn path(&mut self, f: &Field<'_>, base: &Path) -> Option<PathBuf> {
        self.parsed(f, |s| {
            if s.is_empty() || s.contains('\0') {
                return Err(
                    "expected a file system path, found an empty or NUL-containing string"
                        .to_string(),
                );
            }
            Ok(base.join(s))
        })
    }

    /// The string elements of an array, each with its position (other elements are
    /// reported and left out, so the strings can still be checked).
    fn strings<'d>(&mut self, f: &Field<'d>) -> Option<Vec<(&'d str, Elem)>> {
        let Some(array) = f.item.as_array() else {
            self.wrong_type(f, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for (i, v) in array.iter().enumerate() {
            let at = v.span().map_or(f.at, |r| r.start);
            let path = format!("{}[{i}]", f.path);
            match v.as_str() {
                Some(s) => out.push((s, Elem { path, at })),
                None => {
                    self.error(
                        at,
                        &path,
                        format!("expected a string, found {}", a_value_type(v)),
                    );
                }
            }
        }
        Some(out)
    }

    fn table<'d>(&mut self, f: &Field<'d>) -> Option<Section<'d>> {
        match f.item.as_table_like() {
            Some(t) => Some(Section {
                table: Some(t),
                path: f.path.clone(),
                at: f.at,
                broken: false,
            }),
            None => {
                self.wrong_type(f, "a table");
                None
            }
        }
    }

    /// `[[key]]` entries or an inline array of inline tables.
    fn tables<'d>(&mut self, f: &Field<'d>) -> Vec<Section<'d>> {
        let mut out = Vec::new();
        match f.item {
            Item::ArrayOfTables(array) => {
                for (i, t) in array.iter().enumerate() {
                    out.push(Section {
                        table: Some(t as &dyn TableLike),
                        path: format!("{}[{i}]", f.path),
                        at: t.span().map_or(f.at, |r| r.start),
                        broken: false,
                    });
                }
            }
            Item::Value(Value::Array(array)) => {
                for (i, v) in array.iter().enumerate() {
                    let path = format!("{}[{i}]", f.path);
                    let at = v.span().map_or(f.at, |r| r.start);
                    match v.as_inline_table() {
                        Some(t) => out.push(Section {
                            table: Some(t as &dyn TableLike),
                            path,
                            at,
                            broken: false,
                        }),
                        None => self.error(
                            at,
                            &path,
                            format!("expected a table, found {}", a_value_type(v)),
                        ),
                    }
                }
            }
            _ => self.wrong_type(f, &format!("an array of tables ([[{}]])", f.path)),
        }
        out
    }
}

/// A table being read (absent tables have `table: None` and read as empty).
struct Section<'d> {
    table: Option<&'d dyn TableLike>,
    path: String,
    /// Offset of the table header (or of whatever stands for it).
    at: usize,
    /// Present but not a table (already reported): its checks would only add noise.
    broken: bool,
}

/// One key's value, where it is, and its dotted path.
struct Field<'d> {
    name: &'d str,
    item: &'d Item,
    path: String,
    at: usize,
    key_at: usize,
}

/// Where an array element is, for messages.
struct Elem {
    path: String,
    at: usize,
}

impl<'d> Section<'d> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<Field<'d>> {
        let (k, item) = self.table?.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        let key_at = k.span().map_or(self.at, |r| r.start);
        Some(Field {
            name: k.get(),
            item,
            path: self.key_path(key),
            at: span_start(item).unwrap_or(key_at),
            key_at,
        })
    }

    /// Every entry, in file order.
    fn entries(&self) -> Vec<Field<'d>> {
        let Some(table) = self.table else {
            return Vec::new();
        };
        table.iter().filter_map(|(k, _)| self.get(k)).collect()
    }

    /// Reports keys that are not in `allowed`, at the key.
    fn check_keys(&self, cx: &mut Ctx<'_>, allowed: &[&str]) {
        for f in self.entries() {
            if !allowed.contains(&f.name) {
                let hint = closest(f.name, allowed)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                cx.error(
                    f.key_at,
                    &f.path,
                    format!(
                        "unknown key {:?}{hint}; known keys: {}",
                        shown(f.name),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// The key's field, or an error at the table header.
    fn require(&self, cx: &mut Ctx<'_>, key: &str) -> Option<Field<'d>> {
        let f = self.get(key);
        if f.is_none() {
            cx.error(self.at, &self.key_path(key), "missing required key");
        }
        f
    }

    /// A sub-table; absent or mistyped ones read as empty.
    fn sub(&self, cx: &mut Ctx<'_>, key: &str) -> Section<'d> {
        match self.get(key) {
            Some(f) => cx.table(&f).unwrap_or(Section {
                table: None,
                path: f.path,
                at: f.at,
                broken: true,
            }),
            None => Section {
                table: None,
                path: self.key_path(key),
                at: self.at,
                broken: false,
            },
        }
    }
}

fn span_start(item: &Item) -> Option<usize> {
    let span = match item {
        Item::None => None,
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
    };
    span.map(|r| r.start)
}

fn a_type(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => a_value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::None => "nothing",
    }
}

fn a_value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}

/// User text as shown in messages: bounded so a huge value cannot flood the log.
fn shown(s: &str) -> String {
    const SHOWN_CHARS: usize = 64;
    s.chars().take(SHOWN_CHARS).collect()
}

/// The allowed key nearest to a misspelt one, if it is close enough to be a typo.
fn closest<'k>(word: &str, candidates: &[&'k str]) -> Option<&'k str> {
    const MAX_TYPO_DISTANCE: usize = 2;
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= MAX_TYPO_DISTANCE)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let cost = usize::from(ca != *cb);
            let best = (diagonal + cost).min(above + 1).min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Value checks (pure: text in, typed value or message out)
// ---------------------------------------------------------------------------

fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid IPv4 address {:?}: expected four decimal octets such as 10.0.0.21",
            shown(s)
        )
    })
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid listen address {:?}: expected IP:PORT such as 0.0.0.0:8080 or [::]:8080",
            shown(s)
        )
    })
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    s.parse::<MacAddr>().map_err(|e| e.to_string())
}

fn parse_net(s: &str) -> Result<Ipv4Net, String> {
    s.parse::<Ipv4Net>().map_err(|e| e.to_string())
}

/// An absolute http or https URL with a host; returns it unchanged.
fn check_http_url(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid URL {:?}: {why}", shown(s));
    if s.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        s.get("http://".len()..)
    } else if lower.starts_with("https://") {
        s.get("https://".len()..)
    } else {
        None
    }
    .ok_or_else(|| bad("expected an http:// or https:// URL"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("credentials in URLs are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| bad("invalid IPv6 address in the host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("junk after the host"))?,
            ),
        };
        (inside, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    if !authority.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad(
            "the host may hold only letters, digits, '.', '-' and '_'",
        ));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(bad("the port must be 1..=65535")),
        }
    }
    Ok(s.to_string())
}

/// `server.public_url`: a base URL, stored without trailing slashes.
fn parse_public_url(s: &str) -> Result<String, String> {
    let url = check_http_url(s)?;
    if url.contains(['?', '#']) {
        return Err(format!(
            "invalid URL {:?}: a base URL cannot have a query or fragment",
            shown(s)
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `upstream[].status_url`: a URL in which `{provider_id}` is the only placeholder.
fn check_status_url(s: &str) -> Result<String, String> {
    const PLACEHOLDER: &str = "{provider_id}";
    let probe = s.replace(PLACEHOLDER, "id");
    if probe.contains(['{', '}']) {
        return Err(format!(
            "invalid URL {:?}: only {PLACEHOLDER} may appear in braces",
            shown(s)
        ));
    }
    check_http_url(&probe)?;
    Ok(s.to_string())
}

/// Profile, group and upstream names: they appear in URLs, logs and `bootctl` output.
fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {:?}: expected 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.', not starting with '.'",
            shown(s)
        ))
    }
}

/// Host names (RFC 1123): dot-separated labels of letters, digits and inner hyphens.
fn check_hostname(s: &str) -> Result<String, String> {
    const MAX_HOSTNAME_LEN: usize = 253;
    const MAX_LABEL_LEN: usize = 63;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() <= MAX_HOSTNAME_LEN && s.split('.').all(label_ok) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid host name {:?}: expected labels of letters, digits and inner '-' (at most {MAX_LABEL_LEN} each), separated by '.'",
            shown(s)
        ))
    }
}

/// Linux interface names: what the kernel's `dev_valid_name` accepts.
fn check_interface(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_IFNAME_LEN
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid interface name {:?}: expected 1 to {MAX_IFNAME_LEN} characters without '/', ':' or spaces",
            shown(s)
        ))
    }
}

/// Unix group names (shadow's rules, loosely): checked for shape here, existence at start.
fn check_group_name(s: &str) -> Result<String, String> {
    const MAX_GROUP_LEN: usize = 32;
    let ok = !s.is_empty()
        && s.len() <= MAX_GROUP_LEN
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid group name {:?}: expected 1 to {MAX_GROUP_LEN} letters, digits, '_', '-' or '.'",
            shown(s)
        ))
    }
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

/// A file under a served root (assets, templates): relative, and it cannot climb out.
fn check_relative_file(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with('/')
        && !s.contains('\\')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split('/').all(|part| !part.is_empty() && part != "..");
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid file name {:?}: expected a relative path such as \"ipxe.efi\" or \"arm64/ipxe.efi\", without '..', spaces or backslashes",
            shown(s)
        ))
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

/// Byte sizes: an integer, or a string with a binary unit (`"8MiB"`, `"512KiB"`, `"1G"`).
fn parse_size(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 8] = [
        ("", 1),
        ("B", 1),
        ("K", 1 << 10),
        ("KiB", 1 << 10),
        ("M", 1 << 20),
        ("MiB", 1 << 20),
        ("G", 1 << 30),
        ("GiB", 1 << 30),
    ];
    let bad = || {
        format!(
            "invalid size {:?}: expected a number of bytes or a number with B, KiB, MiB or GiB such as \"8MiB\"",
            shown(s)
        )
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit.trim_start())
        .map(|(_, scale)| *scale)
        .ok_or_else(bad)?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)
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

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

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
    let server = read_server(cx, &server_section, base);
    let dhcp = read_dhcp(cx, &dhcp_section);
    let tftp = read_tftp(cx, &tftp_section);
    let http = read_http(cx, &http_section);
    let health = read_health(cx, &health_section);
    let upstream = read_upstreams(cx, root, base);
    let profiles = read_profiles(
        cx,
        &profiles_section,
        &server.templates_dir,
        template_exists,
    );
    let groups = read_groups(cx, &groups_section, &profiles);
    let boot = read_boot(cx, &boot_section, &profiles);
    let nodes = read_nodes(cx, root, &dhcp, &profiles, &groups);
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

fn read_server(cx: &mut Ctx<'_>, s: &Section<'_>, base: &Path) -> Server {
    s.check_keys(
        cx,
        &[
            "state_dir",
            "assets_dir",
            "templates_dir",
            "http_listen",
            "public_url",
            "control_socket",
            "control_group",
            "interfaces",
        ],
    );
    let mut path_or = |key: &str, default: PathBuf| {
        s.get(key)
            .and_then(|f| cx.path(&f, base))
            .unwrap_or(default)
    };
    let state_dir = path_or("state_dir", PathBuf::from(DEFAULT_STATE_DIR));
    // Assets follow the state dir unless placed elsewhere, as in the documented default.
    let assets_dir = path_or("assets_dir", state_dir.join("assets"));
    let templates_dir = path_or("templates_dir", PathBuf::from(DEFAULT_TEMPLATES_DIR));
    let control_socket = path_or("control_socket", PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let listen_field = s.get("http_listen");
    let listen = listen_field
        .as_ref()
        .and_then(|f| cx.parsed(f, parse_socket_addr));
    // A bad or mistyped listen address is already reported; a public_url error would be noise.
    let listen_broken = s.broken || (listen_field.is_some() && listen.is_none());
    let http_listen = listen.unwrap_or(DEFAULT_HTTP_LISTEN);
    let public_url = match s.get("public_url") {
        Some(f) => cx.parsed(&f, parse_public_url).unwrap_or_default(),
        None if listen_broken => String::new(),
        None if http_listen.ip().is_unspecified() => {
            // A URL with 0.0.0.0 rendered into boot scripts would silently break every boot.
            cx.error(
                s.at,
                &s.key_path("public_url"),
                format!("missing required key: http_listen {http_listen} is not an address machines can reach, so say where they reach this server (e.g. \"http://10.0.0.1:8080\")"),
            );
            String::new()
        }
        None => format!("http://{http_listen}"),
    };
    let control_group = s
        .get("control_group")
        .and_then(|f| cx.parsed(&f, check_group_name));
    let mut interfaces: Vec<String> = Vec::new();
    if let Some(f) = s.get("interfaces") {
        for (name, elem) in cx.strings(&f).unwrap_or_default() {
            match check_interface(name) {
                Ok(_) if interfaces.iter().any(|i| i == name) => {
                    cx.error(
                        elem.at,
                        &elem.path,
                        format!("interface {name:?} is listed twice"),
                    );
                }
                Ok(name) => interfaces.push(name),
                Err(message) => cx.error(elem.at, &elem.path, message),
            }
        }
    }
    Server {
        state_dir,
        assets_dir,
        templates_dir,
        http_listen,
        public_url,
        control_socket,
        control_group,
        interfaces,
    }
}

fn read_dhcp(cx: &mut Ctx<'_>, s: &Section<'_>) -> Dhcp {
    s.check_keys(
        cx,
        &["mode", "ipv6_ra", "proxy_option43", "rate_per_mac", "pools"],
    );
    let defaults = Dhcp::default();
    let mode_field = s.get("mode");
    let mode = mode_field
        .as_ref()
        .and_then(|f| {
            cx.choice(
                f,
                &[
                    ("proxy", DhcpMode::Proxy),
                    ("full", DhcpMode::Full),
                    ("off", DhcpMode::Off),
                ],
            )
        })
        .unwrap_or(defaults.mode);
    let ipv6_ra = s
        .get("ipv6_ra")
        .and_then(|f| cx.boolean(&f))
        .unwrap_or(defaults.ipv6_ra);
    let proxy_option43 = s
        .get("proxy_option43")
        .and_then(|f| {
            cx.choice(
                &f,
                &[("menu", Option43::Menu), ("minimal", Option43::Minimal)],
            )
        })
        .unwrap_or(defaults.proxy_option43);
    let rate_per_mac = s
        .get("rate_per_mac")
        .and_then(|f| cx.integer(&f, 1, i64::from(RATE_PER_MAC_MAX)))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(defaults.rate_per_mac);
    let pool_sections = s.get("pools").map(|f| cx.tables(&f)).unwrap_or_default();
    let mut pools: Vec<Pool> = Vec::new();
    for section in &pool_sections {
        let Some((pool, subnet_at)) = read_pool(cx, section) else {
            continue;
        };
        if let Some(other) = pools.iter().find(|p| p.subnet.overlaps(&pool.subnet)) {
            cx.error(
                subnet_at,
                &section.key_path("subnet"),
                format!(
                    "subnet {} overlaps the pool for {}",
                    pool.subnet, other.subnet
                ),
            );
        }
        pools.push(pool);
    }
    if mode == DhcpMode::Full && pool_sections.is_empty() {
        let at = mode_field.as_ref().map_or(s.at, |f| f.at);
        cx.error(
            at,
            &s.key_path("mode"),
            "mode \"full\" needs at least one [[dhcp.pools]] to hand out addresses from",
        );
    }
    Dhcp {
        mode,
        ipv6_ra,
        proxy_option43,
        rate_per_mac,
        pools,
    }
}

/// One pool and the position of its subnet; `None` if its subnet or range is unusable.
fn read_pool(cx: &mut Ctx<'_>, s: &Section<'_>) -> Option<(Pool, usize)> {
    s.check_keys(
        cx,
        &["subnet", "range", "router", "dns", "lease_time", "domain"],
    );
    let subnet_field = s.require(cx, "subnet");
    let subnet = subnet_field.as_ref().and_then(|f| cx.parsed(f, parse_net));
    let range = s
        .require(cx, "range")
        .and_then(|f| read_range(cx, &f, subnet));
    let router_field = s.get("router");
    let router = router_field.as_ref().and_then(|f| cx.parsed(f, parse_ipv4));
    let dns = s
        .get("dns")
        .and_then(|f| cx.strings(&f))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(text, elem)| match parse_ipv4(text) {
            Ok(ip) => Some(ip),
            Err(message) => {
                cx.error(elem.at, &elem.path, message);
                None
            }
        })
        .collect();
    let lease_time = s
        .get("lease_time")
        .and_then(|f| cx.duration(&f, LEASE_TIME_MIN, LEASE_TIME_MAX))
        .unwrap_or(DEFAULT_LEASE_TIME);
    let domain = s.get("domain").and_then(|f| cx.parsed(&f, check_hostname));
    let (subnet, (start, end), subnet_field) = (subnet?, range?, subnet_field?);
    let pool = Pool {
        subnet,
        start,
        end,
        router,
        dns,
        lease_time,
        domain,
    };
    if let (Some(router), Some(f)) = (router, router_field) {
        if !subnet.is_host(router) {
            cx.error(
                f.at,
                &f.path,
                format!("router {router} is not a host address of subnet {subnet}"),
            );
        } else if pool.in_range(router) {
            cx.error(
                f.at,
                &f.path,
                format!("router {router} is inside the dynamic range {start}-{end}"),
            );
        }
    }
    Some((pool, subnet_field.at))
}

/// `range = [start, end]`, both host addresses of the subnet, start ≤ end.
fn read_range(
    cx: &mut Ctx<'_>,
    f: &Field<'_>,
    subnet: Option<Ipv4Net>,
) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let count = f.item.as_array().map(|a| a.len());
    let elems = cx.strings(f)?;
    let mut addresses = Vec::new();
    for (text, elem) in &elems {
        let ip = match parse_ipv4(text) {
            Ok(ip) => ip,
            Err(message) => {
                cx.error(elem.at, &elem.path, message);
                continue;
            }
        };
        match subnet {
            Some(net) if !net.is_host(ip) => cx.error(
                elem.at,
                &elem.path,
                format!("{ip} is outside subnet {net} (or is its network or broadcast address)"),
            ),
            _ => addresses.push(ip),
        }
    }
    if count != Some(2) {
        cx.error(f.at, &f.path, "expected two addresses: [first, last]");
        return None;
    }
    // Fewer than two means an element was bad, and that is already reported.
    let [start, end] = <[Ipv4Addr; 2]>::try_from(addresses).ok()?;
    if start > end {
        cx.error(
            f.at,
            &f.path,
            format!("the range starts at {start}, after its end {end}"),
        );
        return None;
    }
    Some((start, end))
}

fn read_tftp(cx: &mut Ctx<'_>, s: &Section<'_>) -> Tftp {
    s.check_keys(
        cx,
        &[
            "enabled",
            "listen",
            "max_blksize",
            "max_windowsize",
            "max_sessions",
            "max_sessions_per_client",
        ],
    );
    let d = Tftp::default();
    let enabled = s
        .get("enabled")
        .and_then(|f| cx.boolean(&f))
        .unwrap_or(d.enabled);
    let listen = s
        .get("listen")
        .and_then(|f| cx.parsed(&f, parse_socket_addr))
        .unwrap_or(d.listen);
    let max_blksize = s
        .get("max_blksize")
        .and_then(|f| cx.integer(&f, i64::from(TFTP_BLKSIZE_MIN), i64::from(TFTP_BLKSIZE_MAX)))
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(d.max_blksize);
    let max_windowsize = s
        .get("max_windowsize")
        .and_then(|f| cx.integer(&f, 1, i64::from(TFTP_WINDOWSIZE_MAX)))
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(d.max_windowsize);
    let max_sessions = s
        .get("max_sessions")
        .and_then(|f| cx.integer(&f, 1, TFTP_SESSIONS_MAX as i64))
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(d.max_sessions);
    let per_client_field = s.get("max_sessions_per_client");
    let max_sessions_per_client = per_client_field
        .as_ref()
        .and_then(|f| cx.integer(f, 1, TFTP_SESSIONS_MAX as i64))
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(d.max_sessions_per_client);
    if max_sessions_per_client > max_sessions {
        let (at, path) = per_client_field
            .map_or((s.at, s.key_path("max_sessions_per_client")), |f| {
                (f.at, f.path)
            });
        cx.error(
            at,
            &path,
            format!("{max_sessions_per_client} is more than max_sessions ({max_sessions})"),
        );
    }
    Tftp {
        enabled,
        listen,
        max_blksize,
        max_windowsize,
        max_sessions,
        max_sessions_per_client,
    }
}

fn read_http(cx: &mut Ctx<'_>, s: &Section<'_>) -> Http {
    s.check_keys(cx, &["max_connections", "body_limit", "header_timeout"]);
    let d = Http::default();
    let max_connections = s
        .get("max_connections")
        .and_then(|f| cx.integer(&f, 1, HTTP_CONNECTIONS_MAX as i64))
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(d.max_connections);
    let body_limit = s
        .get("body_limit")
        .and_then(|f| read_body_limit(cx, &f))
        .unwrap_or(d.body_limit);
    let header_timeout = s
        .get("header_timeout")
        .and_then(|f| cx.duration(&f, Duration::from_millis(1), HEADER_TIMEOUT_MAX))
        .unwrap_or(d.header_timeout);
    Http {
        max_connections,
        body_limit,
        header_timeout,
    }
}

fn read_body_limit(cx: &mut Ctx<'_>, f: &Field<'_>) -> Option<u64> {
    let bytes = match f.item.as_integer() {
        Some(_) => cx
            .integer(f, 0, i64::MAX)
            .and_then(|v| u64::try_from(v).ok())?,
        None if f.item.as_str().is_some() => cx.parsed(f, parse_size)?,
        None => {
            cx.wrong_type(
                f,
                "a size in bytes (an integer or a string such as \"8MiB\")",
            );
            return None;
        }
    };
    if !(BODY_LIMIT_MIN..=BODY_LIMIT_MAX).contains(&bytes) {
        cx.error(
            f.at,
            &f.path,
            format!("must be between {BODY_LIMIT_MIN} and {BODY_LIMIT_MAX} bytes, found {bytes}"),
        );
        return None;
    }
    Some(bytes)
}

fn read_health(cx: &mut Ctx<'_>, s: &Section<'_>) -> Health {
    s.check_keys(
        cx,
        &[
            "interval",
            "unhealthy_after",
            "ready_interval",
            "ready_timeout",
        ],
    );
    let d = Health::default();
    let interval = s
        .get("interval")
        .and_then(|f| cx.duration(&f, HEALTH_MIN, HEALTH_INTERVAL_MAX))
        .unwrap_or(d.interval);
    let after_field = s.get("unhealthy_after");
    let unhealthy_after = after_field
        .as_ref()
        .and_then(|f| cx.duration(f, HEALTH_MIN, UNHEALTHY_AFTER_MAX))
        .unwrap_or(d.unhealthy_after);
    // A failure is only seen at a poll, so a shorter unhealthy_after could not be kept.
    if unhealthy_after < interval {
        let (at, path) =
            after_field.map_or((s.at, s.key_path("unhealthy_after")), |f| (f.at, f.path));
        cx.error(
            at,
            &path,
            format!(
                "{} is shorter than interval ({}): a failure is only noticed at a poll",
                format_duration(unhealthy_after),
                format_duration(interval)
            ),
        );
    }
    use crate::ready::{READY_INTERVAL_MAX, READY_MIN, READY_TIMEOUT_MAX};
    let ready_interval = s
        .get("ready_interval")
        .and_then(|f| cx.duration(&f, READY_MIN, READY_INTERVAL_MAX))
        .unwrap_or(d.ready_interval);
    let ready_timeout = s
        .get("ready_timeout")
        .and_then(|f| cx.duration(&f, READY_MIN, READY_TIMEOUT_MAX))
        .unwrap_or(d.ready_timeout);
    Health {
        interval,
        unhealthy_after,
        ready_interval,
        ready_timeout,
    }
}

fn read_upstreams(cx: &mut Ctx<'_>, root: &Section<'_>, base: &Path) -> Vec<Upstream> {
    let sections = root
        .get("upstream")
        .map(|f| cx.tables(&f))
        .unwrap_or_default();
    let mut out: Vec<Upstream> = Vec::new();
    for s in &sections {
        s.check_keys(cx, &["name", "url", "secret_file", "status_url", "ca_file"]);
        let name = s.require(cx, "name").and_then(|f| {
            let name = cx.parsed(&f, |n| check_name(n).map(|()| n.to_string()))?;
            if out.iter().any(|u| u.name == name) {
                cx.error(f.at, &f.path, format!("upstream {name:?} is defined twice"));
            }
            Some(name)
        });
        let url = s
            .require(cx, "url")
            .and_then(|f| cx.parsed(&f, check_http_url));
        let secret_file = s.get("secret_file").and_then(|f| cx.path(&f, base));
        let status_url = s
            .get("status_url")
            .and_then(|f| cx.parsed(&f, check_status_url));
        let ca_file = s.get("ca_file").and_then(|f| cx.path(&f, base));
        out.push(Upstream {
            name: name.unwrap_or_default(),
            url: url.unwrap_or_default(),
            secret_file,
            status_url,
            ca_file,
        });
    }
    out
}

fn read_profiles(
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
            },
        );
    }
    profiles
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
fn check_profile_ref(
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

fn read_groups(
    cx: &mut Ctx<'_>,
    s: &Section<'_>,
    profiles: &BTreeMap<String, Profile>,
) -> BTreeMap<String, Group> {
    let mut groups = BTreeMap::new();
    for entry in s.entries() {
        if let Err(message) = check_name(entry.name) {
            cx.error(entry.key_at, &entry.path, message);
        }
        let mut group = Group {
            profile: None,
            on_complete: None,
        };
        if let Some(g) = cx.table(&entry) {
            g.check_keys(cx, &["profile", "on_complete"]);
            group.profile = g
                .get("profile")
                .and_then(|f| check_profile_ref(cx, &f, profiles));
            group.on_complete = g
                .get("on_complete")
                .and_then(|f| cx.parsed(&f, check_http_url));
        }
        groups.insert(entry.name.to_string(), group);
    }
    groups
}

fn read_boot(cx: &mut Ctx<'_>, s: &Section<'_>, profiles: &BTreeMap<String, Profile>) -> Boot {
    s.check_keys(
        cx,
        &[
            "unknown",
            "default_profile",
            "bios_file",
            "efi_file",
            "arm64_file",
        ],
    );
    let d = Boot::default();
    let unknown = s
        .get("unknown")
        .and_then(|f| {
            cx.choice(
                &f,
                &[
                    ("discover", UnknownPolicy::Discover),
                    ("ignore", UnknownPolicy::Ignore),
                ],
            )
        })
        .unwrap_or(d.unknown);
    let default_profile = s
        .get("default_profile")
        .and_then(|f| check_profile_ref(cx, &f, profiles))
        .unwrap_or(d.default_profile);
    let mut asset = |key: &str, default: String| {
        s.get(key)
            .and_then(|f| cx.parsed(&f, check_relative_file))
            .unwrap_or(default)
    };
    Boot {
        unknown,
        default_profile,
        bios_file: asset("bios_file", d.bios_file),
        efi_file: asset("efi_file", d.efi_file),
        arm64_file: asset("arm64_file", d.arm64_file),
    }
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

fn read_nodes(
    cx: &mut Ctx<'_>,
    root: &Section<'_>,
    dhcp: &Dhcp,
    profiles: &BTreeMap<String, Profile>,
    groups: &BTreeMap<String, Group>,
) -> Vec<NodeSpec> {
    let sections = root.get("nodes").map(|f| cx.tables(&f)).unwrap_or_default();
    // First owner of each MAC, IP and host name: (node path, line).
    let mut macs: HashMap<MacAddr, (String, usize)> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, (String, usize)> = HashMap::new();
    let mut hostnames: HashMap<String, (String, usize)> = HashMap::new();
    let mut nodes = Vec::new();
    for s in &sections {
        s.check_keys(cx, &NODE_KEYS);
        let mac = s.require(cx, "mac").and_then(|f| {
            let mac = cx.parsed(&f, parse_mac)?;
            claim(cx, &f, "MAC", mac.to_string(), macs.get(&mac));
            let line = cx.position(f.at).0;
            macs.entry(mac).or_insert((s.path.clone(), line));
            Some(mac)
        });
        let hostname = s.get("hostname").and_then(|f| {
            let name = cx.parsed(&f, check_hostname)?;
            let key = name.to_ascii_lowercase();
            claim(cx, &f, "host name", name.clone(), hostnames.get(&key));
            let line = cx.position(f.at).0;
            hostnames.entry(key).or_insert((s.path.clone(), line));
            Some(name)
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
            claim(cx, &f, "IP address", ip.to_string(), ips.get(&ip));
            let line = cx.position(f.at).0;
            ips.entry(ip).or_insert((s.path.clone(), line));
            if dhcp.mode == DhcpMode::Full && !dhcp.pools.iter().any(|p| p.subnet.is_host(ip)) {
                let subnets: Vec<String> =
                    dhcp.pools.iter().map(|p| p.subnet.to_string()).collect();
                cx.error(
                    f.at,
                    &f.path,
                    format!(
                        "reserved address {ip} is not a host address of any pool subnet ({})",
                        subnets.join(", ")
                    ),
                );
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
            });
        }
    }
    nodes
}

/// Reports a second use of a value that must be unique among nodes.
fn claim(
    cx: &mut Ctx<'_>,
    f: &Field<'_>,
    what: &str,
    value: String,
    first: Option<&(String, usize)>,
) {
    if let Some((owner, line)) = first {
        cx.error(
            f.at,
            &f.path,
            format!("duplicate {what} {value}: already used by {owner} (line {line})"),
        );
    }
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

    const FILE: &str = "t.toml";

    fn accept_all(_: &Path, _: &str) -> bool {
        true
    }

    /// A minimal valid prefix so that tests only add what they are about.
    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse_str(text, Path::new(FILE), &accept_all)
    }

    /// The errors of a text as displayed, one string each.
    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// The `file:line:col: key` part of each error.
    fn where_(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}:{}:{}: {}", e.file.display(), e.line, e.col, e.key))
                    .collect()
            }
        }
    }

    const SERVER: &str = "[server]\npublic_url = \"http://10.0.0.1:8080/\"\n";

    #[test]
    fn durations_parse_and_format() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("45m", Duration::from_secs(45 * 60)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("2d", Duration::from_secs(2 * 86_400)),
            ("1d2h3m4s5ms", Duration::from_millis(93_784_005)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
            assert_eq!(parse_duration(&format_duration(want)), Ok(want), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        for bad in [
            "",
            "30",
            "s",
            "30x",
            "1.5h",
            "-1s",
            " 30s",
            "30 s",
            "30m1h",
            "1h1h",
            "1h 30m",
            "99999999999999999999d",
            "213503982334601d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv4_nets() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap_or(Ipv4Net {
            addr: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
        });
        assert_eq!(net.to_string(), "10.0.0.0/24");
        assert_eq!(net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert!(net.contains(Ipv4Addr::new(10, 0, 0, 255)));
        assert!(!net.contains(Ipv4Addr::new(10, 0, 1, 0)));
        assert!(net.is_host(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!net.is_host(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(!net.is_host(Ipv4Addr::new(10, 0, 0, 255)));
        let all: Result<Ipv4Net, _> = "0.0.0.0/0".parse();
        assert!(all.is_ok_and(|n| n.contains(Ipv4Addr::new(192, 168, 1, 1))));
        let host: Result<Ipv4Net, _> = "10.0.0.7/32".parse();
        assert!(host.is_ok_and(|n| n.is_host(Ipv4Addr::new(10, 0, 0, 7))));
        assert_eq!(
            "10.0.0.1/24".parse::<Ipv4Net>(),
            Err(Ipv4NetError::HostBits {
                input: "10.0.0.1/24".into(),
                network: "10.0.0.0/24".into()
            })
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/24",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for good in [
            "http://10.0.0.1:8080",
            "https://api.example.net/v1/events?x=1",
            "http://[fe80::1]:8080/",
            "HTTP://Host_1.example",
        ] {
            assert!(check_http_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://:80",
            "http://a b",
            "http://h:0",
            "http://h:99999",
            "http://user:pw@h/",
            "http://[::1",
            "10.0.0.1:8080",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_public_url("http://h:1//"),
            Ok("http://h:1".to_string())
        );
        assert!(parse_public_url("http://h/?q").is_err());
        assert!(check_status_url("https://h/v1/servers/{provider_id}").is_ok());
        assert!(check_status_url("https://h/v1/servers/{id}").is_err());
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("8 MB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(check_hostname("pve1.lab.example").is_ok());
        assert!(check_hostname("-pve").is_err());
        assert!(check_hostname("pve_1").is_err());
        assert!(check_interface("enp0s31f6").is_ok());
        assert!(check_interface("averyveryverylongname").is_err());
        assert!(check_interface("eth0:1").is_err());
        assert!(check_relative_file("arm64/ipxe.efi").is_ok());
        for bad in ["/etc/passwd", "../x", "a/../../x", "a\\b", "", "a//b"] {
            assert!(check_relative_file(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_uuid("4C4C4544-0042-3010-8052-B4C04F4E3132"),
            Ok("4c4c4544-0042-3010-8052-b4c04f4e3132".to_string())
        );
        assert!(check_uuid("4c4c4544004230108052b4c04f4e3132").is_err());
        assert_eq!(
            closest("stat_dir", &["state_dir", "assets_dir"]),
            Some("state_dir")
        );
        assert_eq!(closest("zzz", &["state_dir"]), None);
    }

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
    fn file_defaults_are_production_defaults() {
        let c = match parse(SERVER) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.server.state_dir, Path::new("/var/lib/bootd"));
        assert_eq!(c.server.assets_dir, Path::new("/var/lib/bootd/assets"));
        assert_eq!(c.server.templates_dir, Path::new("/etc/bootd/templates"));
        assert_eq!(
            c.server.control_socket,
            Path::new("/run/bootd/control.sock")
        );
        assert_eq!(c.server.http_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.server.public_url, "http://10.0.0.1:8080");
        assert_eq!(c.tftp.listen.to_string(), "0.0.0.0:69");
        assert_eq!(c.tftp.max_blksize, 1468);
        assert_eq!(c.tftp.max_windowsize, 16);
        assert_eq!(c.tftp.max_sessions, 10_000);
        assert_eq!(c.tftp.max_sessions_per_client, 64);
        assert_eq!(c.http.max_connections, 4096);
        assert_eq!(c.http.body_limit, 8 << 20);
        assert_eq!(c.http.header_timeout, Duration::from_secs(10));
        assert_eq!(c.dhcp.mode, DhcpMode::Proxy);
        assert_eq!(c.dhcp.proxy_option43, Option43::Menu);
        assert_eq!(c.dhcp.rate_per_mac, 20);
        assert_eq!(c.health.interval, Duration::from_secs(30));
        assert_eq!(c.health.unhealthy_after, Duration::from_secs(60));
        assert!(c.profiles.contains_key("discovery") && c.profiles.contains_key("local"));
        assert_eq!(c.source.as_deref(), Some(Path::new(FILE)));
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let text = "[server]\nstate_dir = \"state\"\npublic_url = \"http://h\"\n";
        let c = Config::parse_str(text, Path::new("/etc/bootd/x.toml"), &accept_all);
        let c = c.map_err(|e| e.to_string());
        assert_eq!(
            c.map(|c| (c.server.state_dir, c.server.assets_dir)),
            Ok((
                PathBuf::from("/etc/bootd/state"),
                PathBuf::from("/etc/bootd/state/assets")
            ))
        );
    }

    #[test]
    fn public_url_required_on_wildcard_listen() {
        assert_eq!(where_(""), ["t.toml:1:1: server.public_url"]);
        let c = parse("[server]\nhttp_listen = \"10.1.2.3:80\"\n").map(|c| c.server.public_url);
        assert_eq!(c.ok().as_deref(), Some("http://10.1.2.3:80"));
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
    fn bad_cidr_and_pool_range() {
        let text = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.1/24\"\nrange = [\"10.0.0.10\", \"10.0.0.20\"]\n[[dhcp.pools]]\nsubnet = \"10.1.0.0/24\"\nrange = [\"10.1.0.10\", \"10.2.0.20\"]\n"
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:6:10: dhcp.pools[0].subnet: invalid subnet \"10.0.0.1/24\": host bits are set (did you mean 10.0.0.0/24?)",
                "t.toml:10:23: dhcp.pools[1].range[1]: 10.2.0.20 is outside subnet 10.1.0.0/24 (or is its network or broadcast address)",
            ]
        );
        let reversed = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.0/24\"\nrange = [\"10.0.0.20\", \"10.0.0.10\"]\nrouter = \"10.0.0.15\"\n"
        );
        assert_eq!(where_(&reversed), ["t.toml:7:9: dhcp.pools[0].range"]);
    }

    #[test]
    fn every_bad_array_element_is_reported() {
        let text = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.0/24\"\nrange = [\"10.0.0.10\", 20]\ndns = [\"x\", 5, \"10.0.0.1\"]\n"
        );
        assert_eq!(
            where_(&text),
            [
                "t.toml:7:23: dhcp.pools[0].range[1]",
                "t.toml:8:8: dhcp.pools[0].dns[0]",
                "t.toml:8:13: dhcp.pools[0].dns[1]",
            ]
        );
        let short = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.0/24\"\nrange = [\"10.0.0.10\"]\n"
        );
        assert_eq!(
            errors(&short),
            ["t.toml:7:9: dhcp.pools[0].range: expected two addresses: [first, last]"]
        );
    }

    #[test]
    fn full_mode_needs_pools_and_reservations_inside_them() {
        let text = format!("{SERVER}[dhcp]\nmode = \"full\"\n");
        assert_eq!(where_(&text), ["t.toml:4:8: dhcp.mode"]);
        let text = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\npools = [{{ subnet = \"10.0.0.0/24\", range = [\"10.0.0.10\", \"10.0.0.20\"] }}]\n[[nodes]]\nmac = \"52:54:00:12:34:56\"\nip = \"10.9.0.5\"\n[[nodes]]\nmac = \"52:54:00:12:34:57\"\nip = \"10.0.0.5\"\n"
        );
        assert_eq!(where_(&text), ["t.toml:8:6: nodes[0].ip"]);
        // In proxy mode a node's address is informational and may be anywhere.
        let proxy = text.replace("mode = \"full\"", "mode = \"proxy\"");
        assert!(parse(&proxy).is_ok());
    }

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
    fn references_to_missing_profiles_and_groups() {
        let text = format!(
            "{SERVER}[boot]\ndefault_profile = \"nope\"\n[groups.g]\nprofile = \"gone\"\n[[nodes]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"ubuntu\"\ngroup = \"h\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:4:19: boot.default_profile: unknown profile \"nope\"; defined profiles: discovery, local",
                "t.toml:6:11: groups.g.profile: unknown profile \"gone\"; defined profiles: discovery, local",
                "t.toml:9:11: nodes[0].profile: unknown profile \"ubuntu\"; defined profiles: discovery, local",
                "t.toml:10:9: nodes[0].group: unknown group \"h\"; defined groups: g",
            ]
        );
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
        let json = toml::to_string(&c.health).unwrap_or_default();
        assert_eq!(
            json,
            "interval = \"30s\"\nunhealthy_after = \"1m\"\nready_interval = \"30s\"\nready_timeout = \"10s\"\n"
        );
    }
}
