//! The optional `extra` part of a report: EFI and Secure Boot flags, `lsblk -J -b` and
//! `ip -j link` output, used to fill boot mode, disk media/transport and NIC link state.

use serde_json::Value;

use super::placeholder::clean;
use super::{BootMode, Disk, Inventory, MAX_ITEMS};
use crate::mac::MacAddr;

/// Kernel block devices that are not hardware disks, by name prefix.
const VIRTUAL_DISK_PREFIXES: &[&str] = &["loop", "zram", "ram", "fd", "sr", "md", "dm-", "nbd"];

/// Applies `extra` to an inventory built from lshw and dmidecode.
pub fn apply_extra(inv: &mut Inventory, extra: &Value) {
    if let Some(efi) = extra.get("efi").and_then(Value::as_bool) {
        inv.boot_mode = Some(if efi { BootMode::Uefi } else { BootMode::Bios });
    }
    if let Some(sb) = extra.get("secure_boot").and_then(Value::as_bool) {
        inv.secure_boot = Some(sb);
    }
    if let Some(Value::Array(devices)) = extra.get("lsblk").and_then(|l| l.get("blockdevices")) {
        merge_lsblk(&mut inv.disks, devices);
    }
    if let Some(Value::Array(links)) = extra.get("ip_link") {
        merge_ip_link(inv, links);
    }
}

/// lsblk knows rotation and transport that lshw lacks; disks only lsblk saw are added.
fn merge_lsblk(disks: &mut Vec<Disk>, devices: &[Value]) {
    for dev in devices {
        if dev.get("type").and_then(Value::as_str) != Some("disk") {
            continue;
        }
        let Some(name) = dev
            .get("name")
            .or_else(|| dev.get("kname"))
            .and_then(Value::as_str)
            .and_then(clean)
        else {
            continue;
        };
        if VIRTUAL_DISK_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let size = match dev.get("size") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|s| *s > 0);
        // Older lsblk prints ROTA as "0"/"1" strings, newer as booleans.
        let rotational = match dev.get("rota") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "1" => Some(true),
            Some(Value::String(s)) if s == "0" => Some(false),
            _ => None,
        };
        let text = |key: &str| dev.get(key).and_then(Value::as_str).and_then(clean);
        if let Some(disk) = disks.iter_mut().find(|d| d.name.as_deref() == Some(&name)) {
            disk.rotational = rotational.or(disk.rotational);
            disk.transport = text("tran").or(disk.transport.take());
            disk.model = disk.model.take().or_else(|| text("model"));
            disk.serial = disk.serial.take().or_else(|| text("serial"));
            disk.size_bytes = disk.size_bytes.or(size);
        } else if disks.len() < MAX_ITEMS {
            disks.push(Disk {
                name: Some(name),
                model: text("model"),
                serial: text("serial"),
                size_bytes: size,
                rotational,
                transport: text("tran"),
            });
        }
    }
}

/// `ip -j link` gives the live link state (carrier) and fills a MAC lshw did not read.
fn merge_ip_link(inv: &mut Inventory, links: &[Value]) {
    for link in links {
        let Some(name) = link.get("ifname").and_then(Value::as_str) else {
            continue;
        };
        let Some(nic) = inv
            .nics
            .iter_mut()
            .find(|n| n.name.as_deref() == Some(name))
        else {
            continue;
        };
        if let Some(Value::Array(flags)) = link.get("flags") {
            let up = flags.iter().any(|f| f.as_str() == Some("LOWER_UP"));
            nic.link = Some(up);
        } else if let Some(state) = link.get("operstate").and_then(Value::as_str) {
            nic.link = match state {
                "UP" => Some(true),
                "DOWN" | "LOWERLAYERDOWN" | "NOTPRESENT" => Some(false),
                _ => nic.link,
            };
        }
        if nic.mac.is_none() {
            nic.mac = link
                .get("address")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<MacAddr>().ok())
                .filter(|m| m.octets() != [0; 6]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Nic;
    use serde_json::json;

    #[test]
    fn flags_lsblk_and_links() {
        let mut inv = Inventory {
            disks: vec![Disk {
                name: Some("sda".into()),
                model: Some("From lshw".into()),
                ..Disk::default()
            }],
            nics: vec![Nic {
                name: Some("eno1".into()),
                link: Some(true),
                ..Nic::default()
            }],
            ..Inventory::default()
        };
        apply_extra(
            &mut inv,
            &json!({
                "efi": true, "secure_boot": false,
                "lsblk": {"blockdevices": [
                    {"name": "sda", "model": "Other", "rota": "1", "tran": "sata", "type": "disk", "size": 100},
                    {"name": "nvme0n1", "model": "Fast", "serial": "S1", "rota": false, "tran": "nvme", "type": "disk", "size": "2000"},
                    {"name": "zram0", "type": "disk", "size": 5},
                    {"name": "sda1", "type": "part"}
                ]},
                "ip_link": [{"ifname": "eno1", "flags": ["BROADCAST", "UP"], "address": "52:54:00:12:34:56"}]
            }),
        );
        assert_eq!(inv.boot_mode, Some(BootMode::Uefi));
        assert_eq!(inv.secure_boot, Some(false));
        assert_eq!(inv.disks.len(), 2);
        assert_eq!(inv.disks[0].model.as_deref(), Some("From lshw"));
        assert_eq!(inv.disks[0].rotational, Some(true));
        assert_eq!(inv.disks[0].transport.as_deref(), Some("sata"));
        assert_eq!(inv.disks[1].size_bytes, Some(2000));
        assert_eq!(inv.disks[1].rotational, Some(false));
        assert_eq!(inv.nics[0].link, Some(false));
        assert_eq!(
            inv.nics[0].mac.map(|m| m.to_string()).as_deref(),
            Some("52:54:00:12:34:56")
        );
    }
}
