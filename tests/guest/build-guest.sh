#!/bin/bash
# Builds the PXE test client: Debian's current 6.1 kernel plus a busybox-static initramfs
# whose /init brings up virtio-net, gets a DHCP lease, POSTs one phase and powers off.
#
# Usage: tests/guest/build-guest.sh            (prints vmlinuz=PATH and initrd=PATH)
# Cache: ${BOOTD_TEST_CACHE:-/var/cache/bootd-tests} (downloads and results; never the repo).
# Overrides: BOOTD_GUEST_KERNEL_PKG=linux-image-6.1.0-N-amd64 to pin the kernel package;
#            BOOTD_GUEST_ARCH=arm64 for an ARM64 guest (needs `dpkg --add-architecture arm64`
#            and `apt-get update`: its kernel and busybox-static come as arm64 packages).
# Idempotent and safe to run concurrently (flock on the cache); logs go to stderr.
set -euo pipefail

CACHE="${BOOTD_TEST_CACHE:-/var/cache/bootd-tests}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
# Loaded in this order; some may be built into the kernel, which is fine.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
LOCK_WAIT_SECS=900
ARCH="${BOOTD_GUEST_ARCH:-amd64}"
HOST_ARCH="$(dpkg --print-architecture)"

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE/debs" "$CACHE/guest"
exec 9>"$CACHE/.build-guest.lock"
flock -w "$LOCK_WAIT_SECS" 9 || die "could not lock $CACHE/.build-guest.lock within ${LOCK_WAIT_SECS}s"

# --- which kernel package -------------------------------------------------------------
kernel_pkg_from_apt() {
    # The meta package depends on exactly one versioned image package.
    apt-cache depends "linux-image-$ARCH:$ARCH" 2>/dev/null \
        | sed -n "s/^ *Depends: \(linux-image-[0-9][^ :]*-$ARCH\)\(:$ARCH\)\{0,1\}\$/\1/p" | head -n1
}
pkg="${BOOTD_GUEST_KERNEL_PKG:-}"
if [ -z "$pkg" ]; then
    pkg="$(kernel_pkg_from_apt)"
    if [ -z "$pkg" ]; then
        log "apt-cache knows no linux-image-$ARCH yet: running apt-get update"
        apt-get update -qq </dev/null >&2 || die "apt-get update failed"
        pkg="$(kernel_pkg_from_apt)"
    fi
fi
[ -n "$pkg" ] || die "cannot determine the kernel package (is Debian's apt configured?)"

# The result is keyed by kernel package and this script's content, so editing /init rebuilds.
script_sum="$(cat "$SELF" "$(dirname "$SELF")/../../boot-assets/agent/bootd-report" | sha256sum | cut -c1-12)"
out="$CACHE/guest/$pkg-$script_sum"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ]; then
    log "cached: $out"
    printf 'vmlinuz=%s\ninitrd=%s\n' "$out/vmlinuz" "$out/initrd.gz"
    exit 0
fi

work="$(mktemp -d "$CACHE/guest/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- kernel ---------------------------------------------------------------------------
deb="$(ls "$CACHE"/debs/"${pkg}"_*_"$ARCH".deb 2>/dev/null | head -n1 || true)"
if [ -z "$deb" ]; then
    log "downloading $pkg"
    # apt-get download writes into the current directory; _apt cannot always read it, so
    # its sandbox warning is expected and harmless.
    (cd "$work" && apt-get download "$pkg:$ARCH" </dev/null >&2) || die "apt-get download $pkg:$ARCH failed"
    dl="$(ls "$work"/"${pkg}"_*_"$ARCH".deb | head -n1)"
    mv "$dl" "$CACHE/debs/"
    deb="$CACHE/debs/$(basename "$dl")"
fi
log "extracting $deb"
dpkg-deb -x "$deb" "$work/kernel"
vmlinuz_src="$(ls "$work"/kernel/boot/vmlinuz-* | head -n1)"
[ -s "$vmlinuz_src" ] || die "no vmlinuz in $deb"
kver="${vmlinuz_src##*/vmlinuz-}"
moddir="$work/kernel/lib/modules/$kver"
[ -d "$moddir" ] || die "no module directory for $kver in $deb"

# --- busybox --------------------------------------------------------------------------
busybox=""
# The host's busybox only serves a guest of the host's architecture.
[ "$ARCH" = "$HOST_ARCH" ] && candidates="/bin/busybox /usr/bin/busybox" || candidates=""
for candidate in $candidates; do
    if [ -x "$candidate" ] && file -L "$candidate" | grep -q 'statically linked'; then
        busybox="$candidate"; break
    fi
