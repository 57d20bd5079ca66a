//! A TFTP read as PXE firmware does it: RRQ with tsize + blksize (and windowsize when
//! asked), a fixed timeout with retransmission of the last packet, size check at the end.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;

/// Firmware's block size over Ethernet (1500 MTU minus IP, UDP and TFTP headers).
pub const BLKSIZE: u16 = 1468;
/// Largest datagram we accept (blksize + 4-byte header, with room to spare).
const MAX_PACKET: usize = 65_536;

/// How a TFTP read failed.
#[derive(Debug)]
pub enum TftpFailure {
    /// No answer after all retransmissions.
    Timeout,
    /// The server sent an ERROR packet.
    Error(u16, String),
    /// Fewer or more bytes than the announced tsize.
    Size {
        announced: u64,
        got: u64,
    },
    /// A packet we cannot read.
    Protocol(&'static str),
    Io(std::io::Error),
}

impl From<std::io::Error> for TftpFailure {
    fn from(e: std::io::Error) -> Self {
        TftpFailure::Io(e)
    }
}

/// Settings of one read.
pub struct Read<'a> {
    pub server: Ipv4Addr,
    pub port: u16,
    pub local: Ipv4Addr,
    pub file: &'a str,
    pub windowsize: Option<u16>,
    pub timeout: Duration,
    pub tries: u32,
}

fn rrq(file: &str, windowsize: Option<u16>) -> Vec<u8> {
    let mut p = vec![0, 1];
    for part in [file, "octet", "tsize", "0", "blksize", &BLKSIZE.to_string()] {
        p.extend_from_slice(part.as_bytes());
        p.push(0);
    }
    if let Some(w) = windowsize {
        for part in ["windowsize", &w.to_string()] {
            p.extend_from_slice(part.as_bytes());
            p.push(0);
        }
    }
    p
}

fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, 4, b[0], b[1]]
}

/// Options of an OACK as (name, value) pairs, lower-cased names.
fn oack_options(body: &[u8]) -> Vec<(String, String)> {
    let parts: Vec<String> = body
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect();
    parts
        .chunks(2)
        .filter(|c| c.len() == 2 && !c[0].is_empty())
        .map(|c| (c[0].to_ascii_lowercase(), c[1].clone()))
        .collect()
}

impl Read<'_> {
    /// Reads the file, discarding the data; answers the number of bytes received.
    pub async fn run(&self) -> Result<u64, TftpFailure> {
        let sock = UdpSocket::bind(SocketAddr::from(SocketAddrV4::new(self.local, 0))).await?;
        let server = SocketAddr::from(SocketAddrV4::new(self.server, self.port));
        let mut buf = vec![0u8; MAX_PACKET];
        let mut last_sent = rrq(self.file, self.windowsize);
        let mut peer: Option<SocketAddr> = None;
        let mut blksize = 512usize;
        let mut window = 1u16;
        let mut tsize: Option<u64> = None;
        let mut got: u64 = 0;
        let mut last_block: u16 = 0;
        let mut in_window: u16 = 0;
        let mut tries = 0u32;
        sock.send_to(&last_sent, server).await?;
        loop {
            let (n, from) = match tokio::time::timeout(self.timeout, sock.recv_from(&mut buf)).await
            {
                Ok(r) => r?,
                Err(_) => {
                    tries += 1;
                    if tries >= self.tries {
                        return Err(TftpFailure::Timeout);
                    }
                    // Firmware resends what it sent last: the RRQ, or the ACK of the last block.
                    sock.send_to(&last_sent, peer.unwrap_or(server)).await?;
                    in_window = 0;
                    continue;
                }
            };
            if from.ip() != server.ip() || peer.is_some_and(|p| p != from) {
                continue; // Not our transfer (RFC 1350: a wrong TID is ignored).
            }
            let pkt = &buf[..n];
            if n < 4 {
                return Err(TftpFailure::Protocol("packet shorter than 4 bytes"));
            }
            let op = u16::from_be_bytes([pkt[0], pkt[1]]);
            match op {
                6 if peer.is_none() => {
                    peer = Some(from);
                    for (name, value) in oack_options(&pkt[2..]) {
                        match name.as_str() {
                            "blksize" => blksize = value.parse().unwrap_or(512),
                            "tsize" => tsize = value.parse().ok(),
                            "windowsize" => window = value.parse().unwrap_or(1).max(1),
                            _ => {}
                        }
                    }
                    last_sent = ack(0).to_vec();
                    sock.send_to(&last_sent, from).await?;
                    tries = 0;
                }
                3 => {
                    if peer.is_none() {
                        peer = Some(from); // The server ignored our options.
                    }
                    let block = u16::from_be_bytes([pkt[2], pkt[3]]);
                    let data = n - 4;
                    if block == last_block.wrapping_add(1) {
                        last_block = block;
                        got += data as u64;
                        in_window += 1;
                        tries = 0;
                        let last = data < blksize;
                        if last || in_window >= window {
                            last_sent = ack(block).to_vec();
                            sock.send_to(&last_sent, from).await?;
                            in_window = 0;
                        }
                        if last {
                            return match tsize {
                                Some(t) if t != got => Err(TftpFailure::Size { announced: t, got }),
                                _ => Ok(got),
                            };
                        }
                    } else if block == last_block && window == 1 {
                        // The server resent: our ACK was lost; say it again.
                        sock.send_to(&last_sent, from).await?;
                    } else if block != last_block {
                        // A gap in the window: ACK what we have so the server resends (RFC 7440).
                        last_sent = ack(last_block).to_vec();
                        sock.send_to(&last_sent, from).await?;
                        in_window = 0;
                    }
                }
                5 => {
                    let code = u16::from_be_bytes([pkt[2], pkt[3]]);
                    let end = pkt[4..].iter().position(|&b| b == 0).unwrap_or(n - 4);
                    let msg = String::from_utf8_lossy(&pkt[4..4 + end]).to_string();
                    return Err(TftpFailure::Error(code, msg));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrq_carries_firmware_options() {
        let p = rrq("ipxe.efi", Some(8));
        assert_eq!(
            p,
            b"\0\x01ipxe.efi\0octet\0tsize\0\x30\0blksize\0\x31468\0windowsize\0\x38\0".to_vec()
        );
    }

    #[test]
    fn oack_is_read_case_insensitively() {
        let o = oack_options(b"TSIZE\x001024\0blksize\x001468\0");
        assert_eq!(o[0], ("tsize".to_string(), "1024".to_string()));
        assert_eq!(o[1], ("blksize".to_string(), "1468".to_string()));
    }
}
