//! `oomguard replay`: a past kernel OOM report's task dump replayed through oomguard's own
//! badness and policy. Pure: an [`OomEvent`] (from `oomlog`), the kernel version when the log
//! shows it, and a compiled [`Policy`] in; the candidates as the kernel saw them, whom the kernel
//! chose, whom oomguard would choose and why they agree or differ, out. Reading logs and
//! rendering live in the `oomguard` crate (`replay/`).
//!
//! The badness is [`crate::badness::badness`] and the choice [`crate::policy::choose`]; this
//! module only turns dump rows into their inputs, finds the kernel era (`replay/era.rs`) and the
//! scope's `totalpages` (`replay/totalpages.rs`), and states the outcome in one line; the
//! triggers' lead over a kernel kill is `replay/leads.rs`. `docs/replay.md` has the agreement
//! table over every fixture report.
//!
//! The kernel's selection rules replayed here, from `mm/oom_kill.c` (`select_bad_process`,
//! `oom_evaluate_task`):
//! - Scan order: a global OOM walks `for_each_process` (creation order); a memcg OOM walks
//!   `mem_cgroup_scan_tasks` (the memcg subtree, each memcg's tasks). The task dump is printed
//!   by `dump_tasks()` with the same walk since 4.19 (before, a memcg dump also walked
//!   `for_each_process` and filtered by memcg), so row order is scan order.
//! - Ties: since 5.3 ("mm: oom: Remove thread group leader check in oom_evaluate_task()",
//!   Tetsuo Handa, June 2019) a task is taken when `points >= chosen_points`: the *later* task
//!   wins. Before, `points == chosen_points && thread_group_leader(chosen)` kept the chosen one
//!   (d49ad9355420, "mm, oom: prefer thread group leaders for display purposes"), and before that
//!   the test was `points > chosen_points`: on every pre-5.3 kernel the *earlier* process wins a
//!   tie. oomguard's policy breaks ties like 5.3+.
//! - Ineligible: `oom_score_adj == -1000`, init, kernel threads, tasks without an mm (5.9+:
//!   `LONG_MIN`; before, badness 0 and `if (!points) continue`); every other task scores at least
//!   1 before 5.9 (the floor), and may score below zero from 5.9.
//! - Before 5.1 the selected process was then replaced by its child with the highest badness
//!   ("or sacrifice child"); the selection is the `Kill process N` line, which is what is
//!   compared here, not the child that died.

mod era;
mod leads;
mod totalpages;

use serde::Serialize;

use crate::badness::{self, Era, KernelVersion, TaskFacts, TaskMemPages, Verdict};
use crate::event::{EventKind, OomEvent, TaskRow};
use crate::policy::{self, Candidate, Judgement, Policy};

pub use era::{find_era, kernel_release_in_line, EraFinding};
pub use leads::{leads, Lead, Leads, Reading};
pub use totalpages::{total_pages, TotalPages};

/// One row of the dump as replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replayed {
    pub pid: i64,
    pub name: String,
    pub uid: Option<u64>,
    pub oom_score_adj: Option<i64>,
    /// rss + swap + page tables, in pages, as the era counts them.
    pub mem_pages: Option<u64>,
    /// The kernel's badness for this scope (era formula), or why it is never chosen.
    pub verdict: Verdict,
    /// oomguard's judgement with the config's rules.
    pub judgement: String,
    /// The adjusted score oomguard compares, when eligible.
    pub policy_score: Option<i64>,
}

/// Why replay and the kernel agree or differ: the class of a one-line reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Same victim.
    Agrees,
    /// Equal scores; the kernel's tie rule or scan order differs from oomguard's.
    Tie,
    /// The era's integer arithmetic (permille rounding) or an uncertain `totalpages` decides.
    Rounding,
    /// The kernel's victim, or rows that could outrank it, are not in the dump.
    RowsMissing,
    /// The config's rules chose differently (only with rules).
    Policy,
    /// The kernel's victim is one oomguard never chooses (oom_score_adj -1000, init, oomguard).
    Unkillable,
    /// Not replayable: no selection to compare (no task dump, no victim, allocating-task
    /// mode, pre-2.6.36 heuristic).
    NotReplayable,
    /// A difference replay cannot explain: a bug to report.
    Unexplained,
}

