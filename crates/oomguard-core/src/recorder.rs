//! The flight recorder (pure): the daemon's last minute of readings, kept in memory allocated
//! once, and written out as a compact series on every kill event and every kernel OOM event the
//! daemon sees live, so the event says what led up to it: how MemAvailable, swap, PSI and each
//! guarded cgroup's usage moved, who grew, and when the first trigger fired.
//!
//! The borders: the daemon (`watch/daemon/record.rs` in the `oomguard` crate) hands in the
//! readings its loop already took; nothing here reads a file. The steady-state path
//! ([`Recorder::due`], [`Recorder::begin`], [`Recorder::cgroup`], [`Recorder::end`],
//! [`Recorder::note_trigger`], [`Recorder::set_growers`]) only writes into the ring, the
//! per-guard columns and the fixed grower slots sized in [`Recorder::new`] (and the columns
//! again in [`Recorder::assign`] at start and rescans): it never allocates. Building the
//! [`Recording`] for an event ([`Recorder::recording`]) allocates, once per event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};

use crate::event::Grower;
use crate::units::format_bytes;

/// Most samples one ring holds (an hour at 1 s): bounds the daemon's memory whatever the
/// config says.
pub const MAX_SAMPLES: usize = 3600;

/// The shortest sample interval: the loop may read every millisecond under a fast fill, but a
/// series finer than this says nothing a person reads, and costs ring memory.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Growers kept (and shown). The same count as a forecast names.
pub const GROWERS: usize = 5;

/// Bytes of a grower's name kept: `comm` is at most 15 bytes (`TASK_COMM_LEN` 16 with its NUL).
pub const NAME_BYTES: usize = 16;

/// Guarded cgroups recorded at least (more when more are guarded at start); a cgroup guarded
/// later finds a free column or is not recorded (said once in the log).
pub const MIN_CGROUP_SLOTS: usize = 16;

/// The `[recorder]` table of the config.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    /// How much history an event carries; `"0s"` turns the recorder off.
    #[serde(deserialize_with = "de_duration")]
    pub span: Duration,
    /// The time between two samples.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        // The minute before a kill is what people ask about (issue 14); one sample a second is
        // finer than PSI's shortest average (avg10) and a fill a person could act on.
        RecorderConfig {
            span: Duration::from_secs(60),
            interval: Duration::from_secs(1),
        }
    }
}

impl RecorderConfig {
    /// Samples the ring holds: `span / interval`, rounded up; 0 when off.
    pub fn capacity(&self) -> usize {
        if self.span.is_zero() || self.interval.is_zero() {
            return 0;
        }
        let n = self.span.as_nanos().div_ceil(self.interval.as_nanos());
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Checks what the types cannot: an interval the loop can keep and a ring of bounded size.
    pub fn validate(&self) -> Result<(), String> {
        if self.span.is_zero() {
            return Ok(());
        }
        if self.interval < MIN_INTERVAL {
            return Err(format!(
                "recorder.interval: {:?} is shorter than {MIN_INTERVAL:?}",
                self.interval
            ));
        }
        if self.interval > self.span {
            return Err(format!(
                "recorder.interval: {:?} is longer than recorder.span ({:?})",
                self.interval, self.span
            ));
        }
        if self.capacity() > MAX_SAMPLES {
            return Err(format!(
                "recorder: span {:?} at interval {:?} is {} samples, more than {MAX_SAMPLES}",
                self.span,
                self.interval,
                self.capacity()
            ));
        }
        Ok(())
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::size::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// One sample of the machine. PSI is `NaN` when the loop did not read it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    at: Instant,
    mem_available_bytes: u64,
    swap_free_bytes: u64,
    psi_some_avg10_pct: f32,
    psi_full_avg10_pct: f32,
}

/// Marks a cgroup column's cell with no reading.
const NONE: u64 = u64::MAX;

/// One grower in fixed storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GrowerSlot {
    pid: i64,
    rss_bytes: u64,
    growth_bytes: Option<i64>,
    name: [u8; NAME_BYTES],
    name_len: u8,
}

impl GrowerSlot {
    const EMPTY: GrowerSlot = GrowerSlot {
        pid: 0,
        rss_bytes: 0,
        growth_bytes: None,
        name: [0; NAME_BYTES],
        name_len: 0,
    };

