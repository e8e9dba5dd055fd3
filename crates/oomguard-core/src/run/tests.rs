use super::*;
use crate::event::EventKind;

#[test]
fn backoff_ranges() {
    assert_eq!(
        parse_backoff("100ms..2s"),
        Ok(BackoffRange {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2)
        })
    );
    assert!(parse_backoff("2s..1s").is_err());
    assert!(parse_backoff("1s").is_err());
    let e = parse_backoff("1s..forever").unwrap_err();
    assert!(
        e.to_string().contains("duration \"forever\": "),
        "names the bad part: {e}"
    );
}

#[test]
fn percents_and_names() {
    assert_eq!(parse_percent("80"), Ok(80));
    assert_eq!(parse_percent("80%"), Ok(80));
    assert!(parse_percent("0").is_err());
    assert!(parse_percent("101").is_err());
    assert!(parse_percent("x").is_err());
    assert!(valid_name("web-1.api_x"));
    for bad in ["", ".hidden", "a/b", "..", "sp ace", &"x".repeat(65)] {
        assert!(!valid_name(bad), "{bad:?}");
    }
    assert_eq!(default_name("/usr/bin/python3"), "python3");
    assert_eq!(default_name("./my prog"), "my_prog");
    assert_eq!(default_name(".x"), "x.x");
    assert!(valid_name(&default_name(&"é".repeat(100))));
}

/// `/proc/self/mounts` of this project's test VM (kernel 6.18): v1 controllers plus a unified
/// hierarchy without the memory controller.
const MOUNTS_HYBRID: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,nosuid,nodev,noexec,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0
";
const SELF_HYBRID: &str = "\
9:name=systemd:/
4:memory:/process_api/11aeada7f06c1402d986564a05b363f0
1:cpu:/
0::/
";
/// A systemd host on cgroup v2 only.
const MOUNTS_V2: &str = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n";
const SELF_V2: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";

#[test]
fn hierarchy_choice() {
    let m = parse_cgroup_mounts(MOUNTS_HYBRID);
    assert_eq!(m.unified.as_deref(), Some("/sys/fs/cgroup/unified"));
    assert_eq!(m.memory_v1.as_deref(), Some("/sys/fs/cgroup/memory"));
    // The unified hierarchy here lists no memory controller: v1, and the reason is kept.
    let c = choose_hierarchy(&m, SELF_HYBRID, Some("")).unwrap();
    assert_eq!(c.version, CgroupVersion::V1);
    assert_eq!(c.own_path, "/process_api/11aeada7f06c1402d986564a05b363f0");
    assert!(c
        .v2_skipped
        .unwrap()
        .contains("memory controller is not available in cgroup v2"));
    // The same host with memory on v2: v2 wins.
    let c = choose_hierarchy(&m, SELF_HYBRID, Some("cpu io memory pids\n")).unwrap();
    assert_eq!(c.version, CgroupVersion::V2);
    assert_eq!(c.own_path, "/");

    let m = parse_cgroup_mounts(MOUNTS_V2);
    assert_eq!(m.memory_v1, None);
    let c = choose_hierarchy(
        &m,
        SELF_V2,
        Some("cpuset cpu io memory hugetlb pids rdma misc"),
    )
    .unwrap();
    assert_eq!(c.version, CgroupVersion::V2);
    assert_eq!(c.mount, "/sys/fs/cgroup");
    assert_eq!(c.own_path, "/user.slice/user-1000.slice/session-2.scope");
    // v2 without memory and no v1: a clear error naming what is missing.
    let e = choose_hierarchy(&m, SELF_V2, Some("cpu pids")).unwrap_err();
    assert!(e.contains("memory controller is not available"), "{e}");
    assert!(e.contains("no cgroup v1 memory hierarchy"), "{e}");
    let e = choose_hierarchy(&CgroupMounts::default(), "", None).unwrap_err();
    assert!(e.contains("neither"), "{e}");
}

#[test]
fn restart_policy_table() {
    let oom = Cause::KernelOom { report: None };
    let ok = Cause::Exited { code: 0 };
    let fail = Cause::Exited { code: 3 };
    let segv = Cause::Signaled {
        signal: 11,
        core_dumped: false,
    };
    use RestartPolicy::*;
    let table = [
        (Never, [false, false, false, false]),
        (OnOom, [true, false, false, false]),
        (OnFailure, [true, false, true, true]),
        (Always, [true, true, true, true]),
    ];
    for (policy, want) in table {
        let got = [&oom, &ok, &fail, &segv].map(|c| policy.restarts_after(c));
        assert_eq!(got, want, "{policy:?}");
    }
}

