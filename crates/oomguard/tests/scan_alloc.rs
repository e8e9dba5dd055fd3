//! The scan's steady state allocates nothing: a second scan over the same processes reuses the
//! pid list, the read buffer and the output vector. Counted with a wrapping global allocator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{FakeHost, FakeProc};
use oomguard::host::scan::{ScanStats, Scanner};
use oomguard::host::ProcFs;
use std::alloc::{GlobalAlloc, Layout, System};

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not count each other's allocations. A const
    // initialiser: touching it never allocates.
    static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count() {
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

fn mine() -> usize {
    MINE.with(|c| c.get())
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_scan_allocates_nothing() {
    let h = FakeHost::new();
    for pid in 1..200 {
        h.add_proc(
            &FakeProc::new(pid, "idle")
                .rss(pid as u64 * 100)
                .adj((pid % 7) as i16 * 100),
        );
    }
    let mut scanner = Scanner::new(&ProcFs::new(h.proc_root())).unwrap();
    let mut out = Vec::new();
    let mut stats = ScanStats::default();
    scanner.scan(&mut out, &mut stats).unwrap();
    assert_eq!(out.len(), 199);
    let before = mine();
    scanner.scan(&mut out, &mut stats).unwrap();
    let after = mine();
    assert_eq!(out.len(), 199);
    assert_eq!(
        after - before,
        0,
        "steady-state scan allocated {} times",
        after - before
    );
}

/// The daemon reads each guarded cgroup on every wake-up: that reading must not allocate either
/// (the files are opened relative to a kept directory fd into a reused buffer). Also checks the
/// figures on a v1 and a v2 tree made of real kernel text.
#[test]
fn steady_state_cgroup_reading_allocates_nothing() {
    use oomguard::host::CgroupFs;
    use oomguard::watch::cgroups::{resolve, Reading};
    use oomguard_core::size::Amount;
    let dir = tempfile::tempdir().unwrap();
    // v1: a memory hierarchy with one child (6.18's memory.stat keys, trimmed).
    let v1 = dir.path().join("v1");
    let cg = v1.join("memory/app");
    std::fs::create_dir_all(&cg).unwrap();
    std::fs::write(v1.join("memory/memory.usage_in_bytes"), "1000000000\n").unwrap();
    std::fs::write(cg.join("memory.usage_in_bytes"), "104857600\n").unwrap();
    std::fs::write(cg.join("memory.limit_in_bytes"), "134217728\n").unwrap();
    std::fs::write(
        cg.join("memory.stat"),
        "cache 10485760\nrss 94371840\ninactive_file 8388608\nhierarchical_memory_limit 134217728\ntotal_inactive_file 8388608\n",
    )
    .unwrap();
    // v2: memory.high below memory.max is the effective limit.
    let v2 = dir.path().join("v2");
    let cg2 = v2.join("svc");
    std::fs::create_dir_all(&cg2).unwrap();
    std::fs::write(v2.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    std::fs::write(cg2.join("memory.current"), "209715200\n").unwrap();
    std::fs::write(cg2.join("memory.max"), "536870912\n").unwrap();
    std::fs::write(cg2.join("memory.high"), "268435456\n").unwrap();
    std::fs::write(
        cg2.join("memory.stat"),
        "anon 188743680\nfile 20971520\ninactive_file 10485760\n",
    )
    .unwrap();
    for (root, path, want) in [
        (
            v1,
            "/app",
            Reading {
                usage_bytes: 104857600,
                working_set_bytes: 96468992,
                limit_bytes: Some(134217728),
            },
        ),
        (
            v2,
            "/svc",
            Reading {
                usage_bytes: 209715200,
                working_set_bytes: 199229440,
                limit_bytes: Some(268435456),
            },
        ),
    ] {
        let cgfs = CgroupFs::new(&root);
        let w = resolve(&cgfs, &[(path.to_owned(), Amount::Percent(5.0))]).unwrap();
        assert_eq!(w.len(), 1, "{}", root.display());
        let mut buf = Vec::with_capacity(16 * 1024);
        assert_eq!(w[0].read_fast(&cgfs, &mut buf).unwrap(), want);
        let before = mine();
        for _ in 0..100 {
            w[0].read_fast(&cgfs, &mut buf).unwrap();
        }
        let after = mine();
        assert_eq!(
            after - before,
            0,
            "cgroup reading allocated {} times",
            after - before
        );
    }
}

/// The daemon's whole steady iteration (`Daemon::step`: meminfo and PSI, a guarded cgroup, the
/// decisions, the forecast's estimate and gauges, the flight recorder's samples, the tell
/// side's deadlines) allocates nothing once started, on a fake machine with nothing to act on.
/// The recorder samples every 10 ms into a ring of 100, so the 200 steps 11 ms apart fill it
/// and wrap it.
#[test]
fn steady_state_daemon_step_allocates_nothing() {
    use oomguard::act::actuator::{RecordingActuator, Simulated};
    use oomguard::host::CgroupFs;
    use oomguard::rank::Roots;
    use oomguard::watch::{self, Daemon, Setup, WatchArgs};
    let h = FakeHost::new();
    h.meminfo_kb("MemAvailable", 800 << 10);
    for pid in 100..140 {
        h.add_proc(&FakeProc::new(pid, "idle").rss(1000).cgroup("/app"));
    }
    h.add_memcg_v2("/app", 100 << 20, Some(512 << 20), 0, &[100]);
    let dir = h.root().to_path_buf();
    let config = dir.join("oomguard.toml");
    std::fs::write(
        &config,
        format!(
            "[memory]\nterm_below = \"1M\"\nkill_below = \"512K\"\n\n[events]\nlog = \"{}\"\njournal = false\n\n[recorder]\nspan = \"1s\"\ninterval = \"10ms\"\n\n[[cgroups]]\npath = \"/app\"\nheadroom = \"16M\"\n",
            dir.join("events.jsonl").display()
        ),
    )
    .unwrap();
    let args = WatchArgs {
        config: Some(config),
        ..Default::default()
    };
    let (cfg, origin) = watch::effective_config(&args).unwrap();
    let (rec, _calls) = RecordingActuator::shared(Simulated::ExitsOnTerm);
    let setup = Setup {
        roots: Roots {
            proc: ProcFs::new(h.proc_root()),
            cgroup: CgroupFs::new(h.cgroup_root()),
            passwd: dir.join("passwd"),
        },
        actuator: Box::new(rec),
        protect_self: false,
        kmsg: None,
    };
    let mut d = Daemon::new(cfg, origin, args, None, setup).unwrap();
    // The first iterations arm the cgroup watch and rescan once.
    for _ in 0..5 {
        d.step();
    }
    let before = mine();
    for _ in 0..200 {
        d.step();
        std::thread::sleep(std::time::Duration::from_millis(11));
    }
    let after = mine();
    assert_eq!(d.counts(), (0, 0));
    assert_eq!(
        d.recorded_samples(),
        100,
        "the recorder sampled and its ring is full"
    );
    assert_eq!(
        after - before,
        0,
        "the steady daemon iteration allocated {} times",
        after - before
    );
}
