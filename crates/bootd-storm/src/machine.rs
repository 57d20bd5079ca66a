//! One simulated machine: firmware DHCP, TFTP of the boot loader, iPXE's DHCP, the boot
//! script, kernel and initrd over HTTP, two phase callbacks and a hardware report, each
//! step timed; the first failure ends the boot and is recorded with its kind.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootd_proto::mac::MacAddr;
use bytes::Bytes;

use crate::dhcp::{self, DhcpFailure, Hub, Stage};
use crate::http::{Conn, HttpFailure};
use crate::script;
use crate::tftp::{self, TftpFailure};

/// The timed steps of a boot, in order; `ToScript` is start → script received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Dhcp,
    Tftp,
    Dhcp2,
    Script,
    Kernel,
    Initrd,
    Callbacks,
    Hardware,
    ToScript,
    Total,
}

impl Step {
    /// Every step in report order.
    pub const ALL: [Step; 10] = [
        Step::Dhcp,
        Step::Tftp,
        Step::Dhcp2,
        Step::Script,
        Step::Kernel,
        Step::Initrd,
        Step::Callbacks,
        Step::Hardware,
        Step::ToScript,
        Step::Total,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Step::Dhcp => "dhcp",
            Step::Tftp => "tftp",
            Step::Dhcp2 => "dhcp2",
            Step::Script => "script",
            Step::Kernel => "kernel",
            Step::Initrd => "initrd",
            Step::Callbacks => "callbacks",
            Step::Hardware => "hardware",
            Step::ToScript => "to_script",
            Step::Total => "total",
        }
    }
}

/// Settings shared by every machine.
pub struct Plan {
    pub proxy: bool,
    pub backoff: Vec<Duration>,
    pub tftp_port: u16,
    pub tftp_timeout: Duration,
    pub tftp_tries: u32,
    pub windowsize: Option<u16>,
    pub http_timeout: Duration,
    pub bind_lease: bool,
    pub kernel_url: Option<String>,
    pub initrd_url: Option<String>,
    /// The hardware report body (`{"lshw": ...}`), the same for every machine.
    pub hardware: Bytes,
}

/// Why a boot stopped.
#[derive(Debug, Clone)]
pub struct Failure {
    pub step: Step,
    pub kind: &'static str,
    pub detail: String,
}

/// What one machine did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub mac: String,
    pub steps: Vec<(Step, Duration)>,
    pub failure: Option<Failure>,
    pub tftp_bytes: u64,
    pub http_bytes: u64,
}

/// A machine's identity: MAC and SMBIOS UUID from the seed and its index.
pub fn identity(seed: u16, index: u32) -> (MacAddr, [u8; 16]) {
    let s = seed.to_be_bytes();
    let i = index.to_be_bytes();
    // Locally administered unicast (02:...), seed in bytes 1–2, index in bytes 3–5.
    let mac = MacAddr([0x02, s[0], s[1], i[1], i[2], i[3]]);
    let mut uuid = [0u8; 16];
    uuid[..4].copy_from_slice(b"STRM");
    uuid[4..6].copy_from_slice(&s);
    uuid[12..].copy_from_slice(&i);
    (mac, uuid)
}

fn dhcp_failure(step: Step, e: DhcpFailure) -> Failure {
    let (kind, detail) = match e {
        DhcpFailure::Timeout => (
            if step == Step::Dhcp {
                "dhcp_timeout"
            } else {
                "dhcp2_timeout"
            },
            "no answer after the last retry".to_string(),
        ),
        DhcpFailure::Nak => ("dhcp_nak", "NAK".to_string()),
        DhcpFailure::BadOffer(w) => ("bad_offer", w.to_string()),
        DhcpFailure::Io(e) => ("dhcp_io", e.to_string()),
    };
    Failure { step, kind, detail }
}

fn http_failure(step: Step, e: HttpFailure) -> Failure {
    let (kind, detail) = match e {
        HttpFailure::Status(s) => ("http_status", s.to_string()),
        HttpFailure::Io(e) => ("http_io", e),
        HttpFailure::BadUrl(u) => ("bad_url", u),
    };
    Failure { step, kind, detail }
}

/// Runs one boot to its end or its first failure.
pub async fn boot(hub: Arc<Hub>, plan: Arc<Plan>, mac: MacAddr, uuid: [u8; 16]) -> Outcome {
    let mut out = Outcome {
        mac: mac.to_string(),
        ..Outcome::default()
    };
    let started = Instant::now();
    if let Err(f) = steps(&hub, &plan, mac, uuid, started, &mut out).await {
        out.failure = Some(f);
    } else {
        out.steps.push((Step::Total, started.elapsed()));
    }
    out
}

async fn timed<T, F: std::future::Future<Output = T>>(out: &mut Outcome, step: Step, f: F) -> T {
    let t = Instant::now();
    let r = f.await;
    out.steps.push((step, t.elapsed()));
    r
}

