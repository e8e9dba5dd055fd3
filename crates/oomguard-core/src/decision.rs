//! The daemon's typed handover, one stage to the next: a [`Snapshot`] (one reading of memory,
//! PSI and, for a guarded cgroup, its usage and limit) → a [`Decision`] (a pure function of the
//! snapshot, the thresholds and the [`History`] of earlier kills) → a [`KillReport`] (what the
//! actuator did, reduced to what the event says) → an [`OomEvent`] ([`kill_event`]).
//!
//! Nothing here reads a file or the clock: the daemon reads, passes the time in, and acts. Each
//! stage carries what the next one needs, so no figure is turned into a string and parsed back:
//! the trigger, the signal, the kill unit and the outcome are enums all the way to the event's
//! JSON (`docs/event-schema.md`), which serialises them to the same strings as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::KillUnit;
use crate::event::{self, EventKind, OomEvent, Outcome, Signal, Source, TriggerInfo, Victim};
use crate::size::{format_bytes, Amount};
use crate::trigger::{self, Level, PsiState, Sample, Thresholds, Trigger};

/// Where a decision applies: the whole machine, or the guarded cgroup of that index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Cgroup(usize),
}

/// One reading of a guarded cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupReading {
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    /// The effective limit (v1: the lower of its own and the hierarchical one; v2: memory.max, or
    /// memory.high when lower). `None`: unlimited, nothing to guard.
    pub limit_bytes: Option<u64>,
}

impl CgroupReading {
    /// Bytes left before the working set reaches `limit - headroom`; 0 when inside the headroom.
    pub fn room_bytes(&self, headroom: Amount) -> Option<u64> {
        let limit = self.limit_bytes?;
        let trigger = limit.saturating_sub(headroom.resolve(limit));
        Some(trigger.saturating_sub(self.working_set_bytes))
    }

    /// The figure that recovers after a kill: memory below the limit (not the room, which is 0
    /// all the while the working set is above the trigger).
    pub fn below_limit_bytes(&self) -> u64 {
        self.limit_bytes
            .map_or(0, |l| l.saturating_sub(self.working_set_bytes))
    }
}

/// One reading, carried from the check through the decision to the event instead of being read
/// again: the machine's memory (when it could be read) and, for a cgroup's decision, the
/// cgroup's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    pub memory: Option<Sample>,
    pub cgroup: Option<CgroupReading>,
}

/// What to do in one scope: a level other than calm, and the rule behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub scope: Scope,
    pub level: Level,
    pub trigger: Trigger,
    /// The reading it was made on (replaced by the re-check's reading right before acting).
    pub snapshot: Snapshot,
    /// One line for people: which threshold, crossed by how much (the event's
    /// `trigger.detail`). Only built when a rule fires.
    pub detail: String,
}

/// State after a kill: no new victim in the same scope until memory is back.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    pub started: Instant,
    /// The figure that must rise (MemAvailable, or a cgroup's memory below its limit) as it was
    /// at the last counted rise, and when that was.
    pub last_value: u64,
    pub last_rise: Instant,
    pub victim_gone: bool,
}

/// How long memory must stop rising, after the victim is gone, before a new victim may be chosen
/// while pressure remains. The reaper and exit path return a victim's pages within a few ms
/// (docs/kill-path.md: 1–4 ms for 32–120 MiB); 250 ms of no rise means it is over.
pub const SETTLE: Duration = Duration::from_millis(250);

/// A rise is this much above the figure at the last counted rise.
const RISE_BYTES: u64 = 1 << 20;

/// What the decisions remember: the recovery after each scope's last kill, and the scopes
/// where no candidate was found (not looked at again before then).
#[derive(Debug, Default)]
pub struct History {
    pub recovery: HashMap<Scope, Recovery>,
    pub idle_until: HashMap<Scope, Instant>,
}

impl History {
    /// Starts the recovery wait after a kill in `scope`; `value` is the figure that recovers.
    pub fn killed(&mut self, scope: Scope, value: u64, victim_gone: bool, now: Instant) {
        self.recovery.insert(
            scope,
            Recovery {
                started: now,
                last_value: value,
                last_rise: now,
                victim_gone,
            },
        );
    }

