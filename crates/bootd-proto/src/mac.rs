//! `MacAddr`: the identity of a machine, parsed once at the edge from any common
//! spelling (colons, hyphens, Cisco dots, bare hex, either case) and printed canonically.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address. Displays as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {input:?}: expected six hex octets such as 52:54:00:12:34:56")]
pub struct MacParseError {
    /// The offending text (truncated to 64 characters).
    pub input: String,
}

impl MacAddr {
    /// The address from the first six bytes of a hardware-address field, if long enough.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        let six: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(six))
    }

    /// The octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// `aa-bb-cc-dd-ee-ff`, the spelling file names and some firmware use.
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError {
            input: s.chars().take(64).collect(),
        };
        let trimmed = s.trim();
        // Accept separators ':', '-', '.', but only one kind, and bare 12-digit hex.
        let seps: Vec<char> = trimmed.chars().filter(|c| !c.is_ascii_hexdigit()).collect();
        if let Some(first) = seps.first() {
            if !matches!(first, ':' | '-' | '.') || seps.iter().any(|c| c != first) {
                return Err(err());
            }
            let groups: Vec<&str> = trimmed.split(*first).collect();
            let ok_shape = match groups.len() {
                6 => groups.iter().all(|g| g.len() == 2),
                3 => groups.iter().all(|g| g.len() == 4),
                _ => false,
            };
            if !ok_shape {
                return Err(err());
            }
        } else if trimmed.len() != 12 {
            return Err(err());
        }
        let hex: Vec<u8> = trimmed.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        if hex.len() != 12 {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| err())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| err())?;
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_spellings() {
        let want = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0xab]);
        for s in [
            "52:54:00:12:34:ab",
            "52:54:00:12:34:AB",
            "52-54-00-12-34-ab",
            "5254.0012.34ab",
            "5254001234AB",
        ] {
            assert_eq!(s.parse::<MacAddr>(), Ok(want), "{s}");
        }
        assert_eq!(want.to_string(), "52:54:00:12:34:ab");
        assert_eq!(want.hyphenated(), "52-54-00-12-34-ab");
    }

    #[test]
    fn refuses_malformed() {
        for s in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:ab:cd",
            "52:54-00:12:34:ab",
            "zz:54:00:12:34:ab",
            "5:254:00:12:34:ab",
            "5254001234a",
            "../etc/passwd",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
    }
}
