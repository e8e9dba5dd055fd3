//! `oomguard replay`: a past kernel OOM report's task dump replayed through oomguard's own
//! badness and policy. Pure: an [`OomEvent`] (from `oomlog`), the kernel version when the log
//! shows it, and a compiled [`Policy`] in; the candidates as the kernel saw them, whom the kernel
//! chose, whom oomguard would choose and why they agree or differ, out. Reading logs and
//! rendering live in the `oomguard` crate (`replay/`).
//!
//! The badness is [`crate::badness::badness`] and the choice [`crate::policy::choose`]; this
//! module only turns dump rows into their inputs, finds the kernel era and the scope's
//! `totalpages`, and states the outcome in one line. `docs/replay.md` has the agreement table
//! over every fixture report.
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

use serde::Serialize;

use crate::badness::{self, Era, KernelVersion, TaskFacts, TaskMemPages, Verdict};
use crate::event::{EventKind, OomEvent, TaskRow};
use crate::policy::{self, Candidate, Judgement, Policy};

/// Finds the kernel release in a stack-dump line (`CPU: 1 PID: 7 Comm: x Not tainted 5.10.0-28
/// #1`, `Tainted: G O 3.10.0-229.el7 #1`, `Pid: 6344, comm: sh Not tainted 3.2.32 #1`).
pub fn kernel_release_in_line(line: &str) -> Option<KernelVersion> {
    let at = line.find("ainted")?;
    let rest = &line[at + "ainted".len()..];
    // The taint flags come first ("G           O E ----V-------"); the release is the first
    // token that starts with a digit and has a dot, and it comes before the build number "#N".
    for tok in rest.split_whitespace() {
        if tok.starts_with('#') {
            break;
        }
        if tok.starts_with(|c: char| c.is_ascii_digit()) && tok.contains('.') {
            return KernelVersion::parse(tok);
        }
    }
    None
}

/// How the kernel era was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EraFinding {
    /// `None`: before 2.6.36 (Rik van Riel's heuristic, not computable from a dump).
    pub era: Option<Era>,
    /// The release the log shows, when it shows one.
    pub version: Option<String>,
    /// Whether pre-5.3 tie-breaking applies (the earlier process wins a tie); `None` when the
    /// report cannot tell (then both rules are tried).
    pub earlier_wins_ties: Option<bool>,
    /// Where the era came from, for people.
    pub basis: String,
}

/// The era of a report: from the release in the log when there is one, else from the formats.
pub fn find_era(ev: &OomEvent, version: Option<KernelVersion>) -> EraFinding {
    let has = |f: fn(&TaskRow) -> bool| ev.tasks.first().is_some_and(f);
    let score_col = has(|t| t.oom_score_adj.is_some());
    if let Some(v) = version {
        let era = Era::for_version(v).or_else(|| {
            // RHEL 6's 2.6.32 carries the 2.6.36 rewrite; its dump shows oom_score_adj.
            (score_col && v >= KernelVersion::new(2, 6, 32)).then_some(Era::Normalized2636)
        });
        let backport = era.is_some() && Era::for_version(v).is_none();
        return EraFinding {
            era,
            version: Some(v.to_string()),
            earlier_wins_ties: Some(v < KernelVersion::new(5, 3, 0)),
            basis: if backport {
                format!("kernel {v} in the log; its dump has oom_score_adj, so the 2.6.36 rewrite was backported (RHEL 6)")
            } else {
                format!("kernel {v} in the log")
            },
        };
    }
    // No release: the dump's columns and the kill line's form (docs: kernel-oom-formats 2.8).
    let (era, earlier, basis) = if has(|t| t.rss_anon_pages.is_some()) {
        (Some(Era::Signed59), Some(false), "rss_anon column (6.8+)")
    } else if has(|t| t.pgtables_bytes.is_some()) {
        if ev.pgtables_kb.is_some() {
            // 5.4+ kill line; 5.9 changed the floor. Both eras give the same choice unless
            // scores go below 1, which needs a negative adj: then this is a guess.
            (
                Some(Era::Signed59),
                Some(false),
                "pgtables_bytes column and a 5.4+ kill line (assumed 5.9+)",
            )
        } else if ev.score.is_some() {
            (
                Some(Era::Pages417),
                Some(true),
                "pgtables_bytes column and a Kill process line (4.15-5.0; assumed 4.17+)",
            )
        } else {
            (
                Some(Era::Pages417),
                None,
                "pgtables_bytes column (4.15-5.3; assumed 4.17+)",
            )
        }
    } else if has(|t| t.nr_pmds_pages.is_some()) {
        (Some(Era::Pages314), Some(true), "nr_pmds column (4.0-4.14)")
    } else if has(|t| t.nr_ptes_pages.is_some()) {
        (
            Some(Era::Pages314),
            Some(true),
            "nr_ptes column without nr_pmds (3.7-3.19; assumed 3.14+)",
        )
    } else if score_col {
        (
            Some(Era::Normalized2636),
            Some(true),
            "oom_adj and oom_score_adj columns (2.6.36-3.6)",
        )
    } else {
        (
            None,
            Some(true),
            if ev.tasks.is_empty() {
                "no task dump"
            } else {
                "no oom_score_adj column (before 2.6.36)"
            },
        )
    };
    EraFinding {
        era,
        version: None,
        earlier_wins_ties: earlier,
        basis: basis.to_owned(),
    }
}

