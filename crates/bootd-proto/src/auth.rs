//! Credentials in request headers: `Authorization: Bearer <token>` and the session
//! cookie. Pure parsing of untrusted bytes (fuzzed by `fuzz_targets/auth_header.rs`).

/// Longest credential bootd looks at; anything longer is not a token of ours.
pub const MAX_TOKEN_LEN: usize = 256;

/// The prefix of API tokens (people and systems), telling them apart from node tokens.
pub const API_TOKEN_PREFIX: &str = "bootd_";

/// Length of a session id: 32 random bytes in lowercase hex.
pub const SESSION_ID_LEN: usize = 64;

/// Whether `value` has the form of a session id bootd issues (64 lowercase hex digits);
/// anything else in the session cookie is not looked up.
pub fn is_session_id(value: &str) -> bool {
    value.len() == SESSION_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `token` is made only of the characters bootd's tokens use (letters, digits,
/// `_`, `-`, `.`) and is not over [`MAX_TOKEN_LEN`].
pub fn plausible_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The token of an `Authorization` header value: scheme `Bearer` (any case), one or
/// more spaces, then a plausible token; None for anything else.
pub fn bearer(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    plausible_token(token).then_some(token)
}

/// The value of cookie `name` in a `Cookie` header value (`a=1; b=2`), if plausible as
/// a token.
pub fn cookie<'a>(value: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(value).ok()?;
    text.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim() == name && plausible_token(v)).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(b"Bearer abc123"), Some("abc123"));
        assert_eq!(bearer(b"bearer   bootd_x-y.z"), Some("bootd_x-y.z"));
        assert_eq!(bearer(b" Bearer abc "), Some("abc"));
        assert_eq!(bearer(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer a b"), None);
        assert_eq!(bearer(b"Bearer \xff"), None);
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(bearer(long.as_bytes()), None);
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie(b"a=1; bootd_session=xyz; c=3", "bootd_session"),
            Some("xyz")
        );
        assert_eq!(cookie(b"bootd_session=\"q\"", "bootd_session"), Some("q"));
        assert_eq!(cookie(b"bootd_sessionx=1", "bootd_session"), None);
        assert_eq!(cookie(b"bootd_session=", "bootd_session"), None);
        assert_eq!(cookie(b"bootd_session=a;b", "bootd_session"), Some("a"));
        assert_eq!(cookie(b"\xff=1", "bootd_session"), None);
    }

    #[test]
    fn session_ids() {
        let id = "0123456789abcdef".repeat(4);
        assert!(is_session_id(&id));
        let header = format!("theme=dark; bootd_session={id}; lang=en");
        assert_eq!(
            cookie(header.as_bytes(), "bootd_session"),
            Some(id.as_str())
        );
        assert!(!is_session_id(&id[1..]));
        assert!(!is_session_id(&format!("{id}0")));
        assert!(!is_session_id(&id.to_uppercase()));
        assert!(!is_session_id(&"g".repeat(SESSION_ID_LEN)));
        assert!(!is_session_id("bootd_0123"));
    }
}
