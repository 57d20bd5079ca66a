//! TEMPORARY shape of the configuration until the validated loader lands.
//! (replaced by the full loader; kept compiling meanwhile)

use crate::mac::MacAddr;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server: Server,
    pub dhcp: Dhcp,
    pub tftp: Tftp,
    pub http: Http,
    pub boot: Boot,
    pub profiles: BTreeMap<String, Profile>,
    pub groups: BTreeMap<String, Group>,
    pub nodes: Vec<NodeSpec>,
    pub health: Health,
    pub upstream: Vec<Upstream>,
    pub source: Option<PathBuf>,
}
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub state_dir: PathBuf,
    pub assets_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub public_url: String,
    pub control_socket: PathBuf,
    pub control_group: Option<String>,
    pub interfaces: Vec<String>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DhcpMode {
    Off,
    Proxy,
    Full,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnknownPolicy {
    Discover,
    Ignore,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Loader {
    Ipxe,
    Grub,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BootMode {
    Profile,
    Local,
}
#[derive(Debug, Clone, Serialize)]
pub struct Dhcp {
    pub mode: DhcpMode,
    pub ipv6_ra: bool,
}
#[derive(Debug, Clone, Serialize)]
pub struct Tftp {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub max_blksize: u16,
    pub max_windowsize: u16,
    pub max_sessions: usize,
    pub max_sessions_per_client: usize,
}
#[derive(Debug, Clone, Serialize)]
pub struct Http {
    pub max_connections: usize,
    pub body_limit: u64,
    pub header_timeout: Duration,
}
#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub unknown: UnknownPolicy,
    pub default_profile: String,
    pub bios_file: String,
    pub efi_file: String,
    pub arm64_file: String,
}
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub script: String,
    pub config: Option<String>,
    pub timeout: Option<Duration>,
    pub phases: BTreeMap<String, u8>,
    pub loader: Loader,
}
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub profile: Option<String>,
    pub on_complete: Option<String>,
}
#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    pub mac: MacAddr,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub uuid: Option<String>,
    pub provider_id: Option<String>,
    pub health_url: Option<String>,
    pub console_url: Option<String>,
    pub boot: BootMode,
    pub vars: BTreeMap<String, toml::Value>,
}
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub interval: Duration,
    pub unhealthy_after: Duration,
}
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub name: String,
    pub url: String,
    pub secret_file: Option<PathBuf>,
    pub status_url: Option<String>,
}

#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}
impl std::error::Error for ConfigErrors {}

impl Config {
    pub fn embedded(base: &Path) -> Config {
        let state = base.join("bootd-state");
        let mut profiles = BTreeMap::new();
        profiles.insert(
            "discovery".into(),
            Profile {
                script: "discovery.ipxe".into(),
                config: None,
                timeout: None,
                phases: BTreeMap::new(),
                loader: Loader::Ipxe,
            },
        );
        profiles.insert(
            "local".into(),
            Profile {
                script: "local.ipxe".into(),
                config: None,
                timeout: None,
                phases: BTreeMap::new(),
                loader: Loader::Ipxe,
            },
        );
        Config {
            server: Server {
                assets_dir: state.join("assets"),
                templates_dir: state.join("templates"),
                control_socket: state.join("control.sock"),
                state_dir: state,
                http_listen: "127.0.0.1:8080"
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
                public_url: "http://127.0.0.1:8080".into(),
                control_group: None,
                interfaces: vec![],
            },
            dhcp: Dhcp {
                mode: DhcpMode::Off,
                ipv6_ra: false,
            },
            tftp: Tftp {
                enabled: true,
                listen: SocketAddr::from(([127, 0, 0, 1], 6969)),
                max_blksize: 1468,
                max_windowsize: 16,
                max_sessions: 2000,
                max_sessions_per_client: 64,
            },
            http: Http {
                max_connections: 1024,
                body_limit: 8 << 20,
                header_timeout: Duration::from_secs(10),
            },
            boot: Boot {
                unknown: UnknownPolicy::Discover,
                default_profile: "discovery".into(),
                bios_file: "undionly.kpxe".into(),
                efi_file: "ipxe.efi".into(),
                arm64_file: "arm64/ipxe.efi".into(),
            },
            profiles,
            groups: BTreeMap::new(),
            nodes: vec![],
            health: Health {
                interval: Duration::from_secs(30),
                unhealthy_after: Duration::from_secs(60),
            },
            upstream: vec![],
            source: None,
        }
    }
    pub fn load(path: &Path, _t: &dyn Fn(&Path, &str) -> bool) -> Result<Config, ConfigErrors> {
        Err(ConfigErrors(vec![format!(
            "{}: loader not built yet",
            path.display()
        )]))
    }
}
