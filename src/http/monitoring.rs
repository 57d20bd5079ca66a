//! `GET /monitoring`: the operator's live page, one self-contained HTML file built into
//! the binary; its Content-Security-Policy admits only its own script and style.

use super::response::{full, Body};
use hyper::{header, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The page: markup, style and script in one file, no external resource.
pub const PAGE: &str = include_str!("monitoring.html");

/// The policy: nothing but same-origin API calls and the page's own inline blocks.
fn policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let script = inline_hashes(PAGE, "<script>", "</script>");
        let style = inline_hashes(PAGE, "<style>", "</style>");
        format!(
            "default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; \
             img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// `'sha256-...'` sources for every block between `open` and `close`.
fn inline_hashes(page: &str, open: &str, close: &str) -> String {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some((_, after)) = rest.split_once(open) {
        let Some((block, tail)) = after.split_once(close) else {
            break;
        };
        out.push(format!("'sha256-{}'", base64(&Sha256::digest(block))));
        rest = tail;
    }
    if out.is_empty() {
        "'none'".to_string()
    } else {
        out.join(" ")
    }
}

/// Standard base64 with padding (CSP hash sources use it).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The page with its security headers.
pub fn page() -> Response<Body> {
    let mut r = Response::new(full(PAGE));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = header::HeaderValue::from_str(policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `GET /favicon.ico`: browsers ask for it with every page; "no content", cached for a
/// day, instead of a 404 in the log and the console.
pub fn favicon() -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn policy_hashes_the_page_script_and_style() {
        let p = policy();
        assert_eq!(p.matches("'sha256-").count(), 2, "{p}");
        assert!(!p.contains("unsafe"), "{p}");
    }

    #[test]
    fn page_loads_nothing_from_elsewhere() {
        for needle in ["http://", "https://", "//cdn", "@import", "src=\""] {
            assert!(!PAGE.contains(needle), "page contains {needle}");
        }
    }
}
