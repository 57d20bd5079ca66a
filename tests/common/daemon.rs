//! Starts the real `bootd` binary on a temporary state dir with free loopback ports, and
//! kills it (by pid) when the test ends, whatever happened.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::{free_tcp_port, free_udp_port};

/// Path of the built `bootctl` (package `bootctl`, so no `CARGO_BIN_EXE_bootctl` here):
/// beside the test executable's `deps/` dir, e.g. `target/debug/bootctl`. The root's
/// `default-members` build it with the tests.
pub fn bootctl_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let bin = profile_dir.join(format!("bootctl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p bootctl`",
        bin.display()
    );
    bin
}

/// Path of a built binary of this package.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "bootd" => PathBuf::from(env!("CARGO_BIN_EXE_bootd")),
        "bootctl" => bootctl_bin(),
        other => panic!("unknown binary {other} (another package's: `workspace_bin`)"),
    }
}

/// A running bootd on loopback.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub tftp: SocketAddr,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// A viewer API token created at start; `curl` sends it unless the call carries
    /// its own `Authorization` header.
    pub viewer: String,
    child: Option<Child>,
}

impl Daemon {
    /// The `[server]`/`[tftp]` part of a test config for this dir and these ports;
    /// `extra` is appended (nodes, profiles, ...).
    ///
    /// The test client fetches every node's script from 127.0.0.1, which is no node's
    /// address: unless `extra` says otherwise, `[http] secrets_trusted` lists it so the
    /// scripts carry their tokens (tests of the binding itself set the key).
    pub fn config_text(dir: &Path, http: SocketAddr, tftp: SocketAddr, extra: &str) -> String {
        let extra = if extra.contains("secrets_trusted") {
            extra.to_string()
        } else {
            with_http_keys(extra, "secrets_trusted = [\"127.0.0.1\"]")
        };
        format!(
            r#"[server]
state_dir = "{state}"
assets_dir = "{state}/assets"
templates_dir = "{state}/templates"
http_listen = "{http}"
public_url = "http://{http}"
control_socket = "{state}/control.sock"

[dhcp]
mode = "off"

[tftp]
listen = "{tftp}"

{extra}
"#,
            state = dir.join("state").display(),
        )
    }

    /// Starts bootd with a config made of the test ports plus `extra`.
    pub fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra, &[])
    }

    /// Starts bootd in an existing dir (restarts keep the state), with extra env vars.
    pub fn start_in(dir: tempfile::TempDir, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
            .parse()
            .expect("addr");
        let tftp: SocketAddr = format!("127.0.0.1:{}", free_udp_port())
            .parse()
            .expect("addr");
        let config = dir.path().join("bootd.toml");
        std::fs::create_dir_all(dir.path().join("state/templates")).expect("templates dir");
        std::fs::write(&config, Self::config_text(dir.path(), http, tftp, extra)).expect("config");
        let socket = dir.path().join("state/control.sock");
        let log = dir.path().join("bootd.log");
        let mut d = Daemon {
            dir,
            http,
            tftp,
            config,
            socket,
            log,
            viewer: String::new(),
            child: None,
        };
        d.spawn(env);
        d.viewer = d.viewer_token();
        d
    }

    /// The harness's viewer token: kept in the test dir so restarts reuse it.
    fn viewer_token(&self) -> String {
        let file = self.dir.path().join("viewer.token");
        if let Ok(t) = std::fs::read_to_string(&file) {
            return t;
        }
        let (code, out, err) = self.bootctl(&["token", "create", "harness", "--role", "viewer"]);
        assert_eq!(code, 0, "bootctl token create: {err}");
        let token = out.trim().to_string();
        std::fs::write(&file, &token).expect("viewer token file");
        token
    }

    /// (Re)starts the process on the same dir and config.
    pub fn spawn(&mut self, env: &[(&str, &str)]) {
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(bin("bootd"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env_remove("NOTIFY_SOCKET")
            .env("BOOTD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().expect("log"))
            .stderr(logfile);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn bootd");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("bootd exited early ({status}); log:\n{}", self.log_text());
                }
            }
            if std::net::TcpStream::connect(self.http).is_ok() && self.socket.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bootd did not come up; log:\n{}", self.log_text());
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns its status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs bootctl against this daemon; returns (exit code, stdout, stderr).
    pub fn bootctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("bootctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run bootctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `curl` against the HTTP listener: (status, body).
    pub fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let url = format!("http://{}{}", self.http, path);
        if self.viewer.is_empty()
            || args
                .iter()
                .any(|a| a.to_ascii_lowercase().starts_with("authorization:"))
        {
            return curl_url(args, &url);
        }
        let auth = format!("Authorization: Bearer {}", self.viewer);
        let mut all: Vec<&str> = vec!["-H", &auth];
        all.extend_from_slice(args);
        curl_url(&all, &url)
    }

    /// Starts bootd with these `(name, text)` files in its templates dir and `extra` in
    /// its config.
    pub fn start_with_templates(extra: &str, templates: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("state/templates");
        std::fs::create_dir_all(&dest).expect("templates dir");
        for (name, text) in templates {
            std::fs::write(dest.join(name), text).expect("template");
        }
        Daemon::start_in(dir, extra, &[])
    }

    /// A machine's phase callback with its token: (status, body).
    pub fn phase_callback(&self, mac: &str, token: &str, body: &str) -> (u16, String) {
        let auth = format!("Authorization: Bearer {token}");
        self.curl(
            &[
                "-X",
                "POST",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                body,
            ],
            &format!("/api/v1/nodes/{mac}/phase"),
        )
    }

    /// The node with its history, read over the control socket.
    pub fn node_json(&self, mac: &str) -> serde_json::Value {
        let (code, body) = self.curl_control(&[], &format!("/api/v1/nodes/{mac}"));
        assert_eq!(code, 200, "{body}");
        super::json::json(&body)
    }

    /// `curl --unix-socket` against the control socket: (status, body).
    pub fn curl_control(&self, args: &[&str], path: &str) -> (u16, String) {
        let mut all = vec![
            "--unix-socket".to_string(),
            self.socket.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        curl_url(&refs, &format!("http://bootd{path}"))
    }

    /// The state dir.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// `extra` with `keys` added to its `[http]` table (created when it has none).
pub fn with_http_keys(extra: &str, keys: &str) -> String {
    match extra.find("[http]\n") {
        Some(at) => {
            let split = at + "[http]\n".len();
            format!("{}{keys}\n{}", &extra[..split], &extra[split..])
        }
        None => format!("{extra}\n[http]\n{keys}\n"),
    }
}

/// Runs curl, returning (status, body).
pub fn curl_url(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "20",
        ])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A one-shot HTTP/1.1 request over a Unix socket; the status code, if one came back.
pub fn unix_request(socket: &Path, method: &str, path: &str, body: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bootd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_whitespace().nth(1)?.parse().ok()
}
