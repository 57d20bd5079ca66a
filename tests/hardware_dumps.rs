//! Real `dmidecode` and `lshw -json` dumps (tests/data/hardware/, sources in its README)
//! through the report parser and normalizer, with the values an operator would read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use std::path::{Path, PathBuf};

use bootd::hardware::{changes, normalize, parse_report, BootMode, Inventory, Report, ReportError};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hardware")
}

fn read(name: &str) -> String {
    let path = data_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A dump file under tests/data/hardware, parsed as JSON.
fn dump_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A report body as a machine would POST it, parsed like bootd does.
fn post(body: serde_json::Value) -> Inventory {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    match parse_report(&bytes) {
        Ok(report) => normalize(&report),
        Err(e) => panic!("report refused: {e}"),
    }
}

fn dmi(name: &str) -> Inventory {
    post(serde_json::json!({ "dmidecode": read(name) }))
}

fn lshw(name: &str) -> Inventory {
    post(serde_json::json!({ "lshw": dump_json(name) }))
}

const GIB: u64 = 1 << 30;

#[test]
fn dell_poweredge_r650_dmidecode() {
    let inv = dmi("dell-r650.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("Dell Inc."));
    assert_eq!(inv.product.as_deref(), Some("PowerEdge R650"));
    assert_eq!(inv.serial, None, "linuxhw anonymised it to --");
    assert_eq!(inv.sku.as_deref(), Some("0912"));
    assert_eq!(inv.bios.version.as_deref(), Some("1.8.2"));
    assert_eq!(inv.bios.date.as_deref(), Some("09/14/2022"));
    assert_eq!(
        inv.cpus.model.as_deref(),
        Some("Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz")
    );
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(32), Some(64))
    );
    assert_eq!(inv.memory.total_bytes, Some(32 * GIB));
    assert_eq!(inv.memory.dimms.len(), 2);
    let a1 = &inv.memory.dimms[0];
    assert_eq!(a1.locator.as_deref(), Some("A1"));
    assert_eq!(a1.memory_type.as_deref(), Some("DDR4"));
    assert_eq!(a1.speed_mts, Some(2666));
    assert_eq!(a1.part_number.as_deref(), Some("18ASF2G72PDZ-3G2R1"));
    let bmc = inv
        .bmc
        .as_ref()
        .map(|b| (b.kind.as_deref(), b.address.as_deref()));
    assert_eq!(bmc, Some((Some("ipmi-kcs"), Some("0x0000000000000CA8"))));
    assert_eq!(
        inv.summary(),
        "Dell Inc. PowerEdge R650, 2×Xeon Silver 4314 (32c/64t), 32 GiB"
    );
}

#[test]
fn dell_poweredge_m630_dmidecode_with_real_identity() {
    let inv = dmi("dell-m630.dmidecode.txt");
    assert_eq!(inv.product.as_deref(), Some("PowerEdge M630"));
    assert_eq!(inv.serial.as_deref(), Some("4242"));
    assert_eq!(
        inv.uuid.as_deref(),
        Some("4c4c4544-0036-3210-805a-b7c04f4d3632")
    );
    assert_eq!(inv.sku, None, "SKU=NotProvided is a placeholder");
    assert_eq!(inv.bios.version.as_deref(), Some("1.2.5"));
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(28), Some(56))
    );
    assert_eq!(inv.memory.total_bytes, Some(64 * GIB));
    assert_eq!(inv.memory.dimms.len(), 8);
    assert_eq!(inv.memory.dimms[0].memory_type, None, "<OUT OF SPEC>");
    assert_eq!(inv.memory.dimms[0].speed_mts, Some(2133));
    assert_eq!(
        inv.summary(),
        "Dell Inc. PowerEdge M630 SN 4242, 2×Xeon E5-2683 v3 (28c/56t), 64 GiB"
    );
}

