//! `Qemu`: one x86-64 PXE client (SeaBIOS + iPXE, OVMF + iPXE, OVMF's own PXE with or
//! without Secure Boot, OVMF's UEFI HTTP Boot) on a namespace's tap, with a serial log;
//! killed on drop. KVM probe.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::util::{describe, read_lossy, tail, POLL_INTERVAL};
use super::{HarnessError, MacAddr};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// OVMF firmware code and the variable store template (Debian package `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The variable store copied for every UEFI run (the guest may write to it).
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF built for Secure Boot (needs SMM and a secure flash).
pub const OVMF_CODE_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// A variable store with Microsoft's keys enrolled and Secure Boot enforced.
pub const OVMF_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
/// The QEMU binary for ARM64 clients (Debian package `qemu-system-arm`).
pub const QEMU_ARM64: &str = "qemu-system-aarch64";
/// ARM64 UEFI firmware code and variable store template (`qemu-efi-aarch64`).
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
/// The ARM64 variable store copied for every run.
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
/// Guest memory under Secure Boot (shim, GRUB and the kernel need more than the default).
pub const SECURE_BOOT_MEMORY_MIB: u32 = 512;
/// Guest memory.
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// How long the KVM probe lets OVMF run before calling KVM usable; on hosts where KVM
/// breaks, OVMF trips over it within about a second.
const KVM_PROBE_RUN: Duration = Duration::from_secs(5);
/// The bound on the first, trivial KVM probe.
const KVM_PROBE_TRIVIAL_LIMIT: Duration = Duration::from_secs(10);
/// What QEMU prints when KVM cannot go on.
const KVM_FAILURE: &str = "KVM internal error";
/// Serial log bytes quoted in a timeout error.
const SERIAL_TAIL_BYTES: usize = 1500;

/// How the client boots from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS running the virtio-net iPXE option ROM.
    BiosIpxe,
    /// OVMF with the iPXE EFI driver from the same option ROM.
    UefiIpxe,
    /// OVMF's own PXE client (`romfile=` empty: no iPXE), like most real servers.
    UefiNative,
    /// OVMF's own PXE client with Secure Boot enforced and Microsoft's keys enrolled:
    /// only signed loaders (shim, then GRUB and kernels it trusts) run.
    UefiSecureBoot,
    /// An ARM64 `virt` machine (Cortex-A57, always TCG here) running AAVMF's own PXE.
    Arm64Uefi,
    /// OVMF's own UEFI HTTP Boot (no iPXE ROM): PXE over IPv4 and IPv6 switched off
    /// through fw_cfg, so the firmware's first network boot option is HTTPv4.
    UefiHttp,
}

/// fw_cfg files that switch OVMF's PXE driver off for IPv4 and IPv6 (edk2's
/// PxeBcPcdProducerLib copies them into `PcdIPv4PXESupport`/`PcdIPv6PXESupport`), so the
/// firmware does not spend ~140 s on PXEv4 and PXEv6 before its HTTP boot options.
pub const OVMF_NO_PXE: [&str; 2] = [
    "name=opt/org.tianocore/IPv4PXESupport,string=n",
    "name=opt/org.tianocore/IPv6PXESupport,string=n",
];

impl Firmware {
    /// All three, for tests that boot each.
    pub const ALL: [Firmware; 3] = [Firmware::BiosIpxe, Firmware::UefiIpxe, Firmware::UefiNative];

    /// Whether OVMF is used.
    pub fn is_uefi(self) -> bool {
        !matches!(self, Firmware::BiosIpxe)
    }

