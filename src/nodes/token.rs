//! Per-node callback tokens: derived from a random key in the state dir, the node's MAC
//! and a generation (bumped on reprovision), so the database only ever holds their hashes.

use crate::mac::MacAddr;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use subtle::ConstantTimeEq;

/// The key file inside `server.state_dir`.
pub const KEY_FILE: &str = "token.key";

/// The secret behind every node token.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Reads `state_dir/token.key`, creating it (mode 0600, 32 random bytes) on first start.
    pub fn load_or_create(state_dir: &Path) -> std::io::Result<TokenKey> {
        let path = state_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} must hold exactly 32 bytes", path.display()),
                    )
                })?;
                Ok(TokenKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(std::io::Error::other)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(&key)?;
                f.sync_all()?;
                Ok(TokenKey(key))
            }
            Err(e) => Err(e),
        }
    }

    /// The token a node's scripts are rendered with for generation `gen`.
    pub fn token(&self, mac: MacAddr, gen: u32) -> String {
        let mut mac_fn = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC takes keys of any length; this arm cannot be reached.
            Err(_) => return String::new(),
        };
        mac_fn.update(&mac.octets());
        mac_fn.update(&gen.to_be_bytes());
        hex(&mac_fn.finalize().into_bytes()[..20])
    }

    /// Whether `presented` is the current token of `mac`, in constant time.
    pub fn verify(&self, mac: MacAddr, gen: u32, presented: &str) -> bool {
        let want = Sha256::digest(self.token(mac, gen).as_bytes());
        let got = Sha256::digest(presented.as_bytes());
        bool::from(want.ct_eq(&got))
    }
}

/// The hash stored for a token (the token itself is never stored).
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_by_node_and_generation_and_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = TokenKey::load_or_create(dir.path()).expect("key");
        let again = TokenKey::load_or_create(dir.path()).expect("key again");
        let a = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let b = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
        let t = key.token(a, 0);
        assert_eq!(t, again.token(a, 0));
        assert_ne!(t, key.token(b, 0));
        assert_ne!(t, key.token(a, 1));
        assert!(key.verify(a, 0, &t));
        assert!(!key.verify(a, 1, &t));
        assert!(!key.verify(b, 0, &t));
        assert!(!key.verify(a, 0, ""));
        assert_eq!(hash(&t).len(), 64);
    }
}
