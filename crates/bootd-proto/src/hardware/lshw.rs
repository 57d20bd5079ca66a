//! `lshw -json` output (one top-level object, or the flat array `-class` filters print):
//! walks the node tree by `class` and reads system, BIOS, DIMMs, CPUs, disks, NICs, GPUs.

use serde_json::Value;

use super::placeholder::{clean, clean_sku, clean_uuid};
use super::{Bios, Cpus, Dimm, Disk, Gpu, Inventory, Nic, MAX_ITEMS};
use crate::mac::MacAddr;

/// Nodes visited at most; a real machine has a few thousand, this bounds hostile input.
pub const MAX_LSHW_NODES: usize = 200_000;

/// What lshw alone says about a machine, in inventory form.
pub fn inventory_from_lshw(root: &Value) -> Inventory {
    let mut walk = Walk::default();
    // Explicit stack: no recursion, so nesting depth cannot exhaust ours.
    let mut stack: Vec<(&Value, Option<&Value>)> = match root {
        Value::Array(items) => items.iter().rev().map(|n| (n, None)).collect(),
        other => vec![(other, None)],
    };
    let mut visited = 0usize;
    while let Some((node, parent)) = stack.pop() {
        visited += 1;
        if visited > MAX_LSHW_NODES {
            break;
        }
        if !node.is_object() {
            continue;
        }
        walk.visit(node, parent);
        if let Some(Value::Array(children)) = node.get("children") {
            stack.extend(children.iter().rev().map(|c| (c, Some(node))));
        }
    }
    walk.finish()
}

#[derive(Default)]
struct Walk {
    inv: Inventory,
    seen_system: bool,
    board_vendor: Option<String>,
    board_product: Option<String>,
    system_memory: Option<u64>,
}

impl Walk {
    fn visit(&mut self, node: &Value, parent: Option<&Value>) {
        match text(node, "class").as_deref() {
            Some("system") if !self.seen_system => self.system(node),
            Some("bus") if self.board_vendor.is_none() && is_motherboard(node) => {
                self.board_vendor = text(node, "vendor");
                self.board_product = text(node, "product");
            }
            Some("memory") => self.memory(node),
            Some("processor") => self.processor(node),
            Some("disk") => self.disk(node, parent),
            Some("network") => self.network(node),
            Some("display") => {
                let gpu = Gpu {
                    vendor: text(node, "vendor"),
                    model: text(node, "product"),
                };
                if (gpu.vendor.is_some() || gpu.model.is_some()) && self.inv.gpus.len() < MAX_ITEMS
                {
                    self.inv.gpus.push(gpu);
                }
            }
            _ => {}
        }
    }

    fn system(&mut self, node: &Value) {
        self.seen_system = true;
        let sku_raw = config(node, "sku");
        self.inv.sku = sku_raw.as_deref().and_then(clean_sku);
        // lshw appends " (<sku>)" to the product name when a SKU exists.
        self.inv.product = text(node, "product").and_then(|p| match sku_raw.as_deref() {
            Some(sku) => clean(
                p.strip_suffix(&format!("({sku})"))
                    .map(str::trim_end)
                    .unwrap_or(&p),
            ),
            None => Some(p),
        });
        self.inv.vendor = text(node, "vendor");
        self.inv.serial = text(node, "serial");
        self.inv.uuid = config(node, "uuid").as_deref().and_then(clean_uuid);
    }

    fn memory(&mut self, node: &Value) {
        let id = raw_str(node, "id").unwrap_or_default();
        let description = raw_str(node, "description")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if id == "firmware" || description == "bios" {
            if self.inv.bios == Bios::default() {
                self.inv.bios = Bios {
                    vendor: text(node, "vendor"),
                    version: text(node, "version"),
                    date: text(node, "date"),
                };
            }
        } else if id.starts_with("bank") {
            // Flash and ROM banks hang under "memory" too; only RAM modules are DIMMs.
            let is_ram = !description.contains("flash") && !description.contains("non-volatile");
            let size = number(node, "size").filter(|s| *s > 0);
            if is_ram && size.is_some() && self.inv.memory.dimms.len() < MAX_ITEMS {
                self.inv.memory.dimms.push(Dimm {
                    locator: text(node, "slot"),
                    size_bytes: size,
                    memory_type: memory_type(&description),
                    speed_mts: number(node, "clock")
                        .map(|hz| hz / 1_000_000)
                        .and_then(|m| u32::try_from(m).ok())
                        .filter(|m| *m > 0),
                    manufacturer: text(node, "vendor"),
                    serial: text(node, "serial"),
                    part_number: text(node, "product"),
                });
            }
        } else if id.starts_with("memory") && description.contains("system memory")
            || id == "memory" && description.is_empty()
        {
            if let Some(size) = number(node, "size") {
                self.system_memory = Some(self.system_memory.unwrap_or(0).saturating_add(size));
            }
        }
    }