    /// The start of the option 60 the client's first DISCOVER carries.
    pub fn vendor_class_prefix(self) -> &'static str {
        match self {
            Firmware::BiosIpxe => "PXEClient:Arch:00000",
            Firmware::UefiIpxe | Firmware::UefiNative | Firmware::UefiSecureBoot => {
                "PXEClient:Arch:00007"
            }
            Firmware::Arm64Uefi => "PXEClient:Arch:00011",
            Firmware::UefiHttp => "HTTPClient:Arch:00016",
        }
    }

    /// Whether the firmware's own PXE client boots (the NIC has no iPXE ROM).
    pub fn is_native_pxe(self) -> bool {
        matches!(
            self,
            Firmware::UefiNative | Firmware::UefiSecureBoot | Firmware::Arm64Uefi
        )
    }

    /// Whether the NIC runs without its iPXE option ROM (`romfile=`): the firmware's own
    /// network stack boots.
    fn without_ipxe_rom(self) -> bool {
        self.is_native_pxe() || self == Firmware::UefiHttp
    }

    /// The OVMF code and the variable store template of a UEFI run.
    fn ovmf(self) -> (&'static str, &'static str) {
        match self {
            Firmware::UefiSecureBoot => (OVMF_CODE_SECBOOT, OVMF_VARS_MS),
            Firmware::Arm64Uefi => (AAVMF_CODE, AAVMF_VARS),
            _ => (OVMF_CODE, OVMF_VARS),
        }
    }
}

/// Which QEMU accelerator runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// The `-accel` argument.
    pub fn as_arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

static ACCEL: OnceLock<Accel> = OnceLock::new();

/// The accelerator to use: `BOOTD_TEST_ACCEL=kvm|tcg` if set, else KVM if a probe boots
/// firmware under it without error, else TCG. Probed once per test binary.
pub fn accel() -> Accel {
    *ACCEL.get_or_init(|| match std::env::var("BOOTD_TEST_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ => {
            let a = probe_kvm();
            eprintln!("harness: QEMU accelerator {}", a.as_arg());
            a
        }
    })
}

fn probe_kvm() -> Accel {
    let usable = File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if usable && probe_trivial() && probe_firmware() {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

/// A headless q35 machine under KVM with `mem_mib` of memory, for the probes.
fn kvm_probe_command(mem_mib: &str) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-accel",
        "kvm",
        "-machine",
        "q35",
        "-m",
        mem_mib,
        "-nodefaults",
    ])
    .args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-no-reboot",
    ]);
    cmd
}

/// A 64 KiB BIOS whose reset vector writes 1 to the isa-debug-exit port: QEMU exits 3.
fn probe_trivial() -> bool {
    const BIOS_SIZE: usize = 64 * 1024;
    const RESET_VECTOR: usize = BIOS_SIZE - 16;
    // mov al, 1; out 0xf4, al; hlt
    const CODE: [u8; 5] = [0xb0, 0x01, 0xe6, 0xf4, 0xf4];
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let mut bios = vec![0u8; BIOS_SIZE];
    if let Some(slot) = bios.get_mut(RESET_VECTOR..RESET_VECTOR + CODE.len()) {
        slot.copy_from_slice(&CODE);
    }
    let path = dir.path().join("probe.bin");
    if std::fs::write(&path, &bios).is_err() {
        return false;
    }
    let mut cmd = kvm_probe_command("32");
    cmd.arg("-bios")
        .arg(&path)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    matches!(run_bounded(cmd, KVM_PROBE_TRIVIAL_LIMIT), Some(Some(3)))
}

/// OVMF with a virtio-net NIC that has no backend (nothing can leave the VM) for a few
/// seconds: where nested KVM is broken, QEMU reports an internal error here.
fn probe_firmware() -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let log = dir.path().join("stderr");
    let Ok(err) = File::create(&log) else {
        return false;
    };
    let mut cmd = kvm_probe_command("256");
    cmd.arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,snapshot=on,file={OVMF_VARS}"))
        .args([
            "-device",
            "virtio-net-pci,mac=52:54:00:00:00:01",
            "-boot",
            "n",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let start = Instant::now();
    let mut ok = true;
    while start.elapsed() < KVM_PROBE_RUN {
        if read_lossy(&log).contains(KVM_FAILURE) {
            ok = false;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            // OVMF never exits by itself within the probe time: QEMU gave up.
            ok = false;
            break;
        }
        thread::sleep(POLL_INTERVAL);
    }
    let _ = child.kill();
    let _ = child.wait();
    ok
}

/// Runs `cmd` for at most `limit`; `Some(code)` if it exited (code None: killed by a signal).
fn run_bounded(mut cmd: Command, limit: Duration) -> Option<Option<i32>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().ok()?;
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code());
        }
        thread::sleep(POLL_INTERVAL);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// SMBIOS type 1 (system) values the guest and DHCP option 97 see.
