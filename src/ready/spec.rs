//! A profile's `ready = [ { ssh = 22 }, { tcp = 8006 }, { http = "..." } ]`, read from
//! the spanned TOML document into [`Check`]s; errors carry byte offsets for `file:line:col`.

use super::Check;
use crate::boot::Context;
use crate::mac::MacAddr;
use crate::nodes::{Node, Origin};
use std::net::Ipv4Addr;
use toml_edit::{Item, TableLike, Value};

/// Most checks one profile may declare.
pub const MAX_CHECKS: usize = 16;
/// Longest http URL template.
pub const MAX_URL_TEMPLATE: usize = 2048;
/// The check kinds, as keys.
pub const KINDS: [&str; 3] = ["ssh", "tcp", "http"];

/// A problem in the `ready` array: where (byte offset), which key, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub at: usize,
    pub path: String,
    pub message: String,
}

/// Reads the value of a `ready` key (`path` is its dotted key, `at` its offset): the
/// checks that are well formed, and an error for every one that is not.
pub fn parse(item: &Item, path: &str, at: usize) -> (Vec<Check>, Vec<SpecError>) {
    let mut errors = Vec::new();
    let mut entries: Vec<(&dyn TableLike, String, usize)> = Vec::new();
    match item {
        Item::ArrayOfTables(array) => {
            for (i, t) in array.iter().enumerate() {
                let at = t.span().map_or(at, |r| r.start);
                entries.push((t as &dyn TableLike, format!("{path}[{i}]"), at));
            }
        }
        Item::Value(Value::Array(array)) => {
            for (i, v) in array.iter().enumerate() {
                let entry_path = format!("{path}[{i}]");
                let at = v.span().map_or(at, |r| r.start);
                match v.as_inline_table() {
                    Some(t) => entries.push((t as &dyn TableLike, entry_path, at)),
                    None => errors.push(SpecError {
                        at,
                        path: entry_path,
                        message: format!(
                            "expected a check such as {{ ssh = 22 }}, found {}",
                            value_type(v)
                        ),
                    }),
                }
            }
        }
        other => errors.push(SpecError {
            at,
            path: path.to_string(),
            message: format!(
                "expected an array of checks such as [ {{ ssh = 22 }}, {{ tcp = 8006 }} ], found {}",
                item_type(other)
            ),
        }),
    }
    if entries.len() > MAX_CHECKS {
        errors.push(SpecError {
            at,
            path: path.to_string(),
            message: format!("at most {MAX_CHECKS} checks, found {}", entries.len()),
        });
    }
    let mut checks = Vec::new();
    for (table, entry_path, entry_at) in entries {
        if let Some(check) = read_entry(table, &entry_path, entry_at, &mut errors) {
            checks.push(check);
        }
    }
    errors.sort_by_key(|e| e.at);
    (checks, errors)
}

/// One `{ kind = value }` entry.
fn read_entry(
    table: &dyn TableLike,
    path: &str,
    at: usize,
    errors: &mut Vec<SpecError>,
) -> Option<Check> {
    let mut check = None;
    let mut seen = 0usize;
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let key_at = key.span().map_or(at, |r| r.start);
        let value_at = item_span(item).unwrap_or(key_at);
        let key_path = format!("{path}.{name}");
        seen += 1;
        if !KINDS.contains(&name) {
            errors.push(SpecError {
                at: key_at,
                path: key_path,
                message: format!(
                    "unknown check kind {name:?}; expected one of {}",
                    KINDS.join(", ")
                ),
            });
            continue;
        }
        if seen > 1 {
            errors.push(SpecError {
                at: key_at,
                path: key_path,
                message: "one check per entry: give each check its own { } in the array"
                    .to_string(),
            });
            continue;
        }
        let mut fail = |message: String| {
            errors.push(SpecError {
                at: value_at,
                path: key_path.clone(),
                message,
            })
        };
        check = match name {
            "ssh" | "tcp" => match item.as_integer() {
                Some(p) => match u16::try_from(p) {
                    Ok(port) if port > 0 => Some(if name == "ssh" {
                        Check::Ssh(port)
                    } else {
                        Check::Tcp(port)
                    }),
                    _ => {
                        fail(format!("must be a port between 1 and 65535, found {p}"));
                        None
                    }
                },
                None => {
                    fail(format!("expected a port number, found {}", item_type(item)));
                    None
                }
            },
            _ => match item.as_str() {
                Some(t) => match check_url_template(t) {
                    Ok(()) => Some(Check::Http(t.to_string())),
                    Err(message) => {
                        fail(message);
                        None
                    }
                },
                None => {
                    fail(format!(
                        "expected a URL template string, found {}",
                        item_type(item)
                    ));
                    None
                }
            },
        };
    }
    if seen == 0 {
        errors.push(SpecError {
            at,
            path: path.to_string(),
            message: format!(
                "expected one check ({}), found an empty table",
                KINDS.join(", ")
            ),
        });
    }
    check
}

