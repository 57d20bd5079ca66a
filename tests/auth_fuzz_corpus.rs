//! Replays every file of fuzz/corpus/auth_header through the Bearer and cookie parsers
//! with the fuzz target's checks (first byte even: bearer, odd: cookie).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use bootd_proto::auth::{bearer, cookie, is_session_id, plausible_token, MAX_TOKEN_LEN};
use std::path::Path;

fn from_input(token: &str, input: &[u8]) {
    assert!(plausible_token(token), "{token:?}");
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_LEN);
    assert!(input.windows(token.len()).any(|w| w == token.as_bytes()));
}

/// The token the file yields, if any.
fn check(data: &[u8]) -> Option<String> {
    let (&pick, header) = data.split_first()?;
    if pick % 2 == 0 {
        let t = bearer(header)?;
        from_input(t, header);
        assert!(!t.contains(' '));
        Some(t.to_string())
    } else {
        let t = cookie(header, "bootd_session")?;
        from_input(t, header);
        assert!(!t.contains(';') && !t.contains('='));
        if is_session_id(t) {
            return Some(format!("session:{t}"));
        }
        Some(t.to_string())
    }
}

#[test]
fn corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/auth_header");
    let mut files = 0;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Some(t) = check(&data) {
            found.push((path.file_name().unwrap().to_string_lossy().into_owned(), t));
        }
        files += 1;
    }
    assert!(files >= 10, "seed corpus missing in {}", dir.display());
    found.sort();
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "bearer_lower_spaces",
            "bearer_padded",
            "bearer_plain",
            "cookie_many",
            "cookie_one",
            "cookie_quoted",
            "cookie_session_id",
            "cookie_session_id_short",
            "cookie_session_id_twice",
        ],
        "{found:?}"
    );
    // The session cookie as a browser sends it (among others) is read as a session id;
    // one hex digit short is a plausible token but no session id.
    let value = |name: &str| {
        found
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    };
    assert!(value("cookie_session_id").is_some_and(|t| t.starts_with("session:")));
    assert!(value("cookie_session_id_twice").is_some_and(|t| t.starts_with("session:")));
    assert!(value("cookie_session_id_short").is_some_and(|t| !t.starts_with("session:")));
}
