//! Hardware reports from booting machines (`lshw -json`, `dmidecode`, extra facts)
//! merged into one normalized [`Inventory`], plus change detection and a summary line.

mod changes;
pub mod dmidecode;
mod extra;
pub mod lshw;
pub mod placeholder;
mod report;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

pub use changes::{changes, human_bytes};
pub use report::{
    check_depth, parse_report, parse_report_with_limit, Report, ReportError, MAX_JSON_DEPTH,
    MAX_REPORT_BYTES,
};

/// Most entries kept per list (DIMMs, disks, NICs, GPUs); real machines have far fewer.
pub const MAX_ITEMS: usize = 1024;

/// The normalized hardware inventory of one machine; unknown is `None` or empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Inventory {
    /// System manufacturer, e.g. `Dell Inc.`.
    pub vendor: Option<String>,
    /// System product name, e.g. `PowerEdge R650`.
    pub product: Option<String>,
    /// System serial number (service tag).
    pub serial: Option<String>,
    /// SMBIOS system UUID, lowercase.
    pub uuid: Option<String>,
    /// SMBIOS SKU number.
    pub sku: Option<String>,
    /// Firmware identity.
    pub bios: Bios,
    /// How the machine booted this time, when the report says.
    pub boot_mode: Option<BootMode>,
    /// Whether UEFI Secure Boot is on, when the report says.
    pub secure_boot: Option<bool>,
    /// Processors.
    pub cpus: Cpus,
    /// Installed memory.
    pub memory: Memory,
    /// Block devices that are hardware disks.
    pub disks: Vec<Disk>,
    /// Network interfaces.
    pub nics: Vec<Nic>,
    /// Display adapters.
    pub gpus: Vec<Gpu>,
    /// The management controller, when SMBIOS describes one.
    pub bmc: Option<Bmc>,
}

/// Firmware vendor, version and release date (as the firmware writes it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Bios {
    /// Firmware vendor.
    pub vendor: Option<String>,
    /// Firmware version.
    pub version: Option<String>,
    /// Release date, e.g. `09/14/2022`.
    pub date: Option<String>,
}

/// Firmware interface the machine booted through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// UEFI.
    Uefi,
    /// Legacy BIOS.
    Bios,
}

/// Processors: populated sockets, and cores and threads summed over them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpus {
    /// Model of the first processor.
    pub model: Option<String>,
    /// Populated sockets.
    pub sockets: Option<u32>,
    /// Cores in all sockets.
    pub cores: Option<u32>,
    /// Hardware threads in all sockets.
    pub threads: Option<u32>,
}

/// Installed memory and its modules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Total installed memory in bytes.
    pub total_bytes: Option<u64>,
    /// Installed modules (empty slots are left out).
    pub dimms: Vec<Dimm>,
}

/// One installed memory module.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Dimm {
    /// Slot name, e.g. `A1` or `DIMM_A1`.
    pub locator: Option<String>,
    /// Module size in bytes.
    pub size_bytes: Option<u64>,
    /// Memory type, e.g. `DDR4`.
    #[serde(rename = "type")]
    pub memory_type: Option<String>,
    /// Configured speed in MT/s.
    pub speed_mts: Option<u32>,
    /// Module manufacturer (a name or a JEDEC id, as the firmware reports it).
    pub manufacturer: Option<String>,
    /// Module serial number.
    pub serial: Option<String>,
    /// Module part number.
    pub part_number: Option<String>,
}

/// One disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `nvme0n1`.
    pub name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Capacity in bytes.
    pub size_bytes: Option<u64>,
    /// Spinning media (`true`) or solid state (`false`).
    pub rotational: Option<bool>,
    /// Transport, e.g. `sata`, `sas`, `nvme`, `usb`.
    pub transport: Option<String>,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Nic {
    /// Interface name, e.g. `eno1`.
    pub name: Option<String>,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// Kernel driver.
    pub driver: Option<String>,
    /// Negotiated speed in Mbit/s.
    pub speed_mbps: Option<u32>,
    /// Whether the link (carrier) is up.
    pub link: Option<bool>,
}

/// One display adapter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Gpu {
    /// Vendor.
    pub vendor: Option<String>,
    /// Model.
    pub model: Option<String>,
}

/// The management controller: a Redfish host-interface address, or an IPMI interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Bmc {
    /// Redfish service IP (`kind = "redfish"`) or IPMI base address (`ipmi-*`).
    pub address: Option<String>,
    /// `redfish`, `ipmi-kcs`, `ipmi-ssif`, `ipmi-bt`, `ipmi-smic`.
    pub kind: Option<String>,
}

