//! The drill's hog: this binary re-executed as `oomguard drill --hog-procs FILE ...`. Before it
//! allocates anything it sets its own `oom_score_adj` to 1000, joins the throwaway cgroup and
//! checks both took; then it touches memory 1 MiB at a time up to its cap (at most
//! [`MAX_HOG_MIB`]) and waits to be killed. It never allocates outside the cgroup and never
//! more than the cap, so a drill cannot put the machine at risk.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The most a drill hog ever allocates.
pub const MAX_HOG_MIB: u64 = 256;
/// Pace: 1 MiB every 20 ms (50 MiB/s), slow enough for any poll interval the daemon may use to
/// see a 128 MiB cgroup's headroom shrink, fast enough to reach the limit in about 3 s.
const STEP: Duration = Duration::from_millis(20);
/// A hog that nobody kills gives up after this long (the drill's own timeout is shorter).
const GIVE_UP: Duration = Duration::from_secs(120);

/// Runs the hog; returns its exit status (0 = allocated its cap and waited, unkilled;
/// 3 = could not confine itself, allocated nothing).
pub fn run(procs: &Path, rel: &str, mib: u64) -> i32 {
    let mib = mib.min(MAX_HOG_MIB);
    let _ = std::fs::write("/proc/self/comm", "oomguard-drill");
    if std::fs::write("/proc/self/oom_score_adj", "1000").is_err()
        || std::fs::read_to_string("/proc/self/oom_score_adj")
            .map(|s| s.trim() != "1000")
            .unwrap_or(true)
    {
        eprintln!("oomguard drill hog: cannot set oom_score_adj 1000");
        return 3;
    }
    if let Err(e) = std::fs::write(procs, std::process::id().to_string()) {
        eprintln!("oomguard drill hog: cannot join {}: {e}", procs.display());
        return 3;
    }
    let joined = std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|t| {
        oomguard_core::host::process::cgroup_lines(&t)
            .any(|l| l.path == rel && (l.controllers.is_empty() || l.has_controller("memory")))
    });
    if !joined {
        eprintln!("oomguard drill hog: not in {rel} after joining");
        return 3;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let mut held: Vec<Vec<u8>> = Vec::with_capacity(mib as usize);
    for _ in 0..mib {
        let mut chunk = vec![0u8; 1 << 20];
        // Touch every page: a zeroed allocation is not charged until written.
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        held.push(chunk);
        std::thread::sleep(STEP);
    }
    let start = Instant::now();
    while start.elapsed() < GIVE_UP {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held);
    0
}
