#!/bin/bash
# Runs inside the VM lab's systemd guest (scripts/vm-test.sh bench): oomguard vs systemd-oomd vs
# earlyoom vs the kernel alone, one at a time, on the same hog (bench/hog.c) in a transient
# service og-bench-N.service inside og.slice with MemoryMax=256M and no swap, at 256 MiB/s,
# 1 GiB/s and as fast as one thread can; REPEATS runs per cell. A bystander service sits in the
# same slice: a kill of it is collateral. Each run's record (the hog's mapped file) and one TSV
# line go to /share/out/bench; bench/oomd_report.py makes the table on the host.
#
# Configuration of each tool, at its documented most eager:
#   oomguard      [[cgroups]] path = "/og.slice/og-bench-*.service", headroom 24M, term_grace 500ms
#   systemd-oomd  og.slice: ManagedOOMMemoryPressure=kill, ManagedOOMMemoryPressureLimit=10%,
#                 ManagedOOMSwap=kill; oomd.conf DefaultMemoryPressureDurationSec=1s (the
#                 documented minimum: "0, or at least 1 second"); there is no swap in the guest,
#                 so ManagedOOMSwap= never applies
#   earlyoom      Debian's defaults (-m 10 -s 10 -r 3600): system-wide only, it cannot see a
#                 cgroup's limit
set -u
out=/share/out/bench
mkdir -p "$out"
repeats=${REPEATS:-5}
rates=${RATES:-"256 1024 0"}
pass=0 fail=0
echo "vm-guest: $(uname -r), systemd $(systemctl --version | head -1 | cut -d' ' -f2)"
DEBIAN_FRONTEND=noninteractive apt-get install -y /share/bin/oomguard_*.deb >/dev/null 2>&1 \
  || { echo "FAIL: apt install"; echo "vm-result: 0 passed, 1 failed, 0 skipped"; exit 0; }
systemctl stop oomguard

cat > /etc/oomguard/oomguard.toml <<'EOF'
[memory]
term_below = "1M"
kill_below = "512K"
[kill]
term_grace = "500ms"
[[cgroups]]
path = "/og.slice/og-bench-*.service"
headroom = "24M"
EOF
mkdir -p /etc/systemd/oomd.conf.d
printf '[OOM]\nDefaultMemoryPressureDurationSec=1s\n' > /etc/systemd/oomd.conf.d/bench.conf
cat > /etc/systemd/system/og.slice <<'EOF'
[Slice]
ManagedOOMMemoryPressure=kill
ManagedOOMMemoryPressureLimit=10%
ManagedOOMSwap=kill
EOF
systemctl daemon-reload
limit=$((256 << 20))
thr_kib=$(((limit - (24 << 20)) / 1024))
{
  echo "kernel $(uname -r); systemd $(systemctl --version | head -1 | cut -d' ' -f2); earlyoom $(earlyoom -v 2>&1 | head -1)"
  echo "oomguard $(oomguard --version 2>&1 | head -1); $(nproc) vCPUs; MemTotal $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB; TCG"
} > "$out/env"
: > "$out/runs.tsv"

n=0
for tool in oomguard systemd-oomd earlyoom kernel; do
  systemctl stop oomguard systemd-oomd earlyoom 2>/dev/null
  [ "$tool" != kernel ] && systemctl start "$tool"
  sleep 3
  if [ "$tool" != kernel ] && [ "$(systemctl is-active "$tool")" != active ]; then
    echo "FAIL: $tool did not start"; fail=$((fail + 1)); continue
  fi
  [ "$tool" = systemd-oomd ] && oomctl > "$out/oomctl.txt" 2>&1
  for rate in $rates; do
    for i in $(seq "$repeats"); do
      n=$((n + 1))
      unit=og-bench-$n
      systemd-run -q --unit=og-bystander-$n --slice=og.slice -p MemoryMax=64M /share/bin/hog --mib 16 --adj 0 --hold 600
      since=$(date '+%Y-%m-%d %H:%M:%S')
      sleep 1
      cg=/sys/fs/cgroup/og.slice/$unit.service
      # The record is a file the hog maps MAP_SHARED: on the rootfs, not on the 9p share (which
      # cannot map it shared: every record came back empty there), copied out afterwards.
      rec=/var/tmp/bench/$tool-$rate-$i.rec
      mkdir -p /var/tmp/bench
      systemd-run -q --wait --unit=$unit --slice=og.slice -p MemoryMax=256M -p MemorySwapMax=0 \
        /share/bin/hog-bench run "$rec" "$rate" 512 "$cg/memory.current" "$thr_kib" "$cg/cgroup.procs" \
        >> "$out/hog.log" 2>&1
      sleep 2
      cp "$rec" "$out/" 2>/dev/null
      hogpid=$(od -An -t d8 -j 8 -N 8 "$rec" 2>/dev/null | tr -d ' ')
      if [ -z "$hogpid" ] || [ "$hogpid" = 0 ]; then
        echo "FAIL: run $n: the hog wrote no record (see hog.log)"; fail=$((fail + 1))
      fi
      killer=none
      if journalctl -k --since "$since" --no-pager | grep -q "oom_memcg=/og.slice/$unit.service"; then killer=kernel
      elif journalctl -u oomguard --since "$since" -o cat --no-pager | grep -q "victim pid $hogpid "; then killer=oomguard
      elif journalctl -u systemd-oomd --since "$since" -o cat --no-pager | grep -q "og-bench-$n.service"; then killer=systemd-oomd
      elif journalctl -u earlyoom --since "$since" -o cat --no-pager | grep -q "$hogpid"; then killer=earlyoom
      fi
      bystander=$(systemctl is-active og-bystander-$n)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rate" "$i" "$killer" "$bystander" "$(basename "$rec")" >> "$out/runs.tsv"
      echo "run $n: $tool rate=$rate #$i: killed by $killer; bystander $bystander"
      systemctl stop og-bystander-$n 2>/dev/null; systemctl reset-failed "$unit" og-bystander-$n 2>/dev/null
    done
  done
done
journalctl -u systemd-oomd -o cat --no-pager > "$out/systemd-oomd.journal"
journalctl -u oomguard -o cat --no-pager > "$out/oomguard.journal"
[ -s "$out/runs.tsv" ] && pass=$((pass + 1))
echo "vm-result: $pass passed, $fail failed, 0 skipped"
