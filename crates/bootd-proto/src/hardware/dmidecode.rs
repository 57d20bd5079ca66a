//! `dmidecode` text output: split into SMBIOS records, then read BIOS (0), system (1),
//! baseboard (2), chassis (3), processors (4), memory devices (17) and BMC (38, 42).

use super::placeholder::{clean, clean_sku, clean_uuid};
use super::{Bios, Bmc, Cpus, Dimm, Inventory, MAX_ITEMS};

/// At most this many records are kept: SMBIOS handles are 16-bit, so more is not a real table.
pub const MAX_DMI_RECORDS: usize = 65_536;

/// One `Handle 0x..., DMI type N` block of dmidecode output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmiRecord {
    /// The SMBIOS structure type (`DMI type N`).
    pub dmi_type: u8,
    /// The record's title line, e.g. `Memory Device`.
    pub title: String,
    /// Every `Key: value` line in order, nested ones included (flattened).
    pub fields: Vec<(String, String)>,
}

impl DmiRecord {
    /// The first value of `key`, as written (trimmed).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, tidied, `None` when missing or a placeholder.
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).and_then(clean)
    }

    /// The first of `keys` present with a real value: dmidecode 2.0–2.6 wrote `Vendor`,
    /// `Product` and `Release` where later versions write `Manufacturer`, `Product Name`
    /// and `Release Date`.
    fn text_any(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.text(k))
    }
}

/// Splits dmidecode text into records; lines it does not understand are skipped, so
/// truncated or garbled output yields the records that were complete enough to read.
///
/// Three layouts are read: the usual one (`Handle 0x0001, DMI type 1, 27 bytes` then the
/// title), dmidecode 2.0–2.6 (`Handle 0x0001` alone, then an indented
/// `DMI type 1, 25 bytes.` and an indented `System Information Block` title), and
/// `dmidecode -q`, which prints no handle lines at all: there a record starts at a known
/// title (see [`type_of_title`]) and ends at a blank line.
pub fn parse_dmidecode(text: &str) -> Vec<DmiRecord> {
    let mut records: Vec<DmiRecord> = Vec::new();
    let mut current: Option<DmiRecord> = None;
    let mut want_title = false;
    // An old-style `Handle 0x0000` line whose `DMI type` line has not come yet.
    let mut want_type = false;
    for raw_line in text.lines() {
        let line = raw_line.trim_end_matches(['\r', ' ', '\t']);
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("Handle ") {
            if let Some(done) = current.take() {
                push_record(&mut records, done);
            }
            let dmi_type = parse_handle_line(rest);
            // `Handle 0x0000` alone: dmidecode 2.0–2.6 puts the type on the next line.
            want_type = dmi_type.is_none() && is_bare_handle(rest);
            current = (dmi_type.is_some() || want_type).then(|| DmiRecord {
                dmi_type: dmi_type.unwrap_or(u8::MAX),
                ..DmiRecord::default()
            });
            want_title = dmi_type.is_some();
            continue;
        }
        if trimmed.is_empty() {
            // A blank line ends the record body; dmidecode never puts one inside a record.
            if let Some(done) = current.take() {
                push_record(&mut records, done);
            }
            want_title = false;
            want_type = false;
            continue;
        }
        if want_type {
            want_type = false;
            if let Some(record) = current.as_mut() {
                if let Some(dmi_type) = trimmed.strip_prefix("DMI type ").and_then(leading_u8) {
                    record.dmi_type = dmi_type;
                    want_title = true;
                    continue;
                }
            }
        }
        // `dmidecode -q`: no handles, a record begins at its title, at column 0.
        if !want_title && !line.starts_with(['\t', ' ']) {
            if let Some(dmi_type) = type_of_title(trimmed) {
                if let Some(done) = current.take() {
                    push_record(&mut records, done);
                }
                current = Some(DmiRecord {
                    dmi_type,
                    title: trimmed.to_string(),
                    fields: Vec::new(),
                });
                continue;
            }
        }
        let Some(record) = current.as_mut() else {
            continue;
        };
        // The title follows the handle; dmidecode 2.0–2.6 indents it.
        if want_title && (!line.starts_with(['\t', ' ']) || !trimmed.contains(':')) {
            record.title = trimmed.chars().take(128).collect();
            want_title = false;
            continue;
        }
        want_title = false;
        if let Some((key, value)) = trimmed.split_once(':') {
            let key = key.trim();
            if !key.is_empty() {
                record
                    .fields
                    .push((key.to_string(), value.trim().to_string()));
            }
        }
    }
    if let Some(done) = current.take() {
        push_record(&mut records, done);
    }
    records
}