#[test]
fn hpe_proliant_dl380_gen10_dmidecode() {
    let inv = dmi("hpe-dl380-gen10.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("HPE"));
    assert_eq!(inv.product.as_deref(), Some("ProLiant DL380 Gen10"));
    assert_eq!(inv.sku.as_deref(), Some("P19719-B21"));
    assert_eq!(inv.bios.version.as_deref(), Some("U30"));
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(28), Some(56))
    );
    assert_eq!(inv.memory.total_bytes, Some(768 * GIB));
    assert_eq!(inv.memory.dimms.len(), 24);
    assert_eq!(
        inv.memory.dimms[0].locator.as_deref(),
        Some("PROC 1 DIMM 1")
    );
    assert_eq!(
        inv.memory.dimms[0].part_number.as_deref(),
        Some("809083-091")
    );
    assert_eq!(
        inv.bmc.and_then(|b| b.address).as_deref(),
        Some("0x0000000000000CA2")
    );
}

#[test]
fn supermicro_dmidecode_placeholders_and_uuid() {
    let inv = dmi("supermicro-ssg-6028r.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("Supermicro"));
    assert_eq!(inv.product.as_deref(), Some("SSG-6028R-OSD072P"));
    assert_eq!(inv.serial.as_deref(), Some("S212101X7A18218"));
    // Half-zero but not all-zero: a real (if lazy) UUID, kept.
    assert_eq!(
        inv.uuid.as_deref(),
        Some("00000000-0000-0000-0000-ac1f6b05e596")
    );
    assert_eq!(inv.bios.vendor.as_deref(), Some("American Megatrends Inc."));
    // One socket populated, one "Unpopulated".
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(1), Some(8), Some(16))
    );
    assert_eq!(inv.memory.total_bytes, Some(64 * GIB));
    assert_eq!(inv.memory.dimms[0].serial.as_deref(), Some("18ABE4AE"));

    let inv = dmi("supermicro-sys-1029p-wtr.dmidecode.txt");
    assert_eq!(inv.product.as_deref(), Some("SYS-1029P-WTR"));
    assert_eq!(inv.sku, None, "To be filled by O.E.M.");
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(16), Some(32))
    );
    assert_eq!(inv.memory.total_bytes, Some(128 * GIB));
    assert_eq!(inv.memory.dimms.len(), 2);
}

#[test]
fn lenovo_thinksystem_sr650_v2_redfish_host_interface() {
    let inv = dmi("lenovo-sr650-v2.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("Lenovo"));
    assert_eq!(inv.product.as_deref(), Some("ThinkSystem SR650 V2"));
    assert_eq!(inv.sku.as_deref(), Some("7Z73CTO1WW"));
    assert_eq!(inv.bios.version.as_deref(), Some("AFE112A-1.02"));
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(24), Some(48))
    );
    assert_eq!(inv.memory.total_bytes, Some(384 * GIB));
    assert_eq!(inv.memory.dimms.len(), 12);
    let bmc = inv.bmc.unwrap_or_default();
    assert_eq!(bmc.kind.as_deref(), Some("redfish"));
    assert_eq!(bmc.address.as_deref(), Some("169.254.95.118"));
}

#[test]
fn arm64_servers_dmidecode() {
    let inv = dmi("huawei-taishan-200-arm64.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("Huawei"));
    assert_eq!(inv.product.as_deref(), Some("TaiShan 200 (Model 2280)"));
    assert_eq!(inv.sku, None);
    assert_eq!(inv.cpus.model.as_deref(), Some("Kunpeng 920-4826"));
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(96), Some(96))
    );
    assert_eq!(inv.memory.total_bytes, Some(512 * GIB));
    assert_eq!(inv.memory.dimms.len(), 16);
    assert_eq!(inv.bmc, None);

    let inv = dmi("gigabyte-mp32-ar0-ampere.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("GIGABYTE"));
    assert_eq!(inv.product.as_deref(), Some("MP32-AR0"));
    assert_eq!(inv.sku, None, "01234567890123456789AB is a template value");
    assert_eq!(
        inv.cpus.model.as_deref(),
        Some("Ampere(R) Altra(R) Processor")
    );
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(1), Some(64), Some(64))
    );
    assert_eq!(inv.memory.total_bytes, Some(32 * GIB));
    assert_eq!(
        inv.summary(),
        "GIGABYTE MP32-AR0, Ampere Altra (64c/64t), 32 GiB"
    );
}

