//! `Netns`: a private network namespace with a bridge and a tap for QEMU, so DHCP from a
//! test never reaches a real network; dropping it kills its processes and deletes it.
//! `Lab`: a server namespace and a client namespace joined by a bridge and veth pairs
//! (client-side DHCP tests), torn down the same way; `enter` moves a thread into one.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::util::{describe, run};
use super::HarnessError;

/// Linux interface names hold at most 15 bytes; namespace names stay within it too so
/// they can be reused for veth names.
pub const MAX_IFNAME: usize = 15;
/// How long a process gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Addresses of the namespace's bridges.
#[derive(Debug, Clone)]
pub struct NetnsConfig {
    /// `br0`'s address with prefix, e.g. `10.77.0.1/24`.
    pub bridge_addr: String,
    /// An optional IPv6 address for `br0` (e.g. `fd77::1/64`), needed to send RAs.
    pub bridge_addr6: Option<String>,
    /// A second bridge `br1` with tap `tap1` and this address (relay tests), if set.
    pub second_bridge_addr: Option<String>,
}

impl Default for NetnsConfig {
    fn default() -> Self {
        NetnsConfig {
            bridge_addr: "10.77.0.1/24".to_string(),
            bridge_addr6: Some("fd77::1/64".to_string()),
            second_bridge_addr: None,
        }
    }
}

/// A network namespace owned by one test: `lo` up, `br0` + `tap0`, optionally `br1` + `tap1`.
pub struct Netns {
    name: String,
    config: NetnsConfig,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// A namespace with the default addresses (`br0` = 10.77.0.1/24, fd77::1/64).
    pub fn new() -> Result<Netns, HarnessError> {
        Netns::with_config(NetnsConfig::default())
    }

