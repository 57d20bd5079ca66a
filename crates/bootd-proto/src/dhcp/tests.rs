//! Decision and reply tests over crafted and captured packets: each request goes through
//! parse → plan → decide → write, and the written reply is read back (also by dhcproto).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use dhcproto::{Decodable, Decoder};

use super::decide::{Boot, BootFile, BootWhy, Destination};
use super::lease::PlanCtx;
use super::pxe::{pxe43, Arch};
use super::testdata::{self, frame, Head};
use super::wire::{code, OptionIter, OPTIONS_OFFSET};
use super::*;
use crate::mac::MacAddr;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        public_url: "http://10.77.0.1:8080".into(),
        pools: vec![Pool {
            subnet: Ipv4Addr::new(10, 77, 0, 0),
            prefix: 24,
            range: (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 199)),
            router: Some(SERVER),
            dns: vec![SERVER, Ipv4Addr::new(9, 9, 9, 9)],
            lease_time: Duration::from_secs(3600),
            domain: Some("lab.example".into()),
        }],
        ..Settings::default()
    }
}

fn known() -> NodeBoot {
    NodeBoot {
        known: true,
        ..NodeBoot::default()
    }
}

fn ctx(port: Port, lease: LeaseAnswer) -> Context<'static> {
    Context {
        iface: "br0",
        server_ip: SERVER,
        port,
        lease,
    }
}

/// Options of a reply, following overload, first occurrence wins.
fn reply_options(buf: &[u8]) -> HashMap<u8, Vec<u8>> {
    let mut map = HashMap::new();
    let main = &buf[OPTIONS_OFFSET..];
    let overload = OptionIter::new(main)
        .find(|(c, _)| *c == code::OVERLOAD)
        .map_or(0, |(_, v)| v[0]);
    let mut areas = vec![main];
    if overload & 1 != 0 {
        areas.push(&buf[108..236]);
    }
    if overload & 2 != 0 {
        areas.push(&buf[44..108]);
    }
    for area in areas {
        for (c, v) in OptionIter::new(area) {
            map.entry(c).or_insert_with(|| v.to_vec());
        }
    }
    map
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

struct Answer {
    buf: Vec<u8>,
    opts: HashMap<u8, Vec<u8>>,
    dest: Destination,
    boot: Option<(String, BootWhy)>,
}

impl Answer {
    fn file(&self) -> &[u8] {
        cstr(&self.buf[108..236])
    }
    fn siaddr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[20], self.buf[21], self.buf[22], self.buf[23])
    }
    fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[16], self.buf[17], self.buf[18], self.buf[19])
    }
    fn msg_type(&self) -> u8 {
        self.opts[&53][0]
    }
}