/// One report replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// The process the kernel's selection chose (the `Kill process` line before 5.1, the victim
    /// after); the child it killed instead may differ (`kernel_killed_pid`).
    pub kernel_victim_pid: Option<i64>,
    pub kernel_victim_comm: Option<String>,
    pub kernel_killed_pid: Option<i64>,
    /// The kernel's choice as oomguard computes it from the dump (era badness, era tie rule).
    pub model_victim_pid: Option<i64>,
    /// oomguard's choice with the config.
    pub replay_victim_pid: Option<i64>,
    pub replay_victim_comm: Option<String>,
    pub agrees: bool,
    pub outcome: Outcome,
    /// One line: why they agree or differ.
    pub reason: String,
    pub era: EraFinding,
    pub total_pages: TotalPages,
    pub scope: String,
    /// The kill unit the config would use, and what it would take down.
    pub kill_unit: String,
    /// The candidates in scan order.
    pub candidates: Vec<Replayed>,
    /// Rows the parser counted but did not keep.
    pub rows_dropped: u64,
    /// Before 5.1 the kernel printed the victim's score: the badness computed here, put the
    /// way that era prints it, against the printed one (`matches`, `matches within the
    /// totalpages bounds`, or `mismatch`).
    pub score_check: Option<String>,
}

/// What a row gives `oom_badness()`, in pages, and what the dump's era leaves out.
fn row_mem(row: &TaskRow, page_bytes: u64) -> Option<TaskMemPages> {
    let rss = row.rss_pages.or_else(|| {
        Some(row.rss_anon_pages? + row.rss_file_pages? + row.rss_shmem_pages.unwrap_or(0))
    })?;
    let pgtables = match (row.pgtables_bytes, row.nr_ptes_pages) {
        (Some(b), _) => b / page_bytes.max(1),
        (None, Some(p)) => p + row.nr_pmds_pages.unwrap_or(0),
        (None, None) => 0,
    };
    Some(TaskMemPages {
        rss_pages: rss,
        swap_pages: row.swapents_pages.unwrap_or(0),
        pgtables_pages: pgtables,
    })
}

/// `oom_score_adj` of a row; the legacy `oom_adj` (-17..15) mapped as the kernel maps it
/// (`oom_adj * 1000 / 17`, -17 = OOM_DISABLE = -1000).
fn row_adj(row: &TaskRow) -> Option<i64> {
    row.oom_score_adj.or_else(|| {
        row.oom_adj.map(|a| {
            if a <= -17 {
                -1000
            } else {
                (a * 1000 / 17).clamp(-1000, 1000)
            }
        })
    })
}

fn facts(row: &TaskRow, page_bytes: u64) -> TaskFacts {
    TaskFacts {
        // The dump never lists the global init (oom_unkillable_task); a container's init shows
        // its host pid, which is not 1.
        is_global_init: row.pid == 1,
        is_kernel_thread: false,
        mem: row_mem(row, page_bytes),
        oom_score_adj: row_adj(row).unwrap_or(0).clamp(-1000, 1000) as i16,
        // The dump does not show capabilities: uid 0 is taken to hold CAP_SYS_ADMIN (the root
        // bonus before 4.17). A root process without it, or a capable non-root one, is scored
        // 3 % off; docs/replay.md says where that shows.
        cap_sys_admin: row.uid == Some(0),
    }
}

/// The kernel's choice among `verdicts` in scan order: the highest badness, ties to the later
/// task (5.3+, [`badness::select_victim`]) or to the earlier one (before 5.3: the same scan
/// reversed, so the first of the tied tasks is the last seen).
fn kernel_select(verdicts: &[Verdict], earlier_wins: bool) -> Option<usize> {
    if earlier_wins {
        let n = verdicts.len();
        badness::select_victim(verdicts.iter().rev().copied()).map(|i| n - 1 - i)
    } else {
        badness::select_victim(verdicts.iter().copied())
    }
}

