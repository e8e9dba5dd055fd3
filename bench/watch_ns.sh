#!/usr/bin/env bash
# One measurement of bench/watch.sh, run as pid 1 of a fresh PID namespace
# (`unshare --pid --fork --mount-proc --kill-child`), so the tool under test can only see and
# signal what this script starts: the idle processes, the hog, and itself. When this script exits,
# the kernel ends everything left in the namespace.
#
# Usage: watch_ns.sh MODE TOOL IDLE_N RATE_MIBS OUT HOG_CGROUP_DIR HOG_CGROUP_REL OOMGUARD_BIN
#   MODE global: thresholds relative to MemAvailable now (SIGTERM 512 MiB below it, SIGKILL 1 GiB
#                below), the hog takes up to 2 GiB; crossing = MemAvailable below SIGTERM's.
#   MODE cgroup: the hog's cgroup has a 256 MiB limit; oomguard guards it with 32 MiB headroom,
#                earlyoom runs with its usual (Debian) settings; crossing = usage above 224 MiB.
#   MODE idle:   both daemons side by side, RATE_MIBS = "default" (10 %/5 % of MemTotal) or "near"
#                (the global thresholds); VmRSS and CPU over 60 s.
set -euo pipefail
mode=$1 tool=$2 idle=$3 rate=$4 out=$5 hogcg=$6 hogrel=$7 og=$8
here=$(dirname "$0")
hog=$here/out/hog
kib() { awk -v k="$1" '$1 == k":" {print $2}' /proc/meminfo; }

if [ "$idle" -gt 0 ]; then
  "$hog" idle "$idle" > "$out.idle" &
  for _ in $(seq 1200); do grep -q ready "$out.idle" 2>/dev/null && break; sleep 0.05; done
  grep -q ready "$out.idle" || { echo "idle processes not ready" >&2; exit 3; }
  sleep 0.5
fi

start_tool() { # tool, log, args...; sets TOOLPID (a child of this shell, so `wait` works)
  local t=$1 log=$2; shift 2
  if [ "$t" = oomguard ]; then
    # OG_CONFIG: a config file for oomguard (e.g. `[recorder] span = "0s"` to measure the idle
    # daemon without the flight recorder); the flags below still set the thresholds.
    "$og" watch ${OG_CONFIG:+--config "$OG_CONFIG"} "$@" > /dev/null 2> "$log" &
  else
    earlyoom "$@" > /dev/null 2> "$log" &
  fi
  TOOLPID=$!
}
wait_ready() { # log, needle
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.025; done
  echo "tool did not start: $(cat "$1")" >&2; return 1
}
# earlyoom 1.7 prints its limits, then dry-runs a victim search at start-up; with nothing else to
# pick yet it "selects itself" and sleeps 1 s ("Could not find a process to kill"): let it finish.
ready_needle() { [ "$1" = oomguard ] && echo "started on kernel" || echo "sending SIGTERM when"; }
settle() { [ "$1" = oomguard ] && sleep 0.3 || sleep 1.5; }

avail=$(kib MemAvailable)
total=$(kib MemTotal)
case $mode in
global)
  term=$((avail - 512 * 1024)); kill=$((avail - 1024 * 1024))
  if [ "$tool" = oomguard ]; then
    start_tool oomguard "$out.log" --mem-min "${term}K" --mem-kill "${kill}K" --term-grace 1s; pid=$TOOLPID
  else
    start_tool earlyoom "$out.log" -M "$term,$kill" -s 100 -r 3600; pid=$TOOLPID
  fi
  wait_ready "$out.log" "$(ready_needle "$tool")"
  settle "$tool"
  echo "avail_kib=$avail term_kib=$term kill_kib=$kill idle=$idle rate=$rate tool=$tool" > "$out.meta"
  # Up to 2 GiB: MemAvailable may not fall at first. After a large free (the previous run's hog)
  # the kernel keeps up to several hundred MiB on its per-CPU free lists (6.7+ auto-tunes their
  # size), which MemAvailable does not count; the next allocations take those pages first, and
  # MemAvailable stays flat until they are used up (seen here: flat for the first ~850 MiB).
  "$hog" run "$out.rec" "$rate" 2048 mem "$term" "$hogcg/cgroup.procs"
  ;;
cgroup)
  echo $((256 << 20)) > "$hogcg/memory.limit_in_bytes"
  before=$(awk '$1 == "oom_kill" {print $2}' "$hogcg/memory.oom_control")
  if [ "$tool" = oomguard ]; then
    start_tool oomguard "$out.log" --cgroup "$hogrel" --cgroup-headroom 32M \
      --mem-min 1M --mem-kill 512K --term-grace 1s; pid=$TOOLPID
    wait_ready "$out.log" "guarding cgroup"
  else
    start_tool earlyoom "$out.log" -r 3600; pid=$TOOLPID
    wait_ready "$out.log" "$(ready_needle "$tool")"
  fi
  settle "$tool"
  "$hog" run "$out.rec" "$rate" 384 "$hogcg/memory.usage_in_bytes" $(((256 - 32) * 1024)) \
    "$hogcg/cgroup.procs"
  after=$(awk '$1 == "oom_kill" {print $2}' "$hogcg/memory.oom_control")
  echo "kernel_oom_kills=$((after - before)) idle=$idle rate=$rate tool=$tool" > "$out.meta"
  ;;
idle)
  if [ "$rate" = near ]; then term=$((avail - 512 * 1024)); kill=$((avail - 1024 * 1024))
  else term=$((total / 10)); kill=$((total / 20)); fi
  start_tool oomguard "$out.oomguard.log" --mem-min "${term}K" --mem-kill "${kill}K"; p1=$TOOLPID
  start_tool earlyoom "$out.earlyoom.log" -M "$term,$kill" -s 100 -r 3600; p2=$TOOLPID
  wait_ready "$out.oomguard.log" "started on kernel"
  wait_ready "$out.earlyoom.log" "sending SIGTERM when"
  sleep 5
  cpu() { # utime+stime ticks, and schedstat on-CPU ns
    echo "$(awk '{print $14 + $15}' "/proc/$1/stat") $(awk '{print $1}' "/proc/$1/schedstat")"
  }
  rss() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
  read -r a1 n1 < <(cpu "$p1"); read -r a2 n2 < <(cpu "$p2")
  sleep 60
  read -r b1 m1 < <(cpu "$p1"); read -r b2 m2 < <(cpu "$p2")
  {
    echo "oomguard rss_kib=$(rss "$p1") ticks=$((b1 - a1)) cpu_ns=$((m1 - n1)) term_kib=$term"
    echo "earlyoom rss_kib=$(rss "$p2") ticks=$((b2 - a2)) cpu_ns=$((m2 - n2)) term_kib=$term"
  } > "$out.idle-result"
  kill -TERM "$p1" "$p2"; wait "$p1" "$p2" || true
  exit 0
  ;;
esac
sleep 0.2
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
