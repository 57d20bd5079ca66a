//! Firmware placeholder strings ("To Be Filled By O.E.M.", "Not Specified", all-zero
//! UUIDs...) recognised and turned into "unknown", plus the tidying every field gets.

/// Longest text kept for one inventory field; firmware strings are short, so more is noise.
pub const MAX_FIELD_CHARS: usize = 256;

/// Values vendors leave in SMBIOS/lshw fields when they mean "unknown" (compared lowercased).
const PLACEHOLDERS: &[&str] = &[
    "",
    "-",
    "--",
    "n/a",
    "na",
    "none",
    "null",
    "unknown",
    "undefined",
    "not specified",
    "not present",
    "not provided",
    "not available",
    "not applicable",
    "not installed",
    "not settable",
    "no module installed",
    "no dimm",
    "empty",
    "default string",
    "to be filled by o.e.m.",
    "to be filled by oem",
    "o.e.m.",
    "oem",
    "oem_string",
    "system product name",
    "system manufacturer",
    "system serial number",
    "system version",
    "system name",
    "chassis serial number",
    "chassis manufacture",
    "chassis manufacturer",
    "base board serial number",
    "baseboard serial number",
    "board serial number",
    "type1productconfigid",
    "type2 - board serial number",
    "sku",
    "sku=notprovided",
    "skunumber",
    "serial number",
    "serialnumber",
    "part number",
    "product name",
    "0123456789",
    "123456789",
    "1234567890",
    "01234567890123456789ab",
    "invalid",
    "unknow",
];

/// Tidies a raw firmware string: trims, collapses inner whitespace, caps its length, and
/// returns `None` when what is left means "unknown".
pub fn clean(raw: &str) -> Option<String> {
    let collapsed = raw
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if is_placeholder(&collapsed) {
        return None;
    }
    Some(collapsed.chars().take(MAX_FIELD_CHARS).collect())
}

/// Whether an already-trimmed value is a known placeholder rather than real data.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDERS.contains(&lower.as_str()) {
        return true;
    }
    // dmidecode's own markers for values it could not decode: "<OUT OF SPEC>", "<BAD INDEX>".
    if value.starts_with('<') && value.ends_with('>') {
        return true;
    }
    // "0000000", "XXXXXXXX", "........", "FFFFFFFF": one repeated filler character.
    let mut chars = lower.chars();
    if let Some(first) = chars.next() {
        if value.chars().count() >= 3
            && matches!(first, '0' | 'x' | '.' | 'f' | '*' | ' ' | '#')
            && chars.all(|c| c == first)
        {
            return true;
        }
    }
    // AMI/Insyde templates: "PartNum0", "SerNum3", "Manufacturer01", "AssetTagNum2".
    for prefix in [
        "partnum",
        "sernum",
        "manufacturer",
        "assettagnum",
        "asset tag",
    ] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            if rest.trim().chars().all(|c| c.is_ascii_digit()) {
                return true;
            }
        }
    }
    false
}

/// System UUIDs that firmware templates ship unchanged, so that thousands of boards
/// report the same one (lowercase, both byte orders where dmidecode versions differ):
/// - `03000200-0400-0500-0006-000700080009` (and `00020003-…` in the older byte order):
///   AMI Aptio's unfilled default, on many white-box and consumer boards
///   (github.com/oshi/oshi issue 2417).
/// - `12345678-1234-5678-90ab-cddeefaabbcc` (and `78563412-3412-7856-…`): the AMI/Insyde
///   sample value.
/// - `8a95d198-7f46-11e5-bf8b-08002704d48e`: the hard-coded Type 1 UUID of EDK II
///   `ArmPkg`-derived firmware on arm64 boards (github.com/SolidRun/lx2160a_uefi issue 4).
/// - `11111111-2222-3333-4444-555555555555`: a QEMU/libvirt template value seen in public
///   dumps of many guests.
/// - `4c4c4544-0000-2010-8020-80c04f202020`: Dell's UUID derived from an empty service
///   tag.
///
/// All-zero and all-F values are refused separately.
pub const PLACEHOLDER_UUIDS: &[&str] = &[
    "03000200-0400-0500-0006-000700080009",
    "00020003-0004-0005-0006-000700080009",
    "12345678-1234-5678-90ab-cddeefaabbcc",
    "78563412-3412-7856-90ab-cddeefaabbcc",
    "8a95d198-7f46-11e5-bf8b-08002704d48e",
    "98d1958a-467f-e511-bf8b-08002704d48e",
    "11111111-2222-3333-4444-555555555555",
    "4c4c4544-0000-2010-8020-80c04f202020",
    "44454c4c-0000-1020-8020-80c04f202020",
];

