#!/bin/sh
# Runs inside the lab's kernel guest (scripts/vm/init, busybox, cgroup v2 at /sys/fs/cgroup):
# the real-kernel v2 tests of crates/oomguard/tests/kernel_v2.rs, one at a time, with skips made
# failures. Ends with a `vm-result:` line that scripts/vm-test.sh adds up.
export OOMGUARD_BIN=/share/bin/oomguard OOMGUARD_HOG=/share/bin/hog OOMGUARD_VM_OUT=/share/out
export OOMGUARD_REQUIRE_KERNEL=1 RUST_BACKTRACE=1 HOME=/tmp PATH=/bin:/sbin:/usr/bin:/usr/sbin
cd /tmp || exit 1
# The scratch ext4 disk scripts/vm-test.sh attaches (the thrash tests re-read a file on it).
mkdir -p /disk
if mount -t ext4 /dev/vda /disk; then export OOMGUARD_VM_DISK=/disk; else echo "vm-guest: no scratch disk at /dev/vda"; fi
echo "vm-guest: $(uname -r), $(cat /sys/fs/cgroup/cgroup.controllers)"
filter=$(for a in $(cat /proc/cmdline); do case "$a" in oomguard.filter=*) echo "${a#*=}";; esac; done)
/share/bin/kernel_v2 --test-threads=1 $filter > /tmp/tests.out 2>&1
rc=$?
cat /tmp/tests.out
# libtest's summary: "test result: ok. 9 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
sum=$(grep '^test result:' /tmp/tests.out | tail -1)
p=$(echo "$sum" | sed -n 's/.* \([0-9]*\) passed.*/\1/p'); f=$(echo "$sum" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
i=$(echo "$sum" | sed -n 's/.* \([0-9]*\) ignored.*/\1/p')
[ -n "$p" ] || { p=0; f=1; i=0; echo "vm-guest: no test summary (exit $rc)"; }
echo "vm-result: $p passed, $f failed, $i skipped"
