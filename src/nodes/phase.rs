//! Deployment phases live in `bootd-api` (the daemon and `bootctl` share them).

pub use bootd_api::phase::*;