#[test]
fn qemu_q35_dmidecode() {
    let inv = dmi("qemu-standard-pc.dmidecode.txt");
    assert_eq!(inv.vendor.as_deref(), Some("QEMU"));
    assert_eq!(
        inv.product.as_deref(),
        Some("Standard PC (Q35 + ICH9, 2009)")
    );
    assert_eq!(inv.bios.vendor.as_deref(), Some("EDK II"));
    assert_eq!(inv.cpus.sockets, Some(1));
    assert_eq!(inv.cpus.cores, Some(12));
    assert_eq!(inv.memory.total_bytes, Some(4 * GIB));
    assert_eq!(inv.memory.dimms.len(), 1);
}

#[test]
fn dell_server_lshw_object_format() {
    let inv = lshw("dell-rackhd-e5-2699v3.lshw.json");
    // This lshw left the system vendor out and wrote an empty ModelName.
    assert_eq!(inv.vendor, None);
    assert_eq!(
        inv.product.as_deref(),
        Some("0CNCJW"),
        "motherboard fallback"
    );
    assert_eq!(inv.serial.as_deref(), Some("5BC2082"));
    assert_eq!(
        inv.uuid.as_deref(),
        Some("44454c4c-4200-1043-8032-b5c04f303832")
    );
    assert_eq!(inv.sku, None);
    assert_eq!(inv.bios.version.as_deref(), Some("1.3.6"));
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(36), Some(72))
    );
    assert_eq!(inv.memory.total_bytes, Some(549_739_036_672));
    assert_eq!(inv.memory.dimms.len(), 16, "8 of 24 banks are empty");
    assert_eq!(inv.memory.dimms[0].serial.as_deref(), Some("40E8C2B9"));
    assert_eq!(inv.memory.dimms[0].speed_mts, Some(2133));
    let disks: Vec<_> = inv
        .disks
        .iter()
        .map(|d| (d.name.as_deref(), d.serial.as_deref(), d.size_bytes))
        .collect();
    assert_eq!(
        disks,
        [
            (
                Some("sda"),
                Some("BTHC536205Y9800NGN"),
                Some(800_166_076_416)
            ),
            (
                Some("sdb"),
                Some("BTHC536205KX800NGN"),
                Some(800_166_076_416)
            ),
        ]
    );
    assert_eq!(
        inv.nics.len(),
        4,
        "two X710 ports without a driver, two I350"
    );
    let em3 = inv.nics.iter().find(|n| n.name.as_deref() == Some("em3"));
    let em3 = em3.map(|n| {
        (
            n.mac.map(|m| m.to_string()),
            n.driver.as_deref(),
            n.speed_mbps,
            n.link,
        )
    });
    assert_eq!(
        em3,
        Some((
            Some("f8:bc:12:0b:0b:40".into()),
            Some("igb"),
            Some(1000),
            Some(true)
        ))
    );
    assert_eq!(inv.gpus.len(), 1);
    assert_eq!(inv.gpus[0].model.as_deref(), Some("G200eR2"));
    assert_eq!(
        inv.summary(),
        "0CNCJW SN 5BC2082, 2×Xeon E5-2699 v3 (36c/72t), 512 GiB, 2 disks, 4 NICs"
    );
}

#[test]
fn nvidia_grace_hopper_arm64_lshw() {
    let inv = lshw("nvidia-grace-hopper.lshw.json");
    assert_eq!(inv.vendor.as_deref(), Some("NVIDIA"));
    assert_eq!(
        inv.product.as_deref(),
        Some("Grace Hopper x4 P4496"),
        "SKU suffix removed"
    );
    assert_eq!(inv.sku.as_deref(), Some("675-23187-0070-EV1"));
    assert_eq!(inv.serial.as_deref(), Some("1640323000029"));
    assert_eq!(
        inv.uuid.as_deref(),
        Some("d05fed57-fe8e-8124-d954-3aae63dc8210")
    );
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(2), Some(144), Some(144))
    );
    assert_eq!(inv.memory.total_bytes, Some(480 * GIB));
}

