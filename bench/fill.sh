#!/usr/bin/env bash
# The fastest single-thread fill rate here (docs/triggers.md): bench/hog.c's `fill` mode touches
# 1 GiB of fresh anonymous memory, one byte per 4 KiB page, in 1 MiB steps with no pause; with
# 4 KiB pages and with MADV_HUGEPAGE; REPEATS times each, inside a throwaway memory cgroup with
# a 1.1 GiB limit (the machine cannot run out because of it).
# Usage: bench/fill.sh [REPEATS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
mkdir -p bench/out
gcc -O2 -Wall -o bench/out/hog bench/hog.c
own_rel=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
cg=/sys/fs/cgroup/memory${own_rel%/}/oomguard-fill-$$
mkdir "$cg"
trap 'for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$p"; done; sleep 0.2; rmdir "$cg"' EXIT
echo $((1100 << 20)) > "$cg/memory.limit_in_bytes"
echo "kernel $(uname -r), $(nproc) CPUs, THP $(cat /sys/kernel/mm/transparent_hugepage/enabled), load $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$repeats"); do
  for mode in small huge; do
    sh -c 'echo $$ > "$1/cgroup.procs"; exec bench/out/hog fill 1024 "$2"' _ "$cg" "$mode"
  done
done
