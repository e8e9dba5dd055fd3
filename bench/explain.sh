#!/usr/bin/env bash
# Benchmark: `oomguard explain --json` over a generated 1 GiB kern.log with real OOM reports
# scattered among ordinary lines, side by side with `grep -c 'Killed process'` on the same file,
# in one run. Prints wall time (median of 5, warm page cache), throughput and peak RSS of both,
# and the ratio. Targets: time <= 0.6x grep's (issue 17; issue 2 set 2x), peak RSS <= 16 MiB.
#
# Usage: bench/explain.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
out=bench/out
mkdir -p "$out"
log="$out/kern-${size_mib}M.log"
cargo build --release --quiet --bin oomguard
bin=target/release/oomguard
if [ ! -s "$log" ]; then
  reports=$(ls tests/fixtures/explain/real/*.kern.log)
  expected=$(python3 bench/gen_kernlog.py "$log" "$size_mib" $reports)
  echo "$expected" > "$log.reports"
fi
expected=$(cat "$log.reports")
bytes=$(stat -c %s "$log")
cat "$log" > /dev/null   # warm the page cache for both tools alike

measure() { # prints "seconds maxrss_kib" for the command
  /usr/bin/time -f '%e %M' -o "$out/time.txt" "$@" > "$out/stdout.txt" 2>/dev/null || true
  cat "$out/time.txt"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

runs=5
declare -A t rss
for tool in grep oomguard; do
  times=(); peak=0
  for _ in $(seq $runs); do
    if [ $tool = grep ]; then
      read -r s m < <(measure grep -c 'Killed process' "$log")
    else
      read -r s m < <(measure "$bin" explain --json "$log")
    fi
    times+=("$s"); [ "$m" -gt "$peak" ] && peak=$m
  done
  t[$tool]=$(printf '%s\n' "${times[@]}" | median)
  rss[$tool]=$peak
  if [ $tool = grep ]; then found=$(cat "$out/stdout.txt"); else found=$(wc -l < "$out/stdout.txt"); fi
  echo "$tool: found $found (expected $expected)" >&2
done
printf '\n%-32s %10s %12s %14s\n' "tool (file: $((bytes >> 20)) MiB)" "median s" "MiB/s" "peak RSS MiB"
for tool in grep oomguard; do
  label=$tool; [ $tool = grep ] && label="grep -c 'Killed process'" || label="oomguard explain --json"
  awk -v l="$label" -v s="${t[$tool]}" -v b="$bytes" -v r="${rss[$tool]}" \
    'BEGIN { printf "%-32s %10.3f %12.0f %14.1f\n", l, s, (s > 0 ? b / 1048576 / s : 0), r / 1024 }'
done
awk -v a="${t[oomguard]}" -v b="${t[grep]}" 'BEGIN { printf "\nratio oomguard/grep: %.2fx (target <= 0.6x)\n", (b > 0 ? a / b : 0) }'
