//! Time-to-OOM forecast (pure): from the readings the daemon already takes of a scope's free
//! memory (the machine's MemAvailable; a guarded cgroup's limit minus its working set), a
//! smoothed fill rate, the seconds until that free memory reaches zero at that rate, and the
//! once-per-episode rule for the `forecast` event. The daemon owns the I/O (`watch/forecast.rs`
//! in the `oomguard` crate); everything here takes the reading and its time as numbers.
//!
//! Why an exponentially weighted moving average of the rate, with a weight from the time
//! between readings (`alpha = 1 - exp(-dt / tau)`), rather than least squares over a window:
//! the daemon reads at irregular intervals (1 ms under a fast fill, up to `poll.max` when calm),
//! and the kernel moves MemAvailable in per-CPU batches of a few MiB, so most readings 1 ms apart
//! show no change and one shows a jump. With the time-derived weight each reading contributes
//! `delta_bytes / tau` whatever its interval, so the batching averages out instead of making the
//! rate flicker, and the state is three numbers (no ring of readings, no allocation in the
//! loop). A window fit has the same lag at the onset of a fill for the same noise rejection and
//! needs the ring. The price is stated in docs/triggers.md ("Time-to-OOM forecast"): after `t`
//! seconds of a steady fill the smoothed rate is `1 - exp(-t / tau)` of the real one, so the
//! estimate is late (too long) during the first [`RATE_TAU`] of a fill; fills a person can act
//! on last far longer than that.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The smoothing time constant of the fill rate. 1 s: a burst of reclaimable page cache or a
/// short allocation spike of 100 MiB moves the rate by at most 100 MiB/s for about a second,
/// while a steady fill is followed within ~2 s (86 % of its rate after 2 tau). Measured against
/// hogs at 64, 256 and 1024 MiB/s in docs/triggers.md.
pub const RATE_TAU: Duration = Duration::from_secs(1);

/// Below this smoothed rate the scope is "not filling" (the estimate is `+Inf`): the residue of
/// an ended fill decays towards zero without reaching it, and the kernel's batching leaves a
/// few KiB/s of noise on an idle machine.
pub const NOT_FILLING_BELOW_BYTES_PER_S: f64 = 64.0 * 1024.0;

/// The `[forecast]` table of the config.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Send a `forecast` event when a scope's estimated time to OOM falls to this; `"0s"`
    /// turns the event off (the metric stays).
    #[serde(deserialize_with = "de_duration")]
    pub lead: Duration,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        // A minute: enough for a person paged on it to look, short enough that a slow leak does
        // not warn hours ahead (the metric shows those).
        ForecastConfig {
            lead: Duration::from_secs(60),
        }
    }
}

