//! Diagnostics before a kill (`oomguard_core::diagnose`): the operator's argv, run once the
//! victim is chosen and pinned and before the signal, through the hooks' child runner (argv, its
//! own process group, non-blocking pipes, output capped, killed through a pidfd at its timeout).
//! The kill waits for it, at most `kill.diagnose_timeout`; not at all when the decision is at the
//! SIGKILL level (memory is critical: skipped), and a diagnostic still running when memory falls
//! to that level is cut short.

use std::time::{Duration, Instant};

use oomguard_core::decision::Scope;
use oomguard_core::diagnose::{self, Diagnostics, Status};
use oomguard_core::trigger::Level;

use super::{log, Daemon};
use crate::tell::child::{Outcome, Runner, Spec};
use crate::watch::cgroups;

impl Daemon {
    /// Runs the victim's diagnostic, if one is configured, and returns what it gave.
    pub(super) fn diagnose(
        &mut self,
        scope: Scope,
        level: Level,
        rule: Option<&str>,
        pid: i32,
    ) -> Option<Diagnostics> {
        let template = diagnose::template(&self.cfg, rule)?;
        let argv = diagnose::argv_for(template, pid);
        if level == Level::Kill {
            let d = Diagnostics::skipped(argv, "memory at the SIGKILL level: no delay");
            log(format_args!(
                "decision #{}: {}",
                self.decisions,
                d.summary()
            ));
            return Some(d);
        }
        let timeout = self.cfg.kill.diagnose_timeout;
        let mut runner = Runner::new();
        let t0 = Instant::now();
        let spec = Spec {
            label: "diagnose".to_owned(),
            argv: argv.clone(),
            env: vec![("OOMGUARD_PID".to_owned(), pid.to_string())],
            stdin: None,
            timeout,
            user: None,
        };
        let mut done = Vec::with_capacity(1);
        let mut cut_short = false;
        if let Err(f) = runner.spawn(spec, t0) {
            done.push(f);
        }
        while done.is_empty() {
            let now = Instant::now();
            if !cut_short && self.memory_critical(scope) {
                cut_short = true;
                runner.expire_all(now);
            }
            runner.on_tick(now, &mut done);
            // Hooks and kernel events are served meanwhile, as during pre_kill's head start.
            self.tell.on_ready(now, &mut self.kernel_events);
            if done.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let f = done.swap_remove(0);
        let (status, exit_code, signal, note) = match &f.outcome {
            Outcome::Exited(c) => (Status::Exited, Some(*c), None, None),
            Outcome::Signaled(s) => (Status::Signaled, None, Some(*s), None),
            Outcome::TimedOut if cut_short => (
                Status::TimedOut,
                None,
                None,
                Some("cut short: memory fell to the SIGKILL level".to_owned()),
            ),
            Outcome::TimedOut => (
                Status::TimedOut,
                None,
                None,
                Some(format!("killed at diagnose_timeout {timeout:?}")),
            ),
            Outcome::SpawnFailed(why) => (Status::Failed, None, None, Some(why.clone())),
        };
        let mut output = f.output;
        if f.output_truncated {
            output.push_str(diagnose::TRUNCATED_MARKER);
        }
        let d = Diagnostics {
            argv,
            status,
            exit_code,
            signal,
            runtime_ms: t0.elapsed().as_secs_f64() * 1e3,
            output,
            output_truncated: f.output_truncated,
            note,
        };
        log(format_args!(
            "decision #{}: {}",
            self.decisions,
            d.summary()
        ));
        Some(d)
    }

    /// True when the scope is at its SIGKILL level now: MemAvailable below `kill_below`, or
    /// the cgroup a quarter into its headroom (as the kill path's escalation reads it).
    fn memory_critical(&mut self, scope: Scope) -> bool {
        match scope {
            Scope::Global => self
                .sample()
                .is_ok_and(|s| s.mem_available_bytes < self.th.mem_kill_bytes),
            Scope::Cgroup(i) => {
                let w = &self.cgroups[i];
                cgroups::read(&self.cgfs, w).ok().is_some_and(|r| {
                    let limit = r.limit_bytes.unwrap_or(u64::MAX);
                    r.working_set_bytes >= limit.saturating_sub(w.headroom.resolve(limit) / 4)
                })
            }
        }
    }
}
