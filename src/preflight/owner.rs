//! Who holds a port: the socket's inode from /proc/net/{tcp,udp}{,6}, then the process
//! whose open files include it. Preflight on a running appliance names bootd itself
//! instead of calling its own listeners "another process".

use std::path::Path;

/// How a port is held: the protocol tables to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// `/proc/PID/comm`: the program's name.
    pub name: String,
    /// The file name of `/proc/PID/exe`, when readable.
    pub exe: Option<String>,
}

impl Holder {
    /// Whether the holder is a bootd daemon.
    pub fn is_bootd(&self) -> bool {
        self.name == DAEMON || self.exe.as_deref() == Some(DAEMON)
    }
}

/// The daemon's program name.
const DAEMON: &str = "bootd";

/// The inodes of sockets bound to `port` in one /proc/net table (TCP: listening only).
fn inodes(table: &str, port: u16, proto: Proto) -> Vec<u64> {
    const TCP_LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let state = f.get(3)?;
            let inode = f.get(9)?.parse::<u64>().ok()?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            let listening = proto == Proto::Udp || *state == TCP_LISTEN;
            (p == port && listening && inode != 0).then_some(inode)
        })
        .collect()
}

/// The process holding `port`, if /proc lets us see it.
pub fn holder(proto: Proto, port: u16) -> Option<Holder> {
    let tables: &[&str] = match proto {
        Proto::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => &["/proc/net/udp", "/proc/net/udp6"],
    };
    let wanted: Vec<String> = tables
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| inodes(&text, port, proto))
        .map(|i| format!("socket:[{i}]"))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if holds(&entry.path(), &wanted) {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let exe = std::fs::read_link(entry.path().join("exe"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            return Some(Holder {
                pid,
                name: name.trim().to_string(),
                exe,
            });
        }
    }
    None
}

fn holds(proc_dir: &Path, wanted: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .is_some_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_of_a_port_are_found() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1\n\
           2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(inodes(table, 8080, Proto::Tcp), [4242]);
        assert_eq!(inodes(table, 8080, Proto::Udp), [4242, 4343]);
        assert!(inodes(table, 22, Proto::Tcp).is_empty());
    }

    #[test]
    fn our_own_listener_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let h = holder(Proto::Tcp, port);
        assert_eq!(h.as_ref().map(|h| h.pid), Some(std::process::id()));
        // A test binary is not the daemon.
        assert_eq!(h.map(|h| h.is_bootd()), Some(false));
    }
}
