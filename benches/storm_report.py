#!/usr/bin/env python3
"""Summarizes a benches/storm.sh run: one markdown table per machine count with each
stack that ran (bootd, bootd-proxy, classic = dnsmasq + nginx) and the bootd / classic ratio.

Usage: benches/storm_report.py target/storm/<run-dir>
"""
import glob
import json
import os
import sys

STEPS = ["dhcp", "tftp", "dhcp2", "script", "kernel", "initrd", "callbacks", "hardware",
         "to_script", "total"]
ORDER = ["bootd", "bootd-proxy", "classic"]


def load(run_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "*-*.json"))):
        n, server = os.path.basename(path)[:-5].split("-", 1)
        with open(path) as f:
            runs.setdefault(int(n), {})[server] = json.load(f)
    return runs


def dig(obj, keys):
    for k in keys:
        if obj is None:
            return None
        obj = obj.get(k)
    return obj


def ratio(a, b):
    if a is None or b is None:
        return "—"
    if b == 0:
        return "—" if a == 0 else "∞"
    return f"{a / b:.2f}×"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    for n in sorted(runs):
        r = runs[n]
        servers = [s for s in ORDER if s in r] + sorted(set(r) - set(ORDER))
        both = "bootd" in r and "classic" in r
        print(f"\n### N = {n}\n")
        print("| metric | " + " | ".join(servers) + (" | bootd / classic |" if both else " |"))
        print("|---" * (len(servers) + 1 + both) + "|")

        def row(label, fmt, value):
            vals = [value(r[s]) for s in servers]
            cells = ["—" if v is None else fmt.format(v) for v in vals]
            tail = f" | {ratio(value(r['bootd']), value(r['classic']))} |" if both else " |"
            print(f"| {label} | " + " | ".join(cells) + tail)

        row("booted", "{:,.0f}", lambda x: x["booted"])
        row("failed", "{:,.0f}", lambda x: x["failed"])
        row("wall s", "{:,.2f}", lambda x: x["wall_seconds"])
        for s in STEPS:
            for p in ("p50", "p99"):
                row(f"{s} {p} ms", "{:,.1f}", lambda x, s=s, p=p: dig(x, ("steps", s, f"{p}_ms")))
        row("client (bootd-storm) CPU s", "{:,.2f}", lambda x: x.get("client_cpu_seconds"))
        row("server CPU s", "{:,.2f}", lambda x: dig(x, ("server", "cpu_seconds")))
        row("server peak RSS MiB (sampled sum)", "{:,.1f}",
            lambda x: dig(x, ("server", "peak_rss_sampled_bytes")) / 2**20)
        row("server VmHWM MiB (sum)", "{:,.1f}",
            lambda x: dig(x, ("server", "vm_hwm_bytes_sum")) / 2**20)
        for s in servers:
            if r[s]["failures"]:
                kinds = ", ".join(f"{k} {v['count']}" for k, v in r[s]["failures"].items())
                print(f"\n{s} failures: {kinds}")


if __name__ == "__main__":
    main()