impl ForecastConfig {
    /// Checks what the types cannot: a lead the daemon can act on.
    pub fn validate(&self) -> Result<(), String> {
        if self.lead > Duration::from_secs(24 * 3600) {
            return Err(format!(
                "forecast.lead: {:?} is longer than a day; the estimate from a rate smoothed over {:?} means nothing that far ahead",
                self.lead, RATE_TAU
            ));
        }
        Ok(())
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::size::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// The smoothed fill rate of one scope. `at` is any monotonic clock (the daemon: time since it
/// started).
/// `1 - e^(-x)` for `x >= 0`, the EWMA's weight of a reading `x` time constants after the last.
///
/// Not `f64::exp`: std calls the C library's `exp`, and the daemon's loop calling into libm
/// kept ~320 KiB of libm's pages resident (the kernel maps 64 KiB around each faulted page, and
/// `mlockall` holds them): a third of the idle daemon's footprint for one function. Here:
/// `e^(-x) = (e^(-x/64))^64`, the inner one by its Taylor series to the 9th power (`x/64 <= 0.6`
/// below the cut-off: error below 1e-9 before squaring, 1e-7 after), which is far below the
/// readings' own noise.
pub fn one_minus_exp_neg(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x >= 40.0 {
        return 1.0; // e^-40 < 1e-17: below f64's resolution next to 1
    }
    let y = x / 64.0;
    // Horner's scheme for sum_{k=0}^{9} (-y)^k / k!.
    let mut term = 1.0;
    for k in (1..=9).rev() {
        term = 1.0 - y * term / f64::from(k);
    }
    let mut e = term;
    for _ in 0..6 {
        e *= e;
    }
    1.0 - e
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FillRate {
    last: Option<(u64, Duration)>,
    /// Bytes per second, positive while free memory falls.
    rate_bytes_per_s: f64,
}

impl FillRate {
    /// Takes one reading of the scope's free bytes; returns the smoothed rate. Readings at the
    /// same instant (or going back in time) are ignored.
    pub fn observe(&mut self, free_bytes: u64, at: Duration) -> f64 {
        match self.last {
            None => self.last = Some((free_bytes, at)),
            Some((prev, prev_at)) => {
                let dt = at.saturating_sub(prev_at).as_secs_f64();
                if dt > 0.0 {
                    let inst = (prev as f64 - free_bytes as f64) / dt;
                    let alpha = one_minus_exp_neg(dt / RATE_TAU.as_secs_f64());
                    self.rate_bytes_per_s += alpha * (inst - self.rate_bytes_per_s);
                    self.last = Some((free_bytes, at));
                }
            }
        }
        self.rate_bytes_per_s
    }

    /// The smoothed rate, bytes per second (negative while memory is freed).
    pub fn rate_bytes_per_s(&self) -> f64 {
        self.rate_bytes_per_s
    }

    /// Seconds until the last reading's free bytes reach zero at the smoothed rate; `+Inf`
    /// before two readings and while not filling ([`NOT_FILLING_BELOW_BYTES_PER_S`]).
    pub fn seconds_to_oom(&self) -> f64 {
        match self.last {
            Some((free, _)) => seconds_to_oom(free, self.rate_bytes_per_s),
            None => f64::INFINITY,
        }
    }

    /// Forgets the readings (the scope was replaced, e.g. a cgroup of the same path re-made).
    pub fn reset(&mut self) {
        *self = FillRate::default();
    }
}

/// `free_bytes / rate`, `+Inf` when the rate is below [`NOT_FILLING_BELOW_BYTES_PER_S`].
pub fn seconds_to_oom(free_bytes: u64, rate_bytes_per_s: f64) -> f64 {
    if rate_bytes_per_s.is_nan() || rate_bytes_per_s < NOT_FILLING_BELOW_BYTES_PER_S {
        f64::INFINITY
    } else {
        free_bytes as f64 / rate_bytes_per_s
    }
}

/// The once-per-episode rule of the `forecast` event: it fires when the estimate falls to the
/// lead, then not again until the estimate went back above twice the lead (or the scope stopped
/// filling: `+Inf`), so an estimate hovering at the lead does not send one event per reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    armed: bool,
}

impl Default for Episode {
    fn default() -> Self {
        Episode { armed: true }
    }
}

impl Episode {
    /// Feeds one estimate; returns whether the event is due now. A zero lead never fires.
    pub fn check(&mut self, seconds_to_oom: f64, lead: Duration) -> bool {
        let lead_s = lead.as_secs_f64();
        if lead_s <= 0.0 {
            return false;
        }
        if self.armed {
            if seconds_to_oom <= lead_s {
                self.armed = false;
                return true;
            }
        } else if seconds_to_oom > 2.0 * lead_s {
            self.armed = true;
        }
        false
    }

    /// Whether the next estimate at or below the lead fires.
    pub fn armed(&self) -> bool {
        self.armed
    }
}

/// What [`Tracker::observe`] asks the daemon to do after a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing beyond updating the metric.
    Nothing,
    /// The estimate fell to twice the lead: note each process's size now, so the event can say
    /// who grew (one scan per episode, off the steady path).
    Prime,
    /// Send the `forecast` event now.
    Fire,
}

/// One process as the growers' baseline holds it: `(pid, start_time_ticks, rss_bytes)`.
pub type Sized = (i32, u64, u64);

/// One scope's forecast: its fill rate, its episode and the growers' baseline.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub rate: FillRate,
    pub episode: Episode,
    /// The scope's processes when the estimate fell to twice the lead (sorted by pid).
    pub baseline: Vec<Sized>,
    primed: bool,
}

impl Tracker {
    /// One reading of the scope's free bytes at `at`; returns the estimate (seconds, `+Inf` when
    /// not filling) and what to do. Allocates nothing.
    pub fn observe(&mut self, free_bytes: u64, at: Duration, lead: Duration) -> (f64, Step) {
        self.rate.observe(free_bytes, at);
        let tto = self.rate.seconds_to_oom();
        let was_armed = self.episode.armed();
        if self.episode.check(tto, lead) {
            return (tto, Step::Fire);
        }
        if !was_armed && self.episode.armed() {
            // A new episode may begin: the old baseline is stale.
            self.primed = false;
            self.baseline.clear();
        }
        if self.episode.armed()
            && !self.primed
            && !lead.is_zero()
            && tto <= 2.0 * lead.as_secs_f64()
        {
            self.primed = true;
            return (tto, Step::Prime);
        }
        (tto, Step::Nothing)
    }

