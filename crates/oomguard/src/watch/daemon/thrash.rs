//! The thrash rule in the loop (issue 16): the machine's counters (`/proc/vmstat`, through a
//! descriptor kept open and a buffer sized at start) and each guarded cgroup's (`memory.stat`,
//! through the cgroup's kept directory fd), sampled at most every [`SAMPLE_EVERY`], go to one
//! [`ThrashDetector`] per scope (`oomguard_core::thrash`, pure). Its verdicts drive the scope's
//! escalation [`Chain`] (`oomguard_core::restrain`, pure), whose commands are executed here and
//! in `steps.rs` and `more_steps.rs`: `notify` records an event and changes nothing; `freeze`
//! freezes the cgroup (behind `act::restrain::Restrainer`) and thaws it when its `step_window`
//! is over; `throttle` lowers its v2 `memory.high` and restores it then; `reclaim` writes its
//! v2 `memory.reclaim`; `restart` restarts its systemd service (`act::restart`); `kill` is
//! a [`Decision`] with the thrash reason as its trigger, executed by the kill step (`kill.rs`)
//! within the scope (a cgroup's firing chooses among that cgroup's processes only). Every step
//! is an event with a `step` field saying how it went.
//!
//! Swap state (SwapFree from the tick's `/proc/meminfo`, zram devices re-read every 10 s)
//! lowers the bar as `oomguard_core::thrash` describes.

mod more_steps;
mod steps;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use oomguard_core::config::{ActionStep, ThrashConfig};
use oomguard_core::decision::{self, Decision, Scope, Snapshot};
use oomguard_core::event::{EventKind, OomEvent, Source};
use oomguard_core::host::system::{parse_vmstat, MemInfo};
use oomguard_core::host::zram::ZramDevice;
use oomguard_core::restrain::{Chain, ChainInput, ChainState, Change, Command, StepInfo};
use oomguard_core::size::format_bytes;
use oomguard_core::thrash::{
    swap_exhausted, SwapExhausted, ThrashCounters, ThrashDetector, ThrashReason, ThrashVerdict,
};
use oomguard_core::trigger::{Level, Sample};

use super::{log, Daemon};
use crate::act::restart::RestartJob;
use crate::act::restrain::{DryRunRestrainer, RealRestrainer, Restrainer, StateFile, Target};
use crate::host::{CgroupFs, ProcFs, ZramFs};
use crate::sense::reread;

/// How often the zram devices are listed again (a directory walk: not every tick).
const ZRAM_EVERY: Duration = Duration::from_secs(10);

/// A scope's counters are read and parsed at most this often. The loop runs every few ms
/// under memory pressure (the memory rules want that), and a window is 1 s by default: reading
/// `/proc/vmstat` (about 5 KiB of text on 6.18) and each `memory.stat` on every iteration only
/// repeated the verdict and cost CPU (`bench/thrash_false.sh`).
pub(super) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One scope's rule state: its detector, its chain, and what its running step changed.
pub(super) struct ScopeThrash {
    detector: ThrashDetector,
    chain: Chain,
    read_at: Option<Instant>,
    /// The last firing's reason and verdict (a step taken on a judgement reports them).
    fired: Option<Fired>,
    /// What the running freeze changed (ended when its window is over).
    active: Option<(Change, Target)>,
}

impl ScopeThrash {
    fn new(cfg: &ThrashConfig, page_size: u64) -> Self {
        ScopeThrash {
            detector: ThrashDetector::new(cfg.rule(), page_size),
            chain: Chain::default(),
            read_at: None,
            fired: None,
            active: None,
        }
    }

    /// Whether a reading is due (at most every [`SAMPLE_EVERY`]).
    fn due(&mut self, now: Instant) -> bool {
        if self
            .read_at
            .is_some_and(|t| now.duration_since(t) < SAMPLE_EVERY)
        {
            return false;
        }
        self.read_at = Some(now);
        true
    }
}

