//! The kernel's OOM badness, computed exactly as the running kernel computes it.
//!
//! This module owns the arithmetic of `mm/oom_kill.c` `oom_badness()` and `oom_evaluate_task()`
//! and of `fs/proc/base.c` `proc_oom_score()`, per kernel era, in the kernel's own integer types
//! (`long`/`unsigned long`, 64-bit). Its border: it takes numbers already read from `/proc`
//! (see [`crate::host`]) and returns numbers; nothing here reads a file. `docs/scoring.md` gives
//! the formula per era with the commits that changed it.
//!
//! Units: every memory figure here is in *pages* (`_pages`), because the kernel's arithmetic is in
//! pages and the integer divisions only reproduce exactly in pages.

use crate::host::process::{ProcStatus, OOM_SCORE_ADJ_MIN};
use serde::Serialize;

/// A kernel version from `/proc/sys/kernel/osrelease` (`6.18.44-fc-v657`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses the leading `X.Y[.Z]` of a release string; anything after is ignored.
    pub fn parse(release: &str) -> Option<Self> {
        let head = release
            .trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut it = head.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion::new(major, minor, patch))
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The badness formula's eras. Kernels before 2.6.36 used Rik van Riel's heuristic (virtual size,
/// CPU time, nice, capabilities); it is documented in `docs/scoring.md` but not computed, since
/// `/proc` does not expose everything it used (children's sizes at OOM time, cpuset overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Era {
    /// 2.6.36-3.9 (a63d83f427fb): normalised to 0..1000, root bonus 30 points, floor 1.
    Normalized2636,
    /// 3.10-3.13 (a7f638f999ff): points in pages; root bonus `adj -= 30`; floor 1.
    Pages310,
    /// 3.14-4.16 (778c14affaf9): root bonus `points -= points * 3 / 100`; floor 1.
    Pages314,
    /// 4.17-5.8 (d46078b28889 removed the root bonus): floor 1, ineligible = 0.
    Pages417,
    /// 5.9+ (9066e5cfb73c): signed, no floor, ineligible = `LONG_MIN`; display `(1000+x)*2/3`.
    Signed59,
}

impl Era {
    /// The era of a kernel version; `None` before 2.6.36.
    pub fn for_version(v: KernelVersion) -> Option<Era> {
        let at = |a, b, c| v >= KernelVersion::new(a, b, c);
        Some(if at(5, 9, 0) {
            Era::Signed59
        } else if at(4, 17, 0) {
            Era::Pages417
        } else if at(3, 14, 0) {
            Era::Pages314
        } else if at(3, 10, 0) {
            Era::Pages310
        } else if at(2, 6, 36) {
            Era::Normalized2636
        } else {
            return None;
        })
    }
}

/// The memory `oom_badness()` counts for one task, in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskMemPages {
    /// `get_mm_rss()`: anon + file + shmem resident pages.
    pub rss_pages: u64,
    /// `MM_SWAPENTS`.
    pub swap_pages: u64,
    /// `mm_pgtables_bytes() / PAGE_SIZE` (4.15+), `nr_ptes + nr_pmds` (4.0-4.14).
    pub pgtables_pages: u64,
}

impl TaskMemPages {
    /// From `/proc/PID/status`. `None` when the task has no mm. The kernel prints each counter as
    /// `pages << (PAGE_SHIFT - 10)` kB, so dividing the bytes by the page size is exact. `VmPTE`
    /// is `pgtables_bytes >> 10` (4.15+); before 4.15 `VmPTE` and `VmPMD` were per-level page
    /// counts times the table size, which the same division turns back into pages.
    pub fn from_status(s: &ProcStatus, page_size_bytes: u64) -> Option<Self> {
        let ps = page_size_bytes.max(1);
        let anon = s.rss_anon_bytes?;
        let file = s.rss_file_bytes?;
        let shmem = s.rss_shmem_bytes?;
        Some(TaskMemPages {
            rss_pages: anon / ps + file / ps + shmem / ps,
            swap_pages: s.vm_swap_bytes? / ps,
            pgtables_pages: (s.vm_pte_bytes? + s.vm_pmd_bytes.unwrap_or(0)) / ps,
        })
    }