done
if [ -z "$busybox" ]; then
    bdeb="$(ls "$CACHE"/debs/busybox-static_*_"$ARCH".deb 2>/dev/null | head -n1 || true)"
    if [ -z "$bdeb" ]; then
        log "no static busybox for $ARCH installed: downloading busybox-static:$ARCH"
        (cd "$work" && apt-get download "busybox-static:$ARCH" </dev/null >&2) || die "apt-get download busybox-static:$ARCH failed"
        mv "$work"/busybox-static_*_"$ARCH".deb "$CACHE/debs/"
        bdeb="$(ls "$CACHE"/debs/busybox-static_*_"$ARCH".deb | head -n1)"
    fi
    dpkg-deb -x "$bdeb" "$work/bb"
    busybox="$work/bb/bin/busybox"
fi
log "busybox: $busybox"

# --- initramfs tree -------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,lib/modules,usr/share/udhcpc}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
# Discovery: dmidecode and lshw with their libraries, and bootd's hardware agent, so a
# boot with bootd.hardware_url= reports this machine (host architecture only).
if [ "$ARCH" = "$HOST_ARCH" ]; then
    for tool in dmidecode lshw; do
        bin="$(command -v "$tool" || true)"
        [ -n "$bin" ] || { log "$tool: not installed on the host (skipped)"; continue; }
        cp "$bin" "$root/bin/$tool"
        for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    done
    cp "$(dirname "$SELF")/../../boot-assets/agent/bootd-report" "$root/bin/bootd-report"
    chmod 755 "$root/bin/bootd-report"
fi
# A console node lets the kernel attach /init's stdio before devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || log "mknod /dev/console failed (not root?): /init reopens it"

loaded=""
for m in $MODULES; do
    f="$(find "$moddir/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) | head -n1)"
    if [ -z "$f" ]; then
        if grep -q "/$m.ko\$" "$moddir/modules.builtin" 2>/dev/null; then
            log "module $m: built in"
        else
            log "module $m: not found (skipped)"
        fi
        continue
    fi
    case "$f" in
        *.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
        *.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
        *) cp "$f" "$root/lib/modules/$m.ko" ;;
    esac
    loaded="$loaded $m"
done
log "modules:${loaded:- none}"
printf '%s\n' $loaded >"$root/lib/modules/order"
# efivarfs (a module in Debian) lets /init read the SecureBoot variable under UEFI.
efivarfs="$(find "$moddir/kernel/fs" -name 'efivarfs.ko*' | head -n1)"
case "$efivarfs" in
    "") log "efivarfs: not a module (built in or absent)" ;;
    *.xz) xz -dc "$efivarfs" >"$root/lib/modules/efivarfs.ko" ;;
    *.zst) zstd -qdc "$efivarfs" >"$root/lib/modules/efivarfs.ko" ;;
    *) cp "$efivarfs" "$root/lib/modules/efivarfs.ko" ;;
esac

cat >"$root/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc hook: configure eth0 from the lease (busybox exports ip, mask, router, ...).
case "$1" in
    deconfig)
        ip addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "$router" ]; then
            for r in $router; do ip route add default via "$r" dev "$interface" && break; done
        fi
        echo "BOOTD-GUEST: lease $ip/${mask:-24} router=${router:-none} server=${serverid:-?}"
        ;;
esac
exit 0
EOF
chmod 755 "$root/usr/share/udhcpc/default.script"

cat >"$root/init" <<'EOF'
#!/bin/sh
# bootd test guest: network up, one phase POST, power off. Kernel arguments read:
#   bootd.phase_url=URL  bootd.token=TOKEN  [bootd.phase=NAME (default installing)]
#   bootd.mode=serve: post `installing`, then `registered` with the lease's IP, then stay up
#     with an SSH banner on port 22 and /health on port 8080 (busybox httpd);
#   bootd.health_ctl=URL (serve mode): polled every second; an answer containing `fail`
#     removes /health (HTTP 404) until one without it brings it back.
export PATH=/bin:/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mkdir -p /dev/pts /run /tmp

say() { echo "BOOTD-GUEST: $*"; }
finish() { sync; say "poweroff"; poweroff -f; sleep 5; echo o >/proc/sysrq-trigger; }

secureboot=unknown
if [ -d /sys/firmware/efi ]; then
    [ -f /lib/modules/efivarfs.ko ] && insmod /lib/modules/efivarfs.ko 2>/dev/null
    mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
    sbvar=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
    if [ -r "$sbvar" ]; then
        # 4 attribute bytes, then one data byte: 1 means Secure Boot is on.
        last="$(od -An -tu1 "$sbvar" | tr -s ' \n' '  ' | awk '{print $NF}')"
        [ "$last" = 1 ] && secureboot=1 || secureboot=0
    fi
    firmware=uefi
else
    secureboot=0
    firmware=bios
fi
say "up; firmware=$firmware secureboot=$secureboot kernel=$(uname -r)"

for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m failed"
done

