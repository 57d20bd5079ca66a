#!/usr/bin/env bash
# TFTP benchmark: bootd-tftp vs tftpd-hpa, atftpd and dnsmasq, side by side in one run,
# over a veth (MTU 1500) between two network namespaces. Needs root, curl, atftp, dnsmasq.
#
#   benches/tftp.sh [REPS]            (default 5 repetitions)
#   SERVERS="bootd hpa" CASES="curl_1468" benches/tftp.sh 1    (subset, for quick checks)
#
# Writes the raw samples to $OUT_DIR/samples.tsv and the table to benches/README-tftp.md
# (unless NO_README=1). Everything it starts is killed by pid and the namespaces removed
# on exit, even on failure.
set -euo pipefail

REPS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SERVERS=${SERVERS:-"bootd hpa atftpd dnsmasq"}
CASES=${CASES:-"curl_1468 curl_65464 atftp_1468 atftp_65464 atftp_w16 conc_50 conc_500"}
TARGET=${CARGO_TARGET_DIR:-$(dirname "$(readlink -f "$0")")/../target}
PKG_DIR=${PKG_DIR:-/tmp/tftp-bench-pkgs}
ID=$$
NS_S=tftpb-s-$ID
NS_C=tftpb-c-$ID
WORK=$(mktemp -d /tmp/tftp-bench.XXXXXX)
OUT_DIR=${OUT_DIR:-$WORK}
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    [ "$OUT_DIR" = "$WORK" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# --- peers: tftpd-hpa and atftpd conflict as packages, so unpack both without installing.
if [ ! -x "$PKG_DIR/root/usr/sbin/in.tftpd" ] || [ ! -x "$PKG_DIR/root/usr/sbin/atftpd" ]; then
    mkdir -p "$PKG_DIR"
    (cd "$PKG_DIR" && apt-get download tftpd-hpa atftpd libwrap0 >/dev/null 2>&1 &&
        for d in ./*.deb; do dpkg-deb -x "$d" root; done)
fi
HPA=$PKG_DIR/root/usr/sbin/in.tftpd
ATFTPD=$PKG_DIR/root/usr/sbin/atftpd
export LD_LIBRARY_PATH=$PKG_DIR/root/usr/lib/x86_64-linux-gnu

if ! build_log=$(cd "$HERE" && CARGO_TARGET_DIR=$TARGET cargo build --release -p bootd --example tftpd 2>&1); then
    echo "$build_log" >&2
    exit 1
fi
BOOTD=$TARGET/release/examples/tftpd

# --- network: server namespace with one address per server, client namespace.
ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add tb-s-$ID type veth peer name tb-c-$ID
ip link set tb-s-$ID netns "$NS_S"
ip link set tb-c-$ID netns "$NS_C"
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set lo up
ip -n "$NS_S" link set tb-s-$ID mtu 1500 up
ip -n "$NS_C" link set tb-c-$ID mtu 1500 up
for a in 1 2 3 4; do ip -n "$NS_S" addr add 10.201.0.$a/24 dev tb-s-$ID; done
ip -n "$NS_C" addr add 10.201.0.100/24 dev tb-c-$ID
ip -n "$NS_S" addr add 10.201.0.5/24 dev tb-s-$ID
declare -A ADDR=([bootd]=10.201.0.1 [hpa]=10.201.0.2 [atftpd]=10.201.0.3 [dnsmasq]=10.201.0.4 [bootd_ct]=10.201.0.5)

ROOT=$WORK/root
mkdir -p "$ROOT"
head -c $((30 * 1024 * 1024)) /dev/urandom >"$ROOT/f30"
head -c $((1024 * 1024)) /dev/urandom >"$ROOT/f1"
chmod -R a+rX "$WORK"

declare -A SPID
start() { # name, command...: start in the server namespace, remember the pid
    ip netns exec "$NS_S" "${@:2}" >"$OUT_DIR/$1.log" 2>&1 &
    PIDS+=($!)
    SPID[$1]=$!
}
# CPU time (ms) used so far by a server and its reaped children (tftpd-hpa forks per
# transfer): robust to a busy host, unlike wall time.
cpu_ms() {
    local pid=${SPID[$1]} ticks
    ticks=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    echo $((ticks * 1000 / $(getconf CLK_TCK)))
}
for s in $SERVERS; do
    case $s in
    bootd) start bootd "$BOOTD" "$ROOT" "${ADDR[bootd]}:69" --max-blksize 65464 \
        --max-windowsize 64 --max-sessions 4000 --max-sessions-per-client 4000 ;;
    # The same server on a current-thread runtime (no cross-worker wake-ups).
    bootd_ct) start bootd_ct env TFTPD_WORKERS=0 "$BOOTD" "$ROOT" "${ADDR[bootd_ct]}:69" \
        --max-blksize 65464 --max-windowsize 64 --max-sessions 4000 --max-sessions-per-client 4000 ;;
    hpa) start hpa "$HPA" -L -u root -s "$ROOT" -a "${ADDR[hpa]}:69" ;;
    atftpd) start atftpd "$ATFTPD" --daemon --no-fork --user root.root --maxthread 1000 \
        --bind-address "${ADDR[atftpd]}" --port 69 --logfile /dev/null "$ROOT" ;;
    dnsmasq) start dnsmasq dnsmasq --port=0 --enable-tftp --tftp-root="$ROOT" \
        --listen-address="${ADDR[dnsmasq]}" --bind-interfaces --tftp-max=1000 \
        --keep-in-foreground --pid-file= --user=root --conf-file=/dev/null ;;
    esac
done
sleep 1

C() { ip netns exec "$NS_C" "$@"; }
now() { date +%s.%N; }
SIZE30=$((30 * 1024 * 1024))

one() { # server case -> prints "seconds failures cpu_ms"
    local s=$1 c=$2 ip=${ADDR[$1]} out=$WORK/out t0 t1 fails=0 cpu0
    rm -f "$out"*
    cpu0=$(cpu_ms "$s")
    t0=$(now)
    case $c in
    curl_1468) C curl -s --max-time 120 --tftp-blksize 1468 "tftp://$ip/f30" -o "$out" || true ;;
    curl_65464) C curl -s --max-time 120 --tftp-blksize 65464 "tftp://$ip/f30" -o "$out" || true ;;
    atftp_1468) C timeout 120 atftp --option "blksize 1468" -g -r f30 -l "$out" "$ip" >/dev/null 2>&1 || true ;;
    atftp_65464) C timeout 120 atftp --option "blksize 65464" -g -r f30 -l "$out" "$ip" >/dev/null 2>&1 || true ;;
    atftp_w16) C timeout 120 atftp --option "blksize 1468" --option "windowsize 16" -g -r f30 -l "$out" "$ip" >/dev/null 2>&1 || true ;;
    conc_*)
        # One shell inside the client namespace starts all clients at once.
        C bash -c 'for i in $(seq "$1"); do
                curl -s --max-time 60 --tftp-blksize 1468 "tftp://$2/f1" -o "$3.$i" & done; wait' \
            _ "${c#conc_}" "$ip" "$out" || true
        ;;
    esac
    t1=$(now)
    case $c in
    conc_*)
        for i in $(seq "${c#conc_}"); do
            cmp -s "$out.$i" "$ROOT/f1" || fails=$((fails + 1))
        done
        ;;
    *) cmp -s "$out" "$ROOT/f30" || fails=1 ;;
    esac
    sleep 0.2 # let tftpd-hpa reap its child so its CPU time is counted
    echo "$(echo "$t1 - $t0" | bc -l) $fails $(($(cpu_ms "$s") - cpu0))"
}

SAMPLES=$OUT_DIR/samples.tsv
printf "rep\tcase\tserver\tseconds\tfailures\tcpu_ms\n" >"$SAMPLES"
for rep in $(seq "$REPS"); do
    for c in $CASES; do
        # Alternate the order each repetition so drift hits every server alike.
        order=$SERVERS
        [ $((rep % 2)) -eq 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
        for s in $order; do
            read -r secs fails cpu < <(one "$s" "$c")
            printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$rep" "$c" "$s" "$secs" "$fails" "$cpu" >>"$SAMPLES"
            echo "rep $rep $c $s ${secs}s failures=$fails cpu=${cpu}ms" >&2
        done
    done
done

python3 "$HERE/benches/tftp_report.py" "$SAMPLES" "$REPS" "$(uptime)" >"$OUT_DIR/report.md"
cat "$OUT_DIR/report.md"
if [ "${NO_README:-0}" != 1 ]; then
    cp "$OUT_DIR/report.md" "$HERE/benches/README-tftp.md"
fi
