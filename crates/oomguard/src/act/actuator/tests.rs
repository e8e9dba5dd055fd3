//! Tests of `actuator`.

use super::*;
use crate::testutil::{self, sleeper, spawn_kid, TempCgroup};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex};

fn plan(grace_ms: Option<u64>) -> KillPlan {
    KillPlan {
        term_grace: grace_ms.map(Duration::from_millis),
        kill_wait: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
    }
}

#[test]
fn term_is_enough() {
    let mut kid = sleeper(None, false);
    let out = kill_escalating(
        &mut RealActuator,
        &kid.pinned,
        &plan(Some(2000)),
        &mut || false,
    );
    let t = &out.targets[0];
    assert_eq!(t.result, KillResult::ExitedAfterTerm, "{out:?}");
    assert!(t.term_sent && !t.kill_sent);
    assert_eq!(t.mrelease, None);
    assert!(out.all_gone());
    assert!(t.exited_after.is_some_and(|d| d < Duration::from_secs(2)));
    assert_eq!(kid.reap(), Some(libc::SIGTERM));
}

#[test]
fn term_ignored_escalates_after_grace() {
    let mut kid = sleeper(None, true);
    let out = kill_escalating(
        &mut RealActuator,
        &kid.pinned,
        &plan(Some(200)),
        &mut || false,
    );
    let t = &out.targets[0];
    assert_eq!(t.result, KillResult::ExitedAfterKill, "{out:?}");
    assert!(t.term_sent && t.kill_sent);
    assert!(matches!(
        t.mrelease,
        Some(MreleaseOutcome::Released | MreleaseOutcome::AlreadyFreed)
    ));
    assert!(!out.escalated_early);
    assert!(t
        .exited_after
        .is_some_and(|d| d >= Duration::from_millis(200)));
    assert_eq!(kid.reap(), Some(libc::SIGKILL));
}

#[test]
fn escalate_now_cuts_grace_short() {
    let mut kid = sleeper(None, true);
    let started = Instant::now();
    let out = kill_escalating(
        &mut RealActuator,
        &kid.pinned,
        &plan(Some(60_000)),
        &mut || true,
    );
    assert!(out.escalated_early);
    assert_eq!(out.targets[0].result, KillResult::ExitedAfterKill);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(kid.reap(), Some(libc::SIGKILL));
}

#[test]
fn already_gone_signals_nobody() {
    let mut kid = sleeper(None, false);
    kid.pinned.send_signal(Signal::KILL).unwrap();
    kid.reap();
    let out = kill_escalating(
        &mut RealActuator,
        &kid.pinned,
        &plan(Some(100)),
        &mut || false,
    );
    assert_eq!(out.targets[0].result, KillResult::AlreadyGone);
    assert!(!out.targets[0].term_sent && !out.targets[0].kill_sent);
    assert!(out.all_gone());
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);
impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn dry_run_signals_nothing() {
    let kid = sleeper(None, false);
    let buf = SharedBuf::default();
    let mut act = DryRunActuator::new(Box::new(buf.clone()));
    let out = kill_escalating(&mut act, &kid.pinned, &plan(Some(60_000)), &mut || false);
    assert_eq!(out.targets[0].result, KillResult::DryRun);
    assert!(
        out.elapsed < Duration::from_secs(1),
        "dry run must not wait"
    );
    assert!(!kid.pinned.wait_exit(Duration::from_millis(100)).unwrap());
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("would send SIGTERM"), "{log}");
    assert!(log.contains("would send SIGKILL"), "{log}");
    assert!(log.contains("would process_mrelease"), "{log}");
}

#[test]
fn recording_sequence_and_early_escalation() {
    let me = Pinned::open(std::process::id() as i32).unwrap();
    let mut rec = RecordingActuator::new(Simulated::ExitsOnKill);
    let mut polls = 0;
    let out = kill_escalating(&mut rec, &me, &plan(Some(60_000)), &mut || {
        polls += 1;
        polls >= 3
    });
    let pid = me.pid();
    assert_eq!(
        rec.calls,
        vec![
            Call::Signal {
                pid,
                signo: libc::SIGTERM
            },
            Call::Signal {
                pid,
                signo: libc::SIGKILL
            },
            Call::Release { pid },
        ]
    );
    assert!(out.escalated_early);
    assert_eq!(out.targets[0].result, KillResult::ExitedAfterKill);

    let mut rec = RecordingActuator::new(Simulated::ExitsOnTerm);
    let out = kill_escalating(&mut rec, &me, &plan(Some(60_000)), &mut || false);
    assert_eq!(
        rec.calls,
        vec![Call::Signal {
            pid,
            signo: libc::SIGTERM
        }]
    );
    assert_eq!(out.targets[0].result, KillResult::ExitedAfterTerm);

    let mut rec = RecordingActuator::new(Simulated::Stuck);
    rec.mrelease_answer = MreleaseOutcome::NotSupported;
    let p = KillPlan {
        kill_wait: Duration::from_millis(30),
        ..plan(None)
    };
    let out = kill_escalating(&mut rec, &me, &p, &mut || false);
    assert_eq!(
        rec.calls.len(),
        2,
        "no SIGTERM without a grace: {:?}",
        rec.calls
    );
    assert_eq!(out.targets[0].result, KillResult::StillAlive);
    assert_eq!(out.targets[0].mrelease, Some(MreleaseOutcome::NotSupported));
    assert!(!out.all_gone());
}

