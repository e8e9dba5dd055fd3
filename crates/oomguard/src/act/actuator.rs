//! The kill path behind a trait: every side effect that ends or shrinks a process goes through
//! [`Actuator`], which has a real implementation ([`RealActuator`]), a dry-run one that only
//! logs ([`DryRunActuator`]) and a recording one for policy tests ([`RecordingActuator`]).
//!
//! On top of the trait sit the escalation routines, which own the *timing* but no policy:
//! - [`kill_escalating`] / [`kill_escalating_many`]: SIGTERM, wait on the pidfds up to the grace
//!   (or until the caller's `escalate_now` closure says memory cannot wait), SIGKILL the
//!   survivors, `process_mrelease` each, wait for the exits; one typed outcome per process.
//! - [`kill_process_group`]: every member of a process group, each pinned individually, with a
//!   re-scan for members forked during the kill.
//! - [`kill_cgroup`]: a whole cgroup: v2 `cgroup.kill` where the file exists, otherwise (v1)
//!   every task in `cgroup.procs` of the cgroup and its descendants, pinned and membership-checked,
//!   re-read until empty.
//!
//! Which process or cgroup to kill, and when, is the daemon's business; see `docs/kill-path.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oomguard_core::killpath::{
    cgroup_is_within, cgroup_path, parse_pid_list, parse_stat_identity, Hierarchy,
};
use rustix::process::Signal;

use super::pidfd::{MreleaseOutcome, PinError, Pinned, SignalOutcome};

/// Errors of actuator operations beyond a single process.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// The unit contains the guard itself (its cgroup or process group): killing it would kill
    /// the guard, so nothing is done.
    #[error("refusing to kill {unit}: it contains oomguard itself")]
    WouldKillSelf {
        /// The unit, e.g. `process group 42` or a cgroup path.
        unit: String,
    },
    /// A per-process operation failed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Writing a cgroup control file failed.
    #[error("write {path}: {source}")]
    CgroupWrite {
        /// The file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// Reading a cgroup or /proc directory failed.
    #[error("read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
}

/// The side effects of the kill path.
pub trait Actuator {
    /// Sends `sig` to the pinned process (through its pidfd).
    fn signal(&mut self, target: &Pinned, sig: Signal) -> Result<SignalOutcome, PinError>;
    /// Reaps the memory of a SIGKILLed process now (`process_mrelease`).
    fn release(&mut self, target: &Pinned) -> Result<MreleaseOutcome, PinError>;
    /// Waits up to `timeout` for the process to exit.
    fn wait_exit(&mut self, target: &Pinned, timeout: Duration) -> Result<bool, PinError>;
    /// Writes `1` to `<cgroup_dir>/cgroup.kill` (cgroup v2, Linux 5.14): SIGKILL to every
    /// process in the cgroup and its descendants, atomically with respect to forks.
    fn kill_cgroup(&mut self, cgroup_dir: &Path) -> Result<(), ActuatorError>;
    /// True when nothing is really signalled; the escalation then does not wait for exits.
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Signals for real.
#[derive(Debug, Default)]
pub struct RealActuator;

/// Processes no kill path may signal, whatever the policy says: init and the guard itself.
/// (Kernel threads cannot be pinned by `pidfd_open`'s callers in a useful way and ignore
/// signals; the scanner filters them.)
pub fn refuse_reason(pid: i32) -> Option<&'static str> {
    if pid == 1 {
        Some("pid 1 (init) is never killed")
    } else if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        Some("the guard never kills itself")
    } else {
        None
    }
}

impl Actuator for RealActuator {
    fn signal(&mut self, target: &Pinned, sig: Signal) -> Result<SignalOutcome, PinError> {
        // Defence in depth: the unit builders already skip these.
        if let Some(why) = refuse_reason(target.pid()) {
            return Err(PinError::Refused {
                pid: target.pid(),
                why,
            });
        }
        target.send_signal(sig)
    }
    fn release(&mut self, target: &Pinned) -> Result<MreleaseOutcome, PinError> {
        target.release_memory()
    }
    fn wait_exit(&mut self, target: &Pinned, timeout: Duration) -> Result<bool, PinError> {
        target.wait_exit(timeout)
    }
    fn kill_cgroup(&mut self, cgroup_dir: &Path) -> Result<(), ActuatorError> {
        let path = cgroup_dir.join("cgroup.kill");
        std::fs::write(&path, b"1").map_err(|source| ActuatorError::CgroupWrite { path, source })
    }
}

