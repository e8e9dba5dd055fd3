#!/bin/sh
# The time-to-OOM forecast against hogs at known rates (docs/triggers.md, "Time-to-OOM
# forecast"): runs tests/kernel_forecast.rs RUNS times (default 5) with an optimised hog and
# prints, per rate, the forecast's estimate at the event against the real time from the event
# to the kernel's memcg OOM kill at the cgroup's limit (256 MiB; the 1024 MiB/s cell also 1 GiB),
# and the rate the hog really reached (its own progress lines). Needs root and a v1 memory
# controller.
# Usage: bench/forecast.sh [RUNS]
set -eu
runs=${1:-5}
cd "$(dirname "$0")/.."
cargo build -q --release -p oomguard --example hog
OOMGUARD_HOG=$PWD/target/release/examples/hog
export OOMGUARD_HOG
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
    cargo test -q -p oomguard --test kernel_forecast -- --test-threads=1 --nocapture 2>&1 |
        grep '^FORECAST\|FORECAST rate' | sed 's/.*FORECAST/FORECAST/' >>"$out"
    i=$((i + 1))
done
cat "$out"
awk '
{
    for (f = 2; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
    r = v["rate_mib_s"] " MiB/s -> " v["limit_mib"] " MiB"; e = v["error_s"] + 0; a = e < 0 ? -e : e
    n[r]++; sum[r] += e; abs[r] += a; est[r] += v["estimate_s"]; real[r] += v["real_s"]
    ach[r] += v["achieved_mib_s"]; dth[r] += v["to_death_mib_s"]; sm[r] += v["smoothed_mib_s"]
    if (!(r in alo) || v["achieved_mib_s"] + 0 < alo[r]) alo[r] = v["achieved_mib_s"] + 0
    if (!(r in ahi) || v["achieved_mib_s"] + 0 > ahi[r]) ahi[r] = v["achieved_mib_s"] + 0
    if (!(r in lo) || e < lo[r]) lo[r] = e
    if (!(r in hi) || e > hi[r]) hi[r] = e
}
END {
    printf "%-22s %4s %18s %10s %10s %10s %10s %11s %11s %14s\n", "rate -> limit", "runs", "achieved(range)", "to_death", "smoothed", "estimate", "real", "mean_err", "mean_|err|", "err_range"
    for (r in n)
        printf "%-22s %4d %5.0f (%4.0f-%4.0f) %8.0f/s %8.0f/s %9.3fs %9.3fs %+10.3fs %10.3fs  %+.3f..%+.3f\n", r, n[r], ach[r] / n[r], alo[r], ahi[r], dth[r] / n[r], sm[r] / n[r], est[r] / n[r], real[r] / n[r], sum[r] / n[r], abs[r] / n[r], lo[r], hi[r]
}' "$out" | sort -n
