#!/usr/bin/env python3
"""Summarise bench/vm-cycle's TSV: one row per method, neighbour mode and outage.

  summary.py CYCLES.tsv                       the table
  summary.py --plot-data METHOD NEIGH CYCLES.tsv   "outage median_stall_ms" lines for gnuplot

A cycle's stall is its worse direction; "lost" (a connection never moved again) or a failed
cycle counts as infinitely long, so it shows in the max and can reach the median."""
import csv
import math
import statistics
import sys


def num(v):
    try:
        return float(v)
    except ValueError:
        return math.inf if v in ("lost",) else None


def load(path):
    groups = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            key = (r["method"], r["neigh"], int(r["outage_s"]))
            groups.setdefault(key, []).append(r)
    return groups


def cycle_stall(r):
    vals = [num(r["stall_p2g_ms"]), num(r["stall_g2p_ms"])]
    if r["survived"].startswith("failed"):
        return math.inf
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if v == math.inf:
        return "lost"
    return f"{v:.{digits}f}"


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def table(groups):
    plain_down = {}
    for (m, n, o), rows in groups.items():
        if m == "plain":
            plain_down[(n, o)] = median([num(r["down_s"]) for r in rows])
    head = ["method", "neigh", "outage_s", "runs", "down_s", "vs_plain", "up_s", "survived",
            "stall_p50_ms", "stall_max_ms"]
    out = [head]
    for key in sorted(groups, key=lambda k: (k[0] != "plain", k[0], k[1], k[2])):
        m, n, o = key
        rows = groups[key]
        down = median([num(r["down_s"]) for r in rows])
        up = median([num(r["up_s"]) for r in rows])
        base = plain_down.get((n, o))
        ratio = down / base if down and base and m != "plain" else None
        ok = tot = 0
        for r in rows:
            a, b = r["survived"].split(":")[-1].split("/")
            ok, tot = ok + int(a), tot + int(b)
        stalls = [cycle_stall(r) for r in rows]
        known = [s for s in stalls if s is not None]
        out.append([m, n, str(o), str(len(rows)), fmt(down, 2), fmt(ratio, 2), fmt(up, 2),
                    f"{ok}/{tot}", fmt(median(stalls)), fmt(max(known) if known else None)])
    widths = [max(len(r[i]) for r in out) for i in range(len(head))]
    for r in out:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv):
    if len(argv) == 5 and argv[1] == "--plot-data":
        for (m, n, o), rows in sorted(load(argv[4]).items()):
            if m == argv[2] and n == argv[3]:
                s = median([cycle_stall(r) for r in rows])
                if s is not None and s != math.inf:
                    print(o, f"{s:.0f}")
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    table(load(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
