#!/usr/bin/env python3
"""Writes a large synthetic kern.log: ordinary syslog lines (kernel and userspace, several
hosts' worth of variety) with real OOM reports scattered through it.

Usage: gen_kernlog.py OUT SIZE_MIB REPORT_FILE [REPORT_FILE ...]

The OOM reports are real captures (tests/fixtures/explain/real/*.kern.log, kernel 6.18), copied
verbatim with their syslog prefixes. One report is inserted every ~4 MiB. Prints the number of
reports (= kill events) written, so the benchmark can check oomguard found them all.
"""
import random
import sys

def ordinary_lines(rng, n):
    hosts = ["web-01", "db-02", "cache-3"]
    templates = [
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro. Quota mode: none.",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] usb 1-1: new high-speed USB device number {n} using xhci_hcd",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] audit: type=1400 audit({k:.3f}:{n}): apparmor=\"STATUS\" operation=\"profile_load\" name=\"/usr/bin/man\" pid={n}",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] nf_conntrack: nf_conntrack: table full, dropping packet",
        "{m} {d:2d} {t} {h} systemd[1]: Started Session {n} of user deploy.",
        "{m} {d:2d} {t} {h} CRON[{n}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
        "{m} {d:2d} {t} {h} sshd[{n}]: Accepted publickey for deploy from 10.0.0.{b} port {n} ssh2: ED25519 SHA256:abcdef",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] device veth{n} entered promiscuous mode",
        "{m} {d:2d} {t} {h} kernel: [{k:.6f}] docker0: port 2(veth{n}) entered blocking state",
        "{m} {d:2d} {t} {h} dockerd[{n}]: time=\"2026-11-29T10:00:00Z\" level=info msg=\"ignoring event\" module=libcontainerd",
    ]
    k = 1000.0
    out = []
    for i in range(n):
        k += rng.random()
        out.append(rng.choice(templates).format(
            m="Nov", d=29, t="%02d:%02d:%02d" % (i // 3600 % 24, i // 60 % 60, i % 60),
            h=rng.choice(hosts), k=k, n=rng.randrange(1000, 99999), b=rng.randrange(2, 250)))
    return "\n".join(out) + "\n"

def main():
    out_path, size_mib, reports = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    rng = random.Random(42)
    bodies = [open(r, encoding="utf-8").read() for r in reports]
    # A 4 MiB block of ordinary lines, reused with a different report each time.
    block = ordinary_lines(rng, 40000)
    while len(block) < 4 << 20:
        block += ordinary_lines(rng, 5000)
    block = block.encode()
    target = size_mib << 20
    written = 0
    count = 0
    with open(out_path, "wb") as f:
        while written < target:
            half = len(block) // 2
            cut = block.index(b"\n", half) + 1
            f.write(block[:cut])
            body = bodies[count % len(bodies)].encode()
            f.write(body)
            f.write(block[cut:])
            written += len(block) + len(body)
            count += 1
    print(count)

main()
