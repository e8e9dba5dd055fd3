#!/usr/bin/env python3
"""Reads bench/watch.sh's records (bench/hog.c's mapped files, the tools' logs, the idle
figures) and prints the side-by-side table as Markdown.

Per global run: crossing = the moment MemAvailable fell below the SIGTERM threshold, interpolated
linearly between the hog's two readings around it (each reading follows one MiB); signal = when
the hog's SIGTERM handler ran (for a SIGKILL, which cannot be caught, no figure: the run counts
as a miss for "signal" and its reaping is still shown); reaped = when the hog's parent's waitid()
returned; overshoot = MiB the hog had allocated at the signal minus MiB at the crossing. The fill
rate shown is the hog's measured rate over the last 64 MiB before the crossing.
"""
import glob
import os
import re
import statistics
import struct
import sys

HDR = struct.Struct("<12q")
STEP = struct.Struct("<3q")


def read_rec(path):
    data = open(path, "rb").read()
    (magic, pid, start, thr, watch_mem, rate, sig_ns, sig_mib, reap_ns, wstatus, nsteps,
     done_ns) = HDR.unpack_from(data, 0)
    steps = [STEP.unpack_from(data, HDR.size + i * STEP.size) for i in range(nsteps)]
    return dict(pid=pid, start=start, thr=thr, mem=watch_mem == 1, rate=rate, sig_ns=sig_ns,
                sig_mib=sig_mib, reap_ns=reap_ns, wstatus=wstatus, steps=steps, done_ns=done_ns)


def crossing(r):
    """(t_ns, mib) where the reading crossed the threshold, interpolated; None if never."""
    below = (lambda v: v < r["thr"]) if r["mem"] else (lambda v: v > r["thr"])
    s = r["steps"]
    for i in range(1, len(s)):
        if below(s[i][2]) and not below(s[i - 1][2]):
            v0, v1 = s[i - 1][2], s[i][2]
            f = (v0 - r["thr"]) / (v0 - v1) if v0 != v1 else 1.0
            f = min(max(f, 0.0), 1.0)
            return s[i - 1][0] + f * (s[i][0] - s[i - 1][0]), s[i - 1][1] + f
    if s and below(s[0][2]):
        return s[0][0], 0.0
    # The signal came before the hog's next reading saw the crossing: it crossed after the last
    # reading (within 2 MiB of the threshold), so take that reading as the crossing (an upper
    # bound on the latency). Farther away, the tool acted on something else's allocation.
    if r["sig_ns"] and s:
        last = [x for x in s if x[0] <= r["sig_ns"]][-1]
        if abs(last[2] - r["thr"]) <= 2048:
            return last[0], float(last[1])
    return None


def fill_rate(r, t_cross):
    s = [x for x in r["steps"] if x[0] <= t_cross]
    if len(s) < 2:
        return None
    a, b = s[max(0, len(s) - 65)], s[-1]
    return (b[1] - a[1]) / ((b[0] - a[0]) / 1e9) if b[0] > a[0] else None


def run_figures(path):
    r = read_rec(path)
    c = crossing(r)
    out = dict(status=r["wstatus"], signal_ms=None, reap_ms=None, over_mib=None, fill=None,
               crossed=c is not None, sigterm=r["sig_ns"] > 0, done=r["done_ns"] > 0,
               peak_mib=r["steps"][-1][1] if r["steps"] else 0)
    if c is None:
        return out
    tc, mc = c
    out["fill"] = fill_rate(r, tc)
    if r["sig_ns"]:
        out["signal_ms"] = (r["sig_ns"] - tc) / 1e6
        out["over_mib"] = r["sig_mib"] - mc
    else:
        out["over_mib"] = out["peak_mib"] - mc
    if r["reap_ns"] and r["wstatus"] < 0:
        out["reap_ms"] = (r["reap_ns"] - tc) / 1e6
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec="{:.1f}"):
    return "–" if x is None else spec.format(x)


