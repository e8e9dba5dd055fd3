//! The thrash rule in the loop (issue 16): each tick, the machine's counters (`/proc/vmstat`,
//! through a descriptor kept open and a buffer sized at start) and each guarded cgroup's
//! (`memory.stat`, through the cgroup's kept directory fd) go to one
//! [`ThrashDetector`] per scope (`oomguard_core::thrash`, pure). When a detector fires, the
//! scope's chain of actions (`[thrash] actions`) takes its next step: `notify` records an event
//! and changes nothing; `kill` is a [`Decision`] with the thrash reason as its trigger, executed
//! by the kill step (`kill.rs`) within the scope (a cgroup's firing chooses among that cgroup's
//! processes only).
//!
//! Escalation: a firing within `step_window + 2 × (duration + window)` of the scope's previous
//! step continues the episode and takes the next step (the detector is reset after each step,
//! so firing again means a whole new `duration` of thrashing measured after it); a later firing
//! starts the chain over. Swap state (SwapFree from the tick's `/proc/meminfo`, zram devices re-read every 10 s)
//! lowers the bar as `oomguard_core::thrash` describes.

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
use oomguard_core::size::format_bytes;
use oomguard_core::thrash::{
    swap_exhausted, SwapExhausted, ThrashCounters, ThrashDetector, ThrashVerdict,
};
use oomguard_core::trigger::{Level, Sample};

use super::{log, Daemon};
use crate::host::{CgroupFs, ProcFs, ZramFs};
use crate::sense::reread;

/// How often the zram devices are listed again (a directory walk: not every tick).
const ZRAM_EVERY: Duration = Duration::from_secs(10);

/// Where a scope is in its chain of actions.
#[derive(Debug, Clone, Copy)]
struct Episode {
    /// Index into `actions` of the step last taken.
    step: usize,
    at: Instant,
}

/// The thrash rule's state in the daemon.
pub(super) struct ThrashWatch {
    cfg: ThrashConfig,
    vmstat_path: PathBuf,
    vmstat: Option<File>,
    buf: Vec<u8>,
    page_size: u64,
    machine: ThrashDetector,
    /// By cgroup directory (indices shift when a rescan drops a watch).
    cgroups: HashMap<PathBuf, ThrashDetector>,
    /// By scope directory; the machine's key is the empty path.
    episodes: HashMap<PathBuf, Episode>,
    zramfs: ZramFs,
    zram: Vec<ZramDevice>,
    zram_read: Option<Instant>,
    swap: Option<SwapExhausted>,
}

/// The detector's verdict that fired, with what the decision's line needs.
struct Fired {
    verdict: ThrashVerdict,
    reason: oomguard_core::thrash::ThrashReason,
}

