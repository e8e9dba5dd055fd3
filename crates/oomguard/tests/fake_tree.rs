//! Fake-tree tests: `/proc` and cgroupfs built in a tempdir from real 6.18 kernel text, for the
//! scan, `rank` and every `doctor` finding (each shown firing and not firing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use common::{FakeHost, FakeProc};
use oomguard::doctor::{audit, zram_check, Report, Severity};
use oomguard::host::scan::{ScanStats, Scanner};
use oomguard::host::{CgroupFs, ProcFs, ZramFs};
use oomguard::rank::{rank, Roots, Scope};
use oomguard_core::badness::Unkillable;

fn roots(h: &FakeHost) -> Roots {
    Roots {
        proc: ProcFs::new(h.proc_root()),
        cgroup: CgroupFs::new(h.cgroup_root()),
        passwd: h.root().join("passwd"),
    }
}

/// A machine with init, a few services and a kernel thread.
fn machine() -> FakeHost {
    let h = FakeHost::new();
    h.write("passwd", "root:x:0:0:root:/root:/bin/sh\n");
    let mut kt = FakeProc::new(2, "kthreadd");
    kt.kthread = true;
    h.add_proc(&kt);
    h.add_proc(&FakeProc::new(1, "systemd").rss(8000));
    h.add_proc(&FakeProc::new(100, "sshd").rss(4000).adj(-900));
    h.add_proc(&FakeProc::new(150, "systemd-journal").rss(9000).adj(-250));
    h.add_proc(&FakeProc::new(200, "earlyoom").rss(1000).adj(-100));
    h.add_proc(&FakeProc::new(300, "app").rss(400_000).cgroup("/app.slice"));
    h.add_proc(
        &FakeProc::new(400, "batch")
            .rss(100_000)
            .adj(500)
            .cgroup("/app.slice"),
    );
    h.add_proc(&FakeProc::new(500, "db").rss(800_000).adj(-1000));
    h.add_memcg_v2("/app.slice", 600 << 20, Some(2 << 30), 0, &[300, 400]);
    h
}

#[test]
fn scan_excludes_kernel_threads_and_counts_vanished_and_malformed() {
    let h = machine();
    // A process whose directory is listed but whose files are gone (exited mid-scan).
    h.write("proc/600/stat", "");
    // A process with a garbled status line.
    let mut bad = FakeProc::new(700, "garbled");
    bad.rss_anon_kib = 1;
    h.add_proc(&bad);
    let status = std::fs::read_to_string(h.proc_root().join("700/status")).unwrap();
    h.write(
        "proc/700/status",
        &status.replace("VmSwap:\t", "VmSwap:\tx"),
    );
    let mut scanner = Scanner::new(&ProcFs::new(h.proc_root())).unwrap();
    let mut out = Vec::new();
    let mut stats = ScanStats::default();
    scanner.scan(&mut out, &mut stats).unwrap();
    let pids: Vec<i32> = out.iter().map(|s| s.pid).collect();
    assert!(!pids.contains(&2), "kernel thread excluded");
    assert_eq!(stats.kernel_threads, 1);
    assert_eq!(stats.vanished, 1);
    assert_eq!(stats.malformed, 1);
    let msg = &stats.first_errors[0];
    assert!(
        msg.contains("700/status") && msg.contains("VmSwap") && msg.contains("line"),
        "{msg}"
    );
    assert_eq!(out.len(), 7);
    // Steady state: a second scan reuses the buffers and gives the same answer.
    scanner.scan(&mut out, &mut stats).unwrap();
    assert_eq!(out.len(), 7);
}

#[test]
fn rank_global_order_and_unkillable_reasons() {
    let h = machine();
    let r = rank(&roots(&h), None, None).unwrap();
    let order: Vec<i32> = r.candidates.iter().map(|c| c.pid).collect();
    // batch: 100 MB + 500 adj beats app's 400 MB; db is -1000; init never.
    assert_eq!(&order[..2], &[400, 300]);
    let db = r.candidates.iter().find(|c| c.pid == 500).unwrap();
    assert_eq!(db.unkillable, Some(Unkillable::OomScoreAdjMin));
    assert_eq!(db.oom_score, 0);
    let init = r.candidates.iter().find(|c| c.pid == 1).unwrap();
    assert_eq!(init.unkillable, Some(Unkillable::GlobalInit));
    assert!(r.candidates.iter().all(|c| c.pid != 2));
    assert_eq!(r.candidates[0].cgroup.as_deref(), Some("/app.slice"));
    assert_eq!(r.candidates[0].user, "root");
    assert!(matches!(r.scope, Scope::Global));
    // The kernel's own oom_score of 0 for an otherwise eligible task: vfork or reaped.
    h.write("proc/300/oom_score", "0\n");
    h.write("proc/400/oom_score", "1000\n");
    let r = rank(&roots(&h), None, None).unwrap();
    let app = r.candidates.iter().find(|c| c.pid == 300).unwrap();
    assert_eq!(app.unkillable, Some(Unkillable::KernelReportsIneligible));
    assert_eq!(app.oom_score, 0);
    assert_eq!(
        r.candidates[1].pid, 200,
        "app drops out of the killable ranks"
    );
    // totalpages = (MemTotal + 4 GiB swap) / 4 KiB.
    assert_eq!(r.totalpages, (24_684_092 + (4 << 20)) / 4);
}

