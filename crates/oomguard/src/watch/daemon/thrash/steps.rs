//! The steps that change a workload (`freeze`; `throttle` in `more_steps.rs` shares
//! [`Daemon::apply_recorded`]), their end, and the undo of everything they
//! changed: at the end of the step's window, when a cgroup stops being guarded, at daemon exit
//! and reload, and at start-up for what a crashed (or SIGKILLed) daemon left in the state file.
//!
//! Order of work for a change: resolve the target from the guarded scope (never from a path
//! in a file), record the change in the state file (synced), then make it; a change that
//! cannot be recorded is not made. An undo that fails stays recorded and is retried.

use std::path::Path;
use std::time::Instant;

use oomguard_core::config::ActionStep;
use oomguard_core::decision::{Decision, Scope};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::restrain::{Change, StepInfo};

use super::super::{log, Daemon};
use super::ThrashWatch;
use crate::act::pidfd::Pinned;
use crate::act::restrain::Target;

impl ThrashWatch {
    /// Writes the state file with what is in force; logs a failure (naming the file).
    fn save_state(&mut self) -> bool {
        if !self.restrainer.changes() {
            return true;
        }
        match self.state.save(&self.changes) {
            Ok(()) => true,
            Err(e) => {
                log(format_args!("thrash: state file: {e}"));
                false
            }
        }
    }

    /// Undoes one change; on success drops it from the state file, on failure keeps it there
    /// and retries at every tick. Returns the error text, if any.
    pub(super) fn undo(&mut self, change: Change, target: Target) -> Option<String> {
        match self.restrainer.undo(&target) {
            Ok(()) => {
                self.changes.retain(|c| c != &change);
                self.undo_failed.retain(|(c, _)| c != &change);
                self.save_state();
                None
            }
            Err(e) => {
                let msg = format!("undoing {} ({}): {e}", change.describe(), target.describe());
                if !self.undo_failed.iter().any(|(c, _)| c == &change) {
                    log(format_args!("thrash: {msg}; retried at every reading"));
                    self.undo_failed.push((change, target));
                }
                Some(msg)
            }
        }
    }
}

impl Daemon {
    /// What freezing guarded cgroup `i` means here: the v2 cgroup itself; on v1 the freezer
    /// cgroup of the same path when it holds exactly the scope's processes (freezing more
    /// would stop processes outside the guarded scope, fewer would leave thrashers running);
    /// else SIGSTOP when the scope is one process. `Err`: why not (the step is refused).
    fn freeze_target(&self, i: usize) -> Result<(Change, Target), String> {
        let w = &self.cgroups[i];
        let mut procs = Vec::new();
        self.cgfs
            .subtree_procs(&w.dir, &mut procs)
            .map_err(|e| format!("listing its processes: {e}"))?;
        procs.sort_unstable();
        procs.dedup();
        if procs.is_empty() {
            return Err("the cgroup has no processes".to_owned());
        }
        let cgroup = w.path.clone();
        if w.version == CgroupVersion::V2 {
            if !w.dir.join("cgroup.freeze").exists() {
                return Err(format!(
                    "{} has no cgroup.freeze (kernel before 5.2)",
                    w.dir.display()
                ));
            }
            return Ok((
                Change::FreezeV2 { cgroup },
                Target::FreezeV2 { dir: w.dir.clone() },
            ));
        }
        let freezer = freezer_dir(&self.cgfs, &w.path);
        let mut why = format!("no v1 freezer cgroup {}", freezer.display());
        if freezer.join("freezer.state").exists() {
            let mut frozen = Vec::new();
            match self.cgfs.subtree_procs(&freezer, &mut frozen) {
                Ok(()) => {
                    frozen.sort_unstable();
                    frozen.dedup();
                    if frozen == procs {
                        return Ok((
                            Change::FreezerV1 { cgroup },
                            Target::FreezerV1 { dir: freezer },
                        ));
                    }
                    why = format!(
                        "the freezer cgroup {} holds {} processes, the memory cgroup {}: not the same ones",
                        freezer.display(),
                        frozen.len(),
                        procs.len()
                    );
                }
                Err(e) => why = format!("listing the freezer cgroup's processes: {e}"),
            }
        }
        if let [pid] = procs[..] {
            let p = Pinned::open(pid).map_err(|e| format!("{why}; pinning its process: {e}"))?;
            return Ok((
                Change::Stop {
                    cgroup,
                    pid,
                    start_time_ticks: p.start_time_ticks(),
                },
                Target::Stop {
                    pid,
                    start_time_ticks: p.start_time_ticks(),
                },
            ));
        }
        Err(format!(
            "{why}, and SIGSTOP is used only when the scope is one process ({} here)",
            procs.len()
        ))
    }

