//! The `throttle`, `reclaim` and `restart` steps (issue 16). Each is refused, with its reason
//! in the step's event, where it cannot work (the machine scope, a v1 cgroup, a kernel without
//! the file, no systemd unit or no systemd), and the chain then escalates at once.
//!
//! - `throttle`: the guarded v2 cgroup's `memory.high` lowered to `throttle_to_pct` of its
//!   usage (`oomguard_core::restrain::throttle_high_bytes`: never below 32 MiB nor its
//!   `memory.min`/`memory.low`, never raised); the old text is recorded in the state file
//!   before the write (`apply_recorded`, shared with `freeze`) and written back when the step
//!   ends, at exit, reload, and at the next start after a crash.
//! - `reclaim`: `reclaim` bytes written to `memory.reclaim` (5.19+); usage (`memory.current`)
//!   read before and after, so the event says what was reclaimed. EAGAIN (less reclaimed than
//!   asked) is a normal outcome. Nothing to undo, nothing recorded.
//! - `restart`: the cgroup path's systemd service restarted through the daemon's
//!   `UnitRestarter` (`systemctl restart --no-block -- UNIT`, an argv).

use std::path::Path;
use std::time::Instant;

use oomguard_core::config::ActionStep;
use oomguard_core::decision::{Decision, Scope};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::restrain::{
    parse_limit_text, restart_unit, throttle_high_bytes, Change, StepInfo,
};
use oomguard_core::size::format_bytes;

use super::super::{log, Daemon};
use super::PendingRestart;
use crate::act::restrain::Target;

/// A v2 limit file's value: bytes, `u64::MAX` for `max`, 0 when missing or unreadable.
fn limit_file(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|t| parse_limit_text(&t))
        .map_or(0, |v| v.unwrap_or(u64::MAX))
}

impl Daemon {
    /// Logs a step taken (or not) on decision `n` and records its event.
    #[allow(clippy::too_many_arguments)]
    fn step_outcome(
        &mut self,
        d: &Decision,
        n: u64,
        idx: usize,
        of: usize,
        action: ActionStep,
        outcome: &'static str,
        detail: String,
    ) {
        let then = match outcome {
            "refused" | "failed" => "; escalating",
            _ => "",
        };
        log(format_args!(
            "decision #{n}: {}: {}; {} {outcome}: {detail}{then}",
            d.trigger.label(),
            d.detail,
            action.label()
        ));
        self.decision_event(
            d,
            StepInfo {
                action: action.label(),
                index: idx + 1,
                of,
                outcome,
                detail: Some(detail),
            },
        );
    }

    /// A guarded v2 cgroup's index, or why the step does not apply to the scope.
    fn v2_scope(&self, d: &Decision, action: ActionStep) -> Result<usize, String> {
        let i = match d.scope {
            Scope::Global => {
                return Err(format!(
                    "{} applies to a guarded cgroup, not the whole machine",
                    action.label()
                ))
            }
            Scope::Cgroup(i) => i,
        };
        let w = &self.cgroups[i];
        if w.version != CgroupVersion::V2 {
            let file = match action {
                ActionStep::Throttle => "memory.high",
                _ => "memory.reclaim",
            };
            return Err(format!(
                "{} needs cgroup v2 ({file}); cgroup {} is v1",
                action.label(),
                w.path
            ));
        }
        Ok(i)
    }

    fn throttle_target(&self, d: &Decision) -> Result<(Change, Target), String> {
        let i = self.v2_scope(d, ActionStep::Throttle)?;
        let w = &self.cgroups[i];
        let high_path = w.dir.join("memory.high");
        let previous = std::fs::read_to_string(&high_path)
            .map_err(|e| format!("{}: {e}", high_path.display()))?
            .trim()
            .to_owned();
        let current = parse_limit_text(&previous)
            .ok_or_else(|| format!("{}: {previous:?} is not bytes or max", high_path.display()))?;
        let usage_bytes = self
            .cgfs
            .read_usage_bytes(w.version, &w.dir)
            .map_err(|e| format!("reading its usage: {e}"))?;
        let protected_bytes =
            limit_file(&w.dir, "memory.min").max(limit_file(&w.dir, "memory.low"));
        let set_bytes = throttle_high_bytes(
            usage_bytes,
            self.cfg.thrash.throttle_to_pct,
            current,
            protected_bytes,
            self.page_size,
        )?;
        Ok((
            Change::MemoryHigh {
                cgroup: w.path.clone(),
                previous: previous.clone(),
            },
            Target::MemoryHigh {
                dir: w.dir.clone(),
                set_bytes,
                previous,
            },
        ))
    }

    /// The `throttle` step. Returns whether it was refused or failed (the next step follows).
    pub(super) fn thrash_throttle(
        &mut self,
        d: &Decision,
        key: &Path,
        idx: usize,
        of: usize,
    ) -> bool {
        let resolved = self.throttle_target(d);
        let set = match (&resolved, d.scope) {
            (Ok((_, Target::MemoryHigh { set_bytes, .. })), Scope::Cgroup(i)) => {
                Some((i, *set_bytes))
            }
            _ => None,
        };
        let refused = self.apply_recorded(d, key, idx, of, ActionStep::Throttle, resolved);
        if let (false, Some((i, b)), false) = (refused, set, self.cfg.dry_run) {
            self.cgroups[i].throttle_high_bytes = Some(b);
        }
        refused
    }

