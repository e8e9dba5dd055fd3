//! The daemon's side of the flight recorder (`oomguard_core::recorder`): the loop's own
//! readings go into the ring once per `recorder.interval` (the machine's at the start of an
//! iteration, each guarded cgroup's as it is read; no file is read for the recorder), every
//! decision notes its trigger, a forecast's growers are kept, and a kill event gets the series
//! with the growers of the kill's own process scan against the forecast's baseline.
//!
//! The ring lives in the [`Teller`](crate::tell::hub::Teller), so the kernel OOM events the
//! detector finds there get the same series without a detour through the loop.

use std::time::Instant;

use oomguard_core::decision::Scope;
use oomguard_core::forecast;
use oomguard_core::recorder::{Recorder, Recording};
use oomguard_core::trigger::Sample;

use super::forecast::{sized, GROWERS};
use super::{log, Daemon};

impl Daemon {
    /// Samples the flight recorder holds now (0 when it is off).
    pub fn recorded_samples(&self) -> usize {
        self.tell.recorder.as_ref().map_or(0, Recorder::len)
    }

    /// (Re)builds the ring from the config (start, and a reload that changed `[recorder]`),
    /// with columns for the guarded cgroups.
    pub(super) fn open_recorder(&mut self) {
        let cfg = self.cfg.recorder;
        if self.recorder_cfg == Some(cfg) && self.tell.recorder.is_some() {
            return;
        }
        self.recorder_cfg = Some(cfg);
        self.tell.recorder = Recorder::new(&cfg, self.cgroups.len());
        self.record_columns();
    }

    /// Gives each guarded cgroup its column (after start and every rescan).
    pub(super) fn record_columns(&mut self) {
        let Some(r) = self.tell.recorder.as_mut() else {
            return;
        };
        for path in r.assign(self.cgroups.iter().map(|w| w.path.as_str())) {
            log(format_args!(
                "recorder: no free column for cgroup {path}: its usage is not recorded"
            ));
        }
    }

    /// The machine's reading of this iteration: opens a sample when one is due.
    pub(super) fn record_machine(&mut self, s: &Sample, now: Instant) {
        if let Some(r) = self.tell.recorder.as_mut().filter(|r| r.due(now)) {
            r.begin(
                now,
                s.mem_available_bytes,
                s.swap_free_bytes,
                s.psi_some_avg10_pct,
                s.psi_full_avg10_pct,
            );
        }
    }

    /// Guarded cgroup `i`'s usage, into the sample opened this iteration (if any).
    pub(super) fn record_cgroup(&mut self, i: usize, usage_bytes: u64) {
        if let Some(r) = self.tell.recorder.as_mut().filter(|r| r.is_open()) {
            if let Some(slot) = r.slot_of(&self.cgroups[i].path) {
                r.cgroup(slot, usage_bytes);
            }
        }
    }

    /// Closes this iteration's sample.
    pub(super) fn record_end(&mut self) {
        if let Some(r) = self.tell.recorder.as_mut() {
            r.end();
        }
    }

    /// A decision's trigger fired now.
    pub(super) fn record_trigger(&mut self) {
        if let Some(r) = self.tell.recorder.as_mut() {
            r.note_trigger(Instant::now());
        }
    }

    /// A forecast named these growers: kept for the events that have no scan of their own (a
    /// forecast that scanned nobody keeps the last ones).
    pub(super) fn record_growers(&mut self, growers: &[oomguard_core::event::Grower]) {
        if let Some(r) = self.tell.recorder.as_mut().filter(|_| !growers.is_empty()) {
            r.set_growers(growers);
        }
    }

    /// The series for the kill of `scope` just made: the growers are the kill's candidate scan
    /// (`self.samples`, read before the signal) against the scope's forecast baseline. Without
    /// a baseline (a fill so fast the forecast fired before it primed one) they are the largest
    /// of that scan with `growth_bytes: null`: fresher than the last forecast's, whose names
    /// and sizes may be from before the victim even renamed itself.
    pub(super) fn kill_recording(&self, scope: Scope) -> Option<Recording> {
        let r = self.tell.recorder.as_ref().filter(|r| !r.is_empty())?;
        let baseline = match scope {
            Scope::Global => &self.forecast.baseline,
            Scope::Cgroup(i) => &self.cgroups.get(i)?.forecast.baseline,
        };
        let ps = self.page_size;
        let growers = (!self.samples.is_empty()).then(|| {
            forecast::top_growers(
                baseline,
                self.samples.iter().map(|p| {
                    let (pid, start, rss) = sized(p, ps);
                    (pid, start, rss, p.comm.as_str())
                }),
                GROWERS,
            )
        });
        Some(r.recording(Instant::now(), growers))
    }
}
