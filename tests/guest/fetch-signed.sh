#!/bin/bash
# Fetches Debian's signed Secure Boot chain for x86-64 network boot: shim (signed by
# Microsoft) and the network GRUB (signed by Debian), unpacked, never installed here.
#
# Usage: tests/guest/fetch-signed.sh      (prints shimx64=PATH and grubx64=PATH)
# Cache: ${BOOTD_TEST_CACHE:-/var/cache/bootd-tests}/signed (downloads and results).
# The packages are only unpacked with dpkg-deb -x: installing them would run postinst
# scripts that rewrite this host's boot loader.
# Idempotent and safe to run concurrently (flock on the cache); logs go to stderr.
set -euo pipefail

CACHE="${BOOTD_TEST_CACHE:-/var/cache/bootd-tests}"
PACKAGES="shim-signed grub-efi-amd64-signed"
LOCK_WAIT_SECS=900

log() { printf 'fetch-signed: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE/debs" "$CACHE/signed"
exec 9>"$CACHE/.fetch-signed.lock"
flock -w "$LOCK_WAIT_SECS" 9 || die "could not lock $CACHE/.fetch-signed.lock within ${LOCK_WAIT_SECS}s"

out="$CACHE/signed/x64"
if [ -s "$out/shimx64.efi" ] && [ -s "$out/grubx64.efi" ]; then
    log "cached: $out"
    printf 'shimx64=%s\ngrubx64=%s\n' "$out/shimx64.efi" "$out/grubx64.efi"
    exit 0
fi

work="$(mktemp -d "$CACHE/signed/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

for pkg in $PACKAGES; do
    deb="$(ls "$CACHE"/debs/"${pkg}"_*_amd64.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        log "downloading $pkg"
        # apt-get download writes into the current directory; _apt's sandbox warning
        # about it is harmless.
        if ! (cd "$work" && apt-get download "$pkg" </dev/null >&2); then
            log "apt-get download $pkg failed: running apt-get update once"
            apt-get update -qq </dev/null >&2 || die "apt-get update failed"
            (cd "$work" && apt-get download "$pkg" </dev/null >&2) || die "apt-get download $pkg failed"
        fi
        dl="$(ls "$work"/"${pkg}"_*_amd64.deb | head -n1)"
        mv "$dl" "$CACHE/debs/"
        deb="$CACHE/debs/$(basename "$dl")"
    fi
    log "extracting $deb"
    dpkg-deb -x "$deb" "$work/x"
done

shim="$(find "$work/x/usr/lib/shim" -name 'shimx64.efi.signed' | head -n1)"
grub="$(find "$work/x/usr/lib/grub" -name 'grubnetx64.efi.signed' | head -n1)"
[ -s "$shim" ] || die "no shimx64.efi.signed in shim-signed"
[ -s "$grub" ] || die "no grubnetx64.efi.signed in grub-efi-amd64-signed"

# Publish atomically: a concurrent reader sees either nothing or a complete directory.
mkdir -p "$work/out"
cp "$shim" "$work/out/shimx64.efi"
cp "$grub" "$work/out/grubx64.efi"
rm -rf "$out"
mv "$work/out" "$out"
log "unpacked into $out"
printf 'shimx64=%s\ngrubx64=%s\n' "$out/shimx64.efi" "$out/grubx64.efi"
