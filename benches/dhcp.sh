#!/usr/bin/env bash
# DORA/s of bootd's DHCP (examples/dhcpd, full mode, every lease fdatasync'ed before its
# ACK) against Kea 2.2 (memfile, multi-threaded) and dnsmasq --no-ping, in one run,
# alternating, in two network namespaces over a veth pair; then RSS with 50,000 leases.
#
# Usage (root): benches/dhcp.sh            REPS=3 DURATION=5 benches/dhcp.sh
#               SKIP_RATE=1 benches/dhcp.sh  (only the RSS part)
# Needs: perfdhcp (kea-admin), kea-dhcp4 (kea-dhcp4-server), dnsmasq, iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
DURATION=${DURATION:-5}
MAX_DROP_PCT=${MAX_DROP_PCT:-1}
BOOTD_RATES=${BOOTD_RATES:-"1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000 14000 16000 20000"}
KEA_RATES=${KEA_RATES:-"1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000 14000 16000 20000"}
DNSMASQ_RATES=${DNSMASQ_RATES:-"25 50 100 150 200 300 400 600 800 1000"}
TAG=bdb$$
SRV=${TAG}s
CLI=${TAG}c
WORK=$(mktemp -d /tmp/dhcp-bench.XXXXXX)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
DHCPD=$CARGO_TARGET_DIR/release/examples/dhcpd
PID=""

cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The example lives in the root package (bootd); show the compiler output only on failure.
if ! build_log=$(cargo build --release -p bootd --example dhcpd 2>&1); then
  echo "$build_log" >&2
  exit 1
fi

ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link add s0 type veth peer name c0 netns "$CLI"
ip -n "$SRV" addr add 10.90.0.1/16 dev s0
ip -n "$CLI" addr add 10.90.0.2/16 dev c0
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set s0 up
ip -n "$CLI" link set c0 up
sleep 1

start_server() { # name lease-file
  case "$1" in
    bootd)
      ip netns exec "$SRV" "$DHCPD" s0 10.90.0.0/16 10.90.1.0 10.90.255.250 "$2" >"$WORK/bootd.log" 2>&1 &
      ;;
    kea)
      cat >"$WORK/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "s0/10.90.0.1" ] },
  "lease-database": { "type": "memfile", "persist": true, "name": "$2", "lfc-interval": 0 },
  "multi-threading": { "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 },
  "valid-lifetime": 3600,
  "subnet4": [ { "subnet": "10.90.0.0/16", "pools": [ { "pool": "10.90.1.0 - 10.90.255.250" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$WORK/kea.log" } ] } ]
} }
JSON
      KEA_PIDFILE_DIR=$WORK KEA_LOCKFILE_DIR=$WORK ip netns exec "$SRV" kea-dhcp4 -c "$WORK/kea.json" >"$WORK/kea.out" 2>&1 &
      ;;
    dnsmasq)
      ip netns exec "$SRV" dnsmasq --conf-file=/dev/null --no-daemon --port=0 --no-ping \
        --interface=s0 --bind-interfaces --dhcp-range=10.90.1.0,10.90.255.250,255.255.0.0,1h \
        --dhcp-lease-max=100000 --dhcp-leasefile="$2" >"$WORK/dnsmasq.log" 2>&1 &
      ;;
  esac
  PID=$!
  sleep 1.5
}

stop_server() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}

leases_in() { # name file
  case "$1" in
    bootd) grep -c ' bound ' "$2" 2>/dev/null || true ;;
    kea) tail -n +2 "$2" 2>/dev/null | wc -l ;;
    dnsmasq) wc -l <"$2" 2>/dev/null || echo 0 ;;
  esac
}

