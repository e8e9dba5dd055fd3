#!/usr/bin/env bash
# Shipping tests: what the .deb and the Kubernetes manifests install, checked the way a packager
# and a cluster would check them. Run by scripts/test.sh (so by CI); runnable alone.
#
#  1. release build, then man pages and completions generated from the CLI (xtask dist)
#  2. systemd-analyze verify on the unit (offline; ExecStart pointed at the built binary)
#     and the real-kernel kill-path tests pass as root with only the unit's capabilities
#  3. every man page renders with `man -l` and no groff warning
#  4. completions: bash completes the subcommands; zsh and fish parse theirs
#  5. Prometheus rules (deploy/): promtool check rules + promtool test rules
#  6. Kubernetes manifests: kubernetes-validate --strict (offline schemas from PyPI) and a
#     hand-written schema for the ServiceMonitor CRD, which that package does not ship
#  7. the .deb (cargo-deb): file list, conffiles, then install, reinstall and upgrade (a local
#     conffile edit kept), purge into a scratch root with dpkg --root: the host's own dpkg database and
#     /etc are never touched
#  8. optional (SHIP_DEBOOTSTRAP=1): the same in a debootstrapped Debian 12 chroot, with real
#     dependencies and maintainer scripts run inside the chroot
#
# Debian packages, cargo-deb and the Python validator are installed when missing; a second run
# needs no network. Under `set -o pipefail`, output is checked from variables, never with
# `producer | grep -q`: grep's early exit would SIGPIPE the producer and fail the pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n== ship: %s\n' "$*"; }
fail() { printf 'ship-test: FAIL: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
for pair in systemd:systemd-analyze man-db:man groff-base:groff zsh:zsh fish:fish prometheus:promtool \
            dpkg:dpkg-deb dpkg-dev:dpkg-shlibdeps python3:/usr/bin/python3; do
  pkg=${pair%%:*} cmd=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -e /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
# venv with pip (ensurepip): Debian splits it out of python3.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  # --no-install-recommends: prometheus is wanted for promtool only.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo-deb >/dev/null 2>&1 || { log "installing cargo-deb"; cargo install cargo-deb --locked --quiet; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------------------------------------
log "release build and generated man pages and completions"
cargo build --release --locked -p oomguard
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/oomguard"
cargo run -q --locked -p xtask -- dist "$root/dist"

# ---------------------------------------------------------------------------------------------
log "systemd-analyze verify packaging/systemd/oomguard.service"
mkdir -p "$tmp/unit"
sed "s|/usr/bin/oomguard|$bin|g" packaging/systemd/oomguard.service > "$tmp/unit/oomguard.service"
out=$(systemd-analyze verify --man=no "$tmp/unit/oomguard.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify printed warnings:\n$out"
# The settings the issue asks for, present as written (verify accepts a unit without them).
for want in 'Type=notify' 'WatchdogSec=' 'OOMScoreAdjust=-1000' 'MemoryMax=' 'LimitMEMLOCK=infinity' \
            'process_mrelease' 'CapabilityBoundingSet=CAP_KILL CAP_SYS_PTRACE CAP_IPC_LOCK CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYSLOG' \
            'ExecReload=/bin/kill -HUP $MAINPID' 'DeviceAllow=/dev/kmsg r'; do
  grep -qF -- "$want" packaging/systemd/oomguard.service || fail "unit lacks $want"
done
# Settings that would break cgroup writes or /dev/kmsg must not appear uncommented.
for bad in ProtectKernelTunables ProtectControlGroups ProtectKernelLogs PrivateDevices 'ProtectProc=invisible'; do
  if grep -E "^[[:space:]]*${bad}" packaging/systemd/oomguard.service; then fail "unit sets $bad"; fi
done
echo "unit verified"

# The capability set is the least that works: root with exactly the unit's bounding set (what
# systemd gives the daemon) passes the real-kernel kill-path tests (pidfd kills, process_mrelease,
# cgroup.kill, PSI triggers, v1 eventfds, mlockall) and reads /dev/kmsg.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
  log "the kill path under the unit's capability set only"
  caps=$(sed -n 's/^CapabilityBoundingSet=//p' packaging/systemd/oomguard.service \
         | tr ' ' '\n' | sed 's/^CAP_//' | tr 'A-Z' 'a-z' | sed 's/^/+/' | paste -sd, -)
  [ -n "$caps" ] || fail "no CapabilityBoundingSet= in the unit"
  echo "bounding set: $caps"
  cargo test -p oomguard --locked --no-run --message-format=json 2>/dev/null > "$tmp/artifacts.json"
  pick() { python3 -c '
import json, sys
want_name, want_kind = sys.argv[1], sys.argv[2]
for line in open(sys.argv[3]):
    m = json.loads(line)
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and t.get("name") == want_name and want_kind in t.get("kind", []):
        print(m["executable"])' "$1" "$2" "$tmp/artifacts.json"; }
  lib_tests=$(pick oomguard lib) real_tests=$(pick kernel_rank test)
  [ -x "$lib_tests" ] && [ -x "$real_tests" ] || fail "test binaries not found"
  setpriv --bounding-set "-all,$caps" -- grep CapEff /proc/self/status
  # The tests make throwaway cgroups below their own. A hierarchy's directories are mode 0555,
  # so that mkdir needs CAP_DAC_OVERRIDE, which the unit does not grant (the daemon never makes
  # a cgroup). So the tests run from cgroups made here first (mode 0755, owned by root), in the
  # v1 memory and the unified hierarchy, and removed at the end.
  ship_cgs=()
  for h in /sys/fs/cgroup/memory /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ -e "$h/cgroup.procs" ] && mkdir "$h/oomguard-ship-$$" 2>/dev/null; then
      ship_cgs+=("$h/oomguard-ship-$$")
    fi
  done
  leave_ship_cgs() {
    local cg
    for cg in "${ship_cgs[@]}"; do
      for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
    done
  }
  trap 'leave_ship_cgs; rm -rf "$tmp"' EXIT
  # Runs one test binary in those cgroups with only the unit's capabilities; on a failure,
  # prints the failing tests and why.
  run_capped() {
    local out rc=0
    out=$(
      for cg in "${ship_cgs[@]}"; do echo "$BASHPID" > "$cg/cgroup.procs"; done
      exec setpriv --bounding-set "-all,$caps" -- "$@" 2>&1
    ) || rc=$?
    if [ "$rc" -ne 0 ]; then
      sed -n '/^failures:$/,$p' <<<"$out" | head -n 80
      grep -B2 -A6 'panicked at' <<<"$out" | head -n 120
      fail "under the unit's capabilities: $1 exited $rc"
    fi
    tail -n 2 <<<"$out"
  }
  # Skipped here: system_trigger_2s_window_polls asserts that the machine does not stall on
  # memory for 150 ms within 2 s, which a busy CI machine sometimes does; the other PSI tests
  # arm triggers under these capabilities just the same. real_pid_reuse_is_detected forces a
  # pid reuse by writing kernel.ns_last_pid (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE): test
  # harness, not anything the daemon does. Both still run in `cargo test`.
  run_capped "$lib_tests" sense:: act:: watch::mlock:: -q \
    --skip sense::psi::tests::system_trigger_2s_window_polls \
    --skip act::pidfd::tests::real_pid_reuse_is_detected
  run_capped "$real_tests" -q
  leave_ship_cgs
  if [ "$(cat /proc/sys/kernel/dmesg_restrict)" = 1 ]; then
    said=$(setpriv --bounding-set "-all,$caps" -- "$bin" explain 2>&1 >/dev/null || true)
    grep -q 'from /dev/kmsg' <<<"$said" \
      || fail "/dev/kmsg unreadable with the unit's capabilities (dmesg_restrict=1)"
    echo "/dev/kmsg readable under dmesg_restrict=1"
  fi
fi

# ---------------------------------------------------------------------------------------------
log "man pages render without warnings"
pages=(dist/man/man1/*.1 dist/man/man5/*.5)
[ ${#pages[@]} -ge 3 ] || fail "too few man pages: ${pages[*]}"
for page in "${pages[@]}"; do
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null || true)
  [ -z "$warnings" ] || fail "$page: $warnings"
  [ -n "$(LC_ALL=C.UTF-8 MANWIDTH=80 man -E UTF-8 -l "$page" 2>/dev/null)" ] || fail "$page renders empty"
done
rendered=$(LC_ALL=C.UTF-8 man -l dist/man/man1/oomguard.1 2>/dev/null)
for section in 'EXIT STATUS' 'ENVIRONMENT' 'FILES' 'EXAMPLES' 'OOMGUARD EXPLAIN' 'OOMGUARD RANK' 'OOMGUARD DOCTOR'; do
  grep -q "^$section" <<<"$rendered" || fail "oomguard(1) lacks $section"
done
echo "${#pages[@]} pages render"

# ---------------------------------------------------------------------------------------------
log "completions"
subs=$(bash --norc --noprofile -c '
  source /usr/share/bash-completion/bash_completion
  source dist/completions/oomguard.bash
  complete -p oomguard >/dev/null
  COMP_WORDS=(oomguard ""); COMP_CWORD=1; COMP_LINE="oomguard "; COMP_POINT=${#COMP_LINE}
  _oomguard oomguard "" oomguard
  printf "%s\n" "${COMPREPLY[@]}"')
for sub in explain rank doctor; do
  grep -qx "$sub" <<<"$subs" || fail "bash completion does not offer $sub (got: $subs)"
done
flags=$(bash --norc --noprofile -c '
  source /usr/share/bash-completion/bash_completion
  source dist/completions/oomguard.bash
  COMP_WORDS=(oomguard explain --); COMP_CWORD=2; COMP_LINE="oomguard explain --"; COMP_POINT=${#COMP_LINE}
  _oomguard oomguard -- explain
  printf "%s\n" "${COMPREPLY[@]}"')
grep -qx -- "--json" <<<"$flags" || fail "bash completion does not offer explain --json (got: $flags)"
zsh -n dist/completions/_oomguard || fail "zsh cannot parse _oomguard"
fish --no-execute dist/completions/oomguard.fish || fail "fish cannot parse oomguard.fish"
fish_subs=$(fish -c "source dist/completions/oomguard.fish; complete -C 'oomguard '")
grep -q '^explain' <<<"$fish_subs" || fail "fish completion does not offer explain (got: $fish_subs)"
echo "bash, zsh and fish completions load"

# ---------------------------------------------------------------------------------------------
log "Prometheus rules"
# tests/fleet_files.rs also checks that they name only series the daemon exports.
(cd deploy/prometheus && promtool check rules oomguard-rules.yml && promtool test rules oomguard-rules.test.yml)
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' deploy/grafana/oomguard.json \
  || fail "the Grafana dashboard is not JSON"

# ---------------------------------------------------------------------------------------------
log "Kubernetes manifests"
venv="$target_dir/ship-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0' 'jsonschema' 'PyYAML'
fi
# --strict: unknown fields are errors (a typo in a securityContext would otherwise be dropped).
"$venv/bin/kubernetes-validate" --strict --quiet packaging/kubernetes/oomguard.yaml
"$venv/bin/python" scripts/servicemonitor_check.py packaging/kubernetes/servicemonitor.yaml

# ---------------------------------------------------------------------------------------------
log "the .deb"
rm -f "$target_dir"/debian/oomguard_*.deb
cargo deb -p oomguard --no-build --locked >/dev/null
deb=$(ls "$target_dir"/debian/oomguard_*.deb)
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort > "$tmp/files"
expected=(
  /usr/bin/oomguard
  /usr/lib/systemd/system/oomguard.service
  /etc/oomguard/oomguard.toml
  /etc/default/oomguard
  /usr/share/oomguard/oomguard.toml
  /usr/share/man/man1/oomguard.1.gz
  /usr/share/man/man5/oomguard.toml.5.gz
  /usr/share/bash-completion/completions/oomguard
  /usr/share/zsh/vendor-completions/_oomguard
  /usr/share/fish/vendor_completions.d/oomguard.fish
  /usr/share/oomguard/prometheus/oomguard-rules.yml
  /usr/share/oomguard/grafana/oomguard.json
  /usr/share/oomguard/kubernetes/oomguard.yaml
  /usr/share/doc/oomguard/README.md
  /usr/share/doc/oomguard/configuration.md
  /usr/share/doc/oomguard/copyright
)
for f in "${expected[@]}"; do grep -qx "$f" "$tmp/files" || fail "$deb lacks $f"; done
# One man page per visible subcommand, whatever subcommands exist now.
for page in dist/man/man1/*.1; do
  grep -qx "/usr/share/man/man1/$(basename "$page").gz" "$tmp/files" || fail "$deb lacks $(basename "$page")"
done
# Nothing outside the places a Debian package of a daemon belongs.
if grep -vE '^/(usr/bin|usr/lib/systemd/system|etc/oomguard|etc/default|usr/share/(oomguard|man|doc/oomguard|bash-completion|zsh|fish))/' "$tmp/files"; then
  fail "files outside the expected directories (above)"
fi
dpkg-deb -f "$deb" Package Version Depends
# cargo-deb derives Depends with dpkg-shlibdeps (dpkg-dev); without it the package would claim
# no dependency at all.
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || fail "Depends lacks libc6"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | sort > "$tmp/conffiles"
printf '/etc/default/oomguard\n/etc/oomguard/oomguard.toml\n' | diff - "$tmp/conffiles" || fail "conffiles differ"
echo "$(wc -l < "$tmp/files") files, conffiles as expected"

# Install, reinstall, purge into a scratch root. --force-script-chrootless runs the maintainer
# scripts on the host with DPKG_ROOT set (deb-systemd-helper honours it), since a bare root has
# no /bin/sh to chroot into; --force-depends because libc6 is not in the scratch database.
log "install, reinstall and purge in a scratch root (dpkg --root)"
sr="$tmp/root"
mkdir -p "$sr/var/lib/dpkg/info" "$sr/var/lib/dpkg/updates" "$sr/var/lib/dpkg/triggers"
touch "$sr/var/lib/dpkg/status"
sdpkg() { as_root dpkg --root="$sr" --force-script-chrootless --force-depends "$@" 2>&1 | grep -v -e 'dependency problems' -e 'depends on libc6' -e 'libc6 is not installed' || true; }
sdpkg -i "$deb"
as_root dpkg --root="$sr" -s oomguard | grep -q '^Status: install ok installed' || fail "not installed in the scratch root"
for f in "${expected[@]}"; do [ -e "$sr$f" ] || fail "installed root lacks $f"; done
[ -L "$sr/etc/systemd/system/multi-user.target.wants/oomguard.service" ] || fail "the unit was not enabled"
"$sr/usr/bin/oomguard" --version
# A local edit of a conffile survives a reinstall; run-time files exist as the daemon makes them.
echo '# local edit' >> "$sr/etc/oomguard/oomguard.toml"
mkdir -p "$sr/var/log/oomguard" "$sr/var/lib/oomguard"
echo '{}' > "$sr/var/log/oomguard/events.jsonl"
sdpkg -i "$deb"
tail -n 1 "$sr/etc/oomguard/oomguard.toml" | grep -qx '# local edit' || fail "reinstall overwrote the edited conffile"
# An upgrade (same files, next revision) runs the upgrade branches of prerm/postinst: the edited
# conffile stays, the unit stays enabled.
cargo deb -p oomguard --no-build --locked --deb-revision 2 -o "$tmp/oomguard_upgrade.deb" >/dev/null
sdpkg -i "$tmp/oomguard_upgrade.deb"
as_root dpkg --root="$sr" -s oomguard | grep -qx 'Version: .*-2' || fail "upgrade did not install revision 2"
tail -n 1 "$sr/etc/oomguard/oomguard.toml" | grep -qx '# local edit' || fail "upgrade overwrote the edited conffile"
[ -L "$sr/etc/systemd/system/multi-user.target.wants/oomguard.service" ] || fail "the upgrade disabled the unit"
sdpkg -P oomguard
if as_root dpkg --root="$sr" -s oomguard >/dev/null 2>&1; then fail "still known to dpkg after purge"; fi
left=$(find "$sr" -path "$sr/var/lib/dpkg" -prune -o \( -type f -o -type l \) -print)
[ -z "$left" ] || fail "purge left files behind:\n$left"
left=$(find "$sr" -path "$sr/var/lib/dpkg" -prune -o -name '*oomguard*' -print)
[ -z "$left" ] || fail "purge left behind:\n$left"
echo "install, enable, reinstall and upgrade (conffile kept, unit enabled), purge (nothing left): ok"

# ---------------------------------------------------------------------------------------------
if [ "${SHIP_DEBOOTSTRAP:-0}" = 1 ]; then
  log "install, reinstall and purge in a debootstrapped Debian 12 chroot"
  command -v debootstrap >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  chroot_dir="$target_dir/ship-bookworm"
  [ -x "$chroot_dir/usr/bin/dpkg" ] || as_root debootstrap --variant=minbase bookworm "$chroot_dir" http://deb.debian.org/debian >/dev/null
  as_root cp "$deb" "$chroot_dir/tmp/oomguard.deb"
  as_root chroot "$chroot_dir" sh -euc '
    dpkg -i /tmp/oomguard.deb
    test -L /etc/systemd/system/multi-user.target.wants/oomguard.service
    oomguard --version
    dpkg -i /tmp/oomguard.deb
    dpkg -P oomguard
    left=$(find / -xdev -name "*oomguard*" -not -path "/tmp/*" -not -path "/proc/*")
    [ -z "$left" ] || { echo "left behind: $left"; exit 1; }
    rm -f /tmp/oomguard.deb'
  echo "debootstrap chroot: install, reinstall, purge: ok"
fi

log "shipping tests passed"