/// The SMBIOS type a record title stands for, for output without handle lines
/// (`dmidecode -q`). Only the types the inventory reads are listed; dmidecode 2.0–2.6
/// titles (`System Information Block`) are included.
pub fn type_of_title(title: &str) -> Option<u8> {
    Some(match title {
        "BIOS Information" | "BIOS Information Block" => 0,
        "System Information" | "System Information Block" => 1,
        "Base Board Information" | "Board Information Block" => 2,
        "Chassis Information" | "Chassis Information Block" => 3,
        "Processor Information" => 4,
        "Memory Device" => 17,
        "IPMI Device Information" => 38,
        "Management Controller Host Interface" => 42,
        _ => return None,
    })
}

fn push_record(records: &mut Vec<DmiRecord>, record: DmiRecord) {
    if records.len() < MAX_DMI_RECORDS {
        records.push(record);
    }
}

/// The type number from `0x0000, DMI type 17, 40 bytes`.
fn parse_handle_line(rest: &str) -> Option<u8> {
    leading_u8(rest.split_once("DMI type ")?.1)
}

/// `0x0000` and nothing else: the first line of a dmidecode 2.0–2.6 record.
fn is_bare_handle(rest: &str) -> bool {
    rest.trim()
        .strip_prefix("0x")
        .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

fn leading_u8(text: &str) -> Option<u8> {
    let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// What dmidecode alone says about a machine, in inventory form.
pub fn inventory_from_dmidecode(text: &str) -> Inventory {
    let records = parse_dmidecode(text);
    let mut inv = Inventory::default();
    let of_type = |t: u8| records.iter().filter(move |r| r.dmi_type == t);

    if let Some(bios) = of_type(0).next() {
        inv.bios = Bios {
            vendor: bios.text("Vendor"),
            version: bios.text("Version"),
            date: bios.text_any(&["Release Date", "Release"]),
        };
    }
    let system = of_type(1).next();
    let board = of_type(2).next();
    let chassis = of_type(3).next();
    if let Some(sys) = system {
        inv.vendor = sys.text_any(&["Manufacturer", "Vendor"]);
        inv.product = sys.text_any(&["Product Name", "Product"]);
        inv.serial = sys.text("Serial Number");
        inv.uuid = sys.get("UUID").and_then(clean_uuid);
        inv.sku = sys.get("SKU Number").and_then(clean_sku);
    }
    // White-box systems often fill only the baseboard (Supermicro, ASRock Rack).
    if let Some(board) = board {
        inv.vendor = inv
            .vendor
            .or_else(|| board.text_any(&["Manufacturer", "Vendor"]));
        inv.product = inv
            .product
            .or_else(|| board.text_any(&["Product Name", "Product"]));
    }
    // HPE and Lenovo repeat the system serial on the chassis; boards carry their own.
    inv.serial = inv
        .serial
        .or_else(|| chassis.and_then(|c| c.text("Serial Number")))
        .or_else(|| board.and_then(|b| b.text("Serial Number")));

    inv.cpus = cpus_from_records(of_type(4));
    inv.memory.dimms = of_type(17)
        .filter_map(dimm_from_record)
        .take(MAX_ITEMS)
        .collect();
    if !inv.memory.dimms.is_empty() {
        inv.memory.total_bytes = inv
            .memory
            .dimms
            .iter()
            .filter_map(|d| d.size_bytes)
            .try_fold(0u64, |acc, s| acc.checked_add(s));
    }
    inv.bmc = of_type(42)
        .find_map(bmc_from_host_interface)
        .or_else(|| of_type(38).find_map(bmc_from_ipmi));
    inv
}

/// Populated, enabled sockets, summed cores and threads, and the first model seen.
///
/// dmidecode prints `Unpopulated` or `Populated, <state>`; hypervisors list every socket
/// they could offer (dozens) and mark the unused ones `Unpopulated`, `Populated, No CPU`
/// or `Populated, CPU Disabled`. A socket counts when it is populated and its state is
/// not a disabled or empty one (`Enabled`, `Idle`, `Other`, `Unknown` count).
fn cpus_from_records<'a>(records: impl Iterator<Item = &'a DmiRecord>) -> Cpus {
    let mut cpus = Cpus::default();
    for rec in records {
        let status = rec.get("Status").unwrap_or_default();
        let model = rec.text_any(&["Version", "Processor Version"]);
        // Some firmware (and dmidecode 2.0–2.6) omits Status; a named processor then
        // counts as present.
        let assumed_present = status.is_empty() && model.is_some();
        if !(socket_in_use(status) || assumed_present) {
            continue;
        }
        cpus.sockets = Some(cpus.sockets.unwrap_or(0).saturating_add(1));
        if cpus.model.is_none() {
            cpus.model = model;
        }
        if let Some(cores) = rec.get("Core Count").and_then(leading_u32) {
            cpus.cores = Some(cpus.cores.unwrap_or(0).saturating_add(cores));
        }
        if let Some(threads) = rec.get("Thread Count").and_then(leading_u32) {
            cpus.threads = Some(cpus.threads.unwrap_or(0).saturating_add(threads));
        }
    }
    cpus
}

/// `Populated, Enabled` → true; `Unpopulated`, `Populated, Disabled By BIOS`,
/// `Populated, CPU Disabled`, `Populated, No CPU` → false.
fn socket_in_use(status: &str) -> bool {
    let mut parts = status.split(',').map(|p| p.trim().to_ascii_lowercase());
    // "Unpopulated" contains "populated": compare the whole first word.
    if parts.next().as_deref() != Some("populated") {
        return false;
    }
    parts.all(|state| !state.contains("disabled") && !state.contains("no cpu"))
}

/// An installed memory module; empty slots (no size) are not DIMMs.
fn dimm_from_record(rec: &DmiRecord) -> Option<Dimm> {
    let size_bytes = parse_size(rec.get("Size")?)?;
    if size_bytes == 0 {
        return None;
    }
    let speed = rec
        .get("Configured Memory Speed")
        .or_else(|| rec.get("Configured Clock Speed"))
        .and_then(leading_u32)
        .or_else(|| rec.get("Speed").and_then(leading_u32));
    Some(Dimm {
        locator: rec.text("Locator").or_else(|| rec.text("Bank Locator")),
        size_bytes: Some(size_bytes),
        memory_type: rec.text("Type"),
        speed_mts: speed,
        manufacturer: rec.text("Manufacturer"),
        serial: rec.text("Serial Number"),
        part_number: rec.text("Part Number"),
    })
}

/// `16 GB`, `16384 MB`, `512 kB`, `1 TB` → bytes; anything else → `None`.
pub fn parse_size(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    let number: u64 = words.next()?.parse().ok()?;
    let unit: u64 = match words.next()?.to_ascii_lowercase().as_str() {
        "bytes" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// The number at the start of `2666 MT/s`, `20`, `3200 MHz`.
fn leading_u32(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

/// SMBIOS type 42 with Redfish over IP: the BMC's in-band Redfish address.
fn bmc_from_host_interface(rec: &DmiRecord) -> Option<Bmc> {
    let protocol = rec.get("Protocol ID")?;
    if !protocol.contains("Redfish") {
        return None;
    }
    let address = rec
        .text("IPv4 Redfish Service Address")
        .or_else(|| rec.text("IPv6 Redfish Service Address"));
    Some(Bmc {
        address,
        kind: Some("redfish".to_string()),
    })
}

/// SMBIOS type 38: an IPMI BMC, its system interface (`ipmi-kcs`, `ipmi-ssif`...) and
/// the interface's base address.
fn bmc_from_ipmi(rec: &DmiRecord) -> Option<Bmc> {
    let interface = rec.get("Interface Type")?.split_whitespace().next()?;
    let kind = format!("ipmi-{}", interface.to_ascii_lowercase());
    let address = rec
        .get("Base Address")
        .and_then(|a| a.split_whitespace().next())
        .and_then(clean);
    Some(Bmc {
        address,
        kind: clean(&kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# dmidecode 3.4\nSMBIOS 3.0 present.\n\nHandle 0x0001, DMI type 1, 27 bytes\r\nSystem Information\r\n\tManufacturer: Acme\r\n\tProduct Name: To Be Filled By O.E.M.\r\n\tSerial Number: SN123\r\n\tUUID: 00000000-0000-0000-0000-000000000000\r\n\r\nHandle 0x0002, DMI type 2, 8 bytes\nBase Board Information\n\tManufacturer: Acme\n\tProduct Name: Board-9\n\nHandle 0x0011, DMI type 17, 40 bytes\nMemory Device\n\tSize: 8192 MB\n\tLocator: DIMM_A1\n\tType: DDR4\n\tSpeed: 2400 MHz\n\tPart Number: PartNum0\n";

    #[test]
    fn records_fields_and_fallbacks() {
        let records = parse_dmidecode(SAMPLE);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].title, "System Information");
        assert_eq!(records[0].get("Manufacturer"), Some("Acme"));
        let inv = inventory_from_dmidecode(SAMPLE);
        assert_eq!(inv.vendor.as_deref(), Some("Acme"));
        assert_eq!(inv.product.as_deref(), Some("Board-9"));
        assert_eq!(inv.serial.as_deref(), Some("SN123"));
        assert_eq!(inv.uuid, None);
        assert_eq!(inv.memory.total_bytes, Some(8 << 30));
        assert_eq!(inv.memory.dimms[0].speed_mts, Some(2400));
        assert_eq!(inv.memory.dimms[0].part_number, None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16 GB"), Some(16 << 30));
        assert_eq!(parse_size("16384 MB"), Some(16 << 30));
        assert_eq!(parse_size("No Module Installed"), None);
        assert_eq!(parse_size("99999999999999 TB"), None);
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse_dmidecode("Handle \nHandle 0x, DMI type x\n\t:\n").is_empty());
        assert_eq!(inventory_from_dmidecode("\u{0}\u{1}"), Inventory::default());
    }
}
