//! The ahead-of-need ranking pass: while memory falls fast towards the SIGTERM threshold, a
//! whole-process scan done in slices between readings, so that the decision at the crossing
//! re-reads only the best few candidates instead of every process ([`WarmPlan`] says when).
//!
//! Off the decision's path: each slice is bounded by [`WARM_SLICE`]; a completed pass is ranked
//! by [`Daemon::rank_warm`] and handed to the decision by [`Daemon::warm_candidates`].

use std::time::{Duration, Instant};

use oomguard_core::badness;
use oomguard_core::policy::{Judgement, Policy};
use oomguard_core::trigger::{self, WarmPlan};

use super::candidates::descendants;
use super::{read_sample, Daemon};
use crate::host::scan::{ProcSample, Sampled, Scanner};
use crate::sense::reread;

/// The ahead-of-need ranking (see [`WarmPlan`]): a whole-process scan done in slices of
/// [`WARM_SLICE`] between readings while memory falls fast towards the SIGTERM threshold, so the
/// decision at the crossing re-reads only the [`WARM_TOP`] best candidates instead of every
/// process. Measured here (docs/benchmarks.md): the decision scan of 8,000 processes took 0.46 s,
/// 470 ms from crossing to signal at 256 MiB/s; a slice keeps the reading interval near 1 ms.
/// A process started after the pass began is listed and read at the decision; a process that grew
/// past the best [`WARM_TOP`] since the pass began is the case this trades away (passes repeat
/// every [`WARM_REFRESH`] while memory falls); a pass is used only if it began at most
/// [`WARM_MAX_AGE`] ago.
#[derive(Debug, Default)]
pub(super) struct WarmScan {
    pub(super) pids: Vec<i32>,
    pub(super) next: usize,
    /// The pass in progress began then.
    pub(super) started: Option<Instant>,
    /// What this pass reads of each process (chosen when it began).
    pub(super) glance: Glance,
    pub(super) partial: Vec<Glimpse>,
    /// `/proc/sys/kernel/ns_last_pid` just before the pass listed `/proc`: a process started
    /// since has a higher pid (unless pid numbers wrapped).
    pub(super) last_pid: Option<i32>,
    /// The last complete pass (its pids sorted), its `last_pid`, and when it began.
    pub(super) done_last_pid: Option<i32>,
    pub(super) done: Vec<Glimpse>,
    pub(super) done_pids: Vec<i32>,
    /// The pass's best candidates by the policy's score, read in full and judged when the pass
    /// completed (see [`Daemon::rank_warm`]).
    pub(super) best: Vec<ProcSample>,
    pub(super) done_at: Option<Instant>,
    /// MemAvailable at the start of the fill window, and when: the fill that asks for a ranking
    /// is measured over at least [`WARM_FILL_WINDOW`], as readings 1 ms apart often see no change
    /// (the kernel folds per-CPU counter deltas into MemAvailable in batches).
    pub(super) window: Option<(u64, Instant)>,
    pub(super) fill_bytes_per_s: f64,
    /// Keep ranking until then (the last time the plan asked for it, plus [`WARM_LINGER`]).
    pub(super) until: Option<Instant>,
}

/// The fill that asks for a ranking ahead is measured over at least this.
const WARM_FILL_WINDOW: Duration = Duration::from_millis(100);
/// ... or until MemAvailable fell this much, whichever comes first: a fast fill starts the
/// ranking sooner. The per-CPU batching moves MemAvailable by a few MiB at most, so 32 MiB is a
/// real fall. Measured with bench/watch.sh: at ~2.5 GiB/s with 8,000 processes the 100 ms window
/// alone started the first pass only ~150 ms before the crossing, too late in 3 of 5 runs.
const WARM_FILL_DROP_BYTES: u64 = 32 << 20;
/// Once asked for, the ranking goes on for at least this (no flapping on a noisy fill).
const WARM_LINGER: Duration = Duration::from_secs(1);
/// How long one slice of the ahead-of-need scan may take before the next reading.
const WARM_SLICE: Duration = Duration::from_millis(1);
/// A complete pass is repeated after this while memory keeps falling fast.
const WARM_REFRESH: Duration = Duration::from_millis(500);
/// A pass older than this is not used for a decision.
const WARM_MAX_AGE: Duration = Duration::from_secs(2);
/// Candidates re-read (identity and memory) at the decision, best first by the pass's figures.
/// The fast grower that brought the crossing only gains rank between the pass and the decision.
const WARM_TOP: usize = 16;
/// At most this many processes are read in full when a pass completes (the best by their
/// glimpse, until [`WARM_TOP`] eligible ones are found and no later one can beat the best).
const WARM_READ_MAX: usize = 64;

