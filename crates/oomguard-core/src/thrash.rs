//! Thrash sensing: successive readings of a scope's reclaim counters in, "this scope has been
//! thrashing for this long" out. Pure: the caller reads `/proc/vmstat` (the machine) or a
//! cgroup's `memory.stat` (v1 or v2), parses them with [`crate::host`], and hands the counters
//! and a monotonic time in; nothing here opens a file or reads a clock.
//!
//! The measure is Android lmkd's (`mp_event_psi` in AOSP system/memory/lmkd/lmkd.cpp, read at
//! the AOSP mirror msft-mirror-aosp/platform.system.memory.lmkd 3a704a6 and the 2023 form with
//! the 1 s reset window in yaap/system_memory_lmkd c62ac7e): the page-cache refaults counted
//! in a window, as a percentage of the file LRU (`nr_inactive_file + nr_active_file`) at the
//! window's start, `thrashing = (workingset_refault_file - init_ws_refault) * 100 /
//! (base_file_lru + 1)` with `THRASHING_RESET_INTERVAL_MS 1000`. lmkd kills when that passes
//! `ro.lmk.thrashing_limit` (default 100 %, 30 % on low-RAM devices) together with a low
//! watermark, direct reclaim or low swap. A refault is a page read back in shortly after reclaim
//! evicted it (mm/workingset.c), so "100 % per second" means the scope re-reads its whole page
//! cache every second: it is working from disk, whatever MemAvailable says.
//!
//! Differences from lmkd, and why:
//! - The measure is per second of the window actually elapsed (the daemon's poll interval
//!   varies); with lmkd's 1 s window the two agree.
//! - Anon refaults (5.9+, swap-ins of recently evicted anon pages) count too, and the anon LRU
//!   joins the working set in a window where anon pages refaulted: with swap, anon thrashing is
//!   the same disease. Without anon refaults the anon LRU (unreclaimable without swap) would
//!   only dilute the measure, so it stays out.
//! - A window needs a minimum absolute refault rate as well ([`ThrashRule::min_refault_bytes_per_s`]):
//!   a cgroup with 100 pages of cache re-reading 200 of them a second is 200 %, and harmless.
//! - No low-watermark condition: oomguard's memory rules already cover low memory, and the point
//!   of this rule is the scope that thrashes while the machine has memory (a cgroup at its
//!   limit; page cache on a network filesystem). It must hold for a duration instead.
//! - Swap exhausted (a [`SwapExhausted`] from [`swap_exhausted`]: SwapFree below its mark or a
//!   zram device nearly full) lowers the bar as lmkd's `swap_is_low` does: then a window in
//!   which the scope is in direct reclaim or refaults at the minimum rate counts, and the reason
//!   is `swap-full` / `zram-full`.

use std::time::Duration;

use serde::Serialize;

use crate::host::cgroup::MemoryStat;
use crate::host::system::{MemInfo, VmStat};
use crate::host::zram::{ZramDevice, ZramFull};

/// One reading of a scope's counters. Event counters are cumulative page counts; the LRU sizes
/// are pages at the time of the reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThrashCounters {
    pub refault_file_pages: u64,
    /// 0 before 5.9 (no anon workingset tracking).
    pub refault_anon_pages: u64,
    pub file_lru_pages: u64,
    pub anon_lru_pages: u64,
    pub pgmajfault: u64,
    /// Machine-wide only (`/proc/vmstat`); 0 for a cgroup.
    pub pswpin: u64,
    pub pswpout: u64,
    /// Entries into direct reclaim: `allocstall_*` summed (machine), 0 for a cgroup (v1 and v2
    /// memory.stat have no such counter; a cgroup at its limit reclaims directly by definition).
    pub direct_reclaim_stalls: u64,
}