    fn name(&self) -> String {
        String::from_utf8_lossy(&self.name[..usize::from(self.name_len)]).into_owned()
    }
}

/// The ring. See the module docs.
#[derive(Debug, Clone)]
pub struct Recorder {
    interval: Duration,
    span: Duration,
    /// Samples, oldest at `head` once full; its capacity never changes.
    rows: Vec<Row>,
    head: usize,
    /// Column labels (guarded cgroup paths); `None`: a free column.
    labels: Vec<Option<String>>,
    /// `rows.capacity() * labels.len()` cells: row `r`'s column `c` at `r * labels.len() + c`.
    usage: Vec<u64>,
    /// The row [`Recorder::begin`] opened this iteration, where [`Recorder::cgroup`] writes.
    open: Option<usize>,
    next_due: Option<Instant>,
    first_trigger: Option<Instant>,
    growers: [GrowerSlot; GROWERS],
    growers_len: usize,
}

impl Recorder {
    /// A ring for `cfg` with columns for at least `cgroups` guarded cgroups; `None` when the
    /// recorder is off (`span = "0s"`).
    pub fn new(cfg: &RecorderConfig, cgroups: usize) -> Option<Recorder> {
        let cap = cfg.capacity().min(MAX_SAMPLES);
        if cap == 0 {
            return None;
        }
        let slots = cgroups.max(MIN_CGROUP_SLOTS);
        Some(Recorder {
            interval: cfg.interval,
            span: cfg.span,
            rows: Vec::with_capacity(cap),
            head: 0,
            labels: vec![None; slots],
            usage: vec![NONE; cap * slots],
            open: None,
            next_due: None,
            first_trigger: None,
            growers: [GrowerSlot::EMPTY; GROWERS],
            growers_len: 0,
        })
    }

    /// Samples the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.rows.capacity()
    }