#[test]
fn rank_memcg_uses_the_limit_as_totalpages() {
    let h = machine();
    let r = rank(&roots(&h), Some("/app.slice"), None).unwrap();
    // mem_cgroup_get_max(): memory.max plus min(memory.swap.max, total swap) = 2 GiB + 4 GiB.
    assert_eq!(r.totalpages, (6u64 << 30) / 4096);
    let order: Vec<i32> = r.candidates.iter().map(|c| c.pid).collect();
    assert_eq!(order, vec![400, 300]);
    // batch: (100000 + 2000 kB)/4 + 48/4 pages + 500 * (1572864 / 1000).
    assert_eq!(
        r.candidates[0].badness_points,
        Some(25_500 + 12 + 500 * 1572)
    );
    // Without swap accounting headroom (swap.max 0) the limit alone counts.
    h.write("cgroup/app.slice/memory.swap.max", "0\n");
    let r = rank(&roots(&h), Some("/app.slice"), None).unwrap();
    assert_eq!(r.totalpages, (2u64 << 30) / 4096);
    assert!(rank(&roots(&h), Some("/nope"), None).is_err());
}

#[test]
fn rank_cli_json_and_table() {
    let h = machine();
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["rank", "--json", "-n", "3", "--proc-root"])
        .arg(h.proc_root())
        .arg("--cgroup-root")
        .arg(h.cgroup_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(v["candidates"][0]["pid"], 400);
    assert_eq!(v["candidates"][0]["adjusted"], serde_json::Value::Null);
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["rank", "--bytes", "--proc-root"])
        .arg(h.proc_root())
        .arg("--cgroup-root")
        .arg(h.cgroup_root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("never: oom_score_adj -1000"), "{text}");
    assert!(
        text.contains("409600000") || text.contains("411648000"),
        "{text}"
    );
}

#[test]
fn garbage_meminfo_is_a_clear_error_naming_the_file() {
    let h = machine();
    h.write("proc/meminfo", "MemTotal:   lots kB\n");
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["rank", "--proc-root"])
        .arg(h.proc_root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("meminfo line 1") && err.contains("MemTotal"),
        "{err}"
    );
}

// ---- doctor ---------------------------------------------------------------------------------

fn doctor(h: &FakeHost) -> Report {
    audit(
        &ProcFs::new(h.proc_root()),
        &CgroupFs::new(h.cgroup_root()),
        &[],
    )
}

fn severity(r: &Report, id: &str) -> Severity {
    r.by_id(id)
        .map(|f| f.severity)
        .max()
        .unwrap_or_else(|| panic!("no finding {id}: {r:#?}"))
}

#[test]
fn doctor_healthy_machine_is_clean() {
    let r = doctor(&machine());
    for f in &r.findings {
        assert!(f.severity <= Severity::Ok, "unexpected: {f:#?}");
    }
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    assert_eq!(r.exit_code(), 0);
}

