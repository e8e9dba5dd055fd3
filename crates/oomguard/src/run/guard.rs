//! `run --guard`: kill the worst process in the supervised cgroup before the kernel's memcg OOM
//! killer has to, when usage comes within a headroom of the limit.
//!
//! Members are pinned by pidfd, read through the pin (`stat`, `status`, `oom_score_adj`),
//! ranked by the kernel's memcg badness of the running kernel's era (`oomguard_core::badness`,
//! through `oomguard_core::run::choose_victim` and the one chooser, `badness::pick_highest`),
//! and the victim gets SIGKILL + `process_mrelease` through the actuator's `kill_escalating`,
//! the daemon's own kill routine. The ranking is the kernel's alone: the config's `[[rules]]`
//! do not apply to `run --guard` (so its tie-break, larger RSS then younger, stays its own).

use std::time::Duration;

use oomguard_core::badness::Era;
use oomguard_core::event::{EventKind, OomEvent, Source};
use oomguard_core::host::process::scan_status;
use oomguard_core::killpath::parse_stat_identity;
use oomguard_core::run::{choose_victim, GuardCandidate, StatusMemory};
use oomguard_core::units::KIB;

use super::cgroup::RunCgroup;
use crate::act::actuator::{kill_escalating, Actuator, KillPlan, KillResult};
use crate::act::pidfd::Pinned;

/// The page size, for the badness arithmetic.
fn page_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

/// What one guard action did.
#[derive(Debug)]
pub struct GuardKill {
    /// The event (`source: oomguard`), with the victim's memory as read before the kill.
    pub event: OomEvent,
    /// Whether the victim is gone.
    pub gone: bool,
}

/// Scans the cgroup, picks the victim and kills it. `None` when there was nothing killable.
pub fn kill_worst<A: Actuator + ?Sized>(
    act: &mut A,
    cg: &RunCgroup,
    usage_bytes: u64,
    limit_bytes: u64,
) -> Option<GuardKill> {
    let mut pinned = Vec::new();
    let mut cands = Vec::new();
    for pid in cg.pids() {
        if crate::act::actuator::refuse_reason(pid).is_some() {
            continue;
        }
        // A process that vanished or cannot be read is skipped, never fatal.
        let Ok(pin) = Pinned::open(pid) else { continue };
        let (Ok(stat), Ok(status), Ok(adj)) = (
            pin.read_proc_file("stat"),
            pin.read_proc_file("status"),
            pin.read_proc_file("oom_score_adj"),
        ) else {
            continue;
        };
        let Ok(id) = parse_stat_identity(&stat) else {
            continue;
        };
        let Ok(scan) = scan_status(&status) else {
            continue;
        };
        let mem = StatusMemory::from_scan(&scan);
        let adj = String::from_utf8_lossy(&adj).trim().parse().unwrap_or(0);
        cands.push((
            GuardCandidate {
                pid,
                start_time_ticks: id.start_time_ticks,
                comm: mem.name.clone(),
                rss_bytes: mem.rss_bytes(),
                swap_bytes: mem.swap_bytes,
                pgtables_bytes: mem.pgtables_bytes,
                oom_score_adj: adj,
                cap_sys_admin: scan.status.has_cap_sys_admin().unwrap_or(false),
            },
            mem,
        ));
        pinned.push(pin);
    }
    let plain: Vec<GuardCandidate> = cands.iter().map(|(c, _)| c.clone()).collect();
    // The formula of every kernel since 5.9 if the release cannot be read: the guard must not
    // stop because of it.
    let era = crate::host::machine::kernel_era(&crate::host::procfs::ProcFs::default())
        .map_or(Era::Signed59, |(_, era)| era);
    let victim = choose_victim(era, &plain, limit_bytes, page_bytes())?;
    let idx = plain.iter().position(|c| c.pid == victim.pid)?;
    let (cand, mem) = &cands[idx];
    let pin = &pinned[idx];
    let plan = KillPlan {
        term_grace: None,
        kill_wait: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
    };
    let outcome = kill_escalating(act, pin, &plan, &mut || true);
    let gone = outcome.targets.iter().all(|t| {
        matches!(
            t.result,
            KillResult::ExitedAfterKill | KillResult::AlreadyGone | KillResult::ExitedAfterTerm
        )
    });
    let mut ev = OomEvent::new(EventKind::Kill);
    ev.source = Source::Oomguard;
    ev.message = Some("oomguard run --guard".to_owned());
    ev.pid = Some(i64::from(cand.pid));
    ev.comm = Some(cand.comm.clone());
    ev.anon_rss_kb = Some(mem.rss_anon_bytes / KIB);
    ev.file_rss_kb = Some(mem.rss_file_bytes / KIB);
    ev.shmem_rss_kb = Some(mem.rss_shmem_bytes / KIB);
    ev.pgtables_kb = Some(mem.pgtables_bytes / KIB);
    ev.oom_score_adj = Some(cand.oom_score_adj);
    ev.constraint = Some("CONSTRAINT_MEMCG".to_owned());
    ev.oom_memcg = Some(cg.rel_path.clone());
    ev.task_memcg = Some(cg.rel_path.clone());
    ev.memcg_usage_kb = Some(usage_bytes / KIB);
    ev.memcg_limit_kb = Some(limit_bytes / KIB);
    Some(GuardKill { event: ev, gone })
}