impl ThrashCounters {
    /// From `/proc/vmstat`. `None` when the kernel lacks the refault counter (before 3.15) or the
    /// file LRU sizes: then there is nothing to measure.
    pub fn from_vmstat(v: &VmStat) -> Option<Self> {
        let refault_file = v.workingset_refault_file.or(v.workingset_refault)?;
        let file_lru = v
            .nr_inactive_file_pages?
            .checked_add(v.nr_active_file_pages?)?;
        Some(ThrashCounters {
            refault_file_pages: refault_file,
            refault_anon_pages: v.workingset_refault_anon.unwrap_or(0),
            file_lru_pages: file_lru,
            anon_lru_pages: v
                .nr_inactive_anon_pages
                .unwrap_or(0)
                .saturating_add(v.nr_active_anon_pages.unwrap_or(0)),
            pgmajfault: v.pgmajfault.unwrap_or(0),
            pswpin: v.pswpin.unwrap_or(0),
            pswpout: v.pswpout.unwrap_or(0),
            direct_reclaim_stalls: v.allocstall_total.unwrap_or(0),
        })
    }

    /// From a cgroup's `memory.stat`, v1 or v2. v1's hierarchical `total_*` fields are preferred
    /// (a guarded cgroup includes its children, as v2's fields always do). The LRU sizes are
    /// bytes there and become pages with `page_size_bytes`; the refault counters are already
    /// pages. `None` when the file has no refault counter (v1 before 5.9, v2 before 4.20) or no
    /// file LRU sizes.
    pub fn from_memory_stat(s: &MemoryStat, page_size_bytes: u64) -> Option<Self> {
        let page = page_size_bytes.max(1);
        let refault_file = s
            .total_workingset_refault_file
            .or(s.workingset_refault_file)?;
        let inactive_file = s.total_inactive_file_bytes.or(s.inactive_file_bytes)?;
        let active_file = s.total_active_file_bytes.or(s.active_file_bytes)?;
        let inactive_anon = s
            .total_inactive_anon_bytes
            .or(s.inactive_anon_bytes)
            .unwrap_or(0);
        let active_anon = s
            .total_active_anon_bytes
            .or(s.active_anon_bytes)
            .unwrap_or(0);
        Some(ThrashCounters {
            refault_file_pages: refault_file,
            refault_anon_pages: s
                .total_workingset_refault_anon
                .or(s.workingset_refault_anon)
                .unwrap_or(0),
            file_lru_pages: inactive_file.saturating_add(active_file) / page,
            anon_lru_pages: inactive_anon.saturating_add(active_anon) / page,
            pgmajfault: s.total_pgmajfault.or(s.pgmajfault).unwrap_or(0),
            pswpin: 0,
            pswpout: 0,
            direct_reclaim_stalls: 0,
        })
    }
}

/// Rates over one window, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ThrashRates {
    pub window_ms: u64,
    pub refault_file_pages_per_s: f64,
    pub refault_anon_pages_per_s: f64,
    pub pgmajfault_per_s: f64,
    pub pswpin_per_s: f64,
    pub pswpout_per_s: f64,
    pub direct_reclaim_per_s: f64,
    /// The working set the refaults are measured against, pages (file LRU, plus anon LRU when
    /// anon pages refaulted), at the window's start.
    pub working_set_pages: u64,
    /// lmkd's measure per second: `100 * refaults / (working set + 1)` per second.
    pub refault_pct_per_s: f64,
}

