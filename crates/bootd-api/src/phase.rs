//! Deployment phases and the table of allowed transitions between them.
//! Profiles may add their own install phases; those behave like `installing`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// Where a machine is in its deployment.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Phase {
    Discovered,
    Known,
    ServerRequested,
    Pending,
    Starting,
    Dhcp,
    IpxeBoot,
    ConfigRequested,
    Installing,
    Registered,
    HealthValidation,
    Running,
    Clustered,
    Unhealthy,
    Stopped,
    Failed,
    Timeout,
    /// A profile's own install phase (e.g. `foundation_boot`), with its progress.
    Custom(Arc<str>),
}

/// The built-in phases with their names and default progress, in deployment order.
pub const BUILTIN: &[(&str, Phase, Option<u8>)] = &[
    ("discovered", Phase::Discovered, Some(0)),
    ("known", Phase::Known, Some(0)),
    ("server_requested", Phase::ServerRequested, Some(5)),
    ("pending", Phase::Pending, Some(10)),
    ("starting", Phase::Starting, Some(10)),
    ("dhcp", Phase::Dhcp, Some(15)),
    ("ipxe_boot", Phase::IpxeBoot, Some(20)),
    ("config_requested", Phase::ConfigRequested, Some(30)),
    ("installing", Phase::Installing, Some(30)),
    ("registered", Phase::Registered, Some(88)),
    ("health_validation", Phase::HealthValidation, Some(90)),
    ("running", Phase::Running, Some(100)),
    ("clustered", Phase::Clustered, Some(100)),
    ("unhealthy", Phase::Unhealthy, None),
    ("stopped", Phase::Stopped, None),
    ("failed", Phase::Failed, None),
    ("timeout", Phase::Timeout, None),
];

/// Why a phase change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("unknown phase {0:?}")]
    UnknownPhase(String),
    #[error("a node cannot go from {from} to {to}")]
    NotAllowed { from: Phase, to: Phase },
    #[error("progress {0} is outside 0..=100")]
    BadProgress(u32),
}

/// Coarse classes used by the transition table, so custom phases need no rows of their own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Initial,  // discovered, known
    Provider, // server_requested, pending, starting
    Boot,     // dhcp, ipxe_boot, config_requested
    Install,  // installing, custom phases
    Done,     // registered, health_validation
    Live,     // running, clustered
    Down,     // unhealthy, stopped
    Broken,   // failed, timeout
}

impl Phase {
    /// Parses a built-in phase name, or one of `custom` (a profile's extra phases).
    pub fn parse(name: &str, custom: &[&str]) -> Result<Phase, TransitionError> {
        if let Some((_, p, _)) = BUILTIN.iter().find(|(n, _, _)| *n == name) {
            return Ok(p.clone());
        }
        if custom.contains(&name) {
            return Ok(Phase::Custom(Arc::from(name)));
        }
        Err(TransitionError::UnknownPhase(
            name.chars().take(64).collect::<String>(),
        ))
    }

    /// Parses a name read back from the store: any custom name is accepted there.
    pub fn from_stored(name: &str) -> Phase {
        Phase::parse(name, &[]).unwrap_or_else(|_| Phase::Custom(Arc::from(name)))
    }

    /// The phase's name as users and the API see it.
    pub fn name(&self) -> &str {
        match self {
            Phase::Custom(n) => n,
            other => BUILTIN
                .iter()
                .find(|(_, p, _)| p == other)
                .map(|(n, _, _)| *n)
                .unwrap_or("unknown"),
        }
    }

    /// The progress a user sees on entering this phase (None: keep the current one).
    pub fn default_progress(&self) -> Option<u8> {
        BUILTIN
            .iter()
            .find(|(_, p, _)| p == self)
            .and_then(|(_, _, pr)| *pr)
    }

    fn class(&self) -> Class {
        use Phase::*;
        match self {
            Discovered | Known => Class::Initial,
            ServerRequested | Pending | Starting => Class::Provider,
            Dhcp | IpxeBoot | ConfigRequested => Class::Boot,
            Installing | Custom(_) => Class::Install,
            Registered | HealthValidation => Class::Done,
            Running | Clustered => Class::Live,
            Unhealthy | Stopped => Class::Down,
            Failed | Timeout => Class::Broken,
        }
    }