phase_url=""; token=""; phase=installing; hardware_url=""; explicit_phase=""
mode=once; health_ctl=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        bootd.mode=*) mode="${arg#bootd.mode=}" ;;
        bootd.health_ctl=*) health_ctl="${arg#bootd.health_ctl=}" ;;
        bootd.phase_url=*) phase_url="${arg#bootd.phase_url=}" ;;
        bootd.token=*) token="${arg#bootd.token=}" ;;
        bootd.phase=*) phase="${arg#bootd.phase=}"; explicit_phase=1 ;;
        bootd.hardware_url=*) hardware_url="${arg#bootd.hardware_url=}" ;;
    esac
done

tries=0
while [ ! -e /sys/class/net/eth0 ] && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
ip link set lo up
ip link set eth0 up || { say "no eth0"; finish; }
if ! udhcpc -i eth0 -s /usr/share/udhcpc/default.script -n -q -t 10 -T 2 -A 1; then
    say "dhcp failed"
    finish
fi

if [ -n "$hardware_url" ]; then
    # A discovery boot: report the hardware; a phase only when one was asked for.
    if [ -x /bin/bootd-report ] && BOOTD_TRIES=3 /bin/bootd-report; then
        say "hardware reported"
    else
        say "hardware report failed"
    fi
    [ -n "$explicit_phase" ] || finish
fi
if [ -z "$phase_url" ]; then
    say "no bootd.phase_url on the kernel command line"
    finish
fi
# post BODY: one phase callback, retried; sets $status to the HTTP status (or none).
post() {
    status=none
    attempt=0
    while [ "$attempt" -lt 5 ]; do
        attempt=$((attempt + 1))
        rm -f /tmp/resp /tmp/wget.log
        # Debian's busybox-static 1.35 wget segfaults with -T, so busybox timeout bounds it.
        timeout -s KILL 15 wget -q -S -O /tmp/resp \
            --header "Authorization: Bearer $token" \
            --header "Content-Type: application/json" \
            --post-data "$1" "$phase_url" 2>/tmp/wget.log
        # -S prints the status line; on an error status wget says "server returned error: HTTP/1.1 4xx".
        status="$(grep -o 'HTTP/1\.[01] [0-9][0-9][0-9]' /tmp/wget.log | tail -n1 | cut -d' ' -f2)"
        [ -n "$status" ] && return 0
        status=none
        say "post attempt $attempt failed: $(tail -n1 /tmp/wget.log)"
        sleep 1
    done
}

if [ "$mode" = serve ]; then
    # An installed machine in miniature: installing, registered with its IP, then services.
    myip="$(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -n1)"
    post "{\"phase\":\"installing\",\"progress\":50,\"message\":\"guest up; secureboot=$secureboot\"}"
    say "posted installing $status"
    printf '#!/bin/sh\necho SSH-2.0-bootd-test\nsleep 1\n' >/bin/ssh-banner
    chmod 755 /bin/ssh-banner
    nc -ll -p 22 -e /bin/ssh-banner &
    mkdir -p /www
    echo ok >/www/health
    httpd -p 8080 -h /www
    say "serving ssh banner on 22 and /health on 8080"
    post "{\"phase\":\"registered\",\"ip\":\"$myip\",\"message\":\"guest serving on $myip\"}"
    say "posted registered $status"
    healthy=1
    while :; do
        if [ -n "$health_ctl" ]; then
            answer="$(timeout -s KILL 5 wget -q -O - "$health_ctl" 2>/dev/null)"
            case "$answer" in
                *fail*) [ "$healthy" = 1 ] && { rm -f /www/health; healthy=0; say "health off"; } ;;
                ?*) [ "$healthy" = 0 ] && { echo ok >/www/health; healthy=1; say "health on"; } ;;
            esac
        fi
        sleep 1
    done
fi

post "{\"phase\":\"$phase\",\"progress\":50,\"message\":\"guest up; secureboot=$secureboot\"}"
say "posted $status"
finish
EOF
chmod 755 "$root/init"

log "packing initramfs"
# cpio runs here, so a foreign-architecture guest is packed with the host's tools.
if [ "$ARCH" = "$HOST_ARCH" ]; then
    pack() { "$busybox" cpio -o -H newc 2>/dev/null; }
elif command -v cpio >/dev/null; then
    pack() { cpio -o -H newc --quiet; }
else
    pack() { busybox cpio -o -H newc 2>/dev/null; }
fi
(cd "$root" && find . | LC_ALL=C sort | pack) | gzip -9n >"$work/initrd.gz"
[ -s "$work/initrd.gz" ] || die "initramfs is empty"
cp "$vmlinuz_src" "$work/vmlinuz"

# Publish atomically: a concurrent reader sees either nothing or a complete directory.
mkdir -p "$work/out"
mv "$work/vmlinuz" "$work/initrd.gz" "$work/out/"
printf '%s\n' "$pkg" "$kver" >"$work/out/VERSION"
rm -rf "$out"
mv "$work/out" "$out"
log "built $out (kernel $kver)"
printf 'vmlinuz=%s\ninitrd=%s\n' "$out/vmlinuz" "$out/initrd.gz"