impl ThrashRates {
    /// Rates between two readings `elapsed` apart. Counters that went backwards (a cgroup
    /// removed and re-created under the same path) count as no events, never as a huge rate.
    pub fn between(prev: &ThrashCounters, cur: &ThrashCounters, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        let per_s = |a: u64, b: u64| {
            if secs > 0.0 {
                b.saturating_sub(a) as f64 / secs
            } else {
                0.0
            }
        };
        let anon_refaults = cur
            .refault_anon_pages
            .saturating_sub(prev.refault_anon_pages);
        let working_set_pages = if anon_refaults > 0 {
            prev.file_lru_pages.saturating_add(prev.anon_lru_pages)
        } else {
            prev.file_lru_pages
        };
        let refault_file = per_s(prev.refault_file_pages, cur.refault_file_pages);
        let refault_anon = per_s(prev.refault_anon_pages, cur.refault_anon_pages);
        ThrashRates {
            window_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            refault_file_pages_per_s: refault_file,
            refault_anon_pages_per_s: refault_anon,
            pgmajfault_per_s: per_s(prev.pgmajfault, cur.pgmajfault),
            pswpin_per_s: per_s(prev.pswpin, cur.pswpin),
            pswpout_per_s: per_s(prev.pswpout, cur.pswpout),
            direct_reclaim_per_s: per_s(prev.direct_reclaim_stalls, cur.direct_reclaim_stalls),
            working_set_pages,
            refault_pct_per_s: (refault_file + refault_anon) * 100.0
                / (working_set_pages as f64 + 1.0),
        }
    }

    /// Refaults per second in bytes.
    pub fn refault_bytes_per_s(&self, page_size_bytes: u64) -> f64 {
        (self.refault_file_pages_per_s + self.refault_anon_pages_per_s) * page_size_bytes as f64
    }
}

/// Why the rule fired; the event's reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ThrashReason {
    /// Refaults above the threshold for the duration.
    ThrashRefault,
    /// Swap nearly used up while the scope reclaims.
    SwapFull,
    /// A zram device nearly full while the scope reclaims.
    ZramFull,
}

impl ThrashReason {
    /// The stable reason code (`thrash-refault`, `swap-full`, `zram-full`).
    pub fn code(self) -> &'static str {
        match self {
            ThrashReason::ThrashRefault => "thrash-refault",
            ThrashReason::SwapFull => "swap-full",
            ThrashReason::ZramFull => "zram-full",
        }
    }

    /// The decision's and event's trigger for this reason.
    pub fn trigger(self) -> crate::trigger::Trigger {
        use crate::trigger::Trigger;
        match self {
            ThrashReason::ThrashRefault => Trigger::ThrashRefault,
            ThrashReason::SwapFull => Trigger::SwapFull,
            ThrashReason::ZramFull => Trigger::ZramFull,
        }
    }
}

/// Swap used up: by `/proc/meminfo`, or by a zram device that is nearly full although swap
/// looks free (its `mem_limit` reached, or incompressible data).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SwapExhausted {
    Swap { free_pct: f64 },
    Zram { device: String, full: ZramFull },
}

impl SwapExhausted {
    pub fn reason(&self) -> ThrashReason {
        match self {
            SwapExhausted::Swap { .. } => ThrashReason::SwapFull,
            SwapExhausted::Zram { .. } => ThrashReason::ZramFull,
        }
    }
}

/// Is swap exhausted? With no swap configured (`SwapTotal` 0 or absent) and no configured zram
/// device, never: there is nothing to exhaust, and the memory rules cover that machine.
/// `swap_free_low_pct`: SwapFree at or below this share of SwapTotal counts as full (lmkd's
/// `ro.lmk.swap_free_low_percentage`, default 10). `zram_full_pct`: see [`ZramDevice::full`].
/// A full zram device wins over the meminfo figure: it is the more specific diagnosis.
pub fn swap_exhausted(
    mem: &MemInfo,
    zram: &[ZramDevice],
    swap_free_low_pct: f64,
    zram_full_pct: f64,
) -> Option<SwapExhausted> {
    for d in zram {
        if let Some(full) = d.full(zram_full_pct) {
            return Some(SwapExhausted::Zram {
                device: d.name.clone(),
                full,
            });
        }
    }
    let total = mem.swap_total_bytes.filter(|&t| t > 0)?;
    let free = mem.swap_free_bytes?;
    let free_pct = free as f64 * 100.0 / total as f64;
    (free_pct <= swap_free_low_pct).then_some(SwapExhausted::Swap { free_pct })
}