#[test]
fn this_vm_lshw_both_formats_agree() {
    let object = lshw("local-vm.lshw.json");
    let array = lshw("local-vm.lshw-class-array.json");
    assert!(dump_json("local-vm.lshw.json").is_object());
    assert!(dump_json("local-vm.lshw-class-array.json").is_array());
    for inv in [&object, &array] {
        assert_eq!(inv.cpus.model.as_deref(), Some("AMD EPYC"));
        assert_eq!(inv.cpus.sockets, Some(1));
        assert_eq!(inv.memory.total_bytes, Some(24 * GIB));
        assert_eq!(inv.disks.len(), 1);
        assert_eq!(inv.disks[0].name.as_deref(), Some("vda"));
        assert_eq!(inv.disks[0].transport.as_deref(), Some("virtio"));
        assert_eq!(inv.nics.len(), 1);
        assert_eq!(inv.nics[0].name.as_deref(), Some("eth0"));
        assert_eq!(
            inv.nics[0].mac.map(|m| m.to_string()).as_deref(),
            Some("02:fc:00:00:00:01")
        );
        assert_eq!(inv.nics[0].driver.as_deref(), Some("virtio_net"));
    }
    assert_eq!(object, array);
}

#[test]
fn this_vm_full_report_with_extra() {
    let inv = post(serde_json::json!({
        "lshw": dump_json("local-vm.lshw.json"),
        "dmidecode": read("local-vm.dmidecode.txt"),
        "extra": {
            "efi": false,
            "secure_boot": false,
            "lsblk": dump_json("local-vm.lsblk.json"),
            "ip_link": dump_json("local-vm.ip-link.json"),
        }
    }));
    // This VM has no SMBIOS table: identity stays unknown rather than guessed.
    assert_eq!((inv.vendor.as_deref(), inv.serial.as_deref()), (None, None));
    assert_eq!(inv.boot_mode, Some(BootMode::Bios));
    assert_eq!(inv.secure_boot, Some(false));
    assert_eq!(inv.disks.len(), 1, "zram0 is not a disk");
    assert_eq!(inv.disks[0].size_bytes, Some(274_877_906_944));
    assert_eq!(inv.disks[0].rotational, Some(true));
    assert_eq!(inv.nics.len(), 1);
    assert_eq!(inv.nics[0].link, Some(true));
    assert_eq!(inv.summary(), "EPYC, 24 GiB, 1 disk, 1 NIC");
}

#[test]
fn dmidecode_wins_identity_and_dimms_lshw_the_rest() {
    let inv = post(serde_json::json!({
        "lshw": dump_json("dell-rackhd-e5-2699v3.lshw.json"),
        "dmidecode": read("dell-m630.dmidecode.txt"),
    }));
    assert_eq!(inv.vendor.as_deref(), Some("Dell Inc."));
    assert_eq!(inv.product.as_deref(), Some("PowerEdge M630"));
    assert_eq!(inv.serial.as_deref(), Some("4242"));
    assert_eq!(inv.memory.dimms.len(), 8, "DIMMs from dmidecode");
    assert_eq!(inv.memory.total_bytes, Some(64 * GIB));
    assert_eq!(inv.cpus.cores, Some(36), "CPUs from lshw");
    assert_eq!(inv.disks.len(), 2, "disks from lshw");
    assert_eq!(inv.bmc.and_then(|b| b.kind).as_deref(), Some("ipmi-kcs"));
}

#[test]
fn truncated_dumps_do_not_panic() {
    for name in [
        "dell-r650.dmidecode.txt",
        "hpe-dl380-gen10.dmidecode.txt",
        "lenovo-sr650-v2.dmidecode.txt",
    ] {
        let text = read(name);
        let half: String = text.chars().take(text.chars().count() / 2).collect();
        // Half a dmidecode dump is still a partial inventory: the early records survive.
        let inv = dmi_text(&half);
        assert!(
            inv.bios.version.is_some(),
            "{name}: BIOS record is in the first half"
        );
        assert!(inv.memory.dimms.len() <= dmi(name).memory.dimms.len());
    }
    for name in [
        "dell-rackhd-e5-2699v3.lshw.json",
        "nvidia-grace-hopper.lshw.json",
        "local-vm.lshw-class-array.json",
    ] {
        let text = read(name);
        let body = format!("{{\"lshw\": {}", &text[..text.len() / 2]);
        match parse_report(body.as_bytes()) {
            Err(ReportError::Json(msg)) => assert!(msg.contains("EOF"), "{name}: {msg}"),
            other => panic!("{name}: expected a JSON error, got {other:?}"),
        }
    }
}

