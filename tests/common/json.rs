//! JSON helpers for what bootd answers over HTTP, the control socket and `bootctl --json`.

/// Parses `text` as JSON; panics with the text when it is not.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
