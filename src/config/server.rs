//! `[server]`: paths, listen address, public URL, control socket, interfaces.

use super::reader::{shown, Ctx, Section};
use super::values::{check_group_name, check_http_url, check_interface, parse_socket_addr};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Production default of `server.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bootd";
/// Production default of `server.templates_dir`.
pub const DEFAULT_TEMPLATES_DIR: &str = "/etc/bootd/templates";
/// Production default of `server.control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/bootd/control.sock";
/// Production default of `server.http_listen`.
pub const DEFAULT_HTTP_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
/// `http_listen` of the embedded (no file) configuration: unprivileged, loopback only.
pub const EMBEDDED_HTTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Name of the embedded configuration's state directory, under the working directory.
pub const EMBEDDED_STATE_DIR_NAME: &str = "bootd-state";

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

pub(super) fn read_server(cx: &mut Ctx<'_>, s: &Section<'_>, base: &Path) -> Server {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{accept_all, defaults, parse, where_};
    use crate::config::Config;

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
    fn public_url_is_a_base_url() {
        assert_eq!(
            parse_public_url("http://h:1//"),
            Ok("http://h:1".to_string())
        );
        assert!(parse_public_url("http://h/?q").is_err());
    }

    #[test]
    fn file_defaults() {
        let c = defaults();
        assert_eq!(c.server.state_dir, Path::new("/var/lib/bootd"));
        assert_eq!(c.server.assets_dir, Path::new("/var/lib/bootd/assets"));
        assert_eq!(c.server.templates_dir, Path::new("/etc/bootd/templates"));
        assert_eq!(
            c.server.control_socket,
            Path::new("/run/bootd/control.sock")
        );
        assert_eq!(c.server.http_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.server.public_url, "http://10.0.0.1:8080");
    }
}
