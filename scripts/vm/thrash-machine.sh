#!/bin/sh
# Runs inside the lab's kernel guest (`scripts/vm-test.sh thrash`): the thrash rule's MACHINE
# scope (/proc/vmstat) on an otherwise idle machine, which the shared development host cannot
# be. One dry-run daemon with `[thrash] machine = true` at the defaults and the `notify` action
# only (the memory rule's thresholds out of reach), then:
#   1. idle: nothing else runs for SECS seconds (must make 0 decisions);
#   2. one-pass: a sequential reader reads a fresh file larger than the guest's RAM once, over
#      and over for SECS seconds, each file written with O_DIRECT (never cached) and the
#      previous one deleted with its shadow entries, so no page is read twice (must make 0);
#   3. control: a second daemon at `threshold = 10` and `duration = "4s"` while a reader
#      re-reads one file larger than RAM (the whole machine thrashes): must fire, and the time
#      to its first decision is printed (the rule works at machine scope on this kernel).
# Ends with a `vm-result:` line (3 checks). SECS from the kernel command line
# (oomguard.secs=N, default 600).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp
og=/share/bin/oomguard
secs=600
for a in $(cat /proc/cmdline); do case "$a" in oomguard.secs=*) secs=${a#*=};; esac; done
pass=0 fail=0
check() { name=$1; shift; if "$@"; then echo "ok: $name"; pass=$((pass + 1)); else echo "FAIL: $name"; fail=$((fail + 1)); fi; }
mkdir -p /disk
mount -t ext4 /dev/vda /disk || { echo "vm-guest: no scratch disk at /dev/vda"; echo "vm-result: 0 passed, 3 failed, 0 skipped"; exit 0; }
ram_mib=$(awk '$1=="MemTotal:"{print int($2/1024)}' /proc/meminfo)
file_mib=$((ram_mib * 5 / 4))
echo "vm-guest: $(uname -r), ${ram_mib} MiB RAM, files of ${file_mib} MiB, ${secs} s per phase"
vm() { awk -v k="$1" '$1==k{print $2}' /proc/vmstat; }
refaults() { echo $(( $(vm workingset_refault_file) + $(vm workingset_refault_anon) )); }

start_daemon() { # name threshold duration
  cat > "/tmp/$1.toml" <<EOF
dry_run = true
[memory]
term_below = "1M"
kill_below = "512K"
[events]
log = "/tmp/$1.jsonl"
journal = false
[thrash]
enable = true
machine = true
actions = ["notify"]
$( [ -n "$2" ] && echo "threshold = $2" )
$( [ -n "$3" ] && echo "duration = \"$3\"" )
EOF
  "$og" watch --config "/tmp/$1.toml" 2> "/tmp/$1.log" &
  daemon=$!
  sleep 2
}
decisions() { grep -c "decision #" "/tmp/$1.log"; }

# 1. idle
start_daemon false "" ""
r0=$(refaults); t0=$(date +%s)
sleep "$secs"
r1=$(refaults)
idle_dec=$(decisions false)
echo "idle: ${secs} s, machine refaults $((r1 - r0)) pages, decisions $idle_dec"
check "idle machine: 0 decisions of the machine-scope thrash rule in ${secs} s ($idle_dec)" test "$idle_dec" = 0

# 2. one-pass
passes=0; t0=$(date +%s); r0=$(refaults)
while [ $(( $(date +%s) - t0 )) -lt "$secs" ]; do
  rm -f /disk/pass.bin
  dd if=/dev/zero of=/disk/pass.bin bs=1M count="$file_mib" oflag=direct status=none 2>/dev/null \
    || dd if=/dev/zero of=/disk/pass.bin bs=1M count="$file_mib" oflag=direct
  dd if=/disk/pass.bin of=/dev/null bs=1M 2>/dev/null
  passes=$((passes + 1))
done
rm -f /disk/pass.bin
sleep 12   # one more rule duration after the last pass
r1=$(refaults)
once_dec=$(( $(decisions false) - idle_dec ))
echo "one-pass: ${passes} passes of ${file_mib} MiB in $(( $(date +%s) - t0 )) s, machine refaults $((r1 - r0)) pages, decisions $once_dec"
grep "decision #" /tmp/false.log
check "one-pass reader: 0 decisions in ${secs} s ($passes passes of ${file_mib} MiB, $once_dec)" test "$once_dec" = 0
kill "$daemon"; wait "$daemon" 2>/dev/null

# 3. control: the machine thrashes
dd if=/dev/zero of=/disk/again.bin bs=1M count="$file_mib" oflag=direct status=none
start_daemon control 10 4s
sh -c 'echo 1000 > /proc/self/oom_score_adj; while :; do dd if=/disk/again.bin of=/dev/null bs=1M 2>/dev/null; done' &
reader=$!
t0=$(date +%s); r0=$(refaults)
while [ $(( $(date +%s) - t0 )) -lt 180 ] && [ "$(decisions control)" = 0 ]; do sleep 1; done
t1=$(( $(date +%s) - t0 )); r1=$(refaults)
kill "$reader"; kill "$daemon"; wait 2>/dev/null
echo "control: first decision after ${t1} s, machine refaults $((r1 - r0)) pages ($(( (r1 - r0) * 4 / 1024 / (t1 > 0 ? t1 : 1) )) MiB/s)"
grep -m3 "decision #\|thrash" /tmp/control.log
check "control: a machine that re-reads a file larger than its RAM fires the rule (threshold 10, 4 s)" \
  test "$(decisions control)" -gt 0
rm -f /disk/again.bin
echo "vm-result: $pass passed, $fail failed, 0 skipped"
