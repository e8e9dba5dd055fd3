//! Where `replay` reads from: log files through `explain`'s readers with a tap that notes the
//! kernel release printed in stack dumps (`Not tainted 5.10.0 #1`), and oomguard's own event log
//! (JSON lines): the kernel reports the daemon recorded, and the readings of its decisions.
//!
//! A line of the event log that is not a JSON object, or not an event, is skipped with a warning
//! naming the file and line; it never stops the replay.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use anyhow::Context as _;
use serde_json::Value;

use oomguard_core::badness::KernelVersion;
use oomguard_core::event::{
    EventKind, MemInfo, Memory, OomEvent, PageSizeSource, Source, TaskRow, Zone,
};
use oomguard_core::replay::{kernel_release_in_line, Reading};

/// Releases seen so far: `(line number, release)`, one entry per change.
pub type Releases = Rc<RefCell<Vec<(u64, KernelVersion)>>>;

/// The longest line prefix the tap keeps to look for a release (stack-dump lines are short).
const TAP_LINE_BYTES: usize = 512;

/// Passes bytes through unchanged, noting the kernel release on each line that shows one.
/// Line numbers count as `explain::scan` counts them (1-based, newline-separated), so a
/// release can be matched to the report whose lines follow it.
pub struct ReleaseTap<R> {
    inner: R,
    line_no: u64,
    cur: Vec<u8>,
    releases: Releases,
}

impl<R: Read> ReleaseTap<R> {
    pub fn new(inner: R, releases: Releases) -> Self {
        ReleaseTap {
            inner,
            line_no: 1,
            cur: Vec::with_capacity(TAP_LINE_BYTES),
            releases,
        }
    }

    fn end_line(&mut self) {
        if let Some(v) = std::str::from_utf8(&self.cur)
            .ok()
            .and_then(kernel_release_in_line)
        {
            let mut r = self.releases.borrow_mut();
            if r.last().map(|x| x.1) != Some(v) {
                r.push((self.line_no, v));
            }
        }
        self.cur.clear();
        self.line_no += 1;
    }
}

impl<R: Read> Read for ReleaseTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !self.cur.is_empty() {
            self.end_line();
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let room = TAP_LINE_BYTES.saturating_sub(self.cur.len());
                    self.cur.extend_from_slice(&rest[..i.min(room)]);
                    self.end_line();
                    rest = &rest[i + 1..];
                }
                None => {
                    let room = TAP_LINE_BYTES.saturating_sub(self.cur.len());
                    self.cur.extend_from_slice(&rest[..rest.len().min(room)]);
                    rest = &[];
                }
            }
        }
        Ok(n)
    }
}

/// The release shown last at or before `line`.
pub fn release_at(releases: &[(u64, KernelVersion)], line: Option<u64>) -> Option<KernelVersion> {
    let line = line.unwrap_or(u64::MAX);
    releases
        .iter()
        .take_while(|(l, _)| *l <= line)
        .last()
        .map(|x| x.1)
}

/// What the event log holds for replay.
#[derive(Debug, Default)]
pub struct EventLog {
    /// Kernel kills the daemon recorded with their task dump: `(line, event)`.
    pub reports: Vec<(u64, OomEvent)>,
    /// When every kernel kill was seen (seconds since the epoch), with or without a dump.
    pub kernel_kills_unix_s: Vec<f64>,
    /// oomguard's own decisions with their readings.
    pub readings: Vec<Reading>,
    /// Lines skipped, with why.
    pub warnings: Vec<String>,
}

