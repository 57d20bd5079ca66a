//! Where a transfer's bytes come from: a shared in-memory `Bytes` (cached file, virtual
//! file, netascii rendering) or a large file read at offsets, block by block.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

/// The contents of one transfer.
pub enum Source {
    /// Whole contents in memory, shared with other transfers.
    Memory(Bytes),
    /// A file too large for the cache, read with pread as blocks are sent.
    Stream {
        /// The open file (checked to be a regular file beneath the root).
        file: File,
        /// Size at open time; the transfer sends exactly this many bytes.
        len: u64,
    },
}

impl Source {
    /// Bytes the transfer sends in total.
    pub fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::Stream { len, .. } => *len,
        }
    }

    /// True for an empty file (one empty DATA block is still sent).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`; fails if the file shrank.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        match self {
            Source::Memory(b) => {
                let start = usize::try_from(offset).map_err(|_| out_of_range())?;
                let end = start.checked_add(out.len()).ok_or_else(out_of_range)?;
                let src = b.get(start..end).ok_or_else(out_of_range)?;
                out.copy_from_slice(src);
                Ok(())
            }
            // pread from the page cache: a short blocking call on a runtime thread, which
            // beats a hop to the blocking pool per packet; read-ahead keeps it warm.
            Source::Stream { file, .. } => file.read_exact_at(out, offset),
        }
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "block beyond end of data")
}

/// Renders bytes as netascii (RFC 764): LF becomes CR LF, a bare CR becomes CR NUL.
pub fn to_netascii(data: &[u8]) -> Bytes {
    let extra = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    let mut out = Vec::with_capacity(data.len() + extra);
    for &b in data {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            other => out.push(other),
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netascii_rendering() {
        assert_eq!(&to_netascii(b"a\nb\r\nc\rd")[..], b"a\r\nb\r\0\r\nc\r\0d");
        assert_eq!(&to_netascii(b"")[..], b"");
    }

    #[test]
    fn memory_reads_are_bounded() {
        let s = Source::Memory(Bytes::from_static(b"0123456789"));
        let mut buf = [0u8; 4];
        s.read_at(6, &mut buf).unwrap();
        assert_eq!(&buf, b"6789");
        assert!(s.read_at(7, &mut buf).is_err());
        assert!(s.read_at(u64::MAX, &mut buf).is_err());
        assert_eq!(s.len(), 10);
    }
}