/// Merges a report into one inventory: dmidecode decides system identity, BIOS and
/// DIMMs, lshw the rest; each fills what the other left unknown; `extra` comes last.
pub fn normalize(report: &Report) -> Inventory {
    let dmi = report
        .dmidecode
        .as_deref()
        .map(dmidecode::inventory_from_dmidecode)
        .unwrap_or_default();
    let hw = report
        .lshw
        .as_ref()
        .map(lshw::inventory_from_lshw)
        .unwrap_or_default();
    let mut inv = Inventory {
        vendor: dmi.vendor.or(hw.vendor),
        product: dmi.product.or(hw.product),
        serial: dmi.serial.or(hw.serial),
        uuid: dmi.uuid.or(hw.uuid),
        sku: dmi.sku.or(hw.sku),
        bios: Bios {
            vendor: dmi.bios.vendor.or(hw.bios.vendor),
            version: dmi.bios.version.or(hw.bios.version),
            date: dmi.bios.date.or(hw.bios.date),
        },
        boot_mode: None,
        secure_boot: None,
        cpus: if hw.cpus.sockets.is_some() {
            Cpus {
                model: hw.cpus.model.or(dmi.cpus.model),
                sockets: hw.cpus.sockets,
                cores: hw.cpus.cores.or(dmi.cpus.cores),
                threads: hw.cpus.threads.or(dmi.cpus.threads),
            }
        } else {
            dmi.cpus
        },
        memory: if dmi.memory.dimms.is_empty() {
            hw.memory
        } else {
            dmi.memory
        },
        disks: hw.disks,
        nics: hw.nics,
        gpus: hw.gpus,
        bmc: dmi.bmc,
    };
    if let Some(extra) = &report.extra {
        extra::apply_extra(&mut inv, extra);
    }
    inv
}

impl Inventory {
    /// One line for lists and logs, e.g. `Dell Inc. PowerEdge R650 SN ABC123,
    /// 2×Xeon Gold 6338 (64c/128t), 512 GiB, 4 disks, 2 NICs`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut identity: Vec<String> = [&self.vendor, &self.product]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let Some(serial) = &self.serial {
            identity.push(format!("SN {serial}"));
        }
        if !identity.is_empty() {
            parts.push(identity.join(" "));
        }
        if let Some(model) = self.cpus.model.as_deref().map(short_cpu_model) {
            let mut cpu = match self.cpus.sockets {
                Some(n) if n > 1 => format!("{n}×{model}"),
                _ => model,
            };
            match (self.cpus.cores, self.cpus.threads) {
                (Some(c), Some(t)) => cpu.push_str(&format!(" ({c}c/{t}t)")),
                (Some(c), None) => cpu.push_str(&format!(" ({c}c)")),
                _ => {}
            }
            parts.push(cpu);
        }
        if let Some(total) = self.memory.total_bytes {
            parts.push(human_bytes(total));
        }
        if !self.disks.is_empty() {
            parts.push(plural(self.disks.len(), "disk", "disks"));
        }
        if !self.nics.is_empty() {
            parts.push(plural(self.nics.len(), "NIC", "NICs"));
        }
        if parts.is_empty() {
            "unknown hardware".to_string()
        } else {
            parts.join(", ")
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz` → `Xeon Gold 6338`: the words that tell
/// models apart, without trademarks, vendor and clock.
fn short_cpu_model(model: &str) -> String {
    let before_clock = model.split(" @ ").next().unwrap_or(model);
    let words: Vec<&str> = before_clock
        .split_whitespace()
        .map(|w| {
            w.trim_end_matches("(R)")
                .trim_end_matches("(r)")
                .trim_end_matches("(TM)")
                .trim_end_matches("(tm)")
        })
        .filter(|w| {
            !w.is_empty()
                && !matches!(
                    *w,
                    "Intel" | "AMD" | "CPU" | "Processor" | "processor" | "0"
                )
        })
        .collect();
    if words.is_empty() {
        model.to_string()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_full_inventory() {
        let inv = Inventory {
            vendor: Some("Dell Inc.".into()),
            product: Some("PowerEdge R650".into()),
            serial: Some("ABC123".into()),
            cpus: Cpus {
                model: Some("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz".into()),
                sockets: Some(2),
                cores: Some(64),
                threads: Some(128),
            },
            memory: Memory {
                total_bytes: Some(512 << 30),
                dimms: Vec::new(),
            },
            disks: vec![Disk::default(); 4],
            nics: vec![Nic::default(); 2],
            ..Inventory::default()
        };
        assert_eq!(
            inv.summary(),
            "Dell Inc. PowerEdge R650 SN ABC123, 2×Xeon Gold 6338 (64c/128t), 512 GiB, 4 disks, 2 NICs"
        );
        assert_eq!(Inventory::default().summary(), "unknown hardware");
    }

    #[test]
    fn json_field_names_match_the_contract() {
        let inv = Inventory {
            boot_mode: Some(BootMode::Uefi),
            memory: Memory {
                total_bytes: None,
                dimms: vec![Dimm {
                    memory_type: Some("DDR5".into()),
                    ..Dimm::default()
                }],
            },
            ..Inventory::default()
        };
        let v = serde_json::to_value(&inv).unwrap_or_default();
        assert_eq!(v["boot_mode"], "uefi");
        assert_eq!(v["memory"]["dimms"][0]["type"], "DDR5");
        assert!(v["bmc"].is_null());
        let back: Inventory = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(back, inv);
        // Stored inventories missing newer fields still load.
        let old: Result<Inventory, _> = serde_json::from_str(r#"{"vendor": "Acme"}"#);
        assert_eq!(old.ok().and_then(|i| i.vendor).as_deref(), Some("Acme"));
    }
}