/// What the ahead-of-need pass reads of each process. Reading `stat`, `status` and
/// `oom_score_adj` of 8,000 processes took 125-140 ms on the idle development VM (and 0.2-0.5 s
/// under load), `oom_score` alone 29-35 ms and `stat` 41-47 ms (measured with a C loop of
/// openat/read/close over every pid, 2026-11-29); a fill at 2.5 GiB/s leaves ~200 ms between
/// the first fall and a threshold 512 MiB lower. `oom_score` is the kernel's own badness
/// (memory, swap, page tables and `oom_score_adj`) in steps of 1/1000 of RAM + swap: enough to
/// rank, and the best are then read in full and judged exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Glance {
    /// `oom_score` only: no rule can raise a score, so the kernel's badness bounds the
    /// policy's score from above.
    #[default]
    Score,
    /// `oom_score` and `stat`: a `prefer` rule may raise a score (the name bounds by how much),
    /// or candidates are limited to one parent's descendants (the parent pid).
    ScoreAndStat,
}

/// One process as the ahead-of-need pass glimpsed it: enough to rank it, not to judge it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Glimpse {
    pid: i32,
    /// 0 when `stat` was not read.
    ppid: i32,
    /// An upper bound of the policy's score, in permille of the global totalpages.
    bound_permille: i64,
}

impl WarmScan {
    /// Follows the fill on each system-wide reading: measured over [`WARM_FILL_WINDOW`] (or a
    /// fall of [`WARM_FILL_DROP_BYTES`]), and asked for [`WARM_LINGER`] whenever `plan` wants a
    /// ranking for `headroom_bytes` above the SIGTERM threshold. Returns whether a ranking is
    /// wanted now.
    pub(super) fn observe(
        &mut self,
        plan: &WarmPlan,
        mem_available_bytes: u64,
        headroom_bytes: u64,
        now: Instant,
    ) -> bool {
        match self.window {
            Some((prev, at))
                if now.duration_since(at) >= WARM_FILL_WINDOW
                    || prev.saturating_sub(mem_available_bytes) >= WARM_FILL_DROP_BYTES =>
            {
                self.fill_bytes_per_s = trigger::fill_rate(
                    prev,
                    Duration::ZERO,
                    mem_available_bytes,
                    now.duration_since(at),
                );
                self.window = Some((mem_available_bytes, now));
            }
            Some(_) => {}
            None => self.window = Some((mem_available_bytes, now)),
        }
        if plan.wanted(headroom_bytes, self.fill_bytes_per_s) {
            self.until = Some(now + WARM_LINGER);
        }
        self.until.is_some_and(|t| now < t)
    }

    /// Forgets the passes: the processes changed (a kill), or a rehearsal's pass must not serve.
    pub(super) fn forget(&mut self) {
        self.done_at = None;
        self.started = None;
    }
}

impl Daemon {
    /// Whether an ahead-of-need ranking can serve a decision: the system-wide scan of every
    /// process, judged without reading per-process files the scan does not read.
    pub(super) fn warm_usable(&self) -> bool {
        let n = self.policy.needs();
        self.cfg.candidates_cgroup.is_none() && !(n.cmdline || n.exe || n.cgroup)
    }

