//! When to act: memory figures in, a pressure level out. Pure: the daemon reads /proc and the
//! clock, this module decides. Also the adaptive poll interval.
//!
//! Rules (issue 4, and why they differ from earlyoom's):
//! - MemAvailable below `mem_term` asks for SIGTERM, below `mem_kill` for SIGKILL. It fires on its
//!   own: no swap rule can hold it back (earlyoom acts only when memory *and* swap are low, which
//!   confuses users with no swap or zram; earlyoom#351, #353).
//! - Free swap below `swap_term` asks for SIGTERM, but only where swap exists. With no swap the
//!   rule is inert, and the daemon says so once at start.
//! - PSI `some`/`full` avg10 above a percentage for at least a duration asks for SIGTERM; a PSI
//!   reading is only ever a reason to act together with its duration, never one sample.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How hard to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing to do.
    Calm,
    /// Ask the victim to exit (SIGTERM), then escalate if it does not.
    Term,
    /// Kill now (SIGKILL).
    Kill,
}

/// Which rule fired; bounded, so it can be a metric label. The one trigger type: the decision
/// carries it, the event serialises it as `trigger.reason` (its [`Trigger::label`]), the metrics
/// use it as the `trigger` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Trigger {
    /// `Default` only so that a hand-built event can use `..Default::default()`.
    #[default]
    #[serde(rename = "memory")]
    MemAvailable,
    #[serde(rename = "swap")]
    SwapFree,
    #[serde(rename = "psi_some")]
    PsiSome,
    #[serde(rename = "psi_full")]
    PsiFull,
    #[serde(rename = "cgroup")]
    CgroupHeadroom,
    /// The thrash rule (`crate::thrash`): refaults above the bar for the duration.
    #[serde(rename = "thrash-refault")]
    ThrashRefault,
    /// The thrash rule with swap used up while the scope reclaims.
    #[serde(rename = "swap-full")]
    SwapFull,
    /// The thrash rule with a zram device nearly full while the scope reclaims.
    #[serde(rename = "zram-full")]
    ZramFull,
}

impl Trigger {
    /// Every trigger, in the order of the metrics' series.
    pub const ALL: [Trigger; 8] = [
        Trigger::MemAvailable,
        Trigger::SwapFree,
        Trigger::PsiSome,
        Trigger::PsiFull,
        Trigger::CgroupHeadroom,
        Trigger::ThrashRefault,
        Trigger::SwapFull,
        Trigger::ZramFull,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Trigger::MemAvailable => "memory",
            Trigger::SwapFree => "swap",
            Trigger::PsiSome => "psi_some",
            Trigger::PsiFull => "psi_full",
            Trigger::CgroupHeadroom => "cgroup",
            Trigger::ThrashRefault => "thrash-refault",
            Trigger::SwapFull => "swap-full",
            Trigger::ZramFull => "zram-full",
        }
    }

    /// One of the thrash rule's reasons: its state lives in the detector, not in a reading, so
    /// the re-check before acting keeps it (see `decision::recheck`).
    pub fn is_thrash(self) -> bool {
        matches!(
            self,
            Trigger::ThrashRefault | Trigger::SwapFull | Trigger::ZramFull
        )
    }
}

/// A PSI rule: avg10 above `pct` for at least `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiRule {
    pub avg10_pct: f64,
    pub duration: Duration,
}

/// Thresholds resolved to bytes (percentages already applied to MemTotal / SwapTotal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub mem_term_bytes: u64,
    pub mem_kill_bytes: u64,
    /// `None`: no swap rule (not configured, or no swap on this machine).
    pub swap_term_bytes: Option<u64>,
    pub psi_some: Option<PsiRule>,
    pub psi_full: Option<PsiRule>,
}

