//! Helpers for integration tests that drive bootd with real clients: network namespaces,
//! QEMU PXE clients, the test guest, packet captures and small polling utilities.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod cdp;
pub mod daemon;
pub mod error;
pub mod guest;
pub mod netboot;
pub mod netns;
pub mod pcap;
pub mod qemu;
pub mod reference;
pub mod upstream;
pub mod util;

/// The project's MAC type.
pub use bootd::mac::MacAddr;

pub use error::HarnessError;
pub use guest::{guest, guest_arm64, signed_chain, signed_chain_arm64, GuestImage, SignedChain};
pub use netns::{Netns, NetnsConfig};
pub use pcap::{read_tcp, read_udp, Capture, TcpSegment, UdpDatagram};
pub use qemu::{accel, Accel, Firmware, Qemu, QemuConfig, QemuExit, Smbios};
pub use reference::{DhcpStyle, PhasePost, RefStack};
pub use util::{free_tcp_port, free_udp_port, harness_dir, need_root, wait_for};
