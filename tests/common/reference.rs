//! `RefStack`: a known-good boot server (dnsmasq for DHCP/ProxyDHCP/TFTP/RA, a Python HTTP
//! server for the iPXE script, guest files and phase POSTs) to prove the harness and to
//! compare bootd against.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::guest::GuestImage;
use super::netns::Netns;
use super::util::{harness_dir, read_lossy, wait_for};
use super::HarnessError;

/// dnsmasq from Debian's `dnsmasq-base`.
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// Debian's iPXE builds (package `ipxe`), served over TFTP to non-iPXE clients.
pub const IPXE_BIOS: &str = "/usr/lib/ipxe/undionly.kpxe";
/// The x86-64 UEFI iPXE build.
pub const IPXE_EFI: &str = "/usr/lib/ipxe/ipxe.efi";
/// The HTTP port of the reference server inside the namespace.
pub const HTTP_PORT: u16 = 8080;
/// The bearer token the reference boot script passes to the guest.
pub const TOKEN: &str = "abc";
/// How long a reference server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How the reference DHCP side is arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpStyle {
    /// One dnsmasq hands out addresses and boot files.
    Full,
    /// An address-only dnsmasq plus a ProxyDHCP dnsmasq (ports 67 and 4011).
    Proxy,
}

/// One POST the reference HTTP server received.
#[derive(Debug, Clone)]
pub struct PhasePost {
    /// The request path.
    pub path: String,
    /// The client's address.
    pub peer: String,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// The body parsed as JSON.
    pub body: serde_json::Value,
}

/// The running reference servers; they stop with their namespace.
pub struct RefStack<'ns> {
    ns: &'ns Netns,
    dir: tempfile::TempDir,
    posts_log: PathBuf,
    pids: Vec<u32>,
}

impl<'ns> RefStack<'ns> {
    /// Starts dnsmasq (in `style`) and the HTTP server on `br0` of `ns`, serving `guest`.
    pub fn start(
        ns: &'ns Netns,
        style: DhcpStyle,
        guest: &GuestImage,
    ) -> Result<RefStack<'ns>, HarnessError> {
        let dir = tempfile::tempdir().map_err(|e| HarnessError::io("make a temp dir", e))?;
        let root = dir.path();
        let tftp = root.join("tftp");
        let www = root.join("www");
        for d in [&tftp, &www] {
            std::fs::create_dir_all(d).map_err(|e| HarnessError::file(d, e))?;
        }
        copy(Path::new(IPXE_BIOS), &tftp.join("undionly.kpxe"))?;
        copy(Path::new(IPXE_EFI), &tftp.join("ipxe.efi"))?;
        copy(&guest.vmlinuz, &www.join("vmlinuz"))?;
        copy(&guest.initrd, &www.join("initrd.gz"))?;
        let server = ns.bridge_ip().to_string();
        let base = format!("http://{server}:{HTTP_PORT}");
        // `quiet`: kernel messages on the emulated UART cost ~10 s per UEFI boot under TCG.
        let script = format!(
            "#!ipxe\n\
             kernel {base}/vmlinuz initrd=initrd.gz console=ttyS0 quiet \
             bootd.phase_url={base}/phase bootd.token={TOKEN}\n\
             initrd {base}/initrd.gz\n\
             boot\n"
        );
        let script_path = www.join("boot.ipxe");
        std::fs::write(&script_path, script).map_err(|e| HarnessError::file(&script_path, e))?;

