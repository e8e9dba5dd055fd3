#!/usr/bin/env bash
# Regenerates crates/oomguard/link/hot-symbols.txt: the functions `oomguard watch` runs once
# start-up is over (the rehearsed decision and the idle loop), which crates/oomguard/build.rs
# hands to the linker to place side by side (see the reasons there).
#
# Builds the release binary with its linker map (OOMGUARD_LINK_MAP), puts a uprobe on every
# function, runs the daemon idle twice for SECONDS (flags only; the shipped config under a
# systemd-like notify socket) and keeps what was entered after start-up's pages were shed
# (bench/hot_symbols.py). Then rebuilds with the new order, checks it against the page faults
# of idle runs (perf; bench/hot_faults.py adds what the uprobes missed) and prints where the
# hot functions landed. Needs root (uprobes, tracefs in a private mount namespace); takes ~5 minutes (the
# kernel removes uprobes one RCU grace period at a time). Never kills anything: the thresholds
# are the defaults and the only candidates are two `sleep`s of its own.
#
# Usage: bench/hot_symbols.sh [SECONDS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
out=bench/out/hot-symbols
mkdir -p "$out"
list=crates/oomguard/link/hot-symbols.txt

OOMGUARD_LINK_MAP="$PWD/$out/oomguard.map" cargo build --release --locked --quiet --bin oomguard
cp target/release/oomguard "$out/oomguard"
unshare -m --propagation private python3 bench/hot_symbols.py \
  "$out/oomguard" "$out/oomguard.map" "$out/hot-symbols.txt" "$seconds"
mkdir -p "$(dirname "$list")"
cp "$out/hot-symbols.txt" "$list"

# Rebuild with the new list; then check it against the page faults of real idle runs (flags
# only; the shipped config) and add what the uprobes missed, until nothing is added.
check_faults() {
  sleep 3600 & local parent=$!
  local cfg
  for cfg in "" "--config packaging/oomguard.toml"; do
    # shellcheck disable=SC2086 # $cfg: no flag or two words
    timeout -s INT 12 perf record -q -e page-faults -c 1 -d -o "$out/faults-${#cfg}.data" -- \
      target/release/oomguard watch $cfg --mem-min 10% --mem-kill 5% \
      --candidates-parent "$parent" --event-log "$out/events.jsonl" > /dev/null 2>&1 || true
  done
  kill "$parent"
  python3 bench/hot_faults.py "$out/oomguard.map" "$list" "$out"/faults-*.data
}
for round in 1 2 3; do
  OOMGUARD_LINK_MAP="$PWD/$out/oomguard.map" cargo build --release --locked --quiet --bin oomguard
  echo "page-fault check, round $round:"
  check_faults | tee "$out/faults.txt"
  grep -q '^0 added' "$out/faults.txt" && break
done
python3 - "$out/oomguard.map" "$list" <<'PY'
import re, sys
pat = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S*\(\.text\.(.+)\)$")
pos = {}
for line in open(sys.argv[1]):
    m = pat.match(line)
    if m:
        pos[re.sub(r"^(unlikely|hot|startup|exit|split)\.", "", m.group(3))] = (
            int(m.group(1), 16), int(m.group(2), 16))
hot = [l.strip() for l in open(sys.argv[2]) if l.strip()]
found = [pos[h] for h in hot if h in pos]
lo, hi = min(a for a, _ in found), max(a + s for a, s in found)
print(f"{len(found)} of {len(hot)} listed functions in the binary, "
      f"{sum(s for _, s in found)} bytes, placed at 0x{lo:x}-0x{hi:x} ({(hi - lo) >> 10} KiB)")
PY
# The map build and a plain build link the same code; leave a plain one behind.
cargo build --release --locked --quiet --bin oomguard
echo "wrote $list"
