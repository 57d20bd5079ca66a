//! Helpers for the config tests: read a text as if it were the file `t.toml`.

use super::{Config, ConfigErrors};
use std::path::Path;

/// The file name errors are reported against.
pub(super) const FILE: &str = "t.toml";

/// The smallest valid file: a wildcard listen address needs a public URL.
pub(super) const SERVER: &str = "[server]\npublic_url = \"http://10.0.0.1:8080/\"\n";

/// A `template_exists` that knows every template.
pub(super) fn accept_all(_: &Path, _: &str) -> bool {
    true
}

/// Reads `text` as `t.toml`, every template existing.
pub(super) fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse_str(text, Path::new(FILE), &accept_all)
}

/// The configuration of [`SERVER`]: every other key at its default.
pub(super) fn defaults() -> Config {
    match parse(SERVER) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// The errors of a text as displayed, one string each.
pub(super) fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// The `file:line:col: key` part of each error.
pub(super) fn where_(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| format!("{}:{}:{}: {}", e.file.display(), e.line, e.col, e.key))
                .collect()
        }
    }
}
