//! Hooks: commands the operator configured to run on `warn`, `pre_kill`, `post_kill` and
//! `kernel_oom` (`[[hooks]]` in the config). Executed directly (argv, no shell) with the event
//! in `OOMGUARD_*` environment variables and as one JSON line on stdin; each has a timeout at
//! which it is killed (with what it started). [`Hooks::fire`] returns at once; the loop calls
//! [`Hooks::on_tick`] to reap and collect results, whose output goes to the daemon's log.
//!
//! `pre_kill` hooks get a head start: the daemon may hold the kill until they exit or
//! [`PRE_KILL_HEAD_START_MAX`] passes, whichever is first ([`Hooks::pre_kill_hold_until`]).
//! Nothing else ever waits for a hook.

use std::time::{Duration, Instant};

use oomguard_core::config::{HookConfig, HookEvent};
use oomguard_core::event::OomEvent;

use super::child::{Finished, Outcome, Runner, Spec};
use super::fields;

/// The most a kill is ever held for `pre_kill` hooks: short enough that memory cannot run out
/// meanwhile at the fill rates oomguard plans for (4 GiB/s fills 400 MiB in 100 ms, which the
/// default SIGTERM threshold's margin covers on machines of 8 GiB and more).
pub const PRE_KILL_HEAD_START_MAX: Duration = Duration::from_millis(100);

/// Every hook event, in the order metrics list them.
pub const HOOK_EVENTS: [HookEvent; 4] = [
    HookEvent::Warn,
    HookEvent::PreKill,
    HookEvent::PostKill,
    HookEvent::KernelOom,
];

/// The config name of a hook event.
pub fn event_name(e: HookEvent) -> &'static str {
    match e {
        HookEvent::Warn => "warn",
        HookEvent::PreKill => "pre_kill",
        HookEvent::PostKill => "post_kill",
        HookEvent::KernelOom => "kernel_oom",
    }
}

fn index(e: HookEvent) -> usize {
    match e {
        HookEvent::Warn => 0,
        HookEvent::PreKill => 1,
        HookEvent::PostKill => 2,
        HookEvent::KernelOom => 3,
    }
}

/// Runs and failures per hook event (failures include timeouts and spawn errors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    pub runs: [u64; 4],
    pub failures: [u64; 4],
    pub timeouts: [u64; 4],
}

impl HookStats {
    pub fn runs(&self, e: HookEvent) -> u64 {
        self.runs[index(e)]
    }
    pub fn failures(&self, e: HookEvent) -> u64 {
        self.failures[index(e)]
    }
    pub fn timeouts(&self, e: HookEvent) -> u64 {
        self.timeouts[index(e)]
    }
}

/// A finished hook run, for the log.
#[derive(Debug, Clone)]
pub struct HookResult {
    pub on: HookEvent,
    pub finished: Finished,
}

impl HookResult {
    /// One log line: `hook post_kill #0 (/usr/local/bin/x) exited 0 after 12 ms: <output>`.
    pub fn log_line(&self) -> String {
        let f = &self.finished;
        let how = match &f.outcome {
            Outcome::Exited(c) => format!("exited {c}"),
            Outcome::Signaled(s) => format!("killed by signal {s}"),
            Outcome::TimedOut => "timed out and was killed".to_owned(),
            Outcome::SpawnFailed(e) => format!("could not start: {e}"),
        };
        let out = f.output.trim_end();
        let out = if out.is_empty() {
            String::new()
        } else {
            format!(
                ": {}{}",
                out.escape_debug(),
                if f.output_truncated {
                    " [truncated]"
                } else {
                    ""
                }
            )
        };
        format!("{} {how} after {} ms{out}", f.label, f.runtime.as_millis())
    }
}

/// The configured hooks and their running children.
#[derive(Debug)]
pub struct Hooks {
    hooks: Vec<HookConfig>,
    runner: Runner,
    /// (label prefix index into `hooks`) for the running ones, to attribute results.
    running_pre_kill: usize,
    stats: HookStats,
    results: Vec<Finished>,
}

fn label(h: &HookConfig, i: usize) -> String {
    format!(
        "hook {} #{i} ({})",
        event_name(h.on),
        h.command.first().map(String::as_str).unwrap_or("")
    )
}

