//! bootd's API as both sides see it: the JSON bodies of the HTTP API and the control
//! socket, the route paths, deployment phases and timestamps. The daemon serializes
//! these types and `bootctl` reads them back, so a field cannot drift between the two.
//! Field names are a contract (DESIGN.md): fields may be added, none renamed.

pub mod body;
pub mod phase;
pub mod routes;
pub mod time;

pub use body::*;
pub use phase::{Phase, TransitionError};
pub use time::Timestamp;