    /// Whether an earlier kill in `scope` still holds back a new one. `value` is the figure that
    /// recovers (MemAvailable, or a cgroup's memory below its limit); `recovered` whether the
    /// scope's rule says memory is back.
    pub fn held_back(
        &mut self,
        scope: Scope,
        value: u64,
        recovered: bool,
        timeout: Duration,
        now: Instant,
    ) -> bool {
        let Some(r) = self.recovery.get_mut(&scope) else {
            return false;
        };
        // A rise is 1 MiB above the figure at the last counted rise, however many readings it
        // took: under pressure the daemon reads every millisecond or so, and memory coming back
        // at tens of MiB/s moves less than 1 MiB between two readings. Measuring from the last
        // counted rise (not the previous reading, not the lowest) keeps noise that goes up and
        // down around one level from counting as a rise.
        if value >= r.last_value.saturating_add(RISE_BYTES) {
            r.last_rise = now;
            r.last_value = value;
        }
        let settled = r.victim_gone && now.duration_since(r.last_rise) >= SETTLE;
        if recovered || settled || now.duration_since(r.started) >= timeout {
            self.recovery.remove(&scope);
            return false;
        }
        true
    }

    /// No candidate in `scope`: do not look again before `until`.
    pub fn rest(&mut self, scope: Scope, until: Instant) {
        self.idle_until.insert(scope, until);
    }

    /// Whether `scope` rests (after a decision found no candidate).
    pub fn resting(&mut self, scope: Scope, now: Instant) -> bool {
        match self.idle_until.get(&scope) {
            Some(t) if now < *t => true,
            Some(_) => {
                self.idle_until.remove(&scope);
                false
            }
            None => false,
        }
    }

    /// Forgets the cgroup scopes at or past `cgroups` (after a rescan dropped watches).
    pub fn retain_cgroups(&mut self, cgroups: usize) {
        self.recovery.retain(|s, _| {
            matches!(s, Scope::Global) || matches!(s, Scope::Cgroup(i) if *i < cgroups)
        });
    }
}

/// The system-wide decision on one reading, and the level the rules ask for (calm or not,
/// whether or not a decision follows). `psi` must have observed `s` at `since` (the daemon's
/// running time); the recovery wait of the last kill is advanced (and ended) here even when
/// memory is calm.
#[allow(clippy::too_many_arguments)]
pub fn decide_global(
    th: &Thresholds,
    s: &Sample,
    psi: &PsiState,
    since: Duration,
    history: &mut History,
    recovery_margin_bytes: u64,
    recovery_timeout: Duration,
    now: Instant,
) -> (Level, Option<Decision>) {
    let verdict = trigger::evaluate(th, s, psi, since);
    let recovered = trigger::recovered(th, s, recovery_margin_bytes);
    let held = history.held_back(
        Scope::Global,
        s.mem_available_bytes,
        recovered,
        recovery_timeout,
        now,
    );
    if verdict.level == Level::Calm || held || history.resting(Scope::Global, now) {
        return (verdict.level, None);
    }
    let d = Decision {
        scope: Scope::Global,
        level: verdict.level,
        trigger: verdict.trigger.unwrap_or(Trigger::MemAvailable),
        snapshot: Snapshot {
            memory: Some(*s),
            cgroup: None,
        },
        detail: describe_memory(th, s),
    };
    (verdict.level, Some(d))
}

/// The decision for guarded cgroup `index` (`path` as configured) on one reading, and the room
/// left before its trigger (`None`: no limit, nothing to guard). A headroom of 0 means "watch
/// only": metrics and kernel-OOM detection for the cgroup, no kills (at the limit itself the
/// kernel's memcg OOM killer is already at work).
pub fn decide_cgroup(
    index: usize,
    path: &str,
    r: &CgroupReading,
    headroom: Amount,
    history: &mut History,
    recovery_timeout: Duration,
    now: Instant,
) -> (Option<Decision>, Option<u64>) {
    let Some(room) = r.room_bytes(headroom) else {
        return (None, None);
    };
    let limit = r.limit_bytes.unwrap_or(0);
    let headroom_bytes = headroom.resolve(limit);
    let recovered = room >= headroom_bytes.max(1);
    let scope = Scope::Cgroup(index);
    // Recovery is watched on the memory below the limit, not on `room`: room is 0 all the
    // while the working set is above the trigger, so memory coming back there would look
    // like no change and allow a second victim after SETTLE.
    let held = history.held_back(
        scope,
        r.below_limit_bytes(),
        recovered,
        recovery_timeout,
        now,
    );
    if headroom_bytes == 0 || room > 0 || held || history.resting(scope, now) {
        return (None, Some(room));
    }
    // Past a quarter of the headroom the kernel's memcg OOM is close: no SIGTERM grace.
    let kill_at = limit.saturating_sub(headroom_bytes / 4);
    let level = if r.working_set_bytes >= kill_at {
        Level::Kill
    } else {
        Level::Term
    };
    let detail = format!(
        "cgroup {path} working set {} (usage {}) within {} of its {} limit",
        format_bytes(r.working_set_bytes),
        format_bytes(r.usage_bytes),
        format_bytes(headroom_bytes),
        format_bytes(limit)
    );
    let d = Decision {
        scope,
        level,
        trigger: Trigger::CgroupHeadroom,
        snapshot: Snapshot {
            memory: None,
            cgroup: Some(*r),
        },
        detail,
    };
    (Some(d), Some(room))
}