fn run(
    frame: &[u8],
    node: &NodeBoot,
    s: &Settings,
    port: Port,
    lease: LeaseAnswer,
) -> Result<Answer, IgnoreReason> {
    let req = PxeRequest::parse(frame).expect("crafted frame parses");
    match decide(&req, node, s, &ctx(port, lease)) {
        Decision::Ignore(why) => Err(why),
        Decision::Reply(r) => {
            let mut out = vec![0u8; 1500];
            let mut scratch = reply::ReplyScratch::default();
            let n = reply::write(&mut out, &mut scratch, &req, &r).expect("reply fits");
            out.truncate(n);
            Ok(Answer {
                opts: reply_options(&out),
                dest: r.dest,
                boot: r.boot.map(|b: Boot<'_>| (b.file.to_string(), b.why)),
                buf: out,
            })
        }
    }
}

fn proxy(frame: &[u8]) -> Result<Answer, IgnoreReason> {
    run(
        frame,
        &known(),
        &settings(Mode::Proxy),
        Port::Dhcp,
        LeaseAnswer::None,
    )
}

#[test]
fn bios_native_gets_bios_file_in_proxy_mode() {
    let a = proxy(&testdata::native(1, 0, b"PXEClient:Arch:00000:UNDI:002001")).unwrap();
    assert_eq!(a.msg_type(), 2);
    assert_eq!(a.file(), b"undionly.kpxe");
    assert_eq!(a.opts[&67], b"undionly.kpxe");
    assert_eq!(a.opts[&60], b"PXEClient");
    assert_eq!(a.opts[&66], b"10.77.0.1");
    assert_eq!(cstr(&a.buf[44..108]), b"10.77.0.1");
    assert_eq!(a.siaddr(), SERVER);
    assert_eq!(a.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(a.opts[&54], SERVER.octets());
    assert_eq!(a.opts[&43], [pxe43::DISCOVERY_CONTROL, 1, 8, 255]);
    assert_eq!(a.opts[&97][0], 0, "UUID echoed");
    assert_eq!(a.dest, Destination::Broadcast);
    assert!(!a.opts.contains_key(&51), "proxy offers carry no lease");
}

#[test]
fn arch_selects_file() {
    type Case<'a> = (u16, &'a [u8], &'a str, Option<&'a [u8]>);
    let cases: [Case<'_>; 6] = [
        (
            0,
            b"PXEClient:Arch:00000:UNDI:002001",
            "undionly.kpxe",
            Some(b"PXEClient"),
        ),
        (
            7,
            b"PXEClient:Arch:00007:UNDI:003016",
            "ipxe.efi",
            Some(b"PXEClient"),
        ),
        (
            9,
            b"PXEClient:Arch:00009:UNDI:003016",
            "ipxe.efi",
            Some(b"PXEClient"),
        ),
        (
            11,
            b"PXEClient:Arch:00011:UNDI:003016",
            "arm64/ipxe.efi",
            Some(b"PXEClient"),
        ),
        (
            16,
            b"HTTPClient:Arch:00016:UNDI:003001",
            "http://10.77.0.1:8080/assets/ipxe.efi",
            Some(b"HTTPClient"),
        ),
        (
            19,
            b"HTTPClient:Arch:00019:UNDI:003001",
            "http://10.77.0.1:8080/assets/arm64/ipxe.efi",
            Some(b"HTTPClient"),
        ),
    ];
    for (arch, class, file, want_class) in cases {
        let a = proxy(&testdata::native(1, arch, class)).unwrap();
        assert_eq!(a.opts[&67], file.as_bytes(), "arch {arch}");
        assert_eq!(a.file(), file.as_bytes(), "arch {arch}");
        assert_eq!(
            a.opts.get(&60).map(Vec::as_slice),
            want_class,
            "arch {arch}"
        );
        if arch >= 16 {
            assert!(!a.opts.contains_key(&66), "no TFTP server name for a URL");
        }
    }
}

#[test]
fn ipxe_gets_its_script_and_no_proxydhcp_wait() {
    for f in [testdata::bios_ipxe(), testdata::uefi_ipxe()] {
        let a = proxy(&f).unwrap();
        assert_eq!(
            a.file(),
            b"http://10.77.0.1:8080/boot/52:54:00:12:34:56.ipxe"
        );
        assert_eq!(a.opts[&175], [176, 1, 1]);
        assert_eq!(a.boot.as_ref().map(|b| b.1), Some(BootWhy::Ipxe));
    }
    // 77 as an RFC 3004 list, without 175.
    let list = frame(
        Head::default(),
        &[
            (53, &[1]),
            (93, &[0, 7]),
            (60, b"PXEClient:Arch:00007:UNDI:003010"),
            (77, b"\x04iPXE"),
        ],
    );
    assert_eq!(proxy(&list).unwrap().opts[&175], [176, 1, 1]);
    // 175 alone.
    let only175 = frame(
        Head::default(),
        &[
            (53, &[1]),
            (93, &[0, 0]),
            (60, b"PXEClient"),
            (175, &[19, 1, 1]),
        ],
    );
    assert!(proxy(&only175).unwrap().file().ends_with(b".ipxe"));
}

#[test]
fn several_arches_in_93() {
    let f = frame(
        Head::default(),
        &[(53, &[1]), (93, &[0, 0x63, 0, 9, 0, 0]), (60, b"PXEClient")],
    );
    assert_eq!(proxy(&f).unwrap().file(), b"ipxe.efi");
}

#[test]
fn unknown_arch_and_non_pxe_ignored_by_proxy() {
    let f = testdata::native(1, 2, b"PXEClient:Arch:00002:UNDI:003016");
    assert_eq!(
        proxy(&f).err(),
        Some(IgnoreReason::UnknownArch(Some(Arch(2))))
    );
    assert_eq!(
        proxy(&testdata::plain(1, &[])).err(),
        Some(IgnoreReason::NotPxe)
    );
}

#[test]
fn unknown_mac_policy() {
    let mut s = settings(Mode::Proxy);
    s.unknown = Unknown::Ignore;
    let stranger = NodeBoot::default();
    let r = run(
        &testdata::ovmf(),
        &stranger,
        &s,
        Port::Dhcp,
        LeaseAnswer::None,
    );
    assert_eq!(r.err(), Some(IgnoreReason::UnknownMac));
    s.unknown = Unknown::Discover;
    assert!(run(
        &testdata::ovmf(),
        &stranger,
        &s,
        Port::Dhcp,
        LeaseAnswer::None
    )
    .is_ok());
}

#[test]
fn node_override_wins() {
    let node = NodeBoot {
        known: true,
        efi_file: Some("snponly.efi".into()),
        bios_file: Some("custom.kpxe".into()),
        ..NodeBoot::default()
    };
    let s = settings(Mode::Proxy);
    let a = run(&testdata::ovmf(), &node, &s, Port::Dhcp, LeaseAnswer::None).unwrap();
    assert_eq!(a.file(), b"snponly.efi");
    assert_eq!(a.boot.unwrap().1, BootWhy::Override(ArchFamily::X64Efi));
    let http = run(
        &testdata::native(1, 16, b"HTTPClient:Arch:00016"),
        &node,
        &s,
        Port::Dhcp,
        LeaseAnswer::None,
    )
    .unwrap();
    assert_eq!(http.file(), b"http://10.77.0.1:8080/assets/snponly.efi");
}

#[test]
fn port_4011_request_is_acked_to_source() {
    let mut f = testdata::native(3, 7, b"PXEClient:Arch:00007:UNDI:003016");
    // A boot server request with a boot item (43.71), as after a menu.
    f.pop();
    f.extend_from_slice(&[43, 7, 71, 4, 0x80, 0, 0, 0, 255, 255]);
    let a = run(
        &f,
        &known(),
        &settings(Mode::Proxy),
        Port::Pxe,
        LeaseAnswer::None,
    )
    .unwrap();
    assert_eq!(a.msg_type(), 5);
    assert_eq!(a.dest, Destination::Source);
    assert_eq!(a.file(), b"ipxe.efi");
    let o43 = &a.opts[&43];
    assert!(
        OptionIter::new(o43).any(|(c, v)| c == 71 && v == [0x80, 0, 0, 0]),
        "boot item echoed"
    );
    // Also answered in full mode.
    assert!(run(
        &f,
        &known(),
        &settings(Mode::Full),
        Port::Pxe,
        LeaseAnswer::None
    )
    .is_ok());
    // A DISCOVER on 4011 is not.
    let d = run(
        &testdata::ovmf(),
        &known(),
        &settings(Mode::Proxy),
        Port::Pxe,
        LeaseAnswer::None,
    );
    assert_eq!(
        d.err(),
        Some(IgnoreReason::Unhandled(MessageType::Discover))
    );
}

#[test]
fn proxy_request_on_67_only_when_naming_us() {
    let ours = frame(
        Head::default(),
        &[
            (53, &[3]),
            (54, &SERVER.octets()),
            (93, &[0, 7]),
            (60, b"PXEClient"),
        ],
    );
    assert_eq!(proxy(&ours).unwrap().msg_type(), 5);
    let theirs = frame(
        Head::default(),
        &[
            (53, &[3]),
            (54, &[10, 77, 0, 2]),
            (93, &[0, 7]),
            (60, b"PXEClient"),
        ],
    );
    assert_eq!(proxy(&theirs).err(), Some(IgnoreReason::NotForUs));
    // A DHCP server on this same host has our server id: a REQUEST for an address
    // (option 50) is its lease, not ours (answering made OVMF decline its address).
    let lease_request = frame(
        Head::default(),
        &[
            (53, &[3]),
            (54, &SERVER.octets()),
            (50, &[10, 77, 0, 150]),
            (93, &[0, 7]),
            (60, b"PXEClient"),
        ],
    );
    assert_eq!(proxy(&lease_request).err(), Some(IgnoreReason::NotForUs));
}

#[test]
fn menu_strategy_carries_menu() {
    let mut s = settings(Mode::Proxy);
    s.proxy_option43 = Option43Strategy::Menu;
    let a = run(
        &testdata::ovmf(),
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::None,
    )
    .unwrap();
    let subs: HashMap<u8, Vec<u8>> = OptionIter::new(&a.opts[&43])
        .map(|(c, v)| (c, v.to_vec()))
        .collect();
    assert_eq!(subs[&6], [7]);
    assert_eq!(subs[&8], [0x80, 0, 1, 10, 77, 0, 1]);
    assert_eq!(&subs[&9][..3], &[0x80, 0, reply::MENU_LABEL.len() as u8]);
    assert_eq!(subs[&10][0], 0, "prompt timeout 0");
}

#[test]
fn relay_reply_goes_to_giaddr_with_82_echoed() {
    let giaddr = Ipv4Addr::new(10, 88, 0, 1);
    let info: &[u8] = &[1, 4, b'e', b't', b'h', b'1', 2, 2, 0xab, 0xcd];
    let f = frame(
        Head {
            giaddr,
            ..Head::default()
        },
        &[
            (53, &[1]),
            (93, &[0, 0]),
            (60, b"PXEClient:Arch:00000:UNDI:002001"),
            (82, info),
        ],
    );
    let a = proxy(&f).unwrap();
    assert_eq!(a.dest, Destination::Relay(giaddr));
    assert_eq!(a.opts[&82], info);
    assert_eq!(&a.buf[24..28], &giaddr.octets());
    // Option 82 is the last option before END.
    let last = OptionIter::new(&a.buf[OPTIONS_OFFSET..])
        .last()
        .map(|(c, _)| c);
    assert_eq!(last, Some(82));
}

#[test]
fn full_mode_offer_and_ack_carry_pool_and_boot() {
    let s = settings(Mode::Full);
    let ip = Ipv4Addr::new(10, 77, 0, 100);
    let a = run(
        &testdata::bios_ipxe(),
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Offer { ip, pool: 0 },
    )
    .unwrap();
    assert_eq!(a.msg_type(), 2);
    assert_eq!(a.yiaddr(), ip);
    assert_eq!(a.opts[&51], 3600u32.to_be_bytes());
    assert_eq!(a.opts[&58], 1800u32.to_be_bytes());
    assert_eq!(a.opts[&59], 3150u32.to_be_bytes());
    assert_eq!(a.opts[&1], [255, 255, 255, 0]);
    assert_eq!(a.opts[&3], SERVER.octets());
    assert_eq!(a.opts[&6], [10, 77, 0, 1, 9, 9, 9, 9]);
    assert_eq!(a.opts[&15], b"lab.example");
    assert_eq!(a.opts[&175], [176, 1, 1]);
    assert!(
        !a.opts.contains_key(&60),
        "no PXEClient from the address server"
    );
    assert!(!a.opts.contains_key(&43));
    assert_eq!(
        a.dest,
        Destination::Link(ip),
        "no broadcast flag: unicast at link level"
    );
    // A plain client gets an address and no boot file.
    let p = run(
        &testdata::plain(1, &[]),
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Offer { ip, pool: 0 },
    )
    .unwrap();
    assert!(p.file().is_empty() && !p.opts.contains_key(&67));
    assert_eq!(p.siaddr(), Ipv4Addr::UNSPECIFIED);
    // HTTP boot in full mode still says HTTPClient.
    let h = run(
        &testdata::native(1, 16, b"HTTPClient:Arch:00016"),
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Offer { ip, pool: 0 },
    )
    .unwrap();
    assert_eq!(h.opts[&60], b"HTTPClient");
    assert_eq!(h.dest, Destination::Broadcast, "broadcast flag honoured");
    // Proxy decisions never assign an address.
    assert_eq!(
        proxy(&testdata::bios_ipxe()).unwrap().yiaddr(),
        Ipv4Addr::UNSPECIFIED
    );
}

#[test]
fn full_mode_nak_and_no_reply_cases() {
    let s = settings(Mode::Full);
    let n = run(
        &testdata::plain(3, &[(50, &[192, 168, 1, 5])]),
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Nak("wrong subnet"),
    )
    .unwrap();
    assert_eq!(n.msg_type(), 6);
    assert_eq!(n.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(n.opts[&56], b"wrong subnet");
    assert_eq!(n.dest, Destination::Broadcast);
    let r = run(
        &testdata::plain(7, &[]),
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Release {
            ip: Ipv4Addr::new(10, 77, 0, 100),
        },
    );
    assert_eq!(r.err(), Some(IgnoreReason::NoReplyNeeded("released")));
}

#[test]
fn reply_decodes_with_dhcproto() {
    let a = proxy(&testdata::ovmf()).unwrap();
    let msg =
        dhcproto::v4::Message::decode(&mut Decoder::new(&a.buf)).expect("dhcproto reads our reply");
    assert_eq!(msg.opcode(), dhcproto::v4::Opcode::BootReply);
    assert_eq!(msg.xid(), 0x1234_5678);
    assert_eq!(msg.chaddr(), &testdata::MAC);
    assert_eq!(msg.siaddr(), SERVER);
    assert_eq!(msg.fname().map(cstr), Some(&b"ipxe.efi"[..]));
    assert!(matches!(
        msg.opts().get(dhcproto::v4::OptionCode::MessageType),
        Some(dhcproto::v4::DhcpOption::MessageType(
            dhcproto::v4::MessageType::Offer
        ))
    ));
}

#[test]
fn overload_written_when_options_do_not_fit() {
    // A long base URL makes the file name not fit in 'file' and a 576 limit forces overload.
    let mut s = settings(Mode::Full);
    s.public_url = format!("http://{}.example:8080", "b".repeat(100));
    s.pools[0].domain = Some("d".repeat(120));
    let f = frame(
        Head::default(),
        &[(53, &[1]), (93, &[0, 7]), (60, b"PXEClient"), (77, b"iPXE")],
    );
    let a = run(
        &f,
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Offer {
            ip: Ipv4Addr::new(10, 77, 0, 100),
            pool: 0,
        },
    )
    .unwrap();
    assert!(
        a.buf.len() <= 548,
        "within the default limit: {}",
        a.buf.len()
    );
    assert!(a.opts.contains_key(&52), "overload used");
    let url = format!("{}/boot/52:54:00:12:34:56.ipxe", s.public_url);
    assert_eq!(a.opts[&67], url.as_bytes());
    assert_eq!(a.opts[&15].len(), 120);
    assert_eq!(a.opts[&175], [176, 1, 1]);
}

#[test]
fn overload_read_from_request() {
    // The options area names overload 3; the class and arch sit in file and sname.
    let mut head = Head::default();
    let file_opts = [
        60u8, 9, b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', 255,
    ];
    head.file[..file_opts.len()].copy_from_slice(&file_opts);
    head.sname[..5].copy_from_slice(&[93, 2, 0, 11, 255]);
    let f = frame(head, &[(53, &[1]), (52, &[3])]);
    let req = PxeRequest::parse(&f).unwrap();
    assert!(req.is_pxe());
    assert_eq!(req.arch, Some(Arch::EFI_ARM64));
    assert_eq!(proxy(&f).unwrap().opts[&67], b"arm64/ipxe.efi");
}

#[test]
fn lease_plan_then_decide_end_to_end() {
    let s = settings(Mode::Full);
    let mut table = LeaseTable::new();
    let node = known();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let no_res = |_ip: Ipv4Addr| None::<MacAddr>;
    let pc = PlanCtx {
        pools: &s.pools,
        pool: Some(0),
        server_id: SERVER,
        now,
        reserved_for: &no_res,
    };
    let disc = testdata::plain(1, &[]);
    let req = PxeRequest::parse(&disc).unwrap();
    let plan = table.plan(&req, &node, &pc);
    let LeaseAnswer::Offer { ip, .. } = plan else {
        panic!("{plan:?}")
    };
    assert_eq!(ip, Ipv4Addr::new(10, 77, 0, 100));
    assert!(
        table.apply(&plan, &req, &node, &s.pools, now).is_none(),
        "offers are not persisted"
    );
    let reqf = testdata::plain(3, &[(50, &ip.octets()), (54, &SERVER.octets())]);
    let r = PxeRequest::parse(&reqf).unwrap();
    let plan = table.plan(&r, &node, &pc);
    assert_eq!(plan, LeaseAnswer::Ack { ip, pool: 0 });
    let lease = table
        .apply(&plan, &r, &node, &s.pools, now)
        .expect("ACK persists");
    assert_eq!(lease.state, LeaseState::Bound);
    assert_eq!(lease.expires, now + Duration::from_secs(3600));
    let a = run(&reqf, &node, &s, Port::Dhcp, plan).unwrap();
    assert_eq!(a.msg_type(), 5);
    assert_eq!(a.yiaddr(), ip);
    assert!(matches!(BootFile::Name("x"), BootFile::Name(_)));
}

fn capture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/dhcp/{name}.bin",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../..")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn captured_clients_are_read_as_they_are() {
    let bios = capture("bios-ipxe-discover");
    let req = PxeRequest::parse(&bios).unwrap();
    assert_eq!(req.mac.to_string(), "52:54:00:12:34:56");
    assert_eq!(req.arch, Some(Arch::BIOS));
    assert!(req.is_ipxe() && matches!(req.user_class, Some(pxe::UserClass::Raw(b"iPXE"))));
    assert_eq!(
        req.uuid.map(|u| u.uuid()[0]),
        Some(0x44),
        "SMBIOS byte order"
    );
    let ovmf = capture("ovmf-native-discover");
    let req = PxeRequest::parse(&ovmf).unwrap();
    assert_eq!(req.arch, Some(Arch::EFI_BC));
    // The real firmware says UNDI:003000 (TESTING.md lists 003016).
    assert_eq!(req.vendor_class.and_then(|v| v.undi), Some((3, 0)));
    assert!(!req.is_ipxe() && req.is_pxe());
    let plain = capture("guest-udhcpc-discover");
    let udhcpc = PxeRequest::parse(&plain).unwrap();
    assert!(!udhcpc.is_pxe() && !udhcpc.is_ipxe());
}

#[test]
fn captured_clients_get_the_right_boot_file() {
    let script = b"http://10.77.0.1:8080/boot/52:54:00:12:34:56.ipxe";
    let cases: [(&str, Port, &[u8]); 7] = [
        ("bios-ipxe-discover", Port::Dhcp, script),
        ("uefi-ipxe-discover", Port::Dhcp, script),
        ("ovmf-ipxe-efi-discover", Port::Dhcp, script),
        ("ovmf-native-discover", Port::Dhcp, b"ipxe.efi"),
        ("ovmf-native-request-4011", Port::Pxe, b"ipxe.efi"),
        ("bios-ipxe-request-4011", Port::Pxe, script),
        ("uefi-ipxe-request-4011", Port::Pxe, script),
    ];
    for (name, port, file) in cases {
        let a = run(
            &capture(name),
            &known(),
            &settings(Mode::Proxy),
            port,
            LeaseAnswer::None,
        )
        .unwrap_or_else(|why| panic!("{name}: {why}"));
        assert_eq!(a.opts[&67], file, "{name}");
        assert_eq!(a.yiaddr(), Ipv4Addr::UNSPECIFIED, "{name}");
    }
    // The non-PXE guest gets nothing from a ProxyDHCP.
    let r = run(
        &capture("guest-udhcpc-discover"),
        &known(),
        &settings(Mode::Proxy),
        Port::Dhcp,
        LeaseAnswer::None,
    );
    assert_eq!(r.err(), Some(IgnoreReason::NotPxe));
    // Full mode: the OVMF native discover gets an address and ipxe.efi, no PXEClient.
    let ip = Ipv4Addr::new(10, 77, 0, 100);
    let a = run(
        &capture("ovmf-native-discover"),
        &known(),
        &settings(Mode::Full),
        Port::Dhcp,
        LeaseAnswer::Offer { ip, pool: 0 },
    )
    .unwrap();
    assert_eq!((a.yiaddr(), a.file()), (ip, &b"ipxe.efi"[..]));
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = format!(
        "{}/fuzz/corpus/dhcp_parse_decide",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../..")
    );
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz_one(&data);
        n += 1;
    }
    assert!(n >= 50, "corpus has {n} files");
}