/// A victim under a given `totalpages`, for the model and for the policy.
struct Pass {
    verdicts: Vec<Verdict>,
    judged: Vec<Judgement>,
}

fn pass(
    era: Era,
    rows: &[TaskRow],
    page_bytes: u64,
    tp: u64,
    policy: &Policy,
    victim_cgroup: (Option<i64>, Option<&str>),
) -> Pass {
    let verdicts: Vec<Verdict> = rows
        .iter()
        .map(|r| badness::badness(era, &facts(r, page_bytes), tp))
        .collect();
    let judged = rows
        .iter()
        .zip(&verdicts)
        .map(|(r, v)| {
            let c = Candidate {
                pid: i32::try_from(r.pid).unwrap_or(i32::MAX),
                name: &r.name,
                cmdline: None,
                exe: None,
                // The dump names no cgroup per row; the summary line names the victim's.
                cgroup: if Some(r.pid) == victim_cgroup.0 {
                    victim_cgroup.1
                } else {
                    None
                },
                uid: r
                    .uid
                    .and_then(|u| u32::try_from(u).ok())
                    .unwrap_or(u32::MAX),
                user: (r.uid == Some(0)).then_some("root"),
                verdict: *v,
                exiting: false,
            };
            policy.judge(&c, tp)
        })
        .collect();
    Pass { verdicts, judged }
}

