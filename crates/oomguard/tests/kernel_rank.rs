//! Real-kernel tests: oomguard's scores against the running kernel's. They need root and a v1
//! memory cgroup (this CI VM has both); elsewhere they print why they skip and pass.
//!
//! Safety: every allocating process runs in a throwaway memory cgroup below ours with a hard
//! limit, caps its own allocation, and uses a high oom_score_adj; all are killed by pid and the
//! cgroup removed at the end (see `common::TestCgroup`).

// Test helpers here panic on failed setup, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use common::{real_kernel_skip_reason, TestCgroup};
use oomguard::host::scan::{Sampled, Scanner};
use oomguard::host::{page_size_bytes, ProcFs, ReadError};
use oomguard::rank::{rank, Roots};
use oomguard_core::badness::{self, Era, KernelVersion};
use std::time::{Duration, Instant};

macro_rules! skip_unless_real {
    () => {
        if !common::kernel::require(module_path!(), real_kernel_skip_reason()) {
            return;
        }
    };
}

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
    let Some(mut cg) = TestCgroup::new("score", 1 << 30) else {
        return;
    };
    // Non-hogs (idle interpreters, ~9 MiB) across the adj range the kernel lets root set.
    for adj in [0, 1, 333, 500, 666, 999, 1000] {
        cg.spawn_adj_hog(adj, 0, 0.0, true);
    }
    // Hogs: capped, adj 1000, inside the 1 GiB memcg.
    for mib in [40, 150, 300] {
        cg.spawn_adj_hog(1000, mib, 0.0, true);
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
    let mut drift_explained = 0;
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u64;
    let drift = badness::rss_counter_drift_pages(KernelVersion::parse(&rel).unwrap(), cpus);
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
                // Not a race. The only other admissible cause: the kernel's per-CPU RSS counters
                // (see badness::rss_counter_drift_pages) put the task across a display step.
                if within_drift(era, &mut scanner, pid, tp, kernel, drift) {
                    drift_explained += 1;
                } else {
                    mismatches.push(format!("pid {pid}: computed {computed}, kernel {kernel}"));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "oom_score equality: {equal} equal at first read, {raced} equal after re-read (race), \
         {vanished} vanished, {drift_explained} explained only by per-CPU counter drift \
         (±{drift} pages), {} unexplained mismatches; {kthreads} kernel threads (score 0); \
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

/// Whether `kernel` is a display score the task could show if the kernel's counters were off by
/// up to `drift` pages from `/proc/PID/status`.
fn within_drift(
    era: Era,
    scanner: &mut Scanner,
    pid: i32,
    tp: u64,
    kernel: u64,
    drift: u64,
) -> bool {
    let Ok(Sampled::Process(s)) = scanner.sample(pid) else {
        return false;
    };
    let Some(points) = badness::badness(era, &s.facts(true), tp).points() else {
        return false;
    };
    let d = i64::try_from(drift).unwrap_or(0);
    let lo = badness::oom_score_display(era, badness::Verdict::Points(points - d), tp);
    let hi = badness::oom_score_display(era, badness::Verdict::Points(points + d), tp);
    (lo..=hi).contains(&kernel)
}

/// A real v1 memcg OOM: oomguard's `rank --cgroup` prediction (computed before the OOM) names
/// the process the kernel then kills. The candidates are arranged so the adjustment, not the
/// size, decides: the largest process has adj 960, a slightly smaller one adj 1000.
#[test]
fn memcg_oom_victim_matches_prediction() {
    skip_unless_real!();
    memcg_scenario("adj", 960, false);
}

/// The same with equal adjustments: the largest process must be the prediction and the victim.
#[test]
fn memcg_oom_victim_matches_prediction_sizes_only() {
    skip_unless_real!();
    memcg_scenario("size", 1000, true);
}

fn memcg_scenario(name: &str, big_adj: i16, big_dies: bool) {
    let limit: u64 = 400 << 20;
    let Some(mut cg) = TestCgroup::new(&format!("memcg-oom-{name}"), limit) else {
        return;
    };
    let _idle0 = cg.spawn_adj_hog(0, 0, 0.0, true);
    let _idle500 = cg.spawn_adj_hog(500, 0, 0.0, true);
    let big = cg.spawn_adj_hog(big_adj, 100, 0.0, true);
    let other = cg.spawn_adj_hog(1000, 92, 0.0, true);
    let expected = if big_dies { big } else { other };
    let _small = cg.spawn_adj_hog(1000, 60, 0.0, true);
    // Fill to ~12 MiB below the limit with small fillers (each well below the candidates), so
    // the trigger stays small. Each filler costs ~13 MiB of interpreter on top of its chunk.
    loop {
        let usage: u64 = cg.read("memory.usage_in_bytes").trim().parse().unwrap();
        let room_mib = limit.saturating_sub(usage) >> 20;
        if room_mib < 12 + 14 + 4 {
            break;
        }
        let chunk = (room_mib - 12 - 14).min(30);
        cg.spawn_adj_hog(1000, chunk, 0.0, true);
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
    let trigger = cg.spawn_adj_hog(1000, 40, 0.02, false);
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

    // The kernel's own task dump (vm.oom_dump_tasks=1) of this OOM gives, per task, the page
    // counts oom_badness() summed. For the idle candidates (unchanged since the snapshot) they
    // should equal what oomguard read from /proc/PID/status.
    let dump = last_oom_task_dump(&cg.rel);
    // Also re-read the survivors now: memcg reclaim before the OOM may have dropped their
    // file-backed pages, which the snapshot could not know.
    let mut scanner = Scanner::new(&ProcFs::default()).unwrap();
    let (mut same_after, mut compared_after) = (0, 0);
    for (&pid, &kernel_pages) in &dump {
        if pid == trigger || pid == predicted {
            continue;
        }
        if let Ok(Sampled::Process(s)) = scanner.sample(pid) {
            let now = s.mem.map_or(0, |m| m.total_pages());
            compared_after += 1;
            if now == kernel_pages {
                same_after += 1;
            } else {
                eprintln!("pid {pid}: now {now} pages, kernel dump {kernel_pages} pages");
            }
        }
    }
    eprintln!("kernel task dump vs re-read after the OOM: {same_after} of {compared_after} equal");
    let (mut same, mut compared) = (0, 0);
    for c in ranking.candidates.iter().filter(|c| c.pid != trigger) {
        let Some(&kernel_pages) = dump.get(&c.pid) else {
            continue;
        };
        compared += 1;
        let ours = (c.rss_bytes + c.swap_bytes + c.pgtables_bytes) / page_size_bytes();
        if ours == kernel_pages {
            same += 1;
        } else {
            eprintln!(
                "pid {}: oomguard {ours} pages, kernel dump {kernel_pages} pages",
                c.pid
            );
        }
    }
    eprintln!("kernel task dump: {same} of {compared} candidates have the same page count");
    assert!(
        compared > 0 || dump.is_empty(),
        "the dump should list the candidates"
    );
    // What the kernel compares may differ from /proc/PID/status by the per-CPU counter drift,
    // never more.
    let drift = ranking.counter_drift_pages;
    for c in ranking.candidates.iter().filter(|c| c.pid != trigger) {
        if let Some(&kernel_pages) = dump.get(&c.pid) {
            let ours = (c.rss_bytes + c.swap_bytes + c.pgtables_bytes) / page_size_bytes();
            assert!(
                ours.abs_diff(kernel_pages) <= drift,
                "pid {}: {ours} vs kernel {kernel_pages}, beyond the {drift}-page drift bound",
                c.pid
            );
        }
    }
    assert!(
        margin.unsigned_abs() > 2 * drift,
        "the test's margin must exceed the drift"
    );
}

/// pid -> rss + pgtables_bytes / PAGE_SIZE + swapents from the "Tasks state" block of the last
/// OOM of memcg `rel` in the kernel log (empty if dmesg is unavailable).
fn last_oom_task_dump(rel: &str) -> std::collections::HashMap<i32, u64> {
    let out = std::process::Command::new("dmesg").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let Some(end) = text.rfind(&format!("oom_memcg={rel},")) else {
        return Default::default();
    };
    let Some(start) = text[..end].rfind("Tasks state (memory values in pages)") else {
        return Default::default();
    };
    let ps = page_size_bytes();
    let mut map = std::collections::HashMap::new();
    for line in text[start..].lines().skip(2) {
        // "[ 1101.890721] [    830]     0   830    34322    16994 ... 1000 name"
        let Some((_, rest)) = line.split_once("] [") else {
            break;
        };
        let Some((pid, fields)) = rest.split_once(']') else {
            break;
        };
        let Ok(pid) = pid.trim().parse::<i32>() else {
            break;
        };
        let f: Vec<u64> = fields
            .split_whitespace()
            .take(9)
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 9 {
            break;
        }
        // uid tgid total_vm rss rss_anon rss_file rss_shmem pgtables_bytes swapents
        map.insert(pid, f[3] + f[7] / ps + f[8]);
    }
    map
}