impl Thresholds {
    /// The config's thresholds for a machine of this size (the daemon at start and on reload,
    /// and `replay` for each recorded sample).
    pub fn from_config(cfg: &crate::config::Config, s: &Sample) -> Thresholds {
        let psi = |p: Option<crate::config::PsiSpec>| {
            p.map(|p| PsiRule {
                avg10_pct: p.avg10_pct,
                duration: p.duration,
            })
        };
        Thresholds {
            mem_term_bytes: cfg.memory.term_below.resolve(s.mem_total_bytes),
            mem_kill_bytes: cfg.memory.kill_below.resolve(s.mem_total_bytes),
            swap_term_bytes: cfg
                .swap
                .term_below
                .filter(|_| s.swap_total_bytes > 0)
                .map(|a| a.resolve(s.swap_total_bytes)),
            psi_some: psi(cfg.psi.some),
            psi_full: psi(cfg.psi.full),
        }
    }
}

/// One reading of the machine's memory (from /proc/meminfo and /proc/pressure/memory).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub mem_total_bytes: u64,
    pub mem_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    pub psi_some_avg10_pct: Option<f64>,
    pub psi_full_avg10_pct: Option<f64>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub level: Level,
    /// The rule behind `level` (the strongest one when several fire).
    pub trigger: Option<Trigger>,
}

impl Verdict {
    pub const CALM: Verdict = Verdict {
        level: Level::Calm,
        trigger: None,
    };
}

/// How long PSI has been above each rule's threshold: the only state the rules need.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiState {
    some_above_since: Option<Duration>,
    full_above_since: Option<Duration>,
}

impl PsiState {
    /// Records a sample taken at monotonic time `now`.
    pub fn observe(&mut self, th: &Thresholds, s: &Sample, now: Duration) {
        fn track(
            since: &mut Option<Duration>,
            rule: Option<PsiRule>,
            v: Option<f64>,
            now: Duration,
        ) {
            match (rule, v) {
                (Some(r), Some(v)) if v > r.avg10_pct => {
                    since.get_or_insert(now);
                }
                _ => *since = None,
            }
        }
        track(
            &mut self.some_above_since,
            th.psi_some,
            s.psi_some_avg10_pct,
            now,
        );
        track(
            &mut self.full_above_since,
            th.psi_full,
            s.psi_full_avg10_pct,
            now,
        );
    }

    fn sustained(since: Option<Duration>, rule: Option<PsiRule>, now: Duration) -> bool {
        match (since, rule) {
            (Some(t), Some(r)) => now.saturating_sub(t) >= r.duration,
            _ => false,
        }
    }
}

/// Evaluates the system-wide rules. `psi` must have observed `s` at `now`.
pub fn evaluate(th: &Thresholds, s: &Sample, psi: &PsiState, now: Duration) -> Verdict {
    if s.mem_available_bytes < th.mem_kill_bytes {
        return Verdict {
            level: Level::Kill,
            trigger: Some(Trigger::MemAvailable),
        };
    }
    if s.mem_available_bytes < th.mem_term_bytes {
        return Verdict {
            level: Level::Term,
            trigger: Some(Trigger::MemAvailable),
        };
    }
    if let Some(swap_term) = th.swap_term_bytes {
        if s.swap_total_bytes > 0 && s.swap_free_bytes < swap_term {
            return Verdict {
                level: Level::Term,
                trigger: Some(Trigger::SwapFree),
            };
        }
    }
    if PsiState::sustained(psi.full_above_since, th.psi_full, now) {
        return Verdict {
            level: Level::Term,
            trigger: Some(Trigger::PsiFull),
        };
    }
    if PsiState::sustained(psi.some_above_since, th.psi_some, now) {
        return Verdict {
            level: Level::Term,
            trigger: Some(Trigger::PsiSome),
        };
    }
    Verdict::CALM
}

/// Whether memory is back after a kill: MemAvailable above the SIGTERM threshold plus a margin,
/// so the daemon does not pick a second victim while the first one's memory is still being
/// returned (earlyoom#121, #309).
pub fn recovered(th: &Thresholds, s: &Sample, margin_bytes: u64) -> bool {
    s.mem_available_bytes >= th.mem_term_bytes.saturating_add(margin_bytes)
}

