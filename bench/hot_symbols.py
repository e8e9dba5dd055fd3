#!/usr/bin/env python3
"""Lists the functions of oomguard that the idle daemon runs once start-up is over, with uprobes.

Usage (root; bench/hot_symbols.sh builds the binary and its linker map, then runs this):
    bench/hot_symbols.py BINARY MAP OUT [SECONDS]

- Every function of the binary (the `.text.SYMBOL` input sections of the lld map MAP) gets a
  uprobe (tracefs, mounted in a private mount namespace; event group `oghot`) on a private copy
  of BINARY, so no other process is traced.
- The daemon runs SECONDS (default 20) in each of two set-ups, one after the other: flags only
  (`--mem-min 10% --mem-kill 5%`, which ranks ahead of need), and as the package runs it (the
  shipped config, whose `exe` rule turns ranking ahead off; `Type=notify` with a watchdog).
  Both with the default thresholds (far below MemAvailable here) and candidates limited to two
  `sleep`s of its own: nothing is ever killed.
- Hot = entered at or after `shed_file_pages`, which drops start-up's file pages just before
  the rehearsed decision and the watch loop: what is entered from then on is what stays
  resident (and locked). Functions entered before but still running then (`settle_memory`,
  `Daemon::run`, which holds the loop) are added from the direct-call graph.

OUT gets one symbol a line (lld's --symbol-ordering-file): the idle loop's functions first (most
often entered first), then the rest of the decision path in the order first entered.

Disabling ~2,600 uprobes takes the kernel one RCU grace period each: the run ends with a few
minutes of waiting.
"""
import bisect
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

GROUP = "oghot"
MARK = "5mlock15shed_file_pages17h"  # watch::mlock::shed_file_pages
LOOP = "6Daemon3run17h"  # watch::daemon::Daemon::run


def functions(map_path):
    """(vma, size, symbol) of every `.text.SYMBOL` input section in an lld map."""
    out = []
    pat = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S*\(\.text\.(.+)\)$")
    with open(map_path) as f:
        for line in f:
            m = pat.match(line)
            if m and int(m.group(2), 16) > 0:
                # LLVM's section prefixes (cold, hot code): the symbol is what follows.
                sym = re.sub(r"^(unlikely|hot|startup|exit|split)\.", "", m.group(3))
                out.append((int(m.group(1), 16), int(m.group(2), 16), sym))
    return out