#[test]
fn process_group_unit() {
    let mut leader_cmd = Command::new("sleep");
    leader_cmd.arg("1000").process_group(0);
    let mut leader = spawn_kid(leader_cmd, None, false, false).unwrap();
    let pgid = leader.pid();
    let mut others: Vec<_> = (0..2)
        .map(|i| {
            let mut cmd = Command::new("sleep");
            cmd.arg("1000").process_group(pgid);
            spawn_kid(cmd, None, false, i == 0).unwrap()
        })
        .collect();
    let pinned = pin_process_group(pgid).unwrap();
    let mut pids: Vec<i32> = pinned.iter().map(Pinned::pid).collect();
    pids.sort_unstable();
    let mut expected: Vec<i32> = others.iter().map(|k| k.pid()).chain([pgid]).collect();
    expected.sort_unstable();
    assert_eq!(pids, expected);
    drop(pinned);
    let out = kill_process_group(&mut RealActuator, pgid, &plan(Some(200)), &mut || false).unwrap();
    assert!(out.all_gone(), "{out:?}");
    assert_eq!(out.targets.len(), 3);
    let by_kill = out
        .targets
        .iter()
        .filter(|t| t.result == KillResult::ExitedAfterKill)
        .count();
    assert_eq!(by_kill, 1, "only the TERM-ignoring member needed SIGKILL");
    assert_eq!(leader.reap(), Some(libc::SIGTERM));
    assert_eq!(others[0].reap(), Some(libc::SIGKILL));
    assert_eq!(others[1].reap(), Some(libc::SIGTERM));
}

fn cgroup_unit(cg: &TempCgroup, v1: Option<&str>) -> CgroupTarget {
    CgroupTarget {
        dir: cg.dir.clone(),
        rel_path: cg.rel_path.clone(),
        v1_controller: v1.map(str::to_owned),
    }
}

#[test]
fn cgroup_v2_unit_uses_cgroup_kill() {
    let Some(cg) = TempCgroup::unified("v2kill") else {
        return;
    };
    if !cg.dir.join("cgroup.kill").exists() {
        testutil::skip(
            "cgroup_v2_unit_uses_cgroup_kill",
            "no cgroup.kill (kernel < 5.14)",
        );
        return;
    }
    let mut kids: Vec<_> = (0..3).map(|i| sleeper(Some(&cg), i == 0)).collect();
    let target = cgroup_unit(&cg, None);
    assert_eq!(target.pin_members().unwrap().len(), 3);
    let out = kill_cgroup(&mut RealActuator, &target, &plan(None), &mut || false).unwrap();
    assert!(out.cgroup_kill_written);
    assert!(out.all_gone(), "{out:?}");
    assert!(out
        .targets
        .iter()
        .all(|t| t.result == KillResult::ExitedAfterKill));
    for k in &mut kids {
        assert_eq!(k.reap(), Some(libc::SIGKILL));
    }
    assert!(cg.procs().is_empty());
}

#[test]
fn cgroup_v1_unit_kills_every_task() {
    let Some(cg) = TempCgroup::memory_v1("v1kill", 64 << 20) else {
        return;
    };
    let mut kids: Vec<_> = (0..3).map(|i| sleeper(Some(&cg), i == 0)).collect();
    let target = cgroup_unit(&cg, Some("memory"));
    let out = kill_cgroup(&mut RealActuator, &target, &plan(Some(200)), &mut || false).unwrap();
    assert!(!out.cgroup_kill_written);
    assert!(out.all_gone(), "{out:?}");
    assert_eq!(kids[0].reap(), Some(libc::SIGKILL));
    assert_eq!(kids[1].reap(), Some(libc::SIGTERM));
    assert_eq!(kids[2].reap(), Some(libc::SIGTERM));
    assert!(cg.procs().is_empty());
}