        let mut stack = RefStack {
            ns,
            posts_log: root.join("posts.jsonl"),
            pids: Vec::new(),
            dir,
        };
        stack.start_http(&www)?;
        let script_url = format!("{base}/boot.ipxe");
        match style {
            DhcpStyle::Full => stack.start_full(&tftp, &script_url)?,
            DhcpStyle::Proxy => stack.start_proxy(&tftp, &script_url)?,
        }
        Ok(stack)
    }

    /// The directory holding the served files and the servers' logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pids of the reference servers (owned by the namespace).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Every POST received so far.
    pub fn posts(&self) -> Result<Vec<PhasePost>, HarnessError> {
        read_lossy(&self.posts_log)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_post)
            .collect()
    }

    /// The servers' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["http.log", "dnsmasq.log", "dnsmasq-proxy.log"] {
            let text = read_lossy(&self.dir().join(name));
            if !text.is_empty() {
                out.push_str(&format!("--- {name}\n{text}\n"));
            }
        }
        out
    }

    fn start_http(&mut self, www: &Path) -> Result<(), HarnessError> {
        let ready = self.dir().join("http.ready");
        let log = self.dir().join("http.log");
        let server = harness_dir().join("tests/guest/ref_http.py");
        let args = [
            server.to_string_lossy().into_owned(),
            "--root".to_string(),
            www.to_string_lossy().into_owned(),
            "--bind".to_string(),
            self.ns.bridge_ip().to_string(),
            "--port".to_string(),
            HTTP_PORT.to_string(),
            "--log".to_string(),
            self.posts_log.to_string_lossy().into_owned(),
            "--ready".to_string(),
            ready.to_string_lossy().into_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let pid = self.ns.spawn_logged("python3", &args, &log)?;
        self.pids.push(pid);
        let ns = self.ns;
        wait_for(START_TIMEOUT, "the reference HTTP server", || {
            ready.exists() || !ns.is_running(pid)
        })?;
        self.check_running(pid, &log)
    }

    /// The address pool on `br0`'s /24: .100 to .200.
    fn range(&self) -> String {
        let net = self.net24();
        format!("--dhcp-range={net}.100,{net}.200,255.255.255.0,1h")
    }

    /// The first three octets of `br0`'s address.
    fn net24(&self) -> String {
        let ip = self.ns.bridge_ip();
        ip.rsplit_once('.').map_or(ip, |(net, _)| net).to_string()
    }

    fn start_full(&mut self, tftp: &Path, script_url: &str) -> Result<(), HarnessError> {
        let mut args = self.common_dnsmasq_args("dnsmasq");
        args.extend([
            self.range(),
            "--enable-tftp".to_string(),
            format!("--tftp-root={}", tftp.display()),
            "--dhcp-match=set:ipxe,175".to_string(),
            "--dhcp-match=set:efi64,option:client-arch,7".to_string(),
            "--dhcp-match=set:efi64,option:client-arch,9".to_string(),
            // iPXE: skip the ProxyDHCP wait (175.176 = 1).
            "--dhcp-option=tag:ipxe,encap:175,176,1b".to_string(),
            format!("--dhcp-boot=tag:ipxe,{script_url}"),
            "--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi".to_string(),
            "--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe".to_string(),
        ]);
        args.extend(self.ra_args());
        self.start_dnsmasq("dnsmasq", &args)
    }

    fn start_proxy(&mut self, tftp: &Path, script_url: &str) -> Result<(), HarnessError> {
        let mut args = self.common_dnsmasq_args("dnsmasq");
        args.push(self.range());
        args.extend(self.ra_args());
        self.start_dnsmasq("dnsmasq", &args)?;
        let mut args = self.common_dnsmasq_args("dnsmasq-proxy");
        args.extend([
            format!("--dhcp-range={}.0,proxy,255.255.255.0", self.net24()),
            "--enable-tftp".to_string(),
            format!("--tftp-root={}", tftp.display()),
            "--dhcp-match=set:ipxe,175".to_string(),
            "--dhcp-option=tag:ipxe,encap:175,176,1b".to_string(),
            "--pxe-prompt=go,0".to_string(),
            "--pxe-service=tag:!ipxe,x86PC,bios,undionly.kpxe".to_string(),
            "--pxe-service=tag:!ipxe,x86-64_EFI,efi,ipxe.efi".to_string(),
            format!("--pxe-service=tag:ipxe,x86PC,script,{script_url}"),
            format!("--pxe-service=tag:ipxe,x86-64_EFI,script,{script_url}"),
        ]);
        self.start_dnsmasq("dnsmasq-proxy", &args)
    }

    fn common_dnsmasq_args(&self, name: &str) -> Vec<String> {
        vec![
            "--no-daemon".to_string(),
            "--conf-file=/dev/null".to_string(),
            "--port=0".to_string(),
            "--interface=br0".to_string(),
            "--bind-interfaces".to_string(),
            "--leasefile-ro".to_string(),
            "--no-ping".to_string(),
            "--log-dhcp".to_string(),
            format!(
                "--pid-file={}",
                self.dir().join(format!("{name}.pid")).display()
            ),
        ]
    }

    /// IPv6 router advertisements when `br0` has an IPv6 address: iPXE stops waiting.
    fn ra_args(&self) -> Vec<String> {
        let Some(addr6) = &self.ns.config().bridge_addr6 else {
            return Vec::new();
        };
        let prefix = addr6.split("::").next().unwrap_or(addr6);
        vec![
            "--enable-ra".to_string(),
            format!("--dhcp-range={prefix}::,ra-only"),
        ]
    }

    fn start_dnsmasq(&mut self, name: &str, args: &[String]) -> Result<(), HarnessError> {
        let log = self.dir().join(format!("{name}.log"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let pid = self.ns.spawn_logged(DNSMASQ, &args, &log)?;
        self.pids.push(pid);
        let ns = self.ns;
        wait_for(START_TIMEOUT, "dnsmasq to start", || {
            read_lossy(&log).contains("dnsmasq-dhcp") || !ns.is_running(pid)
        })?;
        self.check_running(pid, &log)
    }

    fn check_running(&self, pid: u32, log: &Path) -> Result<(), HarnessError> {
        if self.ns.is_running(pid) {
            Ok(())
        } else {
            Err(HarnessError::Format {
                what: format!("reference server start ({})", log.display()),
                detail: read_lossy(log),
            })
        }
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), HarnessError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| HarnessError::file(from, e))
}

fn parse_post(line: &str) -> Result<PhasePost, HarnessError> {
    let bad = |detail: String| HarnessError::Format {
        what: "reference POST log line".to_string(),
        detail,
    };
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| bad(format!("{e}: {line}")))?;
    let text = |key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_string);
    let header = |key: &str| {
        v.get("headers")
            .and_then(|h| h.get(key))
            .and_then(|x| x.as_str())
            .map(str::to_string)
    };
    let body_text = text("body").ok_or_else(|| bad(format!("no body: {line}")))?;
    let body = serde_json::from_str(&body_text)
        .map_err(|e| bad(format!("body is not JSON ({e}): {body_text}")))?;
    Ok(PhasePost {
        path: text("path").unwrap_or_default(),
        peer: text("peer").unwrap_or_default(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body,
    })
}