/// The thrash rule's state in the daemon.
pub(super) struct ThrashWatch {
    cfg: ThrashConfig,
    vmstat_path: PathBuf,
    vmstat: Option<File>,
    buf: Vec<u8>,
    page_size: u64,
    machine: ScopeThrash,
    /// By cgroup directory (indices shift when a rescan drops a watch).
    cgroups: HashMap<PathBuf, ScopeThrash>,
    zramfs: ZramFs,
    zram: Vec<ZramDevice>,
    zram_read: Option<Instant>,
    swap: Option<SwapExhausted>,
    restrainer: Box<dyn Restrainer>,
    state: StateFile,
    /// Every change in force (what the state file lists), plus those whose undo failed.
    changes: Vec<Change>,
    /// Changes whose undo failed: retried at every tick.
    undo_failed: Vec<(Change, Target)>,
    /// The state file left by an earlier daemon has been read and undone.
    stale_restored: bool,
    /// `restart` steps whose systemctl has not answered yet (polled every tick).
    restarts: Vec<PendingRestart>,
}

/// A `restart` step whose systemctl still runs (`more_steps.rs`): the step's outcome and, on
/// a failure, the escalation come when it answers.
pub(super) struct PendingRestart {
    job: RestartJob,
    /// The guarded cgroup's directory (its index may shift at a rescan).
    key: PathBuf,
    d: Decision,
    n: u64,
    idx: usize,
    of: usize,
}

/// How often the loop wakes to poll a `restart` step's systemctl while one runs.
const RESTART_POLL: Duration = Duration::from_millis(20);

/// The detector's verdict that fired, with what the decision's line needs.
#[derive(Debug, Clone, Copy)]
struct Fired {
    verdict: ThrashVerdict,
    reason: ThrashReason,
}

impl ThrashWatch {
    /// `None` when the rule is off. Opens `/proc/vmstat` when the machine is watched; a kernel
    /// without the refault counters is an error naming the file.
    pub(super) fn open(
        cfg: &ThrashConfig,
        procfs: &ProcFs,
        cgfs: &CgroupFs,
        page_size: u64,
        dry_run: bool,
    ) -> anyhow::Result<Option<ThrashWatch>> {
        if !cfg.enable {
            return Ok(None);
        }
        let vmstat_path = procfs.root().join("vmstat");
        let mut buf = Vec::with_capacity(16 * 1024);
        let vmstat = if cfg.machine {
            let mut f = File::open(&vmstat_path).with_context(|| {
                format!(
                    "thrash.machine is on but {} cannot be opened",
                    vmstat_path.display()
                )
            })?;
            reread(&mut f, &mut buf)
                .with_context(|| format!("reading {}", vmstat_path.display()))?;
            let v = parse_vmstat(&buf)
                .map_err(|e| anyhow::anyhow!("{}: {e}", vmstat_path.display()))?;
            if ThrashCounters::from_vmstat(&v).is_none() {
                anyhow::bail!(
                    "thrash.machine is on but {} has no workingset_refault counter or file LRU sizes (kernel before 3.15?)",
                    vmstat_path.display()
                );
            }
            Some(f)
        } else {
            None
        };
        // sysfs is two levels above the cgroup mount (/sys/fs/cgroup): the same injected tree.
        let sys = cgfs
            .root()
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("/sys"), Path::to_path_buf);
        let restrainer: Box<dyn Restrainer> = if dry_run {
            Box::new(DryRunRestrainer)
        } else {
            Box::new(RealRestrainer)
        };
        Ok(Some(ThrashWatch {
            cfg: cfg.clone(),
            vmstat_path,
            vmstat,
            buf,
            page_size,
            machine: ScopeThrash::new(cfg, page_size),
            cgroups: HashMap::new(),
            zramfs: ZramFs::new(sys),
            zram: Vec::new(),
            zram_read: None,
            swap: None,
            restrainer,
            state: StateFile::new(&cfg.state_file),
            changes: Vec::new(),
            undo_failed: Vec::new(),
            stale_restored: false,
            restarts: Vec::new(),
        }))
    }

    /// The machine's swap state for this tick (every scope's detector uses it).
    fn update_swap(&mut self, m: &MemInfo, now: Instant) {
        if self
            .zram_read
            .is_none_or(|t| now.duration_since(t) >= ZRAM_EVERY)
        {
            self.zram_read = Some(now);
            self.zram = self.zramfs.read_devices().unwrap_or_default();
        }
        self.swap = swap_exhausted(
            m,
            &self.zram,
            self.cfg.swap_free_low_pct,
            self.cfg.zram_full_pct,
        );
    }

    fn scope_mut(&mut self, key: &Path) -> Option<&mut ScopeThrash> {
        if key.as_os_str().is_empty() {
            Some(&mut self.machine)
        } else {
            self.cgroups.get_mut(key)
        }
    }
}

