#!/usr/bin/env bash
# The whole test suite, with everything it needs installed first, on a fresh Debian 12 machine
# with Rust: formatting and lints, unit tests, integration tests that run the real binary, the
# real-kernel tests (memory cgroups, pidfd kills, PSI triggers, /dev/kmsg; they skip with a reason
# when not root or when the machine lacks the feature), and a short fuzz smoke run.
#
# Usage: scripts/test.sh            (FUZZ_SECONDS=0 skips the fuzz smoke run, SHIP_TESTS=0 the
#                                   packaging tests of scripts/ship-test.sh, VM_TESTS=0 the VM
#                                   lab of scripts/vm-test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Debian packages the tests use. Installed only when missing, so a second run needs no network.
need=()
# chromium and python3-html5lib: the HTML report test (crates/oomguard/tests/explain_html.rs)
# renders `explain --html` in headless Chromium and parses it strictly with html5lib.
# prometheus: promtool for the alert-rule tests and the server for the end-to-end scrape test.
for pair in gzip:gzip python3:python3 time:/usr/bin/time chromium:/usr/bin/chromium prometheus:promtool; do
  pkg=${pair%%:*} cmd=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
/usr/bin/python3 -c 'import html5lib' >/dev/null 2>&1 || need+=(python3-html5lib)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
fi

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
# The HTML report test saves its screenshots (laptop and phone size) here.
mkdir -p target/test-artifacts
cargo test --workspace --locked

# The real-kernel tests create their cgroups below their own and must remove every one.
if [ -d /sys/fs/cgroup/memory ]; then
  left=$(find /sys/fs/cgroup/memory -mindepth 1 -type d -name 'oomguard*' 2>/dev/null || true)
  if [ -n "$left" ]; then
    printf 'cgroups left behind by the tests:\n%s\n' "$left" >&2
    exit 1
  fi
fi

fuzz_seconds=${FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" -gt 0 ] && cargo +nightly --version >/dev/null 2>&1; then
  log "fuzz smoke run: ${fuzz_seconds}s of the OOM log parser from the kept corpus"
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
  # Run on a copy of the corpus so the checked-in one stays as committed.
  corpus=$(mktemp -d)
  cp -r fuzz/corpus/oomlog/. "$corpus/"
  (cd fuzz && cargo +nightly fuzz run oomlog "$corpus" -- \
      -max_total_time="$fuzz_seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 2>&1 | tail -n 3)
  rm -rf "$corpus"
else
  log "fuzz smoke run skipped (no nightly toolchain, or FUZZ_SECONDS=0)"
fi
# The shipped artefacts: systemd unit, man pages, completions, alert rules, Kubernetes
# manifests, and the .deb installed and purged in a scratch root (SHIP_TESTS=0 skips).
if [ "${SHIP_TESTS:-1}" != 0 ]; then
  bash scripts/ship-test.sh
fi
# cgroup v2 and systemd in qemu guests (scripts/vm-test.sh; VM_TESTS=0 skips).
if [ "${VM_TESTS:-1}" != 0 ]; then
  log "VM lab: cgroup v2 and systemd in qemu guests (scripts/vm-test.sh)"
  bash scripts/vm-test.sh
fi
log "all tests passed"