/// Logs what it would do and signals nothing.
pub struct DryRunActuator {
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for DryRunActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DryRunActuator")
    }
}

impl Default for DryRunActuator {
    fn default() -> Self {
        Self::new(Box::new(std::io::stderr()))
    }
}

impl DryRunActuator {
    /// Logs to `out` (stderr by default).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out }
    }

    fn log(&mut self, args: std::fmt::Arguments<'_>) {
        // A dry run that cannot log has nothing better to do than carry on.
        let _ = writeln!(self.out, "dry-run: {args}");
    }
}

fn signal_name(sig: Signal) -> String {
    match sig {
        Signal::TERM => "SIGTERM".into(),
        Signal::KILL => "SIGKILL".into(),
        other => format!("signal {}", other.as_raw()),
    }
}

impl Actuator for DryRunActuator {
    fn signal(&mut self, target: &Pinned, sig: Signal) -> Result<SignalOutcome, PinError> {
        self.log(format_args!(
            "would send {} to pid {} (start {} ticks)",
            signal_name(sig),
            target.pid(),
            target.start_time_ticks()
        ));
        Ok(SignalOutcome::Delivered)
    }
    fn release(&mut self, target: &Pinned) -> Result<MreleaseOutcome, PinError> {
        self.log(format_args!("would process_mrelease pid {}", target.pid()));
        Ok(MreleaseOutcome::Released)
    }
    fn wait_exit(&mut self, _target: &Pinned, _timeout: Duration) -> Result<bool, PinError> {
        Ok(false)
    }
    fn kill_cgroup(&mut self, cgroup_dir: &Path) -> Result<(), ActuatorError> {
        self.log(format_args!(
            "would write 1 to {}",
            cgroup_dir.join("cgroup.kill").display()
        ));
        Ok(())
    }
    fn is_dry_run(&self) -> bool {
        true
    }
}

/// The recording actuator of policy and daemon tests lives apart: it is test equipment, not a
/// kill path.
mod recording;
pub use recording::{Call, RecordingActuator, Simulated};

/// Timing of an escalating kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillPlan {
    /// Send SIGTERM first and wait up to this long before SIGKILL. `None`: SIGKILL at once.
    pub term_grace: Option<Duration>,
    /// After SIGKILL (and mrelease), wait up to this long for the exits.
    pub kill_wait: Duration,
    /// How often `escalate_now` is consulted during the grace.
    pub poll_interval: Duration,
}