    /// rss + swap + page tables, the kernel's "points" before adjustment.
    pub fn total_pages(&self) -> u64 {
        self.rss_pages
            .saturating_add(self.swap_pages)
            .saturating_add(self.pgtables_pages)
    }
}

/// Why the kernel never picks a task (`oom_badness()` returns `LONG_MIN`, or 0 before 5.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unkillable {
    /// `oom_score_adj == -1000` (`OOM_SCORE_ADJ_MIN`).
    OomScoreAdjMin,
    /// `is_global_init()`: pid 1 of the initial pid namespace.
    GlobalInit,
    /// `PF_KTHREAD`.
    KernelThread,
    /// No thread of the process still has an mm (zombie, or exited past `exit_mm()`).
    NoMm,
    /// In `vfork()` sharing its parent's mm (`in_vfork()`). Not visible in `/proc`; a caller may
    /// infer it from `/proc/PID/oom_score` reading 0 where the computation says otherwise.
    InVfork,
    /// The mm was already reaped (`MMF_OOM_SKIP`). Same inference as [`Unkillable::InVfork`].
    OomSkip,
    /// `/proc/PID/oom_score` reads 0 although the task's memory and adjustment give a positive
    /// display score: the kernel found it ineligible for a reason `/proc` does not show
    /// (`in_vfork()` or `MMF_OOM_SKIP`).
    KernelReportsIneligible,
}

impl Unkillable {
    /// One-line reason for tables and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Unkillable::OomScoreAdjMin => "oom_score_adj -1000",
            Unkillable::GlobalInit => "init (pid 1)",
            Unkillable::KernelThread => "kernel thread",
            Unkillable::NoMm => "no memory (exited/zombie)",
            Unkillable::InVfork => "in vfork",
            Unkillable::OomSkip => "already reaped",
            Unkillable::KernelReportsIneligible => "kernel: ineligible (vfork/reaped)",
        }
    }
}

/// What the kernel knows about a task when it scores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFacts {
    /// pid 1 of the initial pid namespace.
    pub is_global_init: bool,
    pub is_kernel_thread: bool,
    /// `None` when no thread has an mm.
    pub mem: Option<TaskMemPages>,
    pub oom_score_adj: i16,
    /// `CAP_SYS_ADMIN` in the effective set; only kernels before 4.17 give root a bonus.
    pub cap_sys_admin: bool,
}

/// The kernel's verdict on a task: its badness points, or why it is never picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Points(i64),
    Unkillable(Unkillable),
}

impl Verdict {
    /// The points, if killable.
    pub fn points(self) -> Option<i64> {
        match self {
            Verdict::Points(p) => Some(p),
            Verdict::Unkillable(_) => None,
        }
    }
}