    fn processor(&mut self, node: &Value) {
        let disabled = node.get("disabled").and_then(Value::as_bool) == Some(true);
        let model = text(node, "product").or_else(|| text(node, "version"));
        let cores = config(node, "cores").and_then(|c| c.parse::<u32>().ok());
        let threads = config(node, "threads").and_then(|t| t.parse::<u32>().ok());
        if disabled || (model.is_none() && cores.is_none()) {
            return;
        }
        let cpus: &mut Cpus = &mut self.inv.cpus;
        cpus.sockets = Some(cpus.sockets.unwrap_or(0).saturating_add(1));
        if cpus.model.is_none() {
            cpus.model = model;
        }
        if let Some(c) = cores {
            cpus.cores = Some(cpus.cores.unwrap_or(0).saturating_add(c));
        }
        if let Some(t) = threads {
            cpus.threads = Some(cpus.threads.unwrap_or(0).saturating_add(t));
        }
    }

    fn disk(&mut self, node: &Value, parent: Option<&Value>) {
        let id = raw_str(node, "id").unwrap_or_default();
        let description = raw_str(node, "description")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let optical = id.starts_with("cdrom")
            || description.contains("dvd")
            || description.contains("cd-rom")
            || has_capability(node, "dvd")
            || has_capability(node, "cd-r");
        // Removable media (a card in a USB reader, a disc in a drive) is a `medium` child
        // of its drive, with the same device node: the drive is listed once, with the
        // medium's size.
        if id.starts_with("medium") && parent.is_some_and(|p| raw_str(p, "class") == Some("disk")) {
            return;
        }
        let medium = node
            .get("children")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter().find(|n| {
                    raw_str(n, "class") == Some("disk")
                        && raw_str(n, "id").is_some_and(|i| i.starts_with("medium"))
                })
            });
        let name = device_name(node).or_else(|| medium.and_then(device_name));
        let size = number(node, "size")
            .filter(|s| *s > 0)
            .or_else(|| medium.and_then(|m| number(m, "size")).filter(|s| *s > 0));
        if optical || (name.is_none() && size.is_none()) || self.inv.disks.len() >= MAX_ITEMS {
            return;
        }
        let bus = raw_str(node, "businfo").unwrap_or_default();
        // An NVMe namespace carries no model or serial: its controller (the parent) does.
        let nvme_parent = parent.filter(|p| {
            raw_str(p, "businfo").is_some_and(|b| b.starts_with("pci@"))
                && (id.starts_with("namespace") || bus.starts_with("nvme@"))
        });
        let transport = if bus.starts_with("nvme@") || id.starts_with("namespace") {
            Some("nvme")
        } else if bus.starts_with("usb@") {
            Some("usb")
        } else if bus.starts_with("virtio@") {
            Some("virtio")
        } else {
            None
        };
        let rotational = if transport == Some("nvme") || has_capability(node, "ssd") {
            Some(false)
        } else if capability_keys(node).any(|k| k.ends_with("rpm")) {
            Some(true)
        } else {
            None
        };
        self.inv.disks.push(Disk {
            name,
            model: text(node, "product").or_else(|| nvme_parent.and_then(|p| text(p, "product"))),
            serial: text(node, "serial").or_else(|| nvme_parent.and_then(|p| text(p, "serial"))),
            size_bytes: size,
            rotational,
            transport: transport.map(str::to_string),
        });
    }

    fn network(&mut self, node: &Value) {
        // A PCI function whose interface is a child node (virtio) is listed once, as the child.
        let has_network_child = node
            .get("children")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|n| raw_str(n, "class") == Some("network")));
        // Bridges, bonds, VLANs and tunnels are "logical" and sit on no bus.
        let is_virtual = has_capability(node, "logical") && raw_str(node, "businfo").is_none();
        // In `-class` (flat array) output the virtio PCI function appears beside its
        // interface; "virtio-pci" is the transport's driver, never a NIC's.
        let is_transport = config(node, "driver").as_deref() == Some("virtio-pci");
        if has_network_child || is_virtual || is_transport || self.inv.nics.len() >= MAX_ITEMS {
            return;
        }
        let speed_mbps = config(node, "speed")
            .as_deref()
            .and_then(parse_link_speed)
            .or_else(|| {
                number(node, "size")
                    .filter(|_| raw_str(node, "units") == Some("bit/s"))
                    .and_then(|bits| u32::try_from(bits / 1_000_000).ok())
            })
            .filter(|m| *m > 0);
        let link = match config(node, "link").as_deref() {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        };
        self.inv.nics.push(Nic {
            name: logical_names(node).next().and_then(clean),
            mac: raw_str(node, "serial")
                .and_then(|s| s.parse::<MacAddr>().ok())
                .filter(|m| m.octets() != [0; 6]),
            driver: config(node, "driver").as_deref().and_then(clean),
            speed_mbps,
            link,
        });
    }

    fn finish(mut self) -> Inventory {
        self.inv.vendor = self.inv.vendor.or(self.board_vendor);
        self.inv.product = self.inv.product.or(self.board_product);
        self.inv.memory.total_bytes = self.system_memory.filter(|s| *s > 0).or_else(|| {
            let sizes = self.inv.memory.dimms.iter().filter_map(|d| d.size_bytes);
            let total = sizes.fold(0u64, u64::saturating_add);
            (total > 0).then_some(total)
        });
        self.inv
    }
}