/// The rule's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThrashRule {
    /// Fire when [`ThrashRates::refault_pct_per_s`] stays above this.
    pub refault_pct_per_s: f64,
    /// ... for at least this long.
    pub duration: Duration,
    /// Rates are taken over windows at least this long (lmkd: 1 s).
    pub window: Duration,
    /// And only when the scope refaults at least this many bytes per second.
    pub min_refault_bytes_per_s: u64,
}

/// lmkd's `DEF_THRASHING` (100 % of the file LRU per 1 s window).
pub const DEFAULT_REFAULT_PCT_PER_S: f64 = 100.0;
/// lmkd's `THRASHING_RESET_INTERVAL_MS`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// Long enough that one burst (a build's link step re-reading objects, a backup's pass over a
/// cache) does not act; see docs/triggers.md for the measured rates.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// 4 MiB/s: below it a scope's re-reads are background noise, whatever the percentage.
pub const DEFAULT_MIN_REFAULT_BYTES_PER_S: u64 = 4 << 20;

impl Default for ThrashRule {
    fn default() -> Self {
        ThrashRule {
            refault_pct_per_s: DEFAULT_REFAULT_PCT_PER_S,
            duration: DEFAULT_DURATION,
            window: DEFAULT_WINDOW,
            min_refault_bytes_per_s: DEFAULT_MIN_REFAULT_BYTES_PER_S,
        }
    }
}

/// What one reading concluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ThrashVerdict {
    /// The last completed window's rates (`None` until one window has passed).
    pub rates: Option<ThrashRates>,
    /// How long the windows have been above the bar without a break.
    pub above_for: Option<Duration>,
    /// `Some` once `above_for` reaches the rule's duration: act, for this reason.
    pub fired: Option<ThrashReason>,
}

/// Per-scope detector state: the reading that opened the current window and since when the
/// windows have been above the bar. One per scope (the machine, each guarded cgroup).
#[derive(Debug, Clone, Default)]
pub struct ThrashDetector {
    rule: ThrashRule,
    page_size_bytes: u64,
    window_start: Option<(Duration, ThrashCounters)>,
    above_since: Option<Duration>,
    reason: Option<ThrashReason>,
    last: ThrashVerdict,
}

impl ThrashDetector {
    pub fn new(rule: ThrashRule, page_size_bytes: u64) -> Self {
        ThrashDetector {
            rule,
            page_size_bytes: page_size_bytes.max(1),
            ..ThrashDetector::default()
        }
    }

    /// Records a reading taken at monotonic time `now`; `swap` is the machine's swap state at
    /// that time ([`swap_exhausted`]). Readings closer together than the window only extend
    /// it; the verdict then repeats the last window's.
    pub fn observe(
        &mut self,
        now: Duration,
        counters: ThrashCounters,
        swap: Option<&SwapExhausted>,
    ) -> ThrashVerdict {
        let Some((start, prev)) = self.window_start else {
            self.window_start = Some((now, counters));
            return self.last;
        };
        let elapsed = now.saturating_sub(start);
        if elapsed < self.rule.window {
            return self.last;
        }
        let rates = ThrashRates::between(&prev, &counters, elapsed);
        let enough = rates.refault_bytes_per_s(self.page_size_bytes)
            >= self.rule.min_refault_bytes_per_s as f64;
        let reason = if enough && rates.refault_pct_per_s > self.rule.refault_pct_per_s {
            Some(ThrashReason::ThrashRefault)
        } else {
            swap.filter(|_| enough || rates.direct_reclaim_per_s > 0.0)
                .map(SwapExhausted::reason)
        };
        match reason {
            Some(r) => {
                // The window was above the bar from its start.
                self.above_since.get_or_insert(start);
                // Swap running out is the more urgent diagnosis; keep it once seen.
                if self.reason != Some(ThrashReason::SwapFull)
                    && self.reason != Some(ThrashReason::ZramFull)
                {
                    self.reason = Some(r);
                }
            }
            None => {
                self.above_since = None;
                self.reason = None;
            }
        }
        let above_for = self.above_since.map(|s| now.saturating_sub(s));
        self.last = ThrashVerdict {
            rates: Some(rates),
            above_for,
            fired: above_for
                .filter(|&d| d >= self.rule.duration)
                .and(self.reason),
        };
        self.window_start = Some((now, counters));
        self.last
    }