fn dmi_text(text: &str) -> Inventory {
    normalize(&Report {
        dmidecode: Some(text.to_string()),
        ..Report::default()
    })
}

#[test]
fn changes_between_two_reports_of_one_machine() {
    let before = dmi("dell-m630.dmidecode.txt");
    assert!(changes(&before, &before).is_empty());

    let mut after = before.clone();
    after.serial = Some("4243".into());
    after.memory.dimms.remove(1);
    if let Some(d) = after.memory.dimms.first_mut() {
        d.serial = Some("NEW1".into());
    }
    after.memory.total_bytes = Some(56 * GIB);
    let got = changes(&before, &after);
    assert_eq!(
        got,
        [
            "serial changed: 4242 → 4243",
            "memory changed: 64 GiB → 56 GiB",
            "DIMM replaced: A1 8 GiB M393A1G43DB0-CPB SN 4242 → A1 8 GiB M393A1G43DB0-CPB SN NEW1",
            "DIMM removed: A2 8 GiB M393A1G43DB0-CPB SN 4242",
        ]
    );

    let before = lshw("dell-rackhd-e5-2699v3.lshw.json");
    let mut after = before.clone();
    if let Some(d) = after.disks.first_mut() {
        d.serial = Some("NEWDISK".into());
    }
    if let Some(n) = after
        .nics
        .iter_mut()
        .find(|n| n.name.as_deref() == Some("em4"))
    {
        n.mac = "f8:bc:12:0b:0b:99".parse().ok();
    }
    after.gpus.clear();
    let got = changes(&before, &after);
    assert_eq!(
        got,
        [
            "disk replaced: sda INTEL SSDSC2BX80 745.2 GiB SN BTHC536205Y9800NGN → sda INTEL SSDSC2BX80 745.2 GiB SN NEWDISK",
            "NIC em4 MAC changed: f8:bc:12:0b:0b:41 → f8:bc:12:0b:0b:99",
        ],
        "an empty GPU list (not reported) is not a removal"
    );

    // A report without dmidecode does not turn known values into "changes".
    let lshw_only = lshw("dell-rackhd-e5-2699v3.lshw.json");
    let merged = post(serde_json::json!({
        "lshw": dump_json("dell-rackhd-e5-2699v3.lshw.json"),
        "dmidecode": read("dell-m630.dmidecode.txt"),
    }));
    assert!(changes(&lshw_only, &merged)
        .iter()
        .any(|c| c.starts_with("serial changed")));
    assert!(changes(&Inventory::default(), &merged).is_empty());
}

#[test]
fn inventory_round_trips_through_json() {
    let inv = post(serde_json::json!({
        "lshw": dump_json("dell-rackhd-e5-2699v3.lshw.json"),
        "dmidecode": read("lenovo-sr650-v2.dmidecode.txt"),
        "extra": {"efi": true, "secure_boot": true},
    }));
    let text = serde_json::to_string(&inv).unwrap_or_default();
    let back: Inventory = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(back, inv);
    assert!(text.contains("\"boot_mode\":\"uefi\""));
}

/// Every fuzz corpus file (seeds and what the fuzzers kept) replayed through both
/// fuzzed entry points, so CI covers them without cargo-fuzz.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0usize;
    for target in ["lshw", "dmidecode"] {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(report) = parse_report(&bytes) {
                let inv = normalize(&report);
                let _ = inv.summary();
                let _ = changes(&inv, &Inventory::default());
            }
            let inv = dmi_text(&String::from_utf8_lossy(&bytes));
            let _ = inv.summary();
            replayed += 1;
        }
    }
    assert!(replayed >= 20, "only {replayed} corpus files found");
}

/// A second reader of dmidecode text, written for this test and sharing nothing with
/// bootd's parser: it cuts the text at `Handle` lines and blank lines, names each piece
/// by the first line that has no colon, and collects `Key: value` lines by key.
mod plain_reader {
    pub struct Section {
        pub title: String,
        pub values: Vec<(String, String)>,
    }