fn describe(scope: &str, f: &Fired, cfg: &ThrashConfig, page_size: u64, step: &str) -> String {
    let r = f.verdict.rates.unwrap_or_default();
    format!(
        "{scope} {}: refaults {:.0}% of its working set ({}) per second ({}/s; major faults {:.0}/s) for {:.1} s (threshold {}% for {:?}){}; step {step}",
        f.reason.code(),
        r.refault_pct_per_s,
        format_bytes(r.working_set_pages.saturating_mul(page_size)),
        format_bytes(r.refault_bytes_per_s(page_size) as u64),
        r.pgmajfault_per_s,
        f.verdict.above_for.unwrap_or_default().as_secs_f64(),
        cfg.threshold,
        cfg.duration,
        match f.reason {
            ThrashReason::ThrashRefault => String::new(),
            _ => "; swap is full".to_owned(),
        },
    )
}

/// The chain's input from one verdict.
fn input(verdict: &ThrashVerdict, kill_held_back: bool) -> ChainInput {
    ChainInput {
        fired: verdict.fired.is_some(),
        window_above: verdict.rates.map(|_| verdict.above_for.is_some()),
        kill_held_back,
    }
}

impl Daemon {
    /// Rebuilds the rule's state from the (new) config: at start and after a reload (what the
    /// old one changed is undone first: the new chain starts from nothing).
    pub(super) fn open_thrash(&mut self) {
        self.thrash_restore_all("reload");
        match ThrashWatch::open(
            &self.cfg.thrash,
            &self.procfs,
            &self.cgfs,
            self.page_size,
            self.cfg.dry_run,
        ) {
            Ok(t) => self.thrash = t,
            Err(e) => {
                log(format_args!("thrash rule off: {e:#}"));
                self.thrash = None;
            }
        }
    }

    /// The machine's tick: swap state, then `/proc/vmstat` when the machine is watched.
    pub(super) fn thrash_machine(&mut self, m: &MemInfo, s: &Sample, now: Instant) {
        let since = now.duration_since(self.started);
        let held = self.kill_held_back(Scope::Global, now);
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        // Every scope's detector uses the swap state: updated whether or not the machine is
        // watched (no I/O but the zram listing every 10 s).
        t.update_swap(m, now);
        if t.vmstat.is_none() || !t.machine.due(now) {
            return;
        }
        let Some(f) = t.vmstat.as_mut() else {
            return;
        };
        if let Err(e) = reread(f, &mut t.buf) {
            log(format_args!(
                "thrash: reading {}: {e}",
                t.vmstat_path.display()
            ));
            return;
        }
        let Some(c) = parse_vmstat(&t.buf)
            .ok()
            .and_then(|v| ThrashCounters::from_vmstat(&v))
        else {
            return;
        };
        let verdict = t.machine.detector.observe(since, c, t.swap.as_ref());
        if let Some(reason) = verdict.fired {
            t.machine.detector.reset();
            t.machine.fired = Some(Fired { verdict, reason });
        }
        self.thrash_advance(
            Scope::Global,
            PathBuf::new(),
            input(&verdict, held),
            verdict,
            Some(*s),
            None,
            now,
        );
    }