#[test]
fn backoff_doubles_caps_and_resets_after_a_healthy_run() {
    let range = BackoffRange {
        min: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };
    let mut b = Backoff::new(range, Duration::from_secs(10));
    let short = Duration::from_millis(50);
    let delays: Vec<u128> = (0..6).map(|_| b.after_death(short).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(b.failures(), 6);
    // A healthy run resets: the next delay is the minimum again.
    assert_eq!(b.after_death(Duration::from_secs(10)).as_millis(), 100);
    assert_eq!(b.after_death(short).as_millis(), 200);
    // Very many failures neither overflow nor exceed the cap.
    for _ in 0..100 {
        assert!(b.after_death(short) <= range.max);
    }
}

#[test]
fn warn_fires_once_per_crossing() {
    let mut w = WarnTracker::new(64 * MIB, 50);
    assert_eq!(w.level_bytes, 32 * MIB);
    assert_eq!(w.rearm_bytes, 32 * MIB - (64 * MIB / 20));
    let readings = [10, 20, 33, 40, 33, 31, 40, 29, 20, 35, 36, 64, 10];
    let fired: Vec<bool> = readings.iter().map(|&m| w.observe(m * MIB)).collect();
    // Up at 33 (fires), hovering at 31..40 (no re-arm: 31 > 28.8), down at 29 (> 28.8, still
    // not), 20 re-arms, 35 fires again.
    assert_eq!(
        fired,
        [false, false, true, false, false, false, false, false, false, true, false, false, false]
    );
}

fn cand(pid: i32, rss_mib: u64, adj: i64, start: u64) -> GuardCandidate {
    GuardCandidate {
        pid,
        start_time_ticks: start,
        comm: format!("p{pid}"),
        rss_bytes: rss_mib * MIB,
        swap_bytes: 0,
        pgtables_bytes: 0,
        oom_score_adj: adj,
        cap_sys_admin: false,
    }
}

#[test]
fn guard_ranking_every_pair() {
    let limit = 128 * MIB;
    // Ordered from most to least killable.
    let ordered = [
        cand(1, 10, 1000, 5),   // 2560 + 32768 pages
        cand(2, 100, 0, 5),     // 25600
        cand(3, 60, 0, 9),      // 15360, younger
        cand(4, 60, 0, 8),      // 15360, older
        cand(5, 90, -500, 5),   // 23040 - 16384
        cand(6, 120, -1000, 5), // never
    ];
    for i in 0..ordered.len() {
        for j in i + 1..ordered.len() {
            let pair = [ordered[j].clone(), ordered[i].clone()];
            let v = choose_victim(Era::Signed59, &pair, limit, 4096).map(|c| c.pid);
            let expect = if ordered[i].oom_score_adj <= -1000 {
                Some(ordered[j].pid)
            } else {
                Some(ordered[i].pid)
            };
            assert_eq!(v, expect, "{} vs {}", ordered[i].pid, ordered[j].pid);
        }
    }
    assert_eq!(
        choose_victim(Era::Signed59, &[cand(6, 1, -1000, 1)], limit, 4096),
        None
    );
    assert_eq!(guard_level(128 * MIB, 16 * MIB), 112 * MIB);
}

fn kernel_kill(pid: i64) -> OomEvent {
    let mut ev = OomEvent::new(EventKind::Kill);
    ev.pid = Some(pid);
    ev.comm = Some("python3".into());
    ev.oom_memcg = Some("/process_api/x/oomguard-hog".into());
    ev.memcg_limit_kb = Some(65536);
    ev.memcg_usage_kb = Some(65536);
    ev.anon_rss_kb = Some(61_440);
    ev.file_rss_kb = Some(2_048);
    ev.shmem_rss_kb = Some(0);
    ev
}

fn evidence<'a>(
    status: WaitStatus,
    delta: Option<u64>,
    reports: &'a [OomEvent],
    guard: &'a [OomEvent],
) -> DeathEvidence<'a> {
    DeathEvidence {
        pid: 42,
        status,
        oom_kills_delta: delta,
        kernel_reports: reports,
        guard_kills: guard,
        kmsg_followed: true,
    }
}

