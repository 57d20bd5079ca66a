//! The one error type of the test harness: every failure names the command, file or
//! condition involved so a red test says what broke without rerunning it.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a harness step failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A program could not be started at all (missing binary, bad path).
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: io::Error,
    },
    /// A program ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Some other I/O failure (sockets, process control).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A condition did not become true in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// How long we waited.
        timeout: Duration,
        /// The awaited condition, with any diagnostics.
        what: String,
    },
    /// QEMU's KVM accelerator failed inside the guest (nested virtualisation quirks).
    #[error("KVM failed inside QEMU ({detail}); rerun with BOOTD_TEST_ACCEL=tcg")]
    Kvm {
        /// The first line of QEMU's complaint.
        detail: String,
    },
    /// A file or tool output had an unexpected shape.
    #[error("unexpected {what}: {detail}")]
    Format {
        /// What was being parsed.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

impl HarnessError {
    /// An I/O error with a description of the step.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }

    /// A file error for `path`.
    pub fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        HarnessError::File {
            path: path.into(),
            source,
        }
    }
}