/// Reads an event log file (plain JSON lines).
pub fn read_event_log(path: &Path) -> anyhow::Result<EventLog> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open event log {}", path.display()))?;
    let mut out = EventLog::default();
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = match serde_json::from_slice(&line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                out.warnings.push(format!(
                    "{} line {line_no}: not a JSON event, skipped",
                    path.display()
                ));
                continue;
            }
        };
        let source = v.get("source").and_then(Value::as_str);
        let kind = v.get("kind").and_then(Value::as_str);
        let unix = v.get("unix_time_s").and_then(Value::as_f64).or_else(|| {
            v.get("time")
                .and_then(Value::as_str)
                .and_then(oomguard_core::since::parse_datetime)
        });
        match (source, kind) {
            (Some("kernel"), Some("kill")) => {
                if let Some(t) = unix {
                    out.kernel_kills_unix_s.push(t);
                }
                match event_from_json(&v) {
                    Some(ev) if !ev.tasks.is_empty() => out.reports.push((line_no, ev)),
                    _ => {}
                }
            }
            (Some("oomguard"), Some(k)) => {
                if let (Some(t), Some(r)) = (unix, reading_from_json(&v, k)) {
                    out.readings.push(Reading {
                        unix_time_s: t,
                        ..r
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

fn i(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn reading_from_json(v: &Value, kind: &str) -> Option<Reading> {
    let t = v.get("trigger").filter(|t| t.is_object())?;
    let reason = s(t, "reason").unwrap_or_else(|| "?".to_owned());
    let a = v.get("action");
    let signal = a.and_then(|a| s(a, "signal"));
    let dry = a
        .and_then(|a| a.get("dry_run"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let logged = format!(
        "{kind} {reason}{}{}",
        signal.map(|x| format!(" {x}")).unwrap_or_default(),
        if dry { ", dry run" } else { "" }
    );
    Some(Reading {
        unix_time_s: 0.0,
        mem_total_bytes: u(t, "mem_total_bytes"),
        mem_available_bytes: u(t, "mem_available_bytes"),
        swap_total_bytes: u(t, "swap_total_bytes"),
        swap_free_bytes: u(t, "swap_free_bytes"),
        psi_some_avg10_pct: t.get("psi_some_avg10_pct").and_then(Value::as_f64),
        psi_full_avg10_pct: t.get("psi_full_avg10_pct").and_then(Value::as_f64),
        cgroup: s(t, "cgroup"),
        cgroup_usage_bytes: u(t, "cgroup_usage_bytes"),
        cgroup_limit_bytes: u(t, "cgroup_limit_bytes"),
        logged,
    })
}

fn row_from_json(r: &Value) -> Option<TaskRow> {
    Some(TaskRow {
        pid: i(r, "pid")?,
        uid: u(r, "uid"),
        tgid: i(r, "tgid"),
        total_vm_pages: u(r, "total_vm_pages"),
        rss_pages: u(r, "rss_pages"),
        rss_anon_pages: u(r, "rss_anon_pages"),
        rss_file_pages: u(r, "rss_file_pages"),
        rss_shmem_pages: u(r, "rss_shmem_pages"),
        pgtables_bytes: u(r, "pgtables_bytes"),
        nr_ptes_pages: u(r, "nr_ptes_pages"),
        nr_pmds_pages: u(r, "nr_pmds_pages"),
        swapents_pages: u(r, "swapents_pages"),
        oom_score_adj: i(r, "oom_score_adj"),
        oom_adj: i(r, "oom_adj"),
        cpu: u(r, "cpu"),
        name: s(r, "name").unwrap_or_default(),
    })
}

/// The fields of a logged kernel event that replay uses (`docs/event-schema.md`), back into an
/// [`OomEvent`]. Fields replay does not read stay empty.
pub fn event_from_json(v: &Value) -> Option<OomEvent> {
    let mut ev = OomEvent::new(EventKind::Kill);
    ev.source = Source::Kernel;
    ev.message = s(v, "message");
    ev.pid = i(v, "pid");
    ev.comm = s(v, "comm");
    ev.selected_pid = i(v, "selected_pid");
    ev.selected_comm = s(v, "selected_comm");
    ev.score = i(v, "score");
    ev.pgtables_kb = u(v, "pgtables_kb");
    ev.anon_rss_kb = u(v, "anon_rss_kb");
    ev.file_rss_kb = u(v, "file_rss_kb");
    ev.shmem_rss_kb = u(v, "shmem_rss_kb");
    ev.constraint = s(v, "constraint");
    ev.oom_memcg = s(v, "oom_memcg");
    ev.task_memcg = s(v, "task_memcg");
    ev.memcg_limit_kb = u(v, "memcg_limit_kb");
    ev.memsw_limit_kb = u(v, "memsw_limit_kb");
    ev.swap_limit_kb = u(v, "swap_limit_kb");
    ev.time = s(v, "time");
    ev.host = s(v, "host");
    ev.unix_time_s = v.get("unix_time_s").and_then(Value::as_f64);
    ev.tasks = v
        .get("tasks")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(row_from_json).collect())
        .unwrap_or_default();
    ev.tasks_dropped = u(v, "tasks_dropped").unwrap_or(0);
    if let Some(m) = v.get("memory").filter(|m| m.is_object()) {
        let info = m
            .get("mem_info")
            .filter(|x| x.is_object())
            .map(|mi| MemInfo {
                ram_bytes: u(mi, "ram_bytes"),
                reserved_bytes: u(mi, "reserved_bytes"),
                swap_total_bytes: u(mi, "swap_total_bytes"),
                zones: mi
                    .get("zones")
                    .and_then(Value::as_array)
                    .map(|zs| {
                        zs.iter()
                            .map(|z| Zone {
                                name: s(z, "name").unwrap_or_default(),
                                managed_bytes: u(z, "managed_bytes"),
                                ..Zone::default()
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                ..MemInfo::default()
            });
        ev.memory = Some(Memory {
            page_size_bytes: u(m, "page_size_bytes").unwrap_or(4096),
            page_size_source: match m.get("page_size_source").and_then(Value::as_str) {
                Some("mem_info") => PageSizeSource::MemInfo,
                Some("task_dump") => PageSizeSource::TaskDump,
                _ => PageSizeSource::Default,
            },
            mem_info: info,
            memcg_stat: None,
        });
    }
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_notes_releases_by_line_and_passes_bytes_through() {
        let log = b"a\nCPU: 0 PID: 1 Comm: x Not tainted 5.10.0-28-amd64 #1\nb\n\
                    [ 9.0] CPU: 1 PID: 2 Comm: y Not tainted 5.10.0-28-amd64 #1\n\
                    Pid: 6344, comm: sh Not tainted 3.2.32 #1";
        let rel = Releases::default();
        let mut tap = ReleaseTap::new(&log[..], rel.clone());
        let mut out = Vec::new();
        // Small reads: lines split across reads must still be seen whole.
        let mut buf = [0u8; 7];
        loop {
            let n = tap.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, log);
        let r = rel.borrow();
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], (2, KernelVersion::new(5, 10, 0)));
        assert_eq!(r[1], (5, KernelVersion::new(3, 2, 32)));
        assert_eq!(release_at(&r, Some(4)), Some(KernelVersion::new(5, 10, 0)));
        assert_eq!(release_at(&r, Some(1)), None);
        assert_eq!(release_at(&r, None), Some(KernelVersion::new(3, 2, 32)));
    }

    #[test]
    fn event_log_gives_reports_readings_and_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"kind":"warning","source":"oomguard","unix_time_s":100.5,"trigger":{"reason":"memory","mem_total_bytes":1000,"mem_available_bytes":50},"action":{"signal":"none","dry_run":false}}"#,
                "\n",
                "garbage line\n",
                r#"{"kind":"kill","source":"kernel","unix_time_s":130.0,"pid":7,"comm":"hog","constraint":"CONSTRAINT_MEMCG","oom_memcg":"/t","memcg_limit_kb":1024,"tasks":[{"pid":7,"uid":0,"rss_pages":10,"pgtables_bytes":0,"swapents_pages":0,"oom_score_adj":1000,"name":"hog"}],"tasks_dropped":0}"#,
                "\n"
            ),
        )
        .unwrap();
        let log = read_event_log(&p).unwrap();
        assert_eq!(log.readings.len(), 1);
        assert_eq!(log.readings[0].mem_available_bytes, Some(50));
        assert_eq!(log.readings[0].logged, "warning memory none");
        assert_eq!(log.kernel_kills_unix_s, vec![130.0]);
        assert_eq!(log.reports.len(), 1);
        assert_eq!(log.reports[0].0, 3);
        assert_eq!(log.reports[0].1.tasks[0].oom_score_adj, Some(1000));
        assert_eq!(log.warnings.len(), 1);
        assert!(log.warnings[0].contains("line 2"), "{:?}", log.warnings);
    }
}
