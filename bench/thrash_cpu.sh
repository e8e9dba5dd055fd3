#!/usr/bin/env bash
# Benchmark (issue 16, part 6): the CPU the thrash rule costs the daemon's loop. A dry-run
# daemon guards one idle v1 memory cgroup (96 MiB, one sleeping process) with the loop forced
# to run every 10 ms (`poll.min = poll.max = "10ms"`: the rate under memory pressure, where the
# bug was: /proc/vmstat and memory.stat read and parsed at every iteration), for SECONDS, with
# the thrash rule off and on (machine and cgroup scopes, `notify` only). Prints the daemon's
# CPU time (utime + stime from /proc/PID/stat) and loop count for each run.
# Usage: bench/thrash_cpu.sh [SECONDS] [BINARY]   (default 30, target/debug/oomguard)
# Needs root and cgroup v1 memory. Nothing is signalled (dry run, candidates limited to the
# cgroup).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
og=${2:-}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
v1=/sys/fs/cgroup/memory
[ -f $v1/memory.limit_in_bytes ] || { echo "needs the cgroup v1 memory controller at $v1" >&2; exit 2; }
if [ -z "$og" ]; then cargo build --quiet --bin oomguard; og=$PWD/target/debug/oomguard; fi
work=$(mktemp -d)
own_rel=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
rel=${own_rel%/}/oomguard-bench-thrash-cpu-$$
d=$v1$rel
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -d "$d" ] && { for p in $(cat "$d/cgroup.procs"); do kill -KILL "$p" 2>/dev/null || true; done; sleep 0.2; rmdir "$d" || true; }
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$d"; echo $((96 << 20)) > "$d/memory.limit_in_bytes"
sh -c "echo \$\$ > $d/cgroup.procs && exec sleep $((secs * 3 + 30))" & pids+=($!)
tck=$(getconf CLK_TCK)
for mode in off on; do
  cat > "$work/$mode.toml" <<TOML
dry_run = true
candidates_cgroup = "$rel"
[memory]
term_below = "1M"
kill_below = "512K"
[poll]
min = "10ms"
max = "10ms"
[events]
journal = false
[[cgroups]]
path = "$rel"
headroom = "0"
[thrash]
enable = $([ $mode = on ] && echo true || echo false)
actions = ["notify"]
TOML
  "$og" watch --config "$work/$mode.toml" 2> "$work/$mode.log" & p=$!; pids+=($p)
  sleep "$secs"
  read -r ut st < <(awk '{print $14, $15}' /proc/$p/stat)
  kill -TERM $p; wait $p 2>/dev/null || true
  loops=$(grep -o '[0-9]* loop iterations' "$work/$mode.log" | awk '{print $1}')
  echo "thrash $mode: ${secs}s, $loops loop iterations, CPU $(( (ut + st) * 1000 / tck )) ms (user $((ut * 1000 / tck)) ms, system $((st * 1000 / tck)) ms)"
done