/// The scope's `totalpages` (the unit of `oom_score_adj`), as far as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotalPages {
    /// The best figure; `None` when the report gives no size of the scope.
    pub pages: Option<u64>,
    /// Bounds the kernel's figure lies in (inclusive).
    pub lo_pages: u64,
    pub hi_pages: u64,
    pub basis: String,
}

/// Upper bound used when the report gives no size at all: 2^40 pages (4 PiB of 4 KiB pages).
const UNKNOWN_HI_PAGES: u64 = 1 << 40;

/// `totalpages` for the report's scope (`constrained_alloc()`): a memcg OOM uses
/// `mem_cgroup_get_max()` (limit, plus swap where swap is accounted and swappiness is not 0);
/// a global OOM `totalram_pages() + total_swap_pages`; cpuset and mempolicy OOMs the allowed
/// nodes' present pages plus swap (the report does not print these: bounded by the machine).
pub fn total_pages(ev: &OomEvent, page_bytes: u64) -> TotalPages {
    let ps = page_bytes.max(1);
    let kb_pages = |kb: u64| kb.saturating_mul(1024) / ps;
    // 9007199254740988kB (v2 max) and 9007199254740991kB (v1 res_counter) mean unlimited.
    let limited = |kb: u64| kb < (1u64 << 50);
    let unknown = |basis: &str| TotalPages {
        pages: None,
        lo_pages: 1,
        hi_pages: UNKNOWN_HI_PAGES,
        basis: basis.to_owned(),
    };
    if ev.is_memcg() {
        let Some(limit_kb) = ev.memcg_limit_kb.filter(|k| limited(*k)) else {
            return unknown("memcg OOM without its limit line");
        };
        let limit = kb_pages(limit_kb).max(1);
        // Swap counted on top of the limit: v1 memsw - memory, v2 swap.max; either way capped
        // by the machine's total swap, which a memcg report does not print.
        let swap_room = match (ev.memsw_limit_kb, ev.swap_limit_kb) {
            (Some(ms), _) => Some(if limited(ms) {
                kb_pages(ms).saturating_sub(limit)
            } else {
                UNKNOWN_HI_PAGES
            }),
            (None, Some(s)) => Some(if limited(s) {
                kb_pages(s)
            } else {
                UNKNOWN_HI_PAGES
            }),
            (None, None) => None,
        };
        return match swap_room {
            Some(0) | None => TotalPages {
                pages: Some(limit),
                lo_pages: limit,
                hi_pages: limit,
                basis: format!("the memcg limit, {limit} pages (no swap room above it)"),
            },
            Some(room) => TotalPages {
                pages: Some(limit),
                lo_pages: limit,
                hi_pages: limit.saturating_add(room),
                basis: format!(
                    "the memcg limit, {limit} pages, plus swap up to the machine's (not in a memcg report)"
                ),
            },
        };
    }
    let info = ev.memory.as_ref().and_then(|m| m.mem_info.as_ref());
    let Some(info) = info else {
        return unknown("no Mem-Info block");
    };
    let swap = info.swap_total_bytes.map(|b| b / ps);
    let managed: Option<u64> = {
        let zs: Vec<u64> = info.zones.iter().filter_map(|z| z.managed_bytes).collect();
        (!zs.is_empty() && zs.len() == info.zones.len()).then(|| zs.iter().map(|b| b / ps).sum())
    };
    let scope_note = match crate::diagnosis::scope(ev) {
        crate::diagnosis::Scope::Cpuset | crate::diagnosis::Scope::MemoryPolicy => {
            // Allowed nodes only: at most the machine.
            Some("cpuset/mempolicy OOM: the allowed nodes' pages, at most the machine's")
        }
        _ => None,
    };
    let (ram, exact, basis) = match (managed, info.ram_bytes, info.reserved_bytes) {
        (Some(m), _, _) => (m, true, "the zones' managed pages"),
        (None, Some(r), Some(res)) => (
            (r / ps).saturating_sub(res / ps),
            false,
            "pages RAM minus reserved",
        ),
        (None, Some(r), None) => (r / ps, false, "pages RAM"),
        _ => return unknown("Mem-Info without RAM figures"),
    };
    let total = ram + swap.unwrap_or(0);
    // totalram_pages() is the managed count; "RAM - reserved" is within a fraction of a per
    // cent of it (memory hotplug and balloon drivers move it). Allow 1 %.
    let slack = if exact { 0 } else { total / 100 };
    let lo = if scope_note.is_some() {
        1
    } else {
        total - slack
    };
    TotalPages {
        pages: Some(total),
        lo_pages: lo.max(1),
        hi_pages: total + slack,
        basis: format!(
            "{basis}{} = {total} pages{}",
            if swap.is_some() { " + swap" } else { "" },
            scope_note.map(|n| format!("; {n}")).unwrap_or_default()
        ),
    }
}

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