    /// The `reclaim` step. Returns whether it was refused or failed.
    pub(super) fn thrash_reclaim(&mut self, d: &Decision, idx: usize, of: usize) -> bool {
        self.decisions += 1;
        let n = self.decisions;
        let act = ActionStep::Reclaim;
        let i = match self.v2_scope(d, act) {
            Ok(i) => i,
            Err(why) => {
                self.step_outcome(d, n, idx, of, act, "refused", why);
                return true;
            }
        };
        let (dir, version) = (self.cgroups[i].dir.clone(), self.cgroups[i].version);
        if !dir.join("memory.reclaim").exists() {
            let why = format!(
                "{} has no memory.reclaim (kernel before 5.19)",
                dir.display()
            );
            self.step_outcome(d, n, idx, of, act, "refused", why);
            return true;
        }
        let bytes = self.cfg.thrash.reclaim;
        let before = self.cgfs.read_usage_bytes(version, &dir).ok();
        let Some(t) = self.thrash.as_mut() else {
            return true;
        };
        let dry = !t.restrainer.changes();
        let r = t.restrainer.apply(&Target::Reclaim {
            dir: dir.clone(),
            bytes,
        });
        let after = self.cgfs.read_usage_bytes(version, &dir).ok();
        let usage = match (before, after) {
            (Some(b), Some(a)) => format!(
                "usage {} -> {} ({} reclaimed)",
                format_bytes(b),
                format_bytes(a),
                format_bytes(b.saturating_sub(a))
            ),
            _ => "usage not readable".to_owned(),
        };
        let asked = format!(
            "asked {} of cgroup {}",
            format_bytes(bytes),
            self.cgroups[i].path
        );
        let (outcome, detail, escalate) = match r {
            Ok(()) if dry => ("dry_run", format!("would have {asked}"), false),
            Ok(()) => ("done", format!("{asked}: {usage}"), false),
            Err(e) if e.is_again() => (
                "done",
                format!("{asked}: the kernel reclaimed less than asked (EAGAIN): {usage}"),
                false,
            ),
            Err(e) => ("failed", format!("{asked}: {e}"), true),
        };
        self.step_outcome(d, n, idx, of, act, outcome, detail);
        escalate
    }

    /// The `restart` step. Returns whether it was refused or failed.
    pub(super) fn thrash_restart(&mut self, d: &Decision, idx: usize, of: usize) -> bool {
        self.decisions += 1;
        let n = self.decisions;
        let act = ActionStep::Restart;
        let unit = match d.scope {
            Scope::Global => Err(
                "restart applies to a guarded cgroup's systemd service, not the whole machine"
                    .to_owned(),
            ),
            Scope::Cgroup(i) => restart_unit(&self.cgroups[i].path),
        };
        let unit = match unit.and_then(|u| {
            if self.cfg.dry_run {
                Ok(u)
            } else {
                self.restarter.ready().map(|()| u)
            }
        }) {
            Ok(u) => u,
            Err(why) => {
                self.step_outcome(d, n, idx, of, act, "refused", why);
                return true;
            }
        };
        if self.cfg.dry_run {
            let detail = format!("would have run systemctl restart --no-block -- {unit}");
            self.step_outcome(d, n, idx, of, act, "dry_run", detail);
            return false;
        }
        let mut job = self.restarter.start(&unit);
        match job.poll(Instant::now()) {
            Some(Ok(done)) => {
                self.step_outcome(d, n, idx, of, act, "done", done);
                false
            }
            Some(Err(why)) => {
                self.step_outcome(d, n, idx, of, act, "failed", why);
                true
            }
            None => {
                // systemctl runs: its answer is polled every tick (`thrash_poll_restarts`);
                // the loop goes on guarding meanwhile.
                log(format_args!(
                    "decision #{n}: {}: {}; restart asked of systemd for {unit}, waiting for systemctl",
                    d.trigger.label(),
                    d.detail
                ));
                if let Scope::Cgroup(i) = d.scope {
                    let key = self.cgroups[i].dir.clone();
                    if let Some(t) = self.thrash.as_mut() {
                        t.restarts.push(PendingRestart {
                            job,
                            key,
                            d: d.clone(),
                            n,
                            idx,
                            of,
                        });
                    }
                }
                false
            }
        }
    }

    /// Polls the `restart` steps whose systemctl has not answered: each answer is the step's
    /// outcome (`done`, or `failed` and the chain escalates). Returns whether any still runs.
    pub(in super::super) fn thrash_poll_restarts(&mut self, now: Instant) -> bool {
        let Some(t) = self.thrash.as_mut() else {
            return false;
        };
        if t.restarts.is_empty() {
            return false;
        }
        let mut answered = Vec::new();
        let mut i = 0;
        while i < t.restarts.len() {
            match t.restarts[i].job.poll(now) {
                Some(a) => answered.push((t.restarts.swap_remove(i), a)),
                None => i += 1,
            }
        }
        let pending = !t.restarts.is_empty();
        for (p, a) in answered {
            let act = ActionStep::Restart;
            match a {
                Ok(done) => self.step_outcome(&p.d, p.n, p.idx, p.of, act, "done", done),
                Err(why) => {
                    self.step_outcome(&p.d, p.n, p.idx, p.of, act, "failed", why);
                    self.thrash_failed_later(p.key, p.idx, now);
                }
            }
        }
        pending
    }
}