/// Plans and applies one request against a table, like the service does.
fn step(
    table: &mut LeaseTable,
    frame: &[u8],
    node: &NodeBoot,
    s: &Settings,
    now: SystemTime,
    reserved: &dyn Fn(Ipv4Addr) -> Option<MacAddr>,
) -> (LeaseAnswer, Option<Lease>) {
    let req = PxeRequest::parse(frame).unwrap();
    let pc = PlanCtx {
        pools: &s.pools,
        pool: Some(0),
        server_id: SERVER,
        now,
        reserved_for: reserved,
    };
    let plan = table.plan(&req, node, &pc);
    let d = decide(&req, node, s, &ctx(Port::Dhcp, plan));
    let persisted = if d.commits_lease() {
        table.apply(&plan, &req, node, &s.pools, now)
    } else {
        None
    };
    (plan, persisted)
}

fn with_mac(mut f: Vec<u8>, last: u8) -> Vec<u8> {
    f[33] = last;
    f
}

#[test]
fn reservations_are_kept_for_their_node() {
    let s = settings(Mode::Full);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let reserved_ip = Ipv4Addr::new(10, 77, 0, 100);
    let owner = MacAddr(testdata::MAC);
    let reserved = move |ip: Ipv4Addr| (ip == reserved_ip).then_some(owner);
    let mut t = LeaseTable::new();
    // Another MAC scanning from the start of the range skips the reserved address.
    let (plan, _) = step(
        &mut t,
        &with_mac(testdata::plain(1, &[]), 0x99),
        &known(),
        &s,
        now,
        &reserved,
    );
    assert_eq!(
        plan,
        LeaseAnswer::Offer {
            ip: Ipv4Addr::new(10, 77, 0, 101),
            pool: 0
        }
    );
    // The owner gets it, even outside the dynamic range.
    let node = NodeBoot {
        reserved_ip: Some(Ipv4Addr::new(10, 77, 0, 20)),
        ..known()
    };
    let (plan, _) = step(&mut t, &testdata::plain(1, &[]), &node, &s, now, &reserved);
    assert_eq!(
        plan,
        LeaseAnswer::Offer {
            ip: Ipv4Addr::new(10, 77, 0, 20),
            pool: 0
        }
    );
}