    /// Whether `from → to` begins a deployment: the first in-progress phase after one
    /// that is not, or a new `server_requested` (a reprovision restarts the clock; a
    /// machine that PXE-boots again mid-install does not).
    pub fn starts_deployment(from: &Phase, to: &Phase) -> bool {
        *to == Phase::ServerRequested || (to.in_progress() && !from.in_progress())
    }

    /// Whether the node's `message` is an error (failed, timeout, unhealthy, stopped).
    pub fn is_error(&self) -> bool {
        matches!(self.class(), Class::Broken | Class::Down)
    }

    /// True while a deployment is under way (a deadline applies).
    pub fn in_progress(&self) -> bool {
        matches!(
            self.class(),
            Class::Provider | Class::Boot | Class::Install | Class::Done
        )
    }
}

/// The transition table: for each target phase, the classes it may be entered from.
/// Operators bypass it (`force`); machines and services go through it.
fn allowed_from(to: &Phase) -> &'static [Class] {
    use Class::*;
    match to {
        Phase::Discovered => &[],
        Phase::Known => &[Initial],
        Phase::ServerRequested => &[Initial, Live, Down, Broken, Provider],
        Phase::Pending | Phase::Starting => &[Initial, Provider, Down, Broken],
        // A machine may reboot into PXE at any point of a deployment.
        Phase::Dhcp | Phase::IpxeBoot => &[Initial, Provider, Boot, Install, Done, Down, Broken],
        Phase::ConfigRequested => &[Initial, Boot, Install],
        Phase::Installing | Phase::Custom(_) => &[Initial, Boot, Install],
        Phase::Registered | Phase::HealthValidation => &[Boot, Install, Done],
        Phase::Running => &[Boot, Install, Done, Live, Down],
        // Down: a clustered node that recovers returns to `clustered`.
        Phase::Clustered => &[Live, Down],
        Phase::Unhealthy => &[Done, Live, Down],
        Phase::Stopped => &[Provider, Done, Live, Down],
        Phase::Failed | Phase::Timeout => &[Initial, Provider, Boot, Install, Done],
    }
}

/// Whether `from → to` is allowed for a machine or a service (not an operator).
pub fn check(from: &Phase, to: &Phase) -> Result<(), TransitionError> {
    if allowed_from(to).contains(&from.class()) {
        Ok(())
    } else {
        Err(TransitionError::NotAllowed {
            from: from.clone(),
            to: to.clone(),
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Any name is accepted on reading, like the store: unknown ones are custom phases.
impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Phase::from_stored(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, phase, _) in BUILTIN {
            assert_eq!(Phase::parse(name, &[]).as_ref(), Ok(phase));
            assert_eq!(phase.name(), *name);
        }
        assert_eq!(
            Phase::parse("foundation_boot", &["foundation_boot"]),
            Ok(Phase::Custom(Arc::from("foundation_boot")))
        );
        assert!(Phase::parse("foundation_boot", &[]).is_err());
        assert!(Phase::parse("Running", &[]).is_err());
    }

    #[test]
    fn install_flow_is_allowed() {
        let flow = [
            Phase::Known,
            Phase::Dhcp,
            Phase::IpxeBoot,
            Phase::ConfigRequested,
            Phase::Installing,
            Phase::Custom(Arc::from("foundation_boot")),
            Phase::Registered,
            Phase::HealthValidation,
            Phase::Running,
            Phase::Clustered,
        ];
        for pair in flow.windows(2) {
            assert_eq!(check(&pair[0], &pair[1]), Ok(()), "{:?}", pair);
        }
        assert_eq!(check(&Phase::Installing, &Phase::Installing), Ok(()));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(check(&Phase::Running, &Phase::Installing).is_err());
        assert!(check(&Phase::Known, &Phase::Clustered).is_err());
        assert!(check(&Phase::Running, &Phase::Timeout).is_err());
        assert!(check(&Phase::Dhcp, &Phase::Discovered).is_err());
        assert!(check(&Phase::Stopped, &Phase::Unhealthy).is_ok());
        assert!(check(&Phase::Running, &Phase::Unhealthy).is_ok());
    }
}
