//! Hooks: commands the operator configured to run on `warn`, `pre_kill`, `post_kill`,
//! `kernel_oom` and `exit` (`[[hooks]]` in the config). Executed directly (argv, no shell) with the event
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

/// How many hook events there are.
pub const N_HOOK_EVENTS: usize = 6;

/// Every hook event, in the order metrics list them.
pub const HOOK_EVENTS: [HookEvent; N_HOOK_EVENTS] = [
    HookEvent::Warn,
    HookEvent::PreKill,
    HookEvent::PostKill,
    HookEvent::KernelOom,
    HookEvent::Exit,
    HookEvent::Forecast,
];

/// The config name of a hook event.
pub fn event_name(e: HookEvent) -> &'static str {
    match e {
        HookEvent::Warn => "warn",
        HookEvent::PreKill => "pre_kill",
        HookEvent::PostKill => "post_kill",
        HookEvent::KernelOom => "kernel_oom",
        HookEvent::Exit => "exit",
        HookEvent::Forecast => "forecast",
    }
}

fn index(e: HookEvent) -> usize {
    match e {
        HookEvent::Warn => 0,
        HookEvent::PreKill => 1,
        HookEvent::PostKill => 2,
        HookEvent::KernelOom => 3,
        HookEvent::Exit => 4,
        HookEvent::Forecast => 5,
    }
}