fn event_of_label(label: &str) -> Option<HookEvent> {
    let name = label.strip_prefix("hook ")?.split(' ').next()?;
    HOOK_EVENTS.into_iter().find(|e| event_name(*e) == name)
}

impl Hooks {
    pub fn new(hooks: &[HookConfig]) -> Self {
        Hooks {
            hooks: hooks.to_vec(),
            runner: Runner::new(),
            running_pre_kill: 0,
            stats: HookStats::default(),
            results: Vec::new(),
        }
    }

    pub fn stats(&self) -> HookStats {
        self.stats
    }

    /// True when some hook is configured for `on`.
    pub fn has(&self, on: HookEvent) -> bool {
        self.hooks.iter().any(|h| h.on == on)
    }

    /// Starts every hook configured for `on` with `ev`; returns how many started. Returns at
    /// once: spawn failures are results for the next `on_tick`.
    pub fn fire(&mut self, on: HookEvent, ev: &OomEvent, now: Instant) -> usize {
        let json = match serde_json::to_vec(ev) {
            Ok(mut j) => {
                j.push(b'\n');
                j
            }
            Err(_) => Vec::new(),
        };
        let mut env: Vec<(String, String)> = fields::pairs(ev)
            .into_iter()
            .map(|(k, v)| (format!("OOMGUARD_{k}"), v))
            .collect();
        env.push(("OOMGUARD_HOOK".to_owned(), event_name(on).to_owned()));
        let mut started = 0;
        for (i, h) in self.hooks.iter().enumerate() {
            if h.on != on {
                continue;
            }
            self.stats.runs[index(on)] += 1;
            let spec = Spec {
                label: label(h, i),
                argv: h.command.clone(),
                env: env.clone(),
                stdin: Some(json.clone()),
                timeout: h.timeout,
                user: None,
            };
            match self.runner.spawn(spec, now) {
                Ok(()) => {
                    started += 1;
                    if on == HookEvent::PreKill {
                        self.running_pre_kill += 1;
                    }
                }
                Err(f) => {
                    self.stats.failures[index(on)] += 1;
                    self.results.push(f);
                }
            }
        }
        started
    }

    /// For a kill the daemon is about to make: hold it until this instant at the latest, or
    /// until [`Hooks::pre_kill_running`] is false. `None`: no pre_kill hook is running.
    pub fn pre_kill_hold_until(&self, fired_at: Instant) -> Option<Instant> {
        if self.running_pre_kill == 0 {
            return None;
        }
        let longest = self
            .hooks
            .iter()
            .filter(|h| h.on == HookEvent::PreKill)
            .map(|h| h.timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        Some(fired_at + longest.min(PRE_KILL_HEAD_START_MAX))
    }

    /// True while a pre_kill hook started by `fire` is still running.
    pub fn pre_kill_running(&self) -> bool {
        self.running_pre_kill > 0
    }

    /// Children still running.
    pub fn running(&self) -> usize {
        self.runner.running()
    }

    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.results.is_empty() {
            return Some(now);
        }
        self.runner.next_deadline(now)
    }

    /// The hooks' pidfds (readable at exit), for the poll set.
    pub fn pidfds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        self.runner.pidfds()
    }

    /// Reaps, times out, collects. Results go to `out` (log them with [`HookResult::log_line`]).
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<HookResult>) {
        let mut done = std::mem::take(&mut self.results);
        self.runner.on_tick(now, &mut done);
        for f in done {
            let Some(on) = event_of_label(&f.label) else {
                continue;
            };
            if on == HookEvent::PreKill && !matches!(f.outcome, Outcome::SpawnFailed(_)) {
                self.running_pre_kill = self.running_pre_kill.saturating_sub(1);
            }
            match f.outcome {
                Outcome::Exited(0) => {}
                Outcome::TimedOut => {
                    self.stats.timeouts[index(on)] += 1;
                    self.stats.failures[index(on)] += 1;
                }
                // Spawn failures were counted in `fire`.
                Outcome::SpawnFailed(_) => {}
                _ => self.stats.failures[index(on)] += 1,
            }
            out.push(HookResult { on, finished: f });
        }
    }
}