/// Adaptive polling: how long the daemon may sleep before the next reading.
///
/// The next reading must come before the headroom above the SIGTERM threshold can be used up at
/// the fastest fill rate, so the overshoot past the threshold stays about `fill × (read +
/// decision time)` rather than `fill × interval`. The fill rate is the larger of the rate
/// measured between the last two readings and `floor_fill_bytes_per_s` (the fastest rate a single
/// thread reaches on the machine; see docs/triggers.md for how it was measured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPlan {
    pub min: Duration,
    pub max: Duration,
    pub floor_fill_bytes_per_s: f64,
}

impl PollPlan {
    /// Sleep before the next reading, for `headroom_bytes` left above the threshold and the
    /// measured fill rate (bytes/s, positive when memory is being used up).
    pub fn interval(&self, headroom_bytes: u64, measured_fill_bytes_per_s: f64) -> Duration {
        let fill = measured_fill_bytes_per_s.max(self.floor_fill_bytes_per_s);
        if fill <= 0.0 {
            return self.max;
        }
        let secs = headroom_bytes as f64 / fill;
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64())).clamp(self.min, self.max)
    }
}

/// When to rank the processes ahead of need: memory is being used up fast enough, and close
/// enough to the SIGTERM threshold, that the whole-process scan done at the crossing would
/// itself cost the margin. The daemon then scans in slices between readings, and at the crossing
/// re-reads only the best few candidates (docs/triggers.md, docs/benchmarks.md: a decision scan
/// of 8,000 processes took 0.46 s here, while the hog went on at 256 MiB/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmPlan {
    /// Rank ahead only when the measured fill is at least this (bytes/s): below it the scan at the
    /// crossing costs little memory (0.5 s at 32 MiB/s is 16 MiB), and a machine that merely sits
    /// near its threshold costs no scanning.
    pub min_fill_bytes_per_s: f64,
    /// ... and the threshold is this close, in time at the measured fill.
    pub horizon: Duration,
}

impl WarmPlan {
    pub const DEFAULT: WarmPlan = WarmPlan {
        min_fill_bytes_per_s: 32.0 * 1024.0 * 1024.0,
        horizon: Duration::from_secs(3),
    };

    /// Whether to keep a ranking ready, for `headroom_bytes` above the SIGTERM threshold and the
    /// measured fill (bytes/s, positive when memory is being used up).
    pub fn wanted(&self, headroom_bytes: u64, measured_fill_bytes_per_s: f64) -> bool {
        measured_fill_bytes_per_s >= self.min_fill_bytes_per_s
            && (headroom_bytes as f64) / measured_fill_bytes_per_s <= self.horizon.as_secs_f64()
    }
}