#[test]
fn release_decline_inform_and_rebind() {
    let s = settings(Mode::Full);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let none = |_ip: Ipv4Addr| None::<MacAddr>;
    let mut t = LeaseTable::new();
    let (plan, _) = step(&mut t, &testdata::plain(1, &[]), &known(), &s, now, &none);
    let LeaseAnswer::Offer { ip, .. } = plan else {
        panic!("{plan:?}")
    };
    let (plan, lease) = step(
        &mut t,
        &testdata::plain(3, &[(50, &ip.octets()), (54, &SERVER.octets())]),
        &known(),
        &s,
        now,
        &none,
    );
    assert!(matches!(plan, LeaseAnswer::Ack { .. }) && lease.is_some());
    // RENEW/REBIND: ciaddr, no 50/54.
    let renew = frame(
        Head {
            ciaddr: ip,
            ..Head::default()
        },
        &[(53, &[3])],
    );
    assert_eq!(
        step(&mut t, &renew, &known(), &s, now, &none).0,
        LeaseAnswer::Ack { ip, pool: 0 }
    );
    // Another MAC asking for that address by INIT-REBOOT is refused.
    let steal = with_mac(testdata::plain(3, &[(50, &ip.octets())]), 0x77);
    assert_eq!(
        step(&mut t, &steal, &known(), &s, now, &none).0,
        LeaseAnswer::Nak("address not available")
    );
    // INFORM is answered to ciaddr without a lease time.
    let inform = frame(
        Head {
            ciaddr: ip,
            ..Head::default()
        },
        &[(53, &[8])],
    );
    let a = run(
        &inform,
        &known(),
        &s,
        Port::Dhcp,
        LeaseAnswer::Inform { pool: Some(0) },
    )
    .unwrap();
    assert_eq!(
        (a.msg_type(), a.dest, a.opts.contains_key(&51)),
        (5, Destination::Unicast(ip), false)
    );
    // RELEASE is persisted as released; the address is free again.
    let release = frame(
        Head {
            ciaddr: ip,
            ..Head::default()
        },
        &[(53, &[7])],
    );
    let (plan, lease) = step(&mut t, &release, &known(), &s, now, &none);
    assert_eq!(plan, LeaseAnswer::Release { ip });
    assert_eq!(lease.map(|l| l.state), Some(LeaseState::Released));
    // DECLINE quarantines the address for everyone.
    let (plan, _) = step(&mut t, &testdata::plain(1, &[]), &known(), &s, now, &none);
    let LeaseAnswer::Offer { ip: ip2, .. } = plan else {
        panic!("{plan:?}")
    };
    step(
        &mut t,
        &testdata::plain(3, &[(50, &ip2.octets()), (54, &SERVER.octets())]),
        &known(),
        &s,
        now,
        &none,
    );
    let (plan, lease) = step(
        &mut t,
        &testdata::plain(4, &[(50, &ip2.octets())]),
        &known(),
        &s,
        now,
        &none,
    );
    assert_eq!(plan, LeaseAnswer::Decline { ip: ip2 });
    assert_eq!(lease.map(|l| l.state), Some(LeaseState::Declined));
    let (plan, _) = step(
        &mut t,
        &with_mac(testdata::plain(1, &[(50, &ip2.octets())]), 0x55),
        &known(),
        &s,
        now,
        &none,
    );
    assert!(
        matches!(plan, LeaseAnswer::Offer { ip, .. } if ip != ip2),
        "{plan:?}"
    );
    // Once the quarantine is over the address is usable again.
    let later = now + lease::DECLINE_QUARANTINE + Duration::from_secs(1);
    t.sweep(later);
    let (plan, _) = step(
        &mut t,
        &with_mac(testdata::plain(1, &[(50, &ip2.octets())]), 0x56),
        &known(),
        &s,
        later,
        &none,
    );
    assert_eq!(plan, LeaseAnswer::Offer { ip: ip2, pool: 0 });
}

