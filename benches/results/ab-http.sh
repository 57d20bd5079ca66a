#!/usr/bin/env bash
# (one-off, 2026-12-04) pre-restructure bootd (6787182) vs current, see benches/README.md HTTP run 3
# Ad-hoc A/B: pre-restructure bootd (6787182) vs current, same config, alternating, loopback.
set -euo pipefail
OLD=$1 NEW=$2 REPS=${3:-2} D=${D:-5}
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/assets"
head -c $((30*1024*1024)) /dev/urandom >"$work/assets/big.bin"
head -c 1024 /dev/urandom >"$work/assets/small.bin"
for v in old new; do
  port=18090; [ $v = new ] && port=18091
  mkdir -p "$work/$v/state/templates"; cp -r "$work/assets" "$work/$v/state/assets"
  printf '#!ipxe\nkernel {{ assets_url }}/vmlinuz initrd=initrd.img bootd.token={{ token }} host={{ hostname }}\ninitrd {{ assets_url }}/initrd.img\nboot\n' >"$work/$v/state/templates/bench.ipxe"
  { cat <<CFG
[server]
state_dir = "$work/$v/state"
templates_dir = "$work/$v/state/templates"
http_listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
control_socket = "$work/$v/state/control.sock"
[dhcp]
mode = "off"
[tftp]
listen = "127.0.0.1:$((port+100))"
[http]
max_connections = 4096
[profiles.bench]
script = "bench.ipxe"
CFG
  for i in $(seq 0 9999); do printf '[[nodes]]\nmac = "02:00:00:00:%02x:%02x"\nhostname = "n%d"\nprofile = "bench"\n' $((i/256)) $((i%256)) $i; done
  } >"$work/$v/bootd.toml"
done
BOOTD_LOG=warn "$OLD" run --config "$work/old/bootd.toml" >"$work/old.log" 2>&1 & pids+=($!)
BOOTD_LOG=warn "$NEW" run --config "$work/new/bootd.toml" >"$work/new.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/healthz >/dev/null && curl -sf http://127.0.0.1:18091/healthz >/dev/null && break; sleep 0.2; done
cat >"$work/macs.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 10000
  return wrk.format("GET", string.format("/boot/02:00:00:00:%02x:%02x.ipxe", math.floor(i / 256), i % 256))
end
LUA
wrk -t2 -c50 -d3s -s "$work/macs.lua" http://127.0.0.1:18090 >/dev/null
wrk -t2 -c50 -d3s -s "$work/macs.lua" http://127.0.0.1:18091 >/dev/null
mib() { awk '/Transfer\/sec/ { v=$2; if (v ~ /GB/) { sub(/GB/,"",v); v*=1024 } else if (v ~ /MB/) { sub(/MB/,"",v) } else if (v ~ /KB/) { sub(/KB/,"",v); v/=1024 }; print v }'; }
rps() { awk '/Requests\/sec/ { print $2 }'; }
for rep in $(seq $REPS); do
  for c in big small render; do
    order="old new"; [ $((rep % 2)) -eq 0 ] && order="new old"
    for v in $order; do
      port=18090; [ $v = new ] && port=18091
      if [ $c = render ]; then out=$(wrk -t2 -c50 -d${D}s -s "$work/macs.lua" http://127.0.0.1:$port)
      else out=$(wrk -t2 -c50 -d${D}s http://127.0.0.1:$port/assets/$c.bin); fi
      printf '%s\t%s\t%s\t%s\t%s\n' $rep $c $v "$(echo "$out" | mib)" "$(echo "$out" | rps)"
    done
  done
done
echo "old log:"; tail -3 "$work/old.log"; echo "new log:"; tail -3 "$work/new.log"