# One perfdhcp run at a rate: prints "achieved_dora_per_s drop_pct acks leases_on_disk".
run_rate() { # name rate
  local f="$WORK/$1.leases"
  rm -f "$f" "$f".*
  start_server "$1" "$f"
  local out
  out=$(ip netns exec "$CLI" perfdhcp -4 -l c0 -g single -r "$2" -p "$DURATION" -R 1000000 2>&1 || true)
  sleep 0.5
  stop_server
  local rate acks sent drops
  rate=$(awk '/^Rate:/ {print $2; exit}' <<<"$out")
  sent=$(awk '/Statistics for: DISCOVER-OFFER/ {s=1} s && /sent packets:/ {print $3; exit}' <<<"$out")
  acks=$(awk '/Statistics for: REQUEST-ACK/ {s=1} s && /received packets:/ {print $3; exit}' <<<"$out")
  drops=$(awk -v s="${sent:-0}" -v a="${acks:-0}" 'BEGIN { if (s > 0) printf "%.2f", 100 * (s - a) / s; else print 100 }')
  echo "${rate:-0} $drops ${acks:-0} $(leases_in "$1" "$f")"
}

# Highest rate with < MAX_DROP_PCT drops: prints "dora_per_s at_rate acks leases_on_disk".
best() { # name rates...
  local name=$1; shift
  local best="0 0 0 0"
  for r in "$@"; do
    read -r got drop acks disk < <(run_rate "$name" "$r")
    echo "  $name rate $r: $got DORA/s, $drop % lost, $acks ACKs, $disk leases on disk" >&2
    if awk -v d="$drop" -v m="$MAX_DROP_PCT" 'BEGIN { exit !(d < m) }'; then
      best="$got $r $acks $disk"
    else
      break
    fi
  done
  echo "$best"
}

declare -A RES
[ "${SKIP_RATE:-0}" = 1 ] && REPS=0
for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep" >&2
  read -r b _ backs bdisk < <(best bootd $BOOTD_RATES)
  read -r k _ _ _ < <(best kea $KEA_RATES)
  read -r d _ _ _ < <(best dnsmasq $DNSMASQ_RATES)
  RES[$rep]="$b $k $d $backs $bdisk"
  echo "rep $rep: bootd $b  kea $k  dnsmasq $d  (bootd ACKs $backs, on disk $bdisk)"
done

echo
echo "| rep | bootd DORA/s | Kea DORA/s | dnsmasq DORA/s | bootd/Kea | bootd/dnsmasq | bootd ACKs / leases on disk |"
echo "|---|---|---|---|---|---|---|"
ratios_k=(); ratios_d=()
for rep in $(seq 1 "$REPS"); do
  read -r b k d backs bdisk <<<"${RES[$rep]}"
  rk=$(awk -v b="$b" -v k="$k" 'BEGIN { if (k > 0) printf "%.2f", b / k; else print "inf" }')
  rd=$(awk -v b="$b" -v d="$d" 'BEGIN { if (d > 0) printf "%.1f", b / d; else print "inf" }')
  ratios_k+=("$rk"); ratios_d+=("$rd")
  echo "| $rep | $b | $k | $d | $rk | $rd | $backs / $bdisk |"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
[ "$REPS" -gt 0 ] && echo "median bootd/Kea: $(median "${ratios_k[@]}")   median bootd/dnsmasq: $(median "${ratios_d[@]}")"

# RSS with 50,000 leases: each server gets 50,000 DORA exchanges, then VmRSS is read.
echo
echo "| server | leases | VmRSS |"
echo "|---|---|---|"
for name in ${RSS_SERVERS:-bootd kea dnsmasq}; do
  f="$WORK/$name.rss.leases"
  rm -f "$f" "$f".*
  start_server "$name" "$f"
  rate=3000
  [ "$name" = dnsmasq ] && rate=300
  # dnsmasq rewrites its lease file per lease: it gets at most RSS_SECS to get there.
  ip netns exec "$CLI" timeout "${RSS_SECS:-240}" perfdhcp -4 -l c0 -g single -r "$rate" -n 50000 -R 1000000 >/dev/null 2>&1 || true
  sleep 1
  # Kea runs its worker threads in the same process; dnsmasq and dhcpd are one process.
  rss=$(awk '/VmRSS/ {print $2 " " $3}' /proc/"$PID"/status)
  echo "| $name | $(leases_in "$name" "$f") | $rss |"
  stop_server
done
