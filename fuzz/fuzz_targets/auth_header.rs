//! Fuzzes the credential parsers: `Authorization: Bearer` values and `Cookie` headers.
//! The first byte picks the parser (even: bearer, odd: cookie); a token found is always
//! a plausible token taken from the input itself; a session id (the monitoring page's
//! cookie) is 64 lowercase hex digits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect
#![no_main]

use bootd_proto::auth::{
    bearer, cookie, is_session_id, plausible_token, MAX_TOKEN_LEN, SESSION_ID_LEN,
};
use libfuzzer_sys::fuzz_target;

fn from_input(token: &str, input: &[u8]) {
    assert!(plausible_token(token));
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_LEN);
    assert!(input.windows(token.len()).any(|w| w == token.as_bytes()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, header)) = data.split_first() else {
        return;
    };
    if pick % 2 == 0 {
        if let Some(t) = bearer(header) {
            from_input(t, header);
            assert!(!t.contains(' '));
        }
    } else if let Some(t) = cookie(header, "bootd_session") {
        from_input(t, header);
        assert!(!t.contains(';') && !t.contains('='));
        // A session id the cookie carries is 64 lowercase hex digits, nothing else.
        if is_session_id(t) {
            assert_eq!(t.len(), SESSION_ID_LEN);
            assert!(t
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }
});
