//! Two cgroup v2 rules of a guarded cgroup beyond its headroom, both pure:
//!
//! - **pressure**: the cgroup's own `memory.pressure` (`some` avg10) above a percentage for a
//!   duration, the rule systemd-oomd applies with `ManagedOOMMemoryPressureLimit=`; it catches a
//!   workload that thrashes on its limit while its usage never comes near it (page cache
//!   reclaimed and refaulted), where a headroom rule sees nothing;
//! - **oom group**: which cgroup a kill must take down when `memory.oom.group` is set, chosen as
//!   the kernel's `mem_cgroup_get_oom_group()` chooses it (mm/memcontrol.c): walking from the
//!   victim's cgroup up to the OOM domain, the highest one with the flag.

use std::time::{Duration, Instant};

use crate::config::PsiSpec;
use crate::decision::{CgroupReading, Decision, History, Scope, Snapshot};
use crate::trigger::{Level, Trigger};

/// The cgroup a kill of a process in `victim` (a cgroup path as `/proc/PID/cgroup` shows it)
/// must take down under `memory.oom.group`, for an OOM in `domain` (the guarded cgroup; `/` for
/// the whole machine). As the kernel: from the victim's cgroup upwards, up to and including the
/// domain, the highest cgroup whose flag is set; the root cgroup is never one (it has no
/// `memory.oom.group`). `is_group` reads the flag of one path; `None` when no kill of a group
/// applies (no flag set, or the victim outside the domain).
pub fn oom_group_target(
    victim: &str,
    domain: &str,
    mut is_group: impl FnMut(&str) -> bool,
) -> Option<String> {
    let victim = normalise(victim);
    let domain = normalise(domain);
    if !within(victim, domain) {
        return None;
    }
    let mut found = None;
    let mut at = victim;
    loop {
        if at == "/" {
            break;
        }
        if is_group(at) {
            found = Some(at.to_owned());
        }
        if at == domain {
            break;
        }
        at = parent(at);
    }
    found
}

