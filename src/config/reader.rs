//! The walk over the spanned TOML document: `Ctx` collects every error with its
//! `file:line:col`, `Section` and `Field` read typed values out of tables, and unknown
//! keys get the closest known key as a suggestion.

use super::values::{format_duration, parse_duration};
use super::ConfigError;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Item, TableLike, Value};

/// Error collector with the file's line index.
pub(super) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
    pub(super) errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Ctx {
            file,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based line and character column of a byte offset.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line, col + 1)
    }

    pub(super) fn error(&mut self, at: usize, key: &str, message: impl Into<String>) {
        let (line, col) = self.position(at);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn wrong_type(&mut self, f: &Field<'_>, expected: &str) {
        let found = a_type(f.item);
        self.error(f.at, &f.path, format!("expected {expected}, found {found}"));
    }

    pub(super) fn string<'d>(&mut self, f: &Field<'d>) -> Option<&'d str> {
        let s = f.item.as_str();
        if s.is_none() {
            self.wrong_type(f, "a string");
        }
        s
    }

    /// A string turned into a typed value by `parse`, whose error is the whole message.
    pub(super) fn parsed<T>(
        &mut self,
        f: &Field<'_>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(f)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(f.at, &f.path, message);
                None
            }
        }
    }

    pub(super) fn integer(&mut self, f: &Field<'_>, min: i64, max: i64) -> Option<i64> {
        let Some(v) = f.item.as_integer() else {
            self.wrong_type(f, "an integer");
            return None;
        };
        if !(min..=max).contains(&v) {
            self.error(
                f.at,
                &f.path,
                format!("must be between {min} and {max}, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    pub(super) fn boolean(&mut self, f: &Field<'_>) -> Option<bool> {
        let b = f.item.as_bool();
        if b.is_none() {
            self.wrong_type(f, "true or false");
        }
        b
    }

    pub(super) fn duration(
        &mut self,
        f: &Field<'_>,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        if f.item.as_str().is_none() {
            self.wrong_type(f, "a duration string such as \"30s\"");
            return None;
        }
        let d = self.parsed(f, parse_duration)?;
        if d < min || d > max {
            self.error(
                f.at,
                &f.path,
                format!(
                    "must be between {} and {}, found {}",
                    format_duration(min),
                    format_duration(max),
                    format_duration(d)
                ),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn choice<T: Copy>(&mut self, f: &Field<'_>, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(f)?;
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.error(
            f.at,
            &f.path,
            format!("expected one of {}, found {:?}", names.join(", "), shown(s)),
        );
        None
    }

    /// A filesystem path; relative ones are resolved against `base`.
    pub(super) fn path(&mut self, f: &Field<'_>, base: &Path) -> Option<PathBuf> {
        self.parsed(f, |s| {
            if s.is_empty() || s.contains('\0') {
                return Err(
                    "expected a file system path, found an empty or NUL-containing string"
                        .to_string(),
                );
            }
            Ok(base.join(s))
        })
    }

    /// The string elements of an array, each with its position (other elements are
    /// reported and left out, so the strings can still be checked).
    pub(super) fn strings<'d>(&mut self, f: &Field<'d>) -> Option<Vec<(&'d str, Elem)>> {
        let Some(array) = f.item.as_array() else {
            self.wrong_type(f, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for (i, v) in array.iter().enumerate() {
            let at = v.span().map_or(f.at, |r| r.start);
            let path = format!("{}[{i}]", f.path);
            match v.as_str() {
                Some(s) => out.push((s, Elem { path, at })),
                None => {
                    self.error(
                        at,
                        &path,
                        format!("expected a string, found {}", a_value_type(v)),
                    );
                }
            }
        }
        Some(out)
    }

    pub(super) fn table<'d>(&mut self, f: &Field<'d>) -> Option<Section<'d>> {
        match f.item.as_table_like() {
            Some(t) => Some(Section {
                table: Some(t),
                path: f.path.clone(),
                at: f.at,
                broken: false,
            }),
            None => {
                self.wrong_type(f, "a table");
                None
            }
        }
    }

    /// `[[key]]` entries or an inline array of inline tables.
    pub(super) fn tables<'d>(&mut self, f: &Field<'d>) -> Vec<Section<'d>> {
        let mut out = Vec::new();
        match f.item {
            Item::ArrayOfTables(array) => {
                for (i, t) in array.iter().enumerate() {
                    out.push(Section {
                        table: Some(t as &dyn TableLike),
                        path: format!("{}[{i}]", f.path),
                        at: t.span().map_or(f.at, |r| r.start),
                        broken: false,
                    });
                }
            }
            Item::Value(Value::Array(array)) => {
                for (i, v) in array.iter().enumerate() {
                    let path = format!("{}[{i}]", f.path);
                    let at = v.span().map_or(f.at, |r| r.start);
                    match v.as_inline_table() {
                        Some(t) => out.push(Section {
                            table: Some(t as &dyn TableLike),
                            path,
                            at,
                            broken: false,
                        }),
                        None => self.error(
                            at,
                            &path,
                            format!("expected a table, found {}", a_value_type(v)),
                        ),
                    }
                }
            }
            _ => self.wrong_type(f, &format!("an array of tables ([[{}]])", f.path)),
        }
        out
    }
}

/// A table being read (absent tables have `table: None` and read as empty).
pub(super) struct Section<'d> {
    pub(super) table: Option<&'d dyn TableLike>,
    pub(super) path: String,
    /// Offset of the table header (or of whatever stands for it).
    pub(super) at: usize,
    /// Present but not a table (already reported): its checks would only add noise.
    pub(super) broken: bool,
}

