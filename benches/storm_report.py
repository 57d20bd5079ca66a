#!/usr/bin/env python3
"""Summarizes a benches/storm.sh run: one markdown table per machine count with bootd,
the classic stack (dnsmasq + nginx) and the bootd/classic ratio.

Usage: benches/storm_report.py target/storm/<run-dir>
"""
import glob
import json
import os
import sys

STEPS = ["dhcp", "tftp", "dhcp2", "script", "kernel", "initrd", "callbacks", "hardware",
         "to_script", "total"]


def load(run_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "*-*.json"))):
        name = os.path.basename(path)[:-5]
        n, server = name.split("-", 1)
        with open(path) as f:
            runs.setdefault(int(n), {})[server] = json.load(f)
    return runs


def ratio(a, b):
    if a is None or b is None:
        return "—"
    if b == 0:
        return "—" if a == 0 else "∞"
    return f"{a / b:.2f}×"


def row(label, b, c, fmt="{:,.1f}"):
    show = lambda v: "—" if v is None else fmt.format(v)
    return f"| {label} | {show(b)} | {show(c)} | {ratio(b, c)} |"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    for n in sorted(runs):
        r = runs[n]
        b, c = r.get("bootd"), r.get("classic")
        get = lambda rep, *keys: None if rep is None else _dig(rep, keys)
        print(f"\n### N = {n}\n")
        print("| metric | bootd | classic | bootd / classic |")
        print("|---|---|---|---|")
        print(row("booted", get(b, "booted"), get(c, "booted"), "{:,.0f}"))
        print(row("failed", get(b, "failed"), get(c, "failed"), "{:,.0f}"))
        print(row("wall s", get(b, "wall_seconds"), get(c, "wall_seconds"), "{:,.2f}"))
        for s in STEPS:
            for p in ("p50", "p99"):
                print(row(f"{s} {p} ms", get(b, "steps", s, f"{p}_ms"),
                          get(c, "steps", s, f"{p}_ms")))
        print(row("client (bootd-storm) CPU s", get(b, "client_cpu_seconds"),
                  get(c, "client_cpu_seconds"), "{:,.2f}"))
        print(row("server CPU s", get(b, "server", "cpu_seconds"),
                  get(c, "server", "cpu_seconds"), "{:,.2f}"))
        mib = lambda rep, k: None if rep is None else _dig(rep, ("server", k)) / 2**20
        print(row("server peak RSS MiB (sampled sum)", mib(b, "peak_rss_sampled_bytes"),
                  mib(c, "peak_rss_sampled_bytes")))
        print(row("server VmHWM MiB (sum)", mib(b, "vm_hwm_bytes_sum"),
                  mib(c, "vm_hwm_bytes_sum")))
        for name, rep in (("bootd", b), ("classic", c)):
            if rep and rep["failures"]:
                kinds = ", ".join(f"{k} {v['count']}" for k, v in rep["failures"].items())
                print(f"\n{name} failures: {kinds}")


def _dig(obj, keys):
    for k in keys:
        if obj is None:
            return None
        obj = obj.get(k)
    return obj


if __name__ == "__main__":
    main()
