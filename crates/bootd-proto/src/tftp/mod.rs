//! TFTP without I/O: the request/ACK/ERROR wire views and writers (`packet`), option
//! negotiation (`options`, RFC 2347/2348/2349/7440), file-name normalisation (`path`) and
//! the listener's pure decision per datagram.

pub mod options;
pub mod packet;
pub mod path;

use options::Negotiated;
use packet::{ErrorCode, Mode, PacketError, Request, RequestKind};
use path::PathError;

/// Why a request or transfer failed; the `kind` label of `tftp_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file does not exist (or is not a regular file).
    NotFound,
    /// Path refused: escape attempt, symlink out, bad name, permission.
    AccessViolation,
    /// A write request (the server is read-only).
    WriteRefused,
    /// A request datagram that does not parse.
    Malformed,
    /// Refused: the total session limit was reached.
    SessionLimit,
    /// Refused: the per-client session limit was reached.
    ClientLimit,
    /// Ignored: a repeated request from a peer (address and port) whose session is still
    /// running; the session answers it by retransmitting.
    Duplicate,
    /// The client ended the transfer with an ERROR packet.
    ClientError,
    /// The client stopped answering (retries exhausted or ICMP unreachable).
    Timeout,
    /// The transfer ran past the session deadline.
    Deadline,
    /// Cut off by shutdown after the grace period.
    Shutdown,
    /// Not servable in the requested mode (netascii of a streamed file).
    Unsupported,
    /// Local socket or file failure.
    Io,
}

impl ErrorKind {
    /// The label value, in snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AccessViolation => "access_violation",
            ErrorKind::WriteRefused => "write_refused",
            ErrorKind::Malformed => "malformed",
            ErrorKind::SessionLimit => "session_limit",
            ErrorKind::ClientLimit => "client_limit",
            ErrorKind::Duplicate => "duplicate_request",
            ErrorKind::ClientError => "client_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Deadline => "deadline",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "io",
        }
    }
}

/// What the listener does with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Drop silently (stray ACK/DATA/ERROR sent to the listening port).
    Ignore,
    /// Answer with an ERROR packet and count the error.
    Refuse {
        /// Wire error code.
        code: ErrorCode,
        /// Wire error text; never contains a host path.
        text: &'static str,
        /// Metric label.
        kind: ErrorKind,
    },
    /// Start a read transfer.
    Read {
        /// Normalised path relative to the root.
        path: String,
        /// Transfer mode.
        mode: Mode,
        /// Negotiated options (tsize is filled in once the file is open).
        neg: Negotiated,
    },
}

/// Decides what to do with a datagram received on the listening port (pure).
pub fn decide(datagram: &[u8], max_blksize: u16, max_windowsize: u16) -> Decision {
    let req = match Request::parse(datagram) {
        Ok(r) => r,
        Err(PacketError::BadOpcode(_)) => return Decision::Ignore,
        Err(_) => {
            return Decision::Refuse {
                code: ErrorCode::IllegalOperation,
                text: "malformed request",
                kind: ErrorKind::Malformed,
            }
        }
    };
    if req.kind() == RequestKind::Write {
        return Decision::Refuse {
            code: ErrorCode::AccessViolation,
            text: "access violation",
            kind: ErrorKind::WriteRefused,
        };
    }
    let path = match path::normalize(req.filename()) {
        Ok(p) => p,
        Err(PathError::Empty) => {
            return Decision::Refuse {
                code: ErrorCode::FileNotFound,
                text: "file not found",
                kind: ErrorKind::NotFound,
            }
        }
        Err(_) => {
            return Decision::Refuse {
                code: ErrorCode::AccessViolation,
                text: "access violation",
                kind: ErrorKind::AccessViolation,
            }
        }
    };
    let neg = options::negotiate(&req, max_blksize, max_windowsize, 0);
    Decision::Read {
        path,
        mode: req.mode(),
        neg,
    }
}
