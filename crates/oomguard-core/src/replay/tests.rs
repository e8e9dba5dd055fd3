//! Replay on built reports: era finding, tie rules per era, unkillable and missing victims,
//! totalpages per scope, trigger leads.

use super::*;
use crate::config::KillUnit;

fn row(pid: i64, uid: u64, rss: u64, adj: i64, name: &str) -> TaskRow {
    TaskRow {
        pid,
        uid: Some(uid),
        tgid: Some(pid),
        rss_pages: Some(rss),
        pgtables_bytes: Some(0),
        swapents_pages: Some(0),
        oom_score_adj: Some(adj),
        name: name.to_owned(),
        ..TaskRow::default()
    }
}

fn memcg_event(rows: Vec<TaskRow>, victim: i64, limit_kb: u64) -> OomEvent {
    let mut ev = OomEvent::new(EventKind::Kill);
    ev.constraint = Some("CONSTRAINT_MEMCG".into());
    ev.oom_memcg = Some("/test".into());
    ev.memcg_limit_kb = Some(limit_kb);
    ev.swap_limit_kb = Some(0);
    ev.pid = Some(victim);
    ev.pgtables_kb = Some(0);
    ev.tasks = rows;
    ev
}

#[test]
fn release_in_stack_lines() {
    let v = |s| kernel_release_in_line(s).map(|v| v.to_string());
    assert_eq!(
        v("CPU: 1 PID: 1 Comm: x Not tainted 5.10.0-28-amd64 #1 Debian").as_deref(),
        Some("5.10.0")
    );
    assert_eq!(
            v("CPU: 3 PID: 9 Comm: y Tainted: G           O E ----V-------   3.10.0-229.42.1.105.x86_64 #1").as_deref(),
            Some("3.10.0")
        );
    assert_eq!(
        v("Pid: 6344, comm: sh Not tainted 3.2.32-pk06.11-i386 #1").as_deref(),
        Some("3.2.32")
    );
    assert_eq!(v("kernel tainted by module"), None);
    assert_eq!(v("Tainted: G W #5"), None);
}

#[test]
fn default_policy_agrees_and_tie_rules_follow_the_era() {
    let rows = vec![
        row(10, 1000, 500, 0, "a"),
        row(11, 1000, 900, 0, "b"),
        row(12, 1000, 900, 0, "c"),
    ];
    let ev = memcg_event(rows, 12, 4096 * 4);
    let p = Policy::default();
    // 5.9+: the later of two equal scores, as oomguard.
    let r = replay(
        &ev,
        Some(KernelVersion::new(6, 1, 0)),
        &p,
        KillUnit::Process,
    );
    assert!(r.agrees, "{r:?}");
    assert_eq!(r.replay_victim_pid, Some(12));
    assert!(r.reason.contains("tied"), "{}", r.reason);
    // 4.19: the kernel keeps the earlier (pid 11); oomguard would take 12: a tie, explained.
    let mut ev419 = ev.clone();
    ev419.pid = Some(11);
    let r = replay(
        &ev419,
        Some(KernelVersion::new(4, 19, 0)),
        &p,
        KillUnit::Process,
    );
    assert!(!r.agrees);
    assert_eq!(r.outcome, Outcome::Tie);
    assert_eq!(r.model_victim_pid, Some(11));
    assert!(r.reason.contains("pre-5.3"), "{}", r.reason);
}

#[test]
fn unkillable_missing_and_rules() {
    let p = Policy::default();
    // The kernel's victim is absent from the dump.
    let ev = memcg_event(vec![row(10, 0, 5, 0, "a")], 99, 1 << 20);
    let r = replay(&ev, None, &p, KillUnit::Process);
    assert_eq!(r.outcome, Outcome::RowsMissing);
    // adj -1000 is never chosen, by either.
    let ev = memcg_event(
        vec![row(10, 0, 5000, -1000, "big"), row(11, 0, 5, 0, "small")],
        11,
        1 << 20,
    );
    let r = replay(&ev, None, &p, KillUnit::Process);
    assert!(r.agrees);
    assert_eq!(r.candidates[0].verdict.points(), None);
    // A protect rule changes the choice: reported as policy.
    let rules = [crate::config::RuleConfig {
        action: crate::config::RuleAction::Protect,
        name: Some("^small$".into()),
        cmdline: None,
        exe: None,
        cgroup: None,
        user: None,
        adjust: 0,
        diagnose: None,
    }];
    let pol = Policy::compile(&rules, 0).unwrap();
    let ev = memcg_event(
        vec![row(10, 0, 50, 0, "other"), row(11, 0, 500, 0, "small")],
        11,
        1 << 20,
    );
    let r = replay(&ev, None, &pol, KillUnit::Process);
    assert!(!r.agrees);
    assert_eq!(r.outcome, Outcome::Policy);
    assert_eq!(r.replay_victim_pid, Some(10));
}