/// Each finding: a mutation of the healthy machine that makes it fire, with its severity.
#[test]
fn doctor_each_finding_fires() {
    type Mutation = fn(&FakeHost);
    let cases: Vec<(&str, Severity, Mutation)> = vec![
        ("overcommit", Severity::Warning, |h| {
            h.sysctl("overcommit_memory", "1")
        }),
        ("overcommit", Severity::Warning, |h| {
            h.sysctl("overcommit_memory", "0");
            h.meminfo_kb("Committed_AS", 40 << 20);
        }),
        ("overcommit", Severity::Warning, |h| {
            h.sysctl("overcommit_memory", "2");
            h.meminfo_kb("CommitLimit", 1 << 20);
            h.meminfo_kb("Committed_AS", 1 << 20);
        }),
        ("swap", Severity::Warning, |h| {
            h.meminfo_kb("SwapTotal", 0);
            h.meminfo_kb("SwapFree", 0);
        }),
        ("swap", Severity::Info, |h| {
            h.meminfo_kb("SwapTotal", 64 << 10)
        }),
        ("panic_on_oom", Severity::Critical, |h| {
            h.sysctl("panic_on_oom", "1")
        }),
        ("panic_on_oom", Severity::Critical, |h| {
            h.sysctl("panic_on_oom", "2")
        }),
        ("oom_kill_allocating_task", Severity::Warning, |h| {
            h.sysctl("oom_kill_allocating_task", "1")
        }),
        ("oom_dump_tasks", Severity::Warning, |h| {
            h.sysctl("oom_dump_tasks", "0")
        }),
        ("psi", Severity::Warning, |h| h.remove("proc/pressure")),
        ("cgroup", Severity::Warning, |h| {
            h.write("cgroup/cgroup.controllers", "cpu io pids\n")
        }),
        ("memcg_near_limit", Severity::Warning, |h| {
            h.add_memcg_v2("/full.slice", 950 << 20, Some(1 << 30), 0, &[])
        }),
        ("memcg_oom_kills", Severity::Warning, |h| {
            h.add_memcg_v2("/killed.slice", 1 << 20, Some(1 << 30), 3, &[])
        }),
        ("protected_large", Severity::Warning, |h| {
            h.add_proc(&FakeProc::new(500, "db").rss(8_000_000).adj(-1000))
        }),
        ("critical_unprotected", Severity::Warning, |h| {
            h.add_proc(&FakeProc::new(100, "sshd").rss(4000).adj(0))
        }),
        // comm is truncated to 15 bytes: "systemd-journald" shows as "systemd-journal".
        ("critical_unprotected", Severity::Warning, |h| {
            h.add_proc(&FakeProc::new(150, "systemd-journal").rss(4000).adj(0))
        }),
        ("userspace_oom_killers", Severity::Warning, |h| {
            h.add_proc(&FakeProc::new(210, "systemd-oomd").rss(1000))
        }),
        ("userspace_oom_killers", Severity::Info, |h| {
            h.remove("proc/200")
        }),
    ];
    for (id, sev, mutate) in cases {
        let h = machine();
        assert!(
            severity(&doctor(&h), id) <= Severity::Ok,
            "{id} fires on the healthy machine"
        );
        mutate(&h);
        let r = doctor(&h);
        assert_eq!(
            severity(&r, id),
            sev,
            "{id}: {:#?}",
            r.by_id(id).collect::<Vec<_>>()
        );
        let f = r.by_id(id).find(|f| f.severity == sev).unwrap();
        assert!(f.fix.is_some(), "{id} has no fix");
        if !matches!(id, "userspace_oom_killers") {
            assert!(!f.evidence.is_empty(), "{id} has no evidence");
        }
    }
}