def text_segment(binary):
    """(file offset, vaddr) of the executable LOAD segment."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "E" in f[6:-1]:
            return int(f[1], 16), int(f[2], 16)
    raise SystemExit("no executable LOAD segment")


def callers(binary, funcs):
    """{callee index: {caller indexes}} from the direct calls and jumps between functions."""
    starts = [v for v, _s, _n in funcs]
    index = {v: i for i, v in enumerate(starts)}
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary],
                         capture_output=True, text=True, check=True).stdout
    pat = re.compile(r"^\s+([0-9a-f]+):\s+(?:call|jmp)\s+([0-9a-f]+)\b", re.M)
    graph = {}
    for m in pat.finditer(out):
        callee = index.get(int(m.group(2), 16))
        if callee is None:
            continue
        at = int(m.group(1), 16)
        k = bisect.bisect_right(starts, at) - 1
        if k >= 0 and at < starts[k] + funcs[k][1] and k != callee:
            graph.setdefault(callee, set()).add(k)
    return graph


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Tracer:
    """Uprobes on every function of `copy`, read from trace_pipe into `hits`."""

    def __init__(self, tfs, copy, funcs, seg):
        self.tfs, self.names = tfs, []
        seg_off, seg_vaddr = seg
        fd = os.open(f"{tfs}/uprobe_events", os.O_WRONLY | os.O_APPEND)  # no seek on tracefs
        try:
            for i, (vma, _size, _sym) in enumerate(funcs):
                os.write(fd, f"p:{GROUP}/f{i} {copy}:0x{vma - seg_vaddr + seg_off:x}\n".encode())
                self.names.append(f"f{i}")
        finally:
            os.close(fd)
        with open(f"{tfs}/buffer_size_kb") as f:
            # "7 (expanded: 1408)" before first use: restore the expanded size.
            self.old_buf = re.findall(r"\d+", f.read())[-1]
        with open(f"{tfs}/trace_clock") as f:
            self.old_clock = re.search(r"\[(\S+)\]", f.read()).group(1)
        write(f"{tfs}/buffer_size_kb", "65536")
        write(f"{tfs}/trace_clock", "mono")  # time.monotonic()'s clock
        write(f"{tfs}/trace", "")
        self.hits = []  # (timestamp, pid, function index)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.read)
        self.thread.start()
        write(f"{tfs}/events/{GROUP}/enable", "1")

    def read(self):
        pat = re.compile(rb"-(\d+)\s+\[\d+\].*?\s(\d+\.\d+): f(\d+):")
        fd = os.open(f"{self.tfs}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                chunk = b""
            if not chunk:
                if self.stop.is_set():
                    break
                time.sleep(0.05)
                continue
            lines = (buf + chunk).split(b"\n")
            buf = lines.pop()
            for line in lines:
                m = pat.search(line)
                if m:
                    self.hits.append((float(m.group(2)), int(m.group(1)), int(m.group(3))))
        os.close(fd)

    def close(self):
        time.sleep(0.5)
        self.stop.set()
        self.thread.join()
        t0 = time.monotonic()
        for path, value in ((f"events/{GROUP}/enable", "0"), ("buffer_size_kb", self.old_buf),
                            ("trace_clock", self.old_clock)):
            try:
                write(f"{self.tfs}/{path}", value)
            except OSError as e:
                print(f"cannot restore {path}: {e}", file=sys.stderr)
        fd = os.open(f"{self.tfs}/uprobe_events", os.O_WRONLY | os.O_APPEND)
        for n in self.names:
            try:
                os.write(fd, f"-:{GROUP}/{n}\n".encode())
            except OSError:
                pass
        os.close(fd)
        print(f"probes removed in {time.monotonic() - t0:.0f} s", file=sys.stderr)


def run_daemon(copy, work, name, seconds, extra, env):
    """Runs the daemon; returns (pid, SIGTERM time)."""
    parent = subprocess.Popen(["bash", "-c", "sleep 600 & sleep 600 & wait"],
                              start_new_session=True)
    with open(f"{work}/{name}.log", "w") as log:
        daemon = subprocess.Popen(
            [copy, "watch", *extra, "--mem-min", "10%", "--mem-kill", "5%",
             "--candidates-parent", str(parent.pid), "--event-log", f"{work}/{name}.jsonl"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(seconds)
        sigterm_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
    os.killpg(parent.pid, signal.SIGKILL)  # the bash and its sleeps: their own group
    parent.wait()
    with open(f"{work}/{name}.log") as f:
        sys.stderr.write(f"[{name}] " + f.read())
    return daemon.pid, sigterm_at


def main():
    binary, map_path, out_path = sys.argv[1:4]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    funcs = functions(map_path)
    if not funcs:
        raise SystemExit(f"no .text.* sections in {map_path}")
    seg = text_segment(binary)
    mark = {i for i, f in enumerate(funcs) if MARK in f[2]}
    if not mark:
        raise SystemExit("shed_file_pages is not a function of its own (inlined?)")

    work = tempfile.mkdtemp(prefix="oghot-")
    copy = f"{work}/oomguard"
    shutil.copy2(binary, copy)
    tfs = f"{work}/tracefs"
    os.mkdir(tfs)
    subprocess.run(["mount", "-t", "tracefs", "nodev", tfs], check=True)
    runs = []
    try:
        tracer = Tracer(tfs, copy, funcs, seg)
        try:
            runs.append(run_daemon(copy, work, "flags", seconds, [], dict(os.environ)))
            # systemd's notify socket, as under Type=notify with WatchdogSec=30s.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(f"{work}/notify")
            env = dict(os.environ, NOTIFY_SOCKET=f"{work}/notify", WATCHDOG_USEC="30000000")
            env.pop("WATCHDOG_PID", None)
            cfg = ["--config", f"{repo}/packaging/oomguard.toml"]
            runs.append(run_daemon(copy, work, "packaged", seconds, cfg, env))
            sock.close()
        finally:
            tracer.close()
    finally:
        subprocess.run(["umount", tfs], check=False)

    count, first, in_loop = {}, {}, set()
    for pid, sigterm_at in runs:
        hits = [(ts, i) for ts, p, i in tracer.hits if p == pid and ts < sigterm_at]
        marks = [ts for ts, i in hits if i in mark]
        if not marks:
            raise SystemExit(f"pid {pid}: shed_file_pages never entered ({len(hits)} hits)")
        for ts, i in hits:
            if ts >= marks[0]:
                count[i] = count.get(i, 0) + 1
                first.setdefault(i, ts - marks[0])
            # The second half of each run is the idle loop alone.
            if ts >= sigterm_at - seconds / 2:
                in_loop.add(i)
    order = sorted(count, key=lambda i: (i not in in_loop, -count[i] if i in in_loop else first[i]))
    # Entry probes miss the functions entered before the mark that run on after it: its callers
    # up to `Daemon::run` (found through direct calls; only those entered at all). Callers of
    # `Daemon::run` (main) run again only at exit.
    graph = callers(binary, funcs)
    entered = {i for _ts, _p, i in tracer.hits}
    stack, todo, seen = [], list(mark), set(mark)
    while todo:
        i = todo.pop()
        if LOOP in funcs[i][2]:
            continue
        for c in graph.get(i, ()):
            if c not in seen and c in entered:
                seen.add(c)
                todo.append(c)
                if c not in count:
                    stack.append(c)
    order = stack + order
    with open(out_path, "w") as f:
        for i in order:
            f.write(funcs[i][2] + "\n")
    print(f"{len(funcs)} functions probed, {len(tracer.hits)} hits, {len(order)} hot "
          f"({len(in_loop)} in the idle loop, {len(stack)} added from the call stack), "
          f"{sum(funcs[i][1] for i in order)} bytes of code", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