/// The re-check right before acting, on a fresh reading: the level to act at (never below the
/// decision's), or `None` when the pressure is gone. `None` readings (the re-read failed) keep
/// the decision's level.
pub fn recheck(
    d: &Decision,
    th: &Thresholds,
    psi: &PsiState,
    since: Duration,
    fresh: &Snapshot,
    headroom: Amount,
) -> Option<Level> {
    // The thrash rule fired on rates over its duration, which one fresh reading cannot judge;
    // the detector was reset when it fired, so the decision stands as made.
    if d.trigger.is_thrash() {
        return Some(d.level);
    }
    let still = match d.scope {
        Scope::Global => fresh
            .memory
            .map(|s| trigger::evaluate(th, &s, psi, since).level),
        // A pressure decision (crate::cgroup_guard) stands on avg10, a 10 s average that a
        // scan of milliseconds cannot change: it keeps its level.
        Scope::Cgroup(_) if matches!(d.trigger, Trigger::PsiSome | Trigger::PsiFull) => {
            Some(d.level)
        }
        Scope::Cgroup(_) => fresh.cgroup.map(|r| {
            if r.room_bytes(headroom) == Some(0) {
                d.level
            } else {
                Level::Calm
            }
        }),
    };
    match still {
        Some(Level::Calm) => None,
        Some(l) => Some(l.max(d.level)),
        None => Some(d.level),
    }
}

/// MemAvailable, swap and PSI against the thresholds, for a system-wide decision's line.
pub fn describe_memory(th: &Thresholds, s: &Sample) -> String {
    let mut out = format!(
        "MemAvailable {} (SIGTERM below {}, SIGKILL below {})",
        format_bytes(s.mem_available_bytes),
        format_bytes(th.mem_term_bytes),
        format_bytes(th.mem_kill_bytes)
    );
    if s.swap_total_bytes > 0 {
        out.push_str(&format!(
            ", swap free {} of {}",
            format_bytes(s.swap_free_bytes),
            format_bytes(s.swap_total_bytes)
        ));
    }
    if let Some(p) = s.psi_some_avg10_pct {
        out.push_str(&format!(", PSI some avg10 {p:.2}%"));
    }
    if let Some(p) = s.psi_full_avg10_pct {
        out.push_str(&format!(" full {p:.2}%"));
    }
    out
}

/// Which signals reached the victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Nothing,
    Term,
    Kill,
    TermThenKill,
}

impl Sent {
    /// For the decision's log line.
    pub fn label(self) -> &'static str {
        match self {
            Sent::Nothing => "nothing",
            Sent::Term => "SIGTERM",
            Sent::Kill => "SIGKILL",
            Sent::TermThenKill => "SIGTERM then SIGKILL",
        }
    }
}

/// What the actuator did, as the event tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct KillReport {
    pub sent: Sent,
    pub outcome: Outcome,
    /// From the signal to the first target's exit.
    pub exited_after_ms: Option<u64>,
    /// `process_mrelease` on the first target: `Some(true)` when it released memory.
    pub mrelease: Option<bool>,
    /// Why the kill path failed as a whole.
    pub error: Option<String>,
    /// Every target is gone (the recovery wait may then settle early).
    pub victim_gone: bool,
}

impl KillReport {
    /// The action's signal: the strongest one sent; for a dry run the one that would have
    /// been; `none` when nothing could be sent.
    pub fn signal(&self, level: Level, dry_run: bool) -> Signal {
        match self.sent {
            Sent::TermThenKill | Sent::Kill => Signal::Kill,
            Sent::Term => Signal::Term,
            Sent::Nothing if dry_run => {
                if level == Level::Kill {
                    Signal::Kill
                } else {
                    Signal::Term
                }
            }
            Sent::Nothing => Signal::None,
        }
    }
}

