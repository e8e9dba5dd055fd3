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
//! The stages, in order: transport prefixes ([`prefix`]) → rejoining wrapped lines →
//! duplicates → order → the OOM grammar ([`lines`]) → assembly per host.

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

pub mod lines;
pub mod meminfo;
pub mod prefix;

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::event::{EventKind, OomEvent, Reaped, TaskRow};
use lines::{Column, Counter, Line};
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

/// Substrings of which a line must contain one to open or close a report. Any other line matters
/// only while a report is open ([`Parser::wants_every_line`]). Kept short and distinctive so the
/// byte scan over a large log is fast; checked against every format in `kernel-oom-formats.md`.
pub const TRIGGERS: [&str; 10] = [
    "oom-",
    "oom_",
    "oom.",
    // "Kill process"/"kill process" (≤5.0 selection) and "Killed process": the latter does not
    // contain the former ("Kill-ed process").
    "ill process",
    "illed process",
    "ut of memory",
    "ut of Memory",
    "No available memory",
    // memcg report lines that may stand alone in an excerpt (no header, no kill line).
    "s a result of limit of",
    "emory cgroup stats for",
];

/// Finds the next line worth pushing while no report is open: a SIMD multi-substring search
/// (aho-corasick's Teddy) over a whole buffer, so unrelated lines cost a few bytes' scan each.
#[derive(Debug)]
pub struct Prefilter {
    ac: Option<aho_corasick::AhoCorasick>,
}

impl Prefilter {
    pub fn new() -> Self {
        // Leftmost-first, not the default standard semantics: only leftmost match kinds get
        // aho-corasick's SIMD "Teddy" searcher; with standard semantics it fell back to a scan
        // 14x slower here (0.78 s vs 11 s over the 1 GiB bench log, same hits). Which pattern
        // matches does not matter to us, only where the first one starts. Building from a few
        // literals cannot fail; if it ever did, every line is checked.
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(TRIGGERS)
            .ok();
        Prefilter { ac }
    }

    /// Offset of the first trigger in `hay`, if any.
    pub fn find(&self, hay: &[u8]) -> Option<usize> {
        match &self.ac {
            Some(ac) => ac.find(hay).map(|m| m.start()),
            None => (!hay.is_empty()).then_some(0),
        }
    }
}

impl Default for Prefilter {
    fn default() -> Self {
        Self::new()
    }
}

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

/// Whether the input runs oldest-first (every kernel log as written) or newest-first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Order {
    #[default]
    Unknown,
    Forward,
    Reversed,
}

/// The previous record, as the order probe compares it: print rank, stamp, host, process.
type Seen = (u8, Option<f64>, Option<String>, Option<i64>);

/// What the records seen so far say about the order.
#[derive(Debug, Default)]
struct Probe {
    recs: Vec<Rec>,
    /// > 0: oldest-first, < 0: newest-first.
    score: i32,
    prev: Option<Seen>,
    first_line: u64,
}

/// A record whose line might continue on the next physical line.
#[derive(Debug)]
struct Held {
    text: String,
    meta: OwnedMeta,
    line_no: u64,
}

#[derive(Debug)]
struct Select {
    message: Option<String>,
    pid: i64,
    comm: String,
    score: Option<i64>,
}

