//! Kernel OOM reports in logs → [`OomEvent`]s, streaming.
//!
//! Feed physical lines to [`Parser::push`] in order, take finished events with
//! [`Parser::drain_ready`], call [`Parser::finish`] at the end. Memory stays bounded whatever the
//! input: lines are cut at [`MAX_LINE_BYTES`], a task dump keeps at most [`MAX_TASK_ROWS`] rows
//! per event, at most [`MAX_HOSTS`] interleaved hosts have an open report, and finished events
//! wait for their `oom_reaper` line in a queue of at most [`MAX_PENDING`]; a report's memory dump
//! keeps at most [`meminfo::MAX_ZONES`] zones, [`meminfo::MAX_HUGE_POOLS`] huge page pools and
//! [`meminfo::MAX_SLAB_ROWS`] slab caches (its counters are fixed-size).
//!
//! The rules that make events right (see `docs/event-schema.md`):
//! - a report is assembled per host, so interleaved hosts in one syslog never mix;
//! - a header belongs to the kill that follows it, never to an earlier one;
//! - after a kill the report is closed, except for `memory.oom.group` kills and the ≤2.6.19
//!   "and children" form, where several `Killed process` lines belong to one report;
//! - a report whose kill line never comes (truncated, rate-limited) becomes an `incomplete` event
//!   with what it showed;
//! - a wrapped line (a prefixed line followed by one without any prefix, as terminals and mail
//!   clients break them) is rejoined before it is read;
//! - a record seen twice (the same text with the same stamp, as duplicated syslog forwarding
//!   writes it) is read once;
//! - a report without header or kill line still becomes an `incomplete` event when it shows
//!   facts of its own (a selection, a summary, memcg usage or stats);
//! - a newest-first log (`journalctl -r`, log-search exports) is recognised from the first
//!   report's stamps and line order, and each report is put back in order before it is read.
//!
//! The stages, in order: transport prefixes ([`prefix`]; journal JSON records in `journal.rs`)
//! → rejoining wrapped lines → duplicates → order (`order.rs`) → the OOM grammar ([`lines`],
//! memory dumps in [`meminfo`]) → assembly per host (`assemble.rs`).

/// `find!(hay, "needle")`: `hay.find("needle")` with the searcher built once per call site.
/// `str::find` builds a Two-Way searcher on every call; with a dozen searches per line that was
/// the largest single cost of reading report lines (a third of the parser's time in the 1 GiB
/// bench log). Byte offsets equal `str::find`'s: a match of an ASCII needle starts on a char
/// boundary. Defined before the submodules so that they can use it.
macro_rules! find {
    ($hay:expr, $needle:literal) => {{
        static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new($needle));
        FINDER.find(($hay).as_bytes())
    }};
}

mod assemble;
mod journal;
pub mod lines;
pub mod meminfo;
mod order;
mod prefilter;
pub mod prefix;

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::event::OomEvent;
use assemble::Report;
use lines::Line;
use order::{Order, Probe};
pub use prefilter::{Prefilter, Search, TRIGGERS};
use prefix::{Meta, Stripped};

/// Longest physical line read; the rest of a longer line is ignored (no kernel record is longer
/// than 1 KiB; pasted joins of a few dozen records fit).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Task dump rows kept per event (the rest are counted in `tasks_dropped`).
pub const MAX_TASK_ROWS: usize = 4096;
/// Hosts with an open report at the same time (an aggregated syslog).
pub const MAX_HOSTS: usize = 16;
/// Finished events held back for a late `oom_reaper` line.
pub const MAX_PENDING: usize = 32;
/// A report that sees no OOM line for this many lines of its host is stale: it is closed.
const STALE_LINES: u64 = 5000;
/// Records held while the order of the input is not yet known; then the input is taken as
/// oldest-first. A report's first records settle it (a header first, or stamps that rise).
const PROBE_MAX: usize = 256;
/// Records of one report of a newest-first log held until its header (the report's first line,
/// so the last one read) comes: a full task dump and its memory lines fit.
const CHUNK_MAX: usize = MAX_TASK_ROWS + 1024;
/// Recent stamped records remembered to drop duplicates. Small on purpose: forwarding writes a
/// duplicate right after the original (or interleaves two copies line by line), while the
/// kernel itself prints a memory.oom.group victim a second time a few kill lines later.
const RECENT: usize = 3;

