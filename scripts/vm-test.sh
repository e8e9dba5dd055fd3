#!/usr/bin/env bash
# The VM lab: oomguard on real cgroup v2 and under a real systemd, in qemu guests.
#
# This machine's kernel has cgroup v1 memory and no systemd PID 1, which is not where users run
# oomguard. This script builds oomguard and its VM test binaries, fetches Debian's kernels (and,
# for the systemd guest, a Debian rootfs made with debootstrap) from Debian's packages, boots
# guests with qemu and runs the suites inside:
#   - the kernel guest (fast): a busybox initramfs, cgroup v2 mounted with the memory controller,
#     the test binary crates/oomguard/tests/kernel_v2.rs run from a 9p share; once per kernel of
#     the matrix (bullseye's 5.10, bookworm's 6.1 and bookworm-backports' 6.12 by default);
#   - the systemd guest: Debian bookworm with systemd as PID 1 and journald, oomguard's .deb
#     installed with apt, scripts/vm/systemd-suite.sh run by a unit at boot.
# It ends with `vm: N passed, M failed` and exits 0 only if M = 0 and nothing was skipped.
#
# Usage: scripts/vm-test.sh [kernel|systemd|bench|thrash|all]    (default: all but bench, thrash)
#   VM_KERNELS   space-separated "suite:package" (default: bullseye's 5.10, bookworm's 6.1 and
#                bookworm-backports' 6.12 linux-image-amd64; buster's 4.19 is no longer on
#                Debian's mirror, so no kernel of the 4.17-5.8 badness era can be had here)
#   VM_CACHE     downloads and images (default target/vm, under the build directory)
#   VM_ACCEL     kvm or tcg (default: probe KVM with a short boot, fall back to TCG)
#   VM_FILTER    a test-name filter passed to the kernel guest's test binary
# Needs root (debootstrap, apt) and Debian's packages (installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-default}
cache=${VM_CACHE:-$root/target/vm}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
kernels=${VM_KERNELS:-"bullseye:linux-image-amd64 bookworm:linux-image-amd64 bookworm-backports:linux-image-amd64"}
log() { printf '\n== vm: %s\n' "$*" >&2; }
die() { printf 'vm: %s\n' "$*" >&2; echo "vm: 0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, apt, the guests' images)"

# ---------------------------------------------------------------- host packages
need=()
for pair in qemu-system-x86:qemu-system-x86_64 busybox-static:/bin/busybox kmod:depmod \
            xz-utils:xz cpio:cpio debootstrap:debootstrap e2fsprogs:mke2fs; do
  command -v "${pair#*:}" >/dev/null 2>&1 || need+=("${pair%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A private apt configuration: bookworm, its updates, bookworm-backports and bullseye, with its
# own lists and cache under $cache, so the host's sources are left as they are.
aptdir=$cache/apt
mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
cat > "$aptdir/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
deb http://deb.debian.org/debian bullseye main
EOF
apt_o=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir" -o "Dir::Cache::archives=$aptdir/archives"
       -o APT::Sandbox::User=root)
if [ -z "$(find "$aptdir/lists" -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] \
   || ! cmp -s "$aptdir/sources.list" "$aptdir/sources.list.done"; then
  log "apt lists (bookworm, -updates, -security, -backports, bullseye)"
  apt-get "${apt_o[@]}" update -qq
  cp "$aptdir/sources.list" "$aptdir/sources.list.done"
fi

# Downloads package NAME (or NAME/SUITE) into its own folder under $aptdir/debs (two suites'
# packages of the same name must not be confused); prints the .deb's path.
fetch_deb() {
  local d=$aptdir/debs/${1//\//_}
  rm -rf "$d"; mkdir -p "$d"
  (cd "$d" && apt-get "${apt_o[@]}" download -qq "$1" >/dev/null 2>&1) || return 1
  ls "$d"/*.deb | head -1
}

# ---------------------------------------------------------------- kernels
# Resolves "suite:linux-image-amd64" to the real image package, extracts it under
# $cache/kernels/RELEASE and runs depmod there; prints RELEASE.
fetch_kernel() {
  local suite=${1%%:*} pkg=${1#*:} meta image rel dir
  meta=$(fetch_deb "$pkg/$suite") || { echo "vm: cannot download $pkg from $suite" >&2; return 1; }
  image=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | grep '^linux-image-' | head -1)
  [ -n "$image" ] || image=$pkg
  rel=${image#linux-image-}
  dir=$cache/kernels/$rel
  if [ ! -f "$dir/boot/vmlinuz-$rel" ]; then
    local deb
    deb=$(fetch_deb "$image/$suite" || fetch_deb "$image") || { echo "vm: cannot download $image" >&2; return 1; }
    rm -rf "$dir"; mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
    depmod -b "$dir" "$rel"
  fi
  echo "$rel"
}

# Module files (paths below lib/modules/REL) for NAMEs, dependencies first, each once.
module_closure() {
  local rel=$1; shift
  local dep=$cache/kernels/$rel/lib/modules/$rel/modules.dep
  awk -v want="$*" '
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[w[i]] = 1 }
    { key = $1; sub(":$", "", key); deps[key] = ""; for (i = 2; i <= NF; i++) deps[key] = deps[key] " " $i
      base = key; sub(".*/", "", base); sub("\\.ko(\\.xz|\\.zst)?$", "", base); gsub("-", "_", base); byname[base] = key }
    function visit(k,   d, m, i) { if (k in seen) return; seen[k] = 1; m = split(deps[k], d, " ")
      for (i = m; i >= 1; i--) visit(d[i]); print k }
    END { for (i = 1; i <= n; i++) { b = w[i]; gsub("-", "_", b); if (b in byname) visit(byname[b]) } }' "$dep"
}

# ---------------------------------------------------------------- initramfs
# One per kernel: busybox, /init, the modules (decompressed: busybox insmod reads plain .ko),
# and the host's shared libraries that the test binaries need (the guests run the host's
# glibc binaries directly).
build_initramfs() {
  local rel=$1 out=$cache/initramfs-$rel.cpio.gz
  local stage=$cache/stage-$rel
  rm -rf "$stage"; mkdir -p "$stage"/{bin,sbin,modules,proc,sys,dev,tmp,run,share,newroot,etc,lib64}
  cp /bin/busybox "$stage/bin/busybox"
  cp scripts/vm/init "$stage/init"; chmod 755 "$stage/init"
  local kmods=$cache/kernels/$rel/lib/modules/$rel m n=0
  : > "$stage/modules/order"
  for m in $(module_closure "$rel" virtio_pci virtio_blk crc32c_generic crc32c_intel ext4 9pnet_virtio 9p); do
    n=$((n + 1))
    case "$m" in
      *.xz) xz -dc "$kmods/$m" > "$stage/modules/$n.ko" ;;
      *.zst) zstd -dqc "$kmods/$m" > "$stage/modules/$n.ko" ;;
      *) cp "$kmods/$m" "$stage/modules/$n.ko" ;;
    esac
    echo "$n.ko" >> "$stage/modules/order"
  done
  # Libraries: everything ldd names for the binaries the guest runs from the share.
  local b lib
  for b in "$share/bin/"*; do
    ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true
  done | sort -u | while read -r lib; do
    mkdir -p "$stage$(dirname "$lib")"; cp -L "$lib" "$stage$lib"
  done
  echo "root:x:0:0:root:/:/bin/sh" > "$stage/etc/passwd"
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
  rm -rf "$stage"
  echo "$out"
}

