//! The kill step of one decision: candidates listed and judged, the victim chosen by the
//! policy, the pressure re-checked on a fresh [`Snapshot`], the victim pinned and read once
//! more, `pre_kill` hooks given their head start, the kill unit signalled through the
//! [`Actuator`], and the [`KillReport`] turned into the decision's event
//! ([`decision::kill_event`]) and its recovery wait.

use std::time::{Duration, Instant};

use oomguard_core::config::KillUnit;
use oomguard_core::decision::{self, Decision, KillReport, Scope, Snapshot};
use oomguard_core::event::Victim;
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::policy::{self, Judgement};
use oomguard_core::restrain::StepInfo;
use oomguard_core::size::format_bytes;
use oomguard_core::trigger::Level;

use super::candidates::read_extras;
use super::{log, read_sample, Daemon};
use crate::act::actuator::{self, ActuatorError, CgroupTarget, KillOutcome, KillPlan};
use crate::act::pidfd::Pinned;
use crate::act::report;
use crate::host::CgroupFs;
use crate::watch::cgroups;

impl Daemon {
    /// A fresh reading for `scope`: the machine's memory, and the cgroup's figures for a
    /// cgroup decision (each `None` when it could not be read).
    fn snapshot(&mut self, scope: Scope) -> Snapshot {
        let memory = self.sample().ok();
        let cgroup = match scope {
            Scope::Global => None,
            Scope::Cgroup(i) => cgroups::read(&self.cgfs, &self.cgroups[i]).ok(),
        };
        Snapshot { memory, cgroup }
    }

    /// Executes one decision: the whole kill step.
    pub(super) fn act(&mut self, d: Decision) {
        self.act_step(d, None);
    }