    /// One guarded cgroup's tick (after its memory reading).
    pub(super) fn thrash_cgroup(
        &mut self,
        i: usize,
        reading: &oomguard_core::decision::CgroupReading,
        now: Instant,
    ) {
        let since = now.duration_since(self.started);
        let held = self.kill_held_back(Scope::Cgroup(i), now);
        let Some(t) = self.thrash.as_mut().filter(|t| t.cfg.cgroups) else {
            return;
        };
        let w = &self.cgroups[i];
        if !t.cgroups.contains_key(&w.dir) {
            t.cgroups
                .insert(w.dir.clone(), ScopeThrash::new(&t.cfg, t.page_size));
        }
        let Some(sc) = t.cgroups.get_mut(&w.dir) else {
            return;
        };
        if !sc.due(now) {
            return;
        }
        let stat = match w.read_stat_fast(&mut t.buf) {
            Ok(s) => s,
            // Gone or unreadable: `check_cgroup` reports it.
            Err(_) => return,
        };
        let Some(c) = ThrashCounters::from_memory_stat(&stat, t.page_size) else {
            return;
        };
        let verdict = sc.detector.observe(since, c, t.swap.as_ref());
        if let Some(reason) = verdict.fired {
            sc.detector.reset();
            sc.fired = Some(Fired { verdict, reason });
        }
        let key = w.dir.clone();
        self.thrash_advance(
            Scope::Cgroup(i),
            key,
            input(&verdict, held),
            verdict,
            None,
            Some(*reading),
            now,
        );
    }

    /// Every iteration: the stale state file at the first one, ends of steps whose window is
    /// over (whether or not their scope was read), undos that failed before. Returns how long
    /// the loop may sleep before a step must end.
    pub(super) fn thrash_tick(&mut self, now: Instant) -> Duration {
        let Some(t) = self.thrash.as_mut() else {
            return Duration::MAX;
        };
        if !t.stale_restored {
            t.stale_restored = true;
            self.thrash_restore_stale();
        }
        self.thrash_retry_undos();
        let restart_pending = self.thrash_poll_restarts(now);
        let since = now.duration_since(self.started);
        let Some(t) = self.thrash.as_ref() else {
            return Duration::MAX;
        };
        let mut due = Vec::new();
        let mut next = if restart_pending {
            RESTART_POLL
        } else {
            Duration::MAX
        };
        for (key, sc) in std::iter::once((Path::new(""), &t.machine))
            .chain(t.cgroups.iter().map(|(k, v)| (k.as_path(), v)))
        {
            if let Some(d) = sc.chain.deadline() {
                if d <= since {
                    due.push(key.to_path_buf());
                } else {
                    next = next.min(d - since);
                }
            }
        }
        for key in due {
            let scope = if key.as_os_str().is_empty() {
                Some(Scope::Global)
            } else {
                self.cgroups
                    .iter()
                    .position(|w| w.dir == key)
                    .map(Scope::Cgroup)
            };
            // A scope no longer guarded had its step ended by `thrash_retain`.
            if let Some(scope) = scope {
                self.thrash_advance(
                    scope,
                    key,
                    ChainInput::default(),
                    ThrashVerdict::default(),
                    None,
                    None,
                    now,
                );
            }
        }
        next
    }

    /// Whether a kill in `scope` still waits for memory to recover (`History`, shared with the
    /// memory rules); bounded by the recovery timeout, since a cgroup without a limit has no
    /// memory rule that would end the wait.
    fn kill_held_back(&self, scope: Scope, now: Instant) -> bool {
        self.history
            .recovery
            .get(&scope)
            .is_some_and(|r| now.duration_since(r.started) < self.cfg.kill.recovery_timeout)
    }

    /// After a rescan: drops the state of cgroups no longer guarded (ending their steps).
    pub(super) fn thrash_retain(&mut self) {
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let gone: Vec<PathBuf> = t
            .cgroups
            .keys()
            .filter(|d| !self.cgroups.iter().any(|w| &w.dir == *d))
            .cloned()
            .collect();
        for d in gone {
            if let Some(mut sc) = t.cgroups.remove(&d) {
                if let Some((change, target)) = sc.active.take() {
                    log(format_args!(
                        "thrash: {} is no longer guarded: undoing its step",
                        change.describe()
                    ));
                    t.undo(change, target);
                }
            }
        }
    }