/// The event of one kill: the decision's trigger and figures, the victim as read right before
/// acting, and the report; `after` is the memory reading after the kill (for `freed_bytes`),
/// `cgroup_path` the configured path of a cgroup decision's scope.
pub fn kill_event(
    d: &Decision,
    cgroup_path: Option<&str>,
    victim: Victim,
    unit: KillUnit,
    dry_run: bool,
    report: &KillReport,
    after: Option<&Sample>,
) -> OomEvent {
    let mut ev = OomEvent::new(EventKind::Kill);
    ev.source = Source::Oomguard;
    ev.pid = Some(victim.pid);
    ev.comm = Some(victim.name.clone());
    ev.uid = victim.uid;
    ev.oom_score_adj = victim.oom_score_adj;
    ev.task_memcg = victim.cgroup.clone();
    ev.trigger = Some(trigger_info(d, cgroup_path));
    ev.victim = Some(victim);
    let before = d.snapshot.memory.map_or(0, |s| s.mem_available_bytes);
    ev.action = Some(event::Action {
        signal: Some(report.signal(d.level, dry_run)),
        unit: Some(unit),
        dry_run,
        outcome: Some(report.outcome),
        exited_after_ms: report.exited_after_ms,
        freed_bytes: after.map(|s| s.mem_available_bytes.saturating_sub(before)),
        mrelease: report.mrelease,
        error: report.error.clone(),
    });
    ev
}