    /// Forgets the history, as lmkd does after a kill: the next firing needs a whole new
    /// duration of thrashing measured after the action.
    pub fn reset(&mut self) {
        self.window_start = None;
        self.above_since = None;
        self.reason = None;
        self.last = ThrashVerdict::default();
    }

    pub fn rule(&self) -> &ThrashRule {
        &self.rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::cgroup::parse_memory_stat;
    use crate::host::system::{parse_meminfo, parse_vmstat};
    use crate::host::zram::{parse_disksize, parse_mm_stat};

    const PAGE: u64 = 4096;
    const S: fn(u64) -> Duration = Duration::from_secs;

    /// v1 memory.stat lines of a 64 MiB cgroup re-reading a 128 MiB file on this 6.18 host
    /// (two readings 1 s apart, trimmed to the fields used), then of an idle one.
    const THRASH_T11: &[u8] = b"cache 65536000\nrss 331776\nworkingset_refault_anon 0\nworkingset_refault_file 3835520\npgmajfault 0\ninactive_anon 331776\nactive_anon 4096\ninactive_file 65536000\nactive_file 0\n";
    const THRASH_T12: &[u8] = b"cache 65011712\nrss 331776\nworkingset_refault_anon 0\nworkingset_refault_file 4188160\npgmajfault 0\ninactive_anon 331776\nactive_anon 4096\ninactive_file 65011712\nactive_file 0\n";

    fn cg(text: &[u8]) -> ThrashCounters {
        ThrashCounters::from_memory_stat(&parse_memory_stat(text).unwrap(), PAGE).unwrap()
    }

    fn counters(refault_file: u64, file_lru: u64) -> ThrashCounters {
        ThrashCounters {
            refault_file_pages: refault_file,
            file_lru_pages: file_lru,
            ..ThrashCounters::default()
        }
    }

    #[test]
    fn counters_from_real_files() {
        let v = parse_vmstat(include_bytes!("../tests/fixtures/host/vmstat-6.18.txt")).unwrap();
        let c = ThrashCounters::from_vmstat(&v).unwrap();
        assert_eq!(c.refault_file_pages, 115_960);
        assert_eq!(c.file_lru_pages, 169_775 + 74_454);
        let s = parse_memory_stat(include_bytes!(
            "../tests/fixtures/host/v1-memory.stat-6.18.txt"
        ))
        .unwrap();
        let c = ThrashCounters::from_memory_stat(&s, PAGE).unwrap();
        assert_eq!(c.refault_file_pages, 968);
        assert_eq!(c.file_lru_pages, (2_777_088 + 1_064_960) / PAGE);
        assert_eq!(c.pgmajfault, 25);
        // v1 prefers the hierarchical total_* fields.
        let s = parse_memory_stat(b"workingset_refault_file 1\ntotal_workingset_refault_file 9\ninactive_file 4096\nactive_file 0\ntotal_inactive_file 8192\ntotal_active_file 0\n").unwrap();
        let c = ThrashCounters::from_memory_stat(&s, PAGE).unwrap();
        assert_eq!((c.refault_file_pages, c.file_lru_pages), (9, 2));
        // No refault counter (v1 before 5.9): nothing to measure.
        assert_eq!(
            ThrashCounters::from_memory_stat(
                &parse_memory_stat(b"cache 0\nrss 0\n").unwrap(),
                PAGE
            ),
            None
        );
        // 4.19 vmstat: workingset_refault is the file counter.
        let v =
            parse_vmstat(b"workingset_refault 5\nnr_inactive_file 1\nnr_active_file 2\n").unwrap();
        assert_eq!(
            ThrashCounters::from_vmstat(&v).map(|c| c.refault_file_pages),
            Some(5)
        );
    }

    #[test]
    fn rates_on_the_real_thrash_readings() {
        let r = ThrashRates::between(&cg(THRASH_T11), &cg(THRASH_T12), S(1));
        assert_eq!(r.refault_file_pages_per_s, 352_640.0);
        assert_eq!(r.working_set_pages, 65_536_000 / PAGE);
        // 352640 refaults against 16000 pages of cache: 22 times the cache per second.
        assert!(
            (r.refault_pct_per_s - 2203.86).abs() < 0.01,
            "{}",
            r.refault_pct_per_s
        );
        // A counter going backwards is no events, not 2^64.
        let back = ThrashRates::between(&cg(THRASH_T12), &cg(THRASH_T11), S(1));
        assert_eq!(back.refault_file_pages_per_s, 0.0);
        // Anon refaults bring the anon LRU into the working set.
        let mut a = counters(0, 100);
        a.anon_lru_pages = 300;
        let mut b = counters(0, 100);
        b.refault_anon_pages = 401;
        assert_eq!(ThrashRates::between(&a, &b, S(1)).working_set_pages, 400);
        assert_eq!(ThrashRates::between(&a, &b, S(1)).refault_pct_per_s, 100.0);
        assert_eq!(
            ThrashRates::between(&a, &a, Duration::ZERO).refault_pct_per_s,
            0.0
        );
    }

    fn rule() -> ThrashRule {
        ThrashRule {
            refault_pct_per_s: 100.0,
            duration: S(5),
            window: S(1),
            min_refault_bytes_per_s: 1 << 20,
        }
    }

    /// Feeds one reading a second with `per_s` refaults against a 10 000-page cache; returns
    /// the first second at which the rule fired.
    fn first_fire(
        d: &mut ThrashDetector,
        rates: &[u64],
        swap: Option<&SwapExhausted>,
    ) -> Option<u64> {
        let mut refaults = 0;
        for (t, per_s) in rates.iter().enumerate() {
            refaults += per_s;
            let v = d.observe(S(t as u64), counters(refaults, 10_000), swap);
            if v.fired.is_some() {
                return Some(t as u64);
            }
        }
        None
    }

    #[test]
    fn fires_only_after_the_duration_above() {
        let mut d = ThrashDetector::new(rule(), PAGE);
        // 20 000 refaults/s against 10 000 pages: 200 %/s. Windows close at 1..; above since 0.
        assert_eq!(
            first_fire(
                &mut d,
                &[0; 1]
                    .iter()
                    .chain(&[20_000; 10])
                    .copied()
                    .collect::<Vec<_>>(),
                None
            ),
            Some(5)
        );
        assert_eq!(d.last.fired, Some(ThrashReason::ThrashRefault));
        // One calm window resets the clock.
        let mut d = ThrashDetector::new(rule(), PAGE);
        let mut series = vec![0, 20_000, 20_000, 20_000, 20_000, 0];
        series.extend([20_000; 4]);
        assert_eq!(first_fire(&mut d, &series, None), None);
        // Below the percentage: never.
        let mut d = ThrashDetector::new(rule(), PAGE);
        assert_eq!(first_fire(&mut d, &[9_000; 30], None), None);
        // Above the percentage but below the absolute floor (a tiny cache): never.
        let mut d = ThrashDetector::new(rule(), PAGE);
        let mut refaults = 0;
        for t in 0..30 {
            refaults += 200; // 200 pages/s = 800 KiB/s < 1 MiB/s, against 100 pages = 200 %
            assert_eq!(d.observe(S(t), counters(refaults, 100), None).fired, None);
        }
    }

    #[test]
    fn readings_inside_a_window_extend_it_and_reset_forgets() {
        let mut d = ThrashDetector::new(rule(), PAGE);
        let mut refaults = 0;
        let mut fired_at = None;
        // Readings every 100 ms at 200 %/s.
        for i in 0..100u64 {
            refaults += 2_000;
            let v = d.observe(
                Duration::from_millis(i * 100),
                counters(refaults, 10_000),
                None,
            );
            if let Some(r) = v.rates {
                assert!(r.window_ms >= 1000);
                assert!((r.refault_pct_per_s - 200.0).abs() < 0.1, "{r:?}");
            }
            if v.fired.is_some() && fired_at.is_none() {
                fired_at = Some(i * 100);
            }
        }
        assert_eq!(fired_at, Some(5_000));
        d.reset();
        assert_eq!(
            d.observe(S(20), counters(refaults, 10_000), None).fired,
            None
        );
    }

    #[test]
    fn swap_exhausted_lowers_the_bar() {
        let mem =
            parse_meminfo(b"MemTotal: 1000 kB\nSwapTotal: 1000 kB\nSwapFree: 50 kB\n").unwrap();
        let swap = swap_exhausted(&mem, &[], 10.0, 95.0).unwrap();
        assert_eq!(swap.reason().code(), "swap-full");
        // 300 pages/s (1.2 MiB/s, above the floor) against 10 000 pages = 3 %/s: not thrashing
        // by itself, but with swap gone it fires after the duration, as swap-full.
        let mut d = ThrashDetector::new(rule(), PAGE);
        assert_eq!(first_fire(&mut d, &[300; 30], None), None);
        let mut d = ThrashDetector::new(rule(), PAGE);
        assert_eq!(first_fire(&mut d, &[300; 30], Some(&swap)), Some(5));
        assert_eq!(d.last.fired, Some(ThrashReason::SwapFull));
        // No refaults and no direct reclaim: swap being full alone is not thrashing.
        let mut d = ThrashDetector::new(rule(), PAGE);
        assert_eq!(first_fire(&mut d, &[0; 30], Some(&swap)), None);
        // Direct reclaim counts.
        let mut d = ThrashDetector::new(rule(), PAGE);
        let mut fired = None;
        for t in 0..10 {
            let mut c = counters(0, 10_000);
            c.direct_reclaim_stalls = t * 3;
            fired = fired.or(d.observe(S(t), c, Some(&swap)).fired);
        }
        assert_eq!(fired, Some(ThrashReason::SwapFull));
    }

    #[test]
    fn swap_exhausted_by_meminfo_and_zram() {
        let mem = |total: u64, free: u64| {
            parse_meminfo(
                format!("MemTotal: 1000 kB\nSwapTotal: {total} kB\nSwapFree: {free} kB\n")
                    .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(swap_exhausted(&mem(0, 0), &[], 10.0, 95.0), None);
        assert_eq!(swap_exhausted(&mem(1000, 500), &[], 10.0, 95.0), None);
        assert!(matches!(
            swap_exhausted(&mem(1000, 100), &[], 10.0, 95.0),
            Some(SwapExhausted::Swap { free_pct }) if free_pct == 10.0
        ));
        // The 6.18 zram device capped by mem_limit: swap looks half free, zram is full.
        let dev = ZramDevice {
            name: "zram0".into(),
            disksize_bytes: parse_disksize(include_bytes!(
                "../tests/fixtures/host/zram-disksize-64M-6.18.txt"
            ))
            .unwrap(),
            mm: parse_mm_stat(include_bytes!(
                "../tests/fixtures/host/zram-mm_stat-mem_limit-6.18.txt"
            ))
            .unwrap(),
        };
        let s = swap_exhausted(&mem(1000, 500), std::slice::from_ref(&dev), 10.0, 95.0).unwrap();
        assert_eq!(s.reason().code(), "zram-full");
        assert!(matches!(s, SwapExhausted::Zram { ref device, .. } if device == "zram0"));
        assert_eq!(ThrashReason::ThrashRefault.code(), "thrash-refault");
    }
}
