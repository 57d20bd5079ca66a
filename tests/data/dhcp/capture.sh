#!/bin/bash
# Boots one QEMU PXE client against a dnsmasq reference server inside a private network
# namespace and writes the DHCP packet capture (67, 68, 69, 4011) to OUT.pcap.
#
# Usage: capture.sh bios-ipxe|uefi-ipxe|ovmf-native full|proxy OUT.pcap [timeout_secs]
#   full : one dnsmasq hands out addresses and boot files (tag ipxe -> HTTP script).
#   proxy: dnsmasq #1 only hands out addresses; dnsmasq #2 is a ProxyDHCP (port 67 + 4011).
# Needs root, qemu-system-x86, ipxe, ovmf, dnsmasq-base, tcpdump, python3 and the guest
# from tests/guest/build-guest.sh. Traffic never leaves the namespace.
set -euo pipefail

client="$1"; style="$2"; pcap="$(readlink -f "$3")"; limit="${4:-90}"
here="$(cd "$(dirname "$0")" && pwd)"
guest_dir="$here/../../guest"
ns="bdcap$$"
tmp="$(mktemp -d)"
pids=()

cleanup() {
    # Everything still inside the namespace was started by this script: stop it by pid.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

eval "$("$guest_dir/build-guest.sh" | sed 's/^/guest_/')"
mkdir -p "$tmp/tftp" "$tmp/www"
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi "$tmp/tftp/"
cp "$guest_vmlinuz" "$tmp/www/vmlinuz"
cp "$guest_initrd" "$tmp/www/initrd.gz"
cat >"$tmp/www/boot.ipxe" <<'EOF'
#!ipxe
kernel http://10.77.0.1:8080/vmlinuz initrd=initrd.gz console=ttyS0 quiet bootd.phase_url=http://10.77.0.1:8080/phase bootd.token=abc
initrd http://10.77.0.1:8080/initrd.gz
boot
EOF

ip netns add "$ns"
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx ip link add br0 type bridge
nsx ip addr add 10.77.0.1/24 dev br0
nsx ip addr add fd77::1/64 dev br0 nodad
nsx ip tuntap add dev tap0 mode tap
nsx ip link set tap0 master br0
nsx ip link set tap0 up
nsx ip link set br0 up

ip netns exec "$ns" tcpdump -i br0 -U -s 0 -w "$pcap" 'port 67 or port 68 or port 69 or port 4011' 2>"$tmp/tcpdump.log" &
pids+=($!)
ip netns exec "$ns" python3 "$guest_dir/ref_http.py" --root "$tmp/www" --bind 10.77.0.1 --port 8080 \
    --log "$tmp/posts.jsonl" 2>"$tmp/http.log" &
pids+=($!)

common=(--no-daemon --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces
        --leasefile-ro --no-ping --log-dhcp)
if [ "$style" = full ]; then
    ip netns exec "$ns" /usr/sbin/dnsmasq "${common[@]}" --pid-file="$tmp/dnsmasq.pid" \
        --dhcp-range=10.77.0.100,10.77.0.200,255.255.255.0,1h \
        --enable-tftp --tftp-root="$tmp/tftp" \
        --dhcp-match=set:ipxe,175 --dhcp-match=set:efi64,option:client-arch,7 \
        --dhcp-match=set:efi64,option:client-arch,9 \
        --dhcp-option=tag:ipxe,encap:175,176,1b \
        --dhcp-boot=tag:ipxe,http://10.77.0.1:8080/boot.ipxe \
        --dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi \
        --dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe \
        --enable-ra --dhcp-range=fd77::,ra-only 2>"$tmp/dnsmasq.log" &
    pids+=($!)
else
    # An address-only server, like an office router ...
    ip netns exec "$ns" /usr/sbin/dnsmasq "${common[@]}" --pid-file="$tmp/dnsmasq-a.pid" \
        --dhcp-range=10.77.0.100,10.77.0.200,255.255.255.0,1h \
        --enable-ra --dhcp-range=fd77::,ra-only 2>"$tmp/dnsmasq-a.log" &
    pids+=($!)
    # ... and a ProxyDHCP beside it that only answers PXE clients.
    ip netns exec "$ns" /usr/sbin/dnsmasq "${common[@]}" --pid-file="$tmp/dnsmasq-p.pid" \
        --dhcp-range=10.77.0.0,proxy,255.255.255.0 \
        --enable-tftp --tftp-root="$tmp/tftp" \
        --dhcp-match=set:ipxe,175 \
        --dhcp-option=tag:ipxe,encap:175,176,1b \
        --pxe-prompt=go,0 \
        --pxe-service=tag:!ipxe,x86PC,"bios",undionly.kpxe \
        --pxe-service=tag:!ipxe,x86-64_EFI,"efi",ipxe.efi \
        --pxe-service=tag:ipxe,x86PC,"script",http://10.77.0.1:8080/boot.ipxe \
        --pxe-service=tag:ipxe,x86-64_EFI,"script",http://10.77.0.1:8080/boot.ipxe \
        2>"$tmp/dnsmasq-p.log" &
    pids+=($!)
fi
sleep 1

qemu=(qemu-system-x86_64 -machine q35 -accel "${BOOTD_ACCEL:-tcg}" -m 256 -smp 1 -display none
      -monitor none -no-reboot -serial "file:$tmp/serial.log" -nodefaults
      -smbios type=1,manufacturer=Acme,product=PXE-Test,serial=SN123,uuid=11223344-5566-7788-99aa-bbccddeeff00
      -netdev tap,id=n0,ifname=tap0,script=no,downscript=no)
nic="virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,bootindex=1"
case "$client" in
    bios-ipxe) ;;
    uefi-ipxe|ovmf-native)
        cp /usr/share/OVMF/OVMF_VARS_4M.fd "$tmp/vars.fd"
        qemu+=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
               -drive "if=pflash,format=raw,file=$tmp/vars.fd")
        [ "$client" = ovmf-native ] && nic="$nic,romfile="
        ;;
    *) echo "unknown client $client" >&2; exit 2 ;;
esac
start=$(date +%s.%N)
rc=0
nsx timeout "$limit" "${qemu[@]}" -device "$nic" -boot n || rc=$?
end=$(date +%s.%N)
sleep 1
echo "capture: $client/$style qemu rc=$rc in $(echo "$end - $start" | bc 2>/dev/null || python3 -c "print(round($end-$start,1))") s" >&2
grep -a 'BOOTD-GUEST' "$tmp/serial.log" >&2 || true
cat "$tmp/posts.jsonl" >&2 2>/dev/null || echo "capture: no POST received" >&2
if [ -n "${CAPTURE_LOGS:-}" ]; then mkdir -p "$CAPTURE_LOGS"; cp "$tmp"/*.log "$CAPTURE_LOGS/" 2>/dev/null || true; fi
