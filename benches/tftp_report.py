#!/usr/bin/env python3
"""Turns benches/tftp.sh samples into a Markdown table: medians per server and the
median of paired ratios (bootd vs the best peer of the same repetition)."""

import statistics
import sys
from collections import defaultdict

FILE_MIB = 30
CASE_TITLES = {
    "curl_1468": "curl, blksize 1468 (30 MiB)",
    "curl_65464": "curl, blksize 65464 (30 MiB)",
    "atftp_1468": "atftp, blksize 1468 (30 MiB)",
    "atftp_65464": "atftp, blksize 65464 (30 MiB)",
    "atftp_w16": "atftp, blksize 1468 windowsize 16 (30 MiB)",
    "conc_50": "50 x 1 MiB at once, curl (wall)",
    "conc_500": "500 x 1 MiB at once, curl (wall)",
}


def main():
    path, reps = sys.argv[1], sys.argv[2]
    load = sys.argv[3] if len(sys.argv) > 3 else ""
    rows = [l.rstrip("\n").split("\t") for l in open(path)][1:]
    data = defaultdict(dict)  # (case, rep) -> server -> (secs, failures)
    servers, cases = [], []
    cpu = defaultdict(list)  # (case, server) -> CPU ms of the server per run
    for rep, case, server, secs, fails, cpu_ms in rows:
        data[(case, rep)][server] = (float(secs), int(fails))
        cpu[(case, server)].append(int(cpu_ms))
        if server not in servers:
            servers.append(server)
        if case not in cases:
            cases.append(case)
    peers = [s for s in servers if not s.startswith("bootd")]

    def score(case, secs, fails):
        """Higher is better: MiB/s for one file, 1/wall for storms; failures score 0."""
        if case.startswith("conc_"):
            return 1.0 / secs if secs > 0 else 0.0
        return FILE_MIB / secs if fails == 0 and secs > 0 else 0.0

    print("# bootd TFTP benchmark\n")
    print(f"`benches/tftp.sh {reps}`: veth between two network namespaces (MTU 1500), "
          "every server in the same run, order alternated per repetition; "
          f"{reps} repetitions, medians shown. Ratio = median over repetitions of "
          "bootd / best peer of that repetition (> 1 means bootd is faster).\n")
    mine_cols = [s for s in servers if s.startswith("bootd")]
    head = ("| case | " + " | ".join(servers) + " | "
            + " | ".join(f"{m} / best peer" for m in mine_cols) + " |")
    print(head)
    print("|" + "---|" * (len(servers) + 1 + len(mine_cols)))
    for case in cases:
        reps_of = [k for k in data if k[0] == case]
        cells = []
        for s in servers:
            vals = [data[k][s] for k in reps_of if s in data[k]]
            if not vals:
                cells.append("-")
                continue
            secs = statistics.median(v[0] for v in vals)
            fails = sum(v[1] for v in vals)
            if case.startswith("conc_"):
                cell = f"{secs:.2f} s"
                if fails:
                    cell += f" ({fails} failed)"
            else:
                ok = [FILE_MIB / v[0] for v in vals if v[1] == 0 and v[0] > 0]
                cell = f"{statistics.median(ok):.1f} MiB/s" if ok else "failed"
                if fails and ok:
                    cell += f" ({fails} failed)"
            cells.append(cell)
        ratio_cells = []
        for m in mine_cols:
            ratios = []
            for k in reps_of:
                if m not in data[k]:
                    continue
                best = max((score(case, *data[k][p]) for p in peers if p in data[k]),
                           default=0)
                if best > 0:
                    ratios.append(score(case, *data[k][m]) / best)
            ratio_cells.append(f"{statistics.median(ratios):.2f}x" if ratios else "-")
        print(f"| {CASE_TITLES.get(case, case)} | " + " | ".join(cells) + " | "
              + " | ".join(ratio_cells) + " |")
    print("\n## Server CPU time per run (median ms, user + system, children included)\n")
    print("Less sensitive to a busy host than wall time: what each server spends to do "
          "the same work. n/a: not measurable this way (tftpd-hpa's per-transfer "
          "children are not accounted to the parent).\n")
    print("| case | " + " | ".join(servers) + " | "
          + " | ".join(f"best peer / {m}" for m in mine_cols) + " |")
    print("|" + "---|" * (len(servers) + 1 + len(mine_cols)))
    for case in cases:
        # tftpd-hpa forks a child per transfer that is not accounted to the parent.
        meds = {s: statistics.median(cpu[(case, s)]) for s in servers
                if cpu[(case, s)] and s != "hpa"}
        best_peer = min((meds[p] for p in peers if p in meds and meds[p] > 0), default=0)
        ratio_cells = [f"{best_peer / meds[m]:.2f}x" if meds.get(m) else "-"
                       for m in mine_cols]
        print(f"| {CASE_TITLES.get(case, case)} | "
              + " | ".join(f"{meds[s]:.0f}" if meds.get(s) else "n/a" for s in servers)
              + " | " + " | ".join(ratio_cells) + " |")
    if load:
        print(f"\nHost load when the run ended: `{load.strip()}`")
    print("\n`bootd` is the example server on tokio's default multi-thread runtime; "
          "`bootd_ct` the same binary with `TFTPD_WORKERS=0` (current-thread runtime).")
    print("\nFailures count transfers whose output differed from the file (or never came). "
          "tftpd-hpa and dnsmasq do not implement windowsize, so their atftp windowsize 16 "
          "row is lockstep. dnsmasq caps blksize to the interface MTU.")


if __name__ == "__main__":
    main()
