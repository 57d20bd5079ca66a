//! Differences between two inventories of one machine, as sentences for an operator
//! ("serial changed", "DIMM removed", "disk replaced"); empty when nothing changed.

use std::collections::BTreeMap;

use super::{Dimm, Disk, Inventory, Nic};

/// Hardware differences from `old` to `new`. A part one report did not include (a field
/// or a whole list left unknown) is not a change: only what both reports saw is compared.
pub fn changes(old: &Inventory, new: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    scalar(&mut out, "vendor", &old.vendor, &new.vendor);
    scalar(&mut out, "product", &old.product, &new.product);
    scalar(&mut out, "serial", &old.serial, &new.serial);
    scalar(&mut out, "UUID", &old.uuid, &new.uuid);
    scalar(
        &mut out,
        "BIOS version",
        &old.bios.version,
        &new.bios.version,
    );
    scalar(&mut out, "CPU model", &old.cpus.model, &new.cpus.model);
    scalar(
        &mut out,
        "CPU sockets",
        &old.cpus.sockets,
        &new.cpus.sockets,
    );
    scalar(&mut out, "CPU cores", &old.cpus.cores, &new.cpus.cores);
    if let (Some(a), Some(b)) = (old.memory.total_bytes, new.memory.total_bytes) {
        if a != b {
            out.push(format!(
                "memory changed: {} → {}",
                human_bytes(a),
                human_bytes(b)
            ));
        }
    }
    if !old.memory.dimms.is_empty() && !new.memory.dimms.is_empty() {
        dimm_changes(&mut out, &old.memory.dimms, &new.memory.dimms);
    }
    if !old.disks.is_empty() && !new.disks.is_empty() {
        disk_changes(&mut out, &old.disks, &new.disks);
    }
    if !old.nics.is_empty() && !new.nics.is_empty() {
        nic_changes(&mut out, &old.nics, &new.nics);
    }
    if !old.gpus.is_empty() && !new.gpus.is_empty() {
        let label = |g: &super::Gpu| {
            join(&[g.vendor.as_deref(), g.model.as_deref()]).unwrap_or_else(|| "?".into())
        };
        let count = |list: &[super::Gpu]| {
            let mut m: BTreeMap<String, usize> = BTreeMap::new();
            list.iter()
                .for_each(|g| *m.entry(label(g)).or_default() += 1);
            m
        };
        let (a, b) = (count(&old.gpus), count(&new.gpus));
        for (name, n) in &a {
            for _ in b.get(name).copied().unwrap_or(0)..*n {
                out.push(format!("GPU removed: {name}"));
            }
        }
        for (name, n) in &b {
            for _ in a.get(name).copied().unwrap_or(0)..*n {
                out.push(format!("GPU added: {name}"));
            }
        }
    }
    out
}

fn scalar<T: PartialEq + std::fmt::Display>(
    out: &mut Vec<String>,
    what: &str,
    old: &Option<T>,
    new: &Option<T>,
) {
    if let (Some(a), Some(b)) = (old, new) {
        if a != b {
            out.push(format!("{what} changed: {a} → {b}"));
        }
    }
}

/// DIMMs are matched by slot (locator); without one, by serial.
fn dimm_changes(out: &mut Vec<String>, old: &[Dimm], new: &[Dimm]) {
    let key = |d: &Dimm| {
        d.locator
            .clone()
            .or_else(|| d.serial.clone())
            .unwrap_or_default()
    };
    let index = |list: &[Dimm]| -> BTreeMap<String, Dimm> {
        list.iter().map(|d| (key(d), d.clone())).collect()
    };
    let (a, b) = (index(old), index(new));
    for (slot, d) in &a {
        match b.get(slot) {
            None => out.push(format!("DIMM removed: {}", describe_dimm(d))),
            Some(n)
                if n.serial != d.serial
                    || n.size_bytes != d.size_bytes
                    || n.part_number != d.part_number =>
            {
                out.push(format!(
                    "DIMM replaced: {} → {}",
                    describe_dimm(d),
                    describe_dimm(n)
                ));
            }
            Some(_) => {}
        }
    }
    for (slot, d) in &b {
        if !a.contains_key(slot) {
            out.push(format!("DIMM added: {}", describe_dimm(d)));
        }
    }
}