impl Default for KillPlan {
    fn default() -> Self {
        Self {
            term_grace: Some(Duration::from_secs(3)),
            kill_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// How one process's kill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillResult {
    /// It exited after SIGTERM, within the grace.
    ExitedAfterTerm,
    /// It exited after SIGKILL.
    ExitedAfterKill,
    /// It was already gone (reaped) when we first signalled it: nobody was signalled.
    AlreadyGone,
    /// Still not exited at the end of `kill_wait` (stuck in the kernel, e.g. D state).
    StillAlive,
    /// The actuator is a dry run; nothing happened.
    DryRun,
    /// Signalling failed (see `error`).
    Failed,
}

/// The outcome of killing one pinned process.
#[derive(Debug)]
pub struct TargetOutcome {
    /// The pid.
    pub pid: i32,
    /// Its verified start time.
    pub start_time_ticks: u64,
    /// How it ended.
    pub result: KillResult,
    /// Whether SIGTERM / SIGKILL were delivered.
    pub term_sent: bool,
    /// Whether SIGKILL was delivered.
    pub kill_sent: bool,
    /// The `process_mrelease` answer, when it was called.
    pub mrelease: Option<MreleaseOutcome>,
    /// Time from the first signal to the observed exit.
    pub exited_after: Option<Duration>,
    /// The error behind `Failed` (signal) or behind a wait that could not continue.
    pub error: Option<PinError>,
    /// A failed `process_mrelease` (the SIGKILL was delivered; exit frees the memory later).
    pub mrelease_error: Option<PinError>,
}

/// The outcome of an escalating kill of one or more processes.
#[derive(Debug)]
pub struct KillOutcome {
    /// One entry per process, in the order given (plus late joiners for groups and cgroups).
    pub targets: Vec<TargetOutcome>,
    /// True when `escalate_now` cut the SIGTERM grace short.
    pub escalated_early: bool,
    /// True when `cgroup.kill` was written.
    pub cgroup_kill_written: bool,
    /// Pids still listed in the cgroup or group at the end (should be empty).
    pub remaining_pids: Vec<i32>,
    /// Time from the first signal to the end of the routine.
    pub elapsed: Duration,
}

impl KillOutcome {
    /// True when every target exited or was already gone.
    pub fn all_gone(&self) -> bool {
        self.remaining_pids.is_empty()
            && self.targets.iter().all(|t| {
                matches!(
                    t.result,
                    KillResult::ExitedAfterTerm
                        | KillResult::ExitedAfterKill
                        | KillResult::AlreadyGone
                )
            })
    }
}

fn new_outcome(t: &Pinned) -> TargetOutcome {
    TargetOutcome {
        pid: t.pid(),
        start_time_ticks: t.start_time_ticks(),
        result: KillResult::StillAlive,
        term_sent: false,
        kill_sent: false,
        mrelease: None,
        exited_after: None,
        error: None,
        mrelease_error: None,
    }
}

fn is_open(o: &TargetOutcome) -> bool {
    o.result == KillResult::StillAlive && o.error.is_none()
}

/// One waiting phase: until `deadline`, checking every `slice`; exits found are recorded as
/// `exited_as`, timed from `started`.
#[derive(Clone, Copy)]
struct Phase {
    deadline: Instant,
    slice: Duration,
    started: Instant,
    exited_as: KillResult,
}

/// Waits until every open target exited or `deadline` passed (or `escalate_now` is true).
/// Returns true if cut short by `escalate_now`. Blocks on the first open target's pidfd for one
/// slice and sweeps the others without blocking, so with several targets an exit is noticed
/// within one slice (20 ms by default).
fn wait_phase<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    outcomes: &mut [TargetOutcome],
    phase: Phase,
    escalate_now: &mut dyn FnMut() -> bool,
) -> bool {
    let Phase {
        deadline,
        slice,
        started,
        exited_as,
    } = phase;
    loop {
        // Blocking wait on the first open target, then a non-blocking sweep over all.
        let Some(first) = outcomes.iter().position(is_open) else {
            return false;
        };
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let timeout = slice.min(deadline - now);
        for (i, (t, o)) in targets.iter().zip(outcomes.iter_mut()).enumerate() {
            if !is_open(o) {
                continue;
            }
            let wait = if i == first { timeout } else { Duration::ZERO };
            match act.wait_exit(t, wait) {
                Ok(true) => {
                    o.result = exited_as;
                    o.exited_after = Some(started.elapsed());
                }
                Ok(false) => {}
                Err(e) => o.error = Some(e),
            }
        }
        if escalate_now() {
            return true;
        }
    }
}

/// SIGTERM → grace → SIGKILL → process_mrelease → wait, for one pinned process.
pub fn kill_escalating<A: Actuator + ?Sized>(
    act: &mut A,
    target: &Pinned,
    plan: &KillPlan,
    escalate_now: &mut dyn FnMut() -> bool,
) -> KillOutcome {
    kill_escalating_many(act, std::slice::from_ref(target), plan, escalate_now)
}

/// [`kill_escalating`] for several processes at once (a group, a cgroup's members): all get
/// SIGTERM together, share one grace, and the survivors get SIGKILL together.
pub fn kill_escalating_many<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    plan: &KillPlan,
    escalate_now: &mut dyn FnMut() -> bool,
) -> KillOutcome {
    let started = Instant::now();
    let mut outcomes: Vec<TargetOutcome> = targets.iter().map(new_outcome).collect();
    let mut escalated_early = false;

    if let Some(grace) = plan.term_grace {
        escalated_early = term_and_grace(
            act,
            targets,
            &mut outcomes,
            grace,
            plan,
            started,
            escalate_now,
        );
    }
    sigkill_release_wait(act, targets, &mut outcomes, plan, started);
    KillOutcome {
        targets: outcomes,
        escalated_early,
        cgroup_kill_written: false,
        remaining_pids: Vec::new(),
        elapsed: started.elapsed(),
    }
}