/// The event's `trigger` object for decision `d`: the reading it was made on, and the guarded
/// cgroup's path for a cgroup decision (its figures only then). Shared by kill events and the
/// daemon's warnings (the thrash rule's `notify` step).
pub fn trigger_info(d: &Decision, cgroup_path: Option<&str>) -> TriggerInfo {
    let mem = d.snapshot.memory;
    let cg = d.snapshot.cgroup.filter(|_| cgroup_path.is_some());
    TriggerInfo {
        reason: d.trigger,
        detail: Some(d.detail.clone()),
        mem_total_bytes: mem.map(|s| s.mem_total_bytes),
        mem_available_bytes: mem.map(|s| s.mem_available_bytes),
        swap_total_bytes: mem.map(|s| s.swap_total_bytes),
        swap_free_bytes: mem.map(|s| s.swap_free_bytes),
        psi_some_avg10_pct: mem.and_then(|s| s.psi_some_avg10_pct),
        psi_full_avg10_pct: mem.and_then(|s| s.psi_full_avg10_pct),
        cgroup: cgroup_path.map(str::to_owned),
        cgroup_usage_bytes: cg.map(|r| r.usage_bytes),
        cgroup_limit_bytes: cg.and_then(|r| r.limit_bytes),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn th() -> Thresholds {
        Thresholds {
            mem_term_bytes: 1 << 30,
            mem_kill_bytes: 512 << 20,
            swap_term_bytes: None,
            psi_some: None,
            psi_full: None,
        }
    }

    fn sample(avail: u64) -> Sample {
        Sample {
            mem_total_bytes: 8 << 30,
            mem_available_bytes: avail,
            ..Default::default()
        }
    }

    #[test]
    fn global_decision_carries_its_reading_and_waits_for_recovery() {
        let mut h = History::default();
        let t0 = Instant::now();
        let psi = PsiState::default();
        let timeout = Duration::from_secs(10);
        let s = sample(600 << 20);
        let (level, d) = decide_global(
            &th(),
            &s,
            &psi,
            Duration::ZERO,
            &mut h,
            128 << 20,
            timeout,
            t0,
        );
        let d = d.unwrap();
        assert_eq!(level, Level::Term);
        assert_eq!((d.level, d.trigger), (Level::Term, Trigger::MemAvailable));
        assert_eq!(d.snapshot.memory, Some(s));
        assert!(d.detail.starts_with("MemAvailable 600"), "{}", d.detail);
        // After a kill: held back while memory is not back and the victim not gone ...
        h.killed(Scope::Global, 600 << 20, false, t0);
        let again = |h: &mut History, avail, at| {
            decide_global(
                &th(),
                &sample(avail),
                &psi,
                Duration::ZERO,
                h,
                128 << 20,
                timeout,
                at,
            )
            .1
        };
        assert!(again(&mut h, 600 << 20, t0 + Duration::from_secs(1)).is_none());
        // ... and free to act again once the timeout passed.
        assert!(again(&mut h, 600 << 20, t0 + timeout).is_some());
        // Recovered memory ends the wait at once.
        h.killed(Scope::Global, 600 << 20, false, t0);
        assert!(again(&mut h, 2 << 30, t0).is_none());
        assert!(h.recovery.is_empty());
        // A gone victim and no rise for SETTLE ends it too.
        h.killed(Scope::Global, 600 << 20, true, t0);
        assert!(again(&mut h, 600 << 20, t0 + SETTLE / 2).is_none());
        assert!(again(&mut h, 600 << 20, t0 + SETTLE).is_some());
    }

    #[test]
    fn cgroup_decision_levels_and_watch_only() {
        let mut h = History::default();
        let now = Instant::now();
        let r = |ws| CgroupReading {
            usage_bytes: ws + (1 << 20),
            working_set_bytes: ws,
            limit_bytes: Some(100 << 20),
        };
        let hr = Amount::Bytes(20 << 20);
        let timeout = Duration::from_secs(10);
        let (d, room) = decide_cgroup(0, "/a", &r(50 << 20), hr, &mut h, timeout, now);
        assert_eq!((d, room), (None, Some(30 << 20)));
        let (d, _) = decide_cgroup(0, "/a", &r(85 << 20), hr, &mut h, timeout, now);
        let d = d.unwrap();
        assert_eq!((d.level, d.scope), (Level::Term, Scope::Cgroup(0)));
        assert!(
            d.detail.starts_with("cgroup /a working set 85"),
            "{}",
            d.detail
        );
        let (d, _) = decide_cgroup(0, "/a", &r(96 << 20), hr, &mut h, timeout, now);
        assert_eq!(d.unwrap().level, Level::Kill);
        // Headroom 0: watch only.
        let (d, room) = decide_cgroup(
            0,
            "/a",
            &r(100 << 20),
            Amount::Bytes(0),
            &mut h,
            timeout,
            now,
        );
        assert_eq!((d, room), (None, Some(0)));
        // No limit: nothing to guard.
        let unlimited = CgroupReading {
            limit_bytes: None,
            ..r(1)
        };
        assert_eq!(
            decide_cgroup(0, "/a", &unlimited, hr, &mut h, timeout, now),
            (None, None)
        );
    }

    #[test]
    fn recheck_stands_down_or_escalates() {
        let psi = PsiState::default();
        let d = Decision {
            scope: Scope::Global,
            level: Level::Term,
            trigger: Trigger::MemAvailable,
            snapshot: Snapshot::default(),
            detail: String::new(),
        };
        let fresh = |avail| Snapshot {
            memory: Some(sample(avail)),
            cgroup: None,
        };
        let hr = Amount::Bytes(0);
        assert_eq!(
            recheck(&d, &th(), &psi, Duration::ZERO, &fresh(2 << 30), hr),
            None
        );
        assert_eq!(
            recheck(&d, &th(), &psi, Duration::ZERO, &fresh(100 << 20), hr),
            Some(Level::Kill)
        );
        assert_eq!(
            recheck(&d, &th(), &psi, Duration::ZERO, &Snapshot::default(), hr),
            Some(Level::Term)
        );
    }

    #[test]
    fn the_event_serialises_the_typed_fields_to_the_documented_strings() {
        let d = Decision {
            scope: Scope::Cgroup(0),
            level: Level::Kill,
            trigger: Trigger::CgroupHeadroom,
            snapshot: Snapshot {
                memory: Some(sample(3 << 30)),
                cgroup: Some(CgroupReading {
                    usage_bytes: 90,
                    working_set_bytes: 80,
                    limit_bytes: Some(100),
                }),
            },
            detail: "cgroup /a ...".to_owned(),
        };
        let report = KillReport {
            sent: Sent::TermThenKill,
            outcome: Outcome::Exited,
            exited_after_ms: Some(3),
            mrelease: Some(true),
            error: None,
            victim_gone: true,
        };
        let victim = Victim {
            pid: 42,
            name: "hog".to_owned(),
            ..Victim::default()
        };
        let after = sample((3 << 30) + 4096);
        let ev = kill_event(
            &d,
            Some("/a"),
            victim,
            KillUnit::Pgroup,
            false,
            &report,
            Some(&after),
        );
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["trigger"]["reason"], "cgroup");
        assert_eq!(j["trigger"]["cgroup"], "/a");
        assert_eq!(j["trigger"]["cgroup_usage_bytes"], 90);
        assert_eq!(j["action"]["signal"], "SIGKILL");
        assert_eq!(j["action"]["unit"], "pgroup");
        assert_eq!(j["action"]["outcome"], "exited");
        assert_eq!(j["action"]["freed_bytes"], 4096);
        assert_eq!(j["pid"], 42);
        let back: event::Action = serde_json::from_value(j["action"].clone()).unwrap();
        assert_eq!(back.signal, Some(Signal::Kill));
        // A dry run names the signal it would have sent.
        let dry = KillReport {
            sent: Sent::Nothing,
            outcome: Outcome::DryRun,
            ..report
        };
        assert_eq!(dry.signal(Level::Term, true), Signal::Term);
        assert_eq!(dry.signal(Level::Term, false), Signal::None);
        assert_eq!(
            serde_json::to_value(Outcome::DryRun).unwrap(),
            serde_json::json!("dry_run")
        );
    }
}
