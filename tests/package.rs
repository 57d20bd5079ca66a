//! The Debian package end to end: image/build-deb builds it from the test build, apt
//! installs it into a fresh Debian 12 root (debootstrap, cached), bootd runs there and
//! answers /healthz; removal and purge clean up. A second test installs it over the
//! host's own root (an overlay, offline) where systemd's /usr/bin/bootctl must survive.
//!
//! The Debian 12 root: `debootstrap --variant=minbase bookworm` from the mirror in the
//! host's apt sources, then `apt-get install --download-only ipxe systemd` in it, packed
//! into $BOOTD_TEST_DEBIAN_CACHE (default /var/cache/bootd-tests)/bookworm-minbase.tar.zst.
//! Made once (~3 min with network); every later run unpacks it (~5 s) and installs
//! offline, inside a network namespace. Without the cache and without network the fresh
//! root test installs into the overlay root instead and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::bin;
use common::{need_root, wait_for, Netns};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the Debian root tarball is cached.
const DEFAULT_CACHE: &str = "/var/cache/bootd-tests";
/// The cached root.
const ROOT_TARBALL: &str = "bookworm-minbase.tar.zst";
/// Used when the host's apt sources name no bookworm mirror.
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";
/// How long the mirror gets to answer the reachability probe.
const MIRROR_PROBE_SECS: &str = "10";
/// How long bootd gets to answer /healthz in the root.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports of the test config inside the root's network namespace.
const HTTP_PORT: u16 = 18080;
const TFTP_PORT: u16 = 16969;

/// Runs a command that must succeed; its stdout.
fn sh(cmd: &mut Command) -> String {
    common::util::run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// The package, built once per test binary from the binaries cargo built for the tests.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin_dir = bin("bootd").parent().expect("binary dir").to_path_buf();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bootd-deb");
        let started = Instant::now();
        let stdout = sh(Command::new(repo.join("image/build-deb"))
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--out")
            .arg(&out)
            .arg("--fast"));
        let path = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
        assert!(path.is_file(), "build-deb printed {stdout}");
        println!("built {} in {:?}", path.display(), started.elapsed());
        path
    })
}

/// The bookworm mirror of the host's apt sources (deb822 or one-line style).
fn mirror() -> String {
    if let Ok(m) = std::env::var("BOOTD_TEST_DEBIAN_MIRROR") {
        return m;
    }
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            if e.path()
                .extension()
                .is_some_and(|x| x == "sources" || x == "list")
            {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    texts.push(t);
                }
            }
        }
    }
    for t in &texts {
        // deb822: a stanza with `Suites: bookworm ...` and `URIs: ...`.
        for stanza in t.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let suites = field("Suites:").unwrap_or_default();
            if suites.split_whitespace().any(|s| s == "bookworm") {
                if let Some(uri) =
                    field("URIs:").and_then(|u| u.split_whitespace().next().map(String::from))
                {
                    return uri;
                }
            }
        }
        // One-line: `deb [opts] URI bookworm main`.
        for l in t.lines() {
            let words: Vec<&str> = l
                .split_whitespace()
                .filter(|w| !w.starts_with('['))
                .collect();
            if let [kind, uri, suite, ..] = words.as_slice() {
                if *kind == "deb" && *suite == "bookworm" {
                    return uri.to_string();
                }
            }
        }
    }
    FALLBACK_MIRROR.to_string()
}

fn reachable(mirror: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "--max-time", MIRROR_PROBE_SECS])
        .arg(format!("{mirror}/dists/bookworm/Release"))
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A directory tree that is a root for chroot, with /proc mounted while it lives; Drop
/// unmounts everything first and deletes the tree only when nothing is mounted in it.
struct Root {
    dir: PathBuf,
    /// Mount points inside, innermost last.
    mounts: Vec<PathBuf>,
    /// The overlay's upper and work dirs live beside `dir` under this parent.
    top: PathBuf,
}

