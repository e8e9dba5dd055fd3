#!/usr/bin/env bash
# Scan benchmark (printed, not asserted): oomguard's full process scan vs `ps -e -o pid,rss,comm`
# over the same processes, with N extra idle processes (default 10,000).
#
# Usage: bench/scan.sh [N] [REPS]
# The idle processes are `sleep` children of one helper shell; their pids are recorded and they
# are killed by pid at the end (also on Ctrl-C).
set -euo pipefail
N=${1:-10000}
REPS=${2:-9}
cd "$(dirname "$0")/.."
cargo build --release -q -p oomguard
BIN=$PWD/target/release/oomguard
PIDFILE=$(mktemp)

cleanup() {
    if [ -s "$PIDFILE" ]; then
        # kill by pid, in batches
        xargs -a "$PIDFILE" -n 500 kill 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
}
trap cleanup EXIT INT TERM

echo "spawning $N idle processes..."
for ((i = 0; i < N; i++)); do
    sleep 3600 &
    echo $! >>"$PIDFILE"
done
# Let them all exec and settle.
sleep 2
total=$(ls -d /proc/[0-9]* | wc -l)
echo "processes visible in /proc: $total"

now_ns() { date +%s%N; }
declare -a T_PS T_OG
for ((r = 0; r < REPS; r++)); do
    t0=$(now_ns); ps -e -o pid,rss,comm >/dev/null; t1=$(now_ns)
    "$BIN" rank --scan-only >/dev/null; t2=$(now_ns)
    T_PS+=($(( (t1 - t0) / 1000 ))); T_OG+=($(( (t2 - t1) / 1000 )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mps=$(median "${T_PS[@]}"); mog=$(median "${T_OG[@]}")
echo "ps -e -o pid,rss,comm runs (us):      ${T_PS[*]}"
echo "oomguard rank --scan-only runs (us):  ${T_OG[*]}"
echo "median ps: ${mps} us, median oomguard: ${mog} us, ratio oomguard/ps: $(awk -v a="$mog" -v b="$mps" 'BEGIN {printf "%.2f", a/b}') (target <= 0.5)"
t0=$(now_ns); "$BIN" rank -n 20 >/dev/null; t1=$(now_ns)
echo "for reference, oomguard rank -n 20 (scan + cgroup lookups of the top 20 + table): $(( (t1 - t0) / 1000 )) us"
