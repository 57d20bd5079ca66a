//! Fuzzes the DHCP hot path: frame parse → lease plan → decide → reply write, in both
//! modes and on both ports. Nothing may panic; a written reply must parse back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bootd_proto::dhcp::fuzz_one(data);
});