const KILL: WaitStatus = WaitStatus::Signaled {
    signal: 9,
    core_dumped: false,
};

#[test]
fn classification() {
    let ours = [kernel_kill(42)];
    let other = [kernel_kill(43)];
    let cg = CgroupFacts {
        path: "/process_api/x/oomguard-hog",
        limit_bytes: Some(64 * MIB),
    };
    // The report names the main pid.
    let c = classify(&evidence(KILL, Some(1), &ours, &[]));
    assert!(matches!(c, Cause::KernelOom { report: Some(_) }));
    assert_eq!(
        explain(&c, &cg, &ours),
        "killed by the kernel OOM killer: cgroup /process_api/x/oomguard-hog reached its 64.0 MiB \
         limit; RSS at death 62.0 MiB (anon 60.0 MiB, file 2.0 MiB)"
    );
    // Counter rose, no report at all (kmsg lost it): still the kernel, said so.
    let c = classify(&evidence(KILL, Some(1), &[], &[]));
    assert_eq!(c, Cause::KernelOom { report: None });
    assert!(explain(&c, &cg, &[]).contains("not seen in /dev/kmsg"));
    // SIGKILL while the counter did not move: someone else's SIGKILL.
    let c = classify(&evidence(KILL, Some(0), &[], &[]));
    assert_eq!(explain(&c, &cg, &[]), "killed by SIGKILL");
    // SIGKILL, but the only report names another process: not this one's OOM.
    let c = classify(&evidence(KILL, Some(1), &other, &[]));
    assert_eq!(
        explain(&c, &cg, &other),
        "killed by SIGKILL; also OOM-killed in its cgroup during this run: pid 43 (python3)"
    );
    // A shell wrapper exiting 137 after its child was OOM-killed: an exit, with the kill noted.
    let c = classify(&evidence(WaitStatus::Exited(137), Some(1), &other, &[]));
    assert_eq!(c, Cause::Exited { code: 137 });
    assert!(explain(&c, &cg, &other).starts_with("exited with status 137; also OOM-killed"));
    // Exit 3 and SIGSEGV are never OOMs, whatever the counters say.
    let c = classify(&evidence(WaitStatus::Exited(3), Some(0), &[], &[]));
    assert_eq!(explain(&c, &cg, &[]), "exited with status 3");
    let segv = WaitStatus::Signaled {
        signal: 11,
        core_dumped: true,
    };
    let c = classify(&evidence(segv, Some(0), &[], &[]));
    assert!(!c.is_oom());
    assert_eq!(explain(&c, &cg, &[]), "killed by SIGSEGV (core dumped)");
    // Our own guard kill wins over a counter.
    let mut g = kernel_kill(42);
    g.source = crate::event::Source::Oomguard;
    let guard = [g];
    let c = classify(&evidence(KILL, Some(0), &[], &guard));
    assert_eq!(c.tag(), "oomguard");
    assert!(explain(&c, &cg, &[]).starts_with(
        "killed by oomguard (--guard): cgroup /process_api/x/oomguard-hog used 64.0 MiB of its 64.0 MiB limit; RSS at death"
    ));
}

#[test]
fn statuses_and_signal_names() {
    assert_eq!(WaitStatus::Exited(3).shell_status(), 3);
    assert_eq!(KILL.shell_status(), 137);
    assert_eq!(
        WaitStatus::Signaled {
            signal: 15,
            core_dumped: false
        }
        .shell_status(),
        143
    );
    assert_eq!(signal_name(11), "SIGSEGV");
    assert_eq!(signal_name(0), "signal 0");
    assert_eq!(signal_name(40), "signal 40");
}

#[test]
fn status_memory() {
    // /proc/PID/status of a python3 hog on 6.18 (abridged, field order as printed).
    let text = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t   70000 kB\n\
                VmRSS:\t   62000 kB\nRssAnon:\t   60000 kB\nRssFile:\t    2000 kB\n\
                RssShmem:\t       0 kB\nVmPTE:\t     160 kB\nVmSwap:\t       0 kB\n";
    let m = parse_status_memory(text);
    assert_eq!(m.name, "python3");
    assert_eq!(m.rss_anon_bytes, 60000 * KIB);
    assert_eq!(m.rss_bytes(), 62000 * KIB);
    assert_eq!(m.pgtables_bytes, 160 * KIB);
    assert_eq!(parse_status_memory("Name:\tkthreadd\n").rss_bytes(), 0);
}