/// One reading oomguard logged: the figures of a decision event's `trigger` (the event log
/// holds readings only where the daemon warned or acted; it keeps no periodic series).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    pub unix_time_s: f64,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub psi_some_avg10_pct: Option<f64>,
    pub psi_full_avg10_pct: Option<f64>,
    pub cgroup: Option<String>,
    pub cgroup_usage_bytes: Option<u64>,
    pub cgroup_limit_bytes: Option<u64>,
    /// What the daemon logged then, for people (`warning memory`, `kill psi_some, dry run`).
    pub logged: String,
}

/// A reading at which a trigger fired, and how long before the kernel's kill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub at_unix_s: f64,
    pub lead_s: f64,
    /// `memory`, `swap`, `psi_some`, `psi_full`, `cgroup`; for the logged decision, what the
    /// daemon wrote.
    pub trigger: String,
    pub level: String,
}

/// The readings before one kernel OOM kill, judged with a config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leads {
    pub kernel_at_unix_s: f64,
    /// Readings in the window before the kill.
    pub readings: usize,
    /// The first reading at which the config's triggers fire.
    pub first_fire: Option<Lead>,
    /// The first decision the daemon itself logged in the window (with its own config then).
    pub first_logged: Option<Lead>,
    /// What the data could not show.
    pub note: String,
}

