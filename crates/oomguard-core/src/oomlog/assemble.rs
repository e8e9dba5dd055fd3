//! Assembly per host: each complete record, once its order is known, goes into the report of its
//! host (`Report`); a kill line, a "no killable process" line or a panic makes an event of
//! what the report holds, an `oom_reaper` line completes an earlier event, and a report that is
//! cut off becomes an `incomplete` event. The rules are in the docs of `oomlog`.

use super::lines::{self, Column, Counter, Line};
use super::order::print_rank;
use super::{meminfo, OwnedMeta, Parser, MAX_HOSTS, MAX_PENDING, MAX_TASK_ROWS, STALE_LINES};
use crate::event::{EventKind, OomEvent, Reaped, TaskRow};

#[derive(Debug)]
struct Select {
    message: Option<String>,
    pid: i64,
    comm: String,
    score: Option<i64>,
}

/// A report being assembled for one host.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) host: Option<String>,
    ctx: OomEvent,
    has_header: bool,
    header_meta: OwnedMeta,
    header_line: u64,
    columns: Option<Vec<Column>>,
    select: Option<Select>,
    summary_uid: Option<u64>,
    summary_pid: Option<i64>,
    /// Several kill lines belong to this report (oom.group, "and children").
    pub(super) multi_kill: bool,
    pub(super) killed_any: bool,
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
    pub(super) fn is_unfinished(&self) -> bool {
        (self.has_header || self.facts) && !self.killed_any
    }

    pub(super) fn into_incomplete(self) -> OomEvent {
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

impl Parser {
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

    pub(super) fn apply(&mut self, line: Line<'_>, meta: &OwnedMeta, line_no: u64) {
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
                let ev = finish_event(r, ev, meta, line_no);
                self.push_event(ev);
            }
            Line::NoKillable(text) => {
                let mut ev = r.ctx.clone();
                ev.kind = EventKind::NoKillable;
                ev.message = Some(text.to_owned());
                let ev = finish_event(r, ev, meta, line_no);
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
                let ev = finish_event(r, ev, meta, line_no);
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
            // Either every stamp agrees, or both copies carry the same printk stamp and the
            // other stamps agree where both have one: the same record read from a syslog file
            // and again from `dmesg` (`grep -r` over /var/log, then `dmesg | grep`, pasted one
            // after the other) has a host and a wall-clock time only once. A printk stamp is to
            // the microsecond, so one pid killed twice at the same stamp is not a real case.
            let agree =
                |a: &Option<String>, b: &Option<String>| a.is_none() || b.is_none() || a == b;
            let same = |e: &OomEvent| {
                e.kind == EventKind::Kill
                    && e.pid == ev.pid
                    && e.comm == ev.comm
                    && ((e.host == ev.host
                        && e.time == ev.time
                        && e.kernel_time_s == ev.kernel_time_s)
                        || (e.kernel_time_s.is_some()
                            && e.kernel_time_s == ev.kernel_time_s
                            && e.anon_rss_kb == ev.anon_rss_kb
                            && agree(&e.host, &ev.host)
                            && agree(&e.time, &ev.time)))
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

    pub(super) fn expire_stale(&mut self, line_no: u64) {
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
/// The event that report `r` comes to at `line_no` (a kill, no killable process, a panic):
/// stamped with that line's host and times, with the report's memory breakdown.
fn finish_event(r: &mut Report, mut ev: OomEvent, meta: &OwnedMeta, line_no: u64) -> OomEvent {
    ev.host = meta.host.clone();
    ev.time = meta.time.clone();
    ev.kernel_time_s = meta.kernel_time_s;
    ev.line = Some(line_no);
    ev.memory = r.mem.finish(crate::diagnosis::page_bytes_inferred(&ev));
    fix_constraint(&mut ev);
    r.killed_any = true;
    ev
}

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
