#!/usr/bin/env bash
# Benchmark (issue 14): idle VmRSS of several oomguard binaries and earlyoom, side by side in
# one run, each from a fresh copy of its file. A daemon's idle RSS under mlockall is mostly the
# file pages of its binary and libc that its loop touches, and the kernel maps them a whole
# fault-around window or page-cache folio at a time; how large those are depends on how the file
# came into the page cache (written, read ahead, evicted and read again). So each round copies
# every binary to a new file first (same write path, same folios for all of them), then starts
# them all at once, each in its own PID namespace (it sees nothing but itself), with the
# thresholds bench/watch.sh's idle case uses (10 % / 5 % of MemTotal), and reads VmRSS and the
# on-CPU time after SECS seconds. Prints each binary's median and runs.
# CACHE=cold (default): each copy is synced and dropped from the page cache before it starts,
# as an installed binary is after a reboot; CACHE=written: it starts from the pages `cp` wrote.
# Usage: bench/idle_rss.sh BINARY... (ROUNDS=5 SECS=60 by default)   Needs root and unshare.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: bench/idle_rss.sh BINARY..." >&2; exit 2; }
command -v earlyoom > /dev/null || apt-get install -y -qq earlyoom > /dev/null
rounds=${ROUNDS:-5} secs=${SECS:-60}
work=$(mktemp -d "$PWD/target/idle-rss.XXXXXX")   # disk-backed
trap 'rm -rf "$work"' EXIT
total=$(awk '$1 == "MemTotal:" {print $2}' /proc/meminfo)
term=$((total / 10)) kill=$((total / 20))
labels=() bins=()
for b in "$@"; do labels+=("$(basename "$(dirname "$(dirname "$(dirname "$(realpath "$b")")")")")"); bins+=("$(realpath "$b")"); done
labels+=(earlyoom); bins+=("$(command -v earlyoom)")
for r in $(seq "$rounds"); do
  pids=()
  for i in "${!bins[@]}"; do
    copy=$work/r$r-$i-$(basename "${bins[$i]}")
    cp "${bins[$i]}" "$copy"
    if [ "${CACHE:-cold}" = cold ]; then
      # As after a reboot: the copy written out and dropped from the page cache, so its pages
      # come in by the faults and readahead of its own start, as an installed binary's do.
      sync "$copy"; dd if="$copy" iflag=nocache count=0 status=none
    fi
    if [ "${labels[$i]}" = earlyoom ]; then
      args=(-M "$term,$kill" -s 100 -r 3600)
    else
      args=(watch --mem-min "${term}K" --mem-kill "${kill}K")
    fi
    # The namespace's shell measures its own child (pid 2 there): no pid is shared with the host.
    unshare --pid --fork --mount-proc bash -c '
      "$@" > /dev/null 2>&1 &
      p=$!
      sleep 5
      read -r n0 _ < /proc/$p/schedstat
      sleep '"$secs"'
      read -r n1 _ < /proc/$p/schedstat
      echo "$(awk "\$1 == \"VmRSS:\" {print \$2}" /proc/$p/status) $((n1 - n0))"
      kill -TERM $p; wait $p 2> /dev/null || true
    ' _ "$copy" "${args[@]}" > "$work/r$r-$i.out" &
    pids+=($!)
  done
  wait "${pids[@]}"
  printf '\rround %d/%d' "$r" "$rounds" >&2
done
echo >&2
echo "idle VmRSS over ${secs} s, ${rounds} rounds, kernel $(uname -r), fresh copies each round (page cache: ${CACHE:-cold})"
echo "| binary | VmRSS MiB median (each round) | on-CPU ms per minute median |"
echo "|---|---|---|"
for i in "${!bins[@]}"; do
  rss=() cpu=()
  for r in $(seq "$rounds"); do
    read -r k ns < "$work/r$r-$i.out"
    rss+=("$(awk -v k="$k" 'BEGIN {printf "%.2f", k / 1024}')")
    cpu+=("$(awk -v n="$ns" -v s="$secs" 'BEGIN {printf "%.1f", n / 1e6 * 60 / s}')")
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  echo "| ${labels[$i]} (${bins[$i]}) | $(med "${rss[@]}") ($(IFS=,; echo "${rss[*]}" | sed 's/,/, /g')) | $(med "${cpu[@]}") |"
done
