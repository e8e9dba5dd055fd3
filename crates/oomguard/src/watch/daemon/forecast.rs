//! The daemon's side of the time-to-OOM forecast (`oomguard_core::forecast`): each reading the
//! loop already takes (MemAvailable; each guarded cgroup's limit minus its working set) goes to
//! the scope's [`Tracker`], the estimate goes to the `oomguard_time_to_oom_seconds` gauge, and
//! once per episode a `forecast` event naming the top growers goes to every sink.
//!
//! The steady path is the tracker's arithmetic and a gauge store: no allocation. The process
//! scans for the growers (a baseline when the estimate falls to twice the lead, the ranking when
//! it falls to the lead) happen once per episode. A cgroup's scan reads only its members; the
//! machine's reads every process, which took up to 0.5 s with 8,000 processes here
//! (docs/benchmarks.md), time in which the loop reads no memory: so it is made only while both
//! the estimate and the fill's time to the SIGTERM threshold leave at least
//! [`MACHINE_SCAN_MIN_S`] (else the growers are the ahead-of-need ranking's best, when it has
//! any).

use std::time::Instant;

use oomguard_core::event::{EventKind, ForecastInfo, Grower, OomEvent, Source};
use oomguard_core::forecast::{self, Sized, Step};
use oomguard_core::size::format_bytes;
use oomguard_core::trigger::Sample;

use super::{log, Daemon};
use crate::host::scan::{ProcSample, ScanStats};
use crate::watch::cgroups::Reading;

/// The machine's process scan for growers is skipped when fewer seconds than this are left
/// before the OOM or before the SIGTERM threshold.
const MACHINE_SCAN_MIN_S: f64 = 5.0;

/// Growers named in an event.
pub(super) const GROWERS: usize = 5;

/// The label of the machine's scope.
pub(super) const MACHINE: &str = "machine";

pub(super) fn sized(s: &ProcSample, page_size: u64) -> Sized {
    (
        s.pid,
        s.start_time_ticks,
        s.mem.map_or(0, |m| m.rss_pages * page_size),
    )
}

/// The [`GROWERS`] processes that grew most since `baseline`, as a forecast event names them
/// (the machine's and a cgroup's scope alike).
fn top_growers(baseline: &[Sized], procs: &[ProcSample], page_size: u64) -> Vec<Grower> {
    forecast::top_growers(
        baseline,
        procs.iter().map(|p| {
            let (pid, start, rss) = sized(p, page_size);
            (pid, start, rss, p.comm.as_str())
        }),
        GROWERS,
    )
}

impl Daemon {
    /// The machine's forecast after a system-wide reading.
    pub(super) fn forecast_machine(&mut self, s: &Sample, now: Instant) {
        let at = now.duration_since(self.started);
        let lead = self.cfg.forecast.lead;
        let (tto, step) = self.forecast.observe(s.mem_available_bytes, at, lead);
        self.tell.set_time_to_oom(None, tto);
        if step == Step::Nothing {
            return;
        }
        // What bounds the scan is the kill path, not the OOM: the SIGTERM threshold is met
        // well before MemAvailable runs out, and a scan under way then delays the signal by
        // its length (bench/watch.sh, 2,000 idle processes: 130-240 ms instead of 1-4 ms).
        let rate = self.forecast.rate.rate_bytes_per_s();
        let to_term_s = if rate > 0.0 {
            s.mem_available_bytes.saturating_sub(self.th.mem_term_bytes) as f64 / rate
        } else {
            f64::INFINITY
        };
        let mut procs = Vec::new();
        if tto.min(to_term_s) >= MACHINE_SCAN_MIN_S {
            let mut stats = ScanStats::default();
            if let Err(e) = self.scanner.scan(&mut procs, &mut stats) {
                log(format_args!("forecast: listing processes: {e}"));
            }
        } else {
            procs.extend(self.warm.best.iter().copied());
        }
        let ps = self.page_size;
        match step {
            Step::Prime => self
                .forecast
                .set_baseline(procs.iter().map(|p| sized(p, ps))),
            Step::Fire | Step::Nothing => {
                let growers = top_growers(&self.forecast.baseline, &procs, ps);
                let info = ForecastInfo {
                    scope: MACHINE.to_owned(),
                    seconds_to_oom: tto,
                    lead_s: lead.as_secs_f64(),
                    fill_bytes_per_s: self.forecast.rate.rate_bytes_per_s(),
                    free_bytes: s.mem_available_bytes,
                    limit_bytes: Some(s.mem_total_bytes),
                    growers,
                };
                self.send_forecast(info);
            }
        }
    }

    /// Guarded cgroup `i`'s forecast after its reading (free: limit minus working set).
    pub(super) fn forecast_cgroup(&mut self, i: usize, r: &Reading, now: Instant) {
        let Some(limit) = r.limit_bytes else {
            return;
        };
        let at = now.duration_since(self.started);
        let lead = self.cfg.forecast.lead;
        let free = limit.saturating_sub(r.working_set_bytes);
        let (tto, step) = self.cgroups[i].forecast.observe(free, at, lead);
        self.tell.set_time_to_oom(Some(&self.cgroups[i].path), tto);
        if step == Step::Nothing {
            return;
        }
        let mut pids = Vec::new();
        let mut procs = Vec::new();
        if let Err(e) = self.cgfs.subtree_procs(&self.cgroups[i].dir, &mut pids) {
            log(format_args!(
                "forecast: cgroup {}: {e}",
                self.cgroups[i].path
            ));
        }
        let mut stats = ScanStats::default();
        self.scanner.scan_pids(&pids, &mut procs, &mut stats);
        let ps = self.page_size;
        let w = &mut self.cgroups[i];
        match step {
            Step::Prime => w.forecast.set_baseline(procs.iter().map(|p| sized(p, ps))),
            Step::Fire | Step::Nothing => {
                let growers = top_growers(&w.forecast.baseline, &procs, ps);
                let info = ForecastInfo {
                    scope: w.path.clone(),
                    seconds_to_oom: tto,
                    lead_s: lead.as_secs_f64(),
                    fill_bytes_per_s: w.forecast.rate.rate_bytes_per_s(),
                    free_bytes: free,
                    limit_bytes: Some(limit),
                    growers,
                };
                self.send_forecast(info);
            }
        }
    }

    fn send_forecast(&mut self, info: ForecastInfo) {
        let mut ev = OomEvent::new(EventKind::Forecast);
        ev.source = Source::Oomguard;
        log(format_args!(
            "forecast: {} runs out of memory in about {:.1} s ({} left, filling at {}/s); top growers: {}",
            info.scope,
            info.seconds_to_oom,
            format_bytes(info.free_bytes),
            format_bytes(info.fill_bytes_per_s.max(0.0) as u64),
            if info.growers.is_empty() {
                "(not scanned)".to_owned()
            } else {
                info.growers
                    .iter()
                    .map(|g| format!("{:?} (pid {}, {})", g.name, g.pid, format_bytes(g.rss_bytes)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        self.record_growers(&info.growers);
        ev.forecast = Some(info);
        self.tell.record(ev, Instant::now());
    }
}
