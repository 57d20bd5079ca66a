//! `[groups.NAME]`: a group's default profile and its completion hook.

use super::profiles::{check_profile_ref, Profile};
use super::reader::{Ctx, Section};
use super::values::{check_http_url, check_name};
use serde::Serialize;
use std::collections::BTreeMap;

/// `[groups.NAME]`.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Profile of members that name none.
    pub profile: Option<String>,
    /// URL POSTed when every member is running.
    pub on_complete: Option<String>,
}

pub(super) fn read_groups(
    cx: &mut Ctx<'_>,
    s: &Section<'_>,
    profiles: &BTreeMap<String, Profile>,
) -> BTreeMap<String, Group> {
    let mut groups = BTreeMap::new();
    for entry in s.entries() {
        if let Err(message) = check_name(entry.name) {
            cx.error(entry.key_at, &entry.path, message);
        }
        let mut group = Group {
            profile: None,
            on_complete: None,
        };
        if let Some(g) = cx.table(&entry) {
            g.check_keys(cx, &["profile", "on_complete"]);
            group.profile = g
                .get("profile")
                .and_then(|f| check_profile_ref(cx, &f, profiles));
            group.on_complete = g
                .get("on_complete")
                .and_then(|f| cx.parsed(&f, check_http_url));
        }
        groups.insert(entry.name.to_string(), group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{errors, SERVER};

    #[test]
    fn references_to_missing_profiles_and_groups() {
        let text = format!(
            "{SERVER}[boot]\ndefault_profile = \"nope\"\n[groups.g]\nprofile = \"gone\"\n[[nodes]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"ubuntu\"\ngroup = \"h\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:4:19: boot.default_profile: unknown profile \"nope\"; defined profiles: discovery, local",
                "t.toml:6:11: groups.g.profile: unknown profile \"gone\"; defined profiles: discovery, local",
                "t.toml:9:11: nodes[0].profile: unknown profile \"ubuntu\"; defined profiles: discovery, local",
                "t.toml:10:9: nodes[0].group: unknown group \"h\"; defined groups: g",
            ]
        );
    }
}