def main(d):
    env = open(os.path.join(d, "env")).read().strip() if os.path.exists(os.path.join(d, "env")) else ""
    print(f"Run: {env}\n")
    cells = {}
    for path in glob.glob(os.path.join(d, "global-*.rec")):
        m = re.match(r"global-(\w+)-(\d+)-(\d+)-(\d+)\.rec$", os.path.basename(path))
        tool, idle, rate, _rep = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        cells.setdefault((idle, rate, tool), []).append(run_figures(path))
    print("### System-wide: MemAvailable crosses the SIGTERM threshold (512 MiB below MemAvailable at start)\n")
    print("| extra idle processes | hog rate (measured at crossing) | tool | runs | crossing→signal median (max) ms | crossing→reaped median ms | overshoot median / max MiB | signal |")
    print("|---|---|---|---|---|---|---|---|")
    for (idle, rate, tool) in sorted(cells, key=lambda k: (k[0], k[1] == 0, k[1], k[2] != "oomguard")):
        runs = cells[(idle, rate, tool)]
        sig = [x["signal_ms"] for x in runs]
        over = [x["over_mib"] for x in runs if x["over_mib"] is not None]
        fills = med([x["fill"] for x in runs])
        rate_label = "fastest" if rate == 0 else (f"{rate} MiB/s" if rate < 1024 else f"{rate // 1024} GiB/s")
        kinds = []
        n_term = sum(1 for x in runs if x["sigterm"])
        if n_term:
            kinds.append(f"{n_term}× SIGTERM")
        n_kill = sum(1 for x in runs if not x["sigterm"] and x["status"] == -9)
        if n_kill:
            kinds.append(f"{n_kill}× SIGKILL only")
        n_none = sum(1 for x in runs if x["status"] >= 0)
        if n_none:
            kinds.append(f"{n_none}× none")
        n_nocross = sum(1 for x in runs if not x["crossed"])
        if n_nocross:
            kinds.append(f"{n_nocross}× no crossing seen by the hog")
        print(f"| {idle} | {rate_label} ({fmt(fills, '{:.0f}')} MiB/s) | {tool} | {len(runs)} "
              f"| {fmt(med(sig))} ({fmt(max([s for s in sig if s is not None], default=None))}) "
              f"| {fmt(med([x['reap_ms'] for x in runs]))} "
              f"| {fmt(med(over))} / {fmt(max(over, default=None))} | {', '.join(kinds)} |")
    cg = {}
    for path in glob.glob(os.path.join(d, "cgroup-*.meta")):
        m = re.match(r"cgroup-(\w+)-(\d+)-(\d+)-(\d+)\.meta$", os.path.basename(path))
        tool, rate = m.group(1), int(m.group(3))
        meta = dict(kv.split("=") for kv in open(path).read().split())
        log = open(path[:-5] + ".log", errors="replace").read() if os.path.exists(path[:-5] + ".log") else ""
        rec = path[:-5] + ".rec"
        f = run_figures(rec) if os.path.exists(rec) else {}
        if int(meta["kernel_oom_kills"]) > 0:
            who = "kernel"
        elif tool == "oomguard" and "kill #1" in log:
            who = "oomguard"
        elif tool == "earlyoom" and "sending SIG" in log.split("Could not find a process to kill")[-1]:
            who = "earlyoom"
        else:
            who = "nobody"
        cg.setdefault((rate, tool), []).append((who, f))
    if cg:
        print("\n### Memory cgroup (v1, 256 MiB limit; oomguard acts within 32 MiB of it; earlyoom with its usual settings)\n")
        print("| hog rate (measured) | tool running | runs | who killed the hog | crossing (224 MiB)→signal median ms (oomguard) | MiB allocated at the end, median |")
        print("|---|---|---|---|---|---|")
        for (rate, tool) in sorted(cg, key=lambda k: (k[0] == 0, k[0], k[1] != "oomguard")):
            runs = cg[(rate, tool)]
            whos = {}
            for w, _ in runs:
                whos[w] = whos.get(w, 0) + 1
            rate_label = "fastest" if rate == 0 else (f"{rate} MiB/s" if rate < 1024 else f"{rate // 1024} GiB/s")
            fills = med([f.get("fill") for _, f in runs])
            sig = med([f.get("signal_ms") for _, f in runs])
            peak = med([f.get("sig_mib") or f.get("peak_mib") for _, f in runs])
            print(f"| {rate_label} ({fmt(fills, '{:.0f}')} MiB/s) | {tool} | {len(runs)} "
                  f"| {', '.join(f'{w} {n}×' for w, n in sorted(whos.items()))} | {fmt(sig)} | {fmt(peak, '{:.0f}')} |")
    idle = sorted(glob.glob(os.path.join(d, "idle-*.idle-result")))
    if idle:
        per = {}
        for path in idle:
            for line in open(path):
                tool, *kvs = line.split()
                kv = dict(x.split("=") for x in kvs)
                per.setdefault(tool, []).append(kv)
        print(f"\n### Idle, both daemons side by side for 60 s (after 5 s to settle), thresholds 10 % / 5 % of MemTotal; {len(idle)} runs, median (each run)\n")
        print("| tool | VmRSS MiB | CPU over 60 s (utime+stime ticks) | on-CPU time over 60 s (schedstat) ms |")
        print("|---|---|---|---|")
        for tool in ("oomguard", "earlyoom"):
            runs = per.get(tool, [])
            rss = [int(k["rss_kib"]) / 1024 for k in runs]
            ticks = [int(k["ticks"]) for k in runs]
            ns = [int(k["cpu_ns"]) / 1e6 for k in runs]
            each = lambda xs, f: ", ".join(f.format(x) for x in xs)
            print(f"| {tool} | {med(rss):.2f} ({each(rss, '{:.2f}')}) | {med(ticks)} ({each(ticks, '{}')}) "
                  f"| {med(ns):.1f} ({each(ns, '{:.1f}')}) |")


if __name__ == "__main__":
    main(sys.argv[1])