/// SIGTERM to every open target, then the grace (no wait for a dry run); returns whether
/// `escalate_now` cut the grace short.
fn term_and_grace<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    outcomes: &mut [TargetOutcome],
    grace: Duration,
    plan: &KillPlan,
    started: Instant,
    escalate_now: &mut dyn FnMut() -> bool,
) -> bool {
    send_all(act, targets, outcomes, Signal::TERM, started);
    if act.is_dry_run() {
        return false;
    }
    wait_phase(
        act,
        targets,
        outcomes,
        Phase {
            deadline: started + grace,
            slice: plan.poll_interval,
            started,
            exited_as: KillResult::ExitedAfterTerm,
        },
        escalate_now,
    )
}

/// Waits for SIGKILLed targets until `deadline` (nothing to escalate to).
fn wait_killed<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    outcomes: &mut [TargetOutcome],
    deadline: Instant,
    plan: &KillPlan,
    started: Instant,
) {
    wait_phase(
        act,
        targets,
        outcomes,
        Phase {
            deadline,
            slice: plan.poll_interval,
            started,
            exited_as: KillResult::ExitedAfterKill,
        },
        &mut || false,
    );
}

fn send_all<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    outcomes: &mut [TargetOutcome],
    sig: Signal,
    started: Instant,
) {
    for (t, o) in targets.iter().zip(outcomes.iter_mut()) {
        if !is_open(o) {
            continue;
        }
        let first_signal = !o.term_sent && !o.kill_sent;
        match act.signal(t, sig) {
            Ok(SignalOutcome::Delivered) => {
                if sig == Signal::KILL {
                    o.kill_sent = true;
                } else {
                    o.term_sent = true;
                }
            }
            Ok(SignalOutcome::AlreadyGone) if first_signal => o.result = KillResult::AlreadyGone,
            Ok(SignalOutcome::AlreadyGone) => {
                // Exited (and was reaped) between our polls after SIGTERM.
                o.result = KillResult::ExitedAfterTerm;
                o.exited_after = Some(started.elapsed());
            }
            Err(e) => {
                o.result = KillResult::Failed;
                o.error = Some(e);
            }
        }
    }
}

/// SIGKILL every open target, mrelease each one SIGKILL reached, wait for the exits.
fn sigkill_release_wait<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    outcomes: &mut [TargetOutcome],
    plan: &KillPlan,
    started: Instant,
) {
    send_all(act, targets, outcomes, Signal::KILL, started);
    release_killed(act, targets, outcomes);
    if act.is_dry_run() {
        for o in outcomes.iter_mut().filter(|o| is_open(o)) {
            o.result = KillResult::DryRun;
        }
        return;
    }
    let deadline = Instant::now() + plan.kill_wait;
    wait_killed(act, targets, outcomes, deadline, plan, started);
}

fn release_killed<A: Actuator + ?Sized>(
    act: &mut A,
    targets: &[Pinned],
    outcomes: &mut [TargetOutcome],
) {
    for (t, o) in targets.iter().zip(outcomes.iter_mut()) {
        if o.kill_sent && o.mrelease.is_none() && o.result == KillResult::StillAlive {
            match act.release(t) {
                Ok(m) => o.mrelease = Some(m),
                // The SIGKILL is delivered; a failed mrelease only delays the freeing, so the
                // target stays open and is still waited for.
                Err(e) => o.mrelease_error = Some(e),
            }
        }
    }
}

fn is_numeric_dir(name: &std::ffi::OsStr) -> Option<i32> {
    name.to_str()?.parse().ok()
}

/// Pins every process whose process group is `pgid`, reading `/proc`. Each member is pinned
/// with the start time the scan saw, and its pgrp is re-read through the pin.
pub fn pin_process_group(pgid: i32) -> Result<Vec<Pinned>, ActuatorError> {
    let proc = Path::new("/proc");
    let entries = std::fs::read_dir(proc).map_err(|source| ActuatorError::Read {
        path: proc.to_path_buf(),
        source,
    })?;
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = is_numeric_dir(&entry.file_name()).filter(|&p| refuse_reason(p).is_none())
        else {
            continue;
        };
        // A vanished process is skipped, never an error (STYLE: scans do not abort).
        let Ok(text) = std::fs::read(entry.path().join("stat")) else {
            continue;
        };
        let Ok(seen) = parse_stat_identity(&text) else {
            continue;
        };
        if seen.pgrp != pgid {
            continue;
        }
        let Ok(pinned) = Pinned::open_expecting(pid, seen.start_time_ticks) else {
            continue;
        };
        if pinned.read_identity().is_ok_and(|id| id.pgrp == pgid) {
            members.push(pinned);
        }
    }
    Ok(members)
}