/// A report being assembled for one host.
#[derive(Debug)]
struct Report {
    host: Option<String>,
    ctx: OomEvent,
    has_header: bool,
    header_meta: OwnedMeta,
    header_line: u64,
    columns: Option<Vec<Column>>,
    select: Option<Select>,
    summary_uid: Option<u64>,
    summary_pid: Option<i64>,
    /// Several kill lines belong to this report (oom.group, "and children").
    multi_kill: bool,
    killed_any: bool,
    /// Pids this report has already made a kill event for. With `memory.oom.group` the kernel
    /// prints the chosen victim's `Killed process` line a second time inside the group loop
    /// (mm/oom_kill.c: `oom_kill_memcg_member` -> `__oom_kill_process`, 6.1 and 6.12 seen in the
    /// VM lab): one process killed once is one event.
    killed_pids: Vec<i64>,
    last_activity: u64,
    /// The Mem-Info block and memcg stat dump seen so far.
    mem: meminfo::MemAcc,
    /// A selection, summary, memcg usage, `Task in` or stats line: worth an event even without
    /// header and kill line.
    facts: bool,
    /// The first line's stamps and number (an incomplete event without header shows these).
    first_meta: Option<(OwnedMeta, u64)>,
    /// The furthest point of the kernel's print order reached ([`print_rank`]).
    max_rank: u8,
    /// Task rows were read with columns inferred from the rows (no header in the excerpt).
    rows_inferred: bool,
}

impl Report {
    fn new(host: Option<String>, line_no: u64) -> Self {
        Report {
            host,
            ctx: OomEvent::new(EventKind::Kill),
            has_header: false,
            header_meta: OwnedMeta::default(),
            header_line: line_no,
            columns: None,
            select: None,
            summary_uid: None,
            summary_pid: None,
            multi_kill: false,
            killed_any: false,
            killed_pids: Vec::new(),
            last_activity: line_no,
            mem: meminfo::MemAcc::default(),
            facts: false,
            first_meta: None,
            max_rank: 0,
            rows_inferred: false,
        }
    }

    /// A report with content that deserves an event even without a kill line.
    fn is_unfinished(&self) -> bool {
        (self.has_header || self.facts) && !self.killed_any
    }

    fn into_incomplete(self) -> OomEvent {
        let mut ev = self.ctx;
        ev.kind = EventKind::Incomplete;
        let (meta, line) = match self.first_meta {
            Some(m) if !self.has_header => m,
            _ => (self.header_meta, self.header_line),
        };
        ev.host = self.host.or(meta.host);
        ev.time = meta.time;
        ev.kernel_time_s = meta.kernel_time_s;
        ev.line = Some(line);
        ev.memory = self.mem.finish(crate::diagnosis::page_bytes_inferred(&ev));
        if let Some(sel) = self.select {
            if self.summary_pid == Some(sel.pid) {
                ev.uid = self.summary_uid;
            }
            ev.selected_pid = Some(sel.pid);
            ev.selected_comm = Some(sel.comm);
            ev.score = sel.score;
            ev.message = sel.message;
        }
        fix_constraint(&mut ev);
        ev
    }
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

    /// Adds what one record says about the order to the probe: its stamp against the previous
    /// record's, and whether the pair is in the kernel's print order or the reverse of it.
    fn observe(&mut self, kind: &Line<'_>, meta: &OwnedMeta) {
        let Some(rank) = print_rank(kind) else {
            return;
        };
        let key = order_key(meta);
        let pid = match kind {
            Line::Killed(k) => Some(k.pid),
            Line::Select(s) => Some(s.pid),
            Line::Summary(s) => s.pid,
            Line::Reaped(r) => Some(r.pid),
            _ => None,
        };
        if let Some((prev_rank, prev_key, prev_host, prev_pid)) = &self.probe.prev {
            if prev_host == &meta.host {
                if let (Some(a), Some(b)) = (prev_key, key) {
                    if b > *a {
                        self.probe.score += 1;
                    } else if b < *a {
                        self.probe.score -= 1;
                    }
                }
                let same_process = pid.is_some() && *prev_pid == pid;
                self.probe.score += pair_order(*prev_rank, rank, same_process);
            }
        }
        self.probe.prev = Some((rank, key, meta.host.clone(), pid));
    }