    /// One slice of the ahead-of-need scan; returns whether a pass is still in progress.
    pub(super) fn warm_step(&mut self) -> bool {
        let w = &mut self.warm;
        if w.started.is_none() {
            if w.done_at.is_some_and(|t| t.elapsed() < WARM_REFRESH) {
                return false;
            }
            w.last_pid = read_last_pid(&self.ns_last_pid, &mut self.buf);
            if self.scanner.list_pids(&mut w.pids).is_err() {
                return false;
            }
            w.next = 0;
            w.partial.clear();
            w.glance = if self.policy.prefers() || self.cfg.candidates_parent_pid.is_some() {
                Glance::ScoreAndStat
            } else {
                Glance::Score
            };
            w.started = Some(Instant::now());
        }
        let t0 = Instant::now();
        while w.next < w.pids.len() {
            let pid = w.pids[w.next];
            w.next += 1;
            // Vanished and unreadable processes are skipped, as in the full scan.
            if let Some(g) = glimpse(&mut self.scanner, &self.policy, self.era, w.glance, pid) {
                w.partial.push(g);
            }
            if w.next % 16 == 0 && t0.elapsed() >= WARM_SLICE {
                return true;
            }
        }
        std::mem::swap(&mut w.done, &mut w.partial);
        w.done_pids.clear();
        w.done_pids.extend(w.done.iter().map(|g| g.pid));
        w.done_pids.sort_unstable();
        w.done_last_pid = w.last_pid;
        w.done_at = w.started.take();
        self.rank_warm();
        false
    }

    /// Ranks a complete pass (off the decision's path): reads in full and judges the processes
    /// best by their glimpse, in that order, until [`WARM_TOP`] are eligible and the next one's
    /// bound is below the best's exact score (none further down can win), or [`WARM_READ_MAX`]
    /// were read; keeps the eligible ones, after the `candidates_parent` filter.
    fn rank_warm(&mut self) {
        let Ok(s) = read_sample(&mut self.meminfo, None, &mut self.buf) else {
            self.warm.done_at = None;
            return;
        };
        let totalpages =
            badness::global_totalpages(s.mem_total_bytes, s.swap_total_bytes, self.page_size);
        let keep = self
            .cfg
            .candidates_parent_pid
            .map(|parent| descendants(parent, self.warm.done.iter().map(|g| (g.pid, g.ppid))));
        let mut order: Vec<(i64, i32)> = self
            .warm
            .done
            .iter()
            .filter(|g| g.bound_permille > i64::MIN)
            .filter(|g| keep.as_ref().is_none_or(|k| k.contains(&g.pid)))
            .map(|g| (g.bound_permille, g.pid))
            .collect();
        order.sort_unstable_by_key(|&(b, _)| std::cmp::Reverse(b));
        self.warm.best.clear();
        let mut best_permille: Option<i64> = None;
        for (read, &(bound, pid)) in order.iter().enumerate() {
            let enough = self.warm.best.len() >= WARM_TOP;
            if read >= WARM_READ_MAX || (enough && best_permille.is_some_and(|b| bound < b)) {
                break;
            }
            let Ok(Sampled::Process(p)) = self.scanner.sample(pid) else {
                continue;
            };
            let judged = self.judge(&p, [None, None, None], totalpages);
            if let Judgement::Eligible { score, .. } = judged {
                let pm = badness::permille_floor(score, totalpages);
                best_permille = Some(best_permille.map_or(pm, |b| b.max(pm)));
                self.warm.best.push(p);
            }
        }
    }

    /// Appends the processes started since the ahead-of-need pass listed `/proc`. Pids are handed
    /// out in increasing order until they wrap, so those are the pids from the pass's
    /// `ns_last_pid` to today's, opened by number (a thread's number is skipped); listing `/proc`
    /// instead took 13 ms with 8,000 processes here, more than the rest of the decision. After a
    /// wrap, or if more than 4,096 pids were handed out, `/proc` is listed.
    fn add_new_processes(&mut self) {
        let (Some(from), Some(to)) = (
            self.warm.done_last_pid,
            read_last_pid(&self.ns_last_pid, &mut self.buf),
        ) else {
            return self.add_unlisted();
        };
        if to < from || to - from > 4096 {
            return self.add_unlisted();
        }
        for pid in from + 1..=to {
            if self.warm.done_pids.binary_search(&pid).is_ok() {
                continue; // started between ns_last_pid and the listing: in the pass already
            }
            if let Ok(Sampled::Process(s)) = self.scanner.sample(pid) {
                if s.tgid == s.pid {
                    self.samples.push(s);
                }
            }
        }
    }