/// One key's value, where it is, and its dotted path.
pub(super) struct Field<'d> {
    pub(super) name: &'d str,
    pub(super) item: &'d Item,
    pub(super) path: String,
    pub(super) at: usize,
    pub(super) key_at: usize,
}

/// Where an array element is, for messages.
pub(super) struct Elem {
    pub(super) path: String,
    pub(super) at: usize,
}

impl<'d> Section<'d> {
    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<Field<'d>> {
        let (k, item) = self.table?.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        let key_at = k.span().map_or(self.at, |r| r.start);
        Some(Field {
            name: k.get(),
            item,
            path: self.key_path(key),
            at: span_start(item).unwrap_or(key_at),
            key_at,
        })
    }

    /// Every entry, in file order.
    pub(super) fn entries(&self) -> Vec<Field<'d>> {
        let Some(table) = self.table else {
            return Vec::new();
        };
        table.iter().filter_map(|(k, _)| self.get(k)).collect()
    }

    /// Reports keys that are not in `allowed`, at the key.
    pub(super) fn check_keys(&self, cx: &mut Ctx<'_>, allowed: &[&str]) {
        for f in self.entries() {
            if !allowed.contains(&f.name) {
                let hint = closest(f.name, allowed)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                cx.error(
                    f.key_at,
                    &f.path,
                    format!(
                        "unknown key {:?}{hint}; known keys: {}",
                        shown(f.name),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// The key's field, or an error at the table header.
    pub(super) fn require(&self, cx: &mut Ctx<'_>, key: &str) -> Option<Field<'d>> {
        let f = self.get(key);
        if f.is_none() {
            cx.error(self.at, &self.key_path(key), "missing required key");
        }
        f
    }

    /// A sub-table; absent or mistyped ones read as empty.
    pub(super) fn sub(&self, cx: &mut Ctx<'_>, key: &str) -> Section<'d> {
        match self.get(key) {
            Some(f) => cx.table(&f).unwrap_or(Section {
                table: None,
                path: f.path,
                at: f.at,
                broken: true,
            }),
            None => Section {
                table: None,
                path: self.key_path(key),
                at: self.at,
                broken: false,
            },
        }
    }
}

fn span_start(item: &Item) -> Option<usize> {
    let span = match item {
        Item::None => None,
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
    };
    span.map(|r| r.start)
}

fn a_type(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => a_value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::None => "nothing",
    }
}

fn a_value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}

/// User text as shown in messages: bounded so a huge value cannot flood the log.
pub(super) fn shown(s: &str) -> String {
    const SHOWN_CHARS: usize = 64;
    s.chars().take(SHOWN_CHARS).collect()
}

/// The allowed key nearest to a misspelt one, if it is close enough to be a typo.
fn closest<'k>(word: &str, candidates: &[&'k str]) -> Option<&'k str> {
    const MAX_TYPO_DISTANCE: usize = 2;
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= MAX_TYPO_DISTANCE)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let cost = usize::from(ca != *cb);
            let best = (diagonal + cost).min(above + 1).min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_key() {
        assert_eq!(
            closest("stat_dir", &["state_dir", "assets_dir"]),
            Some("state_dir")
        );
        assert_eq!(closest("zzz", &["state_dir"]), None);
    }
}