#[test]
fn leases_survive_a_reload() {
    let s = settings(Mode::Full);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let none = |_ip: Ipv4Addr| None::<MacAddr>;
    let bound = Lease {
        mac: MacAddr(testdata::MAC),
        ip: Ipv4Addr::new(10, 77, 0, 100),
        expires: now + Duration::from_secs(600),
        hostname: None,
        state: LeaseState::Bound,
    };
    let declined = Lease {
        mac: MacAddr([9; 6]),
        ip: Ipv4Addr::new(10, 77, 0, 101),
        expires: now + Duration::from_secs(600),
        hostname: None,
        state: LeaseState::Declined,
    };
    let mut t = LeaseTable::new();
    t.load([bound.clone(), declined]);
    let (plan, _) = step(
        &mut t,
        &with_mac(testdata::plain(1, &[]), 0x01),
        &known(),
        &s,
        now,
        &none,
    );
    assert_eq!(
        plan,
        LeaseAnswer::Offer {
            ip: Ipv4Addr::new(10, 77, 0, 102),
            pool: 0
        },
        "bound and quarantined addresses skipped"
    );
    let (plan, _) = step(&mut t, &testdata::plain(1, &[]), &known(), &s, now, &none);
    assert_eq!(
        plan,
        LeaseAnswer::Offer {
            ip: bound.ip,
            pool: 0
        },
        "owner gets its address back"
    );
}