/// The owned form of [`Meta`], for records held across lines.
#[derive(Debug, Clone, Default)]
struct OwnedMeta {
    time: Option<String>,
    host: Option<String>,
    kernel_time_s: Option<f64>,
    prefixed: bool,
}

impl OwnedMeta {
    fn from_meta(m: &Meta<'_>) -> Self {
        OwnedMeta {
            time: m.time.map(str::to_owned),
            host: m.host.map(str::to_owned),
            kernel_time_s: m.kernel_time_s,
            prefixed: m.prefixed,
        }
    }
}

/// A complete record (wrapped lines rejoined), owned while the input's order is unknown or
/// while a report of a newest-first log is being collected.
#[derive(Debug)]
struct Rec {
    text: String,
    meta: OwnedMeta,
    line_no: u64,
}

/// A record whose line might continue on the next physical line.
#[derive(Debug)]
struct Held {
    text: String,
    meta: OwnedMeta,
    line_no: u64,
}

/// The streaming parser. See the module docs.
#[derive(Debug, Default)]
pub struct Parser {
    reports: Vec<Report>,
    pending: VecDeque<OomEvent>,
    ready: Vec<OomEvent>,
    held: Option<Held>,
    lines_seen: u64,
    order: Order,
    probe: Probe,
    /// Newest-first input: the records of the report being collected, newest first.
    chunk: Vec<Rec>,
    chunk_last_line: u64,
    recent: [u64; RECENT],
    recent_at: usize,
    /// Task rows just before the line being pushed that the caller skipped (see
    /// [`Parser::push_context`]).
    context: Vec<Rec>,
    /// The last context line was a row (a following unprefixed line may be its wrapped tail).
    context_joinable: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a report is open or a record is held: then every line matters (task dump
    /// rows, memcg lines, wrapped continuations carry no trigger word). Otherwise only lines
    /// containing one of [`TRIGGERS`] need to be pushed.
    pub fn wants_every_line(&self) -> bool {
        self.held.is_some()
            || !self.reports.is_empty()
            || !self.probe.recs.is_empty()
            || !self.chunk.is_empty()
    }

    /// Physical lines pushed so far (including ones the caller skipped, via `line_no`).
    pub fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    /// Offers a line the caller skipped while no report was open, just before the line it is
    /// about to push (a task dump row carries no trigger word). Only task dump rows are kept, and
    /// only for the next record: they join its report when that record is a selection, summary
    /// or kill whose report has no header in the excerpt (`grep -B`, pastes that start mid-dump),
    /// so the victim's uid and oom_score_adj can be read from its row.
    pub fn push_context(&mut self, line: &[u8], line_no: u64) {
        if self.context.len() >= 64 {
            return;
        }
        let line = &line[..line.len().min(MAX_LINE_BYTES)];
        let text = String::from_utf8_lossy(line);
        // Nearly every skipped line is an ordinary log line: unless it may continue a row kept
        // just before, it only matters if it can be a row, which shows as `[digits]` somewhere.
        if !self.context_joinable && !may_hold_task_row(&text) {
            return;
        }
        if let Stripped::Kernel(meta, body) = prefix::strip(&text) {
            // A row wrapped by a terminal: its tail has no prefix.
            if let Some(last) = self.context.last_mut().filter(|_| self.context_joinable) {
                if !meta.prefixed
                    && body.bytes().any(|b| b.is_ascii_alphanumeric())
                    && lines::classify(body).is_none()
                {
                    join_wrapped(&mut last.text, body);
                    return;
                }
            }
            self.context_joinable = matches!(lines::classify(body), Some(Line::TaskRow(_)));
            if self.context_joinable {
                self.context.push(Rec {
                    text: body.to_owned(),
                    meta: OwnedMeta::from_meta(&meta),
                    line_no,
                });
            }
        }
    }

    /// Feeds one physical line (without its newline), numbered from 1.
    pub fn push(&mut self, line: &[u8], line_no: u64) {
        self.lines_seen = self.lines_seen.max(line_no);
        let line = &line[..line.len().min(MAX_LINE_BYTES)];
        let mut text: Cow<'_, str> = String::from_utf8_lossy(line);
        // A quoted line that a mail archive rejoined after wrapping carries the quote marker
        // again where the wrap was (`> ... Kill process 7963 > (sge_qmaster) score 948`).
        if text.trim_start().starts_with('>') && find!(text.trim_start()[1..], " > ").is_some() {
            let lead = text.len() - text.trim_start().len() + 1;
            let joined = format!("{}{}", &text[..lead], text[lead..].replace(" > ", " "));
            text = Cow::Owned(joined);
        }
        if text.starts_with('{') {
            if let Some(j) = journal::Record::parse(&text) {
                if j.kernel {
                    let meta = Meta {
                        time: j.time.as_deref(),
                        host: j.host.as_deref(),
                        kernel_time_s: j.kernel_time_s,
                        prefixed: true,
                    };
                    for part in j.message.split('\n') {
                        self.record(&meta, part, line_no);
                    }
                }
                return;
            }
        }
        let points = prefix::split_points(&text);
        let mut start = 0;
        for end in points.iter().copied().chain(std::iter::once(text.len())) {
            let rec = &text[start..end];
            start = end;
            match prefix::strip(rec) {
                Stripped::Kernel(meta, body) => {
                    if find!(body, "\\x").is_some() && is_kmsg_record(rec) {
                        let unescaped = unescape_kmsg(body);
                        // A multi-line record (`\x0a`) is several lines, except a line naming a
                        // process: a comm may itself contain a newline, and must stay whole.
                        if names_a_process(&unescaped) {
                            self.record(&meta, &unescaped, line_no);
                        } else {
                            for part in unescaped.split('\n') {
                                self.record(&meta, part, line_no);
                            }
                        }
                    } else {
                        self.record(&meta, body, line_no);
                    }
                }
                Stripped::NotKernel(_) => self.release_held(),
            }
        }
        if self.order == Order::Unknown
            && !self.probe.recs.is_empty()
            && line_no.saturating_sub(self.probe.first_line) > STALE_LINES
        {
            self.decide(Order::Forward);
        }
        if !self.chunk.is_empty() && line_no.saturating_sub(self.chunk_last_line) > STALE_LINES {
            self.flush_chunk();
        }
        // Rows offered for a record still held (it may continue on the next line) wait for it.
        if self.held.is_none() {
            self.context.clear();
        }
        self.expire_stale(line_no);
    }

    /// Takes the events that are complete.
    pub fn drain_ready(&mut self, out: &mut Vec<OomEvent>) {
        out.append(&mut self.ready);
    }

    /// For a live source that has gone quiet (the daemon's /dev/kmsg follower): a held record
    /// is final (kmsg records are never wrapped), a report whose kill line came is closed, and
    /// finished events stop waiting for an `oom_reaper` line. Reports still waiting for their
    /// kill line stay open, so a report that arrives in two bursts is not cut in half.
    pub fn flush_complete(&mut self, out: &mut Vec<OomEvent>) {
        self.release_held();
        // A live source is oldest-first.
        if self.order == Order::Unknown && !self.probe.recs.is_empty() {
            self.decide(Order::Forward);
        }
        self.flush_chunk();
        let mut i = 0;
        while i < self.reports.len() {
            if self.reports[i].killed_any && !self.reports[i].multi_kill {
                self.reports.remove(i);
            } else {
                i += 1;
            }
        }
        self.ready.extend(self.pending.drain(..));
        out.append(&mut self.ready);
    }

    /// True when a report is open that has no kill line yet.
    pub fn has_open_report(&self) -> bool {
        self.reports.iter().any(|r| !r.killed_any)
            || !self.probe.recs.is_empty()
            || !self.chunk.is_empty()
    }

    /// Ends the input: every open report and pending event becomes ready.
    pub fn finish(&mut self, out: &mut Vec<OomEvent>) {
        self.release_held();
        if self.order == Order::Unknown && !self.probe.recs.is_empty() {
            let o = if self.probe.score <= -2 {
                Order::Reversed
            } else {
                Order::Forward
            };
            self.decide(o);
        }
        self.flush_chunk();
        for r in std::mem::take(&mut self.reports) {
            if r.is_unfinished() {
                self.pending.push_back(r.into_incomplete());
            }
        }
        self.ready.extend(self.pending.drain(..));
        out.append(&mut self.ready);
    }

    /// One record (prefixes stripped). Wrapped continuations are joined to the held record.
    fn record(&mut self, meta: &Meta<'_>, body: &str, line_no: u64) {
        if let Some(held) = &mut self.held {
            // An elision mark (`[...]`, `...`) is not wrapped text: it has no letter or digit.
            let continuation = !meta.prefixed
                && held.meta.prefixed
                && body.bytes().any(|b| b.is_ascii_alphanumeric())
                && lines::classify(body).is_none();
            if continuation {
                // Terminals cut mid-token and keep no space; mail clients cut at a space and
                // often drop it. The line parsers tolerate a missing space, so join without one
                // unless the continuation itself starts with whitespace. A copied terminal pads
                // the cut line with spaces to its width (`pgtables:690      ` + `68kB`): two or
                // more trailing spaces are padding, not text.
                join_wrapped(&mut held.text, body);
                return;
            }
        }
        self.release_held();
        let Some(kind) = lines::classify(body) else {
            return;
        };
        if is_continuable(&kind) && meta.prefixed {
            self.held = Some(Held {
                text: body.to_owned(),
                meta: OwnedMeta::from_meta(meta),
                line_no,
            });
            return;
        }
        let owned = OwnedMeta::from_meta(meta);
        self.complete(kind, &owned, body, line_no);
    }

    fn release_held(&mut self) {
        if let Some(h) = self.held.take() {
            if let Some(kind) = lines::classify(&h.text) {
                self.complete(kind, &h.meta, &h.text, h.line_no);
            }
        }
    }

    /// One complete record: dropped if it is a duplicate, then read now (oldest-first input),
    /// or held until the order is known, or collected with its report (newest-first input).
    fn complete(&mut self, kind: Line<'_>, meta: &OwnedMeta, text: &str, line_no: u64) {
        if self.is_duplicate(&kind, meta, text) {
            return;
        }
        if !self.context.is_empty() {
            let ctx = std::mem::take(&mut self.context);
            let wants_rows = matches!(kind, Line::Select(_) | Line::Summary(_) | Line::Killed(_))
                && self.order != Order::Reversed
                && !self.reports.iter().any(|r| r.host == meta.host);
            if wants_rows {
                for r in ctx.into_iter().filter(|r| r.meta.host == meta.host) {
                    if let Some(row) = lines::classify(&r.text) {
                        self.apply(row, &r.meta, r.line_no);
                    }
                }
            }
        }
        match self.order {
            Order::Forward => self.apply(kind, meta, line_no),
            Order::Unknown => {
                let header = matches!(kind, Line::Header(_));
                if header && self.probe.recs.is_empty() {
                    // A report that starts with its header: the log runs oldest-first (the
                    // common case, decided without holding anything).
                    self.order = Order::Forward;
                    self.apply(kind, meta, line_no);
                    return;
                }
                self.observe(&kind, meta);
                if self.probe.recs.is_empty() {
                    self.probe.first_line = line_no;
                }
                self.probe.recs.push(Rec {
                    text: text.to_owned(),
                    meta: meta.clone(),
                    line_no,
                });
                if self.probe.score >= 2 {
                    self.decide(Order::Forward);
                } else if self.probe.score <= -2 {
                    self.decide(Order::Reversed);
                } else if self.probe.recs.len() >= PROBE_MAX {
                    self.decide(Order::Forward);
                }
            }
            Order::Reversed => {
                let header = matches!(kind, Line::Header(_));
                self.collect(Rec {
                    text: text.to_owned(),
                    meta: meta.clone(),
                    line_no,
                });
                if header {
                    self.flush_chunk();
                }
            }
        }
    }

    /// Drops the same record seen again. Only records that carry a stamp are compared: with a
    /// stamp, the same text is the same record; without one, a repeated line may be a real
    /// repeat (2.6.2x printed `Killed process N` again for the same pid). Second-resolution
    /// syslog stamps count only for lines naming a process: memory dump lines (`lowmem_reserve[]:
    /// 0 0 0`) legitimately repeat within a second.
    fn is_duplicate(&mut self, kind: &Line<'_>, meta: &OwnedMeta, text: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let names_process = matches!(
            kind,
            Line::Header(_)
                | Line::Select(_)
                | Line::Summary(_)
                | Line::Killed(_)
                | Line::Reaped(_)
                | Line::TaskRow(_)
        );
        let stamped = meta.kernel_time_s.is_some() || (meta.time.is_some() && names_process);
        if !stamped {
            return false;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.trim().hash(&mut h);
        meta.time.hash(&mut h);
        meta.kernel_time_s.map(f64::to_bits).hash(&mut h);
        meta.host.hash(&mut h);
        // 0 marks an empty slot.
        let key = h.finish().max(1);
        if self.recent.contains(&key) {
            return true;
        }
        self.recent[self.recent_at % RECENT] = key;
        self.recent_at = self.recent_at.wrapping_add(1);
        false
    }
}

/// Appends a wrapped line's continuation. A copied terminal pads the cut line with spaces to its
/// width (`pgtables:690      ` + `68kB`): two or more trailing spaces are padding, not text.
fn join_wrapped(text: &mut String, body: &str) {
    let kept = text.trim_end_matches(' ').len();
    if text.len() - kept >= 2 {
        text.truncate(kept);
    }
    if body.starts_with([' ', '\t']) && !text.ends_with(' ') {
        text.push(' ');
    }
    text.push_str(body.trim());
}

fn is_continuable(l: &Line<'_>) -> bool {
    matches!(
        l,
        Line::Header(_)
            | Line::TaskRow(_)
            | Line::Summary(_)
            | Line::Select(_)
            | Line::Killed(_)
            | Line::TaskIn { .. }
            | Line::Usage { .. }
            | Line::Reaped(_)
    )
}

fn names_a_process(text: &str) -> bool {
    [
        "ill process ",
        "illed process ",
        "oom-kill:",
        " invoked oom-killer:",
        "oom_reaper: ",
        "cpuset=",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Whether some `[` in `text` is followed, up to the next `]`, by digits between optional
/// whitespace: what a task dump row (`lines::classify`'s `TaskRow`) starts with once its prefixes
/// are stripped. False means `text` is no row whatever its prefixes. Linear: for each `]`, only
/// the last `[` before it can enclose nothing but digits.
fn may_hold_task_row(text: &str) -> bool {
    let b = text.as_bytes();
    let mut from = 0;
    for close in memchr::memchr_iter(b']', b) {
        if let Some(open) = memchr::memrchr(b'[', &b[from..close]) {
            let inner = text[from + open + 1..close].trim();
            if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit()) {
                return true;
            }
        }
        from = close + 1;
    }
    false
}

fn is_kmsg_record(rec: &str) -> bool {
    rec.split(';')
        .next()
        .is_some_and(|h| h.bytes().filter(|b| *b == b',').count() >= 3)
}

/// /dev/kmsg escapes control characters and `\` as `\xNN`; a multi-line record shows `\x0a`.
pub fn unescape_kmsg(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1] == b'x' {
            let hex = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