    /// Executes the chain's commands for a scope after its reading (or its step's deadline).
    #[allow(clippy::too_many_arguments)]
    fn thrash_advance(
        &mut self,
        scope: Scope,
        key: PathBuf,
        input: ChainInput,
        verdict: ThrashVerdict,
        memory: Option<Sample>,
        cgroup: Option<oomguard_core::decision::CgroupReading>,
        now: Instant,
    ) {
        let since = now.duration_since(self.started);
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let (steps, window) = (t.cfg.actions.clone(), t.cfg.step_window);
        let Some(sc) = t.scope_mut(&key) else {
            return;
        };
        let cmd = sc.chain.tick(&steps, window, since, input);
        self.thrash_run(scope, key, cmd, verdict, memory, cgroup, now);
    }

    /// A step that was taken failed later (a `restart` whose systemctl answered with an
    /// error): when the chain still runs that step, the next one follows now, as after a step
    /// refused at once; when the chain has moved on, the failure is only told.
    pub(super) fn thrash_failed_later(&mut self, key: PathBuf, idx: usize, now: Instant) {
        let Some(i) = self.cgroups.iter().position(|w| w.dir == key) else {
            return;
        };
        let scope = Scope::Cgroup(i);
        let since = now.duration_since(self.started);
        let held = self.kill_held_back(scope, now);
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let (steps, window) = (t.cfg.actions.clone(), t.cfg.step_window);
        let Some(sc) = t.scope_mut(&key) else {
            return;
        };
        if !matches!(sc.chain.state, ChainState::Running { idx: r, .. } if r == idx) {
            return;
        }
        let cmd = sc.chain.refused(&steps, idx, window, since, held);
        self.thrash_run(scope, key, cmd, ThrashVerdict::default(), None, None, now);
    }

    /// Executes the chain's commands, starting with `cmd`, until none is left.
    #[allow(clippy::too_many_arguments)]
    fn thrash_run(
        &mut self,
        scope: Scope,
        key: PathBuf,
        mut cmd: Option<Command>,
        verdict: ThrashVerdict,
        memory: Option<Sample>,
        cgroup: Option<oomguard_core::decision::CgroupReading>,
        now: Instant,
    ) {
        let since = now.duration_since(self.started);
        let Some(t) = self.thrash.as_ref() else {
            return;
        };
        let (steps, window) = (t.cfg.actions.clone(), t.cfg.step_window);
        while let Some(c) = cmd.take() {
            match c {
                Command::Take { idx, step } => {
                    let refused =
                        self.thrash_take(scope, &key, idx, step, verdict, memory, cgroup, now);
                    if refused {
                        let held = self.kill_held_back(scope, now);
                        cmd = self
                            .thrash
                            .as_mut()
                            .and_then(|t| t.scope_mut(&key))
                            .and_then(|sc| sc.chain.refused(&steps, idx, window, since, held));
                    }
                }
                Command::End { idx, step } => self.thrash_end(scope, &key, idx, step),
                Command::Recovered { idx, step } => {
                    let name = self.scope_name(scope);
                    log(format_args!(
                        "thrash: {name} below the bar after step {}/{} {}: recovered",
                        idx + 1,
                        steps.len(),
                        step.label()
                    ));
                    self.step_event(scope, idx, step, "recovered", None, None);
                }
            }
        }
    }

    fn scope_name(&self, scope: Scope) -> String {
        match scope {
            Scope::Global => "machine".to_owned(),
            Scope::Cgroup(i) => format!("cgroup {}", self.cgroups[i].path),
        }
    }

