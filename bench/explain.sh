#!/usr/bin/env bash
# Benchmark: `oomguard explain --json` over a generated 1 GiB kern.log with real OOM reports
# scattered among ordinary lines, side by side with `grep -c 'Killed process'` on the same file,
# in one run, taking turns. Prints wall time (median of 5, warm page cache), throughput and peak RSS of both,
# and the ratio. Targets: time <= 0.6x grep's (issue 17; issue 2 set 2x), peak RSS <= 16 MiB.
# Also prints the CPU time (user + system, median of the same runs) and its ratio: on a shared,
# loaded machine a run's wall time includes the time it waited for a CPU, its CPU time does not.
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

measure() { # prints "seconds maxrss_kib cpu_seconds" for the command
  /usr/bin/time -f '%e %M %U %S' -o "$out/time.txt" "$@" > "$out/stdout.txt" 2>/dev/null || true
  awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$out/time.txt"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

runs=5
# The two tools take turns, run by run, so a change of the machine's load hits both alike.
declare -A times cpus rss t cpu found
for _ in $(seq $runs); do
  for tool in grep oomguard; do
    if [ $tool = grep ]; then
      read -r s m c < <(measure grep -c 'Killed process' "$log")
      found[$tool]=$(cat "$out/stdout.txt")
    else
      read -r s m c < <(measure "$bin" explain --json "$log")
      found[$tool]=$(wc -l < "$out/stdout.txt")
    fi
    times[$tool]+="$s "; cpus[$tool]+="$c "
    [ "$m" -gt "${rss[$tool]:-0}" ] && rss[$tool]=$m
  done
done
for tool in grep oomguard; do
  t[$tool]=$(printf '%s\n' ${times[$tool]} | median)
  cpu[$tool]=$(printf '%s\n' ${cpus[$tool]} | median)
  echo "$tool: found ${found[$tool]} (expected $expected)" >&2
done
printf '\n%-32s %10s %12s %10s %14s\n' "tool (file: $((bytes >> 20)) MiB)" "median s" "MiB/s" "CPU s" "peak RSS MiB"
for tool in grep oomguard; do
  label=$tool; [ $tool = grep ] && label="grep -c 'Killed process'" || label="oomguard explain --json"
  awk -v l="$label" -v s="${t[$tool]}" -v b="$bytes" -v c="${cpu[$tool]}" -v r="${rss[$tool]}" \
    'BEGIN { printf "%-32s %10.3f %12.0f %10.2f %14.1f\n", l, s, (s > 0 ? b / 1048576 / s : 0), c, r / 1024 }'
done
awk -v a="${t[oomguard]}" -v b="${t[grep]}" 'BEGIN { printf "\nratio oomguard/grep: %.2fx (target <= 0.6x)\n", (b > 0 ? a / b : 0) }'
awk -v a="${cpu[oomguard]}" -v b="${cpu[grep]}" 'BEGIN { printf "CPU time ratio:      %.2fx\n", (b > 0 ? a / b : 0) }'
printf 'load average during the run: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
