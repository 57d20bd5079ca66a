//! Small test utilities: root check, polling with a deadline, where binaries are,
//! running a command to completion with its output captured.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::HarnessError;

/// How often `wait_for` re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How much of a failing command's stderr goes into the error message.
const STDERR_TAIL_BYTES: usize = 2000;

/// Fails the calling test (it does not skip) unless it runs as root.
pub fn need_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test needs root (network namespaces, tap devices, QEMU, tcpdump); \
         effective uid is {euid}: run it as root, e.g. `sudo -E cargo test`"
    );
}

/// Polls `condition` until it holds; returns how long that took, or a timeout error.
pub fn wait_for<F>(
    timeout: Duration,
    what: &str,
    mut condition: F,
) -> Result<Duration, HarnessError>
where
    F: FnMut() -> bool,
{
    let start = Instant::now();
    loop {
        if condition() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(HarnessError::Timeout {
                timeout,
                what: what.to_string(),
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `condition` every 100 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The crate root (where `tests/guest` and `tests/data` live).
pub fn harness_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A binary of another workspace package (e.g. `bootd-storm`), built into the same
/// `target/<profile>/` directory as this test: `CARGO_BIN_EXE_*` only names binaries of
/// the package under test. Root-level `cargo build`/`cargo test` build every default
/// member; panics with the build command when the binary is missing.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps/", exe.display()));
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build -p {name}` (same profile)",
        path.display()
    );
    path
}

/// Describes a command for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with no stdin; returns stdout, or an error with stderr's tail.
pub fn run(cmd: &mut Command) -> Result<String, HarnessError> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| HarnessError::Spawn {
            cmd: line.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            cmd: line,
            status: out.status,
            stderr: tail(&String::from_utf8_lossy(&out.stderr), STDERR_TAIL_BYTES),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `max` bytes of `text` (cut at a character boundary).
pub fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..).unwrap_or_default().trim().to_string()
}

/// A file's text, or empty when it does not exist yet (logs of starting processes).
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