fn normalise(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

fn within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// avg10 is an average over the last 10 s: after a kill it stays high for that long whatever
/// the workload does now. The rule is not counted again before then, or one stall would take a
/// second victim as soon as the first one's memory settles (systemd-oomd waits likewise after
/// each kill).
pub const AVG10_HORIZON: Duration = Duration::from_secs(10);

/// The pressure rule's state for one guarded cgroup: since when avg10 has been above the rule,
/// and when the last kill in the cgroup was.
#[derive(Debug, Clone, Copy, Default)]
pub struct PressureState {
    above_since: Option<Instant>,
    last_kill: Option<Instant>,
}

impl PressureState {
    /// Takes one reading of the cgroup's `some` avg10; returns how long it has been above the
    /// rule (`None` when it is not).
    pub fn observe(&mut self, spec: &PsiSpec, avg10_pct: f64, now: Instant) -> Option<Duration> {
        if avg10_pct > spec.avg10_pct {
            let since = *self.above_since.get_or_insert(now);
            Some(now.duration_since(since))
        } else {
            self.above_since = None;
            None
        }
    }

    /// Counting towards the rule's duration (the loop then looks again soon).
    pub fn counting(&self) -> bool {
        self.above_since.is_some()
    }
}

/// The pressure decision for guarded cgroup `index`: SIGTERM first (a stall is not an
/// allocation racing to the limit; the victim has its grace), once avg10 stayed above the rule
/// for its duration, and not while the scope waits for an earlier kill to take effect.
#[allow(clippy::too_many_arguments)]
pub fn decide_pressure(
    index: usize,
    path: &str,
    r: &CgroupReading,
    spec: &PsiSpec,
    avg10_pct: f64,
    state: &mut PressureState,
    history: &mut History,
    recovery_timeout: Duration,
    now: Instant,
) -> Option<Decision> {
    let scope = Scope::Cgroup(index);
    if let Some(rec) = history.recovery.get(&scope) {
        state.last_kill = Some(rec.started);
    }
    if state
        .last_kill
        .is_some_and(|k| now.saturating_duration_since(k) < AVG10_HORIZON)
    {
        state.above_since = None;
        return None;
    }
    let held_for = state.observe(spec, avg10_pct, now);
    // Recovery after a kill: the stall has ended (avg10 back under the rule), watched on the
    // memory below the limit as for the headroom rule.
    let held = history.held_back(
        scope,
        r.below_limit_bytes(),
        held_for.is_none(),
        recovery_timeout,
        now,
    );
    let held_for = held_for?;
    if held_for < spec.duration || held || history.resting(scope, now) {
        return None;
    }
    let detail = format!(
        "cgroup {path} memory.pressure some avg10 {avg10_pct:.2}% above {:.2}% for {:.1} s",
        spec.avg10_pct,
        held_for.as_secs_f64()
    );
    Some(Decision {
        scope,
        level: Level::Term,
        trigger: Trigger::PsiSome,
        snapshot: Snapshot {
            memory: None,
            cgroup: Some(*r),
        },
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags<'a>(set: &'a [&'a str]) -> impl FnMut(&str) -> bool + 'a {
        move |p| set.contains(&p)
    }

    #[test]
    fn oom_group_is_the_highest_flagged_up_to_the_domain() {
        let v = "/kubepods.slice/pod1.slice/cri-containerd-a.scope";
        // Flag on the leaf only: the leaf.
        assert_eq!(
            oom_group_target(v, "/kubepods.slice", flags(&[v])).as_deref(),
            Some(v)
        );
        // Flag on the pod and the leaf: the pod (the highest).
        assert_eq!(
            oom_group_target(
                v,
                "/kubepods.slice",
                flags(&[v, "/kubepods.slice/pod1.slice"])
            )
            .as_deref(),
            Some("/kubepods.slice/pod1.slice")
        );
        // A flag above the domain does not count: the kernel stops at the OOM domain.
        assert_eq!(
            oom_group_target(v, "/kubepods.slice/pod1.slice", flags(&["/kubepods.slice"])),
            None
        );
        // The domain's own flag counts.
        assert_eq!(
            oom_group_target(v, "/kubepods.slice", flags(&["/kubepods.slice"])).as_deref(),
            Some("/kubepods.slice")
        );
        // No flag: none.
        assert_eq!(oom_group_target(v, "/", flags(&[])), None);
        // A machine-wide OOM walks up to, not including, the root.
        assert_eq!(
            oom_group_target("/a/b", "/", flags(&["/a", "/"])).as_deref(),
            Some("/a")
        );
        // The victim outside the domain (it moved): none, never a stranger's cgroup.
        assert_eq!(oom_group_target("/b/c", "/a", flags(&["/b"])), None);
        assert_eq!(oom_group_target("/ab/c", "/a", flags(&["/ab"])), None);
        // Trailing slashes and the root victim.
        assert_eq!(
            oom_group_target("/a/b/", "/a/", flags(&["/a/b"])).as_deref(),
            Some("/a/b")
        );
        assert_eq!(oom_group_target("/", "/", flags(&["/"])), None);
    }

    fn reading() -> CgroupReading {
        CgroupReading {
            usage_bytes: 100 << 20,
            working_set_bytes: 60 << 20,
            limit_bytes: Some(256 << 20),
        }
    }

    #[test]
    fn pressure_fires_after_its_duration_and_then_waits_for_recovery() {
        let spec = PsiSpec {
            avg10_pct: 10.0,
            duration: Duration::from_secs(2),
        };
        let mut st = PressureState::default();
        let mut h = History::default();
        let t0 = Instant::now();
        let r = reading();
        let d = |st: &mut PressureState, h: &mut History, pct: f64, at: Duration| {
            decide_pressure(
                0,
                "/app",
                &r,
                &spec,
                pct,
                st,
                h,
                Duration::from_secs(10),
                t0 + at,
            )
        };
        assert!(d(&mut st, &mut h, 5.0, Duration::ZERO).is_none());
        assert!(!st.counting());
        assert!(d(&mut st, &mut h, 12.0, Duration::from_secs(1)).is_none());
        assert!(st.counting());
        // A dip under the rule starts the count again.
        assert!(d(&mut st, &mut h, 9.0, Duration::from_millis(2500)).is_none());
        assert!(d(&mut st, &mut h, 12.0, Duration::from_secs(3)).is_none());
        assert!(d(&mut st, &mut h, 12.0, Duration::from_millis(4900)).is_none());
        let fired = d(&mut st, &mut h, 30.0, Duration::from_secs(5)).expect("fires at 2 s");
        assert_eq!(fired.level, Level::Term);
        assert_eq!(fired.trigger, Trigger::PsiSome);
        assert!(matches!(fired.scope, Scope::Cgroup(0)));
        assert!(
            fired.detail.contains("avg10 30.00% above 10.00% for 2.0 s"),
            "{}",
            fired.detail
        );
        // After a kill, avg10 (still high from before) is not counted for 10 s, however
        // soon the victim's memory settles; then the rule's duration counts afresh.
        h.killed(
            Scope::Cgroup(0),
            r.below_limit_bytes(),
            true,
            t0 + Duration::from_secs(5),
        );
        assert!(d(&mut st, &mut h, 30.0, Duration::from_secs(8)).is_none());
        assert!(d(&mut st, &mut h, 30.0, Duration::from_millis(14900)).is_none());
        assert!(!st.counting());
        assert!(d(&mut st, &mut h, 30.0, Duration::from_secs(15)).is_none());
        assert!(d(&mut st, &mut h, 30.0, Duration::from_millis(16900)).is_none());
        assert!(d(&mut st, &mut h, 30.0, Duration::from_secs(17)).is_some());
    }

    #[test]
    fn pressure_at_exactly_the_rule_does_not_count() {
        let spec = PsiSpec {
            avg10_pct: 10.0,
            duration: Duration::ZERO,
        };
        let mut st = PressureState::default();
        assert_eq!(st.observe(&spec, 10.0, Instant::now()), None);
        assert!(st.observe(&spec, 10.01, Instant::now()).is_some());
    }
}