/// `oom_badness(p, totalpages)` for `era`, with the kernel's integer arithmetic: `adj *=
/// totalpages / 1000` divides first, so the adjustment is a whole multiple of `totalpages / 1000`.
pub fn badness(era: Era, task: &TaskFacts, totalpages: u64) -> Verdict {
    // oom_unkillable_task(): init and kernel threads.
    if task.is_global_init {
        return Verdict::Unkillable(Unkillable::GlobalInit);
    }
    if task.is_kernel_thread {
        return Verdict::Unkillable(Unkillable::KernelThread);
    }
    // find_lock_task_mm() found no thread with an mm.
    let Some(mem) = task.mem else {
        return Verdict::Unkillable(Unkillable::NoMm);
    };
    if task.oom_score_adj == OOM_SCORE_ADJ_MIN {
        return Verdict::Unkillable(Unkillable::OomScoreAdjMin);
    }
    // `long` arithmetic; page counts fit comfortably in i64.
    let tp = i64::try_from(totalpages).unwrap_or(i64::MAX);
    let mut points = i64::try_from(mem.total_pages()).unwrap_or(i64::MAX);
    let mut adj = i64::from(task.oom_score_adj);
    match era {
        Era::Normalized2636 => {
            // points = (rss + ptes + swap) * 1000 / totalpages; -30 for CAP_SYS_ADMIN; + adj;
            // clamp to 1..=1000.
            let mut p = points.saturating_mul(1000) / tp.max(1);
            if task.cap_sys_admin {
                p -= 30;
            }
            p += adj;
            return Verdict::Points(p.clamp(1, 1000));
        }
        Era::Pages310 => {
            if task.cap_sys_admin {
                adj -= 30;
            }
        }
        Era::Pages314 => {
            if task.cap_sys_admin {
                points -= points * 3 / 100;
            }
        }
        Era::Pages417 | Era::Signed59 => {}
    }
    adj = adj.saturating_mul(tp / 1000);
    points = points.saturating_add(adj);
    match era {
        Era::Signed59 => Verdict::Points(points),
        _ => Verdict::Points(points.max(1)),
    }
}

/// `/proc/PID/oom_score` as the kernel prints it, from the verdict computed with the *global*
/// `totalpages` (RAM + swap: `oom_score` never uses a memcg limit).
pub fn oom_score_display(era: Era, verdict: Verdict, global_totalpages: u64) -> u64 {
    let tp = i64::try_from(global_totalpages).unwrap_or(i64::MAX).max(1);
    match (era, verdict) {
        (_, Verdict::Unkillable(_)) => 0,
        // 5.9+: points = (1000 + badness * 1000 / (long)totalpages) * 2 / 3, printed as %lu.
        (Era::Signed59, Verdict::Points(b)) => {
            let v = (1000 + b.saturating_mul(1000) / tp) * 2 / 3;
            v as u64 // the kernel stores it in an unsigned long; same bit pattern
        }
        (Era::Normalized2636, Verdict::Points(p)) => p as u64,
        // 3.10-5.8: oom_badness() * 1000 / totalpages in unsigned long.
        (_, Verdict::Points(p)) => (p as u64).saturating_mul(1000) / (tp as u64),
    }
}

/// A score in pages as permille of `totalpages`, rounded down (the unit of `oom_score_adj` and
/// of the policy's `adjust`).
pub fn permille_floor(score_pages: i64, totalpages: u64) -> i64 {
    let tp = i64::try_from(totalpages).unwrap_or(i64::MAX).max(1);
    score_pages.saturating_mul(1000).div_euclid(tp)
}

/// From `/proc/PID/oom_score` as `era` prints it, an upper bound of the badness (adjustment
/// included) in permille of the global totalpages: never below [`permille_floor`] of the
/// badness that printed it. For ranking every process from one small file; the decision then
/// reads the best of them exactly. `oom_score` 0 (ineligible, or rounded to 0) gives the lowest
/// bound there is for the era.
pub fn oom_score_permille_bound(era: Era, display: u64) -> i64 {
    let d = i64::try_from(display).unwrap_or(i64::MAX / 4);
    match era {
        // display = (1000 + x) * 2 / 3 with x = b * 1000 / tp rounded toward zero, so
        // 1000 + x <= (3 * display + 2) / 2, and x + 1 covers the rounding of a negative x.
        Era::Signed59 => (3 * d + 2) / 2 - 1000 + 1,
        // 2.6.36: already normalised to 0..=1000 of totalpages (adj included).
        Era::Normalized2636 => d,
        // display = points * 1000 / tp rounded down.
        _ => d + 1,
    }
}

