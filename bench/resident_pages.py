#!/usr/bin/env python3
"""Which pages of a process's file mappings are resident, from /proc/PID/pagemap (needs root).

Usage: bench/resident_pages.py PID [PATH_SUBSTRING]

Prints VmRSS/RssAnon/RssFile, then per file mapping: size, Rss (smaps), present pages, runs of
present pages, and the 64 KiB windows (virtual address aligned, the kernel's fault-around unit)
that hold at least one present page. With PATH_SUBSTRING (default: the process's executable) it
also lists those windows for that file's mappings, with their present-page counts.
"""
import os
import struct
import sys

PAGE = 4096
WINDOW = 64 << 10


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmLck"):
                out[k] = int(v.split()[0])
    return out


def smaps(pid):
    maps = []
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                a, b = head[0].split("-")
                cur = {
                    "start": int(a, 16),
                    "end": int(b, 16),
                    "perms": head[1],
                    "path": head[5] if len(head) > 5 else "",
                }
                maps.append(cur)
            elif head[0] == "Rss:":
                cur["rss"] = int(head[1])
    return maps


def present(pid, start, end):
    n = (end - start) // PAGE
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(start // PAGE * 8)
        data = f.read(n * 8)
    return [(struct.unpack_from("<Q", data, i * 8)[0] >> 63) & 1 for i in range(n)]


def main():
    pid = int(sys.argv[1])
    want = sys.argv[2] if len(sys.argv) > 2 else os.readlink(f"/proc/{pid}/exe")
    st = status(pid)
    print(" ".join(f"{k} {v} kB" for k, v in st.items()))
    print(f"{'mapping':<44} {'perms':5} {'size kB':>8} {'Rss kB':>7} {'pages':>6} {'runs':>5} {'64K win':>7}")
    total = {"pages": 0, "runs": 0, "windows": 0}
    detail = []
    for m in smaps(pid):
        if not m["path"].startswith("/"):
            continue
        bits = present(pid, m["start"], m["end"])
        pages = sum(bits)
        runs = sum(1 for i, b in enumerate(bits) if b and (i == 0 or not bits[i - 1]))
        wins = {}
        for i, b in enumerate(bits):
            if b:
                w = (m["start"] + i * PAGE) // WINDOW
                wins[w] = wins.get(w, 0) + 1
        name = os.path.basename(m["path"])
        print(f"{name:<44} {m['perms']:5} {(m['end'] - m['start']) >> 10:>8} {m.get('rss', 0):>7} "
              f"{pages:>6} {runs:>5} {len(wins):>7}")
        if want in m["path"]:
            for k in total:
                total[k] += {"pages": pages, "runs": runs, "windows": len(wins)}[k]
            detail.append((m, wins))
    print(f"\n{want}: {total['pages']} present pages ({total['pages'] * 4} kB), "
          f"{total['runs']} runs, {total['windows']} windows of 64 KiB")
    for m, wins in detail:
        if wins:
            print(f"  {m['perms']} {m['start']:x}-{m['end']:x}: " + " ".join(
                f"+{(w * WINDOW - m['start']) >> 10 if w * WINDOW >= m['start'] else 0}K:{c}"
                for w, c in sorted(wins.items())))


if __name__ == "__main__":
    main()