impl ThrashWatch {
    /// `None` when the rule is off. Opens `/proc/vmstat` when the machine is watched; a kernel
    /// without the refault counters is an error naming the file.
    pub(super) fn open(
        cfg: &ThrashConfig,
        procfs: &ProcFs,
        cgfs: &CgroupFs,
        page_size: u64,
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
        Ok(Some(ThrashWatch {
            cfg: cfg.clone(),
            vmstat_path,
            vmstat,
            buf,
            page_size,
            machine: ThrashDetector::new(cfg.rule(), page_size),
            cgroups: HashMap::new(),
            episodes: HashMap::new(),
            zramfs: ZramFs::new(sys),
            zram: Vec::new(),
            zram_read: None,
            swap: None,
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

    /// The next step for the scope keyed `key`, or `None` while the last step's window runs.
    fn next_step(&mut self, key: &Path, now: Instant) -> Option<(usize, ActionStep)> {
        let window = self.cfg.step_window;
        // After a step the detector starts over: firing again takes one reading to open a
        // window, then `duration`, rounded up to whole windows. Twice that plus the step's
        // window still counts as the same episode; quieter than that, the chain starts over.
        let episode_gap = window + 2 * (self.cfg.duration + self.cfg.window);
        let step = match self.episodes.get(key) {
            Some(e) if now.duration_since(e.at) < window => return None,
            Some(e) if now.duration_since(e.at) < episode_gap => {
                (e.step + 1).min(self.cfg.actions.len() - 1)
            }
            _ => 0,
        };
        self.episodes
            .insert(key.to_path_buf(), Episode { step, at: now });
        Some((step, *self.cfg.actions.get(step)?))
    }

    /// Forgets the cgroups no longer guarded.
    fn retain(&mut self, dirs: &[&Path]) {
        self.cgroups.retain(|d, _| dirs.contains(&d.as_path()));
        self.episodes
            .retain(|d, _| d.as_os_str().is_empty() || dirs.contains(&d.as_path()));
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
            oomguard_core::thrash::ThrashReason::ThrashRefault => String::new(),
            _ => "; swap is full".to_owned(),
        },
    )
}

impl Daemon {
    /// Rebuilds the rule's state from the (new) config: at start and after a reload.
    pub(super) fn open_thrash(&mut self) {
        match ThrashWatch::open(&self.cfg.thrash, &self.procfs, &self.cgfs, self.page_size) {
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
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        t.update_swap(m, now);
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
        let verdict = t.machine.observe(since, c, t.swap.as_ref());
        if let Some(reason) = verdict.fired {
            t.machine.reset();
            let fired = Fired { verdict, reason };
            self.thrash_fired(Scope::Global, fired, Some(*s), None, now);
        }
    }

    /// One guarded cgroup's tick (after its memory reading).
    pub(super) fn thrash_cgroup(
        &mut self,
        i: usize,
        reading: &oomguard_core::decision::CgroupReading,
        now: Instant,
    ) {
        let since = now.duration_since(self.started);
        let Some(t) = self.thrash.as_mut().filter(|t| t.cfg.cgroups) else {
            return;
        };
        let w = &self.cgroups[i];
        let stat = match w.read_stat_fast(&mut t.buf) {
            Ok(s) => s,
            // Gone or unreadable: `check_cgroup` reports it.
            Err(_) => return,
        };
        let Some(c) = ThrashCounters::from_memory_stat(&stat, t.page_size) else {
            return;
        };
        if !t.cgroups.contains_key(&w.dir) {
            t.cgroups.insert(
                w.dir.clone(),
                ThrashDetector::new(t.cfg.rule(), t.page_size),
            );
        }
        let Some(d) = t.cgroups.get_mut(&w.dir) else {
            return;
        };
        let verdict = d.observe(since, c, t.swap.as_ref());
        if let Some(reason) = verdict.fired {
            d.reset();
            let fired = Fired { verdict, reason };
            self.thrash_fired(Scope::Cgroup(i), fired, None, Some(*reading), now);
        }
    }

    /// After a rescan: drops the state of cgroups no longer guarded.
    pub(super) fn thrash_retain(&mut self) {
        if let Some(t) = self.thrash.as_mut() {
            let dirs: Vec<&Path> = self.cgroups.iter().map(|w| w.dir.as_path()).collect();
            t.retain(&dirs);
        }
    }

    fn thrash_fired(
        &mut self,
        scope: Scope,
        fired: Fired,
        memory: Option<Sample>,
        cgroup: Option<oomguard_core::decision::CgroupReading>,
        now: Instant,
    ) {
        let Some(t) = self.thrash.as_mut() else {
            return;
        };
        let (key, name) = match scope {
            Scope::Global => (PathBuf::new(), "machine".to_owned()),
            Scope::Cgroup(i) => (
                self.cgroups[i].dir.clone(),
                format!("cgroup {}", self.cgroups[i].path),
            ),
        };
        let Some((idx, step)) = t.next_step(&key, now) else {
            return;
        };
        let detail = describe(
            &name,
            &fired,
            &t.cfg,
            t.page_size,
            &format!("{}/{} {}", idx + 1, t.cfg.actions.len(), step.label()),
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
            ActionStep::Kill => self.act(d),
            ActionStep::Notify => self.thrash_notify(&d),
            // Refused by config validation; never reached.
            other => log(format_args!(
                "thrash: step {:?} is not implemented; nothing done",
                other.label()
            )),
        }
    }

    /// The `notify` step: a warning event (log, journal, hooks), nothing changed.
    fn thrash_notify(&mut self, d: &Decision) {
        self.decisions += 1;
        log(format_args!(
            "decision #{}: {}: {}; notified, nothing changed",
            self.decisions,
            d.trigger.label(),
            d.detail
        ));
        let cgroup_path = match d.scope {
            Scope::Cgroup(i) => Some(self.cgroups[i].path.clone()),
            Scope::Global => None,
        };
        let mut ev = OomEvent::new(EventKind::Warning);
        ev.source = Source::Oomguard;
        ev.trigger = Some(decision::trigger_info(d, cgroup_path.as_deref()));
        self.tell.record(ev, Instant::now());
    }
}
