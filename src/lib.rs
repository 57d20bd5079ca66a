//! bootd: a network-boot appliance. DHCP/ProxyDHCP, TFTP and HTTP serve PXE clients;
//! the node registry follows every machine through its deployment phases.

pub mod app;
pub mod boot;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dhcp;
pub use bootd_proto::hardware;
pub mod health;
pub mod http;
pub mod journal;
pub mod lifecycle;
pub use bootd_proto::mac;
pub mod metrics;
pub mod neighbours;
pub mod nodes;
pub mod outbound;
pub mod peers;
pub mod preflight;
pub mod ready;
pub mod relay;
pub mod secrets;
pub mod store;
pub mod supervise;
pub mod systemd;
pub mod tftp;
pub mod wiring;
