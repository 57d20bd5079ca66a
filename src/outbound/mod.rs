//! Every HTTP(S) request bootd sends out — relay events, group and power-cycle hooks,
//! health and provider-status polls — through one bounded client, one signer, one backoff.

mod backoff;
mod call;
mod client;
mod error;
mod sign;

pub use backoff::{backoff, random_unit, BACKOFF_BASE, BACKOFF_CAP};
pub use call::{Call, USER_AGENT};
pub use client::{Answer, HttpClient};
pub use error::{excerpt, OutboundError, MAX_EXCERPT};
pub use sign::{Secret, SIGNATURE_HEADER, TIMESTAMP_HEADER};