async fn steps(
    hub: &Hub,
    plan: &Plan,
    mac: MacAddr,
    uuid: [u8; 16],
    started: Instant,
    out: &mut Outcome,
) -> Result<(), Failure> {
    let client = dhcp::Client {
        hub,
        mac,
        uuid,
        proxy: plan.proxy,
        backoff: &plan.backoff,
    };
    let t = Instant::now();
    let lease = client
        .exchange(Stage::Firmware, started)
        .await
        .map_err(|e| dhcp_failure(Step::Dhcp, e))?;
    out.steps.push((Step::Dhcp, t.elapsed()));

    let local = if plan.bind_lease {
        lease.yiaddr
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let read = tftp::Read {
        server: lease.next_server,
        port: plan.tftp_port,
        local,
        file: &lease.boot_file,
        windowsize: plan.windowsize,
        timeout: plan.tftp_timeout,
        tries: plan.tftp_tries,
    };
    let got = timed(out, Step::Tftp, read.run()).await.map_err(|e| {
        let (kind, detail) = match e {
            TftpFailure::Timeout => ("tftp_timeout", "no answer after the last retry".into()),
            TftpFailure::Error(c, m) => ("tftp_error", format!("error {c}: {m}")),
            TftpFailure::Size { announced, got } => {
                ("tftp_size", format!("{got} bytes, tsize said {announced}"))
            }
            TftpFailure::Protocol(w) => ("tftp_protocol", w.to_string()),
            TftpFailure::Io(e) => ("tftp_io", e.to_string()),
        };
        Failure {
            step: Step::Tftp,
            kind,
            detail,
        }
    })?;
    out.tftp_bytes += got;

    let t = Instant::now();
    let lease2 = client
        .exchange(Stage::Ipxe, started)
        .await
        .map_err(|e| dhcp_failure(Step::Dhcp2, e))?;
    out.steps.push((Step::Dhcp2, t.elapsed()));
    if !lease2.boot_file.starts_with("http://") {
        return Err(Failure {
            step: Step::Dhcp2,
            kind: "bad_offer",
            detail: format!("iPXE was offered {:?}, not an HTTP URL", lease2.boot_file),
        });
    }

    let bind = plan.bind_lease.then_some(lease2.yiaddr);
    let mut conn = Conn::new(bind, plan.http_timeout);
    let text = timed(out, Step::Script, conn.get_text(&lease2.boot_file))
        .await
        .map_err(|e| http_failure(Step::Script, e))?;
    out.steps.push((Step::ToScript, started.elapsed()));
    out.http_bytes += text.len() as u64;
    let parsed = script::parse(&text);
    let bad = |what: &str| Failure {
        step: Step::Script,
        kind: "bad_script",
        detail: format!("{what} missing in the script from {}", lease2.boot_file),
    };
    let kernel = plan
        .kernel_url
        .clone()
        .or(parsed.kernel)
        .ok_or_else(|| bad("kernel URL"))?;
    let initrd = plan
        .initrd_url
        .clone()
        .or(parsed.initrd)
        .ok_or_else(|| bad("initrd URL"))?;
    let token = parsed.token.ok_or_else(|| bad("bootd.token"))?;
    let base = lease2
        .boot_file
        .split("/boot/")
        .next()
        .unwrap_or_default()
        .to_string();
    let phase_url = parsed
        .phase_url
        .unwrap_or_else(|| format!("{base}/api/v1/nodes/{mac}/phase"));
    let hardware_url = parsed
        .hardware_url
        .unwrap_or_else(|| format!("{base}/api/v1/nodes/{mac}/hardware"));

    for (step, url) in [(Step::Kernel, &kernel), (Step::Initrd, &initrd)] {
        let n = timed(out, step, conn.get_count(url))
            .await
            .map_err(|e| http_failure(step, e))?;
        out.http_bytes += n;
    }

    let installing =
        Bytes::from_static(br#"{"phase":"installing","progress":50,"message":"bootd-storm"}"#);
    let registered = Bytes::from(format!(
        r#"{{"phase":"registered","message":"bootd-storm","ip":"{}"}}"#,
        lease2.yiaddr
    ));
    let t = Instant::now();
    for body in [installing, registered] {
        conn.post(&phase_url, &token, body)
            .await
            .map_err(|e| http_failure(Step::Callbacks, e))?;
    }
    out.steps.push((Step::Callbacks, t.elapsed()));
    timed(
        out,
        Step::Hardware,
        conn.post(&hardware_url, &token, plan.hardware.clone()),
    )
    .await
    .map_err(|e| http_failure(Step::Hardware, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_distinct_and_local() {
        let (a, ua) = identity(7, 1);
        let (b, ub) = identity(7, 2);
        assert_ne!(a, b);
        assert_ne!(ua, ub);
        assert_eq!(a.octets()[0] & 0x03, 0x02);
        assert_eq!(a.to_string(), "02:00:07:00:00:01");
    }
}
