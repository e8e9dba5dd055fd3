#!/usr/bin/env bash
# Benchmark (issue 16): false firings of the thrash rule over a long run. One dry-run daemon
# guards two v1 memory cgroups of 96 MiB, with the thrash rule at its defaults (100 % of the
# working set refaulted per second, at least 4 MiB/s, for 10 s) and the `notify` action only:
#   - idle: one sleeping process;
#   - one-pass: a sequential reader that reads a 128 MiB file once (through the 96 MiB limit,
#     so part of it is evicted as it goes), then 2 s of rest, over and over, each time a fresh
#     file (written with O_DIRECT outside the cgroup, the previous one deleted with its shadow
#     entries), so no page is ever read twice: the workload thrash-protect and lmkd must not
#     mistake for thrashing. (128 MiB and the rest keep the disk writes of a 10-minute run near
#     25 GB on a shared machine.)
# The machine scope is off: on this shared machine it would measure the other users' builds
# (`scripts/vm-test.sh thrash` measures it in an otherwise idle guest).
# Prints the decisions (must be 0), the passes read, and each cgroup's refault counter.
# Usage: bench/thrash_false.sh [SECONDS]   (default 600)   Needs root and cgroup v1 memory.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
v1=/sys/fs/cgroup/memory
[ -f $v1/memory.limit_in_bytes ] || { echo "needs the cgroup v1 memory controller at $v1" >&2; exit 2; }
cargo build --quiet --bin oomguard
og=$PWD/target/debug/oomguard
work=$(mktemp -d "$PWD/target/thrash-bench.XXXXXX")   # disk-backed, never tmpfs
own_rel=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in idle once; do
    d=$v1${own_rel%/}/oomguard-bench-thrash-$c-$$
    [ -d "$d" ] && { for p in $(cat "$d/cgroup.procs"); do kill -KILL "$p" 2>/dev/null || true; done; sleep 0.2; rmdir "$d" || true; }
  done
  rm -rf "$work"
}
trap cleanup EXIT
for c in idle once; do
  d=$v1${own_rel%/}/oomguard-bench-thrash-$c-$$
  mkdir "$d"; echo $((96 << 20)) > "$d/memory.limit_in_bytes"
done
idle_rel=${own_rel%/}/oomguard-bench-thrash-idle-$$
once_rel=${own_rel%/}/oomguard-bench-thrash-once-$$
cat > "$work/oomguard.toml" <<TOML
dry_run = true
[memory]
term_below = "1M"
kill_below = "512K"
[events]
log = "$work/events.jsonl"
journal = false
[[cgroups]]
path = "$idle_rel"
headroom = "0"
[[cgroups]]
path = "$once_rel"
headroom = "0"
[thrash]
enable = true
machine = false
actions = ["notify"]
TOML
"$og" watch --config "$work/oomguard.toml" 2> "$work/watch.log" &
pids+=($!)
sleep 2
grep -q "guarding cgroup $once_rel" "$work/watch.log" || { cat "$work/watch.log"; exit 1; }
sh -c "echo \$\$ > $v1$idle_rel/cgroup.procs; echo 1000 > /proc/self/oom_score_adj; exec sleep $((secs + 60))" &
pids+=($!)
start=$(date +%s); passes=0
while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
  f=$work/pass.bin
  rm -f "$f"
  dd if=/dev/zero of="$f" bs=1M count=128 oflag=direct status=none
  sh -c "echo \$\$ > $v1$once_rel/cgroup.procs; echo 1000 > /proc/self/oom_score_adj; exec dd if=$f of=/dev/null bs=1M status=none"
  passes=$((passes + 1))
  sleep 2
done
rm -f "$work/pass.bin"
sleep 12   # one more rule duration after the last pass
decisions=$(grep -c "decision #" "$work/watch.log" || true)
rf() { awk '$1=="workingset_refault_file"{print $2}' "$v1$1/memory.stat"; }
echo "thrash rule false-firing run: ${secs} s, kernel $(uname -r)"
echo "  one-pass reader: $passes passes of 128 MiB through a 96 MiB limit; refaults $(rf "$once_rel") pages"
echo "  idle: refaults $(rf "$idle_rel") pages"
echo "  decisions (false firings): $decisions"
grep "decision #" "$work/watch.log" || true
[ "$decisions" = 0 ]
