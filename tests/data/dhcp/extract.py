#!/usr/bin/env python3
"""Extracts BOOTP/DHCP messages (the UDP payloads) from capture.sh pcaps into named .bin
test vectors. Stdlib only: reads classic pcap with Ethernet framing (what tcpdump -w writes).

Usage: extract.py OUT_DIR RUN=FILE.pcap [RUN=FILE.pcap ...]
  RUN is the client of the capture (bios-ipxe, uefi-ipxe, ovmf-native), suffixed with
  -full or -proxy. The first message of each (sender, type, port) is written once:
  the first pcap given that contains it wins.
"""
import struct
import sys

MAGIC = b"\x63\x82\x53\x63"
TYPES = {1: "discover", 2: "offer", 3: "request", 5: "ack", 6: "nak", 8: "inform"}


def packets(path):
    """Yields (src_port, dst_port, udp_payload) for IPv4/UDP frames of a pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected Ethernet (1)")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue
        udp = ip[ihl:]
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        yield sport, dport, bytes(udp[8:ulen])


def options(msg):
    """Returns {code: value} of a BOOTP message's DHCP options (first occurrence wins)."""
    out = {}
    if len(msg) < 240 or msg[236:240] != MAGIC:
        return out
    i = 240
    while i < len(msg):
        code = msg[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(msg):
            break
        ln = msg[i + 1]
        out.setdefault(code, msg[i + 2:i + 2 + ln])
        i += 2 + ln
    return out


def sender(run, msg, opts):
    """Names the program that sent a client message, from its option 60 / 77 / 175."""
    vendor = opts.get(60, b"")
    if vendor.startswith(b"udhcp"):
        return "guest-udhcpc"
    is_ipxe = 175 in opts or opts.get(77, b"") == b"iPXE"
    client = run.rsplit("-", 1)[0]
    if client == "ovmf-native":
        return "ovmf-ipxe-efi" if is_ipxe else "ovmf-native"
    return client


def main():
    out_dir = sys.argv[1]
    written = set()
    for arg in sys.argv[2:]:
        run, path = arg.split("=", 1)
        last_client = None
        for sport, dport, msg in packets(path):
            opts = options(msg)
            kind = TYPES.get((opts.get(53) or b"\x00")[0])
            if kind is None or len(msg) < 240:
                continue
            suffix = "-4011" if 4011 in (sport, dport) else ""
            if msg[0] == 1:
                who = sender(run, msg, opts)
                last_client = who
            elif last_client is not None:
                # A server reply, named after the dnsmasq role and the client it answers.
                if run.endswith("-full"):
                    role = "dnsmasq-full"
                elif suffix or opts.get(60) == b"PXEClient":
                    role = "dnsmasq-proxydhcp"
                else:
                    continue  # the address-only server adds nothing to the full-mode replies
                who = f"{role}-to-{last_client}"
                if last_client == "guest-udhcpc":
                    continue
            else:
                continue
            name = f"{who}-{kind}{suffix}.bin"
            if name in written:
                continue
            written.add(name)
            with open(f"{out_dir}/{name}", "wb") as f:
                f.write(msg)
            print(f"{name}: {len(msg)} bytes from {run} ({path})")


if __name__ == "__main__":
    main()
