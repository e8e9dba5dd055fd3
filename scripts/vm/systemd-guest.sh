# The VM lab's systemd guest (sourced by scripts/vm-test.sh, which defines $cache, $share,
# $root, fetch_kernel, build_initramfs, qemu, probe_accel, tally, log and die).
#
# A Debian bookworm rootfs made with debootstrap from Debian's packages (cached under $cache;
# rebuilt when the package list below changes), with the kernel's modules, systemd as PID 1,
# journald, earlyoom and systemd-oomd installed but disabled, and one unit that runs
# /share/guest/systemd-suite.sh (or bench-oomd.sh) at boot and powers the guest off. Each run
# boots a fresh ext4 image made from that tree, so no run sees another's leftovers.

systemd_packages="systemd,systemd-sysv,udev,kmod,dbus,procps,jq,curl,earlyoom,systemd-oomd,util-linux"

build_rootfs() { # rel -> prints the rootfs directory
  local rel=$1 dir=$cache/rootfs-bookworm
  local stamp="$systemd_packages $rel v3"
  if [ "$(cat "$dir.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "debootstrap bookworm (minbase + $systemd_packages)"
    rm -rf "$dir" "$dir.stamp"
    debootstrap --variant=minbase --include="$systemd_packages" bookworm "$dir" \
      http://deb.debian.org/debian > "$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; return 1; }
    mkdir -p "$dir/lib/modules"
    cp -a "$cache/kernels/$rel/lib/modules/$rel" "$dir/lib/modules/"
    echo oomguard-vm > "$dir/etc/hostname"
    printf 'share /share 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0\n' > "$dir/etc/fstab"
    mkdir -p "$dir/share"
    # Installed to be measured against, not to run: enabled only by the suites that use them.
    rm -f "$dir"/etc/systemd/system/multi-user.target.wants/{earlyoom,systemd-oomd}.service
    rm -f "$dir"/etc/systemd/system/dbus-org.freedesktop.oom1.service
    cat > "$dir/etc/systemd/system/oomguard-vm-suite.service" <<'EOF'
[Unit]
Description=oomguard VM lab suite
After=multi-user.target share.mount systemd-journald.service
Requires=share.mount
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
TimeoutStartSec=infinity
EnvironmentFile=/share/guest/suite.env
ExecStart=/bin/bash -c 'exec /bin/bash /share/guest/$SUITE > /share/out/$SUITE.log 2>&1'

[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/oomguard-vm-suite.service \
      "$dir/etc/systemd/system/multi-user.target.wants/oomguard-vm-suite.service"
    # No login prompt on the console (the suite's output goes to the share).
    ln -sf /dev/null "$dir/etc/systemd/system/serial-getty@ttyS0.service"
    ln -sf /dev/null "$dir/etc/systemd/system/getty@tty1.service"
    : > "$dir/etc/machine-id"
    rm -rf "$dir/var/cache/apt/archives/"*.deb
    echo "$stamp" > "$dir.stamp"
  fi
  echo "$dir"
}

# The .deb as scripts/ship-test.sh builds it (reused when it is newer than the binary).
build_deb() {
  local deb
  deb=$(ls -t target/debian/oomguard_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ] || [ target/release/oomguard -nt "$deb" ]; then
    log "building the .deb (xtask dist, cargo deb)"
    command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
    cargo run -q --locked -p xtask -- dist "$root/dist" >&2
    rm -f target/debian/oomguard_*.deb
    cargo deb -p oomguard --no-build --locked >/dev/null
    deb=$(ls target/debian/oomguard_*.deb)
  fi
  echo "$deb"
}

run_systemd_guest() { # default|all|systemd|bench
  local want=$1 rel rootfs initrd img suites=() s
  rel=$(fetch_kernel "bookworm:linux-image-amd64") || { failed=$((failed + 1)); return; }
  rootfs=$(build_rootfs "$rel") || { failed=$((failed + 1)); return; }
  cp "$(build_deb)" "$share/bin/"
  if [ "$want" = bench ] || [ "$want" = all ]; then
    gcc -O2 -Wall -o "$share/bin/hog-bench" bench/hog.c
  fi
  initrd=$(build_initramfs "$rel")
  probe_accel "$rel" "$initrd"
  case "$want" in
    bench) suites=(bench-oomd.sh) ;;
    all) suites=(systemd-suite.sh bench-oomd.sh) ;;
    *) suites=(systemd-suite.sh) ;;
  esac
  for s in "${suites[@]}"; do
    img=$cache/systemd-root.img
    rm -f "$img"
    mke2fs -q -t ext4 -L root -d "$rootfs" "$img" 3G
    echo "SUITE=$s" > "$share/guest/suite.env"
    rm -f "$share/out/$s.log"
    log "systemd guest $rel: $s"
    local t0=$SECONDS logf=$cache/console-systemd-$s.log try
    for try in 1 2 3; do
      qemu "$rel" "$initrd" systemd "$s" "${VM_SYSTEMD_TIMEOUT:-2400}" \
        -drive "file=$img,format=raw,if=virtio" > "$logf" 2>&1 || true
      [ -f "$share/out/$s.log" ] && break
      echo "vm: the systemd guest did not reach the suite (try $try): $(grep -m1 -E 'Kernel panic|Oops' "$logf" || tail -1 "$logf")" >&2
      rm -f "$img"; mke2fs -q -t ext4 -L root -d "$rootfs" "$img" 3G
    done
    if [ ! -f "$share/out/$s.log" ]; then
      echo "vm: the systemd guest wrote no $s log; console:" >&2; tail -30 "$logf" >&2
      failed=$((failed + 1)); continue
    fi
    cp "$share/out/$s.log" "$cache/"
    grep -E '^(FAIL|SKIP)' "$share/out/$s.log" >&2 || true
    grep -q 'vm-result:' "$share/out/$s.log" || { echo "vm: $s did not finish" >&2; tail -40 "$share/out/$s.log" >&2; failed=$((failed + 1)); }
    tally "$share/out/$s.log"
    [ -d "$share/out/bench" ] && { mkdir -p "$cache/bench"; cp -r "$share/out/bench/." "$cache/bench/"; }
    log "systemd guest: $s: $(grep 'vm-result:' "$share/out/$s.log" | tail -1) in $((SECONDS - t0)) s"
  done
}
