//! The JSON body machines POST (`{"lshw": ..., "dmidecode": "...", "extra": {...}}`),
//! checked for size, UTF-8 and nesting depth before serde_json sees it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest report body accepted by default (a big server's lshw + dmidecode is ~1 MiB).
pub const MAX_REPORT_BYTES: usize = 8 * 1024 * 1024;

/// Deepest JSON nesting accepted; lshw trees are ~10 levels, serde_json's own limit is 128.
pub const MAX_JSON_DEPTH: usize = 64;

/// A hardware report as posted by a booting machine; every part is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Output of `lshw -json`: one object, or an array of nodes.
    pub lshw: Option<Value>,
    /// Output of `dmidecode` as text.
    pub dmidecode: Option<String>,
    /// Extra facts: `efi`, `secure_boot`, `lsblk`, `ip_link`.
    pub extra: Option<Value>,
}

/// Why a report body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The body is larger than the limit.
    #[error("report is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Body size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// JSON nesting deeper than the limit.
    #[error("report JSON nests deeper than {limit} levels (at byte {offset})")]
    TooDeep {
        /// The depth limit.
        limit: usize,
        /// Byte offset where the limit was crossed.
        offset: usize,
    },
    /// The body is not UTF-8.
    #[error("report is not UTF-8: invalid byte at offset {offset}")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not valid JSON.
    #[error("report is not valid JSON: {0}")]
    Json(String),
    /// Valid JSON, but not the shape of a report.
    #[error("report has the wrong shape: {0}")]
    Shape(String),
}

/// Parses a report body with the default size limit ([`MAX_REPORT_BYTES`]).
pub fn parse_report(body: &[u8]) -> Result<Report, ReportError> {
    parse_report_with_limit(body, MAX_REPORT_BYTES)
}

/// Parses a report body no larger than `max_bytes`.
pub fn parse_report_with_limit(body: &[u8], max_bytes: usize) -> Result<Report, ReportError> {
    if body.len() > max_bytes {
        return Err(ReportError::TooLarge {
            size: body.len(),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| ReportError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let value = parse_bounded_json(text)?;
    let Value::Object(mut fields) = value else {
        return Err(ReportError::Shape(format!(
            "expected an object with \"lshw\", \"dmidecode\" or \"extra\", found {}",
            kind_of(&value)
        )));
    };
    let lshw = match fields.remove("lshw") {
        None | Some(Value::Null) => None,
        // Agents that embed `$(lshw -json)` as a string get the same treatment.
        Some(Value::String(s)) => Some(parse_bounded_json(&s)?),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v),
        Some(other) => return Err(wrong_part("lshw", "an object or an array", &other)),
    };
    let dmidecode = match fields.remove("dmidecode") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(wrong_part("dmidecode", "a string", &other)),
    };
    let extra = match fields.remove("extra") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(other) => return Err(wrong_part("extra", "an object", &other)),
    };
    if lshw.is_none() && dmidecode.is_none() && extra.is_none() {
        return Err(ReportError::Shape(
            "none of \"lshw\", \"dmidecode\" or \"extra\" is present".to_string(),
        ));
    }
    Ok(Report {
        lshw,
        dmidecode,
        extra,
    })
}

fn wrong_part(name: &str, expected: &str, found: &Value) -> ReportError {
    ReportError::Shape(format!(
        "\"{name}\" must be {expected}, found {}",
        kind_of(found)
    ))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks depth first (cheap, no allocation), then lets serde_json build the value.
fn parse_bounded_json(text: &str) -> Result<Value, ReportError> {
    check_depth(text.as_bytes(), MAX_JSON_DEPTH)?;
    serde_json::from_str(text).map_err(|e| ReportError::Json(e.to_string()))
}

/// Fails when `[`/`{` nest deeper than `limit` outside strings. Brackets inside string
/// literals (escapes included) do not count; unbalanced input is left to the parser.
pub fn check_depth(bytes: &[u8], limit: usize) -> Result<(), ReportError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(ReportError::TooDeep { limit, offset });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_errors_say_what_was_wrong() {
        assert!(matches!(
            parse_report_with_limit(&[b' '; 11], 10),
            Err(ReportError::TooLarge {
                size: 11,
                limit: 10
            })
        ));
        assert_eq!(
            parse_report(b"{\"dmidecode\": \"\xff\"}"),
            Err(ReportError::NotUtf8 { offset: 15 })
        );
        let deep = format!("{{\"extra\": {}1{}}}", "[".repeat(64), "]".repeat(64));
        assert!(matches!(
            parse_report(deep.as_bytes()),
            Err(ReportError::TooDeep { limit: 64, .. })
        ));
        // Brackets inside strings, escaped quotes included, do not count.
        let stringy = format!(
            "{{\"dmidecode\": \"\\\"{}\", \"extra\": {{}}}}",
            "[".repeat(500)
        );
        assert!(parse_report(stringy.as_bytes()).is_ok());
        assert!(matches!(
            parse_report(b"garbage"),
            Err(ReportError::Json(_))
        ));
        assert!(matches!(parse_report(b"[]"), Err(ReportError::Shape(_))));
        assert!(matches!(parse_report(b"{}"), Err(ReportError::Shape(_))));
        assert!(matches!(
            parse_report(b"{\"lshw\": null, \"dmidecode\": null}"),
            Err(ReportError::Shape(_))
        ));
        assert!(matches!(
            parse_report(b"{\"dmidecode\": 5}"),
            Err(ReportError::Shape(_))
        ));
        let err = parse_report(b"{\"lshw\": {").unwrap_err();
        assert!(err.to_string().contains("EOF"), "{err}");
    }

    #[test]
    fn accepts_each_part_alone_and_lshw_as_string() {
        let r = parse_report(br#"{"dmidecode": "Handle 0x0000, DMI type 0, 24 bytes"}"#);
        assert!(r.is_ok_and(|r| r.dmidecode.is_some() && r.lshw.is_none()));
        let r = parse_report(br#"{"lshw": "[{\"class\": \"system\"}]", "unknown": 1}"#);
        assert!(r.is_ok_and(|r| r.lshw.is_some_and(|v| v.is_array())));
        let r = parse_report(br#"{"extra": {"efi": true}}"#);
        assert!(r.is_ok_and(|r| r.extra.is_some()));
    }
}