#[derive(Debug, Clone)]
pub struct Smbios {
    /// System manufacturer.
    pub manufacturer: String,
    /// Product name.
    pub product: String,
    /// Serial number.
    pub serial: String,
    /// System UUID (option 97 carries it); QEMU picks one if unset.
    pub uuid: Option<String>,
}

impl Default for Smbios {
    fn default() -> Self {
        Smbios {
            manufacturer: "Acme".to_string(),
            product: "PXE-Test".to_string(),
            serial: "SN123".to_string(),
            uuid: Some("11223344-5566-7788-99aa-bbccddeeff00".to_string()),
        }
    }
}

/// Everything about one client run.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// How it boots.
    pub firmware: Firmware,
    /// The NIC's MAC.
    pub mac: MacAddr,
    /// SMBIOS type 1.
    pub smbios: Smbios,
    /// The tap device in the namespace.
    pub tap: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Where the serial console (ttyS0) is written.
    pub serial_log: PathBuf,
    /// Accelerator; `None` means [`accel()`].
    pub accel: Option<Accel>,
    /// More QEMU arguments (e.g. `-fw_cfg ...`).
    pub extra_args: Vec<String>,
    /// Boot this disk image (virtio, `snapshot=on`: the file is never written) instead
    /// of the network; the NIC then has no iPXE ROM and no boot index.
    pub boot_disk: Option<PathBuf>,
}