fn describe_dimm(d: &Dimm) -> String {
    let size = d.size_bytes.map(human_bytes);
    let serial = d.serial.as_ref().map(|s| format!("SN {s}"));
    join(&[
        d.locator.as_deref(),
        size.as_deref(),
        d.part_number.as_deref(),
        serial.as_deref(),
    ])
    .unwrap_or_else(|| "unknown module".into())
}

/// Disks are matched by serial; a device name whose serial changed is "replaced".
fn disk_changes(out: &mut Vec<String>, old: &[Disk], new: &[Disk]) {
    let ident = |d: &Disk| {
        d.serial
            .clone()
            .map(|s| format!("sn:{s}"))
            .or_else(|| d.name.clone().map(|n| format!("name:{n}")))
            .unwrap_or_default()
    };
    let in_list = |list: &[Disk], d: &Disk| list.iter().any(|x| ident(x) == ident(d));
    let removed: Vec<&Disk> = old.iter().filter(|d| !in_list(new, d)).collect();
    let mut added: Vec<&Disk> = new.iter().filter(|d| !in_list(old, d)).collect();
    for d in removed {
        let same_slot = added
            .iter()
            .position(|n| n.name.is_some() && n.name == d.name);
        match same_slot {
            Some(i) => {
                let n = added.remove(i);
                out.push(format!(
                    "disk replaced: {} → {}",
                    describe_disk(d),
                    describe_disk(n)
                ));
            }
            None => out.push(format!("disk removed: {}", describe_disk(d))),
        }
    }
    for n in added {
        out.push(format!("disk added: {}", describe_disk(n)));
    }
    for d in old {
        let Some(n) = new
            .iter()
            .find(|n| d.serial.is_some() && n.serial == d.serial)
        else {
            continue;
        };
        if let (Some(a), Some(b)) = (d.size_bytes, n.size_bytes) {
            if a != b {
                out.push(format!(
                    "disk {} size changed: {} → {}",
                    describe_disk(d),
                    human_bytes(a),
                    human_bytes(b)
                ));
            }
        }
    }
}

fn describe_disk(d: &Disk) -> String {
    let size = d.size_bytes.map(human_bytes);
    let serial = d.serial.as_ref().map(|s| format!("SN {s}"));
    join(&[
        d.name.as_deref(),
        d.model.as_deref(),
        size.as_deref(),
        serial.as_deref(),
    ])
    .unwrap_or_else(|| "unknown disk".into())
}

/// NICs are matched by MAC; an interface name whose MAC changed is reported as such.
fn nic_changes(out: &mut Vec<String>, old: &[Nic], new: &[Nic]) {
    let has_mac = |list: &[Nic], n: &Nic| n.mac.is_some() && list.iter().any(|x| x.mac == n.mac);
    let removed: Vec<&Nic> = old
        .iter()
        .filter(|n| n.mac.is_some() && !has_mac(new, n))
        .collect();
    let mut added: Vec<&Nic> = new
        .iter()
        .filter(|n| n.mac.is_some() && !has_mac(old, n))
        .collect();
    for o in removed {
        let same_name = added
            .iter()
            .position(|n| n.name.is_some() && n.name == o.name);
        match same_name {
            Some(i) => {
                let n = added.remove(i);
                out.push(format!(
                    "NIC {} MAC changed: {} → {}",
                    o.name.as_deref().unwrap_or("?"),
                    mac_text(o),
                    mac_text(n)
                ));
            }
            None => out.push(format!("NIC removed: {}", describe_nic(o))),
        }
    }
    for n in added {
        out.push(format!("NIC added: {}", describe_nic(n)));
    }
}

fn mac_text(n: &Nic) -> String {
    n.mac.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
}

fn describe_nic(n: &Nic) -> String {
    let mac = n.mac.map(|m| m.to_string());
    join(&[n.name.as_deref(), mac.as_deref(), n.driver.as_deref()])
        .unwrap_or_else(|| "unknown NIC".into())
}

fn join(parts: &[Option<&str>]) -> Option<String> {
    let words: Vec<&str> = parts.iter().flatten().copied().collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// `17179869184` → `16 GiB`; `1536 MiB` → `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if (value - value.round()).abs() < 0.05 {
        format!("{} {name}", value.round() as u64)
    } else {
        format!("{value:.1} {name}")
    }
}