    impl Section {
        pub fn value(&self, keys: &[&str]) -> Option<String> {
            keys.iter().find_map(|k| {
                self.values
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            })
        }
    }

    pub fn sections(text: &str) -> Vec<Section> {
        let mut out: Vec<Section> = Vec::new();
        let mut open = false;
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || line.starts_with("Handle ") {
                open = false;
                continue;
            }
            if t.starts_with("DMI type ") {
                continue;
            }
            if !open {
                if t.contains(':') {
                    continue;
                }
                out.push(Section {
                    title: t.to_string(),
                    values: Vec::new(),
                });
                open = true;
                continue;
            }
            if let (Some(last), Some(idx)) = (out.last_mut(), t.find(':')) {
                last.values
                    .push((t[..idx].trim().to_string(), t[idx + 1..].trim().to_string()));
            }
        }
        out
    }

    pub fn titled<'a>(all: &'a [Section], names: &[&str]) -> Vec<&'a Section> {
        all.iter()
            .filter(|s| names.contains(&s.title.as_str()))
            .collect()
    }

    /// Whether a value is plainly a real one (the reader leaves doubtful ones undecided).
    pub fn plainly_real(v: &str) -> bool {
        let l = v.to_ascii_lowercase();
        let fillers = [
            "o.e.m",
            "oem",
            "not specified",
            "default",
            "--",
            "system ",
            "unknown",
            "none",
            "n/a",
            "product name",
            "manufacturer",
            "serial",
            "x.x",
            "xxx",
            "123456",
            "not ",
            "empty",
            "invalid",
            "base board",
            "chassis",
            "to be filled",
            "null",
            "0000",
        ];
        v.len() >= 3 && !fillers.iter().any(|f| l.contains(f)) && !l.starts_with('<')
    }

    /// Installed memory in bytes from `Size:` of Memory Device sections.
    pub fn memory_total(all: &[Section]) -> u64 {
        titled(all, &["Memory Device"])
            .iter()
            .filter_map(|s| s.value(&["Size"]))
            .filter_map(|size| {
                let mut w = size.split(' ');
                let n: u64 = w.next()?.parse().ok()?;
                let unit = match w.next()? {
                    "kB" | "KB" => 1u64 << 10,
                    "MB" => 1 << 20,
                    "GB" => 1 << 30,
                    "TB" => 1 << 40,
                    _ => return None,
                };
                Some(n * unit)
            })
            .sum()
    }

    /// Sockets with a processor in use: populated and enabled, idle, other or unknown, or no
    /// Status at all but a named processor (old firmware, dmidecode 2.0–2.6).
    pub fn sockets(all: &[Section]) -> u32 {
        let mut n = 0;
        for s in titled(all, &["Processor Information", "Processor"]) {
            match s.value(&["Status"]) {
                Some(st)
                    if [
                        "Populated, Enabled",
                        "Populated, Idle",
                        "Populated, Unknown",
                        "Populated, Other",
                    ]
                    .contains(&st.as_str()) =>
                {
                    n += 1
                }
                None if s
                    .value(&["Version", "Processor Version"])
                    .is_some_and(|v| plainly_real(&v)) =>
                {
                    n += 1
                }
                _ => {}
            }
        }
        n
    }
}

fn corpus_dir(tool: &str) -> PathBuf {
    data_dir().join("corpus").join(tool)
}

