#!/usr/bin/env python3
"""Reads the VM lab's side-by-side benchmark (scripts/vm/bench-oomd.sh, run by
`scripts/vm-test.sh bench`; records under target/vm/bench) and prints the table as Markdown.

Each run is one hog (bench/hog.c) in a transient service with MemoryMax=256M in og.slice, with
one tool running (or none: "kernel"). runs.tsv says which tool was running, the rate, who killed
the hog (from the kernel's and the tools' journals) and whether the bystander service in the same
slice survived. From the hog's record (its mapped file survives its death):
  crossing  the moment memory.current passed limit - 24 MiB (oomguard's headroom), interpolated
            between the hog's readings (one per MiB);
  acted     crossing -> the SIGTERM handler ran; for a SIGKILL (systemd-oomd and the kernel send
            only that, and it cannot be caught) crossing -> the hog's last recorded MiB, which is
            within one MiB step of its death;
  overshoot MiB allocated when signalled (or at the last step) minus MiB at the crossing.
A tool "acts first" in a run when the journal shows its kill and the kernel's memcg OOM killer
did not kill the hog. The fill rate is the hog's measured rate over the last 64 MiB before the
crossing (TCG is slow: compare ratios, not absolute times).
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from watch_report import crossing, fill_rate, read_rec  # noqa: E402

TOOLS = ["oomguard", "systemd-oomd", "earlyoom", "kernel"]


def figures(path):
    r = read_rec(path)
    c = crossing(r)
    out = dict(acted_ms=None, over_mib=None, fill=None, term=r["sig_ns"] > 0)
    if c is None:
        return out
    tc, mc = c
    out["fill"] = fill_rate(r, tc)
    if r["sig_ns"]:
        out["acted_ms"] = (r["sig_ns"] - tc) / 1e6
        out["over_mib"] = r["sig_mib"] - mc
    elif r["steps"]:
        last_t, last_mib, _ = r["steps"][-1]
        out["acted_ms"] = max(0.0, (last_t - tc) / 1e6)
        out["over_mib"] = last_mib - mc
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def mx(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def fmt(x, spec="{:.0f}"):
    return "–" if x is None else spec.format(x)


def rate_name(rate):
    return "fastest" if rate == 0 else f"{rate} MiB/s"


def main(d):
    env_path = os.path.join(d, "env")
    env = open(env_path).read().strip().replace("\n", "; ") if os.path.exists(env_path) else ""
    runs = []
    for line in open(os.path.join(d, "runs.tsv")):
        f = line.rstrip("\n").split("\t")
        if len(f) < 6:
            continue
        tool, rate, rep, killer, bystander, rec = f[:6]
        path = os.path.join(d, rec)
        fig = figures(path) if os.path.exists(path) else dict(acted_ms=None, over_mib=None,
                                                                fill=None, term=False)
        runs.append(dict(tool=tool, rate=int(rate), rep=int(rep), killer=killer,
                         bystander=bystander, **fig))
    print(f"Run: {env}\n")
    print("| hog rate (measured fill) | tool running | runs | hog killed by | before the kernel "
          "| crossing→acted median (max) ms | overshoot median / max MiB | signal | bystander "
          "survived |")
    print("|---|---|---|---|---|---|---|---|---|")
    rates = sorted({r["rate"] for r in runs}, key=lambda x: (x == 0, x))
    for rate in rates:
        for tool in TOOLS:
            cell = [r for r in runs if r["rate"] == rate and r["tool"] == tool]
            if not cell:
                continue
            killers = {}
            for r in cell:
                killers[r["killer"]] = killers.get(r["killer"], 0) + 1
            by = ", ".join(f"{k} {n}" for k, n in sorted(killers.items(), key=lambda kv: -kv[1]))
            before = sum(1 for r in cell if r["killer"] not in ("kernel", "none"))
            fill = med(r["fill"] for r in cell)
            acted = [r["acted_ms"] for r in cell]
            over = [r["over_mib"] for r in cell]
            sig = "SIGTERM" if all(r["term"] for r in cell) else (
                "SIGKILL" if not any(r["term"] for r in cell) else "mixed")
            alive = sum(1 for r in cell if r["bystander"] == "active")
            print(f"| {rate_name(rate)} ({fmt(fill)} MiB/s) | {tool} | {len(cell)} | {by} "
                  f"| {before}/{len(cell)} | {fmt(med(acted))} ({fmt(mx(acted))}) "
                  f"| {fmt(med(over), '{:.1f}')} / {fmt(mx(over), '{:.1f}')} | {sig} "
                  f"| {alive}/{len(cell)} |")
    first = [r for r in runs if r["tool"] == "oomguard"]
    ok = sum(1 for r in first if r["killer"] == "oomguard")
    print(f"\noomguard acted first (before the kernel) in {ok} of {len(first)} of its runs.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/vm/bench")