/// A SMBIOS/lshw UUID as lowercase `8-4-4-4-12` hex, or `None` for malformed, all-zero
/// and all-F values (firmware that has no UUID fills it that way) and for the shared
/// template values in [`PLACEHOLDER_UUIDS`]: a UUID many machines share identifies none.
pub fn clean_uuid(raw: &str) -> Option<String> {
    let hex: Vec<char> = raw
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 32 || !hex.iter().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if hex.iter().all(|c| *c == '0') || hex.iter().all(|c| *c == 'f') {
        return None;
    }
    let text: String = hex.into_iter().collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        text.get(0..8)?,
        text.get(8..12)?,
        text.get(12..16)?,
        text.get(16..20)?,
        text.get(20..32)?
    );
    (!PLACEHOLDER_UUIDS.contains(&uuid.as_str())).then_some(uuid)
}

/// The SKU inside Dell's `SKU=0912;ModelName=PowerEdge R650` form, else the cleaned value.
pub fn clean_sku(raw: &str) -> Option<String> {
    let value = clean(raw)?;
    match value.strip_prefix("SKU=") {
        Some(rest) => clean(rest.split(';').next().unwrap_or_default())
            .filter(|sku| !sku.eq_ignore_ascii_case("NotProvided")),
        None => Some(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_mean_unknown() {
        for raw in [
            "Not Specified",
            "To Be Filled By O.E.M.",
            "To be filled by O.E.M.",
            "Default string",
            "Default String",
            "0123456789",
            "System Product Name",
            "System Name",
            "None",
            "Not Present",
            "Unknown",
            "Chassis Serial Number",
            "OEM",
            "--",
            "   ",
            "0000000000",
            "XXXXXXXXXX",
            "PartNum0",
            "SerNum12",
            "NO DIMM",
            "<OUT OF SPEC>",
        ] {
            assert_eq!(clean(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn real_values_are_tidied_and_kept() {
        assert_eq!(clean("  Dell Inc.  "), Some("Dell Inc.".into()));
        assert_eq!(
            clean("Intel(R) Xeon(R)   Gold 6138\tCPU"),
            Some("Intel(R) Xeon(R) Gold 6138 CPU".into())
        );
        assert_eq!(clean("OEM-R 720xd"), Some("OEM-R 720xd".into()));
        assert_eq!(clean("0x1234"), Some("0x1234".into()));
        assert_eq!(
            clean(&"a".repeat(1000)).map(|s| s.len()),
            Some(MAX_FIELD_CHARS)
        );
    }

    #[test]
    fn uuids_are_normalised_and_fillers_refused() {
        assert_eq!(
            clean_uuid("4C4C4544-0036-3210-805A-B7C04F4D3632"),
            Some("4c4c4544-0036-3210-805a-b7c04f4d3632".into())
        );
        assert_eq!(clean_uuid("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(clean_uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"), None);
        assert_eq!(clean_uuid("Not Settable"), None);
        assert_eq!(clean_uuid("4C4C4544-0036"), None);
        for shared in [
            "03000200-0400-0500-0006-000700080009",
            "00020003-0004-0005-0006-000700080009",
            "12345678-1234-5678-90AB-CDDEEFAABBCC",
            "8A95D198-7F46-11E5-BF8B-08002704D48E",
            "11111111-2222-3333-4444-555555555555",
            "4C4C4544-0000-2010-8020-80C04F202020",
        ] {
            assert_eq!(clean_uuid(shared), None, "{shared}");
        }
        for uuid in PLACEHOLDER_UUIDS {
            assert_eq!(uuid.len(), 36, "{uuid}");
            assert_eq!(*uuid, uuid.to_ascii_lowercase(), "{uuid}");
        }
    }

    #[test]
    fn dell_sku_form_is_unwrapped() {
        assert_eq!(
            clean_sku("SKU=0912;ModelName=PowerEdge R650"),
            Some("0912".into())
        );
        assert_eq!(clean_sku("SKU=NotProvided;ModelName=PowerEdge M630"), None);
        assert_eq!(clean_sku("P19719-B21"), Some("P19719-B21".into()));
    }
}