#[test]
fn doctor_v1_oom_control_and_missing_inputs() {
    let h = machine();
    // Hybrid host: v1 memory hierarchy with a memcg that had OOM kills.
    h.write("cgroup/memory/memory.usage_in_bytes", "1\n");
    let d = "cgroup/memory/job";
    h.write(&format!("{d}/memory.usage_in_bytes"), "1048576\n");
    h.write(
        &format!("{d}/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    h.write(&format!("{d}/memory.failcnt"), "0\n");
    h.write(
        &format!("{d}/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    h.write(&format!("{d}/memory.stat"), common::V1_STAT_6_18);
    let r = doctor(&h);
    let f = r.by_id("memcg_oom_kills").next().unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.evidence[0].file.ends_with("job/memory.oom_control"),
        "{f:#?}"
    );
    // A sysctl the kernel lacks degrades the report instead of failing it.
    h.remove("proc/sys/vm/oom_dump_tasks");
    let r = doctor(&h);
    assert!(r.by_id("oom_dump_tasks").next().is_none());
    assert!(
        r.missing.iter().any(|m| m.contains("oom_dump_tasks")),
        "{:?}",
        r.missing
    );
    // Garbage in a sysctl names the file.
    h.sysctl("panic_on_oom", "yes");
    let r = doctor(&h);
    assert!(r
        .missing
        .iter()
        .any(|m| m.contains("panic_on_oom") && m.contains("not a number")));
}

#[test]
fn doctor_cli_exit_codes() {
    let h = machine();
    let run = |h: &FakeHost| {
        Command::cargo_bin("oomguard")
            .unwrap()
            .args(["doctor", "--proc-root"])
            .arg(h.proc_root())
            .arg("--cgroup-root")
            .arg(h.cgroup_root())
            // The fake tree has no kernel log; the host's own (which real-kernel tests fill
            // with memcg OOMs) must not decide this test's exit code.
            .args(["--kernel-log", "none"])
            .output()
            .unwrap()
    };
    assert_eq!(run(&h).status.code(), Some(0));
    h.sysctl("oom_dump_tasks", "0");
    assert_eq!(run(&h).status.code(), Some(1));
    h.sysctl("panic_on_oom", "1");
    let out = run(&h);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[CRITICAL] vm.panic_on_oom=1"));
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["doctor", "--json", "--proc-root"])
        .arg(h.proc_root())
        .arg("--cgroup-root")
        .arg(h.cgroup_root())
        .args(["--kernel-log", "none"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "critical"));
}

#[test]
fn doctor_real_run_on_this_machine() {
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .arg("doctor")
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        (0..=2).contains(&code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("worst:"));
}

// ---- doctor: zram ---------------------------------------------------------------------------

/// A zram device under `h/sys/block/NAME` from real 6.18 files: a 64 MiB device hot-added on
/// the development host and written with dd (16 MiB of text; 64 MiB of random bytes; 32 MiB of
/// random bytes with mem_limit 4 MiB, where dd failed with EIO at 4 MiB).
fn zram_dev(h: &FakeHost, name: &str, disksize: &str, mm_stat: &str) {
    let fx = |f: &str| {
        std::fs::read_to_string(format!(
            "{}/../oomguard-core/tests/fixtures/host/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    h.write(&format!("sys/block/{name}/disksize"), &fx(disksize));
    h.write(&format!("sys/block/{name}/mm_stat"), &fx(mm_stat));
}

fn zram_report(h: &FakeHost) -> Report {
    let mut r = Report::default();
    let m = ProcFs::new(h.proc_root()).read_meminfo().ok();
    zram_check(&mut r, &ZramFs::new(h.root().join("sys")), m.as_ref(), 95.0);
    r
}

#[test]
fn doctor_zram_full_fires_and_room_does_not() {
    let h = machine();
    // No zram at all, and an unconfigured device: no finding.
    assert_eq!(zram_report(&h).findings.len(), 0);
    zram_dev(
        &h,
        "zram0",
        "zram-disksize-unset-6.18.txt",
        "zram-mm_stat-unset-6.18.txt",
    );
    assert_eq!(zram_report(&h).findings.len(), 0);
    // A quarter full: ok.
    zram_dev(
        &h,
        "zram1",
        "zram-disksize-64M-6.18.txt",
        "zram-mm_stat-16M-text-6.18.txt",
    );
    let r = zram_report(&h);
    assert_eq!(severity(&r, "zram"), Severity::Ok);
    assert!(
        r.findings[0].title.contains("zram1 has room (25%"),
        "{r:#?}"
    );
    // Full by disksize: critical.
    zram_dev(
        &h,
        "zram1",
        "zram-disksize-64M-6.18.txt",
        "zram-mm_stat-full-random-6.18.txt",
    );
    let r = zram_report(&h);
    assert_eq!(severity(&r, "zram"), Severity::Critical);
    assert!(
        r.findings[0].title.contains("100% full (of its disksize)"),
        "{r:#?}"
    );
    // Logically 1/16 full, but at its mem_limit: critical, although SwapFree shows room.
    h.meminfo_kb("SwapTotal", 65_536);
    h.meminfo_kb("SwapFree", 61_440);
    zram_dev(
        &h,
        "zram1",
        "zram-disksize-64M-6.18.txt",
        "zram-mm_stat-mem_limit-6.18.txt",
    );
    let r = zram_report(&h);
    assert_eq!(severity(&r, "zram"), Severity::Critical);
    let f = &r.findings[0];
    assert!(f.title.contains("of its mem_limit in RAM"), "{f:#?}");
    assert!(
        f.evidence.iter().any(|e| e.value.contains("SwapFree 60")),
        "{f:#?}"
    );
    // Garbled mm_stat: listed as missing with file and field, no finding, no panic.
    h.write("sys/block/zram1/mm_stat", "1 2 x 4 5\n");
    let r = zram_report(&h);
    assert!(r.findings.is_empty());
    assert!(
        r.missing[0].contains("zram1/mm_stat") && r.missing[0].contains("mem_used_total"),
        "{:?}",
        r.missing
    );
    // Through the CLI with --sys-root: exit code 2 for the full device.
    zram_dev(
        &h,
        "zram1",
        "zram-disksize-64M-6.18.txt",
        "zram-mm_stat-full-random-6.18.txt",
    );
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["doctor", "--proc-root"])
        .arg(h.proc_root())
        .arg("--cgroup-root")
        .arg(h.cgroup_root())
        .arg("--sys-root")
        .arg(h.root().join("sys"))
        .args(["--kernel-log", "none"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[CRITICAL] zram1 is 100% full"), "{stdout}");
    assert_eq!(out.status.code(), Some(2), "{stdout}");
}
