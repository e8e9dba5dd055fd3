#!/usr/bin/env python3
"""Checks a hot-symbol list against the page faults of a real idle run (bench/hot_symbols.sh).

Usage: bench/hot_faults.py MAP LIST PERF_DATA...

PERF_DATA: `perf record -e page-faults -c 1 -d` of `oomguard watch` runs. Every fault taken
after `shed_file_pages` (and more than a second before the recording's end: the shutdown) whose instruction lies in the binary's code but in a function not in
LIST is a function the uprobes missed (or one a later run took another way to): it is appended
to LIST. Fault-around means only the first such function of each 64 KiB window shows, so the
script runs this until nothing is added. Faults on constants are listed for information
(anonymous constants cannot be ordered by symbol).
"""
import bisect
import re
import subprocess
import sys


def sections(map_path):
    rows = []
    for line in open(map_path):
        f = line.split()
        if len(f) >= 5 and re.fullmatch(r"[0-9a-f]+", f[0]) and ":(" in line:
            rows.append((int(f[0], 16), int(f[2], 16), line.strip().split(":(")[-1][:-1]))
    rows.sort()
    return rows


def main():
    map_path, list_path, *datas = sys.argv[1:]
    rows = sections(map_path)
    starts = [r[0] for r in rows]

    def section(a):
        k = bisect.bisect_right(starts, a) - 1
        return rows[k][2] if k >= 0 and a < rows[k][0] + max(rows[k][1], 1) else None

    hot = [l.strip() for l in open(list_path) if l.strip()]
    known = set(hot)
    added, data = [], set()
    for path in datas:
        out = subprocess.run(["perf", "script", "-i", path, "--show-mmap-events",
                              "-F", "time,ip,addr"], capture_output=True, text=True).stdout
        # Faults in the last second are the shutdown's (SIGTERM): not idle.
        times = [float(m) for m in re.findall(r"^\s*(\d+\.\d+):", out, re.M)]
        end = max(times, default=0) - 1.0
        bias, after = None, False
        for line in out.splitlines():
            if "PERF_RECORD_MMAP2" in line:
                m = re.search(r"\[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0 .*\]: r--p (\S+)$", line)
                if m and "oomguard" in m.group(2) and bias is None:
                    bias = int(m.group(1), 16)
                continue
            f = line.split()
            if bias is None or len(f) < 3 or float(f[0].rstrip(":")) > end:
                continue
            # perf prints the address first, then the instruction pointer.
            addr, ip = int(f[1], 16) - bias, int(f[2], 16) - bias
            s = section(ip) if 0 <= ip < 1 << 32 else None
            if s and "shed_file_pages" in s:
                after = True
            if not after:
                continue
            if s and s.startswith(".text."):
                sym = re.sub(r"^\.text\.((unlikely|hot|startup|exit|split)\.)?", "", s)
                if sym not in known:
                    known.add(sym)
                    added.append(sym)
            elif ip != addr and 0 <= addr < 1 << 32:
                d = section(addr)
                if d and not d.startswith(".text"):
                    data.add(d)
    if added:
        with open(list_path, "a") as f:
            f.write("".join(s + "\n" for s in added))
    for s in added:
        print(f"added (faulted after start-up, not in the list): {s}")
    for d in sorted(data):
        print(f"constants faulted after start-up: {d}")
    print(f"{len(added)} added")


if __name__ == "__main__":
    main()
