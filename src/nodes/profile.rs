//! The node's effective profile: its own, else its group's, else the first profile whose
//! `matches` fit its reported hardware, else `boot.default_profile` — one resolver that
//! selection, phases, progress, deadlines and templates all use, with where it came from.

use super::Node;
use crate::config::Config;
use crate::hardware::Inventory;
use serde::Serialize;

/// Where a node's effective profile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileSource {
    /// The node's own `profile`.
    Node,
    /// The `profile` of the node's group.
    Group,
    /// A profile's `matches` fit the node's reported hardware.
    Hardware,
    /// `boot.default_profile`.
    Default,
}

impl ProfileSource {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileSource::Node => "node",
            ProfileSource::Group => "group",
            ProfileSource::Hardware => "hardware",
            ProfileSource::Default => "default",
        }
    }
}

/// A node's effective profile and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveProfile {
    pub name: String,
    pub source: ProfileSource,
}

/// Resolves a node's effective profile; `hardware` is read only when the node and its
/// group name none and some profile has `matches`.
pub fn effective_profile(
    node: &Node,
    cfg: &Config,
    hardware: &dyn Fn() -> Option<Inventory>,
) -> EffectiveProfile {
    let found = |name: &str, source| EffectiveProfile {
        name: name.to_string(),
        source,
    };
    if let Some(own) = node.profile.as_deref() {
        return found(own, ProfileSource::Node);
    }
    let group = node
        .group
        .as_ref()
        .and_then(|g| cfg.groups.get(g))
        .and_then(|g| g.profile.as_deref());
    if let Some(name) = group {
        return found(name, ProfileSource::Group);
    }
    if cfg.profiles.values().any(|p| !p.matches.is_empty()) {
        if let Some(name) = hardware()
            .as_ref()
            .and_then(|inv| crate::boot::matching_profile(cfg, inv))
        {
            return found(name, ProfileSource::Hardware);
        }
    }
    found(&cfg.boot.default_profile, ProfileSource::Default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::MacAddr;
    use crate::nodes::Origin;

    #[test]
    fn own_then_group_then_default() {
        let text = "[server]\npublic_url = \"http://10.0.0.1:8080/\"\n\
            [profiles.demo]\nscript = \"d.ipxe\"\n[groups.web]\nprofile = \"demo\"\n[groups.bare]\n";
        let cfg = match Config::parse_str(text, std::path::Path::new("t.toml"), &|_, _| true) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let mut n = Node::new(MacAddr([0x52, 0x54, 0, 0, 0, 1]), Origin::Runtime);
        let none = || None;
        let resolve = |n: &Node| {
            let p = effective_profile(n, &cfg, &none);
            (p.name, p.source)
        };
        assert_eq!(resolve(&n), ("discovery".into(), ProfileSource::Default));
        n.group = Some("bare".into());
        assert_eq!(resolve(&n), ("discovery".into(), ProfileSource::Default));
        n.group = Some("web".into());
        assert_eq!(resolve(&n), ("demo".into(), ProfileSource::Group));
        n.profile = Some("local".into());
        assert_eq!(resolve(&n), ("local".into(), ProfileSource::Node));
    }
}