/// Every dump under tests/data/hardware/corpus/dmidecode (real output from public
/// collections; tests/data/hardware/README.md names each source) read by bootd and by
/// the plain reader above: where the plain reader is sure, bootd must agree; elsewhere
/// bootd's values must be sane.
#[test]
fn dmidecode_corpus_agrees_with_a_second_reader() {
    use plain_reader::*;
    let mut names: Vec<_> = std::fs::read_dir(corpus_dir("dmidecode"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 100, "only {} dmidecode dumps", names.len());
    let mut failures: Vec<String> = Vec::new();
    let mut decided = [0usize; 4];
    for name in &names {
        let text = std::fs::read_to_string(corpus_dir("dmidecode").join(name)).unwrap();
        let inv = dmi_text(&text);
        let all = sections(&text);
        let system = titled(&all, &["System Information", "System Information Block"]);
        let board = titled(&all, &["Base Board Information", "Board Information Block"]);
        let mut check = |what: &str, ok: bool, detail: String| {
            if !ok {
                failures.push(format!("{name}: {what}: {detail}"));
            }
        };
        // Vendor and product: the system's, else the board's, when plainly real.
        for (what, keys, got) in [
            ("vendor", &["Manufacturer", "Vendor"][..], &inv.vendor),
            ("product", &["Product Name", "Product"][..], &inv.product),
        ] {
            // The system's value decides when it is there; the board's only when the
            // system has none at all.
            let want = match system.first().and_then(|s| s.value(keys)) {
                Some(v) if !v.is_empty() => Some(v).filter(|v| plainly_real(v)),
                _ => board
                    .first()
                    .and_then(|b| b.value(keys))
                    .filter(|v| plainly_real(v)),
            };
            if let Some(want) = want {
                decided[0] += 1;
                check(
                    what,
                    got.as_deref() == Some(want.as_str()),
                    format!("{got:?} vs {want:?}"),
                );
            }
        }
        // Sockets in use.
        let sockets = sockets(&all);
        if sockets > 0 {
            decided[1] += 1;
            check(
                "sockets",
                inv.cpus.sockets == Some(sockets),
                format!("{:?} vs {sockets}", inv.cpus.sockets),
            );
        } else {
            check(
                "sockets",
                inv.cpus.sockets.unwrap_or(0) == 0,
                format!("{:?}", inv.cpus.sockets),
            );
        }
        // Memory: the sum of installed module sizes.
        let memory = memory_total(&all);
        if memory > 0 {
            decided[2] += 1;
            check(
                "memory",
                inv.memory.total_bytes == Some(memory),
                format!("{:?} vs {memory}", inv.memory.total_bytes),
            );
        }
        // UUID: kept only as a real, unshared value, lowercase.
        if let Some(uuid) = system.first().and_then(|s| s.value(&["UUID"])) {
            let hex: String = uuid.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            if hex.len() == 32 && uuid.len() == 36 {
                decided[3] += 1;
                let shared = bootd::hardware::placeholder::PLACEHOLDER_UUIDS
                    .contains(&uuid.to_ascii_lowercase().as_str())
                    || hex.chars().all(|c| c == '0')
                    || hex.chars().all(|c| c == 'f' || c == 'F');
                let want = (!shared).then(|| uuid.to_ascii_lowercase());
                check(
                    "uuid",
                    inv.uuid == want,
                    format!("{:?} vs {want:?}", inv.uuid),
                );
            } else {
                check(
                    "uuid",
                    inv.uuid.is_none(),
                    format!("{:?} from {uuid:?}", inv.uuid),
                );
            }
        }
        // Sanity everywhere.
        check("summary", !inv.summary().is_empty(), String::new());
        if let Some(serial) = &inv.serial {
            check(
                "serial",
                plainly_real(serial) || serial.len() >= 3,
                serial.clone(),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} dumps; decided: identity {}, sockets {}, memory {}, uuid {}",
        names.len(),
        decided[0],
        decided[1],
        decided[2],
        decided[3]
    );
}

fn corpus_dmi(name: &str) -> Inventory {
    let path = corpus_dir("dmidecode").join(name);
    dmi_text(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}")))
}

#[test]
fn dmidecode_quiet_output_without_handles() {
    // `dmidecode -q` as posted to linux-media: titles only, no Handle lines.
    let inv = corpus_dmi("linux-media-2012-dell-05xkkk.dmidecode-q.txt");
    assert_eq!(inv.vendor.as_deref(), Some("Dell Inc."));
    assert_eq!(inv.product.as_deref(), Some("05XKKK"), "board fallback");
    assert_eq!(inv.bios.version.as_deref(), Some("1.8.2"));
    assert_eq!(inv.bios.date.as_deref(), Some("08/17/2011"));
    assert_eq!(
        (inv.cpus.sockets, inv.cpus.cores, inv.cpus.threads),
        (Some(1), Some(4), Some(8))
    );
    assert_eq!(
        inv.cpus.model.as_deref(),
        Some("Intel(R) Xeon(R) CPU X3480 @ 3.07GHz")
    );
}

#[test]
fn dmidecode_2_0_layout_of_old_distributions() {
    // "Handle 0x0000" alone, "DMI type 0, 20 bytes." indented, "... Information Block".
    let inv = corpus_dmi("lkml-2003-asus-p4c800.dmidecode-2.x.txt");
    assert_eq!(inv.bios.vendor.as_deref(), Some("American Megatrends Inc."));
    assert_eq!(inv.bios.version.as_deref(), Some("080009"));
    assert_eq!(inv.bios.date.as_deref(), Some("09/02/2003"));
    // The system block is all "To Be Filled By O.E.M.": the board names the machine.
    assert_eq!(inv.vendor.as_deref(), Some("ASUSTeK Computer Inc."));
    assert_eq!(inv.product.as_deref(), Some("P4C800"));
    assert_eq!(inv.cpus.sockets, Some(1));
    assert_eq!(
        inv.cpus.model.as_deref(),
        Some("Intel(R) Pentium(R) 4 CPU 2.40GHz")
    );
    // The poster cut this one after the processor: a truncated capture.
    let inv = corpus_dmi("lkml-2003-asus-p4pe.dmidecode-2.x.txt");
    assert_eq!(inv.vendor.as_deref(), Some("ASUSTeK Computer INC."));
    assert_eq!(
        inv.product.as_deref(),
        Some("P4PE"),
        "\"System Name\" is a template"
    );
    assert_eq!(inv.serial.as_deref(), Some("EVAL"));
    assert_eq!(
        inv.bios.version.as_deref(),
        Some("ASUS P4PE ACPI BIOS Revision 1006")
    );
    assert_eq!(inv.cpus.sockets, Some(1));
}

#[test]
fn only_populated_enabled_sockets_count() {
    // Eight processor records, two populated.
    let inv = corpus_dmi("linuxhw-desktop-others-others-others-fa1c93cb643b.txt");
    assert_eq!(inv.cpus.sockets, Some(2));
    // Every socket "Populated, Disabled By BIOS": none is counted, rather than four.
    let inv = corpus_dmi("linuxhw-server-tyan-computer-s-s8812-8bb655a4f737.txt");
    assert_eq!(inv.cpus.sockets, None);
    // A KVM guest: one record per vCPU socket, all enabled.
    let inv = corpus_dmi("linuxhw-desktop-red-hat-kvm-kvm-e0406f92ecf1.txt");
    assert_eq!(inv.cpus.sockets, Some(16));
    // The hypervisor statuses the issue quotes.
    let mut text = String::from("# dmidecode 3.5\n\n");
    for (i, status) in [
        "Populated, Enabled",
        "Populated, Enabled",
        "Unpopulated",
        "Populated, No CPU",
        "Populated, CPU Disabled",
        "Populated, Disabled By User",
    ]
    .iter()
    .cycle()
    .take(60)
    .enumerate()
    {
        text.push_str(&format!(
            "Handle 0x{i:04X}, DMI type 4, 48 bytes\nProcessor Information\n\tSocket Designation: CPU #{i:03}\n\tVersion: Intel(R) Xeon(R) Gold 6248\n\tStatus: {status}\n\tCore Count: 1\n\n"
        ));
    }
    let inv = dmi_text(&text);
    assert_eq!((inv.cpus.sockets, inv.cpus.cores), (Some(20), Some(20)));
}

#[test]
fn shared_template_uuids_are_not_identity() {
    let base = read("dell-m630.dmidecode.txt");
    let real = dmi_text(&base);
    assert!(real.uuid.is_some());
    let original = real.uuid.clone().unwrap().to_ascii_uppercase();
    for shared in [
        "03000200-0400-0500-0006-000700080009",
        "00000000-0000-0000-0000-000000000000",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "12345678-1234-5678-90AB-CDDEEFAABBCC",
    ] {
        let text = base.replacen(&original, shared, 1);
        assert_ne!(text, base, "the dump carries the UUID to replace");
        let inv = dmi_text(&text);
        assert_eq!(inv.uuid, None, "{shared}");
        // The serial still identifies the machine.
        assert_eq!(inv.serial, real.serial);
    }
}