# ---------------------------------------------------------------- qemu
accel=${VM_ACCEL:-}
qemu() { # rel initrd mode suite timeout [extra qemu args...]
  local rel=$1 initrd=$2 mode=$3 suite=$4 limit=$5; shift 5
  local kernel=$cache/kernels/$rel/boot/vmlinuz-$rel
  local a=(-accel tcg,thread=multi -cpu max)
  [ "$accel" = kvm ] && a=(-accel kvm -cpu host)
  timeout -s KILL "$limit" qemu-system-x86_64 "${a[@]}" -smp 2 -m "${VM_MEM_MIB:-2048}" \
    -nographic -no-reboot -nodefaults -serial stdio \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 oops=panic loglevel=4 oomguard.mode=$mode oomguard.suite=$suite${VM_FILTER:+ oomguard.filter=$VM_FILTER} ${VM_APPEND:-}" \
    -virtfs "local,path=$share,mount_tag=share,security_model=none,id=share" \
    "$@"
}
probe_accel() { # rel initrd
  [ -n "$accel" ] && return 0
  accel=tcg
  if [ -c /dev/kvm ]; then
    # A KVM guest hung after decompression on this kind of machine: a short boot tells.
    local out
    out=$(accel=kvm qemu "$1" "$2" probe none 30 2>&1 || true)
    if grep -q oomguard-vm-alive <<<"$out"; then accel=kvm; fi
  fi
  log "accelerator: $accel$([ "$accel" = tcg ] && echo ' (KVM did not boot a guest within 30 s, or /dev/kvm is missing)')"
}

# ---------------------------------------------------------------- build
share=$cache/share
rm -rf "$share"; mkdir -p "$share/bin" "$share/guest" "$share/out"
log "building oomguard (release) and the VM test binaries"
cargo build --release --locked -p oomguard --bin oomguard
cp target/release/oomguard "$share/bin/oomguard"
tbin=$(cargo test --locked -p oomguard --features vm-lab --test kernel_v2 --no-run --message-format=json 2>/dev/null \
  | grep '"name":"kernel_v2"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$tbin" ] || die "the kernel_v2 test binary did not build (cargo test -p oomguard --features vm-lab --test kernel_v2 --no-run)"
cp "$tbin" "$share/bin/kernel_v2"
cargo build --locked -p oomguard --example hog
cp target/debug/examples/hog "$share/bin/hog"
cp scripts/vm/*.sh "$share/guest/"

passed=0 failed=0 skipped=0
tally() { # a suite's log: its "result: N passed, M failed, K skipped" lines
  local p f s
  while read -r p f s; do
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  done < <(sed -n 's/.*vm-result: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped.*/\1 \2 \3/p' "$1")
}