    /// Fixes the order and reads the records held so far accordingly.
    fn decide(&mut self, order: Order) {
        self.order = order;
        let recs = std::mem::take(&mut self.probe.recs);
        for r in recs {
            match order {
                Order::Reversed => {
                    let header = matches!(lines::classify(&r.text), Some(Line::Header(_)));
                    self.collect(r);
                    if header {
                        self.flush_chunk();
                    }
                }
                _ => {
                    if let Some(kind) = lines::classify(&r.text) {
                        self.apply(kind, &r.meta, r.line_no);
                    }
                }
            }
        }
    }

    fn collect(&mut self, r: Rec) {
        self.chunk_last_line = r.line_no;
        self.chunk.push(r);
        if self.chunk.len() >= CHUNK_MAX {
            self.flush_chunk();
        }
    }

    /// Reads one collected report of a newest-first log oldest-first: reversed, then, when every
    /// record has a stamp, sorted by it (exports sorted by a coarser time leave records of the
    /// same second in any order; the sort is stable, so equal stamps keep the reversed order).
    fn flush_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let mut recs = std::mem::take(&mut self.chunk);
        recs.reverse();
        if recs.iter().all(|r| order_key(&r.meta).is_some()) {
            recs.sort_by(|a, b| {
                order_key(&a.meta)
                    .partial_cmp(&order_key(&b.meta))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        for r in recs {
            if let Some(kind) = lines::classify(&r.text) {
                self.apply(kind, &r.meta, r.line_no);
            }
        }
    }

    fn report_index(&mut self, host: &Option<String>, line_no: u64) -> usize {
        if let Some(i) = self.reports.iter().position(|r| &r.host == host) {
            return i;
        }
        if self.reports.len() >= MAX_HOSTS {
            let oldest = self.reports.remove(0);
            if oldest.is_unfinished() {
                self.push_event(oldest.into_incomplete());
            }
        }
        self.reports.push(Report::new(host.clone(), line_no));
        self.reports.len() - 1
    }

    /// Closes the host's report and opens a fresh one.
    fn restart(&mut self, i: usize, line_no: u64) {
        let host = self.reports[i].host.clone();
        let old = std::mem::replace(&mut self.reports[i], Report::new(host, line_no));
        if old.is_unfinished() {
            self.push_event(old.into_incomplete());
        }
    }

    fn apply(&mut self, line: Line<'_>, meta: &OwnedMeta, line_no: u64) {
        if let Line::Reaped(r) = &line {
            self.attach_reaper(r);
            return;
        }
        if let Line::InitPanic(reason) = &line {
            // Only an OOM consequence if this host's OOM killer just killed pid 1.
            let killed_init = self
                .pending
                .iter()
                .any(|e| e.host == meta.host && e.pid == Some(1) && e.kind == EventKind::Kill);
            if killed_init {
                let mut ev = OomEvent::new(EventKind::Panic);
                ev.message = Some((*reason).to_owned());
                ev.host = meta.host.clone();
                ev.time = meta.time.clone();
                ev.kernel_time_s = meta.kernel_time_s;
                ev.line = Some(line_no);
                self.push_event(ev);
            }
            return;
        }
        if let Line::Mem(m) = line {
            self.apply_mem(m, meta, line_no);
            return;
        }
        let i = self.report_index(&meta.host, line_no);
        // A kill closes the report; anything but another kill of a multi-kill report (and the
        // reaper, handled above) starts the next one.
        let after_kill = self.reports[i].killed_any;
        // `Tasks in X are going to be killed due to memory.oom.group set` comes right after the
        // first victim's kill line (mm/oom_kill.c: __oom_kill_process, then the group).
        let continues_kill = (matches!(line, Line::Killed(_)) && self.reports[i].multi_kill)
            || matches!(line, Line::GroupKill { .. });
        let opens_new = matches!(line, Line::Header(_));
        let rank = print_rank(&line).unwrap_or(0);
        let rep = &self.reports[i];
        // A header starts its report: rows read before it belong to an earlier one.
        let header_restarts = opens_new && (rep.has_header || rep.first_meta.is_some());
        // A memcg report's `Task in` or usage line, or a task dump's start, after this report
        // already reached its dump or selection: the next report, whose header is not in the
        // excerpt.
        let goes_back = !after_kill
            && matches!(
                line,
                Line::TaskIn { .. } | Line::Usage { .. } | Line::TasksState | Line::TaskColumns(_)
            )
            && rank < rep.max_rank
            && rep.max_rank >= 5;
        let repeats = !after_kill && repeats_a_fact(rep, &line);
        if (after_kill && !continues_kill) || header_restarts || repeats || goes_back {
            self.restart(i, line_no);
        }
        let r = &mut self.reports[i];
        r.last_activity = line_no;
        r.max_rank = r.max_rank.max(rank);
        if r.first_meta.is_none() {
            r.first_meta = Some((meta.clone(), line_no));
        }
        r.mem.end_stat_dump();
        if matches!(
            line,
            Line::Select(_) | Line::Summary(_) | Line::TaskIn { .. } | Line::Usage { .. }
        ) {
            r.facts = true;
        }
        match line {
            Line::Header(h) => {
                r.has_header = true;
                r.header_meta = meta.clone();
                r.header_line = line_no;
                r.ctx.trigger_comm =
                    (!h.trigger_comm.is_empty()).then(|| h.trigger_comm.to_owned());
                r.ctx.gfp_mask = h.gfp_mask.map(str::to_owned);
                r.ctx.order = h.order;
                r.ctx.trigger_oom_score_adj = h.trigger_adj;
                if let Some(n) = h.nodemask {
                    r.ctx.nodemask = Some(n.to_owned());
                }
            }
            Line::Cpuset {
                cpuset,
                mems_allowed,
            } => {
                r.ctx.cpuset.get_or_insert_with(|| cpuset.to_owned());
                r.ctx
                    .mems_allowed
                    .get_or_insert_with(|| mems_allowed.to_owned());
            }
            Line::Summary(s) => {
                set(&mut r.ctx.constraint, s.constraint);
                set(&mut r.ctx.nodemask, s.nodemask);
                set(&mut r.ctx.cpuset, s.cpuset);
                set(&mut r.ctx.mems_allowed, s.mems_allowed);
                set(&mut r.ctx.oom_memcg, s.oom_memcg);
                set(&mut r.ctx.task_memcg, s.task_memcg);
                r.summary_pid = s.pid;
                r.summary_uid = s.uid;
                if r.select.is_none() {
                    if let (Some(pid), Some(comm)) = (s.pid, s.comm) {
                        r.select = Some(Select {
                            message: None,
                            pid,
                            comm: comm.to_owned(),
                            score: None,
                        });
                    }
                }
            }
            Line::Select(s) => {
                // Before 5.1 one selection could print several kill lines: the sacrificed child,
                // then (≤2.6.3x) every process sharing its mm, or (≤2.6.19) "and children".
                // They all belong to this selection until the next header or selection.
                r.multi_kill = true;
                r.select = Some(Select {
                    message: s.message.map(str::to_owned),
                    pid: s.pid,
                    comm: s.comm.to_owned(),
                    score: s.score,
                });
            }
            Line::TaskIn {
                task_memcg,
                oom_memcg,
            } => {
                set(&mut r.ctx.task_memcg, task_memcg);
                set(&mut r.ctx.oom_memcg, oom_memcg);
            }
            Line::Usage {
                counter,
                usage_kb,
                limit_kb,
                failcnt,
            } => {
                let c = &mut r.ctx;
                let (u, l) = match counter {
                    Counter::Memory => {
                        c.memcg_failcnt = failcnt;
                        (&mut c.memcg_usage_kb, &mut c.memcg_limit_kb)
                    }
                    Counter::MemorySwap => (&mut c.memsw_usage_kb, &mut c.memsw_limit_kb),
                    Counter::Swap => (&mut c.swap_usage_kb, &mut c.swap_limit_kb),
                    Counter::Kmem => (&mut c.kmem_usage_kb, &mut c.kmem_limit_kb),
                };
                *u = Some(usage_kb);
                *l = Some(limit_kb);
            }
            Line::GroupKill { memcg } => {
                r.multi_kill = true;
                r.ctx.oom_group = Some(memcg.to_owned());
                if r.killed_any {
                    let host = &meta.host;
                    if let Some(first) = self.pending.iter_mut().rev().find(|e| &e.host == host) {
                        first.oom_group = Some(memcg.to_owned());
                    }
                }
            }
            Line::TaskColumns(cols) => r.columns = Some(cols),
            Line::TaskRow(row) => {
                // Without the dump's header in the excerpt, infer its columns from the row.
                let inferred;
                let cols = match &r.columns {
                    Some(c) => Some(c.as_slice()),
                    None => {
                        inferred = lines::infer_columns(row);
                        r.rows_inferred |= inferred.is_some();
                        inferred.as_deref()
                    }
                };
                if let Some(task) = cols.and_then(|c| lines::task_row(row, c)) {
                    // A duplicated row (forwarded twice) is not a second process.
                    let dup = r.ctx.tasks.iter().rev().take(8).any(|t| t.pid == task.pid);
                    if !dup {
                        push_task(&mut r.ctx, task);
                    }
                }
            }
            Line::MemInfo => r.mem.start_mem_info(),
            Line::TasksState | Line::Mem(_) => {}
            Line::Killed(k) => {
                if r.ctx.oom_group.is_some() && r.killed_pids.contains(&k.pid) {
                    return;
                }
                r.killed_pids.push(k.pid);
                let mut ev = r.ctx.clone();
                ev.kind = EventKind::Kill;
                ev.pid = Some(k.pid);
                ev.comm = Some(k.comm.to_owned());
                ev.total_vm_kb = k.total_vm_kb;
                ev.anon_rss_kb = k.anon_rss_kb;
                ev.file_rss_kb = k.file_rss_kb;
                ev.shmem_rss_kb = k.shmem_rss_kb;
                ev.pgtables_kb = k.pgtables_kb;
                ev.message = k.message.map(str::to_owned);
                if let Some(sel) = &r.select {
                    ev.selected_pid = Some(sel.pid);
                    ev.selected_comm = Some(sel.comm.clone());
                    ev.score = sel.score;
                    if ev.message.is_none() {
                        ev.message = sel.message.clone();
                    }
                }
                let is_summary_task = r.summary_pid == Some(k.pid);
                // The dump lists one thread per process: its pid column may be a thread of the
                // victim, whose tgid is the victim's pid.
                let row = r
                    .ctx
                    .tasks
                    .iter()
                    .rev()
                    .find(|t| t.pid == k.pid)
                    .or_else(|| r.ctx.tasks.iter().rev().find(|t| t.tgid == Some(k.pid)));
                ev.uid = k
                    .uid
                    .or(if is_summary_task { r.summary_uid } else { None })
                    // Only from a dump whose header is not in the excerpt (issue 17): with the
                    // header there, the event schema keeps uid to what the kill line or summary
                    // print, as every era fixture was written.
                    .or_else(|| row.filter(|_| r.rows_inferred).and_then(|t| t.uid));
                // The summary's task_memcg is its task's cgroup; another member of an oom.group
                // kill may sit in a sub-cgroup: say nothing rather than guess.
                if r.summary_pid.is_some() && !is_summary_task {
                    ev.task_memcg = None;
                }
                ev.oom_score_adj = k
                    .oom_score_adj
                    .or_else(|| row.and_then(|t| t.oom_score_adj));
                ev.host = meta.host.clone();
                ev.time = meta.time.clone();
                ev.kernel_time_s = meta.kernel_time_s;
                ev.line = Some(line_no);
                ev.memory = r.mem.finish(crate::diagnosis::page_bytes_inferred(&ev));
                fix_constraint(&mut ev);
                r.killed_any = true;
                self.push_event(ev);
            }
            Line::NoKillable(text) => {
                let mut ev = r.ctx.clone();
                ev.kind = EventKind::NoKillable;
                ev.message = Some(text.to_owned());
                ev.host = meta.host.clone();
                ev.time = meta.time.clone();
                ev.kernel_time_s = meta.kernel_time_s;
                ev.line = Some(line_no);
                ev.memory = r.mem.finish(crate::diagnosis::page_bytes_inferred(&ev));
                fix_constraint(&mut ev);
                r.killed_any = true;
                self.push_event(ev);
            }
            Line::Panic(reason) => {
                // "no killable processes" followed by the panic is one event: upgrade it.
                let host = meta.host.clone();
                if let Some(prev) = self.pending.iter_mut().rev().find(|e| e.host == host) {
                    if prev.kind == EventKind::NoKillable {
                        prev.kind = EventKind::Panic;
                        prev.message = Some(reason.to_owned());
                        return;
                    }
                }
                let mut ev = r.ctx.clone();
                ev.kind = EventKind::Panic;
                ev.message = Some(reason.to_owned());
                ev.host = host;
                ev.time = meta.time.clone();
                ev.kernel_time_s = meta.kernel_time_s;
                ev.line = Some(line_no);
                ev.memory = r.mem.finish(crate::diagnosis::page_bytes_inferred(&ev));
                fix_constraint(&mut ev);
                r.killed_any = true;
                self.push_event(ev);
            }
            Line::Reaped(_) | Line::InitPanic(_) => {}
        }
    }

    /// A memory dump line belongs to the open, not yet killed report of its host; it never
    /// opens one (alone it says nothing about an OOM). An unprefixed line (a multi-line record's
    /// continuation as `journalctl` or raw dmesg print it) has no host: it goes to the report
    /// that was active last.
    fn apply_mem(&mut self, m: meminfo::MemLine<'_>, meta: &OwnedMeta, line_no: u64) {
        let by_host = self.reports.iter().position(|r| r.host == meta.host);
        // `Memory cgroup stats for X` names the OOM memcg (v1 prints it first, then its
        // children; v2 only it): in an excerpt without header it starts the report.
        if let meminfo::MemLine::MemcgStats { path, .. } = &m {
            let i = match by_host {
                Some(i) if !self.reports[i].killed_any => i,
                Some(i) => {
                    self.restart(i, line_no);
                    i
                }
                None => self.report_index(&meta.host, line_no),
            };
            let r = &mut self.reports[i];
            r.facts = true;
            if r.first_meta.is_none() {
                r.first_meta = Some((meta.clone(), line_no));
            }
            if r.ctx.oom_memcg.is_none() {
                r.ctx.oom_memcg = Some((*path).to_owned());
            }
            r.last_activity = line_no;
            r.mem.apply(m);
            return;
        }
        let i = match by_host {
            Some(i) => Some(i),
            None if !meta.prefixed => self
                .reports
                .iter()
                .enumerate()
                .max_by_key(|(_, r)| r.last_activity)
                .map(|(i, _)| i),
            None => None,
        };
        let Some(r) = i.and_then(|i| self.reports.get_mut(i)) else {
            return;
        };
        if r.killed_any {
            return;
        }
        if matches!(m, meminfo::MemLine::StatKv(..)) && !r.mem.in_stat_dump() {
            return;
        }
        r.last_activity = line_no;
        r.mem.apply(m);
    }

    fn attach_reaper(&mut self, r: &lines::Reaper<'_>) {
        let target = self
            .pending
            .iter_mut()
            .rev()
            .find(|e| e.pid == Some(r.pid) && e.reaped.is_none());
        if let Some(ev) = target {
            ev.reaped = Some(Reaped {
                pid: r.pid,
                comm: r.comm.to_owned(),
                anon_rss_kb: r.anon_rss_kb,
                file_rss_kb: r.file_rss_kb,
                shmem_rss_kb: r.shmem_rss_kb,
            });
        }
    }

    fn push_event(&mut self, mut ev: OomEvent) {
        // Every kernel event says whose cgroup it hit (`workload`), whoever reads it.
        ev.identify();
        // The same kill twice (a whole report forwarded twice): one event. A stamp is required,
        // as for duplicate records. Not within a memory.oom.group kill: the group walk prints
        // the victim again (5.x, seen in eras/5.x-6.x-dmesg-T-oom-group-kubepods.log).
        if ev.kind == EventKind::Kill
            && ev.oom_group.is_none()
            && (ev.time.is_some() || ev.kernel_time_s.is_some())
        {
            let same = |e: &OomEvent| {
                e.kind == EventKind::Kill
                    && e.pid == ev.pid
                    && e.comm == ev.comm
                    && e.host == ev.host
                    && e.time == ev.time
                    && e.kernel_time_s == ev.kernel_time_s
            };
            if self.pending.iter().any(same) || self.ready.iter().any(same) {
                return;
            }
        }
        self.pending.push_back(ev);
        while self.pending.len() > MAX_PENDING {
            if let Some(e) = self.pending.pop_front() {
                self.ready.push(e);
            }
        }
    }

    fn expire_stale(&mut self, line_no: u64) {
        let mut i = 0;
        while i < self.reports.len() {
            let r = &self.reports[i];
            let stale = line_no.saturating_sub(r.last_activity) > STALE_LINES;
            if stale || (r.killed_any && !r.multi_kill && line_no > r.last_activity) {
                let r = self.reports.remove(i);
                if r.is_unfinished() {
                    self.push_event(r.into_incomplete());
                }
            } else {
                i += 1;
            }
        }
        // The reaper runs within milliseconds; after this many lines an event is final.
        while self
            .pending
            .front()
            .is_some_and(|e| line_no.saturating_sub(e.line.unwrap_or(0)) > STALE_LINES)
        {
            if let Some(e) = self.pending.pop_front() {
                self.ready.push(e);
            }
        }
    }
}

/// A line that a report already has a different value for: the start of the next report
/// (excerpts of several reports without their headers, `grep`-filtered selections).
fn repeats_a_fact(r: &Report, line: &Line<'_>) -> bool {
    match line {
        Line::Select(s) => r.select.as_ref().is_some_and(|x| x.pid != s.pid),
        Line::Summary(s) => r.summary_pid.is_some() && r.summary_pid != s.pid,
        Line::Usage {
            counter: Counter::Memory,
            usage_kb,
            limit_kb,
            failcnt,
        } => {
            r.ctx.memcg_usage_kb.is_some()
                && (
                    r.ctx.memcg_usage_kb,
                    r.ctx.memcg_limit_kb,
                    r.ctx.memcg_failcnt,
                ) != (Some(*usage_kb), Some(*limit_kb), *failcnt)
        }
        _ => false,
    }
}

/// Where a line comes in the kernel's print order of one report (mm/oom_kill.c dump_header,
/// then the kill): header, cpuset, memcg usage or Mem-Info, task dump, summary or selection,
/// kill, group, reaper. `None` for lines that give no order evidence.
fn print_rank(l: &Line<'_>) -> Option<u8> {
    Some(match l {
        Line::Header(_) => 0,
        Line::Cpuset { .. } => 1,
        Line::MemInfo | Line::TaskIn { .. } => 2,
        Line::Usage { .. } | Line::Mem(_) => 3,
        Line::TasksState => 4,
        Line::TaskColumns(_) => 5,
        Line::TaskRow(_) => 6,
        Line::Summary(_) | Line::Select(_) => 7,
        Line::Killed(_) | Line::NoKillable(_) => 8,
        Line::GroupKill { .. } => 9,
        Line::Reaped(_) => 10,
        Line::Panic(_) | Line::InitPanic(_) => return None,
    })
}

/// +1 when `a` then `b` is the kernel's order, -1 when it is the reverse, 0 when the pair says
/// nothing (a header after a kill starts the next report in either order). A kill then a
/// selection, or a reaper then a kill, is the reverse order only about the same process: in a
/// `grep`-filtered burst the next report's lines follow the last one's in the same way.
fn pair_order(a: u8, b: u8, same_process: bool) -> i32 {
    match (a, b) {
        (0, 1..) | (2, 3) | (4, 5) | (5, 6) | (7, 8) => 1,
        (8, 10) if same_process => 1,
        (1..=7, 0) | (3, 2) | (5, 4) | (6, 5) => -1,
        (8, 7) | (10, 8) if same_process => -1,
        _ => 0,
    }
}

/// A record's stamp for ordering: seconds since boot, or its wall-clock time.
fn order_key(m: &OwnedMeta) -> Option<f64> {
    m.kernel_time_s
        .or_else(|| m.time.as_deref().and_then(prefix::wall_seconds))
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

fn set(slot: &mut Option<String>, v: Option<&str>) {
    if let Some(v) = v {
        *slot = Some(v.to_owned());
    }
}

fn push_task(ev: &mut OomEvent, task: TaskRow) {
    if ev.tasks.len() < MAX_TASK_ROWS {
        ev.tasks.push(task);
    } else {
        ev.tasks_dropped += 1;
    }
}

/// The constraint as the schema defines it: printed, corrected for the early-5.0 bug, or
/// inferred as memcg from the memcg-only lines.
fn fix_constraint(ev: &mut OomEvent) {
    let memcg_evidence = ev.oom_memcg.is_some()
        || ev
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Memory cgroup"));
    match ev.constraint.as_deref() {
        Some("CONSTRAINT_NONE") | None if memcg_evidence => {
            ev.constraint = Some("CONSTRAINT_MEMCG".to_owned());
        }
        _ => {}
    }
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

/// `journalctl -o json` records.
mod journal {
    /// What oomguard needs of one journal entry.
    pub struct Record {
        pub kernel: bool,
        pub message: String,
        pub host: Option<String>,
        pub time: Option<String>,
        pub kernel_time_s: Option<f64>,
    }

    impl Record {
        pub fn parse(line: &str) -> Option<Record> {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let obj = v.as_object()?;
            let text = |k: &str| obj.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            let num = |k: &str| text(k).and_then(|s| s.parse::<u64>().ok());
            let message = match obj.get("MESSAGE")? {
                serde_json::Value::String(s) => s.clone(),
                // Non-UTF-8 messages are stored as byte arrays.
                serde_json::Value::Array(a) => {
                    let bytes: Vec<u8> = a
                        .iter()
                        .filter_map(|x| x.as_u64())
                        .map(|b| b as u8)
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                _ => return None,
            };
            // journald files userspace writes to /dev/kmsg under _TRANSPORT=kernel too, with
            // their own facility (seen on 6.18: SYSLOG_FACILITY=1): only facility 0 is the kernel.
            let facility_ok = text("SYSLOG_FACILITY").is_none_or(|f| f == "0");
            let kernel = facility_ok
                && (text("_TRANSPORT").as_deref() == Some("kernel")
                    || (text("_TRANSPORT").is_none()
                        && text("SYSLOG_IDENTIFIER").as_deref() == Some("kernel")));
            Some(Record {
                kernel,
                message,
                host: text("_HOSTNAME"),
                time: num("__REALTIME_TIMESTAMP").map(crate::time::format_utc_usec),
                kernel_time_s: num("_SOURCE_MONOTONIC_TIMESTAMP").map(|u| u as f64 / 1e6),
            })
        }
    }
}

#[cfg(test)]
mod tests;