/// Fill rate between two readings, bytes per second (positive when MemAvailable falls).
pub fn fill_rate(prev_available: u64, prev_at: Duration, now_available: u64, now: Duration) -> f64 {
    let dt = now.saturating_sub(prev_at).as_secs_f64();
    if dt <= 0.0 {
        return 0.0;
    }
    (prev_available as f64 - now_available as f64) / dt
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn th() -> Thresholds {
        Thresholds {
            mem_term_bytes: 2 * GIB,
            mem_kill_bytes: GIB,
            swap_term_bytes: Some(GIB / 2),
            psi_some: Some(PsiRule {
                avg10_pct: 40.0,
                duration: Duration::from_secs(5),
            }),
            psi_full: None,
        }
    }

    fn sample(avail: u64, swap_total: u64, swap_free: u64) -> Sample {
        Sample {
            mem_total_bytes: 16 * GIB,
            mem_available_bytes: avail,
            swap_total_bytes: swap_total,
            swap_free_bytes: swap_free,
            ..Default::default()
        }
    }

    #[test]
    fn memory_rule_fires_without_swap() {
        let t = Duration::ZERO;
        let psi = PsiState::default();
        // No swap at all: the memory rule alone decides (earlyoom's both-below rule would not).
        assert_eq!(
            evaluate(&th(), &sample(GIB + 1, 0, 0), &psi, t).level,
            Level::Term
        );
        assert_eq!(
            evaluate(&th(), &sample(GIB - 1, 0, 0), &psi, t).level,
            Level::Kill
        );
        assert_eq!(
            evaluate(&th(), &sample(3 * GIB, 0, 0), &psi, t),
            Verdict::CALM
        );
        // Plenty of free swap does not hold the memory rule back either.
        let v = evaluate(&th(), &sample(GIB + 1, 8 * GIB, 8 * GIB), &psi, t);
        assert_eq!(
            v,
            Verdict {
                level: Level::Term,
                trigger: Some(Trigger::MemAvailable)
            }
        );
    }

    #[test]
    fn swap_rule_only_where_swap_exists() {
        let psi = PsiState::default();
        let v = evaluate(
            &th(),
            &sample(8 * GIB, 4 * GIB, GIB / 4),
            &psi,
            Duration::ZERO,
        );
        assert_eq!(v.trigger, Some(Trigger::SwapFree));
        assert_eq!(
            evaluate(&th(), &sample(8 * GIB, 0, 0), &psi, Duration::ZERO),
            Verdict::CALM
        );
    }

    #[test]
    fn psi_needs_its_duration() {
        let th = th();
        let mut psi = PsiState::default();
        let mut s = sample(8 * GIB, 0, 0);
        s.psi_some_avg10_pct = Some(55.0);
        for secs in [0, 2, 4] {
            let now = Duration::from_secs(secs);
            psi.observe(&th, &s, now);
            assert_eq!(evaluate(&th, &s, &psi, now), Verdict::CALM, "at {secs}s");
        }
        let now = Duration::from_secs(5);
        psi.observe(&th, &s, now);
        assert_eq!(evaluate(&th, &s, &psi, now).trigger, Some(Trigger::PsiSome));
        // One calm sample resets the clock.
        s.psi_some_avg10_pct = Some(10.0);
        psi.observe(&th, &s, Duration::from_secs(6));
        s.psi_some_avg10_pct = Some(55.0);
        psi.observe(&th, &s, Duration::from_secs(7));
        assert_eq!(
            evaluate(&th, &s, &psi, Duration::from_secs(10)),
            Verdict::CALM
        );
    }

    #[test]
    fn poll_interval_shrinks_near_the_threshold() {
        let plan = PollPlan {
            min: Duration::from_millis(1),
            max: Duration::from_secs(1),
            floor_fill_bytes_per_s: 4.0 * GIB as f64,
        };
        assert_eq!(plan.interval(16 * GIB, 0.0), Duration::from_secs(1));
        assert_eq!(plan.interval(GIB, 0.0), Duration::from_millis(250));
        assert_eq!(plan.interval(0, 0.0), Duration::from_millis(1));
        // A faster measured fill shortens it further.
        assert_eq!(
            plan.interval(GIB, 8.0 * GIB as f64),
            Duration::from_millis(125)
        );
        assert!(
            (fill_rate(2 * GIB, Duration::ZERO, GIB, Duration::from_secs(1)) - GIB as f64).abs()
                < 1.0
        );
    }

    #[test]
    fn warm_ranking_only_when_filling_fast_and_close() {
        let w = WarmPlan::DEFAULT;
        let mib = (1u64 << 20) as f64;
        // 512 MiB left at 256 MiB/s: 2 s away.
        assert!(w.wanted(512 << 20, 256.0 * mib));
        // Sitting near the threshold without filling: no scanning.
        assert!(!w.wanted(16 << 20, 0.0));
        assert!(!w.wanted(16 << 20, -100.0 * mib));
        // Filling slowly: the scan at the crossing costs little.
        assert!(!w.wanted(16 << 20, 8.0 * mib));
        // Filling fast but far away.
        assert!(!w.wanted(8 * GIB, GIB as f64));
        assert!(w.wanted(2 * GIB, GIB as f64));
    }

    #[test]
    fn recovery_needs_a_margin() {
        assert!(!recovered(&th(), &sample(2 * GIB + 10, 0, 0), 256 << 20));
        assert!(recovered(&th(), &sample(3 * GIB, 0, 0), 256 << 20));
    }
}
