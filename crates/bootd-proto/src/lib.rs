//! bootd-proto: the pure core of bootd — MAC addresses, the duration grammar, DHCPv4
//! wire views and per-packet decisions, TFTP packets and options, lshw/dmidecode
//! parsers, the SSE parser. No tokio, hyper or rusqlite: fuzz targets depend on it alone.

pub mod auth;
pub mod dhcp;
pub mod duration;
pub mod hardware;
pub mod limit;
pub mod mac;
pub mod sse;
pub mod tftp;