/// Infers a hidden ineligibility from the kernel's own `/proc/PID/oom_score`: the kernel shows 0
/// only for `LONG_MIN` or for badness so negative that the display rounds to 0. If oomguard's
/// display is 2 or more (one step more than per-CPU counter drift can move it), a 0 from the
/// kernel means `in_vfork()` or `MMF_OOM_SKIP`.
pub fn hidden_ineligibility(computed_display: u64, kernel_oom_score: u64) -> Option<Unkillable> {
    (kernel_oom_score == 0 && computed_display >= 2).then_some(Unkillable::KernelReportsIneligible)
}

/// `totalpages` for a global OOM (`CONSTRAINT_NONE`): `totalram_pages() + total_swap_pages`.
/// `/proc/meminfo` prints `MemTotal` as `totalram_pages() << (PAGE_SHIFT - 10)` and `SwapTotal`
/// likewise, so the division is exact.
pub fn global_totalpages(mem_total_bytes: u64, swap_total_bytes: u64, page_size_bytes: u64) -> u64 {
    let ps = page_size_bytes.max(1);
    mem_total_bytes / ps + swap_total_bytes / ps
}

/// How far, in pages, the kernel's view of a task's rss + swap can be from what `/proc/PID/status`
/// shows, on `version` with `online_cpus` CPUs.
///
/// Since 6.2 (f1a7941243c1, "mm: convert mm's rss stats into percpu_counter") the RSS counters are
/// per-CPU. `oom_badness()` and the OOM task dump read them with `get_mm_counter()` =
/// `percpu_counter_read_positive()`, the global count without the per-CPU deltas. Since the 2025
/// fix "mm: fix the inaccurate memory statistics issue for users" (82241a83cd15, about 6.16),
/// `/proc/PID/status` and `statm` print exact sums (`get_mm_counter_sum()`). So on those kernels
/// userspace sees a slightly different number than the OOM killer compares, and no file exposes
/// the kernel's. Each per-CPU delta stays below `percpu_counter_batch = max(32, 2 * cpus)`, and
/// four counters are summed (file, anon, shmem, swap), which bounds the difference. Measured on
/// this 2-CPU 6.18 VM: the OOM dump showed 22-50 pages less than `status` for idle processes;
/// the bound is 248. Stable kernels from 6.2 on may carry that fix too: in the VM lab, on
/// Debian's 6.12.95, one process's computed score stayed one display point from the kernel's
/// over five reads 20 ms apart (computed 1359, kernel 1358), which a drift of 0 cannot explain;
/// so the version cannot tell, and the bound applies from 6.2. Before 6.2 both sides read the
/// same atomic counter: 0.
pub fn rss_counter_drift_pages(version: KernelVersion, online_cpus: u64) -> u64 {
    if version < KernelVersion::new(6, 2, 0) {
        return 0;
    }
    let cpus = online_cpus.max(1);
    let batch = (2 * cpus).max(32);
    4 * cpus * (batch - 1)
}

/// `PAGE_COUNTER_MAX` (`LONG_MAX / PAGE_SIZE` on 64-bit): an unlimited page counter.
pub fn page_counter_max(page_size_bytes: u64) -> u64 {
    (i64::MAX as u64) / page_size_bytes.max(1)
}

/// `mem_cgroup_get_max()` for a v1 memcg (mm/memcontrol.c, 5.x-6.18): the memory limit in pages,
/// plus, when memsw is accounted and swappiness is non-zero, `min(memsw.max - max, total swap)`.
/// The OOM uses `?: 1` so a zero limit becomes 1.
pub fn memcg_totalpages_v1(
    limit_pages: u64,
    memsw_limit_pages: Option<u64>,
    swappiness: u64,
    total_swap_pages: u64,
) -> u64 {
    let mut max = limit_pages;
    if let Some(memsw) = memsw_limit_pages {
        if swappiness != 0 {
            let swap = memsw.wrapping_sub(limit_pages);
            max = max.wrapping_add(swap.min(total_swap_pages));
        }
    }
    max.max(1)
}

