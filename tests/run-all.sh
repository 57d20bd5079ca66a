#!/bin/bash
# Runs every test of the repository on Debian 12 as root: installs missing test packages,
# builds the PXE test guest (cached outside the repo), runs `cargo test --all-targets`.
#
# Usage: tests/run-all.sh [--install]     (--install: apt-get update + install the whole
#                                           list even if nothing seems missing; for CI)
# Environment: BOOTD_TEST_CACHE (guest cache dir), BOOTD_TEST_ACCEL=kvm|tcg (skip the probe),
#              BOOTD_TEST_TIMEOUT (seconds for cargo test, default 4500).
# Exits non-zero on any failure; needs no stdin and no tty.
set -euo pipefail
exec </dev/null

cd "$(dirname "$(readlink -f "$0")")/.."
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=never
export PATH="${HOME:-/root}/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

# What the tests use: QEMU PXE clients and firmware, the guest build, reference servers
# and real clients (DHCP, TFTP, HTTP), packet capture, a C compiler for bundled SQLite,
# headless Chromium for the monitoring page, Prometheus scraping bootd's metrics.
PACKAGES=(
    qemu-system-x86 ipxe ovmf busybox-static file xz-utils
    dnsmasq-base atftp tftp-hpa curl iproute2 tcpdump udhcpc isc-dhcp-client kea-admin
    sqlite3 python3 build-essential pkg-config lshw dmidecode
    debootstrap zstd systemd chromium qemu-system-arm qemu-efi-aarch64 cpio
    syslinux syslinux-common mtools dosfstools fdisk e2fsprogs qemu-utils
    prometheus
)
APT_LOCK_WAIT_SECS=600
APT_TRIES=3
TEST_TIMEOUT_SECS="${BOOTD_TEST_TIMEOUT:-4500}"

step() { printf '\n=== %s\n' "$*"; }
die() { printf 'run-all: error: %s\n' "$*" >&2; exit 1; }

apt_retry() {
    local i
    for ((i = 1; i <= APT_TRIES; i++)); do
        if apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_SECS" -o Dpkg::Use-Pty=0 "$@"; then
            return 0
        fi
        printf 'run-all: apt-get %s failed (try %d of %d)\n' "$1" "$i" "$APT_TRIES" >&2
        sleep 5
    done
    return 1
}

install_packages() {
    local force="$1" missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ "$force" = yes ]; then
        missing=("${PACKAGES[@]}")
    fi
    # The ARM64 boot test downloads arm64 kernel, shim and GRUB packages.
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        [ "$(id -u)" -eq 0 ] || die "dpkg needs the arm64 architecture and we are not root"
        dpkg --add-architecture arm64
        force=yes
    fi
    if [ "${#missing[@]}" -eq 0 ] && [ "$force" != yes ]; then
        echo "all ${#PACKAGES[@]} test packages are installed"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root to install them"
    echo "installing: ${missing[*]}"
    apt_retry update -q || die "apt-get update failed"
    # Some machines come with a newer qemu-utils (backports) whose source is not
    # configured; it breaks Debian's qemu-system-common, so take the version that
    # matches the QEMU we install.
    local qemu_version utils_version
    qemu_version="$(apt-cache policy qemu-system-common | sed -n 's/^  Candidate: //p')"
    utils_version="$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)"
    if [ -n "$qemu_version" ] && [ -n "$utils_version" ] && [ "$utils_version" != "$qemu_version" ]; then
        echo "qemu-utils $utils_version does not match qemu-system $qemu_version: installing $qemu_version"
        missing=("${missing[@]/#qemu-utils/qemu-utils=$qemu_version}")
        [[ " ${missing[*]} " == *" qemu-utils=$qemu_version "* ]] || missing+=("qemu-utils=$qemu_version")
    fi
    apt_retry install -y -q --no-install-recommends --allow-downgrades "${missing[@]}" \
        || die "apt-get install failed"
}

force=no
for arg in "$@"; do
    case "$arg" in
        --install) force=yes ;;
        *) die "unknown argument $arg (usage: tests/run-all.sh [--install])" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "the tests need root (network namespaces, taps, QEMU): run as root"
command -v cargo >/dev/null || die "cargo not found on PATH ($PATH)"

step "packages"
install_packages "$force"

step "test guest"
bash tests/guest/build-guest.sh

step "cargo test --workspace --all-targets"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rc=0
# The tests run the workspace's binaries (bootctl, bootd-storm are other packages than the
# root's, so `cargo test` alone need not link them): build every binary first.
timeout -k 30 "$TEST_TIMEOUT_SECS" cargo build --workspace --bins 2>&1 | tail -n 3 || rc=$?
[ "$rc" -eq 0 ] || die "cargo build --workspace --bins failed"
# --no-fail-fast: one failing test binary must not hide the results of the others.
timeout -k 30 "$TEST_TIMEOUT_SECS" cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || rc=$?
# A pipeline's status is tee's unless pipefail: it is set, so rc is cargo's (or timeout's).

step "summary"
passed=0; failed=0; ignored=0; suites=0
while read -r p f i; do
    passed=$((passed + p)); failed=$((failed + f)); ignored=$((ignored + i)); suites=$((suites + 1))
done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log")
grep -E '^test .* FAILED$|^    [a-z_:]+$' "$log" | sed 's/^/  /' || true
echo "test suites: $suites, ignored: $ignored"
echo "summary: $passed passed, $failed failed"
if [ "$rc" -eq 124 ]; then
    die "cargo test exceeded ${TEST_TIMEOUT_SECS}s"
fi
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
    die "tests failed (cargo exit $rc)"
fi
if [ "$suites" -eq 0 ]; then
    die "cargo ran no test suite"
fi
