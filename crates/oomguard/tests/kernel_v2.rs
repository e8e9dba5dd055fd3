//! Real-kernel tests on cgroup v2 (the VM lab's kernel guest, scripts/vm-test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn v2_memory_controller_is_there() {
    let c = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
    assert!(c.split_whitespace().any(|w| w == "memory"), "{c}");
}
