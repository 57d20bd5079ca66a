//! Fuzzes the DHCP hot path: frame parse → lease plan → decide → reply write, in both
//! modes and on both ports. Nothing may panic; a written reply must parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bootd::dhcp::fuzz_one(data);
});
