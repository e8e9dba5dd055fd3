#!/usr/bin/env bash
# Benchmark (issue 4): `oomguard watch` side by side with earlyoom (Debian's package), in one run,
# on the same hog (bench/hog.c):
#   - time from the moment MemAvailable crosses the SIGTERM threshold to the fatal signal, and to
#     the hog's reaping, and the MiB the hog allocated past the threshold before the signal;
#     at 256 MiB/s, 1 GiB/s and as fast as one thread can; with 0, 2,000 and 8,000 extra idle
#     processes;
#   - idle VmRSS and CPU of each daemon over 60 s;
#   - the cgroup case: a 256 MiB v1 memory cgroup with the hog inside (earlyoom cannot act there,
#     so the kernel's memcg OOM killer does): who killed the hog in each run.
# Every measurement runs in a fresh PID namespace (bench/watch_ns.sh), so neither tool can see or
# signal anything but the benchmark's own processes. Thresholds are relative to MemAvailable at
# that moment. The hog lives in a memory cgroup (limit just above its own cap) below this
# script's memcg, and everything in the namespace in one with a 3 GiB limit: the machine cannot
# run out because of the benchmark. Cgroups are removed at the end.
#
# Prints the table; writes bench/out/watch-results.md (copied into docs/benchmarks.md by hand).
# Usage: bench/watch.sh [REPEATS]   (default 5)   Needs root, cgroup v1 memory, unshare.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
out=${OUT:-bench/out/watch}   # OUT, RATES, IDLES, IDLE_RUNS, OG: for trying the script out; OG_CONFIG: bench/watch_ns.sh
rm -rf "$out"; mkdir -p "$out"

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
if ! command -v earlyoom > /dev/null; then
  apt-get install -y -qq earlyoom > /dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq earlyoom; }
fi
earlyoom_version=$(earlyoom -v 2>&1 | head -1)
# OG: an already built oomguard to measure instead of this tree's (e.g. an older commit's, for a
# before/after comparison in one session).
if [ -n "${OG:-}" ]; then
  og=$(realpath "$OG")
else
  cargo build --release --quiet --bin oomguard
  og=$PWD/target/release/oomguard
fi
mkdir -p bench/out
gcc -O2 -Wall -o bench/out/hog bench/hog.c

# Our own memory cgroup (v1), from the `memory:` line of /proc/self/cgroup.
v1=/sys/fs/cgroup/memory
[ -f $v1/memory.limit_in_bytes ] || { echo "needs the cgroup v1 memory controller at $v1" >&2; exit 2; }
own_rel=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
top_rel="${own_rel%/}/oomguard-bench-$$"
top=$v1$top_rel
mkdir "$top"
echo 1 > "$top/memory.use_hierarchy" 2>/dev/null || true
echo $((3 << 30)) > "$top/memory.limit_in_bytes"
ns_pids=()

cleanup() {
  # Only processes in our own cgroups (which only this script fills), by pid; then the cgroups.
  for d in "$top"/*/ "$top"/; do
    [ -d "$d" ] || continue
    for _ in $(seq 100); do
      pids=$(cat "$d/cgroup.procs" 2>/dev/null || true)
      [ -z "$pids" ] && break
      for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
      sleep 0.05
    done
  done
  for d in "$top"/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
  rmdir "$top" 2>/dev/null || echo "warning: could not remove $top" >&2
  # No earlyoom (or oomguard) started by this script may outlive it.
  for p in "${ns_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then echo "warning: pid $p still alive; killing it" >&2; kill -KILL "$p" || true; fi
  done
}
trap cleanup EXIT

# One measurement in a fresh namespace; its processes all start inside $top.
measure() { # mode tool idle rate name [hog cgroup name]
  local mode=$1 tool=$2 idle=$3 rate=$4 name=$5 cg=${6:-hog}
  local hogdir="$top/$cg"
  [ -d "$hogdir" ] || mkdir "$hogdir"
  if [ "$mode" = global ]; then echo $((2112 << 20)) > "$hogdir/memory.limit_in_bytes"; fi
  sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$top" \
    timeout -s KILL 150 unshare --pid --fork --mount-proc --kill-child \
    bash bench/watch_ns.sh "$mode" "$tool" "$idle" "$rate" "$out/$name" "$hogdir" "$top_rel/$cg" "$og" \
    > "$out/$name.stdout" 2> "$out/$name.stderr" &
  local p=$!
  ns_pids+=("$p")
  wait "$p" || echo "run $name: exit $? ($(tail -c 300 "$out/$name.stderr"))" >&2
  # Wait until the namespace's processes are all gone (the kernel ends them when pid 1 exits).
  for _ in $(seq 400); do
    [ -z "$(cat "$top/cgroup.procs" "$hogdir/cgroup.procs" 2>/dev/null)" ] && break
    sleep 0.05
  done
  # Every hog must be gone before the next run; nothing else of ours may linger.
  if [ -n "$(cat "$hogdir/cgroup.procs")" ]; then echo "hog cgroup not empty after $name" >&2; exit 4; fi
  rmdir "$hogdir"
}

echo "earlyoom: $earlyoom_version; oomguard: $($og --version 2>/dev/null || echo '?'); kernel $(uname -r); $(nproc) CPUs" | tee "$out/env"
rates=(${RATES:-256 1024 0})
idles=(${IDLES:-0 2000 8000})
idle_runs=${IDLE_RUNS:-3}
total=$(( ${#rates[@]} * ${#idles[@]} * 2 * repeats + ${#rates[@]} * 2 * repeats + idle_runs ))
n=0
for rep in $(seq "$repeats"); do
  for idle in "${idles[@]}"; do
    for rate in "${rates[@]}"; do
      # Alternate which tool goes first, so slow drift in the machine's load hits both alike.
      if [ $((rep % 2)) = 1 ]; then tools=(oomguard earlyoom); else tools=(earlyoom oomguard); fi
      for tool in "${tools[@]}"; do
        n=$((n + 1)); printf '\r[%d/%d] global %s idle=%s rate=%s   ' $n $total "$tool" "$idle" "$rate" >&2
        measure global "$tool" "$idle" "$rate" "global-$tool-$idle-$rate-$rep"
      done
    done
  done
  for rate in "${rates[@]}"; do
    for tool in oomguard earlyoom; do
      n=$((n + 1)); printf '\r[%d/%d] cgroup %s rate=%s   ' $n $total "$tool" "$rate" >&2
      measure cgroup "$tool" 0 "$rate" "cgroup-$tool-0-$rate-$rep" cg
    done
  done
done
for i in $(seq "$idle_runs"); do
  n=$((n + 1)); printf '\r[%d/%d] idle %s   ' $n $total "$i" >&2
  measure idle both 0 default "idle-default-$i"
done
echo >&2
python3 bench/watch_report.py "$out" | tee "$out-results.md"