/// A member that joins the group after the kill started (spawned from `escalate_now`,
/// during the grace) is caught by the re-scan and SIGKILLed.
#[test]
fn process_group_late_joiner_is_swept() {
    let mut leader_cmd = Command::new("sleep");
    leader_cmd.arg("1000").process_group(0);
    let mut leader = spawn_kid(leader_cmd, None, false, true).unwrap();
    let pgid = leader.pid();
    let mut late: Option<testutil::Kid> = None;
    let out = kill_process_group(&mut RealActuator, pgid, &plan(Some(200)), &mut || {
        if late.is_none() {
            let mut cmd = Command::new("sleep");
            cmd.arg("1000").process_group(pgid);
            late = spawn_kid(cmd, None, false, false).ok();
        }
        false
    })
    .unwrap();
    let mut late = late.unwrap();
    assert!(out.all_gone(), "{out:?}");
    assert!(
        out.targets
            .iter()
            .any(|t| t.pid == late.pid() && t.kill_sent),
        "late joiner not swept: {out:?}"
    );
    assert_eq!(leader.reap(), Some(libc::SIGKILL));
    assert_eq!(late.reap(), Some(libc::SIGKILL));
}

#[test]
fn cgroup_v1_late_joiner_is_swept() {
    let Some(cg) = TempCgroup::memory_v1("v1late", 64 << 20) else {
        return;
    };
    let mut first = sleeper(Some(&cg), true);
    let target = cgroup_unit(&cg, Some("memory"));
    let mut late: Option<testutil::Kid> = None;
    let out = kill_cgroup(&mut RealActuator, &target, &plan(Some(200)), &mut || {
        if late.is_none() {
            late = Some(sleeper(Some(&cg), false));
        }
        false
    })
    .unwrap();
    let mut late = late.unwrap();
    assert!(out.all_gone(), "{out:?}");
    assert!(out
        .targets
        .iter()
        .any(|t| t.pid == late.pid() && t.kill_sent));
    assert_eq!(first.reap(), Some(libc::SIGKILL));
    assert_eq!(late.reap(), Some(libc::SIGKILL));
    assert!(cg.procs().is_empty());
}

#[test]
fn cgroup_v2_term_grace_then_cgroup_kill() {
    let Some(cg) = TempCgroup::unified("v2grace") else {
        return;
    };
    if !cg.dir.join("cgroup.kill").exists() {
        return;
    }
    let mut stubborn = sleeper(Some(&cg), true);
    let mut polite = sleeper(Some(&cg), false);
    let target = cgroup_unit(&cg, None);
    let out = kill_cgroup(&mut RealActuator, &target, &plan(Some(200)), &mut || false).unwrap();
    assert!(out.cgroup_kill_written && out.all_gone(), "{out:?}");
    assert_eq!(stubborn.reap(), Some(libc::SIGKILL));
    assert_eq!(polite.reap(), Some(libc::SIGTERM));
}

#[test]
fn never_kills_itself_or_init() {
    let me = Pinned::open(std::process::id() as i32).unwrap();
    let err = RealActuator.signal(&me, Signal::TERM).unwrap_err();
    assert!(matches!(err, PinError::Refused { .. }), "{err}");
    if let Ok(init) = Pinned::open(1) {
        let err = RealActuator.signal(&init, Signal::TERM).unwrap_err();
        assert!(matches!(err, PinError::Refused { .. }), "{err}");
    }
    // Our own process group and our own cgroup are refused as units, before any call.
    let mut rec = RecordingActuator::new(Simulated::ExitsOnTerm);
    let own_pgid = rustix::process::getpgrp().as_raw_pid();
    assert!(matches!(
        kill_process_group(&mut rec, own_pgid, &plan(Some(10)), &mut || false),
        Err(ActuatorError::WouldKillSelf { .. })
    ));
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = cgroup_path(&own, Hierarchy::Unified)
        .unwrap_or("/")
        .to_owned();
    let target = CgroupTarget {
        dir: PathBuf::from("/nonexistent-oomguard-test"),
        rel_path: rel,
        v1_controller: None,
    };
    assert!(matches!(
        kill_cgroup(&mut rec, &target, &plan(Some(10)), &mut || false),
        Err(ActuatorError::WouldKillSelf { .. })
    ));
    assert!(rec.calls.is_empty(), "{:?}", rec.calls);
}

#[test]
fn cgroup_membership_is_checked_through_the_pin() {
    let Some(cg) = TempCgroup::memory_v1("v1member", 64 << 20) else {
        return;
    };
    let _inside = sleeper(Some(&cg), false);
    // A target whose rel_path does not match what members show must pin nobody.
    let wrong = CgroupTarget {
        rel_path: "/definitely/not/here".into(),
        ..cgroup_unit(&cg, Some("memory"))
    };
    assert_eq!(wrong.listed_pids().unwrap().len(), 1);
    assert!(wrong.pin_members().unwrap().is_empty());
}
