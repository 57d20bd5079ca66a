//! The one harness for integration tests. By purpose:
//! - `daemon`: the real `bootd` binary on loopback (config, bootctl, curl, signals);
//! - `netns`: private network namespaces (`Netns` for QEMU and daemons, `Lab` for
//!   client-side DHCP tests), `pcap`: packet captures in them;
//! - `qemu`, `guest`, `netboot`, `reference`, `cdp`: QEMU PXE clients, the test guest,
//!   whole network boots, the reference stack, a headless browser;
//! - `dhcp`, `tftp`: bootd's DHCP/TFTP services in-process with small clients and raw
//!   packet helpers;
//! - `upstream`: a fake HTTP provider; `json`: JSON answers; `ports`: free loopback ports;
//! - `util`: root check, polling, binaries of the workspace, running commands.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod cdp;
pub mod daemon;
pub mod dhcp;
pub mod error;
pub mod guest;
pub mod json;
pub mod netboot;
pub mod netns;
pub mod pcap;
pub mod ports;
pub mod qemu;
pub mod reference;
pub mod tftp;
pub mod upstream;
pub mod util;

/// The project's MAC type.
pub use bootd::mac::MacAddr;

pub use error::HarnessError;
pub use guest::{guest, guest_arm64, signed_chain, signed_chain_arm64, GuestImage, SignedChain};
pub use json::json;
pub use netns::{Netns, NetnsConfig};
pub use pcap::{read_tcp, read_udp, Capture, TcpSegment, UdpDatagram};
pub use ports::{free_tcp_port, free_udp_port};
pub use qemu::{accel, Accel, Firmware, Qemu, QemuConfig, QemuExit, Smbios};
pub use reference::{DhcpStyle, PhasePost, RefStack};
pub use util::{harness_dir, need_root, wait_for, wait_until, workspace_bin};