/// Judges the readings logged in the `window_s` seconds before a kernel kill at `kernel_at`
/// with `cfg`'s triggers (`trigger::evaluate`, the daemon's own rules; PSI durations are
/// measured between readings, so sparse readings can only under-report them). `glob` matches
/// a `[[cgroups]]` path pattern against a cgroup path. For a memcg OOM, `memcg` is the
/// cgroup that ran out: readings of unrelated cgroups (neither it, an ancestor nor a
/// descendant) do not count.
pub fn leads(
    readings: &[Reading],
    kernel_at: f64,
    memcg: Option<&str>,
    cfg: &crate::config::Config,
    window_s: f64,
    glob: &dyn Fn(&str, &str) -> bool,
) -> Leads {
    let related = |c: &str| match memcg {
        None => true,
        Some(m) => {
            let under = |a: &str, b: &str| {
                a == b || a.starts_with(&format!("{}/", b.trim_end_matches('/')))
            };
            under(m, c) || under(c, m)
        }
    };
    use crate::trigger::{self, Level, PsiState, Sample, Thresholds};
    let mut rs: Vec<&Reading> = readings
        .iter()
        .filter(|r| r.unix_time_s <= kernel_at && r.unix_time_s >= kernel_at - window_s)
        .filter(|r| r.cgroup.as_deref().is_none_or(related))
        .collect();
    rs.sort_by(|a, b| a.unix_time_s.total_cmp(&b.unix_time_s));
    let mut state = PsiState::default();
    let t0 = rs.first().map_or(kernel_at, |r| r.unix_time_s);
    let mut first_fire = None;
    for r in &rs {
        let lead = |trigger: &str, level: &str| Lead {
            at_unix_s: r.unix_time_s,
            lead_s: kernel_at - r.unix_time_s,
            trigger: trigger.to_owned(),
            level: level.to_owned(),
        };
        if let (Some(lim), Some(use_b), Some(cg)) = (
            r.cgroup_limit_bytes,
            r.cgroup_usage_bytes,
            r.cgroup.as_deref(),
        ) {
            let watched = cfg.cgroups.iter().find(|w| glob(&w.path, cg));
            if let Some(w) = watched {
                let head = w.headroom.resolve(lim);
                if head > 0 && use_b.saturating_add(head) >= lim {
                    first_fire = Some(lead("cgroup", "term"));
                    break;
                }
            }
        }
        let (Some(total), Some(avail)) = (r.mem_total_bytes, r.mem_available_bytes) else {
            continue;
        };
        let s = Sample {
            mem_total_bytes: total,
            mem_available_bytes: avail,
            swap_total_bytes: r.swap_total_bytes.unwrap_or(0),
            swap_free_bytes: r.swap_free_bytes.unwrap_or(0),
            psi_some_avg10_pct: r.psi_some_avg10_pct,
            psi_full_avg10_pct: r.psi_full_avg10_pct,
        };
        let th = Thresholds::from_config(cfg, &s);
        let now = std::time::Duration::from_secs_f64((r.unix_time_s - t0).max(0.0));
        state.observe(&th, &s, now);
        let v = trigger::evaluate(&th, &s, &state, now);
        if v.level != Level::Calm {
            let level = if v.level == Level::Kill {
                "kill"
            } else {
                "term"
            };
            first_fire = Some(lead(v.trigger.map_or("?", |t| t.label()), level));
            break;
        }
    }
    let first_logged = rs.first().map(|r| Lead {
        at_unix_s: r.unix_time_s,
        lead_s: kernel_at - r.unix_time_s,
        trigger: r.logged.clone(),
        level: "logged".to_owned(),
    });
    let note = if rs.is_empty() {
        format!(
            "no oomguard reading in the {window_s:.0} s before this kill: the event log records \
             readings only when the daemon warned or acted, so replay cannot say when a trigger \
             would first have fired"
        )
    } else {
        "readings exist only at the daemon's own decisions (no periodic series is logged): a \
         trigger may have fired earlier than the first logged reading"
            .to_owned()
    };
    Leads {
        kernel_at_unix_s: kernel_at,
        readings: rs.len(),
        first_fire,
        first_logged,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KillUnit;

    fn row(pid: i64, uid: u64, rss: u64, adj: i64, name: &str) -> TaskRow {
        TaskRow {
            pid,
            uid: Some(uid),
            tgid: Some(pid),
            rss_pages: Some(rss),
            pgtables_bytes: Some(0),
            swapents_pages: Some(0),
            oom_score_adj: Some(adj),
            name: name.to_owned(),
            ..TaskRow::default()
        }
    }

    fn memcg_event(rows: Vec<TaskRow>, victim: i64, limit_kb: u64) -> OomEvent {
        let mut ev = OomEvent::new(EventKind::Kill);
        ev.constraint = Some("CONSTRAINT_MEMCG".into());
        ev.oom_memcg = Some("/test".into());
        ev.memcg_limit_kb = Some(limit_kb);
        ev.swap_limit_kb = Some(0);
        ev.pid = Some(victim);
        ev.pgtables_kb = Some(0);
        ev.tasks = rows;
        ev
    }

    #[test]
    fn release_in_stack_lines() {
        let v = |s| kernel_release_in_line(s).map(|v| v.to_string());
        assert_eq!(
            v("CPU: 1 PID: 1 Comm: x Not tainted 5.10.0-28-amd64 #1 Debian").as_deref(),
            Some("5.10.0")
        );
        assert_eq!(
            v("CPU: 3 PID: 9 Comm: y Tainted: G           O E ----V-------   3.10.0-229.42.1.105.x86_64 #1").as_deref(),
            Some("3.10.0")
        );
        assert_eq!(
            v("Pid: 6344, comm: sh Not tainted 3.2.32-pk06.11-i386 #1").as_deref(),
            Some("3.2.32")
        );
        assert_eq!(v("kernel tainted by module"), None);
        assert_eq!(v("Tainted: G W #5"), None);
    }

    #[test]
    fn default_policy_agrees_and_tie_rules_follow_the_era() {
        let rows = vec![
            row(10, 1000, 500, 0, "a"),
            row(11, 1000, 900, 0, "b"),
            row(12, 1000, 900, 0, "c"),
        ];
        let ev = memcg_event(rows, 12, 4096 * 4);
        let p = Policy::default();
        // 5.9+: the later of two equal scores, as oomguard.
        let r = replay(
            &ev,
            Some(KernelVersion::new(6, 1, 0)),
            &p,
            KillUnit::Process,
        );
        assert!(r.agrees, "{r:?}");
        assert_eq!(r.replay_victim_pid, Some(12));
        assert!(r.reason.contains("tied"), "{}", r.reason);
        // 4.19: the kernel keeps the earlier (pid 11); oomguard would take 12: a tie, explained.
        let mut ev419 = ev.clone();
        ev419.pid = Some(11);
        let r = replay(
            &ev419,
            Some(KernelVersion::new(4, 19, 0)),
            &p,
            KillUnit::Process,
        );
        assert!(!r.agrees);
        assert_eq!(r.outcome, Outcome::Tie);
        assert_eq!(r.model_victim_pid, Some(11));
        assert!(r.reason.contains("pre-5.3"), "{}", r.reason);
    }

    #[test]
    fn unkillable_missing_and_rules() {
        let p = Policy::default();
        // The kernel's victim is absent from the dump.
        let ev = memcg_event(vec![row(10, 0, 5, 0, "a")], 99, 1 << 20);
        let r = replay(&ev, None, &p, KillUnit::Process);
        assert_eq!(r.outcome, Outcome::RowsMissing);
        // adj -1000 is never chosen, by either.
        let ev = memcg_event(
            vec![row(10, 0, 5000, -1000, "big"), row(11, 0, 5, 0, "small")],
            11,
            1 << 20,
        );
        let r = replay(&ev, None, &p, KillUnit::Process);
        assert!(r.agrees);
        assert_eq!(r.candidates[0].verdict.points(), None);
        // A protect rule changes the choice: reported as policy.
        let rules = [crate::config::RuleConfig {
            action: crate::config::RuleAction::Protect,
            name: Some("^small$".into()),
            cmdline: None,
            exe: None,
            cgroup: None,
            user: None,
            adjust: 0,
        }];
        let pol = Policy::compile(&rules, 0).unwrap();
        let ev = memcg_event(
            vec![row(10, 0, 50, 0, "other"), row(11, 0, 500, 0, "small")],
            11,
            1 << 20,
        );
        let r = replay(&ev, None, &pol, KillUnit::Process);
        assert!(!r.agrees);
        assert_eq!(r.outcome, Outcome::Policy);
        assert_eq!(r.replay_victim_pid, Some(10));
    }

    #[test]
    fn not_replayable_reports_say_why() {
        let p = Policy::default();
        let mut ev = memcg_event(Vec::new(), 5, 1024);
        let r = replay(&ev, None, &p, KillUnit::Process);
        assert_eq!(r.outcome, Outcome::NotReplayable);
        ev.tasks = vec![row(5, 0, 1, 0, "x")];
        ev.kind = EventKind::Panic;
        ev.pid = None;
        assert_eq!(
            replay(&ev, None, &p, KillUnit::Process).outcome,
            Outcome::NotReplayable
        );
        let mut old = memcg_event(
            vec![TaskRow {
                oom_score_adj: None,
                oom_adj: Some(0),
                pgtables_bytes: None,
                swapents_pages: None,
                ..row(5, 0, 1, 0, "x")
            }],
            5,
            1024,
        );
        old.pgtables_kb = None;
        let r = replay(&old, None, &p, KillUnit::Process);
        assert_eq!(r.outcome, Outcome::NotReplayable, "{r:?}");
        assert!(r.reason.contains("2.6.36"));
    }

    #[test]
    fn totalpages_per_scope() {
        let ev = memcg_event(Vec::new(), 1, 262_144);
        let t = total_pages(&ev, 4096);
        assert_eq!(
            (t.pages, t.lo_pages, t.hi_pages),
            (Some(65_536), 65_536, 65_536)
        );
        let mut v1 = ev.clone();
        v1.swap_limit_kb = None;
        v1.memsw_limit_kb = Some(9_007_199_254_740_988);
        let t = total_pages(&v1, 4096);
        assert_eq!(t.lo_pages, 65_536);
        assert!(t.hi_pages > 1 << 30);
        let mut unknown = ev;
        unknown.memcg_limit_kb = None;
        assert_eq!(total_pages(&unknown, 4096).pages, None);
    }

    #[test]
    fn leads_say_when_a_trigger_would_have_fired() {
        let reading = |t: f64, avail_pct: u64, logged: &str| Reading {
            unix_time_s: t,
            mem_total_bytes: Some(100 << 20),
            mem_available_bytes: Some((100 << 20) * avail_pct / 100),
            logged: logged.to_owned(),
            ..Reading::default()
        };
        let rs = [
            reading(900.0, 50, "old"),
            reading(1000.0, 30, "warning memory"),
            reading(1010.0, 8, "kill memory, dry run"),
            reading(1030.0, 2, "kill memory, dry run"),
        ];
        let cfg = crate::config::Config::default();
        let glob = |a: &str, b: &str| a == b;
        let l = leads(&rs, 1040.0, None, &cfg, 60.0, &glob);
        assert_eq!(l.readings, 3);
        let f = l.first_fire.unwrap();
        // Default term_below 10 %: the 8 % reading, 30 s before the kill.
        assert_eq!((f.trigger.as_str(), f.level.as_str()), ("memory", "term"));
        assert!((f.lead_s - 30.0).abs() < 1e-9);
        assert_eq!(l.first_logged.unwrap().trigger, "warning memory");
        // A stricter config fires at none of them.
        let mut strict = cfg.clone();
        strict.memory.term_below = crate::size::Amount::Percent(1.0);
        strict.memory.kill_below = crate::size::Amount::Percent(1.0);
        assert!(leads(&rs, 1040.0, None, &strict, 60.0, &glob)
            .first_fire
            .is_none());
        // Nothing in the window: the note says what is missing.
        let none = leads(&rs, 5000.0, None, &cfg, 60.0, &glob);
        assert_eq!(none.readings, 0);
        assert!(none.note.contains("no oomguard reading"));
        // A memcg OOM counts readings of its own cgroup (and system-wide ones), not others'.
        let mut cgcfg = cfg.clone();
        cgcfg.cgroups.push(crate::config::CgroupWatch {
            path: "/a".into(),
            headroom: crate::size::Amount::Bytes(10),
            psi: None,
        });
        let cg = |t: f64, c: &str| Reading {
            unix_time_s: t,
            cgroup: Some(c.to_owned()),
            cgroup_usage_bytes: Some(95),
            cgroup_limit_bytes: Some(100),
            logged: format!("kill cgroup {c}"),
            ..Reading::default()
        };
        let rs = [cg(1000.0, "/b"), cg(1010.0, "/a")];
        let l = leads(&rs, 1020.0, Some("/a"), &cgcfg, 60.0, &glob);
        assert_eq!(l.readings, 1);
        let f = l.first_fire.unwrap();
        assert_eq!(f.trigger, "cgroup");
        assert!((f.lead_s - 10.0).abs() < 1e-9);
    }
}