    /// A namespace with the given addresses.
    pub fn with_config(config: NetnsConfig) -> Result<Netns, HarnessError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut name = format!("bd{}x{}", std::process::id(), id);
        name.truncate(MAX_IFNAME);
        // A namespace of a crashed earlier run with a reused pid: take the name over.
        if Path::new("/run/netns").join(&name).exists() {
            run(Command::new("ip").args(["netns", "del", &name]))?;
        }
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on Drop deletes the namespace even if the set-up below fails.
        let ns = Netns {
            name,
            config,
            children: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        let addr = ns.config.bridge_addr.clone();
        ns.add_bridge("br0", &addr)?;
        if let Some(addr6) = ns.config.bridge_addr6.clone() {
            ns.ip(&["-6", "addr", "add", &addr6, "dev", "br0", "nodad"])?;
        }
        ns.add_tap("tap0", "br0")?;
        if let Some(addr) = ns.config.second_bridge_addr.clone() {
            ns.add_bridge("br1", &addr)?;
            ns.add_tap("tap1", "br1")?;
        }
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &NetnsConfig {
        &self.config
    }

    /// `br0`'s IPv4 address without prefix (e.g. `10.77.0.1`).
    pub fn bridge_ip(&self) -> &str {
        self.config
            .bridge_addr
            .split('/')
            .next()
            .unwrap_or(&self.config.bridge_addr)
    }

    /// A command running `prog` inside the namespace (`ip netns exec <ns> prog`).
    pub fn cmd(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(prog);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ip <args>` inside the namespace to completion.
    pub fn ip(&self, args: &[&str]) -> Result<String, HarnessError> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs a command inside the namespace to completion; returns its stdout.
    pub fn run(&self, prog: &str, args: &[&str]) -> Result<String, HarnessError> {
        run(self.cmd(prog).args(args))
    }

    /// Adds a bridge with an address, up.
    pub fn add_bridge(&self, name: &str, addr: &str) -> Result<(), HarnessError> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.ip(&["addr", "add", addr, "dev", name])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Adds a tap device (for one more QEMU client) enslaved to `bridge`, up.
    pub fn add_tap(&self, name: &str, bridge: &str) -> Result<(), HarnessError> {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        self.ip(&["link", "set", name, "master", bridge])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Starts `cmd` (build it with [`Netns::cmd`]) and registers it for cleanup; returns its pid.
    pub fn spawn(&self, mut cmd: Command) -> Result<u32, HarnessError> {
        let line = describe(&cmd);
        let child = cmd
            .spawn()
            .map_err(|source| HarnessError::Spawn { cmd: line, source })?;
        let pid = child.id();
        self.lock_children().push(child);
        Ok(pid)
    }

    /// Starts `prog args` in the namespace with stdout and stderr appended to `log`.
    pub fn spawn_logged(&self, prog: &str, args: &[&str], log: &Path) -> Result<u32, HarnessError> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| HarnessError::file(log, e))?;
        let err = out.try_clone().map_err(|e| HarnessError::file(log, e))?;
        let mut cmd = self.cmd(prog);
        cmd.args(args).stdout(out).stderr(err);
        self.spawn(cmd)
    }

    /// Whether a registered process is still running.
    pub fn is_running(&self, pid: u32) -> bool {
        let mut children = self.lock_children();
        children
            .iter_mut()
            .find(|c| c.id() == pid)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops one registered process: SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps it.
    pub fn stop(&self, pid: u32) -> Result<ExitStatus, HarnessError> {
        let mut children = self.lock_children();
        let index =
            children
                .iter()
                .position(|c| c.id() == pid)
                .ok_or_else(|| HarnessError::Format {
                    what: "pid".to_string(),
                    detail: format!("{pid} was not started by namespace {}", self.name),
                })?;
        let mut child = children.swap_remove(index);
        drop(children);
        stop_child(&mut child)
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        // A panic while holding the lock leaves a usable list; cleanup must still run.
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// SIGTERM, a grace period, SIGKILL; always reaps.
fn stop_child(child: &mut Child) -> Result<ExitStatus, HarnessError> {
    if let Ok(Some(status)) = child.try_wait() {
        return Ok(status);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill() on a pid we spawned and have not reaped yet, so it is still ours.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(HarnessError::io("wait for a child", e)),
        }
    }
    child
        .kill()
        .map_err(|e| HarnessError::io("kill a child", e))?;
    child
        .wait()
        .map_err(|e| HarnessError::io("wait for a child", e))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let children = std::mem::take(&mut *self.lock_children());
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Anything else still inside (grandchildren of what we started) goes by pid too.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .stdin(Stdio::null())
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<libc::pid_t>().ok())
            {
                // SAFETY: kill() has no memory-safety preconditions; the pid is in our namespace.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---- Lab: server and client namespaces on one bridge ----

/// Distinguishes the labs of one test process.
static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`; panics with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces: `server` holds bridge `br0` (10.77.0.1/24) with port `p0`, whose
/// peer `vc` lives in `client` (no address). `add_peer` adds more namespaces on br0.
pub struct Lab {
    pub server: String,
    pub client: String,
    extra: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let n = LAB_SEQ.fetch_add(1, Ordering::SeqCst);
        let base = format!("bd{tag}{}x{n}", std::process::id());
        let lab = Lab {
            server: format!("{base}s"),
            client: format!("{base}c"),
            extra: Vec::new(),
            children: Vec::new(),
        };
        ip(&["netns", "add", &lab.server]);
        ip(&["netns", "add", &lab.client]);
        let s = lab.server.as_str();
        ip(&["-n", s, "link", "set", "lo", "up"]);
        ip(&["-n", &lab.client, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            s,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&["-n", s, "addr", "add", "10.77.0.1/24", "dev", "br0"]);
        ip(&["-n", s, "link", "set", "br0", "up"]);
        ip(&[
            "-n",
            s,
            "link",
            "add",
            "p0",
            "type",
            "veth",
            "peer",
            "name",
            "vc",
            "netns",
            &lab.client,
        ]);
        ip(&["-n", s, "link", "set", "p0", "master", "br0", "up"]);
        ip(&[
            "-n",
            &lab.client,
            "link",
            "set",
            "vc",
            "address",
            "52:54:00:12:34:56",
            "up",
        ]);
        lab
    }

    /// Another namespace on the bridge, its interface `vx` with `addr` (CIDR).
    pub fn add_peer(&mut self, suffix: &str, addr: &str) -> String {
        let name = format!("{}{suffix}", self.server);
        ip(&["netns", "add", &name]);
        let port = format!("p{}", self.extra.len() + 1);
        ip(&[
            "-n",
            &self.server,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "vx",
            "netns",
            &name,
        ]);
        ip(&[
            "-n",
            &self.server,
            "link",
            "set",
            &port,
            "master",
            "br0",
            "up",
        ]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&["-n", &name, "addr", "add", addr, "dev", "vx"]);
        ip(&["-n", &name, "link", "set", "vx", "up"]);
        self.extra.push(name.clone());
        name
    }

    /// Runs a command in a namespace in the background; killed by pid on drop.
    pub fn spawn(&mut self, ns: &str, cmd: &[&str]) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Like `spawn`, with stdout and stderr appended to `log`.
    pub fn spawn_logged(&mut self, ns: &str, cmd: &[&str], log: &std::path::Path) -> u32 {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn in netns");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// A tap device `tap0` on the server's bridge, for a QEMU client.
    pub fn add_tap(&self) {
        ip(&[
            "-n",
            &self.server,
            "tuntap",
            "add",
            "dev",
            "tap0",
            "mode",
            "tap",
        ]);
        ip(&[
            "-n",
            &self.server,
            "link",
            "set",
            "tap0",
            "master",
            "br0",
            "up",
        ]);
    }

    /// Runs a command in a namespace and waits.
    pub fn run(&self, ns: &str, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .output()
            .expect("run in netns")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.extra.iter().chain([&self.client, &self.server]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into a network namespace.
pub fn enter(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    // SAFETY: setns on a valid namespace fd affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}