/// `10Gbit/s`, `1Gbit/s`, `100Mbit/s` → megabits per second.
pub fn parse_link_speed(text: &str) -> Option<u32> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, factor) = if let Some(n) = lower.strip_suffix("gbit/s") {
        (n, 1000)
    } else if let Some(n) = lower.strip_suffix("mbit/s") {
        (n, 1)
    } else {
        return None;
    };
    number.trim().parse::<u32>().ok()?.checked_mul(factor)
}

/// `DIMM DDR4 Synchronous Registered (Buffered) 2666 MHz` → `DDR4`.
fn memory_type(description_lower: &str) -> Option<String> {
    description_lower
        .split_whitespace()
        .find(|w| w.contains("ddr") || *w == "sdram" || *w == "hbm" || w.starts_with("hbm"))
        .map(str::to_ascii_uppercase)
}

fn is_motherboard(node: &Value) -> bool {
    raw_str(node, "id") == Some("core")
        || raw_str(node, "description").is_some_and(|d| d.eq_ignore_ascii_case("motherboard"))
}

fn raw_str<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Value::as_str)
}

fn text(node: &Value, key: &str) -> Option<String> {
    raw_str(node, key).and_then(clean)
}

fn config(node: &Value, key: &str) -> Option<String> {
    match node.get("configuration")?.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-negative integer given as a JSON number or a decimal string.
fn number(node: &Value, key: &str) -> Option<u64> {
    match node.get(key)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn capability_keys(node: &Value) -> impl Iterator<Item = &str> {
    node.get("capabilities")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.keys().map(String::as_str))
}

fn has_capability(node: &Value, key: &str) -> bool {
    node.get("capabilities")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(key))
}

/// `logicalname` is a string, or an array (a disk lists its mount points after it).
fn logical_names(node: &Value) -> impl Iterator<Item = &str> {
    let items: Vec<&str> = match node.get("logicalname") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    items.into_iter()
}