/// `mem_cgroup_get_max()` for a v2 memcg: `memory.max` plus `min(memory.swap.max, total swap)`
/// when swappiness (the global `vm.swappiness` on v2) is non-zero; `?: 1`.
pub fn memcg_totalpages_v2(
    max_pages: u64,
    swap_max_pages: u64,
    swappiness: u64,
    total_swap_pages: u64,
) -> u64 {
    let mut max = max_pages;
    if swappiness != 0 {
        max = max.saturating_add(swap_max_pages.min(total_swap_pages));
    }
    max.max(1)
}

/// The kernel's choice among candidates given *in the kernel's iteration order*
/// (`for_each_process` for a global OOM: creation order; `mem_cgroup_scan_tasks` for a memcg OOM:
/// the memcg subtree in pre-order, each memcg's tasks in its css_set order). Returns the index of
/// the victim.
///
/// 4.17+ (`oom_evaluate_task`, checked against 6.18): skip unkillable tasks, then take the task if
/// `points >= chosen_points`, so on a tie the *later* task wins. Before 5.9 `points == 0` also
/// meant "skip" and the floor made every eligible task score >= 1, which is the same rule.
pub fn select_victim<I>(verdicts: I) -> Option<usize>
where
    I: IntoIterator<Item = Verdict>,
{
    pick_highest(verdicts.into_iter().map(Verdict::points))
}

/// The one victim chooser (the kernel's rule, `oom_evaluate_task`, 4.17+): the index of the
/// highest score, skipping `None` (not eligible); on a tie the *later* one wins, as the kernel
/// takes a task when `points >= chosen_points`. [`select_victim`], `policy::choose` and
/// `run::choose_victim` all choose through it; a caller that wants another tie-break orders its
/// candidates so that the one it prefers comes later (`run::choose_victim` does).
pub fn pick_highest<I>(scores: I) -> Option<usize>
where
    I: IntoIterator<Item = Option<i64>>,
{
    let mut chosen: Option<(usize, i64)> = None;
    for (i, p) in scores.into_iter().enumerate() {
        if let Some(p) = p {
            match chosen {
                Some((_, best)) if p < best => {}
                _ => chosen = Some((i, p)),
            }
        }
    }
    chosen.map(|(i, _)| i)
}