impl Root {
    fn new(kind: &str) -> Root {
        let top = std::env::temp_dir().join(
            format!(
                "bootd-root-{kind}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            )
            .replace(['(', ')'], ""),
        );
        let _ = std::fs::remove_dir_all(&top);
        let dir = top.join("root");
        std::fs::create_dir_all(&dir).expect("root dir");
        Root {
            dir,
            mounts: Vec::new(),
            top,
        }
    }

    fn mount(&mut self, args: &[&str], at: &Path) {
        sh(Command::new("mount").args(args).arg(at));
        self.mounts.push(at.to_path_buf());
    }

    fn mount_proc(&mut self) {
        let proc_dir = self.dir.join("proc");
        std::fs::create_dir_all(&proc_dir).expect("proc dir");
        self.mount(&["-t", "proc", "proc"], &proc_dir);
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// `chroot ROOT args...` in `ns` (or in the host's namespace).
    fn chroot(&self, ns: Option<&Netns>, args: &[&str]) -> Command {
        self.chroot_as(ns, None, args)
    }

    /// `chroot [--userspec=UID:GID] ROOT args...`.
    fn chroot_as(&self, ns: Option<&Netns>, user: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = match ns {
            Some(ns) => ns.cmd("chroot"),
            None => Command::new("chroot"),
        };
        if let Some(u) = user {
            cmd.arg(format!("--userspec={u}"));
        }
        cmd.arg(&self.dir)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        cmd
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let mut clean = true;
        while let Some(m) = self.mounts.pop() {
            let ok = Command::new("umount")
                .arg(&m)
                .status()
                .is_ok_and(|s| s.success())
                || Command::new("umount")
                    .arg("-l")
                    .arg(&m)
                    .status()
                    .is_ok_and(|s| s.success());
            clean &= ok;
        }
        // Never delete through a mount point: that would reach the host.
        if clean {
            let _ = std::fs::remove_dir_all(&self.top);
        } else {
            eprintln!(
                "left {} in place: a mount inside would not go",
                self.top.display()
            );
        }
    }
}

/// A fresh Debian 12 minbase root from the cache, creating the cache if needed.
/// None when there is no cache and the mirror cannot be reached.
fn debian_root() -> Option<Root> {
    let cache = PathBuf::from(
        std::env::var("BOOTD_TEST_DEBIAN_CACHE").unwrap_or_else(|_| DEFAULT_CACHE.into()),
    );
    let tarball = cache.join(ROOT_TARBALL);
    if !tarball.is_file() {
        let mirror = mirror();
        if !reachable(&mirror) {
            println!(
                "no cached root at {} and {mirror} unreachable",
                tarball.display()
            );
            return None;
        }
        make_cache(&tarball, &mirror);
    }
    let mut root = Root::new("debian");
    let started = Instant::now();
    sh(Command::new("tar")
        .arg("--zstd")
        .arg("-xpf")
        .arg(&tarball)
        .arg("-C")
        .arg(&root.dir));
    println!("unpacked {} in {:?}", tarball.display(), started.elapsed());
    root.mount_proc();
    Some(root)
}

/// debootstrap + the packages bootd's installation pulls, packed into `tarball`.
fn make_cache(tarball: &Path, mirror: &str) {
    let started = Instant::now();
    let mut root = Root::new("cache");
    sh(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&root.dir)
        .arg(mirror));
    root.mount_proc();
    // The lists and the .debs that `apt-get install ./bootd.deb` needs, so installs from
    // the cache need no network.
    sh(&mut root.chroot(None, &["apt-get", "update", "-q"]));
    sh(&mut root.chroot(
        None,
        &[
            "apt-get",
            "install",
            "-y",
            "-q",
            "--download-only",
            "ipxe",
            "systemd",
        ],
    ));
    while let Some(m) = root.mounts.pop() {
        sh(Command::new("umount").arg(&m));
    }
    if let Some(dir) = tarball.parent() {
        std::fs::create_dir_all(dir).expect("cache dir");
    }
    let partial = tarball.with_extension("partial");
    sh(Command::new("tar")
        .arg("--zstd")
        .arg("-cpf")
        .arg(&partial)
        .arg("-C")
        .arg(&root.dir)
        .arg("."));
    std::fs::rename(&partial, tarball).expect("publish the cached root");
    println!(
        "made the Debian 12 root cache {} from {mirror} in {:?} (one-time cost)",
        tarball.display(),
        started.elapsed()
    );
}

/// The host's root seen through an overlay: writes go to a scratch upper dir.
fn overlay_root() -> Root {
    let mut root = Root::new("overlay");
    let upper = root.top.join("upper");
    let work = root.top.join("work");
    std::fs::create_dir_all(&upper).expect("upper");
    std::fs::create_dir_all(&work).expect("work");
    let opts = format!(
        "lowerdir=/,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let dir = root.dir.clone();
    root.mount(&["-t", "overlay", "overlay", "-o", &opts], &dir);
    root.mount_proc();
    root
}

/// uid:gid of a user in the root's /etc/passwd.
fn ids(root: &Root, user: &str) -> String {
    let passwd = std::fs::read_to_string(root.path("/etc/passwd")).expect("passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            match f.as_slice() {
                [name, _, uid, gid, ..] if *name == user => Some(format!("{uid}:{gid}")),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("no user {user} in the root"))
}

/// Installs the package into `root` offline (inside a netns) and checks what it did.
fn install(root: &Root, ns: &Netns) {
    std::fs::copy(deb(), root.path("/tmp/bootd.deb")).expect("copy the package in");
    let started = Instant::now();
    let out = sh(&mut root.chroot(
        Some(ns),
        &["apt-get", "install", "-y", "-q", "/tmp/bootd.deb"],
    ));
    println!(
        "apt-get install ./bootd.deb: {:?}\n{out}",
        started.elapsed()
    );
    let status = sh(&mut root.chroot(
        None,
        &["dpkg-query", "-W", "-f=${Status} ${Version}", "bootd"],
    ));
    assert!(status.starts_with("install ok installed"), "{status}");
    sh(&mut root.chroot(None, &["dpkg-query", "-W", "ipxe"]));

    // Files where the package promised them.
    for f in [
        "/usr/sbin/bootd",
        "/usr/lib/bootd/bootctl",
        "/lib/systemd/system/bootd.service",
        "/lib/systemd/system/bootd-preflight.service",
        "/usr/lib/sysusers.d/bootd.conf",
        "/usr/lib/tmpfiles.d/bootd.conf",
        "/etc/bootd/bootd.toml",
        "/etc/bootd/templates/ubuntu.ipxe",
        "/usr/share/doc/bootd/README.md",
    ] {
        assert!(root.path(f).exists(), "{f} missing");
    }
    let link = std::fs::read_link(root.path("/usr/bin/bootd-ctl")).expect("bootd-ctl symlink");
    assert_eq!(link, Path::new("../lib/bootd/bootctl"));
    let conffiles = sh(&mut root.chroot(None, &["dpkg-query", "-W", "-f=${Conffiles}", "bootd"]));
    assert!(conffiles.contains("/etc/bootd/bootd.toml"), "{conffiles}");
    // The user, its state dir, the service enabled (not started: no systemd runs here).
    let bootd = ids(root, "bootd");
    let meta = std::fs::metadata(root.path("/var/lib/bootd")).expect("state dir");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(format!("{}:{}", meta.uid(), meta.gid()), bootd);
    assert!(root
        .path("/etc/systemd/system/multi-user.target.wants/bootd.service")
        .symlink_metadata()
        .is_ok());
    // The reporter machines fetch from /assets/agent/, when the repository has it.
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("boot-assets/agent");
    if let Ok(dir) = std::fs::read_dir(&agent) {
        for e in dir.flatten() {
            let name = e.file_name();
            let copy = root.path("/var/lib/bootd/assets/agent").join(&name);
            assert_eq!(
                std::fs::read(&copy).ok(),
                std::fs::read(e.path()).ok(),
                "{} not copied into assets/agent",
                name.to_string_lossy()
            );
        }
    }
    // Debian's iPXE binaries, as regular files (TFTP and HTTP follow no symlink out).
    for f in ["undionly.kpxe", "ipxe.efi", "snponly.efi"] {
        let p = root.path(&format!("/var/lib/bootd/assets/{f}"));
        let m = p.symlink_metadata().unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(m.file_type().is_file(), "{f} is not a regular file");
    }
}

/// Reinstalling (what an upgrade runs) restores a deleted copy and keeps a file the
/// admin put in place of one.
fn reinstall_keeps_admin_files(root: &Root, ns: &Netns) {
    let assets = root.path("/var/lib/bootd/assets");
    std::fs::remove_file(assets.join("undionly.kpxe")).expect("rm");
    let admin = b"the admin's own snponly.efi".to_vec();
    std::fs::write(assets.join("snponly.efi"), &admin).expect("write");
    sh(&mut root.chroot(Some(ns), &["dpkg", "-i", "/tmp/bootd.deb"]));
    assert!(
        assets.join("undionly.kpxe").is_file(),
        "deleted copy restored"
    );
    assert_eq!(
        std::fs::read(assets.join("snponly.efi")).expect("read"),
        admin
    );
    std::fs::copy(
        root.path("/usr/lib/ipxe/snponly.efi"),
        assets.join("snponly.efi"),
    )
    .expect("put Debian's back");
}

/// Runs the packaged preflight, then bootd on a loopback test config as user bootd,
/// and checks /healthz, an asset over HTTP and TFTP, and bootd-ctl.
fn run_in(root: &Root, ns: &Netns) {
    // The packaged config as shipped (ProxyDHCP on every interface: only br0 and tap0
    // exist in this namespace), as root like ExecStartPre with its capabilities.
    let out = root
        .chroot(
            Some(ns),
            &[
                "/usr/sbin/bootd",
                "preflight",
                "--config",
                "/etc/bootd/bootd.toml",
            ],
        )
        .output()
        .expect("preflight");
    let table = String::from_utf8_lossy(&out.stdout);
    println!("packaged config preflight:\n{table}");
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.contains("iPXE PXE boot program"), "{table}");

    let config = format!(
        "[server]\nstate_dir = \"/var/lib/bootd\"\nassets_dir = \"/var/lib/bootd/assets\"\n\
         templates_dir = \"/etc/bootd/templates\"\nhttp_listen = \"127.0.0.1:{HTTP_PORT}\"\n\
         control_socket = \"/var/lib/bootd/control.sock\"\ncontrol_group = \"bootd\"\n\
         [dhcp]\nmode = \"off\"\n[tftp]\nlisten = \"127.0.0.1:{TFTP_PORT}\"\n"
    );
    std::fs::write(root.path("/etc/bootd/test.toml"), config).expect("test config");
    let user = ids(root, "bootd");
    let log = root.top.join("bootd.log");
    let pid = ns
        .spawn_logged(
            "chroot",
            &[
                &format!("--userspec={user}"),
                &root.dir.display().to_string(),
                "/usr/sbin/bootd",
                "run",
                "--config",
                "/etc/bootd/test.toml",
            ],
            &log,
        )
        .expect("start bootd in the root");
    let url = |p: &str| format!("http://127.0.0.1:{HTTP_PORT}{p}");
    let curl = |args: &[&str]| -> String {
        let out = ns
            .cmd("curl")
            .args(["-s", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let took = wait_for(START_TIMEOUT, "bootd /healthz in the root", || {
        curl(&[&url("/healthz")]).contains("ok")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", common::util::read_lossy(&log)));
    println!("bootd in the root answered /healthz after {took:?}");
    let kpxe = std::fs::metadata(root.path("/var/lib/bootd/assets/undionly.kpxe"))
        .expect("kpxe")
        .len();
    let http = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &url("/assets/undionly.kpxe"),
    ]);
    assert_eq!(http, format!("200 {kpxe}"));
    if root
        .path("/var/lib/bootd/assets/agent/bootd-report")
        .exists()
    {
        let agent = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url("/assets/agent/bootd-report"),
        ]);
        assert_eq!(agent, "200");
    }
    let tftp = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("tftp://127.0.0.1:{TFTP_PORT}/undionly.kpxe"),
    ]);
    assert_eq!(tftp, kpxe.to_string());
    let status = sh(&mut root.chroot_as(
        Some(ns),
        Some(&user),
        &[
            "/usr/bin/bootd-ctl",
            "--socket",
            "/var/lib/bootd/control.sock",
            "status",
        ],
    ));
    assert!(status.contains("bootd"), "{status}");
    ns.stop(pid).expect("stop bootd");
}