    /// [`Daemon::act`] for the thrash rule's `kill` step: its event carries `step` (outcome
    /// `done`, or `dry_run`; how the kill went is the event's `action`).
    pub(super) fn act_step(&mut self, mut d: Decision, step: Option<StepInfo>) {
        self.decisions += 1;
        self.record_trigger();
        let t0 = Instant::now();
        let scope = d.scope;
        let trig = d.trigger.label();
        let totalpages = match self.candidates(scope) {
            Ok(t) => t,
            Err(e) => {
                log(format_args!(
                    "decision #{}: {trig}: {}; cannot list candidates: {e:#}",
                    self.decisions, d.detail
                ));
                self.history
                    .rest(scope, Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        let (judged, extra) = self.judge_candidates(totalpages);
        let root = self.procfs.root().to_path_buf();
        let Some(vi) = policy::choose(&judged) else {
            log(format_args!(
                "decision #{}: {trig}: {}; no eligible victim among {} processes (all excluded); looking again in 1 s",
                self.decisions,
                d.detail,
                self.samples.len()
            ));
            self.history
                .rest(scope, Instant::now() + Duration::from_secs(1));
            return;
        };
        let scan_ms = t0.elapsed().as_secs_f64() * 1e3;
        // Re-check right before acting: the scan took time, and the pressure may be gone. The
        // fresh reading is the one the event reports.
        let fresh = self.snapshot(scope);
        let headroom = match scope {
            Scope::Cgroup(i) => self.cgroups[i].headroom,
            Scope::Global => oomguard_core::size::Amount::Bytes(0),
        };
        let since = self.started.elapsed();
        let Some(level) = decision::recheck(&d, &self.th, &self.psi_state, since, &fresh, headroom)
        else {
            log(format_args!(
                "decision #{}: {trig}: {}; pressure gone after the scan: standing down",
                self.decisions, d.detail
            ));
            return;
        };
        d.level = level;
        d.snapshot = fresh;
        let victim = self.samples[vi];
        let (score, rule): (i64, Option<String>) = match &judged[vi] {
            Judgement::Eligible { score, rule } => (*score, rule.clone()),
            Judgement::Excluded(_) => (0, None),
        };
        let mem = victim.mem.unwrap_or_default();
        let name = victim.comm.as_str().into_owned();
        let user = self.users.get(&victim.uid).cloned();
        // What the judgement did not read, read now for the event.
        let (known_cmdline, known_cgroup) = extra[vi].clone();
        let (read_cmdline, read_cgroup) = read_extras(
            &mut self.scanner,
            &root,
            victim.pid,
            known_cmdline.is_none(),
            known_cgroup.is_none(),
        );
        let cgroup = known_cgroup.or(read_cgroup);
        let cmdline = known_cmdline
            .or(read_cmdline)
            .map(|c| c.chars().take(1024).collect::<String>());
        let rss_bytes = mem.rss_pages * self.page_size;
        let who = format!(
            "pid {} {:?} user {} cgroup {} score {} rss {} adj {}{}",
            victim.pid,
            name,
            user.clone().unwrap_or_else(|| victim.uid.to_string()),
            cgroup.clone().unwrap_or_else(|| "?".into()),
            score,
            format_bytes(rss_bytes),
            victim.oom_score_adj,
            rule.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
        test_seam_pause(
            "OOMGUARD_TEST_PAUSE_BEFORE_PIN_MS",
            "before pinning",
            victim.pid,
            victim.start_time_ticks,
        );
        let pinned = match Pinned::open_expecting(victim.pid, victim.start_time_ticks) {
            Ok(p) => p,
            Err(e) => {
                log(format_args!(
                    "decision #{}: {trig}: {}; victim {who}: {e}; nothing signalled",
                    self.decisions, d.detail
                ));
                return;
            }
        };
        let plan = KillPlan {
            term_grace: (level == Level::Term).then_some(self.cfg.kill.term_grace),
            kill_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(5),
        };
        let before = d.snapshot.memory.map_or(0, |s| s.mem_available_bytes);
        let cg_path = match scope {
            Scope::Cgroup(i) => Some(self.cgroups[i].path.clone()),
            Scope::Global => None,
        };
        let victim_record = Victim {
            pid: i64::from(victim.pid),
            name: name.clone(),
            uid: Some(u64::from(victim.uid)),
            user,
            cgroup,
            cmdline,
            oom_score: Some(score),
            oom_score_adj: Some(i64::from(victim.oom_score_adj)),
            rss_bytes: Some(rss_bytes),
            swap_bytes: Some(mem.swap_pages * self.page_size),
        };
        // The one event of this kill: what the pre_kill hooks see (no action yet), then
        // completed with the report and recorded (event log, journal, metrics, post_kill hooks,
        // notifications).
        let pending = KillReport {
            sent: decision::Sent::Nothing,
            outcome: oomguard_core::event::Outcome::Failed,
            exited_after_ms: None,
            mrelease: None,
            error: None,
            victim_gone: false,
        };
        // memory.oom.group: the whole cgroup, as the kernel's OOM killer would take it.
        let group = match (self.cfg.kill.oom_group, self.cfg.kill.unit) {
            (true, KillUnit::Process | KillUnit::Pgroup) => {
                let domain = cg_path.as_deref().unwrap_or("/");
                oom_group_of(&self.cgfs, &pinned, domain)
            }
            _ => None,
        };
        if let Some(g) = &group {
            log(format_args!(
                "decision #{}: memory.oom.group is set on {}: the whole cgroup is killed, as the kernel would",
                self.decisions, g.rel_path
            ));
        }
        let unit = if group.is_some() {
            KillUnit::Cgroup
        } else {
            self.cfg.kill.unit
        };
        let dry_run = self.cfg.dry_run;
        let mut event = decision::kill_event(
            &d,
            cg_path.as_deref(),
            victim_record,
            unit,
            dry_run,
            &pending,
            None,
        );
        // The pre_kill hooks run before anything is done: no action yet.
        event.action = None;
        // Whose cgroup it is (unit, container, pod: pure, from the path), before pre_kill hooks
        // see the event; the names (a directory read) are added after the kill, by `record`.
        event.identify();
        // pre_kill hooks get a short, bounded head start (never longer than the hook module's
        // cap), and only while they still run.
        if let Some(until) = self.tell.pre_kill(&event, Instant::now()) {
            while Instant::now() < until && self.tell.hooks.pre_kill_running() {
                self.tell.on_ready(Instant::now(), &mut self.kernel_events);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // The operator's diagnostic (`[kill] diagnose` or the rule's), bounded, before the
        // signal; skipped at the SIGKILL level.
        let diagnostics = self.diagnose(scope, level, rule.as_deref(), pinned.pid());
        let outcome = self.kill(scope, &pinned, &plan, group.as_ref());
        self.kills += 1;
        // The processes changed: a ranking done ahead is not reused for the next decision.
        self.warm.forget();
        let after = self.sample().ok();
        let kill_report = report::report(&outcome, dry_run);
        log(format_args!(
            "kill #{} ({}): {trig}: {}; victim {who}; sent {}; {}; scan {scan_ms:.1} ms{}; MemAvailable {} -> {}",
            self.kills,
            if dry_run { "dry run" } else { "real" },
            d.detail,
            kill_report.sent.label(),
            report::describe(&outcome),
            self.candidates_note,
            format_bytes(before),
            after.map_or("?".to_owned(), |s| format_bytes(s.mem_available_bytes)),
        ));
        let mut done = decision::kill_event(
            &d,
            cg_path.as_deref(),
            event.victim.take().unwrap_or_default(),
            unit,
            dry_run,
            &kill_report,
            after.as_ref(),
        );
        // The minute before (after the signal: building it never delays the kill).
        done.recorder = self.kill_recording(scope);
        done.diagnostics = diagnostics;
        done.step = step.map(|s| StepInfo {
            outcome: if dry_run { "dry_run" } else { "done" },
            ..s
        });
        self.tell.record(done, Instant::now());
        let value = match scope {
            Scope::Global => after.map_or(0, |s| s.mem_available_bytes),
            // The same figure `check_cgroup` watches: memory below the limit.
            Scope::Cgroup(i) => cgroups::read(&self.cgfs, &self.cgroups[i])
                .ok()
                .map_or(0, |r| r.below_limit_bytes()),
        };
        self.history
            .killed(scope, value, kill_report.victim_gone, Instant::now());
    }

    /// Signals the decision's kill unit through the actuator, escalating early when memory
    /// reaches the SIGKILL level (or the cgroup a quarter into its headroom) while the victim
    /// takes its time.
    fn kill(
        &mut self,
        scope: Scope,
        pinned: &Pinned,
        plan: &KillPlan,
        oom_group: Option<&CgroupTarget>,
    ) -> Result<KillOutcome, ActuatorError> {
        test_seam_pause(
            "OOMGUARD_TEST_PAUSE_AFTER_PIN_MS",
            "after pinning",
            pinned.pid(),
            pinned.start_time_ticks(),
        );
        let kill_bytes = self.th.mem_kill_bytes;
        let mut meminfo = self.meminfo.try_clone().ok();
        let mut buf = Vec::with_capacity(8192);
        let cg = match scope {
            Scope::Cgroup(i) => Some((self.cgfs.clone(), i)),
            Scope::Global => None,
        };
        let cgroups = &self.cgroups;
        let mut escalate = || -> bool {
            match &cg {
                None => meminfo
                    .as_mut()
                    .and_then(|f| read_sample(f, None, &mut buf).ok())
                    .is_some_and(|s| s.mem_available_bytes < kill_bytes),
                Some((cgfs, i)) => {
                    let w = &cgroups[*i];
                    cgroups::read(cgfs, w).ok().is_some_and(|r| {
                        let limit = r.limit_bytes.unwrap_or(u64::MAX);
                        r.working_set_bytes >= limit.saturating_sub(w.headroom.resolve(limit) / 4)
                    })
                }
            }
        };
        let actuator = self.actuator.as_mut();
        let single = |a: &mut dyn actuator::Actuator, e: &mut dyn FnMut() -> bool| {
            Ok(actuator::kill_escalating(a, pinned, plan, e))
        };
        if let Some(t) = oom_group {
            return actuator::kill_cgroup(actuator, t, plan, &mut escalate);
        }
        match self.cfg.kill.unit {
            KillUnit::Process => single(actuator, &mut escalate),
            KillUnit::Pgroup => {
                // The group of the pinned process, read through the pin: `getpgid(pid)` names
                // the group of whoever holds the number now, which after the victim's exit and
                // a pid reuse is a stranger's. Gone: the single-process path reports it.
                let pgid = pinned.read_identity().map_or(0, |id| id.pgrp);
                if pgid <= 0 {
                    return single(actuator, &mut escalate);
                }
                actuator::kill_process_group(actuator, pgid, plan, &mut escalate)
            }
            KillUnit::Cgroup => {
                // Gone (or no memory cgroup): the single-process path reports it.
                match victim_cgroup(&self.cgfs, pinned) {
                    Some(t) => actuator::kill_cgroup(actuator, &t, plan, &mut escalate),
                    None => single(actuator, &mut escalate),
                }
            }
        }
    }
}

/// Test seam, compiled only into builds with debug assertions (the test profile): with the
/// environment variable `var` set (`OOMGUARD_TEST_PAUSE_BEFORE_PIN_MS` between choosing the
/// victim and pinning it, `OOMGUARD_TEST_PAUSE_AFTER_PIN_MS` between pinning it and resolving
/// its kill unit), the kill path sleeps that many ms, so a test can make the victim exit and hand
/// its pid to a new process in exactly the window a real race would use (tests/kernel_watch.rs,
/// `victim_exits_by_itself_and_its_pid_is_reused_*`). Why a seam: a hidden flag would ship in
/// release builds, and the race needs a real pidfd on a real pid that really gets reused.
/// Release builds ignore the variables.
fn test_seam_pause(var: &str, when: &str, pid: i32, start_time_ticks: u64) {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) {
        log(format_args!(
            "test seam: pausing {ms} ms {when} pid {pid} (start {start_time_ticks} ticks)"
        ));
        std::thread::sleep(Duration::from_millis(ms));
    }
    #[cfg(not(debug_assertions))]
    let _ = (var, when, pid, start_time_ticks);
}

/// The victim's memory cgroup as a kill target (its leaf cgroup, never the root), read through
/// the pin: `/proc/PID/cgroup` by number would describe whoever holds the pid now, which after
/// the victim's exit and a pid reuse is a stranger, whose cgroup would then be killed.
fn victim_cgroup(cgfs: &CgroupFs, pinned: &Pinned) -> Option<CgroupTarget> {
    use oomguard_core::host::process::{memory_cgroup_path, parse_cgroup};
    let text = pinned.read_proc_file("cgroup").ok()?;
    let lines = parse_cgroup(&text).ok()?;
    let (version, path) = memory_cgroup_path(&lines)?;
    if path == "/" || path.is_empty() {
        return None;
    }
    let dir = cgfs.memcg_dir(version, path)?;
    Some(CgroupTarget {
        dir,
        rel_path: path.to_owned(),
        v1_controller: (version == CgroupVersion::V1).then(|| "memory".to_owned()),
    })
}

/// The cgroup `memory.oom.group` makes the kill unit of the pinned victim, for an OOM in
/// `domain` (the guarded cgroup's path, or `/`): the highest cgroup with the flag from the
/// victim's up to the domain ([`oomguard_core::cgroup_guard::oom_group_target`]). cgroup v2
/// only (v1 has no such flag); read through the pin, as [`victim_cgroup`].
fn oom_group_of(cgfs: &CgroupFs, pinned: &Pinned, domain: &str) -> Option<CgroupTarget> {
    use oomguard_core::host::process::{memory_cgroup_path, parse_cgroup};
    let text = pinned.read_proc_file("cgroup").ok()?;
    let lines = parse_cgroup(&text).ok()?;
    let (version, path) = memory_cgroup_path(&lines)?;
    if version != CgroupVersion::V2 {
        return None;
    }
    let flagged = |p: &str| {
        cgfs.memcg_dir(CgroupVersion::V2, p)
            .and_then(|d| std::fs::read(d.join("memory.oom.group")).ok())
            .is_some_and(|t| t.trim_ascii() == b"1")
    };
    let group = oomguard_core::cgroup_guard::oom_group_target(path, domain, flagged)?;
    let dir = cgfs.memcg_dir(CgroupVersion::V2, &group)?;
    Some(CgroupTarget {
        dir,
        rel_path: group,
        v1_controller: None,
    })
}
