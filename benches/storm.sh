#!/usr/bin/env bash
# Boot storm: N simulated PXE machines (bootd-storm) boot at once against bootd (full DHCP,
# TFTP, HTTP, unknown machines discovered) and, in the same run, against the classic stack
# (dnsmasq DHCP + TFTP, nginx serving per-MAC scripts and assets and answering the POSTs).
# Two network namespaces joined by a veth: server 10.90.0.1/16, client 10.90.0.2/16 with
# the pool (2 × N addresses from 10.90.64.1) made local by an AnyIP route, so every machine uses its own lease
# as source address for TFTP and HTTP.
#
# Usage (root): benches/storm.sh                 NS="20" benches/storm.sh
#   NS="100 1000"        machine counts (default "100 1000 5000")
#   SERVERS="bootd classic"   which stacks, in this order per N (also: bootd-proxy, bootd in
#                        ProxyDHCP mode beside an address-only dnsmasq --no-ping)
#   KERNEL_SIZE=8M INITRD_SIZE=40M   asset sizes      RAMP=10s   arrival spread
#   WINDOWSIZE=8         TFTP windowsize asked by the machines (default none)
#   BOOTD_TFTP="max_sessions = 10000"   extra lines for bootd's [tftp] table
#   BOOTD_HTTP="max_connections = 1024"  extra lines for bootd's [http] table
#   BOOTD_WRAPPER="heaptrack -o /tmp/bootd.ht"   command prefix for bootd (heap profiling)
#   PERF=1               record the servers with perf (N-server.perf.data)
#   DNSMASQ_EXTRA="..."  extra dnsmasq flags (default only --dhcp-lease-max=100000: ping
#                        check and the 50-transfer TFTP cap stay at dnsmasq's defaults)
# Results: target/storm/<date>/N-<server>.json, summary.md (benches/storm_report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NS_LIST=${NS:-"100 1000 5000"}
SERVERS=${SERVERS:-"bootd classic"}
KERNEL_SIZE=${KERNEL_SIZE:-8M}
INITRD_SIZE=${INITRD_SIZE:-40M}
RAMP=${RAMP:-}
WINDOWSIZE=${WINDOWSIZE:-}
DNSMASQ_EXTRA=${DNSMASQ_EXTRA:-"--dhcp-lease-max=100000"}
SEED=${SEED:-1}
BOOTD_TFTP=${BOOTD_TFTP:-}
BOOTD_HTTP=${BOOTD_HTTP:-}
BOOTD_WRAPPER=${BOOTD_WRAPPER:-}
LSHW=${LSHW:-$ROOT/tests/data/hardware/local-vm.lshw.json}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release
OUT=$ROOT/target/storm/$(date +%Y%m%d-%H%M%S)
TAG=st$$
SRV=${TAG}s
CLI=${TAG}c
WORK=$(mktemp -d /tmp/storm-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers (user nobody) read the assets and scripts under it
SERVER_IP=10.90.0.1
# The pool holds 2 × N addresses (at least 254) from 10.90.64.1; the AnyIP route covers the
# largest pool (N up to 8,000) and stays clear of the server's and the client's own address.
POOL_FIRST=10.90.64.1
POOL_NET=10.90.64.0/18
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cargo build --release -p bootd --bin bootd >/dev/null
cargo build --release -p bootd-storm >/dev/null
mkdir -p "$OUT"

# --- network ---------------------------------------------------------------------------
ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link add s0 type veth peer name c0 netns "$CLI"
ip -n "$SRV" addr add $SERVER_IP/16 dev s0
ip -n "$CLI" addr add 10.90.0.2/16 dev c0
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set s0 up
ip -n "$CLI" link set c0 up
# Thousands of neighbours on one segment overflow the kernel's neighbour table (gc_thresh3,
# host-wide, 1024 by default; a real PXE host would raise it). Permanent entries are not
# counted, so the server namespace gets one per pool address instead of a host sysctl.
# (This also makes /proc/net/arp as long as the pool, 2 × N lines: what a real segment with
# N booting machines and some churn looks like.)
CLIENT_LLADDR=$(ip -n "$CLI" -j link show c0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
# Pool of the current run and its neighbour entries: pool N.
pool() {
  POOL_LAST=$(python3 -c "import ipaddress; print(ipaddress.ip_address('$POOL_FIRST') + max(254, 2 * $1) - 1)")
  ip -n "$SRV" neigh flush dev s0 nud permanent 2>/dev/null || true
  python3 -c "
import ipaddress
a = ipaddress.ip_address('$POOL_FIRST')
for i in range(max(254, 2 * $1)):
    print('neigh replace %s lladdr $CLIENT_LLADDR dev s0 nud permanent' % (a + i))" >"$WORK/neigh.batch"
  ip -n "$SRV" -batch "$WORK/neigh.batch"
}
# AnyIP: every pool address is local in the client namespace (and answered in ARP).
ip -n "$CLI" route add local $POOL_NET dev lo
# Unused addresses do not answer pings in a real network; AnyIP would answer them all.
ip netns exec "$CLI" sysctl -qw net.ipv4.icmp_echo_ignore_all=1
sleep 1

# --- assets ----------------------------------------------------------------------------
ASSETS=$WORK/assets
mkdir -p "$ASSETS/discovery"
cp /usr/lib/ipxe/ipxe.efi "$ASSETS/"
head -c "$KERNEL_SIZE" /dev/urandom >"$ASSETS/discovery/vmlinuz"
head -c "$INITRD_SIZE" /dev/urandom >"$ASSETS/discovery/initrd.img"

# The MACs bootd-storm uses: 02:SS:SS:II:II:II (seed, index).
macs() { # n
  python3 -c "import sys
s=$SEED; n=int(sys.argv[1])
for i in range(n):
    print('02:%02x:%02x:%02x:%02x:%02x' % (s>>8, s&255, (i>>16)&255, (i>>8)&255, i&255))" "$1"
}

start_bootd() { # n [proxy]
  local mode=${2:-full}
  local dir=$WORK/bootd
  rm -rf "$dir"
  mkdir -p "$dir/state"
  cat >"$dir/bootd.toml" <<TOML
[server]
state_dir = "$dir/state"
assets_dir = "$ASSETS"
templates_dir = "$ROOT/boot-assets/templates"
http_listen = "$SERVER_IP:8080"
public_url = "http://$SERVER_IP:8080"
control_socket = "$dir/state/control.sock"
interfaces = ["s0"]

[dhcp]
mode = "$mode"
[[dhcp.pools]]
subnet = "10.90.0.0/16"
range = ["$POOL_FIRST", "$POOL_LAST"]
lease_time = "1h"

[tftp]
listen = "$SERVER_IP:69"
$BOOTD_TFTP

[http]
$BOOTD_HTTP

[boot]
unknown = "discover"
default_profile = "discovery"
TOML
  BOOTD_LOG=${BOOTD_LOG:-info} ip netns exec "$SRV" $BOOTD_WRAPPER "$BIN/bootd" run --config "$dir/bootd.toml" \
    >"$OUT/bootd-$mode-$1.log" 2>&1 &
  SERVER_PIDS=($!)
  PIDS+=($!)
  if [ "$mode" = proxy ]; then
    # The site's DHCP server beside the ProxyDHCP: addresses only.
    ip netns exec "$SRV" dnsmasq --conf-file=/dev/null --no-daemon --port=0 --no-ping \
      --interface=s0 --bind-interfaces --dhcp-range=$POOL_FIRST,$POOL_LAST,255.255.0.0,1h \
      --dhcp-lease-max=100000 --leasefile-ro >"$OUT/dnsmasq-addr-$1.log" 2>&1 &
    PIDS+=($!)
    SERVER_PIDS+=($!)
  fi
  for _ in $(seq 1 100); do [ -S "$dir/state/control.sock" ] && break; sleep 0.1; done
  [ -S "$dir/state/control.sock" ] || { echo "bootd did not start" >&2; cat "$OUT/bootd-$mode-$1.log" >&2; exit 1; }
}

start_classic() { # n
  local dir=$WORK/classic
  rm -rf "$dir"
  mkdir -p "$dir/www/boot" "$dir/nginx"
  ln -s "$ASSETS" "$dir/www/assets"
  local url=http://$SERVER_IP:8080
  : >"$dir/dnsmasq.conf"
  local i=0
  while read -r mac; do
    cat >"$dir/www/boot/$mac.ipxe" <<IPXE
#!ipxe
echo classic: discovering $mac
kernel $url/assets/discovery/vmlinuz initrd=initrd.img console=ttyS0 bootd.mac=$mac bootd.phase_url=$url/api/v1/nodes/$mac/phase bootd.hardware_url=$url/api/v1/nodes/$mac/hardware bootd.token=tok$i || goto failed
initrd --name initrd.img $url/assets/discovery/initrd.img || goto failed
boot
IPXE
    printf 'dhcp-host=%s,set:m%d\ndhcp-boot=tag:m%d,tag:ipxe,%s/boot/%s.ipxe\n' "$mac" "$i" "$i" "$url" "$mac" >>"$dir/dnsmasq.conf"
    i=$((i + 1))
  done < <(macs "$1")
  cat >"$dir/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $dir/nginx/nginx.pid;
error_log $OUT/nginx-$1.log warn;
daemon off;
events { worker_connections 65536; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000;
  default_type application/octet-stream;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  server {
    listen $SERVER_IP:8080;
    root $dir/www;
    location /api/ { client_max_body_size 16m; return 200 '{"changed":true}'; }
  }
}
NGINX
  ip netns exec "$SRV" nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" >"$OUT/nginx-$1.out" 2>&1 &
  local nginx=$!
  PIDS+=($nginx)
  # shellcheck disable=SC2086
  ip netns exec "$SRV" dnsmasq --conf-file="$dir/dnsmasq.conf" --no-daemon --port=0 \
    --interface=s0 --bind-interfaces --dhcp-range=$POOL_FIRST,$POOL_LAST,255.255.0.0,1h \
    --dhcp-leasefile="$dir/dnsmasq.leases" --dhcp-userclass=set:ipxe,iPXE \
    --dhcp-boot=tag:!ipxe,ipxe.efi --enable-tftp --tftp-root="$ASSETS" $DNSMASQ_EXTRA \
    >"$OUT/dnsmasq-$1.log" 2>&1 &
  local dns=$!
  PIDS+=($dns)
  sleep 1.5
  SERVER_PIDS=($dns $nginx $(pgrep -P "$nginx" || true))
}

stop_servers() {
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVER_PIDS=()
}

storm() { # server n
  local args=(-n "$2" --seed "$SEED" --interface c0 --lshw "$LSHW" --label "$1"
    --json "$OUT/$2-$1.json")
  [ "$1" = bootd-proxy ] && args+=(--mode proxy)
  [ -n "$RAMP" ] && args+=(--ramp "$RAMP")
  [ -n "$WINDOWSIZE" ] && args+=(--windowsize "$WINDOWSIZE")
  for p in "${SERVER_PIDS[@]}"; do args+=(--server-pid "$p"); done
  echo "== $1, N=$2" | tee -a "$OUT/raw.txt"
  local perf=""
  if [ -n "${PERF:-}" ]; then
    perf record -q -e cpu-clock -F 999 -g -o "$OUT/$2-$1.perf.data" -p "$(IFS=,; echo "${SERVER_PIDS[*]}")" &
    perf=$!
  fi
  ip netns exec "$CLI" "$BIN/bootd-storm" "${args[@]}" | tee -a "$OUT/raw.txt" || true
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" || true; fi
}

# Nodes that reached `registered` in bootd's API (the callbacks' last phase).
registered() {
  curl -s --max-time 30 --unix-socket "$WORK/bootd/state/control.sock" http://bootd/api/v1/nodes |
    python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["phase"]=="registered"))'
}

for n in $NS_LIST; do
  pool "$n"
  for server in $SERVERS; do
    case $server in
      bootd)
        start_bootd "$n"
        storm bootd "$n"
        echo "bootd API: $(registered) of $n nodes registered" | tee -a "$OUT/raw.txt"
        # bootd's own counters for what went wrong (TFTP sessions, refusals, retransmits, DHCP drops).
        ip netns exec "$SRV" curl -s --max-time 30 http://$SERVER_IP:8080/metrics |
          grep -E '^bootd_(tftp|dhcp)' | grep -v ' 0$' >"$OUT/$n-bootd.metrics" || true
        ;;
      bootd-proxy)
        # ProxyDHCP mode; dnsmasq (--no-ping) hands out the addresses and is measured too.
        start_bootd "$n" proxy
        storm bootd-proxy "$n"
        echo "bootd (proxy) API: $(registered) of $n nodes registered" | tee -a "$OUT/raw.txt"
        ;;
      classic)
        start_classic "$n"
        storm classic "$n"
        ;;
    esac
    stop_servers
    sleep 1
  done
done
python3 "$ROOT/benches/storm_report.py" "$OUT" | tee "$OUT/summary.md"
echo "results: $OUT"
