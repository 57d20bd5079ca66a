//! Fuzzes the dmidecode text parser and the inventory built from it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect
#![no_main]

use bootd_proto::hardware::{
    changes,
    dmidecode::{inventory_from_dmidecode, parse_dmidecode},
    normalize, Report,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_dmidecode(&text);
    let inv = inventory_from_dmidecode(&text);
    let _ = inv.summary();
    let report = Report {
        dmidecode: Some(text.into_owned()),
        ..Report::default()
    };
    let merged = normalize(&report);
    let _ = changes(&inv, &merged);
});