    /// Takes one step; returns whether it was refused (or failed), so the next one follows.
    #[allow(clippy::too_many_arguments)]
    fn thrash_take(
        &mut self,
        scope: Scope,
        key: &Path,
        idx: usize,
        step: ActionStep,
        verdict: ThrashVerdict,
        memory: Option<Sample>,
        cgroup: Option<oomguard_core::decision::CgroupReading>,
        now: Instant,
    ) -> bool {
        let name = self.scope_name(scope);
        let Some(t) = self.thrash.as_mut() else {
            return false;
        };
        let of = t.cfg.actions.len();
        // A step taken on a judgement (not a firing) reports the firing that began the chain,
        // with the judging window's rates.
        let fired = match (verdict.fired, t.scope_mut(key).and_then(|sc| sc.fired)) {
            (Some(reason), _) => Fired { verdict, reason },
            (None, Some(f)) => Fired {
                verdict: ThrashVerdict {
                    rates: verdict.rates.or(f.verdict.rates),
                    ..f.verdict
                },
                reason: f.reason,
            },
            (None, None) => Fired {
                verdict,
                reason: ThrashReason::ThrashRefault,
            },
        };
        let detail = describe(
            &name,
            &fired,
            &t.cfg,
            t.page_size,
            &format!("{}/{of} {}", idx + 1, step.label()),
        );
        let memory = memory.or_else(|| self.sample().ok());
        let d = Decision {
            scope,
            // SIGTERM first: thrashing is slow, the victim has its grace.
            level: Level::Term,
            trigger: fired.reason.trigger(),
            snapshot: Snapshot { memory, cgroup },
            detail,
        };
        match step {
            ActionStep::Kill => {
                let step = StepInfo {
                    action: ActionStep::Kill.label(),
                    index: idx + 1,
                    of,
                    outcome: "done",
                    detail: None,
                };
                self.act_step(d, Some(step));
                false
            }
            ActionStep::Notify => {
                self.thrash_notify(&d, idx, of);
                false
            }
            ActionStep::Freeze => self.thrash_freeze(&d, key, idx, of, now),
            ActionStep::Throttle => self.thrash_throttle(&d, key, idx, of),
            ActionStep::Reclaim => self.thrash_reclaim(&d, idx, of),
            ActionStep::Restart => self.thrash_restart(&d, idx, of),
        }
    }

    /// The `notify` step: a warning event (log, journal, hooks), nothing changed.
    fn thrash_notify(&mut self, d: &Decision, idx: usize, of: usize) {
        self.decisions += 1;
        log(format_args!(
            "decision #{}: {}: {}; notified, nothing changed",
            self.decisions,
            d.trigger.label(),
            d.detail
        ));
        self.decision_event(
            d,
            StepInfo {
                action: ActionStep::Notify.label(),
                index: idx + 1,
                of,
                outcome: "done",
                detail: None,
            },
        );
    }

    /// A warning event for decision `d` with its step.
    fn decision_event(&mut self, d: &Decision, step: StepInfo) {
        let cgroup_path = match d.scope {
            Scope::Cgroup(i) => Some(self.cgroups[i].path.clone()),
            Scope::Global => None,
        };
        let mut ev = OomEvent::new(EventKind::Warning);
        ev.source = Source::Oomguard;
        ev.trigger = Some(decision::trigger_info(d, cgroup_path.as_deref()));
        ev.step = Some(step);
        self.tell.record(ev, Instant::now());
    }

    /// An event for a step's end, recovery or restore (no decision: the trigger names the
    /// scope only).
    fn step_event(
        &mut self,
        scope: Scope,
        idx: usize,
        step: ActionStep,
        outcome: &'static str,
        detail: Option<String>,
        reason: Option<ThrashReason>,
    ) {
        let of = self.thrash.as_ref().map_or(0, |t| t.cfg.actions.len());
        let d = Decision {
            scope,
            level: Level::Calm,
            trigger: reason.unwrap_or(ThrashReason::ThrashRefault).trigger(),
            snapshot: Snapshot::default(),
            detail: format!(
                "{}: step {}/{of} {} {outcome}",
                self.scope_name(scope),
                idx + 1,
                step.label()
            ),
        };
        self.decision_event(
            &d,
            StepInfo {
                action: step.label(),
                index: idx + 1,
                of,
                outcome,
                detail,
            },
        );
    }
}