/// An http check's URL template: an http(s) URL that compiles and renders for a
/// sample node, like the boot templates are checked at load.
pub fn check_url_template(t: &str) -> Result<(), String> {
    if t.len() > MAX_URL_TEMPLATE {
        return Err(format!("longer than {MAX_URL_TEMPLATE} bytes"));
    }
    let lower = t.trim_start().to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!(
            "expected an http:// or https:// URL template, found {:?}",
            t.chars().take(80).collect::<String>()
        ));
    }
    super::render_url(t, &sample_context())
        .map(drop)
        .map_err(|e| format!("template error: {}", super::template_detail(&e)))
}

/// The context a check's template is test-rendered with: a node with every fact set.
fn sample_context() -> Context {
    let mut node = Node::new(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]), Origin::Config);
    node.hostname = Some("sample".into());
    node.ip = Some(Ipv4Addr::new(192, 0, 2, 10));
    Context::new(
        &node,
        "sample",
        "x86_64-efi",
        "0".repeat(40),
        "http://bootd.invalid:8080",
    )
}

fn item_span(item: &Item) -> Option<usize> {
    match item {
        Item::Value(v) => v.span().map(|r| r.start),
        Item::Table(t) => t.span().map(|r| r.start),
        Item::ArrayOfTables(a) => a.span().map(|r| r.start),
        Item::None => None,
    }
}

fn item_type(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => value_type(v),
        Item::Table(_) | Item::ArrayOfTables(_) => "a table",
        Item::None => "nothing",
    }
}

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml_edit::ImDocument;

    /// Parses `ready = <value>` and returns the checks and `line:col: path: message`.
    fn read(value: &str) -> (Vec<Check>, Vec<String>) {
        let text = format!("ready = {value}\n");
        let doc = ImDocument::parse(text.clone()).expect("toml");
        let (key, item) = doc.get_key_value("ready").expect("ready key");
        let at = item_span(item).or(key.span().map(|r| r.start)).unwrap_or(0);
        let (checks, errors) = parse(item, "profiles.x.ready", at);
        let shown = errors
            .iter()
            .map(|e| format!("1:{}: {}: {}", e.at + 1, e.path, e.message))
            .collect();
        (checks, shown)
    }

    #[test]
    fn every_kind_parses() {
        let (checks, errors) =
            read(r#"[ { ssh = 22 }, { tcp = 8006 }, { http = "http://{{ ip }}:9100/ready" } ]"#);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            checks,
            [
                Check::Ssh(22),
                Check::Tcp(8006),
                Check::Http("http://{{ ip }}:9100/ready".into())
            ]
        );
        let json = serde_json::to_string(&checks).expect("json");
        assert_eq!(
            json,
            r#"[{"ssh":22},{"tcp":8006},{"http":"http://{{ ip }}:9100/ready"}]"#
        );
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let (checks, errors) = read(
            r#"[ { ping = 1 }, { ssh = 0 }, { tcp = 70000 }, { ssh = "22" }, { ssh = 22, tcp = 1 }, {}, 5, { http = "ftp://x" }, { http = "http://{{ ip" } ]"#,
        );
        assert_eq!(checks, [Check::Ssh(22)]);
        assert_eq!(
            errors,
            [
                "1:13: profiles.x.ready[0].ping: unknown check kind \"ping\"; expected one of ssh, tcp, http",
                "1:33: profiles.x.ready[1].ssh: must be a port between 1 and 65535, found 0",
                "1:46: profiles.x.ready[2].tcp: must be a port between 1 and 65535, found 70000",
                "1:63: profiles.x.ready[3].ssh: expected a port number, found a string",
                "1:83: profiles.x.ready[4].tcp: one check per entry: give each check its own { } in the array",
                "1:94: profiles.x.ready[5]: expected one check (ssh, tcp, http), found an empty table",
                "1:98: profiles.x.ready[6]: expected a check such as { ssh = 22 }, found an integer",
                "1:110: profiles.x.ready[7].http: expected an http:// or https:// URL template, found \"ftp://x\"",
                "1:132: profiles.x.ready[8].http: template error: unexpected end of input, expected end of variable block (line 1)",
            ]
        );
    }

    #[test]
    fn not_an_array() {
        let (checks, errors) = read("\"ssh\"");
        assert!(checks.is_empty());
        assert_eq!(
            errors,
            ["1:9: profiles.x.ready: expected an array of checks such as [ { ssh = 22 }, { tcp = 8006 } ], found a string"]
        );
    }

    #[test]
    fn too_many_checks() {
        let many = vec!["{ tcp = 1 }"; MAX_CHECKS + 1].join(", ");
        let (_, errors) = read(&format!("[ {many} ]"));
        assert_eq!(
            errors,
            [format!(
                "1:9: profiles.x.ready: at most {MAX_CHECKS} checks, found {}",
                MAX_CHECKS + 1
            )]
        );
    }

    #[test]
    fn url_templates_render_with_node_variables() {
        assert_eq!(
            check_url_template("https://{{ hostname }}.{{ node.vars.domain }}/ready"),
            Ok(())
        );
        let err = check_url_template("http://{{ ip | nosuchfilter }}/").expect_err("filter");
        assert!(err.starts_with("template error: "), "{err}");
    }
}