#[test]
fn not_replayable_reports_say_why() {
    let p = Policy::default();
    let mut ev = memcg_event(Vec::new(), 5, 1024);
    let r = replay(&ev, None, &p, KillUnit::Process);
    assert_eq!(r.outcome, Outcome::NotReplayable);
    ev.tasks = vec![row(5, 0, 1, 0, "x")];
    ev.kind = EventKind::Panic;
    ev.pid = None;
    assert_eq!(
        replay(&ev, None, &p, KillUnit::Process).outcome,
        Outcome::NotReplayable
    );
    let mut old = memcg_event(
        vec![TaskRow {
            oom_score_adj: None,
            oom_adj: Some(0),
            pgtables_bytes: None,
            swapents_pages: None,
            ..row(5, 0, 1, 0, "x")
        }],
        5,
        1024,
    );
    old.pgtables_kb = None;
    let r = replay(&old, None, &p, KillUnit::Process);
    assert_eq!(r.outcome, Outcome::NotReplayable, "{r:?}");
    assert!(r.reason.contains("2.6.36"));
}

#[test]
fn totalpages_per_scope() {
    let ev = memcg_event(Vec::new(), 1, 262_144);
    let t = total_pages(&ev, 4096);
    assert_eq!(
        (t.pages, t.lo_pages, t.hi_pages),
        (Some(65_536), 65_536, 65_536)
    );
    let mut v1 = ev.clone();
    v1.swap_limit_kb = None;
    v1.memsw_limit_kb = Some(9_007_199_254_740_988);
    let t = total_pages(&v1, 4096);
    assert_eq!(t.lo_pages, 65_536);
    assert!(t.hi_pages > 1 << 30);
    let mut unknown = ev;
    unknown.memcg_limit_kb = None;
    assert_eq!(total_pages(&unknown, 4096).pages, None);
}

#[test]
fn leads_say_when_a_trigger_would_have_fired() {
    let reading = |t: f64, avail_pct: u64, logged: &str| Reading {
        unix_time_s: t,
        mem_total_bytes: Some(100 << 20),
        mem_available_bytes: Some((100 << 20) * avail_pct / 100),
        logged: logged.to_owned(),
        ..Reading::default()
    };
    let rs = [
        reading(900.0, 50, "old"),
        reading(1000.0, 30, "warning memory"),
        reading(1010.0, 8, "kill memory, dry run"),
        reading(1030.0, 2, "kill memory, dry run"),
    ];
    let cfg = crate::config::Config::default();
    let glob = |a: &str, b: &str| a == b;
    let l = leads(&rs, 1040.0, None, &cfg, 60.0, &glob);
    assert_eq!(l.readings, 3);
    let f = l.first_fire.unwrap();
    // Default term_below 10 %: the 8 % reading, 30 s before the kill.
    assert_eq!((f.trigger.as_str(), f.level.as_str()), ("memory", "term"));
    assert!((f.lead_s - 30.0).abs() < 1e-9);
    assert_eq!(l.first_logged.unwrap().trigger, "warning memory");
    // A stricter config fires at none of them.
    let mut strict = cfg.clone();
    strict.memory.term_below = crate::size::Amount::Percent(1.0);
    strict.memory.kill_below = crate::size::Amount::Percent(1.0);
    assert!(leads(&rs, 1040.0, None, &strict, 60.0, &glob)
        .first_fire
        .is_none());
    // Nothing in the window: the note says what is missing.
    let none = leads(&rs, 5000.0, None, &cfg, 60.0, &glob);
    assert_eq!(none.readings, 0);
    assert!(none.note.contains("no oomguard reading"));
    // A memcg OOM counts readings of its own cgroup (and system-wide ones), not others'.
    let mut cgcfg = cfg.clone();
    cgcfg.cgroups.push(crate::config::CgroupWatch {
        path: "/a".into(),
        headroom: crate::size::Amount::Bytes(10),
        psi: None,
    });
    let cg = |t: f64, c: &str| Reading {
        unix_time_s: t,
        cgroup: Some(c.to_owned()),
        cgroup_usage_bytes: Some(95),
        cgroup_limit_bytes: Some(100),
        logged: format!("kill cgroup {c}"),
        ..Reading::default()
    };
    let rs = [cg(1000.0, "/b"), cg(1010.0, "/a")];
    let l = leads(&rs, 1020.0, Some("/a"), &cgcfg, 60.0, &glob);
    assert_eq!(l.readings, 1);
    let f = l.first_fire.unwrap();
    assert_eq!(f.trigger, "cgroup");
    assert!((f.lead_s - 10.0).abs() < 1e-9);
}
