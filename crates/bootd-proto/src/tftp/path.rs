//! Client file names → clean relative paths (`\\` → `/`, no `..`, no control bytes),
//! before anything touches the file system.

use thiserror::Error;

/// Longest accepted path component, in bytes (NAME_MAX).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Longest accepted request path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Why a requested name is refused before touching the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    /// Nothing left after normalisation.
    #[error("empty path")]
    Empty,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// A component longer than [`MAX_COMPONENT_LEN`].
    #[error("path component longer than {MAX_COMPONENT_LEN} bytes")]
    ComponentTooLong,
    /// A `..` component: refused outright rather than resolved.
    #[error("parent directory component")]
    Parent,
    /// A NUL or other control byte.
    #[error("control character in path")]
    ControlChar,
    /// Not valid UTF-8.
    #[error("path is not UTF-8")]
    NotUtf8,
}

/// Turns a client's filename into a clean relative path: `\` → `/`, empty and `.`
/// components and leading `/` dropped; `..`, control bytes and over-long names refused.
pub fn normalize(raw: &[u8]) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ControlChar);
    }
    let text = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
    let mut out = String::with_capacity(text.len());
    for component in text.split(['/', '\\']) {
        match component {
            "" | "." => continue,
            ".." => return Err(PathError::Parent),
            c if c.len() > MAX_COMPONENT_LEN => return Err(PathError::ComponentTooLong),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(out)
}
