#!/bin/bash
# Fetches Debian's signed Secure Boot chain for network boot: shim (signed by Microsoft)
# and the network GRUB (signed by Debian), unpacked, never installed here.
#
# Usage: tests/guest/fetch-signed.sh          (prints shimx64=PATH and grubx64=PATH)
#        tests/guest/fetch-signed.sh arm64    (prints shimaa64=PATH and grubaa64=PATH;
#        needs `dpkg --add-architecture arm64` and `apt-get update`)
# Cache: ${BOOTD_TEST_CACHE:-/var/cache/bootd-tests}/signed (downloads and results).
# The packages are only unpacked with dpkg-deb -x: installing them would run postinst
# scripts that rewrite this host's boot loader.
# Idempotent and safe to run concurrently (flock on the cache); logs go to stderr.
set -euo pipefail

CACHE="${BOOTD_TEST_CACHE:-/var/cache/bootd-tests}"
ARCH="${1:-amd64}"
case "$ARCH" in
    amd64) EFI=x64 ;;
    arm64) EFI=aa64 ;;
    *) printf 'fetch-signed: unknown architecture %s (amd64 or arm64)\n' "$ARCH" >&2; exit 2 ;;
esac
PACKAGES="shim-signed grub-efi-$ARCH-signed"
LOCK_WAIT_SECS=900

log() { printf 'fetch-signed: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE/debs" "$CACHE/signed"
exec 9>"$CACHE/.fetch-signed.lock"
flock -w "$LOCK_WAIT_SECS" 9 || die "could not lock $CACHE/.fetch-signed.lock within ${LOCK_WAIT_SECS}s"

out="$CACHE/signed/$EFI"
if [ -s "$out/shim$EFI.efi" ] && [ -s "$out/grub$EFI.efi" ]; then
    log "cached: $out"
    printf 'shim%s=%s\ngrub%s=%s\n' "$EFI" "$out/shim$EFI.efi" "$EFI" "$out/grub$EFI.efi"
    exit 0
fi

work="$(mktemp -d "$CACHE/signed/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

for pkg in $PACKAGES; do
    deb="$(ls "$CACHE"/debs/"${pkg}"_*_"$ARCH".deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        log "downloading $pkg"
        # apt-get download writes into the current directory; _apt's sandbox warning
        # about it is harmless.
        if ! (cd "$work" && apt-get download "$pkg:$ARCH" </dev/null >&2); then
            log "apt-get download $pkg failed: running apt-get update once"
            apt-get update -qq </dev/null >&2 || die "apt-get update failed"
            (cd "$work" && apt-get download "$pkg:$ARCH" </dev/null >&2) || die "apt-get download $pkg:$ARCH failed"
        fi
        dl="$(ls "$work"/"${pkg}"_*_"$ARCH".deb | head -n1)"
        mv "$dl" "$CACHE/debs/"
        deb="$CACHE/debs/$(basename "$dl")"
    fi
    log "extracting $deb"
    dpkg-deb -x "$deb" "$work/x"
done

shim="$(find "$work/x/usr/lib/shim" -name "shim$EFI.efi.signed" | head -n1)"
grub="$(find "$work/x/usr/lib/grub" -name "grubnet$EFI.efi.signed" | head -n1)"
[ -s "$shim" ] || die "no shim$EFI.efi.signed in shim-signed:$ARCH"
[ -s "$grub" ] || die "no grubnet$EFI.efi.signed in grub-efi-$ARCH-signed"

# Publish atomically: a concurrent reader sees either nothing or a complete directory.
mkdir -p "$work/out"
cp "$shim" "$work/out/shim$EFI.efi"
cp "$grub" "$work/out/grub$EFI.efi"
rm -rf "$out"
mv "$work/out" "$out"
log "unpacked into $out"
printf 'shim%s=%s\ngrub%s=%s\n' "$EFI" "$out/shim$EFI.efi" "$EFI" "$out/grub$EFI.efi"