    /// The `freeze` step. Returns whether it was refused or failed (the next step follows).
    pub(super) fn thrash_freeze(
        &mut self,
        d: &Decision,
        key: &Path,
        idx: usize,
        of: usize,
        _now: Instant,
    ) -> bool {
        let resolved = match d.scope {
            Scope::Global => {
                Err("freeze applies to a guarded cgroup, not the whole machine".to_owned())
            }
            Scope::Cgroup(i) => self.freeze_target(i),
        };
        self.apply_recorded(d, key, idx, of, ActionStep::Freeze, resolved)
    }

    /// A step that changes a workload until its window is over (`freeze`, `throttle`): the
    /// change (or why not) resolved by the caller is recorded in the state file, then made,
    /// and kept as the scope's running change. Returns whether it was refused or failed.
    pub(super) fn apply_recorded(
        &mut self,
        d: &Decision,
        key: &Path,
        idx: usize,
        of: usize,
        action: ActionStep,
        resolved: Result<(Change, Target), String>,
    ) -> bool {
        self.decisions += 1;
        let n = self.decisions;
        let label = action.label();
        let step = |outcome, detail| StepInfo {
            action: label,
            index: idx + 1,
            of,
            outcome,
            detail: Some(detail),
        };
        let refuse = |this: &mut Self, why: String| {
            log(format_args!(
                "decision #{n}: {}: {}; {label} refused: {why}; escalating",
                d.trigger.label(),
                d.detail
            ));
            this.decision_event(d, step("refused", why));
            true
        };
        let (change, target) = match resolved {
            Ok(r) => r,
            Err(why) => return refuse(self, why),
        };
        let Some(t) = self.thrash.as_mut() else {
            return true;
        };
        let dry = !t.restrainer.changes();
        if !dry {
            t.changes.push(change.clone());
            if !t.save_state() {
                t.changes.retain(|c| c != &change);
                let why = format!(
                    "the change could not be recorded in {} first",
                    t.state.path.display()
                );
                return refuse(self, why);
            }
        }
        match t.restrainer.apply(&target) {
            Ok(()) => {
                let what = match &target {
                    Target::MemoryHigh { set_bytes, .. } => {
                        format!("{} to {set_bytes} bytes", change.describe())
                    }
                    _ => change.describe(),
                };
                if let Some(sc) = t.scope_mut(key) {
                    sc.active = Some((change, target));
                }
                let window = t.cfg.step_window;
                log(format_args!(
                    "decision #{n}: {}: {}; {}{what} for {window:?}",
                    d.trigger.label(),
                    d.detail,
                    if dry { "dry run: would have " } else { "" }
                ));
                self.decision_event(d, step(if dry { "dry_run" } else { "done" }, what));
                false
            }
            Err(e) => {
                // Not made: no longer recorded. (A partial freeze is undone by the thaw.)
                let _ = t.restrainer.undo(&target);
                t.changes.retain(|c| c != &change);
                t.save_state();
                let why = format!("{}: {e}", change.describe());
                log(format_args!(
                    "decision #{n}: {}: {}; {label} failed: {why}; escalating",
                    d.trigger.label(),
                    d.detail
                ));
                self.decision_event(d, step("failed", why));
                true
            }
        }
    }

    /// A step's window is over: a freeze is thawed (the others changed nothing), and the
    /// scope's detector starts over, so the judgement is measured after the end.
    pub(super) fn thrash_end(&mut self, scope: Scope, key: &Path, idx: usize, step: ActionStep) {
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let Some(sc) = t.scope_mut(key) else {
            return;
        };
        sc.detector.reset();
        let Some((change, target)) = sc.active.take() else {
            return;
        };
        if matches!(target, Target::MemoryHigh { .. }) {
            for w in self.cgroups.iter_mut().filter(|w| w.dir == key) {
                w.throttle_high_bytes = None;
            }
        }
        let what = change.describe();
        let (outcome, detail) = match t.undo(change, target) {
            None => ("ended", what.clone()),
            Some(e) => ("end_failed", e),
        };
        log(format_args!(
            "thrash: {}: step {}/{} {} {outcome} ({detail})",
            self.scope_name(scope),
            idx + 1,
            self.thrash.as_ref().map_or(0, |t| t.cfg.actions.len()),
            step.label()
        ));
        self.step_event(scope, idx, step, outcome, Some(detail), None);
    }

