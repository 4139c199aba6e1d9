#!/usr/bin/env python3
"""Stall table of bench/resume: per mode, neighbour and outage, the p50 and max of the worst
stall after resume and their ratio to plain virsh save/restore. Reads bench/vm-cycle's TSV
with bench/vm-cycle/summary.py's loader (one definition of a cycle's stall).

  summary.py CYCLES.tsv"""
import importlib.util
import math
import os
import sys

spec = importlib.util.spec_from_file_location(
    "vmcycle", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vm-cycle",
                            "summary.py"))
vc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vc)


def ratio(a, b):
    if a is None or b is None or b == math.inf or a == math.inf or b <= 0:
        return None
    return a / b


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    groups = vc.load(argv[1])
    base = {}
    for (m, n, o), rows in groups.items():
        if m == "plain":
            st = [vc.cycle_stall(r) for r in rows]
            known = [s for s in st if s is not None]
            base[(n, o)] = (vc.median(st), max(known) if known else None)
    head = ["mode", "neigh", "outage_s", "runs", "survived", "stall_p50_ms", "stall_max_ms",
            "p50_vs_plain", "max_vs_plain"]
    out = [head]
    order = {"plain": 0, "netckpt-noreplay": 1, "netckpt": 2}
    for key in sorted(groups, key=lambda k: (k[1], k[2], order.get(k[0], 9), k[0])):
        m, n, o = key
        rows = groups[key]
        st = [vc.cycle_stall(r) for r in rows]
        known = [s for s in st if s is not None]
        p50, mx = vc.median(st), (max(known) if known else None)
        b = base.get((n, o), (None, None))
        ok = tot = 0
        for r in rows:
            a, c = r["survived"].split(":")[-1].split("/")
            ok, tot = ok + int(a), tot + int(c)
        out.append([m, n, str(o), str(len(rows)), f"{ok}/{tot}", vc.fmt(p50), vc.fmt(mx),
                    vc.fmt(ratio(p50, b[0]) if m != "plain" else None, 3),
                    vc.fmt(ratio(mx, b[1]) if m != "plain" else None, 3)])
    widths = [max(len(r[i]) for r in out) for i in range(len(head))]
    for r in out:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
