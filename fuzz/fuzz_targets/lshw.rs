//! Fuzzes the hardware-report entry point: a POSTed body through `parse_report` and
//! `normalize`, and the same bytes as bare `lshw -json` output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect
#![no_main]

use bootd_proto::hardware::{
    changes, check_depth, lshw::inventory_from_lshw, normalize, parse_report, Inventory,
    MAX_JSON_DEPTH,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_report(data) {
        let inv = normalize(&report);
        let _ = inv.summary();
        let _ = changes(&Inventory::default(), &inv);
        let _ = changes(&inv, &inv);
        let _ = serde_json::to_vec(&inv);
    }
    // The bare lshw document, as an agent that skips the envelope would send it.
    if check_depth(data, MAX_JSON_DEPTH).is_ok() {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
            let _ = inventory_from_lshw(&value).summary();
        }
    }
});