/// Orders candidates "most likely victim first" for display: by points descending, ties broken
/// the way [`select_victim`] breaks them (later in kernel order first), unkillable last.
pub fn victim_order(a: (Verdict, usize), b: (Verdict, usize)) -> std::cmp::Ordering {
    match (a.0.points(), b.0.points()) {
        (Some(x), Some(y)) => y.cmp(&x).then(b.1.cmp(&a.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(rss: u64, adj: i16) -> TaskFacts {
        TaskFacts {
            is_global_init: false,
            is_kernel_thread: false,
            mem: Some(TaskMemPages {
                rss_pages: rss,
                swap_pages: 0,
                pgtables_pages: 0,
            }),
            oom_score_adj: adj,
            cap_sys_admin: true,
        }
    }

    // This VM: MemTotal 24684092 kB, no swap => 6171023 pages.
    const TP: u64 = 24_684_092 / 4;

    #[test]
    fn versions() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v657"),
            Some(KernelVersion::new(6, 18, 44))
        );
        assert_eq!(
            KernelVersion::parse("5.9-rc1"),
            Some(KernelVersion::new(5, 9, 0))
        );
        assert_eq!(KernelVersion::parse("garbage"), None);
        let era = |s| KernelVersion::parse(s).and_then(Era::for_version);
        assert_eq!(era("6.18.44"), Some(Era::Signed59));
        assert_eq!(era("5.8.18"), Some(Era::Pages417));
        assert_eq!(era("4.14.0"), Some(Era::Pages314));
        assert_eq!(era("3.10.0-1160.el7"), Some(Era::Pages310));
        assert_eq!(era("2.6.32"), None);
    }

    #[test]
    fn oom_score_bound_is_never_below_the_badness_it_came_from() {
        for era in [Era::Pages310, Era::Pages314, Era::Pages417, Era::Signed59] {
            for tp in [1_000u64, 6_171_023, 262_144] {
                let tpi = tp as i64;
                // Before 5.9 points are floored at 1: never negative.
                let mut b = if era == Era::Signed59 { -tpi } else { 1 };
                while b <= 2 * tpi {
                    let d = oom_score_display(era, Verdict::Points(b), tp);
                    let x = permille_floor(b, tp);
                    let bound = oom_score_permille_bound(era, d);
                    if d > 0 || era == Era::Signed59 {
                        assert!(
                            bound >= x,
                            "{era:?} tp {tp} b {b}: display {d}, bound {bound} < {x}"
                        );
                        // Tight: within three permille, or the ranking would read too much.
                        assert!(
                            bound - x <= 3 || d == 0,
                            "{era:?} tp {tp} b {b}: {bound} vs {x}"
                        );
                    }
                    b += (tpi / 997).max(1);
                }
            }
        }
    }

    #[test]
    fn signed_5_9_display_matches_real_oom_score() {
        // A real idle process here (sh: RssAnon 112 + RssFile 1648 kB, VmPTE 40 kB) shows 666.
        let t = task((112 + 1648) / 4 + 40 / 4, 0);
        let v = badness(Era::Signed59, &t, TP);
        assert_eq!(v, Verdict::Points(450));
        assert_eq!(oom_score_display(Era::Signed59, v, TP), 666);
        // adj 1000: + 1000 * (6171023 / 1000) = 6171000 pages.
        let v = badness(Era::Signed59, &task(450, 1000), TP);
        assert_eq!(v, Verdict::Points(450 + 6_171_000));
        assert_eq!(oom_score_display(Era::Signed59, v, TP), 1333);
        // adj -999: negative badness, no floor on 5.9+.
        let v = badness(Era::Signed59, &task(450, -999), TP);
        assert_eq!(v, Verdict::Points(450 - 999 * 6171));
        // -6164379 * 1000 / 6171023 truncates toward zero to -998: (1000 - 998) * 2 / 3 = 1.
        assert_eq!(oom_score_display(Era::Signed59, v, TP), 1);
        assert_eq!(
            badness(Era::Signed59, &task(450, -1000), TP),
            Verdict::Unkillable(Unkillable::OomScoreAdjMin)
        );
    }

    #[test]
    fn older_eras() {
        // 4.17-5.8: floor at 1; display points * 1000 / totalpages.
        let v = badness(Era::Pages417, &task(450, -999), TP);
        assert_eq!(v, Verdict::Points(1));
        assert_eq!(oom_score_display(Era::Pages417, v, TP), 0);
        let v = badness(Era::Pages417, &task(TP / 2, 0), TP);
        assert_eq!(oom_score_display(Era::Pages417, v, TP), 499);
        // 3.14-4.16: root bonus 3 % of own usage.
        assert_eq!(
            badness(Era::Pages314, &task(1000, 0), TP),
            Verdict::Points(970)
        );
        // 3.10-3.13: root bonus 30 * (totalpages / 1000).
        assert_eq!(
            badness(Era::Pages310, &task(10_000, 0), 100_000),
            Verdict::Points(10_000 - 3000)
        );
        // 2.6.36: normalised and clamped.
        assert_eq!(
            badness(Era::Normalized2636, &task(50_000, 0), 100_000),
            Verdict::Points(470)
        );
        assert_eq!(
            badness(Era::Normalized2636, &task(50_000, 1000), 100_000),
            Verdict::Points(1000)
        );
    }

    #[test]
    fn unkillable_reasons() {
        let mut t = task(1, 0);
        t.is_global_init = true;
        assert_eq!(
            badness(Era::Signed59, &t, TP),
            Verdict::Unkillable(Unkillable::GlobalInit)
        );
        let mut t = task(1, 0);
        t.is_kernel_thread = true;
        assert_eq!(
            badness(Era::Signed59, &t, TP),
            Verdict::Unkillable(Unkillable::KernelThread)
        );
        let mut t = task(1, 0);
        t.mem = None;
        assert_eq!(
            badness(Era::Signed59, &t, TP),
            Verdict::Unkillable(Unkillable::NoMm)
        );
        assert_eq!(
            oom_score_display(Era::Signed59, Verdict::Unkillable(Unkillable::NoMm), TP),
            0
        );
    }

    #[test]
    fn hidden_ineligible() {
        assert_eq!(
            hidden_ineligibility(666, 0),
            Some(Unkillable::KernelReportsIneligible)
        );
        assert_eq!(hidden_ineligibility(1, 0), None);
        assert_eq!(hidden_ineligibility(666, 666), None);
    }

    #[test]
    fn drift_bound() {
        assert_eq!(
            rss_counter_drift_pages(KernelVersion::new(6, 18, 44), 2),
            248
        );
        assert_eq!(
            rss_counter_drift_pages(KernelVersion::new(6, 18, 0), 64),
            4 * 64 * 127
        );
        assert_eq!(rss_counter_drift_pages(KernelVersion::new(6, 1, 0), 2), 0);
    }

    #[test]
    fn totalpages() {
        assert_eq!(global_totalpages(24_684_092 * 1024, 0, 4096), TP);
        assert_eq!(global_totalpages(4 << 30, 2 << 30, 4096), (6 << 30) / 4096);
        // v1 memcg, 200 MiB limit, memsw unlimited, no swap on the machine.
        let lim = (200 << 20) / 4096;
        assert_eq!(
            memcg_totalpages_v1(lim, Some(page_counter_max(4096)), 60, 0),
            lim
        );
        // With 1 GiB of swap, memsw 300 MiB => + 100 MiB.
        assert_eq!(
            memcg_totalpages_v1(lim, Some((300 << 20) / 4096), 60, (1 << 30) / 4096),
            (300 << 20) / 4096
        );
        // swappiness 0 ignores swap.
        assert_eq!(
            memcg_totalpages_v1(lim, Some((300 << 20) / 4096), 0, 262_144),
            lim
        );
        assert_eq!(memcg_totalpages_v1(0, None, 60, 0), 1);
        assert_eq!(memcg_totalpages_v2(lim, u64::MAX, 60, 1000), lim + 1000);
    }

    #[test]
    fn selection_every_pair() {
        // Ordered candidates: each later one must beat each earlier one, as in earlyoom's
        // permute_is_larger. Ties go to the later task in kernel order.
        let ordered = [
            Verdict::Unkillable(Unkillable::OomScoreAdjMin),
            Verdict::Points(-5_000_000),
            Verdict::Points(1),
            Verdict::Points(100),
            Verdict::Points(100),
            Verdict::Points(6_171_000),
        ];
        for i in 0..ordered.len() {
            for j in (i + 1)..ordered.len() {
                if let Verdict::Unkillable(_) = ordered[j] {
                    continue;
                }
                assert_eq!(
                    select_victim([ordered[i], ordered[j]]),
                    Some(1),
                    "{i} vs {j}"
                );
                if ordered[i] != ordered[j] {
                    assert_eq!(
                        select_victim([ordered[j], ordered[i]]),
                        Some(0),
                        "{j} vs {i}"
                    );
                }
            }
        }
        assert_eq!(
            select_victim([Verdict::Unkillable(Unkillable::KernelThread)]),
            None
        );
        assert_eq!(select_victim(ordered), Some(5));
        let mut v: Vec<(Verdict, usize)> = ordered.iter().copied().zip(0..).collect();
        v.sort_by(|a, b| victim_order(*a, *b));
        assert_eq!(
            v.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![5, 4, 3, 2, 1, 0]
        );
    }
}