/// Values of `totalpages` worth trying between `lo` and `hi`: the ends, the best figure and a
/// geometric grid (badness depends on `totalpages / 1000` and, in 2.6.36-3.9, on a division
/// by it; a grid of 64 steps finds a range where a choice holds, it does not prove one).
fn tp_grid(t: &TotalPages) -> Vec<u64> {
    let mut v = vec![t.lo_pages, t.hi_pages];
    v.extend(t.pages);
    let (lo, hi) = (t.lo_pages.max(1) as f64, t.hi_pages.max(1) as f64);
    for i in 1..64 {
        v.push((lo * (hi / lo).powf(f64::from(i) / 64.0)) as u64);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The score a pre-5.1 `Kill process N (comm) score S` line prints for badness `points`:
/// the points themselves in 2.6.36-3.9, `points * 1000 / totalpages` from 3.10 to 5.0.
fn printed_score(era: Era, points: i64, tp: u64) -> i64 {
    match era {
        Era::Normalized2636 => points,
        _ => points.saturating_mul(1000) / i64::try_from(tp.max(1)).unwrap_or(i64::MAX),
    }
}

/// Where the report gives no size of the scope, the `totalpages` (from the grid) at which the
/// kernel's victim scores what the kill line printed; the geometric middle of those that fit.
fn tp_from_score(ev: &OomEvent, era: Era, page_bytes: u64, t: &TotalPages) -> Option<u64> {
    let score = ev.score?;
    let pid = ev.selected_pid.or(ev.pid)?;
    let row = ev.tasks.iter().find(|r| r.pid == pid)?;
    let fits: Vec<u64> = tp_grid(t)
        .into_iter()
        .filter(|tp| {
            badness::badness(era, &facts(row, page_bytes), *tp)
                .points()
                .is_some_and(|p| printed_score(era, p, *tp) == score)
        })
        .collect();
    let (lo, hi) = (*fits.first()? as f64, *fits.last()? as f64);
    Some((lo * hi).sqrt() as u64)
}

/// Replays one report. `version` is the release the log shows near the report, if any;
/// `policy` the config's compiled rules (`Policy::default()` has none).
pub fn replay(
    ev: &OomEvent,
    version: Option<KernelVersion>,
    policy: &Policy,
    kill_unit: crate::config::KillUnit,
) -> Replay {
    let page_bytes = crate::diagnosis::page_bytes(ev);
    let era = find_era(ev, version);
    let total_pages = total_pages(ev, page_bytes);
    let scope = match crate::diagnosis::scope(ev) {
        crate::diagnosis::Scope::Memcg => {
            format!("memcg {}", ev.oom_memcg.as_deref().unwrap_or("(not named)"))
        }
        crate::diagnosis::Scope::Global => "global".to_owned(),
        crate::diagnosis::Scope::Cpuset => "cpuset".to_owned(),
        crate::diagnosis::Scope::MemoryPolicy => "memory policy".to_owned(),
        crate::diagnosis::Scope::Unknown => "unknown".to_owned(),
    };
    // Before 5.1 the Kill process line names the selection; after, the kill is the selection.
    let kernel_victim_pid = ev.selected_pid.or(ev.pid);
    let kernel_victim_comm = ev.selected_comm.clone().or_else(|| ev.comm.clone());
    let mut out = Replay {
        kernel_victim_pid,
        kernel_victim_comm,
        kernel_killed_pid: ev.pid,
        model_victim_pid: None,
        replay_victim_pid: None,
        replay_victim_comm: None,
        agrees: false,
        outcome: Outcome::NotReplayable,
        reason: String::new(),
        era: era.clone(),
        total_pages: total_pages.clone(),
        scope,
        kill_unit: String::new(),
        candidates: Vec::new(),
        rows_dropped: ev.tasks_dropped,
        score_check: None,
    };
    let not = |mut o: Replay, why: String| {
        o.reason = why;
        o
    };
    if ev.tasks.is_empty() {
        return not(
            out,
            "no task dump (vm.oom_dump_tasks=0, rate-limited, or not in the log)".into(),
        );
    }
    if ev.kind != EventKind::Kill || kernel_victim_pid.is_none() {
        return not(
            out,
            format!("the kernel chose no victim ({})", kind_word(ev.kind)),
        );
    }
    if ev
        .message
        .as_deref()
        .is_some_and(|m| m.contains("oom_kill_allocating_task"))
    {
        return not(
            out,
            "vm.oom_kill_allocating_task: the kernel killed the allocating task without choosing"
                .into(),
        );
    }
    let Some(era_v) = era.era else {
        return not(
            out,
            format!("{}: the pre-2.6.36 heuristic (CPU time, nice, children) is not computable from a dump", era.basis),
        );
    };
    let rows = &ev.tasks;
    let victim_cg = (kernel_victim_pid, ev.task_memcg.as_deref());
    let mut total_pages = total_pages;
    let mut tp_inferred = false;
    if total_pages.pages.is_none() {
        if let Some(tp) = tp_from_score(ev, era_v, page_bytes, &total_pages) {
            total_pages.pages = Some(tp);
            tp_inferred = true;
            total_pages.basis = format!(
                "{}; {tp} pages fits the printed score {}",
                total_pages.basis,
                ev.score.unwrap_or(0)
            );
        }
    }
    out.total_pages = total_pages.clone();
    let tp_best = total_pages.pages.unwrap_or(total_pages.lo_pages);
    let best = pass(era_v, rows, page_bytes, tp_best, policy, victim_cg);
    let tie_rules: Vec<bool> = match era.earlier_wins_ties {
        Some(e) => vec![e],
        None => vec![true, false],
    };
    let model = kernel_select(&best.verdicts, tie_rules[0]);
    let chosen = policy::choose(&best.judged);
    out.model_victim_pid = model.map(|i| rows[i].pid);
    out.replay_victim_pid = chosen.map(|i| rows[i].pid);
    out.replay_victim_comm = chosen.map(|i| rows[i].name.clone());
    out.candidates = rows
        .iter()
        .zip(best.verdicts.iter().zip(&best.judged))
        .map(|(r, (v, j))| Replayed {
            pid: r.pid,
            name: r.name.clone(),
            uid: r.uid,
            oom_score_adj: row_adj(r),
            mem_pages: row_mem(r, page_bytes).map(|m| m.total_pages()),
            verdict: *v,
            judgement: match j {
                Judgement::Excluded(w) => format!("excluded: {w}"),
                Judgement::Eligible { rule: Some(r), .. } => format!("eligible ({r})"),
                Judgement::Eligible { rule: None, .. } => "eligible".to_owned(),
            },
            policy_score: match j {
                Judgement::Eligible { score, .. } => Some(*score),
                Judgement::Excluded(_) => None,
            },
        })
        .collect();
    out.kill_unit = match kill_unit {
        crate::config::KillUnit::Process => "process".to_owned(),
        crate::config::KillUnit::Pgroup => {
            "pgroup (the dump does not show process groups)".to_owned()
        }
        crate::config::KillUnit::Cgroup => {
            "cgroup (the victim's; the dump does not name each row's cgroup)".to_owned()
        }
    };
    let kv = kernel_victim_pid.unwrap_or(0);
    let k_idx = rows.iter().position(|r| r.pid == kv);
    if let (Some(printed), Some(k), false) = (ev.score, k_idx, era_v == Era::Signed59) {
        let at = |tp: u64| {
            badness::badness(era_v, &facts(&rows[k], page_bytes), tp)
                .points()
                .map(|p| printed_score(era_v, p, tp))
        };
        let here = at(tp_best);
        out.score_check = Some(if out.total_pages.pages.is_none() {
            // No size of the scope in the text (a memcg report without its limit line, as in a
            // grep excerpt) and no totalpages reproduces the printed score: nothing to check
            // against (tp_best is then only a lower bound, not the kernel's figure).
            format!("printed score {printed}: no check (the report gives no size of its scope)")
        } else if tp_inferred {
            format!("printed score {printed} used to infer totalpages (no check)")
        } else if here == Some(printed) {
            format!("printed score {printed} matches")
        } else if tp_grid(&total_pages)
            .into_iter()
            .any(|tp| at(tp) == Some(printed))
        {
            format!(
                "printed score {printed} matches within the totalpages bounds (at {tp_best}: {})",
                here.map_or("never".to_owned(), |h| h.to_string())
            )
        } else {
            format!(
                "printed score {printed} mismatch: computed {}",
                here.map_or("never".to_owned(), |h| h.to_string())
            )
        });
    }
    let name_of = |i: usize| format!("{} (pid {})", rows[i].name, rows[i].pid);
    let score_of = |i: usize| match best.verdicts[i] {
        Verdict::Points(p) => format!("{p}"),
        Verdict::Unkillable(u) => u.reason().to_owned(),
    };
    // 1. Agreement.
    if out.replay_victim_pid == kernel_victim_pid {
        out.agrees = true;
        out.outcome = Outcome::Agrees;
        let i = k_idx.unwrap_or(0);
        let tied = best
            .verdicts
            .iter()
            .filter(|v| **v == best.verdicts[i])
            .count();
        out.reason = if tied > 1 {
            format!(
                "same victim: {} with badness {} ({unit}), tied with {} other(s), taken by scan order",
                name_of(i),
                score_of(i),
                tied - 1,
                unit = unit(era_v)
            )
        } else {
            format!(
                "same victim: {}, highest badness {} ({})",
                name_of(i),
                score_of(i),
                unit(era_v)
            )
        };
        return out;
    }
    // 2. The kernel's victim is not in the dump: rows missing.
    let Some(k) = k_idx else {
        out.outcome = Outcome::RowsMissing;
        out.reason = format!(
            "the kernel's victim (pid {kv}) is not in the task dump ({} rows{}): rows are missing",
            rows.len(),
            if ev.tasks_dropped > 0 {
                format!(", {} dropped", ev.tasks_dropped)
            } else {
                String::new()
            }
        );
        return out;
    };
    // 3. oomguard never chooses it.
    if let Judgement::Excluded(why) = &best.judged[k] {
        let by_rule = why.starts_with("protected by");
        out.outcome = if by_rule {
            Outcome::Policy
        } else {
            Outcome::Unkillable
        };
        out.reason = format!(
            "the kernel's victim {} is excluded by oomguard: {why}",
            name_of(k)
        );
        return out;
    }
    let r = chosen.unwrap_or(k);
    // 4. Rules changed the order.
    let rule_of = |i: usize| match &best.judged[i] {
        Judgement::Eligible { rule: Some(r), .. } => Some(r.clone()),
        _ => None,
    };
    if let Some(rule) = rule_of(r).or_else(|| rule_of(k)) {
        out.outcome = Outcome::Policy;
        out.reason = format!(
            "the config's rules chose {} over the kernel's {} ({rule})",
            name_of(r),
            name_of(k)
        );
        return out;
    }
    // 5. A tie: equal badness, decided by scan order.
    if best.verdicts[r] == best.verdicts[k] {
        out.outcome = Outcome::Tie;
        let rule = match era.earlier_wins_ties {
            Some(true) => "this pre-5.3 kernel keeps the earlier process on a tie (thread-group-leader check), oomguard takes the later (as 5.3+ kernels do)".to_owned(),
            Some(false) => "both take the later process on a tie, but the kernel's scan order differs from the dump's row order".to_owned(),
            None => "the kernel's version (5.1-5.3) decides whether the earlier or the later process wins a tie".to_owned(),
        };
        out.reason = format!(
            "tie at badness {} ({}) between {} and {}: {rule}",
            score_of(k),
            unit(era_v),
            name_of(k),
            name_of(r)
        );
        return out;
    }
    // 6. Does some totalpages within the bounds, or the era's rounding, give the kernel's choice?
    for tp in tp_grid(&total_pages) {
        let p = pass(era_v, rows, page_bytes, tp, policy, victim_cg);
        let pk = match (p.verdicts[k], p.verdicts[r]) {
            (Verdict::Points(a), Verdict::Points(b)) => a >= b,
            _ => false,
        };
        if policy::choose(&p.judged) == Some(k)
            || (pk
                && tie_rules
                    .iter()
                    .any(|e| kernel_select(&p.verdicts, *e) == Some(k)))
        {
            out.outcome = Outcome::Rounding;
            out.reason = format!(
                "with totalpages {tp} (the report bounds it to {}..{}: {}) the kernel's {} wins; at {tp_best} oomguard scores {} {} against {} {}",
                total_pages.lo_pages,
                total_pages.hi_pages,
                total_pages.basis,
                name_of(k),
                name_of(r),
                score_of(r),
                name_of(k),
                score_of(k)
            );
            return out;
        }
    }
    // 7. Missing inputs: a dump without swap or page-table columns, or dropped rows.
    let lacks_inputs = rows.first().is_some_and(|t| {
        t.swapents_pages.is_none() || (t.nr_ptes_pages.is_none() && t.pgtables_bytes.is_none())
    });
    if ev.tasks_dropped > 0 || lacks_inputs {
        out.outcome = Outcome::RowsMissing;
        out.reason = format!(
            "oomguard scores {} {} above the kernel's {} {}, but the dump {}",
            name_of(r),
            score_of(r),
            name_of(k),
            score_of(k),
            if ev.tasks_dropped > 0 {
                format!("dropped {} rows", ev.tasks_dropped)
            } else {
                "has no swap or page-table column, which oom_badness() counts".to_owned()
            }
        );
        return out;
    }
    out.outcome = Outcome::Unexplained;
    out.reason = format!(
        "oomguard scores {} {} above the kernel's {} {} ({}, {}): unexplained",
        name_of(r),
        score_of(r),
        name_of(k),
        score_of(k),
        unit(era_v),
        era.basis
    );
    out
}

fn unit(era: Era) -> &'static str {
    match era {
        Era::Normalized2636 => "permille of totalpages, 2.6.36-3.9",
        Era::Pages310 => "pages, 3.10-3.13",
        Era::Pages314 => "pages, 3.14-4.16",
        Era::Pages417 => "pages, 4.17-5.8",
        Era::Signed59 => "pages, 5.9+",
    }
}

fn kind_word(k: EventKind) -> &'static str {
    match k {
        EventKind::Kill => "kill",
        EventKind::NoKillable => "no killable process",
        EventKind::Panic => "panic",
        EventKind::Incomplete => "incomplete report",
        EventKind::Exit => "exit",
        EventKind::Warning => "warning",
        EventKind::Forecast => "forecast",
    }
}

#[cfg(test)]
mod tests;