    /// Samples held now.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Gives the guarded cgroups `labels` a column each: a label that had one keeps it (and its
    /// history), a column whose label is gone is freed and cleared, a new label takes a free
    /// column (cleared). Returns the labels that found no free column. Called at start and
    /// after each rescan (which allocates anyway), never in the steady loop.
    pub fn assign<'a>(&mut self, labels: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
        let n = self.labels.len();
        for c in 0..n {
            let keep = self.labels[c]
                .as_deref()
                .is_some_and(|l| labels.clone().any(|x| x == l));
            if !keep && self.labels[c].is_some() {
                self.labels[c] = None;
                self.clear_column(c);
            }
        }
        let mut unplaced = Vec::new();
        for l in labels {
            if self.slot_of(l).is_some() {
                continue;
            }
            match self.labels.iter().position(Option::is_none) {
                Some(c) => {
                    self.labels[c] = Some(l.to_owned());
                    self.clear_column(c);
                }
                None => unplaced.push(l.to_owned()),
            }
        }
        unplaced
    }

    fn clear_column(&mut self, c: usize) {
        let n = self.labels.len();
        for cell in self.usage.iter_mut().skip(c).step_by(n) {
            *cell = NONE;
        }
    }

    /// The column of a guarded cgroup's label.
    pub fn slot_of(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l.as_deref() == Some(label))
    }

    /// Whether a sample is due at `now` (the first reading always is).
    pub fn due(&self, now: Instant) -> bool {
        self.next_due.is_none_or(|d| now >= d)
    }

    /// Starts a sample with the machine's reading (PSI `None` when the loop did not read it);
    /// [`Recorder::cgroup`] adds the guarded cgroups' until [`Recorder::end`]. Overwrites the
    /// oldest sample once the ring is full.
    pub fn begin(
        &mut self,
        now: Instant,
        mem_available_bytes: u64,
        swap_free_bytes: u64,
        psi_some_avg10_pct: Option<f64>,
        psi_full_avg10_pct: Option<f64>,
    ) {
        let row = Row {
            at: now,
            mem_available_bytes,
            swap_free_bytes,
            psi_some_avg10_pct: psi_some_avg10_pct.map_or(f32::NAN, |v| v as f32),
            psi_full_avg10_pct: psi_full_avg10_pct.map_or(f32::NAN, |v| v as f32),
        };
        let r = if self.rows.len() < self.rows.capacity() {
            self.rows.push(row);
            self.rows.len() - 1
        } else {
            let r = self.head;
            self.rows[r] = row;
            self.head = (r + 1) % self.rows.len();
            r
        };
        let n = self.labels.len();
        for cell in &mut self.usage[r * n..(r + 1) * n] {
            *cell = NONE;
        }
        self.open = Some(r);
        // From the due time, not from now: a loop that wakes a little late keeps the cadence.
        let base = self
            .next_due
            .filter(|d| now < *d + self.interval)
            .unwrap_or(now);
        self.next_due = Some(base + self.interval);
    }

    /// A guarded cgroup's usage, into the sample [`Recorder::begin`] opened (nothing when none
    /// is open or the column does not exist).
    pub fn cgroup(&mut self, slot: usize, usage_bytes: u64) {
        let n = self.labels.len();
        if let Some(r) = self.open.filter(|_| slot < n) {
            self.usage[r * n + slot] = usage_bytes;
        }
    }

    /// Whether a sample is open (between [`Recorder::begin`] and [`Recorder::end`]).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Closes the sample of this iteration.
    pub fn end(&mut self) {
        self.open = None;
    }

    /// A trigger fired at `now`: kept as the first trigger unless an earlier one is still
    /// within the span (so the recording says when this episode's first trigger fired).
    pub fn note_trigger(&mut self, now: Instant) {
        let recent = self
            .first_trigger
            .is_some_and(|t| now.saturating_duration_since(t) <= self.span);
        if !recent {
            self.first_trigger = Some(now);
        }
    }

    /// Keeps `growers` (the first [`GROWERS`]; names cut at [`NAME_BYTES`] on a character
    /// boundary) for the next recordings that are not given their own. Allocates nothing.
    pub fn set_growers(&mut self, growers: &[Grower]) {
        self.growers_len = 0;
        for (slot, g) in self.growers.iter_mut().zip(growers) {
            let mut end = g.name.len().min(NAME_BYTES);
            while !g.name.is_char_boundary(end) {
                end -= 1;
            }
            let mut name = [0u8; NAME_BYTES];
            name[..end].copy_from_slice(&g.name.as_bytes()[..end]);
            *slot = GrowerSlot {
                pid: g.pid,
                rss_bytes: g.rss_bytes,
                growth_bytes: g.growth_bytes,
                name,
                name_len: end as u8,
            };
            self.growers_len += 1;
        }
    }

    /// The samples oldest first, as `(row index, row)`.
    fn ordered(&self) -> impl Iterator<Item = (usize, &Row)> {
        let n = self.rows.len();
        (0..n).map(move |i| {
            let r = (self.head + i) % n;
            (r, &self.rows[r])
        })
    }

    /// The series for an event at `now` (times in seconds before it: `<= 0`), with `growers`
    /// when the caller has fresher ones (a kill's own scan), else the kept ones. Allocates:
    /// for event building only.
    pub fn recording(&self, now: Instant, growers: Option<Vec<Grower>>) -> Recording {
        let rel = |t: Instant| -> f64 {
            let s = if t <= now {
                -now.duration_since(t).as_secs_f64()
            } else {
                t.duration_since(now).as_secs_f64()
            };
            // `+ 0.0`: the event's own instant is `0`, not `-0`.
            (s * 1000.0).round() / 1000.0 + 0.0
        };
        let pct = |v: f32| -> Option<f64> {
            (!v.is_nan()).then(|| (f64::from(v) * 100.0).round() / 100.0)
        };
        let n = self.labels.len();
        let mut rec = Recording {
            interval_s: self.interval.as_secs_f64(),
            span_s: self.span.as_secs_f64(),
            first_trigger_s: self
                .first_trigger
                .filter(|t| now.saturating_duration_since(*t) <= self.span)
                .map(rel),
            growers: growers.unwrap_or_else(|| {
                self.growers[..self.growers_len]
                    .iter()
                    .map(|g| Grower {
                        pid: g.pid,
                        name: g.name(),
                        rss_bytes: g.rss_bytes,
                        growth_bytes: g.growth_bytes,
                    })
                    .collect()
            }),
            ..Recording::default()
        };
        for (r, row) in self.ordered() {
            rec.t_s.push(rel(row.at));
            rec.mem_available_bytes.push(row.mem_available_bytes);
            rec.swap_free_bytes.push(row.swap_free_bytes);
            rec.psi_some_avg10.push(pct(row.psi_some_avg10_pct));
            rec.psi_full_avg10.push(pct(row.psi_full_avg10_pct));
            for (c, label) in self.labels.iter().enumerate() {
                if let Some(l) = label {
                    let v = self.usage[r * n + c];
                    rec.cgroups
                        .entry(l.clone())
                        .or_default()
                        .push((v != NONE).then_some(v));
                }
            }
        }
        // A cgroup guarded since the last sample (no cell yet) has no series to show.
        rec.cgroups.retain(|_, v| v.iter().any(Option::is_some));
        rec
    }
}