impl QemuConfig {
    /// A client with the defaults of TESTING.md, logging its console to `serial_log`.
    pub fn new(firmware: Firmware, mac: MacAddr, serial_log: impl Into<PathBuf>) -> QemuConfig {
        QemuConfig {
            firmware,
            mac,
            smbios: Smbios::default(),
            tap: "tap0".to_string(),
            memory_mib: match firmware {
                Firmware::UefiSecureBoot | Firmware::Arm64Uefi => SECURE_BOOT_MEMORY_MIB,
                _ => DEFAULT_MEMORY_MIB,
            },
            serial_log: serial_log.into(),
            accel: None,
            extra_args: Vec::new(),
            boot_disk: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct QemuExit {
    /// QEMU's exit status (0 after the guest's poweroff).
    pub status: ExitStatus,
    /// Time from launch to exit.
    pub elapsed: Duration,
}

/// A running client; killed and reaped on drop. Borrows its namespace so it dies first.
pub struct Qemu<'ns> {
    _ns: &'ns Netns,
    child: Child,
    started: Instant,
    serial_log: PathBuf,
    stderr_log: PathBuf,
    accel: Accel,
    // Holds the per-run OVMF variable store until QEMU is gone.
    _vars: Option<tempfile::TempDir>,
}

impl<'ns> Qemu<'ns> {
    /// Starts the client inside `ns` on `config.tap`, with `-no-reboot` and `-boot n` (or
    /// from `config.boot_disk`).
    pub fn launch(ns: &'ns Netns, config: &QemuConfig) -> Result<Qemu<'ns>, HarnessError> {
        let arm64 = config.firmware == Firmware::Arm64Uefi;
        // KVM here is x86 only: an ARM64 guest is always emulated.
        let accel = match arm64 {
            true => Accel::Tcg,
            false => config.accel.unwrap_or_else(accel),
        };
        let s = &config.smbios;
        let mut smbios = format!(
            "type=1,manufacturer={},product={},serial={}",
            s.manufacturer, s.product, s.serial
        );
        if let Some(uuid) = &s.uuid {
            smbios.push_str(",uuid=");
            smbios.push_str(uuid);
        }
        let mut nic = format!("virtio-net-pci,netdev=n0,mac={}", config.mac);
        if config.boot_disk.is_none() {
            nic.push_str(",bootindex=1");
        }
        if config.firmware.without_ipxe_rom() || config.boot_disk.is_some() {
            nic.push_str(",romfile=");
        }
        let machine = match config.firmware {
            // Secure Boot OVMF keeps its variables in SMM-protected flash.
            Firmware::UefiSecureBoot => "q35,smm=on",
            Firmware::Arm64Uefi => "virt",
            _ => "q35",
        };
        let mut cmd = ns.cmd(if arm64 { QEMU_ARM64 } else { QEMU });
        cmd.args(["-machine", machine, "-accel", accel.as_arg()]);
        if arm64 {
            cmd.args(["-cpu", "cortex-a57"]);
        }
        cmd.args(["-m", &config.memory_mib.to_string(), "-smp", "1"])
            .args([
                "-display",
                "none",
                "-monitor",
                "none",
                "-nodefaults",
                "-no-reboot",
            ])
            .arg("-serial")
            .arg(format!("file:{}", config.serial_log.display()))
            .args(["-smbios", &smbios])
            .arg("-netdev")
            .arg(format!(
                "tap,id=n0,ifname={},script=no,downscript=no",
                config.tap
            ))
            .args(["-device", &nic]);
        match &config.boot_disk {
            Some(disk) => {
                let format = match disk.extension().and_then(|e| e.to_str()) {
                    Some("qcow2") => "qcow2",
                    _ => "raw",
                };
                cmd.arg("-drive").arg(format!(
                    "file={},format={format},if=none,id=d0,snapshot=on",
                    disk.display()
                ));
                cmd.args(["-device", "virtio-blk-pci,drive=d0,bootindex=1"]);
            }
            None => {
                cmd.args(["-boot", "n"]);
            }
        }
        let vars = if config.firmware.is_uefi() {
            let dir = tempfile::tempdir().map_err(|e| HarnessError::io("make a temp dir", e))?;
            let (code, vars) = config.firmware.ovmf();
            let copy = dir.path().join("OVMF_VARS_4M.fd");
            std::fs::copy(vars, &copy).map_err(|e| HarnessError::file(vars, e))?;
            if config.firmware == Firmware::UefiSecureBoot {
                cmd.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
            }
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,readonly=on,file={code}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,file={}", copy.display()));
            Some(dir)
        } else {
            None
        };
        if config.firmware == Firmware::UefiHttp {
            for file in OVMF_NO_PXE {
                cmd.args(["-fw_cfg", file]);
            }
        }
        cmd.args(&config.extra_args);
        let stderr_log = config.serial_log.with_extension("qemu-stderr.log");
        let err = File::create(&stderr_log).map_err(|e| HarnessError::file(&stderr_log, e))?;
        cmd.stdout(Stdio::null()).stderr(err);
        let line = describe(&cmd);
        let child = cmd
            .spawn()
            .map_err(|source| HarnessError::Spawn { cmd: line, source })?;
        Ok(Qemu {
            _ns: ns,
            child,
            started: Instant::now(),
            serial_log: config.serial_log.clone(),
            stderr_log,
            accel,
            _vars: vars,
        })
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The accelerator this run uses.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The serial console so far.
    pub fn serial(&self) -> String {
        read_lossy(&self.serial_log)
    }

    /// The serial log's path.
    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// Waits for QEMU to exit (the guest powered off); on timeout or a KVM failure the VM
    /// is killed and the error quotes the end of the serial console.
    pub fn wait(&mut self, timeout: Duration) -> Result<QemuExit, HarnessError> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Ok(QemuExit {
                        status,
                        elapsed: self.started.elapsed(),
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(HarnessError::io("wait for QEMU", e)),
            }
            let stderr = read_lossy(&self.stderr_log);
            if let Some(line) = stderr.lines().find(|l| l.contains(KVM_FAILURE)) {
                self.kill();
                return Err(HarnessError::Kvm {
                    detail: line.to_string(),
                });
            }
            if self.started.elapsed() >= timeout {
                self.kill();
                return Err(HarnessError::Timeout {
                    timeout,
                    what: format!(
                        "QEMU to exit; serial console ends with:\n{}\nQEMU stderr: {}",
                        tail(&self.serial(), SERIAL_TAIL_BYTES),
                        tail(&stderr, SERIAL_TAIL_BYTES)
                    ),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}
