//! Real-kernel tests: oomguard's scores against the running kernel's. They need root and a v1
//! memory cgroup (this CI VM has both); elsewhere they print why they skip and pass.
//!
//! Safety: every allocating process runs in a throwaway memory cgroup below ours with a hard
//! limit, caps its own allocation, and uses a high oom_score_adj; all are killed by pid and the
//! cgroup removed at the end (see `common::TestCgroup`).

mod common;

use common::{real_kernel_skip_reason, TestCgroup};
use oomguard::host::scan::{Sampled, Scanner};
use oomguard::host::{page_size_bytes, ProcFs, ReadError};
use oomguard::rank::{rank, Roots};
use oomguard_core::badness::{self, Era, KernelVersion};
use std::time::{Duration, Instant};

macro_rules! skip_unless_real {
    () => {
        if let Some(why) = real_kernel_skip_reason() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

#[allow(clippy::unwrap_used)] // test helper
fn era() -> Era {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    Era::for_version(KernelVersion::parse(&rel).unwrap()).unwrap()
}

/// Every process's computed `/proc/PID/oom_score` equals the kernel's. A mismatch is accepted
/// only as a race, proven by re-reading: the process's inputs or its oom_score changed between
/// reads and a later read agrees.
#[test]
fn every_process_display_score_equals_kernel_oom_score() {
    skip_unless_real!();
    let mut cg = TestCgroup::new("oomguard-score", 1 << 30);
    // Non-hogs (idle interpreters, ~9 MiB) across the adj range the kernel lets root set.
    for adj in [0, 1, 333, 500, 666, 999, 1000] {
        cg.spawn_hog(adj, 0, 0.0, true);
    }
    // Hogs: capped, adj 1000, inside the 1 GiB memcg.
    for mib in [40, 150, 300] {
        cg.spawn_hog(1000, mib, 0.0, true);
    }
    let era = era();
    let procfs = ProcFs::default();
    let meminfo = procfs.read_meminfo().unwrap();
    let ps = page_size_bytes();
    let tp = badness::global_totalpages(
        meminfo.mem_total_bytes.unwrap(),
        meminfo.swap_total_bytes.unwrap(),
        ps,
    );
    let mut scanner = Scanner::new(&procfs).unwrap();
    let mut pids = Vec::new();
    procfs.open_root().unwrap().list_pids(&mut pids).unwrap();
    let (mut equal, mut raced, mut vanished, mut kthreads) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let mut distinct = std::collections::BTreeSet::new();
    for pid in pids {
        let mut attempt = 0;
        loop {
            let computed = match scanner.sample(pid) {
                Ok(Sampled::Process(s)) => {
                    badness::oom_score_display(era, badness::badness(era, &s.facts(true), tp), tp)
                }
                Ok(Sampled::KernelThread) => 0,
                Err(ReadError::Vanished { .. }) => {
                    vanished += 1;
                    break;
                }
                Err(e) => panic!("pid {pid}: {e}"),
            };
            let kernel = match scanner.open_pid(pid).and_then(|d| {
                let root = std::path::PathBuf::from("/proc");
                d.read_oom_score(&root, scanner.buf())
            }) {
                Ok(k) => k,
                Err(ReadError::Vanished { .. }) => {
                    vanished += 1;
                    break;
                }
                Err(e) => panic!("pid {pid}: {e}"),
            };
            if computed == kernel {
                if attempt == 0 {
                    equal += 1;
                } else {
                    raced += 1;
                }
                if matches!(scanner.sample(pid), Ok(Sampled::KernelThread)) {
                    kthreads += 1;
                }
                distinct.insert(kernel);
                break;
            }
            attempt += 1;
            if attempt == 5 {
                mismatches.push(format!("pid {pid}: computed {computed}, kernel {kernel}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "oom_score equality: {equal} equal at first read, {raced} equal after re-read (race), \
         {vanished} vanished, {} persistent mismatches; {kthreads} kernel threads (score 0); \
         distinct scores seen: {distinct:?}",
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(equal >= 10);
    assert!(
        distinct.len() >= 4,
        "the test processes should spread the scores: {distinct:?}"
    );
}

/// A real v1 memcg OOM: oomguard's `rank --cgroup` prediction (computed before the OOM) names
/// the process the kernel then kills. The candidates are arranged so the adjustment, not the
/// size, decides: the largest process has adj 960, a slightly smaller one adj 1000.
#[test]
fn memcg_oom_victim_matches_prediction() {
    skip_unless_real!();
    let limit: u64 = 400 << 20;
    let mut cg = TestCgroup::new("oomguard-memcg-oom", limit);
    let _idle0 = cg.spawn_hog(0, 0, 0.0, true);
    let _idle500 = cg.spawn_hog(500, 0, 0.0, true);
    let big = cg.spawn_hog(960, 100, 0.0, true);
    let expected = cg.spawn_hog(1000, 92, 0.0, true);
    let _small = cg.spawn_hog(1000, 60, 0.0, true);
    // Fill to ~12 MiB below the limit with small fillers (each well below the candidates), so
    // the trigger stays small. Each filler costs ~13 MiB of interpreter on top of its chunk.
    loop {
        let usage: u64 = cg.read("memory.usage_in_bytes").trim().parse().unwrap();
        let room_mib = limit.saturating_sub(usage) >> 20;
        if room_mib < 12 + 14 + 4 {
            break;
        }
        let chunk = (room_mib - 12 - 14).min(30);
        cg.spawn_hog(1000, chunk, 0.0, true);
    }

    let roots = Roots::default();
    let ranking = rank(&roots, Some(&cg.rel), None).unwrap();
    let top: Vec<(i32, Option<i64>, u64)> = ranking
        .candidates
        .iter()
        .map(|c| (c.pid, c.badness_points, c.rss_bytes >> 20))
        .collect();
    eprintln!(
        "totalpages {} ranking (pid, points, rss MiB): {top:?}",
        ranking.totalpages
    );
    assert_eq!(ranking.totalpages, limit / page_size_bytes());
    let predicted = ranking.candidates[0].pid;
    let largest = ranking
        .candidates
        .iter()
        .max_by_key(|c| c.rss_bytes)
        .unwrap()
        .pid;
    assert_eq!(
        predicted, expected,
        "prediction should be the adj-1000 process"
    );
    assert_eq!(largest, big);
    let margin = ranking.candidates[0].badness_points.unwrap()
        - ranking.candidates[1].badness_points.unwrap();
    eprintln!("margin to the runner-up: {margin} pages");

    // Trigger: grows 1 MiB every 20 ms until the memcg OOMs; small, so never the best victim.
    let trigger = cg.spawn_hog(1000, 40, 0.02, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut killed = Vec::new();
    while Instant::now() < deadline && killed.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        for c in &mut cg.children {
            if let Ok(Some(st)) = c.try_wait() {
                use std::os::unix::process::ExitStatusExt;
                killed.push((c.id() as i32, st.signal()));
            }
        }
    }
    let oom_control = cg.read("memory.oom_control");
    eprintln!("killed {killed:?} (trigger {trigger}); memory.oom_control: {oom_control:?}");
    assert_eq!(
        killed,
        vec![(predicted, Some(libc::SIGKILL))],
        "kernel's victim"
    );
    assert!(oom_control.contains("oom_kill 1"), "{oom_control}");
}