    /// Retries the undos that failed.
    pub(super) fn thrash_retry_undos(&mut self) {
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        for (change, target) in t.undo_failed.clone() {
            if t.restrainer.undo(&target).is_ok() {
                log(format_args!(
                    "thrash: undone at last: {}",
                    change.describe()
                ));
                t.changes.retain(|c| c != &change);
                t.undo_failed.retain(|(c, _)| c != &change);
                t.save_state();
            }
        }
    }

    /// Daemon exit and reload: undoes everything in force and clears the state file.
    pub(crate) fn thrash_restore_all(&mut self, why: &str) {
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let mut active = Vec::new();
        for sc in std::iter::once(&mut t.machine).chain(t.cgroups.values_mut()) {
            active.extend(sc.active.take());
            sc.chain = Default::default();
        }
        active.append(&mut t.undo_failed);
        for w in &mut self.cgroups {
            w.throttle_high_bytes = None;
        }
        for (change, target) in active {
            let what = change.describe();
            match t.undo(change, target) {
                None => log(format_args!("thrash: {why}: restored: {what}")),
                Some(e) => log(format_args!("thrash: {why}: NOT restored: {e}")),
            }
        }
    }

    /// Start-up: undoes what the state file of an earlier daemon lists, for the scopes guarded
    /// now; lines that are not changes, and changes of cgroups not guarded now, are named in a
    /// warning and never acted on (those are kept in the file).
    pub(super) fn thrash_restore_stale(&mut self) {
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let (listed, warnings) = t.state.load();
        for w in warnings {
            log(format_args!("warning: thrash state file {w}"));
        }
        if listed.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        let mut undo = Vec::new();
        for c in listed {
            match stale_target(self, &c) {
                Ok(target) => undo.push((c, target)),
                Err(why) => {
                    log(format_args!(
                        "warning: thrash state file {}: {} not undone: {why}",
                        self.cfg.thrash.state_file,
                        c.describe()
                    ));
                    kept.push(c);
                }
            }
        }
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        t.changes = kept.clone();
        t.changes.extend(undo.iter().map(|(c, _)| c.clone()));
        for (change, target) in undo {
            let what = change.describe();
            match t.undo(change, target) {
                None => log(format_args!(
                    "thrash: restored what an earlier daemon left: {what}"
                )),
                Some(e) => log(format_args!(
                    "thrash: NOT restored what an earlier daemon left: {e}"
                )),
            }
        }
        // Rewrite even when nothing was undone: a garbled file becomes its good lines.
        t.save_state();
    }
}

/// `<cgroup root>/freezer/<path>`: the v1 freezer cgroup with the memory cgroup's path.
fn freezer_dir(cgfs: &crate::host::CgroupFs, path: &str) -> std::path::PathBuf {
    cgfs.root()
        .join("freezer")
        .join(path.trim_start_matches('/'))
}

/// The target of a change listed in a state file, resolved from the guarded scope of the same
/// path (so a tampered file can only name a guarded cgroup, and only its freezer file).
fn stale_target(d: &Daemon, c: &Change) -> Result<Target, String> {
    let w = d
        .cgroups
        .iter()
        .find(|w| w.path == c.cgroup())
        .ok_or_else(|| format!("{} is not a guarded cgroup now", c.cgroup()))?;
    match (c, w.version) {
        (Change::FreezerV1 { .. }, CgroupVersion::V1) => Ok(Target::FreezerV1 {
            dir: freezer_dir(&d.cgfs, &w.path),
        }),
        (Change::FreezeV2 { .. }, CgroupVersion::V2) => Ok(Target::FreezeV2 { dir: w.dir.clone() }),
        (Change::MemoryHigh { previous, .. }, CgroupVersion::V2) => Ok(Target::MemoryHigh {
            dir: w.dir.clone(),
            set_bytes: 0,
            previous: previous.clone(),
        }),
        (
            Change::Stop {
                pid,
                start_time_ticks,
                ..
            },
            _,
        ) => Ok(Target::Stop {
            pid: *pid,
            start_time_ticks: *start_time_ticks,
        }),
        _ => Err(format!(
            "does not match the guarded cgroup (cgroup {:?} now)",
            w.version
        )),
    }
}
