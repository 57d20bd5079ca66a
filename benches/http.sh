#!/usr/bin/env bash
# HTTP benchmark, side by side in one run: bootd's /assets against nginx serving the same
# directory (a 30 MiB and a 1 KiB file, wrk with 50 connections), and bootd's per-MAC
# script renders with 10,000 configured nodes. Loopback; servers alternate per repetition.
#
# Usage (any user; nginx must be installed): benches/http.sh [REPS]   (default 3)
# Output: one line per measurement, then medians and the median of paired ratios.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
REPS=${1:-3}
DURATION=${DURATION:-8}
work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as another user
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release -p bootd --bin bootd >/dev/null
BOOTD=${CARGO_TARGET_DIR:-target}/release/bootd
mkdir -p "$work/state/assets" "$work/state/templates" "$work/nginx"
head -c $((30 * 1024 * 1024)) /dev/urandom >"$work/state/assets/big.bin"
head -c 1024 /dev/urandom >"$work/state/assets/small.bin"
printf '#!ipxe\nkernel {{ assets_url }}/vmlinuz initrd=initrd.img bootd.token={{ token }} host={{ hostname }}\ninitrd {{ assets_url }}/initrd.img\nboot\n' \
    >"$work/state/templates/bench.ipxe"

{
    cat <<CFG
[server]
state_dir = "$work/state"
templates_dir = "$work/state/templates"
http_listen = "127.0.0.1:18080"
public_url = "http://127.0.0.1:18080"
control_socket = "$work/state/control.sock"
[dhcp]
mode = "off"
[tftp]
listen = "127.0.0.1:18069"
[http]
max_connections = 4096
# wrk asks for every node's script from 127.0.0.1: trusted, as a booting machine is
# (its DHCP sighting), so each render carries its token as in a real boot.
secrets_trusted = ["127.0.0.1"]
[profiles.bench]
script = "bench.ipxe"
CFG
    for i in $(seq 0 9999); do
        printf '[[nodes]]\nmac = "02:00:00:00:%02x:%02x"\nhostname = "n%d"\nprofile = "bench"\n' $((i / 256)) $((i % 256)) "$i"
    done
} >"$work/bootd.toml"

cat >"$work/nginx/nginx.conf" <<NGX
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server { listen 127.0.0.1:18081; root $work/state/assets; }
}
NGX

BOOTD_LOG=warn "$BOOTD" run --config "$work/bootd.toml" >"$work/bootd.log" 2>&1 &
pids+=($!)
/usr/sbin/nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:18080/healthz >/dev/null && curl -sf -o /dev/null http://127.0.0.1:18081/small.bin && break
    sleep 0.2
done

cat >"$work/macs.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 10000
  return wrk.format("GET", string.format("/boot/02:00:00:00:%02x:%02x.ipxe", math.floor(i / 256), i % 256))
end
LUA
# Every node's first render records ipxe_boot; warm up so the runs measure steady renders.
wrk -t2 -c50 -d3s -s "$work/macs.lua" http://127.0.0.1:18080 >/dev/null

# wrk's "Transfer/sec" in MiB/s, and "Requests/sec".
mib() { awk '/Transfer\/sec/ { v=$2; if (v ~ /GB/) { sub(/GB/,"",v); v*=1024 } else if (v ~ /MB/) { sub(/MB/,"",v) } else if (v ~ /KB/) { sub(/KB/,"",v); v/=1024 }; print v }'; }
rps() { awk '/Requests\/sec/ { print $2 }'; }

results="$work/results.tsv"
for rep in $(seq "$REPS"); do
    for file in big small; do
        order="bootd nginx"; [ $((rep % 2)) -eq 0 ] && order="nginx bootd"
        for srv in $order; do
            port=18080; path="/assets/$file.bin"
            [ "$srv" = nginx ] && { port=18081; path="/$file.bin"; }
            out=$(wrk -t2 -c50 -d"${DURATION}s" "http://127.0.0.1:$port$path")
            printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$file" "$srv" "$(echo "$out" | mib)" "$(echo "$out" | rps)" | tee -a "$results"
        done
    done
    out=$(wrk -t2 -c50 -d"${DURATION}s" -s "$work/macs.lua" http://127.0.0.1:18080)
    printf '%s\trender\tbootd\t%s\t%s\n' "$rep" "$(echo "$out" | mib)" "$(echo "$out" | rps)" | tee -a "$results"
done

python3 - "$results" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = collections.defaultdict(dict)
for rep, case, srv, mib, rps in rows:
    by[(case, rep)][srv] = (float(mib or 0), float(rps or 0))
print("\ncase\tbootd\tnginx\tratio (median of paired bootd/nginx)")
for case, unit, idx in (("big", "MiB/s", 0), ("small", "req/s", 1)):
    pairs = [v for (c, _), v in by.items() if c == case and "bootd" in v and "nginx" in v]
    b = statistics.median(p["bootd"][idx] for p in pairs)
    n = statistics.median(p["nginx"][idx] for p in pairs)
    r = statistics.median(p["bootd"][idx] / p["nginx"][idx] for p in pairs if p["nginx"][idx])
    print(f"{case} ({unit})\t{b:.0f}\t{n:.0f}\t{r:.2f}x")
renders = [v["bootd"][1] for (c, _), v in by.items() if c == "render"]
print(f"renders/s (10,000 nodes)\t{statistics.median(renders):.0f}\t-\t-")
PY
