//! Crafted request frames for the unit tests, built from the option lists real clients
//! send (TESTING.md: QEMU iPXE BIOS/UEFI, OVMF native PXE, UEFI HTTP boot, udhcpc).

use std::net::Ipv4Addr;

use super::wire::MAGIC_COOKIE;

/// The MAC used by the crafted clients.
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// Header fields of a crafted request.
#[derive(Clone, Copy)]
pub struct Head {
    pub mac: [u8; 6],
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub file: [u8; 128],
    pub sname: [u8; 64],
}

impl Default for Head {
    fn default() -> Self {
        Head {
            mac: MAC,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            file: [0; 128],
            sname: [0; 64],
        }
    }
}

/// A BOOTREQUEST with these options (END appended).
pub fn frame(head: Head, opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut f = vec![0u8; 240];
    f[0] = 1;
    f[1] = 1;
    f[2] = 6;
    f[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    f[10..12].copy_from_slice(&head.flags.to_be_bytes());
    f[12..16].copy_from_slice(&head.ciaddr.octets());
    f[24..28].copy_from_slice(&head.giaddr.octets());
    f[28..34].copy_from_slice(&head.mac);
    f[44..108].copy_from_slice(&head.sname);
    f[108..236].copy_from_slice(&head.file);
    f[236..240].copy_from_slice(&MAGIC_COOKIE);
    for (c, v) in opts {
        f.push(*c);
        f.push(v.len() as u8);
        f.extend_from_slice(v);
    }
    f.push(255);
    f
}

const UUID: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const IPXE_175: &[u8] = &[
    177, 5, 1, 0x1a, 0xf4, 0x10, 0x00, 19, 1, 1, 17, 1, 1, 235, 3, 1, 21, 1,
];

/// BIOS iPXE (SeaBIOS + iPXE ROM) DISCOVER.
pub fn bios_ipxe() -> Vec<u8> {
    frame(
        Head::default(),
        &[
            (53, &[1]),
            (57, &[0x05, 0xc0]),
            (93, &[0, 0]),
            (94, &[1, 2, 1]),
            (60, b"PXEClient:Arch:00000:UNDI:002001"),
            (77, b"iPXE"),
            (
                55,
                &[
                    1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133,
                    134, 135, 175, 203,
                ],
            ),
            (175, IPXE_175),
            (61, &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            (97, UUID),
        ],
    )
}

/// UEFI iPXE DISCOVER.
pub fn uefi_ipxe() -> Vec<u8> {
    frame(
        Head::default(),
        &[
            (53, &[1]),
            (93, &[0, 7]),
            (94, &[1, 3, 10]),
            (60, b"PXEClient:Arch:00007:UNDI:003010"),
            (77, b"iPXE"),
            (175, IPXE_175),
            (97, UUID),
        ],
    )
}

/// A native PXE firmware DISCOVER (OVMF-like) with a given arch and class prefix.
pub fn native(msg: u8, arch: u16, class: &[u8]) -> Vec<u8> {
    frame(
        Head {
            flags: 0x8000,
            ..Head::default()
        },
        &[
            (53, &[msg]),
            (57, &[0x05, 0xdc]),
            (
                55,
                &[
                    1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54,
                    58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
                ],
            ),
            (97, UUID),
            (94, &[1, 3, 16]),
            (93, &arch.to_be_bytes()),
            (60, class),
        ],
    )
}

/// OVMF native PXE DISCOVER.
pub fn ovmf() -> Vec<u8> {
    native(1, 7, b"PXEClient:Arch:00007:UNDI:003016")
}

/// A plain OS client (udhcpc) with a message type.
pub fn plain(msg: u8, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut opts: Vec<(u8, &[u8])> = vec![(
        53,
        std::slice::from_ref(&[1u8, 2, 3, 4, 5, 6, 7, 8][usize::from(msg.clamp(1, 8)) - 1]),
    )];
    opts.extend_from_slice(extra);
    opts.push((60, b"udhcp 1.35.0"));
    frame(Head::default(), &opts)
}
