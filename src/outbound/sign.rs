//! Event signing: `X-Bootd-Signature: sha256=<hex HMAC-SHA256(secret, ts "." body)>` with
//! `X-Bootd-Timestamp: <unix seconds>`, and reading the shared secret from its file.

use super::error::OutboundError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-bootd-signature";
/// Header carrying the signed timestamp.
pub const TIMESTAMP_HEADER: &str = "x-bootd-timestamp";
/// Largest secret file bootd reads (a key, not a document).
const MAX_SECRET: u64 = 64 * 1024;

/// The HMAC key of an upstream.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A key from bytes (tests and callers that hold the key already).
    pub fn new(key: &[u8]) -> Secret {
        Secret(key.to_vec())
    }

    /// Reads a secret file: surrounding whitespace (the usual trailing newline) is not part
    /// of the key; an empty or oversized file is refused.
    pub fn load(path: &Path) -> Result<Secret, OutboundError> {
        let unreadable = |e: std::io::Error| {
            OutboundError::Secret(format!("cannot read secret_file {}: {e}", path.display()))
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if meta.len() > MAX_SECRET {
            return Err(OutboundError::Secret(format!(
                "secret_file {} is {} bytes, over the limit of {MAX_SECRET}",
                path.display(),
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        let key = bytes.trim_ascii();
        if key.is_empty() {
            return Err(OutboundError::Secret(format!(
                "secret_file {} is empty",
                path.display()
            )));
        }
        Ok(Secret(key.to_vec()))
    }

    /// The header value `sha256=<hex>` for a body sent at `timestamp` (unix seconds).
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("sha256={}", hex(&mac.finalize().into_bytes()))
    }

    /// Checks a signature in constant time (for receivers and tests).
    pub fn verify(&self, timestamp: u64, body: &[u8], header: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.sign(timestamp, body);
        expected.as_bytes().ct_eq(header.as_bytes()).into()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_vector() {
        // The signature is the HMAC of the joined string `ts.body`; the HMAC itself is
        // checked against RFC 4231 test case 2 (key "Jefe").
        let key = Secret::new(b"Jefe");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"1700000000.{\"seq\":1}");
        let raw = hex(&mac.finalize().into_bytes());
        assert_eq!(
            key.sign(1_700_000_000, b"{\"seq\":1}"),
            format!("sha256={raw}")
        );

        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_rejects_other_body_time_or_key() {
        let key = Secret::new(b"s3cret");
        let sig = key.sign(42, b"body");
        assert!(key.verify(42, b"body", &sig));
        assert!(!key.verify(43, b"body", &sig));
        assert!(!key.verify(42, b"bodx", &sig));
        assert!(!Secret::new(b"other").verify(42, b"body", &sig));
    }

    #[test]
    fn secret_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\n").expect("write");
        let s = Secret::load(&p).expect("load");
        assert_eq!(s.sign(1, b"x"), Secret::new(b"abc").sign(1, b"x"));
        std::fs::write(&p, " \n").expect("write");
        assert!(Secret::load(&p).unwrap_err().to_string().contains("empty"));
        let missing = dir.path().join("nope");
        assert!(Secret::load(&missing)
            .unwrap_err()
            .to_string()
            .starts_with("cannot read secret_file"));
    }
}
