//! Request paths: normalisation of what clients send (backslashes, leading `/`) and
//! opening strictly beneath the root (openat2 RESOLVE_BENEATH, else a no-follow walk).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

pub use bootd_proto::tftp::path::{normalize, PathError, MAX_COMPONENT_LEN, MAX_PATH_LEN};

/// Why a normalised path could not be opened as a regular file beneath the root.
#[derive(Debug, Error)]
pub enum OpenError {
    /// No such file (or a directory, device or other non-regular file).
    #[error("file not found")]
    NotFound,
    /// Resolution would leave the root (symlink out, absolute symlink) or permission denied.
    #[error("access violation")]
    Denied,
    /// Any other I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Set once the kernel told us it has no openat2, so later opens go straight to the walk.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// Opens `rel` (output of [`normalize`]) read-only beneath `root`; regular files only.
pub fn open_beneath(root: &Path, rel: &str) -> Result<File, OpenError> {
    let root_fd = open_root(root)?;
    let file = if OPENAT2_MISSING.load(Ordering::Relaxed) {
        open_walk(&root_fd, rel)?
    } else {
        match open_openat2(&root_fd, rel) {
            Err(OpenError::Io(e)) if is_openat2_unavailable(&e) => {
                OPENAT2_MISSING.store(true, Ordering::Relaxed);
                open_walk(&root_fd, rel)?
            }
            other => other?,
        }
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotFound);
    }
    Ok(file)
}

fn is_openat2_unavailable(e: &io::Error) -> bool {
    // ENOSYS: kernel < 5.6; EPERM can come from a seccomp filter that does not know it.
    matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM))
}

fn open_root(root: &Path) -> Result<OwnedFd, OpenError> {
    let c = CString::new(root.as_os_str().as_bytes()).map_err(|_| OpenError::NotFound)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    owned(fd).map_err(map_errno)
}

/// `struct open_how` of linux/openat2.h (libc's is non_exhaustive, so not constructible).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Flags for the final open: non-blocking so a FIFO planted in the root cannot hang us.
const FILE_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

fn open_openat2(root: &OwnedFd, rel: &str) -> Result<File, OpenError> {
    let c = CString::new(rel).map_err(|_| OpenError::NotFound)?;
    let how = OpenHow {
        flags: FILE_FLAGS as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid dirfd, NUL-terminated path and a correctly sized open_how that all
    // outlive the call; the returned fd (if any) is owned by us alone.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = RawFd::try_from(ret).unwrap_or(-1);
    if ret < 0 || fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => OpenError::Io(e),
            _ => map_errno(e),
        });
    }
    owned(fd).map(File::from).map_err(map_errno)
}

/// Fallback for kernels without openat2: one component at a time, never following a
/// symlink (so every symlink is refused, inside or out), directories via O_PATH.
pub(crate) fn open_walk(root: &OwnedFd, rel: &str) -> Result<File, OpenError> {
    let mut components = rel.split('/').peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(component) = components.next() {
        let c = CString::new(component).map_err(|_| OpenError::NotFound)?;
        let parent = dir.as_ref().unwrap_or(root).as_raw_fd();
        let last = components.peek().is_none();
        let flags = if last {
            FILE_FLAGS | libc::O_NOFOLLOW
        } else {
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC
        };
        // SAFETY: valid dirfd and NUL-terminated name for the duration of the call.
        let fd = unsafe { libc::openat(parent, c.as_ptr(), flags) };
        let fd = owned(fd).map_err(map_errno)?;
        if last {
            return Ok(File::from(fd));
        }
        dir = Some(fd);
    }
    Err(OpenError::NotFound)
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh descriptor just returned by the kernel, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn map_errno(e: io::Error) -> OpenError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG) => OpenError::NotFound,
        // EXDEV: RESOLVE_BENEATH caught an escape; ELOOP: a symlink under O_NOFOLLOW.
        Some(libc::EXDEV) | Some(libc::ELOOP) | Some(libc::EACCES) | Some(libc::EPERM) => {
            OpenError::Denied
        }
        // ENXIO: a socket or a FIFO without writer opened non-blocking.
        Some(libc::ENXIO) | Some(libc::EISDIR) => OpenError::NotFound,
        _ => OpenError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn normalizes_client_spellings() {
        assert_eq!(normalize(b"pxelinux.0").unwrap(), "pxelinux.0");
        assert_eq!(normalize(b"/grub/grub.cfg").unwrap(), "grub/grub.cfg");
        assert_eq!(
            normalize(b"\\boot\\x64\\wdsnbp.com").unwrap(),
            "boot/x64/wdsnbp.com"
        );
        assert_eq!(normalize(b"//a/./b//c").unwrap(), "a/b/c");
        assert_eq!(normalize(b"%2e%2e/passwd").unwrap(), "%2e%2e/passwd");
        assert_eq!(normalize(b"..foo/x..").unwrap(), "..foo/x..");
    }

    #[test]
    fn refuses_escapes_and_junk() {
        for bad in [
            &b".."[..],
            b"../etc/passwd",
            b"a/../../b",
            b"/../x",
            b"..\\..\\x",
            b"a\\..",
        ] {
            assert_eq!(normalize(bad), Err(PathError::Parent), "{bad:?}");
        }
        assert_eq!(normalize(b"/"), Err(PathError::Empty));
        assert_eq!(normalize(b"./."), Err(PathError::Empty));
        assert_eq!(normalize(b"a\0b"), Err(PathError::ControlChar));
        assert_eq!(normalize(b"a\nb"), Err(PathError::ControlChar));
        assert_eq!(normalize(&[0xff, 0xfe]), Err(PathError::NotUtf8));
        assert_eq!(
            normalize(&[b'a'; MAX_COMPONENT_LEN + 1]),
            Err(PathError::ComponentTooLong)
        );
        assert!(normalize(&[b'a'; MAX_COMPONENT_LEN]).is_ok());
        let long: Vec<u8> = b"abc/".repeat(MAX_PATH_LEN / 4 + 1);
        assert_eq!(normalize(&long), Err(PathError::TooLong));
    }

    fn read_all(mut f: File) -> String {
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn opens_beneath_and_refuses_symlinks_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "SECRET").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/file"), "inside").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("abs_out")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../etc/passwd", r.join("rel_out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("dir_out")).unwrap();
        std::os::unix::fs::symlink("sub/file", r.join("rel_in")).unwrap();

        assert_eq!(read_all(open_beneath(r, "sub/file").unwrap()), "inside");
        assert_eq!(read_all(open_beneath(r, "rel_in").unwrap()), "inside");
        assert!(matches!(
            open_beneath(r, "missing"),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(open_beneath(r, "sub"), Err(OpenError::NotFound)));
        for out in ["abs_out", "rel_out", "dir_out/secret"] {
            assert!(
                matches!(open_beneath(r, out), Err(OpenError::Denied)),
                "{out} must be refused"
            );
        }

        // The fallback walk refuses every symlink, and still opens plain files.
        let root_fd = open_root(r).unwrap();
        assert_eq!(read_all(open_walk(&root_fd, "sub/file").unwrap()), "inside");
        for out in ["abs_out", "rel_out", "dir_out/secret", "rel_in"] {
            assert!(open_walk(&root_fd, out).is_err(), "{out} must be refused");
        }
    }

    #[test]
    fn fifo_does_not_hang() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(open_beneath(root.path(), "fifo").is_err());
    }
}