    /// Appends every process `/proc` lists that the ahead-of-need pass did not see.
    fn add_unlisted(&mut self) {
        if self.scanner.list_pids(&mut self.pids).is_err() {
            return;
        }
        for i in 0..self.pids.len() {
            let pid = self.pids[i];
            if self.warm.done_pids.binary_search(&pid).is_err() {
                if let Ok(Sampled::Process(s)) = self.scanner.sample(pid) {
                    self.samples.push(s);
                }
            }
        }
    }

    /// Fills `self.samples` from the ahead-of-need ranking when one is fresh enough (finishing a
    /// pass in progress if there is no complete one): the pass's best, re-read now (a process
    /// whose start time changed is a reused pid, and dropped), and every process started since
    /// the pass (listed now, read now). Returns when that pass began and how many are new.
    pub(super) fn warm_candidates(&mut self) -> Option<(Instant, usize)> {
        if !self.warm_usable() {
            return None;
        }
        let fresh = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() <= WARM_MAX_AGE);
        if !fresh(self.warm.done_at) && fresh(self.warm.started) {
            while self.warm_step() {}
        }
        let at = self.warm.done_at.filter(|t| t.elapsed() <= WARM_MAX_AGE)?;
        for i in 0..self.warm.best.len() {
            let old = self.warm.best[i];
            if let Ok(Sampled::Process(s)) = self.scanner.sample(old.pid) {
                if s.start_time_ticks == old.start_time_ticks {
                    self.samples.push(s);
                }
            }
        }
        let re_read = self.samples.len();
        self.add_new_processes();
        let mut new = self.samples.len() - re_read;
        if let Some(parent) = self.cfg.candidates_parent_pid.filter(|_| new > 0) {
            // A new process's ancestry: the pass plus the new ones.
            let pairs = self.warm.done.iter().map(|g| (g.pid, g.ppid));
            let fresh = self.samples[re_read..].iter().map(|s| (s.pid, s.ppid));
            let keep = descendants(parent, pairs.chain(fresh));
            let mut i = 0;
            self.samples.retain(|s| {
                i += 1;
                i <= re_read || keep.contains(&s.pid)
            });
            new = self.samples.len() - re_read;
        }
        if self.samples.is_empty() {
            return None;
        }
        Some((at, new))
    }
}

/// Glimpses one process for the ahead-of-need pass (see [`Glance`]); `None` for a kernel
/// thread, a process a name-only `protect` rule excludes, or one that vanished or could not be
/// read (skipped, as in the full scan).
fn glimpse(
    scanner: &mut Scanner,
    policy: &Policy,
    era: badness::Era,
    glance: Glance,
    pid: i32,
) -> Option<Glimpse> {
    let (ppid, shift) = match glance {
        Glance::Score => (0, 0),
        Glance::ScoreAndStat => {
            let (ppid, comm) = scanner.glance_stat(pid).ok()??;
            match policy.name_shift_bound(&comm.as_str()) {
                Some(shift) => (ppid, shift),
                // Kept for the ancestry of `candidates_parent`, never ranked.
                None => {
                    return Some(Glimpse {
                        pid,
                        ppid,
                        bound_permille: i64::MIN,
                    })
                }
            }
        }
    };
    let display = scanner.read_oom_score(pid).ok()?;
    Some(Glimpse {
        pid,
        ppid,
        bound_permille: badness::oom_score_permille_bound(era, display).saturating_add(shift),
    })
}

/// The last pid handed out in this pid namespace (`sys/kernel/ns_last_pid` under the proc root,
/// 3.3+).
fn read_last_pid(path: &std::path::Path, buf: &mut Vec<u8>) -> Option<i32> {
    let mut f = std::fs::File::open(path).ok()?;
    reread(&mut f, buf).ok()?;
    std::str::from_utf8(buf).ok()?.trim().parse().ok()
}