    /// Keeps `now` (processes of the scope) as the growers' baseline.
    pub fn set_baseline(&mut self, now: impl Iterator<Item = Sized>) {
        self.baseline.clear();
        self.baseline.extend(now);
        self.baseline.sort_unstable_by_key(|b| b.0);
    }
}

/// The top `n` growers of `now` (`(pid, start_time_ticks, rss_bytes, name)`) against
/// `baseline`: by growth since the baseline, largest first; a process not in the baseline (or
/// whose pid was reused: other start time) counts its whole size as growth but shows `null`
/// growth. Ties by size.
pub fn top_growers<S: AsRef<str>>(
    baseline: &[Sized],
    now: impl Iterator<Item = (i32, u64, u64, S)>,
    n: usize,
) -> Vec<crate::event::Grower> {
    let mut rows: Vec<(i64, crate::event::Grower)> = now
        .map(|(pid, start, rss, name)| {
            let before = baseline
                .binary_search_by_key(&pid, |b| b.0)
                .ok()
                .map(|i| baseline[i])
                .filter(|b| b.1 == start);
            let growth = before.map(|b| rss as i64 - b.2 as i64);
            (
                growth.unwrap_or(rss as i64),
                crate::event::Grower {
                    pid: i64::from(pid),
                    name: name.as_ref().to_owned(),
                    rss_bytes: rss,
                    growth_bytes: growth,
                },
            )
        })
        .collect();
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.rss_bytes.cmp(&a.1.rss_bytes))
            .then(a.1.pid.cmp(&b.1.pid))
    });
    rows.into_iter().take(n).map(|r| r.1).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn not_filling_is_infinite() {
        let mut f = FillRate::default();
        assert_eq!(f.seconds_to_oom(), f64::INFINITY);
        f.observe(512 * MIB, ms(0));
        assert_eq!(f.seconds_to_oom(), f64::INFINITY);
        for i in 1..100 {
            f.observe(512 * MIB, ms(i * 10));
        }
        assert_eq!(f.rate_bytes_per_s(), 0.0);
        assert_eq!(f.seconds_to_oom(), f64::INFINITY);
        // Memory being freed is not a fill either.
        for i in 0..100 {
            f.observe(512 * MIB + i * MIB, ms(1000 + i * 10));
        }
        assert!(f.rate_bytes_per_s() < 0.0);
        assert_eq!(f.seconds_to_oom(), f64::INFINITY);
    }

    #[test]
    fn steady_fill_converges_to_the_real_rate_and_time() {
        // 64 MiB/s from 1 GiB free, read every 10 ms for 5 s (5 tau).
        let mut f = FillRate::default();
        let rate = 64.0 * MIB as f64;
        let mut free = 0;
        for i in 0..=500u64 {
            free = 1024 * MIB - (rate * i as f64 / 100.0) as u64;
            f.observe(free, ms(i * 10));
        }
        let r = f.rate_bytes_per_s();
        assert!((r - rate).abs() / rate < 0.01, "rate {r}");
        let real = free as f64 / rate;
        let est = f.seconds_to_oom();
        assert!((est - real).abs() / real < 0.01, "est {est} real {real}");
    }

    #[test]
    fn one_minus_exp_neg_matches_libm() {
        for i in 0..=4000 {
            let x = f64::from(i) / 100.0;
            let want = 1.0 - (-x).exp();
            let got = one_minus_exp_neg(x);
            assert!(
                (got - want).abs() <= 1e-9 * want.max(1e-3),
                "x {x}: {got} vs {want}"
            );
        }
        assert_eq!(one_minus_exp_neg(0.0), 0.0);
        assert_eq!(one_minus_exp_neg(-1.0), 0.0);
        assert_eq!(one_minus_exp_neg(f64::NAN), 0.0);
        assert_eq!(one_minus_exp_neg(1e300), 1.0);
        assert!(one_minus_exp_neg(1e-12) > 0.0);
    }

    #[test]
    fn onset_lag_is_one_minus_exp_of_t_over_tau() {
        let mut f = FillRate::default();
        let rate = 256.0 * MIB as f64;
        f.observe(2048 * MIB, ms(0));
        // 1 s of steady fill at 1 ms readings: the smoothed rate is 1 - 1/e of the real one.
        for i in 1..=1000u64 {
            f.observe(2048 * MIB - (rate * i as f64 / 1000.0) as u64, ms(i));
        }
        let expect = rate * (1.0 - (-1.0f64).exp());
        let r = f.rate_bytes_per_s();
        assert!((r - expect).abs() / expect < 0.01, "{r} vs {expect}");
    }

    #[test]
    fn batched_readings_average_out_whatever_the_interval() {
        // The kernel's per-CPU batching: 4 MiB steps every 62.5 ms (64 MiB/s), read every 1 ms.
        let mut batched = FillRate::default();
        let mut free = 1024 * MIB;
        for i in 0..=4000u64 {
            if i > 0 && i % 62 == 0 {
                free -= 4 * MIB;
            }
            batched.observe(free, ms(i));
        }
        let rate = 4.0 * MIB as f64 / 0.062;
        let r = batched.rate_bytes_per_s();
        // Within a batch of the real rate (the last step may have just landed or not).
        assert!((r - rate).abs() / rate < 0.1, "{r} vs {rate}");
    }

    #[test]
    fn readings_at_the_same_instant_are_ignored() {
        let mut f = FillRate::default();
        f.observe(100 * MIB, ms(5));
        f.observe(10 * MIB, ms(5));
        f.observe(10 * MIB, ms(4));
        assert_eq!(f.rate_bytes_per_s(), 0.0);
        f.reset();
        assert_eq!(f.seconds_to_oom(), f64::INFINITY);
    }

    #[test]
    fn episode_fires_once_and_rearms_above_twice_the_lead_or_when_not_filling() {
        let lead = Duration::from_secs(60);
        let mut e = Episode::default();
        assert!(!e.check(f64::INFINITY, lead));
        assert!(!e.check(61.0, lead));
        assert!(e.check(60.0, lead));
        // Hovering around the lead, even up to twice it: no second event.
        for t in [59.0, 61.0, 30.0, 119.0, 120.0, 10.0] {
            assert!(!e.check(t, lead), "{t}");
        }
        assert!(!e.armed());
        assert!(!e.check(121.0, lead));
        assert!(e.armed());
        assert!(e.check(5.0, lead));
        assert!(!e.check(f64::INFINITY, lead));
        assert!(e.check(1.0, lead));
    }

    #[test]
    fn tracker_primes_at_twice_the_lead_then_fires_once() {
        let lead = Duration::from_secs(2);
        let mut t = Tracker::default();
        // 100 MiB/s from 1 GiB free, read every 10 ms.
        let mut steps = Vec::new();
        for i in 0..=1000u64 {
            let free = (1024 * MIB).saturating_sub(i * MIB);
            let (tto, step) = t.observe(free, ms(i * 10), lead);
            if step != Step::Nothing {
                steps.push((step, tto, free));
            }
        }
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(steps[0].0, Step::Prime);
        assert!(steps[0].1 <= 4.0);
        assert_eq!(steps[1].0, Step::Fire);
        assert!(steps[1].1 <= 2.0 && steps[1].1 > 1.5, "{steps:?}");
        // Stopped filling: re-armed, the baseline forgotten, and a new fill primes again.
        t.set_baseline([(5, 1, 10)].into_iter());
        for i in 0..500u64 {
            t.observe(MIB, ms(20_000 + i * 10), lead);
        }
        assert!(t.episode.armed());
        assert!(t.baseline.is_empty());
    }

    #[test]
    fn growers_rank_by_growth_and_flag_new_or_reused_pids() {
        let baseline = [
            (10, 100, 50 * MIB),
            (11, 100, 300 * MIB),
            (12, 100, 5 * MIB),
        ];
        let now = [
            (10, 100, 250 * MIB, "leaky"),  // +200
            (11, 100, 310 * MIB, "big"),    // +10
            (12, 999, 120 * MIB, "reused"), // pid reused: new, 120
            (13, 100, MIB, "tiny"),         // new, 1
        ];
        let g = top_growers(&baseline, now.into_iter(), 3);
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["leaky", "reused", "big"]);
        assert_eq!(g[0].growth_bytes, Some(200 * MIB as i64));
        assert_eq!(g[1].growth_bytes, None);
        assert_eq!(g[2].growth_bytes, Some(10 * MIB as i64));
        // No baseline (a fill too fast for two readings): by size.
        let g = top_growers(&[], now.into_iter(), 2);
        assert_eq!(g[0].name, "big");
        assert_eq!(g[1].name, "leaky");
    }

    #[test]
    fn zero_lead_never_fires() {
        let mut e = Episode::default();
        assert!(!e.check(0.0, Duration::ZERO));
    }

    #[test]
    fn config_default_and_validation() {
        assert_eq!(ForecastConfig::default().lead, Duration::from_secs(60));
        assert!(ForecastConfig::default().validate().is_ok());
        let long = ForecastConfig {
            lead: Duration::from_secs(2 * 24 * 3600),
        };
        assert!(long.validate().unwrap_err().contains("forecast.lead"));
    }
}