run_kernel_suite() {
  local spec rel initrd logf
  for spec in $kernels; do
    rel=$(fetch_kernel "$spec") || { failed=$((failed + 1)); continue; }
    initrd=$(build_initramfs "$rel")
    probe_accel "$rel" "$initrd"
    log "kernel guest $rel ($spec): kernel-suite.sh"
    logf=$cache/console-kernel-$rel.log
    local t0=$SECONDS
    local suite_log=$share/out/kernel-suite.sh.$rel.log try
    rm -f "$suite_log"
    # A scratch ext4 disk for the thrash tests (page cache that can be evicted and re-read:
    # the guest's tmpfs cannot); made fresh for each boot, removed after.
    local disk=$cache/disk-$rel.img
    for try in 1 2 3; do
      rm -f "$disk"; truncate -s 2G "$disk"; mke2fs -q -t ext4 -F "$disk"
      qemu "$rel" "$initrd" kernel kernel-suite.sh "${VM_KERNEL_TIMEOUT:-1500}" \
        -drive "file=$disk,if=virtio,format=raw,cache=unsafe" > "$logf" 2>&1 || true
      [ -f "$suite_log" ] && break
      # Multi-threaded TCG now and then oopses in early boot while the kernel patches its own
      # text (int3 in sched_clock_cpu, seen with 6.12): a boot that never reached the suite is
      # tried again, and said so; a suite that ran is never re-run.
      echo "vm: the $rel guest did not reach the suite (try $try): $(grep -m1 -E 'Kernel panic|Oops' "$logf" || tail -1 "$logf")" >&2
    done
    rm -f "$disk"
    if [ ! -f "$suite_log" ]; then
      echo "vm: the $rel guest wrote no suite log; console:" >&2; tail -30 "$logf" >&2
      failed=$((failed + 1)); continue
    fi
    cp "$suite_log" "$cache/"
    # Reports the guest's kernel wrote (tests/fixtures/explain/vm is made from these).
    if [ -d "$share/out/reports" ]; then mkdir -p "$cache/reports"; cp -r "$share/out/reports/." "$cache/reports/"; fi
    [ -f "$share/out/rank-equality.txt" ] && cat "$share/out/rank-equality.txt" >> "$cache/rank-equality.txt"
    if [ -f "$share/out/thrash-steps.txt" ]; then
      cat "$share/out/thrash-steps.txt" >> "$cache/thrash-steps.txt"; rm -f "$share/out/thrash-steps.txt"
    fi
    grep -E '^(test |vm-|SKIP|---- |thread )' "$suite_log" | grep -v ' ok$' | head -100 >&2 || true
    grep -q 'vm-result:' "$suite_log" || { echo "vm: $rel: the suite did not finish" >&2; tail -40 "$suite_log" >&2; failed=$((failed + 1)); }
    tally "$suite_log"
    log "kernel guest $rel: $(grep 'vm-result:' "$suite_log" | tail -1) in $((SECONDS - t0)) s"
  done
}

# The thrash rule's machine scope over long idle and one-pass runs (a benchmark, not in CI):
# the first kernel of the matrix, 1 GiB of RAM so the files can be larger than it, a 4 GiB disk.
run_thrash_bench() {
  local spec rel initrd secs=${VM_THRASH_SECS:-600}
  spec=${kernels%% *}
  rel=$(fetch_kernel "$spec") || { failed=$((failed + 1)); return; }
  initrd=$(build_initramfs "$rel")
  probe_accel "$rel" "$initrd"
  log "kernel guest $rel ($spec): thrash-machine.sh, ${secs} s per phase"
  local disk=$cache/disk-thrash.img suite_log=$share/out/thrash-machine.sh.$rel.log
  rm -f "$disk" "$suite_log"; truncate -s 4G "$disk"; mke2fs -q -t ext4 -F "$disk"
  VM_MEM_MIB=${VM_MEM_MIB:-1024} VM_APPEND="oomguard.secs=$secs ${VM_APPEND:-}" \
    qemu "$rel" "$initrd" kernel thrash-machine.sh $((secs * 3 + 1200)) \
    -drive "file=$disk,if=virtio,format=raw,cache=unsafe" > "$cache/console-thrash-$rel.log" 2>&1 || true
  rm -f "$disk"
  [ -f "$suite_log" ] || { echo "vm: no suite log; console:" >&2; tail -30 "$cache/console-thrash-$rel.log" >&2; failed=$((failed + 1)); return; }
  cp "$suite_log" "$cache/"
  cat "$suite_log" >&2
  tally "$suite_log"
}

case "$what" in
  kernel|default|all) run_kernel_suite ;;
  thrash) run_thrash_bench ;;
esac
if [ "$what" = systemd ] || [ "$what" = default ] || [ "$what" = all ] || [ "$what" = bench ]; then
  # shellcheck source=scripts/vm/systemd-guest.sh
  . scripts/vm/systemd-guest.sh
  run_systemd_guest "$what"
fi

[ "$skipped" -eq 0 ] || { echo "vm: $skipped tests skipped inside the guests (a skip is a failure here)" >&2; failed=$((failed + skipped)); }
echo "vm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