/// Removal disables the service; purge removes the state dir.
fn remove(root: &Root, ns: &Netns) {
    sh(&mut root.chroot(Some(ns), &["apt-get", "remove", "-y", "-q", "bootd"]));
    assert!(!root.path("/usr/sbin/bootd").exists());
    assert!(root
        .path("/etc/systemd/system/multi-user.target.wants/bootd.service")
        .symlink_metadata()
        .is_err());
    assert!(
        root.path("/etc/bootd/bootd.toml").exists(),
        "conffiles stay until purge"
    );
    sh(&mut root.chroot(Some(ns), &["dpkg", "--purge", "bootd"]));
    assert!(!root.path("/etc/bootd/bootd.toml").exists());
    assert!(!root.path("/var/lib/bootd").exists());
}

#[test]
fn deb_installs_into_fresh_debian12_root_and_runs() {
    need_root();
    let ns = Netns::new().expect("netns");
    let root = match debian_root() {
        Some(r) => r,
        None => {
            println!("installing into the overlay root instead (offline, no cache)");
            overlay_root()
        }
    };
    install(&root, &ns);
    // Only systemd-boot may own /usr/bin/bootctl; the package never ships it.
    if root.path("/usr/bin/bootctl").exists() {
        let owner = sh(&mut root.chroot(None, &["dpkg", "-S", "/usr/bin/bootctl"]));
        assert!(owner.starts_with("systemd"), "{owner}");
    }
    run_in(&root, &ns);
    remove(&root, &ns);
}

#[test]
fn deb_installs_over_the_host_root_beside_systemd_bootctl() {
    need_root();
    let ns = Netns::new().expect("netns");
    let root = overlay_root();
    // systemd-boot's bootctl, or a stand-in where the host has none: it must survive.
    let bootctl = root.path("/usr/bin/bootctl");
    if !bootctl.exists() {
        std::fs::write(&bootctl, "#!/bin/sh\necho stand-in for systemd's bootctl\n")
            .expect("stand-in bootctl");
    }
    let before = std::fs::read(&bootctl).ok();
    install(&root, &ns);
    let after = std::fs::read(&bootctl).ok();
    assert_eq!(
        before, after,
        "systemd's /usr/bin/bootctl must stay untouched"
    );
    reinstall_keeps_admin_files(&root, &ns);
    run_in(&root, &ns);
    remove(&root, &ns);
}