/// Runs (counted when over) and failures per hook event (failures include timeouts and spawn
/// errors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    pub runs: [u64; N_HOOK_EVENTS],
    pub failures: [u64; N_HOOK_EVENTS],
    pub timeouts: [u64; N_HOOK_EVENTS],
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
                    self.stats.runs[index(on)] += 1;
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

    /// Treats every running hook as past its timeout: the next [`Hooks::on_tick`] kills it.
    pub fn expire_all(&mut self, now: Instant) {
        self.runner.expire_all(now);
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
            // A run is counted when it is over, with its failure if it failed: a scrape (the
            // drill's, a dashboard's ratio) never sees a run without its outcome.
            if !matches!(f.outcome, Outcome::SpawnFailed(_)) {
                self.stats.runs[index(on)] += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::event::{self, Action, EventKind, Signal, Source, TriggerInfo, Victim};
    use oomguard_core::trigger::Trigger;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn script(dir: &Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn hook(on: HookEvent, command: Vec<String>, timeout_ms: u64) -> HookConfig {
        HookConfig {
            on,
            command,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn kill_event(name: &str) -> OomEvent {
        let mut ev = OomEvent::new(EventKind::Kill);
        ev.source = Source::Oomguard;
        ev.id = Some("18f00-7".to_owned());
        ev.time = Some("2026-11-29T14:00:00.000000+00:00".to_owned());
        ev.unix_time_s = Some(1_795_960_800.0);
        ev.host = Some("testhost".to_owned());
        ev.victim = Some(Victim {
            pid: 4321,
            name: name.to_owned(),
            uid: Some(1000),
            user: Some("alice".to_owned()),
            cgroup: Some("/user.slice/user-1000.slice".to_owned()),
            cmdline: Some("hog --size 1G".to_owned()),
            oom_score: Some(912),
            oom_score_adj: Some(0),
            rss_bytes: Some(1 << 30),
            swap_bytes: None,
        });
        ev.trigger = Some(TriggerInfo {
            reason: Trigger::MemAvailable,
            detail: Some("MemAvailable 3.1% < 5%".to_owned()),
            mem_total_bytes: Some(8 << 30),
            mem_available_bytes: Some(256 << 20),
            ..TriggerInfo::default()
        });
        ev.action = Some(Action {
            signal: Some(Signal::Kill),
            outcome: Some(event::Outcome::Exited),
            exited_after_ms: Some(12),
            freed_bytes: Some(1 << 30),
            ..Action::default()
        });
        ev
    }

    /// Runs on_tick until nothing is running or `limit` passes.
    fn drain(h: &mut Hooks, limit: Duration) -> Vec<HookResult> {
        let start = Instant::now();
        let mut out = Vec::new();
        while (h.running() > 0 || out.is_empty()) && start.elapsed() < limit {
            h.on_tick(Instant::now(), &mut out);
            std::thread::sleep(Duration::from_millis(5));
        }
        out
    }

    fn read_env0(p: &Path) -> BTreeMap<String, String> {
        let raw = std::fs::read(p).unwrap();
        raw.split(|b| *b == 0)
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| {
                let s = String::from_utf8(kv.to_vec()).unwrap();
                let (k, v) = s.split_once('=')?;
                k.starts_with("OOMGUARD_")
                    .then(|| (k.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// Regression: hooks inherited the daemon's blocked SIGINT/SIGTERM/SIGHUP/SIGQUIT (its
    /// signalfd's mask) through `Command`, so a hook's own `kill -TERM` or `timeout` did nothing.
    #[test]
    fn hooks_start_with_no_signal_blocked() {
        // Not a shell script: dash clears the mask itself at start-up, hiding the bug.
        let cmd = ["grep", "SigBlk", "/proc/self/status"]
            .map(str::to_owned)
            .to_vec();
        // Block SIGTERM in this test's thread only (the one that forks), as the daemon does.
        // SAFETY: sigset operations on a local set; pthread_sigmask changes this thread only.
        let old = unsafe {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
            let mut old = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr());
            old
        };
        let mut h = Hooks::new(&[hook(HookEvent::Exit, cmd, 5000)]);
        assert_eq!(h.fire(HookEvent::Exit, &kill_event("x"), Instant::now()), 1);
        let results = drain(&mut h, Duration::from_secs(5));
        // SAFETY: restores this thread's mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
        assert!(results[0].finished.outcome.is_success(), "{results:?}");
        assert_eq!(
            results[0].finished.output.trim(),
            "SigBlk:\t0000000000000000"
        );
    }

    #[test]
    fn environment_and_stdin_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let cmd = script(
            dir.path(),
            "hook.sh",
            &format!("env -0 > {d}/env; cat > {d}/stdin; echo done-output"),
        );
        let mut h = Hooks::new(&[hook(HookEvent::PostKill, vec![cmd], 5000)]);
        let ev = kill_event("hog");
        assert_eq!(h.fire(HookEvent::PostKill, &ev, Instant::now()), 1);
        // Other events do not run it.
        assert_eq!(h.fire(HookEvent::Warn, &ev, Instant::now()), 0);
        let res = drain(&mut h, Duration::from_secs(5));
        assert_eq!(res.len(), 1);
        assert_eq!(res[0].finished.outcome, Outcome::Exited(0));
        assert_eq!(res[0].finished.output, "done-output\n");
        assert!(res[0].log_line().contains("hook post_kill #0"));

        let mut env = read_env0(&dir.path().join("env"));
        // Set by CI for the test process itself (and so inherited): not the hook's.
        env.remove(crate::kernel_skip::REQUIRE_ENV);
        let expected: BTreeMap<String, String> = [
            ("OOMGUARD_EVENT_ID", "18f00-7"),
            ("OOMGUARD_KIND", "kill"),
            ("OOMGUARD_SOURCE", "oomguard"),
            ("OOMGUARD_TIME", "2026-11-29T14:00:00.000000+00:00"),
            ("OOMGUARD_UNIX_TIME", "1795960800.000"),
            ("OOMGUARD_HOST", "testhost"),
            ("OOMGUARD_PID", "4321"),
            ("OOMGUARD_COMM", "hog"),
            ("OOMGUARD_UID", "1000"),
            ("OOMGUARD_CGROUP", "/user.slice/user-1000.slice"),
            ("OOMGUARD_RSS_BYTES", "1073741824"),
            ("OOMGUARD_USER", "alice"),
            ("OOMGUARD_CMDLINE", "hog --size 1G"),
            ("OOMGUARD_OOM_SCORE", "912"),
            ("OOMGUARD_OOM_SCORE_ADJ", "0"),
            ("OOMGUARD_TRIGGER", "memory"),
            ("OOMGUARD_TRIGGER_DETAIL", "MemAvailable 3.1% < 5%"),
            ("OOMGUARD_MEM_AVAILABLE_BYTES", "268435456"),
            ("OOMGUARD_MEM_TOTAL_BYTES", "8589934592"),
            ("OOMGUARD_SIGNAL", "SIGKILL"),
            ("OOMGUARD_OUTCOME", "exited"),
            ("OOMGUARD_EXITED_AFTER_MS", "12"),
            ("OOMGUARD_FREED_BYTES", "1073741824"),
            ("OOMGUARD_DRY_RUN", "0"),
            ("OOMGUARD_HOOK", "post_kill"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, expected);

        let stdin = std::fs::read(dir.path().join("stdin")).unwrap();
        let mut want = serde_json::to_vec(&ev).unwrap();
        want.push(b'\n');
        assert_eq!(stdin, want, "stdin is the event as one JSON line");
        assert_eq!(h.stats().runs(HookEvent::PostKill), 1);
        assert_eq!(h.stats().failures(HookEvent::PostKill), 0);
    }

    #[test]
    fn sleeping_hook_is_killed_at_its_timeout_and_fire_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        // The hook starts a grandchild that also sleeps: the whole group must go.
        let cmd = script(dir.path(), "sleepy.sh", "sleep 1000 & sleep 1000");
        let mut h = Hooks::new(&[hook(HookEvent::PreKill, vec![cmd], 300)]);
        let ev = kill_event("hog");
        let t0 = Instant::now();
        assert_eq!(h.fire(HookEvent::PreKill, &ev, t0), 1);
        let fire_took = t0.elapsed();
        eprintln!("fire() took {fire_took:?}");
        assert!(
            fire_took < Duration::from_millis(20),
            "fire took {fire_took:?}"
        );
        // The kill it precedes is held at most the head start.
        let hold = h.pre_kill_hold_until(t0).unwrap();
        assert!(hold <= t0 + PRE_KILL_HEAD_START_MAX);
        assert!(h.pre_kill_running());

        let res = drain(&mut h, Duration::from_secs(5));
        let took = t0.elapsed();
        assert_eq!(res.len(), 1);
        assert_eq!(res[0].finished.outcome, Outcome::TimedOut);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(800),
            "{took:?}"
        );
        assert!(!h.pre_kill_running());
        assert_eq!(h.stats().timeouts(HookEvent::PreKill), 1);
        assert_eq!(h.stats().failures(HookEvent::PreKill), 1);
        // on_tick itself never waited: each call is short.
        let t = Instant::now();
        h.on_tick(Instant::now(), &mut Vec::new());
        assert!(t.elapsed() < Duration::from_millis(5));
    }

    #[test]
    fn hostile_names_are_passed_literally() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let pwned = dir.path().join("pwned");
        let name = format!(
            "$(touch {})\n`touch {}`;x",
            pwned.display(),
            pwned.display()
        );
        let cmd = script(
            dir.path(),
            "hook.sh",
            &format!("printf '%s' \"$OOMGUARD_COMM\" > {d}/comm; cat > {d}/stdin"),
        );
        // The victim's name also as an argument of the hook's argv: still no shell.
        let mut h = Hooks::new(&[hook(HookEvent::KernelOom, vec![cmd, name.clone()], 5000)]);
        let mut ev = OomEvent::new(EventKind::Kill);
        ev.pid = Some(99);
        ev.comm = Some(name.clone());
        h.fire(HookEvent::KernelOom, &ev, Instant::now());
        let res = drain(&mut h, Duration::from_secs(5));
        assert_eq!(res[0].finished.outcome, Outcome::Exited(0));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("comm")).unwrap(),
            name
        );
        let stdin: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("stdin")).unwrap()).unwrap();
        assert_eq!(stdin["comm"], name.as_str());
        assert!(!pwned.exists(), "a shell ran the name");
    }

    #[test]
    fn missing_program_and_failing_hook_are_counted() {
        let mut h = Hooks::new(&[
            hook(
                HookEvent::Warn,
                vec!["/nonexistent/oomguard-hook".to_owned()],
                1000,
            ),
            hook(HookEvent::Warn, vec!["false".to_owned()], 1000),
        ]);
        let ev = kill_event("x");
        assert_eq!(h.fire(HookEvent::Warn, &ev, Instant::now()), 1);
        let res = drain(&mut h, Duration::from_secs(5));
        assert_eq!(res.len(), 2);
        assert!(res
            .iter()
            .any(|r| matches!(r.finished.outcome, Outcome::SpawnFailed(_))));
        assert!(res.iter().any(|r| r.finished.outcome == Outcome::Exited(1)));
        assert_eq!(h.stats().runs(HookEvent::Warn), 2);
        assert_eq!(h.stats().failures(HookEvent::Warn), 2);
    }

    #[test]
    fn a_hook_that_never_reads_a_large_stdin_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = script(dir.path(), "deaf.sh", "sleep 0.2");
        let mut h = Hooks::new(&[hook(HookEvent::PostKill, vec![cmd], 2000)]);
        let mut ev = kill_event("x");
        // A 1 MiB event: far more than a pipe holds.
        ev.victim.as_mut().unwrap().cmdline = Some("a".repeat(1 << 20));
        let t = Instant::now();
        h.fire(HookEvent::PostKill, &ev, t);
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
        let res = drain(&mut h, Duration::from_secs(5));
        assert_eq!(res[0].finished.outcome, Outcome::Exited(0));
    }
}