/// Kills a process group: each member pinned, one shared escalation, then SIGKILL rounds for
/// members that joined (forked) meanwhile, until the group is empty or `plan.kill_wait` is over.
pub fn kill_process_group<A: Actuator + ?Sized>(
    act: &mut A,
    pgid: i32,
    plan: &KillPlan,
    escalate_now: &mut dyn FnMut() -> bool,
) -> Result<KillOutcome, ActuatorError> {
    let started = Instant::now();
    // libc, not rustix: in a PID namespace whose creator's process group leader is outside it
    // (`unshare --pid --fork`), getpgrp() returns 0, which rustix's `getpgrp` asserts against
    // (a panic in debug builds, a zero `NonZero` in release builds).
    // SAFETY: getpgrp has no preconditions.
    let own_pgid = unsafe { libc::getpgrp() };
    if pgid <= 1 || own_pgid == pgid {
        return Err(ActuatorError::WouldKillSelf {
            unit: format!("process group {pgid}"),
        });
    }
    let members = pin_process_group(pgid)?;
    let mut outcome = kill_escalating_many(act, &members, plan, escalate_now);
    let deadline = Instant::now() + plan.kill_wait;
    // Pinned handles of members still being waited for keep their pidfds alive.
    let mut last_round: Vec<Pinned> = Vec::new();
    loop {
        let late: Vec<Pinned> = pin_process_group(pgid)?
            .into_iter()
            .filter(|p| !is_exited(p))
            .collect();
        if late.is_empty() || act.is_dry_run() || Instant::now() >= deadline {
            outcome.remaining_pids = late.iter().map(Pinned::pid).collect();
            break;
        }
        let mut outs: Vec<TargetOutcome> = late.iter().map(new_outcome).collect();
        let round_plan = KillPlan {
            kill_wait: deadline.saturating_duration_since(Instant::now()),
            ..*plan
        };
        sigkill_release_wait(act, &late, &mut outs, &round_plan, started);
        outcome.targets.extend(outs);
        last_round = late;
    }
    drop(last_round);
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

fn is_exited(p: &Pinned) -> bool {
    // A zombie still holds its pid and pgrp but is no longer a threat.
    p.has_exited().unwrap_or(true)
}

/// A cgroup to kill.
#[derive(Debug, Clone)]
pub struct CgroupTarget {
    /// The cgroup's directory, e.g. `/sys/fs/cgroup/unified/app` or
    /// `/sys/fs/cgroup/memory/app`.
    pub dir: PathBuf,
    /// The path members show in `/proc/PID/cgroup`, e.g. `/app`.
    pub rel_path: String,
    /// The hierarchy of that path: unified, or the v1 controller (`memory`).
    pub v1_controller: Option<String>,
}

impl CgroupTarget {
    fn hierarchy(&self) -> Hierarchy<'_> {
        self.v1_controller
            .as_deref()
            .map_or(Hierarchy::Unified, Hierarchy::V1Controller)
    }

    /// The pids listed in `cgroup.procs` of the cgroup and all its descendants.
    pub fn listed_pids(&self) -> Result<Vec<i32>, ActuatorError> {
        let mut pids = Vec::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            let procs = dir.join("cgroup.procs");
            match std::fs::read(&procs) {
                Ok(text) => pids.extend(parse_pid_list(&text)),
                // A descendant removed during the walk is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != self.dir => {}
                Err(source) => {
                    return Err(ActuatorError::Read {
                        path: procs,
                        source,
                    })
                }
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// True when the guard itself is in this cgroup or below it.
    pub fn contains_self(&self) -> bool {
        std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .as_deref()
            .and_then(|text| cgroup_path(text, self.hierarchy()))
            .is_some_and(|own| cgroup_is_within(own, &self.rel_path))
    }

    /// Pins every listed process that, checked through its pin, is in this cgroup (or below).
    /// A pid that left the cgroup or was reused by an outsider after the listing is dropped.
    pub fn pin_members(&self) -> Result<Vec<Pinned>, ActuatorError> {
        let mut members = Vec::new();
        for pid in self.listed_pids()? {
            if refuse_reason(pid).is_some() {
                continue;
            }
            let Ok(pinned) = Pinned::open(pid) else {
                continue;
            };
            let Ok(text) = pinned.read_proc_file("cgroup") else {
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            if cgroup_path(&text, self.hierarchy())
                .is_some_and(|p| cgroup_is_within(p, &self.rel_path))
            {
                members.push(pinned);
            }
        }
        Ok(members)
    }
}

/// Kills every process in a cgroup and its descendants.
///
/// With `plan.term_grace`, members first get SIGTERM and the grace (cut short by
/// `escalate_now`). Then: where `cgroup.kill` exists (v2) it is written; otherwise (v1) every
/// member is pinned and SIGKILLed, round after round, until `cgroup.procs` is empty or
/// `plan.kill_wait` is over. Pinned members get `process_mrelease` after SIGKILL either way.
pub fn kill_cgroup<A: Actuator + ?Sized>(
    act: &mut A,
    target: &CgroupTarget,
    plan: &KillPlan,
    escalate_now: &mut dyn FnMut() -> bool,
) -> Result<KillOutcome, ActuatorError> {
    let started = Instant::now();
    // cgroup.kill would take the guard with it; a v1 sweep would skip it but kill its siblings.
    if target.contains_self() {
        return Err(ActuatorError::WouldKillSelf {
            unit: target.dir.display().to_string(),
        });
    }
    let members = target.pin_members()?;
    let mut outcomes: Vec<TargetOutcome> = members.iter().map(new_outcome).collect();
    let mut escalated_early = false;
    if let Some(grace) = plan.term_grace {
        escalated_early = term_and_grace(
            act,
            &members,
            &mut outcomes,
            grace,
            plan,
            started,
            escalate_now,
        );
    }
    let deadline = Instant::now() + plan.kill_wait;
    let mut cgroup_kill_written = false;
    if target.dir.join("cgroup.kill").exists() {
        act.kill_cgroup(&target.dir)?;
        cgroup_kill_written = true;
        // The kernel sent SIGKILL to every member; mark ours and reap their memory early.
        for o in outcomes.iter_mut().filter(|o| is_open(o)) {
            o.kill_sent = !act.is_dry_run();
        }
        release_killed(act, &members, &mut outcomes);
        if act.is_dry_run() {
            for o in outcomes.iter_mut().filter(|o| is_open(o)) {
                o.result = KillResult::DryRun;
            }
        } else {
            wait_killed(act, &members, &mut outcomes, deadline, plan, started);
        }
    } else {
        sigkill_release_wait(act, &members, &mut outcomes, plan, started);
    }
    let mut all_members = members;
    // Re-read until empty: v1 has no atomic kill, so forks during the kill, and (for v2)
    // members we did not pin, are swept here.
    let remaining = loop {
        let late: Vec<Pinned> = target
            .pin_members()?
            .into_iter()
            .filter(|p| !is_exited(p))
            .collect();
        if late.is_empty() || act.is_dry_run() || Instant::now() >= deadline {
            break late.iter().map(Pinned::pid).collect();
        }
        if cgroup_kill_written {
            // Already SIGKILLed by the kernel; just wait a slice for them.
            let mut outs: Vec<TargetOutcome> = late.iter().map(new_outcome).collect();
            for o in &mut outs {
                o.kill_sent = true;
            }
            release_killed(act, &late, &mut outs);
            wait_killed(act, &late, &mut outs, deadline, plan, started);
            outcomes.extend(outs);
        } else {
            let mut outs: Vec<TargetOutcome> = late.iter().map(new_outcome).collect();
            let round_plan = KillPlan {
                kill_wait: deadline.saturating_duration_since(Instant::now()),
                ..*plan
            };
            sigkill_release_wait(act, &late, &mut outs, &round_plan, started);
            outcomes.extend(outs);
        }
        all_members.extend(late);
    };
    drop(all_members);
    Ok(KillOutcome {
        targets: outcomes,
        escalated_early,
        cgroup_kill_written,
        remaining_pids: remaining,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests;