/// What an event carries: the recorder's series, oldest first, every series as long as `t_s`.
/// `docs/event-schema.md` ("Flight recorder") is its contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recording {
    /// The configured time between samples, and the span the ring holds.
    pub interval_s: f64,
    pub span_s: f64,
    /// Each sample's time, in seconds relative to the event (negative: before it).
    pub t_s: Vec<f64>,
    pub mem_available_bytes: Vec<u64>,
    pub swap_free_bytes: Vec<u64>,
    /// PSI memory avg10 in percent; `null` where the daemon did not read PSI.
    pub psi_some_avg10: Vec<Option<f64>>,
    pub psi_full_avg10: Vec<Option<f64>>,
    /// Each guarded cgroup's usage (the path as configured matched it); `null` where it was
    /// not read in that sample (not guarded yet, or unreadable).
    pub cgroups: BTreeMap<String, Vec<Option<u64>>>,
    /// The top growers by resident-memory change (largest first): a kill's own scan against
    /// the forecast's baseline (kernel events: the last forecast's growers); `growth_bytes` is `null` for
    /// a process that was not in the baseline.
    pub growers: Vec<Grower>,
    /// When the first trigger of this episode fired, relative to the event; `null` when none
    /// fired within the span (a kernel kill oomguard did not see coming).
    pub first_trigger_s: Option<f64>,
}

fn pct(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Recording {
    /// One line for people: `last 60 s: MemAvailable 3.10 GiB → 210 MiB, PSI some 0 → 38 %,
    /// cgroup /app 12 MiB → 240 MiB, grew: java +1.2 GiB; first trigger 2.0 s before`.
    /// `None` when nothing was recorded. Names are passed through: the caller makes them
    /// printable for its medium.
    pub fn summary(&self) -> Option<String> {
        let (first_t, last_t) = (*self.t_s.first()?, *self.t_s.last()?);
        let first_mem = *self.mem_available_bytes.first()?;
        let last_mem = *self.mem_available_bytes.last()?;
        let span = (last_t - first_t).max(0.0);
        let mut parts = vec![format!(
            "MemAvailable {} → {}",
            format_bytes(first_mem),
            format_bytes(last_mem)
        )];
        let psi: Vec<f64> = self.psi_some_avg10.iter().flatten().copied().collect();
        if let (Some(a), Some(b)) = (psi.first(), psi.last()) {
            let peak = psi.iter().copied().fold(f64::MIN, f64::max);
            let mut p = format!("PSI some {} → {} %", pct(*a), pct(*b));
            if peak > b.max(*a) + 0.5 {
                p.push_str(&format!(" (peak {} %)", pct(peak)));
            }
            parts.push(p);
        }
        if let (Some(a), Some(b)) = (self.swap_free_bytes.first(), self.swap_free_bytes.last()) {
            if a != b {
                parts.push(format!(
                    "swap free {} → {}",
                    format_bytes(*a),
                    format_bytes(*b)
                ));
            }
        }
        for (path, series) in &self.cgroups {
            let first = series.iter().find_map(|v| *v);
            if let (Some(a), Some(b)) = (first, series.iter().rev().find_map(|v| *v)) {
                parts.push(format!(
                    "cgroup {path} {} → {}",
                    format_bytes(a),
                    format_bytes(b)
                ));
            }
        }
        let grew: Vec<String> = self
            .growers
            .iter()
            .take(3)
            .map(|g| match g.growth_bytes {
                Some(d) if d >= 0 => format!("{} +{}", g.name, format_bytes(d as u64)),
                Some(d) => format!("{} -{}", g.name, format_bytes(d.unsigned_abs())),
                None => format!("{} at {}", g.name, format_bytes(g.rss_bytes)),
            })
            .collect();
        if !grew.is_empty() {
            parts.push(format!("grew: {}", grew.join(", ")));
        }
        let mut line = format!("last {} s: {}", span.round(), parts.join(", "));
        if let Some(t) = self.first_trigger_s {
            line.push_str(&format!("; first trigger {:.1} s before", -t));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests;
