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
//!   clients break them) is rejoined before it is read.

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

/// Substrings of which a line must contain one to open or close a report. Any other line matters
/// only while a report is open ([`Parser::wants_every_line`]). Kept short and distinctive so the
/// byte scan over a large log is fast; checked against every format in `kernel-oom-formats.md`.
pub const TRIGGERS: [&str; 8] = [
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
    last_activity: u64,
    /// The Mem-Info block and memcg stat dump seen so far.
    mem: meminfo::MemAcc,
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
            last_activity: line_no,
            mem: meminfo::MemAcc::default(),
        }
    }

    /// A report with content that deserves an event even without a kill line.
    fn is_unfinished(&self) -> bool {
        self.has_header && !self.killed_any
    }

    fn into_incomplete(self) -> OomEvent {
        let mut ev = self.ctx;
        ev.kind = EventKind::Incomplete;
        ev.host = self.host.or(self.header_meta.host);
        ev.time = self.header_meta.time;
        ev.kernel_time_s = self.header_meta.kernel_time_s;
        ev.line = Some(self.header_line);
        ev.memory = self.mem.finish(crate::diagnosis::page_bytes_inferred(&ev));
        if let Some(sel) = self.select {
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
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a report is open or a record is held: then every line matters (task dump
    /// rows, memcg lines, wrapped continuations carry no trigger word). Otherwise only lines
    /// containing one of [`TRIGGERS`] need to be pushed.
    pub fn wants_every_line(&self) -> bool {
        self.held.is_some() || !self.reports.is_empty()
    }

    /// Physical lines pushed so far (including ones the caller skipped, via `line_no`).
    pub fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    /// Feeds one physical line (without its newline), numbered from 1.
    pub fn push(&mut self, line: &[u8], line_no: u64) {
        self.lines_seen = self.lines_seen.max(line_no);
        let line = &line[..line.len().min(MAX_LINE_BYTES)];
        let text: Cow<'_, str> = String::from_utf8_lossy(line);
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
                    if body.contains("\\x") && is_kmsg_record(rec) {
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
    }

    /// Ends the input: every open report and pending event becomes ready.
    pub fn finish(&mut self, out: &mut Vec<OomEvent>) {
        self.release_held();
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
            let continuation = !meta.prefixed
                && held.meta.prefixed
                && !body.trim().is_empty()
                && lines::classify(body).is_none();
            if continuation {
                // Terminals cut mid-token and keep no space; mail clients cut at a space and
                // often drop it. The line parsers tolerate a missing space, so join without one
                // unless the continuation itself starts with whitespace.
                if body.starts_with([' ', '\t']) {
                    held.text.push(' ');
                }
                held.text.push_str(body.trim());
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
        self.apply(kind, &owned, line_no);
    }

    fn release_held(&mut self) {
        if let Some(h) = self.held.take() {
            if let Some(kind) = lines::classify(&h.text) {
                self.apply(kind, &h.meta, h.line_no);
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
        if (after_kill && !continues_kill) || (opens_new && self.reports[i].has_header) {
            self.restart(i, line_no);
        }
        let r = &mut self.reports[i];
        r.last_activity = line_no;
        r.mem.end_stat_dump();
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
                if let Some(cols) = &r.columns {
                    if let Some(task) = lines::task_row(row, cols) {
                        push_task(&mut r.ctx, task);
                    }
                }
            }
            Line::MemInfo => r.mem.start_mem_info(),
            Line::TasksState | Line::Mem(_) => {}
            Line::Killed(k) => {
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
                ev.uid = k.uid.or(if is_summary_task { r.summary_uid } else { None });
                // The summary's task_memcg is its task's cgroup; another member of an oom.group
                // kill may sit in a sub-cgroup: say nothing rather than guess.
                if r.summary_pid.is_some() && !is_summary_task {
                    ev.task_memcg = None;
                }
                ev.oom_score_adj = k.oom_score_adj.or_else(|| {
                    r.ctx
                        .tasks
                        .iter()
                        .find(|t| t.pid == k.pid)
                        .and_then(|t| t.oom_score_adj)
                });
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
