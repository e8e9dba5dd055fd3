//! What the actuator did, handed to the next stage: the typed [`KillReport`] the event is built
//! from (`oomguard_core::decision::kill_event`) and the line the daemon logs.

use oomguard_core::decision::{KillReport, Sent};
use oomguard_core::event::Outcome;

use super::actuator::{ActuatorError, KillOutcome, KillResult};
use super::pidfd::MreleaseOutcome;

/// Reduces a kill's outcome to what the event says of it.
pub fn report(outcome: &Result<KillOutcome, ActuatorError>, dry_run: bool) -> KillReport {
    let targets = outcome.as_ref().map_or(&[][..], |o| &o.targets[..]);
    let term = targets.iter().any(|t| t.term_sent);
    let kill = targets.iter().any(|t| t.kill_sent);
    let sent = match (term, kill) {
        (true, true) => Sent::TermThenKill,
        (false, true) => Sent::Kill,
        (true, false) => Sent::Term,
        (false, false) => Sent::Nothing,
    };
    let first = targets.first();
    let outcome_kind = match (outcome, first.map(|t| t.result)) {
        _ if dry_run => Outcome::DryRun,
        (Err(_), _) => Outcome::Failed,
        (_, Some(KillResult::ExitedAfterTerm | KillResult::ExitedAfterKill)) => Outcome::Exited,
        (_, Some(KillResult::AlreadyGone)) => Outcome::Vanished,
        (_, Some(KillResult::StillAlive)) => Outcome::Timeout,
        _ => Outcome::Failed,
    };
    KillReport {
        sent,
        outcome: outcome_kind,
        exited_after_ms: first
            .and_then(|t| t.exited_after)
            .map(|d| d.as_millis() as u64),
        mrelease: first
            .and_then(|t| t.mrelease)
            .map(|m| matches!(m, MreleaseOutcome::Released)),
        error: outcome.as_ref().err().map(|e| e.to_string()),
        victim_gone: outcome.as_ref().is_ok_and(KillOutcome::all_gone),
    }
}

/// The kill's outcome for the decision's log line: each target's end, an early escalation, and
/// what is still listed.
pub fn describe(o: &Result<KillOutcome, ActuatorError>) -> String {
    match o {
        Err(e) => format!("not killed: {e}"),
        Ok(o) => {
            let mut parts = Vec::new();
            for t in &o.targets {
                let how = match t.result {
                    KillResult::ExitedAfterTerm => "exited after SIGTERM",
                    KillResult::ExitedAfterKill => "exited after SIGKILL",
                    KillResult::AlreadyGone => "already gone (nothing signalled)",
                    KillResult::StillAlive => "STILL ALIVE",
                    KillResult::DryRun => "dry run: not signalled",
                    KillResult::Failed => "signal failed",
                };
                let after = t
                    .exited_after
                    .map(|d| format!(" in {:.1} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or_default();
                let mrel = t
                    .mrelease
                    .map(|m| format!(", mrelease {m:?}"))
                    .unwrap_or_default();
                let err = t
                    .error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                parts.push(format!("pid {} {how}{after}{mrel}{err}", t.pid));
            }
            if o.escalated_early {
                parts.push("SIGKILL early: memory reached the kill level".to_owned());
            }
            if !o.remaining_pids.is_empty() {
                parts.push(format!("still listed: {:?}", o.remaining_pids));
            }
            parts.join(", ")
        }
    }
}
