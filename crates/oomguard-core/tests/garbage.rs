//! Garbage in, clear errors out: every host parser, fed real 6.18 text truncated at every byte
//! and with bytes replaced, returns Ok or Err and never panics. A truncated memory line in
//! `status` must be an error, not a smaller number (the score would be silently wrong).

use oomguard_core::host::{cgroup, process, system, zram};

const FIXTURES: &[(&str, &[u8])] = &[
    ("meminfo", include_bytes!("fixtures/host/meminfo-6.18.txt")),
    (
        "pressure",
        include_bytes!("fixtures/host/pressure-memory-6.18.txt"),
    ),
    ("vmstat", include_bytes!("fixtures/host/vmstat-6.18.txt")),
    (
        "stat",
        include_bytes!("fixtures/host/pid-stat-comm-paren-6.18.txt"),
    ),
    (
        "status",
        include_bytes!("fixtures/host/pid-status-6.18.txt"),
    ),
    (
        "cgroup",
        include_bytes!("fixtures/host/pid-cgroup-v1-hybrid-6.18.txt"),
    ),
    (
        "oom_control",
        include_bytes!("fixtures/host/v1-memory.oom_control-6.18.txt"),
    ),
    (
        "memory.stat",
        include_bytes!("fixtures/host/v1-memory.stat-6.18.txt"),
    ),
    (
        "mm_stat",
        include_bytes!("fixtures/host/zram-mm_stat-mem_limit-6.18.txt"),
    ),
    (
        "limit",
        include_bytes!("fixtures/host/v1-memory.limit_in_bytes-6.18.txt"),
    ),
];

fn run_all(kind: &str, t: &[u8]) {
    match kind {
        "meminfo" => drop(system::parse_meminfo(t)),
        "pressure" => drop(system::parse_pressure(t)),
        "vmstat" => drop(system::parse_vmstat(t)),
        "stat" => drop(process::parse_stat(t)),
        "status" => drop(process::parse_status(t)),
        "cgroup" => drop(process::parse_cgroup(t)),
        "oom_control" => drop(cgroup::parse_v1_oom_control(t)),
        "memory.stat" => drop(cgroup::parse_memory_stat(t)),
        "mm_stat" => drop(zram::parse_mm_stat(t)),
        _ => drop(cgroup::parse_v1_limit("memory.limit_in_bytes", t)),
    }
    // Every parser sees every input too: nothing may panic on someone else's format.
    drop(system::parse_swaps(t));
    drop(process::parse_oom_score_adj(t));
    drop(process::parse_oom_score(t));
    drop(cgroup::parse_v2_events("memory.events", t));
    drop(cgroup::parse_v2_limit("memory.max", t));
    drop(cgroup::parse_v2_oom_group(t));
    drop(process::cmdline_display(t));
    drop(zram::parse_mm_stat(t));
    drop(zram::parse_disksize(t));
}

#[test]
fn truncations_and_mutations_never_panic() {
    for (kind, text) in FIXTURES {
        for cut in 0..=text.len() {
            run_all(kind, &text[..cut]);
        }
        for (i, b) in [b'x', b'-', b':', b')', b' ', 0u8, b'\n', 0xff]
            .iter()
            .enumerate()
        {
            for pos in (i..text.len()).step_by(7) {
                let mut t = text.to_vec();
                t[pos] = *b;
                run_all(kind, &t);
            }
        }
    }
}

#[test]
fn truncated_status_is_never_a_smaller_score() {
    let text = include_bytes!("fixtures/host/pid-status-6.18.txt");
    let full = process::parse_status(text).unwrap();
    for cut in 0..text.len() {
        if let Ok(s) = process::parse_status(&text[..cut]) {
            // Either the memory block is absent entirely (no mm: unkillable, not a small score)
            // or every figure equals the full text's; a cut mid-line is an error.
            if s.has_mm() {
                assert_eq!(s.rss_anon_bytes, full.rss_anon_bytes, "cut at {cut}");
                assert_eq!(s.vm_swap_bytes, full.vm_swap_bytes, "cut at {cut}");
                assert_eq!(s.vm_pte_bytes, full.vm_pte_bytes, "cut at {cut}");
            }
        }
    }
}