/// `/dev/sda` → `sda`; only device nodes name a disk (mount points do not).
fn device_name(node: &Value) -> Option<String> {
    logical_names(node)
        .find_map(|n| n.strip_prefix("/dev/"))
        .and_then(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn speeds() {
        assert_eq!(parse_link_speed("10Gbit/s"), Some(10_000));
        assert_eq!(parse_link_speed("100Mbit/s"), Some(100));
        assert_eq!(parse_link_speed("fast"), None);
    }

    #[test]
    fn nvme_namespace_takes_model_and_serial_from_its_controller() {
        let inv = inventory_from_lshw(&json!([{
            "class": "storage", "id": "nvme", "businfo": "pci@0000:01:00.0",
            "product": "Samsung SSD 980 PRO 1TB", "serial": "S5GXNF0R123456",
            "logicalname": "/dev/nvme0",
            "children": [{
                "class": "disk", "id": "namespace:0", "businfo": "nvme@0:1",
                "logicalname": "/dev/nvme0n1", "size": 1000204886016u64
            }]
        }]));
        assert_eq!(
            inv.disks,
            [Disk {
                name: Some("nvme0n1".into()),
                model: Some("Samsung SSD 980 PRO 1TB".into()),
                serial: Some("S5GXNF0R123456".into()),
                size_bytes: Some(1_000_204_886_016),
                rotational: Some(false),
                transport: Some("nvme".into()),
            }]
        );
    }

    #[test]
    fn partial_nodes_are_tolerated() {
        let inv = inventory_from_lshw(&json!({
            "class": "system",
            "product": "Box (SKU1)",
            "configuration": {"sku": "SKU1", "uuid": "00000000-0000-0000-0000-000000000000"},
            "children": [
                {"class": "processor", "disabled": true, "product": "Ghost CPU"},
                {"class": "processor", "product": "Real CPU", "configuration": {"cores": "8", "threads": "16"}},
                {"class": "network", "serial": "not-a-mac", "configuration": {"speed": "1Gbit/s", "link": "no"}},
                {"class": "disk", "id": "cdrom", "logicalname": "/dev/sr0"},
                {"class": "disk", "logicalname": ["/dev/vda", "/"], "size": "1024"},
                {"class": "memory", "id": "bank:0", "description": "[empty]"},
                {"class": 7, "children": "nope"},
                42
            ]
        }));
        assert_eq!(inv.product.as_deref(), Some("Box"));
        assert_eq!(inv.sku.as_deref(), Some("SKU1"));
        assert_eq!(inv.uuid, None);
        assert_eq!(inv.cpus.sockets, Some(1));
        assert_eq!(inv.cpus.cores, Some(8));
        assert_eq!(inv.nics.len(), 1);
        assert_eq!(inv.nics[0].mac, None);
        assert_eq!(inv.nics[0].speed_mbps, Some(1000));
        assert_eq!(inv.nics[0].link, Some(false));
        assert_eq!(inv.disks.len(), 1);
        assert_eq!(inv.disks[0].name.as_deref(), Some("vda"));
        assert_eq!(inv.disks[0].size_bytes, Some(1024));
        assert!(inv.memory.dimms.is_empty());
    }

    #[test]
    fn removable_medium_is_its_drive_not_a_second_disk() {
        // lshw's SCSI scan gives a removable drive a `medium` child with the same
        // device node (card readers, USB sticks, optical drives).
        let inv = inventory_from_lshw(&json!({"class": "system", "children": [
            {"class": "disk", "id": "disk", "businfo": "scsi@6:0.0.0",
             "logicalname": "/dev/sdb", "product": "Card Reader", "serial": "0000001",
             "children": [{"class": "disk", "id": "medium", "logicalname": "/dev/sdb",
                           "size": 31_914_983_424u64}]},
            {"class": "disk", "id": "cdrom", "logicalname": "/dev/sr0",
             "children": [{"class": "disk", "id": "medium", "logicalname": "/dev/sr0",
                           "size": 4_700_000_000u64}]}
        ]}));
        assert_eq!(inv.disks.len(), 1, "{:?}", inv.disks);
        assert_eq!(inv.disks[0].name.as_deref(), Some("sdb"));
        assert_eq!(inv.disks[0].size_bytes, Some(31_914_983_424));
        assert_eq!(inv.disks[0].model.as_deref(), Some("Card Reader"));
    }
}
