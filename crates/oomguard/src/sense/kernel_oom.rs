//! Live kernel-OOM detection: the kernel's own OOM killer acted; say so, with the report's
//! figures, within a second.
//!
//! Two sources, cross-checked:
//! - **`/dev/kmsg`**, followed from the daemon's start ([`KmsgReader`] at the end of the ring
//!   buffer: EPIPE after an overrun, one record per `read()`). Kernel-facility records go to the
//!   `explain` parser ([`Parser`]); userspace writes into `/dev/kmsg` never do, so they cannot
//!   fake a kill. A report is complete when its kill line came and the log went quiet for
//!   [`QUIET`] (the `oom_reaper` line follows within milliseconds when it comes at all).
//! - **The counters**: `/proc/vmstat oom_kill` (every kernel OOM kill, 4.13+), and per watched
//!   cgroup v1 `memory.oom_control oom_kill` / v2 `memory.events oom_kill`. The kernel bumps
//!   them in `__oom_kill_process()` *before* it prints `Killed process`, so by the time a
//!   report is read its kill is counted: the counter names the report `confirmed_by`.
//!   A rise no report explains within [`COUNTER_GRACE`] (the report was lost to an overrun, or
//!   `/dev/kmsg` is unreadable) becomes an event with `detection.via = "counter"`: how many,
//!   and which watched cgroup, as far as the counters tell.
//!
//! Counters are read first and `/dev/kmsg` opened second, so a kill between the two is
//! reported (by its counter) rather than missed. Nothing here blocks: the reads are of a
//! non-blocking device and of small kernel files, and each call handles at most
//! [`RECORDS_PER_CALL`] records.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oomguard_core::event::{Detection, EventKind, OomEvent};
use oomguard_core::host::cgroup::{parse_v1_oom_control, parse_v2_events};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::host::system::parse_vmstat;
use oomguard_core::kmsg::KmsgRecord;
use oomguard_core::oomlog::Parser;

use crate::sense::kmsg::{KmsgError, KmsgReader, KmsgStart, BUF_LEN};

/// A finished report is released after the kernel log was quiet this long.
pub const QUIET: Duration = Duration::from_millis(100);
/// A counter rise no report explains after this long is reported on its own.
pub const COUNTER_GRACE: Duration = Duration::from_millis(300);
/// How often the counters are read while `/dev/kmsg` cannot be read: they are then the only
/// source.
pub const COUNTER_INTERVAL: Duration = Duration::from_secs(1);
/// How often the counters are read while `/dev/kmsg` is followed. The kernel prints every kill
/// (`Killed process`, not rate-limited), and a report can only be missed when the ring buffer
/// overwrote it before we read it, which the reader sees (`lost_before`) and which makes the
/// counters be read at once. This interval is the safety net. Reading `/proc/vmstat` costs the
/// kernel ~170 lines of text: at 1 s it was a third of the idle daemon's CPU time.
pub const COUNTER_SAFETY_INTERVAL: Duration = Duration::from_secs(10);
/// A report without a kill line is closed (as `incomplete`) after this much quiet.
pub const STALE_REPORT: Duration = Duration::from_secs(5);
/// Records read per `on_readable` call; the rest on the next (deadline: now).
pub const RECORDS_PER_CALL: usize = 512;

/// A memory cgroup whose kill counter is watched.
#[derive(Debug, Clone)]
pub struct WatchedCgroup {
    /// As `/proc/PID/cgroup` and kernel reports show it (`/system.slice/app.service`).
    pub path: String,
    /// Its directory in the mounted hierarchy.
    pub dir: PathBuf,
    pub version: CgroupVersion,
}

/// Where the detector reads.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/dev/kmsg`; `None` to rely on the counters alone.
    pub kmsg: Option<PathBuf>,
    /// `/proc`.
    pub proc_root: PathBuf,
    pub cgroups: Vec<WatchedCgroup>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kmsg: Some(PathBuf::from(crate::sense::kmsg::DEV_KMSG)),
            proc_root: PathBuf::from("/proc"),
            cgroups: Vec::new(),
        }
    }
}

/// Counters of the detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub kmsg_records: u64,
    pub kmsg_overruns: u64,
    pub kmsg_lost_records: u64,
    pub kmsg_errors: u64,
    /// Kill events assembled from reports.
    pub reported_kills: u64,
    /// Kills reported from the counters alone.
    pub unreported_kills: u64,
    /// Rise of `/proc/vmstat oom_kill` since start.
    pub vmstat_kills: u64,
    pub counter_read_errors: u64,
}

struct CgState {
    w: WatchedCgroup,
    last: Option<u64>,
    /// Rises not yet matched to an event.
    unmatched: u64,
}

/// The detector. Drive it with [`fd`](Self::fd) / [`on_readable`](Self::on_readable),
/// [`on_tick`](Self::on_tick) and [`next_deadline`](Self::next_deadline).
pub struct KernelOomDetector {
    reader: Option<KmsgReader>,
    kmsg_error: Option<String>,
    vmstat: VmstatCounter,
    parser: Parser,
    line: Vec<u8>,
    line_no: u64,
    last_record: Option<Instant>,
    dirty: bool,
    more: bool,
    cgroups: Vec<CgState>,
    vmstat_last: Option<u64>,
    /// kmsg kills + counter-only kills reported so far (to compare with `vmstat_kills`).
    explained: u64,
    unexplained_since: Option<Instant>,
    next_counters: Instant,
    lost_since_event: u64,
    stats: Stats,
}

impl std::fmt::Debug for KernelOomDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelOomDetector")
            .field("kmsg", &self.reader.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

/// `/proc/vmstat`'s `oom_kill`, through a descriptor kept open and one `pread` into a buffer
/// kept between reads (the detector reads it every [`COUNTER_INTERVAL`], idle or not).
struct VmstatCounter {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
}

impl VmstatCounter {
    fn open(proc_root: &Path) -> Self {
        VmstatCounter {
            file: std::fs::File::open(proc_root.join("vmstat")).ok(),
            buf: Vec::with_capacity(8192),
        }
    }

    fn read(&mut self) -> Option<u64> {
        let f = self.file.as_mut()?;
        crate::sense::reread(f, &mut self.buf).ok()?;
        parse_vmstat(&self.buf).ok()?.oom_kill
    }
}

fn read_cg_counter(w: &WatchedCgroup) -> Option<u64> {
    match w.version {
        CgroupVersion::V1 => {
            let t = std::fs::read(w.dir.join("memory.oom_control")).ok()?;
            parse_v1_oom_control(&t).ok()?.oom_kill
        }
        CgroupVersion::V2 => {
            let t = std::fs::read(w.dir.join("memory.events")).ok()?;
            parse_v2_events("memory.events", &t).ok()?.oom_kill
        }
    }
}

fn counter_name(v: CgroupVersion) -> &'static str {
    match v {
        CgroupVersion::V1 => "memory.oom_control",
        CgroupVersion::V2 => "memory.events",
    }
}

/// `/a/b` is in `/a` and in `/a/b`, not in `/a/bc`.
fn within(path: &str, cgroup: &str) -> bool {
    let cgroup = cgroup.trim_end_matches('/');
    path == cgroup
        || cgroup.is_empty()
        || path
            .strip_prefix(cgroup)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl KernelOomDetector {
    /// Reads the counters' baselines, then opens `/dev/kmsg` at its end. An unreadable
    /// `/dev/kmsg` is not an error: detection goes on from the counters ([`Self::kmsg_error`]).
    pub fn new(opts: Options, now: Instant) -> Self {
        let mut cgroups: Vec<CgState> = opts
            .cgroups
            .into_iter()
            .map(|w| CgState {
                last: None,
                unmatched: 0,
                w,
            })
            .collect();
        for c in &mut cgroups {
            c.last = read_cg_counter(&c.w);
        }
        let mut vmstat = VmstatCounter::open(&opts.proc_root);
        let vmstat_last = vmstat.read();
        let (reader, kmsg_error) = match &opts.kmsg {
            None => (None, Some("not configured".to_owned())),
            Some(p) => match KmsgReader::open_path(p, KmsgStart::End, BUF_LEN) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        let first_interval = if reader.is_some() {
            COUNTER_SAFETY_INTERVAL
        } else {
            COUNTER_INTERVAL
        };
        KernelOomDetector {
            reader,
            kmsg_error,
            vmstat,
            parser: Parser::new(),
            line: Vec::with_capacity(BUF_LEN + 64),
            line_no: 0,
            last_record: None,
            dirty: false,
            more: false,
            cgroups,
            vmstat_last,
            explained: 0,
            unexplained_since: None,
            next_counters: now + first_interval,
            lost_since_event: 0,
            stats: Stats::default(),
        }
    }

    /// The `/dev/kmsg` fd for the poll set (POLLIN), when it is open.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.reader.as_ref().map(|r| r.fd())
    }

    /// Why `/dev/kmsg` is not read, if it is not.
    pub fn kmsg_error(&self) -> Option<&str> {
        self.kmsg_error.as_deref()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// When [`Self::on_tick`] must run next.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let mut d = self.next_counters;
        if self.more {
            d = now;
        }
        if let Some(last) = self.last_record {
            if self.dirty {
                d = d.min(last + QUIET);
            }
            if self.parser.has_open_report() {
                d = d.min(last + STALE_REPORT);
            }
        }
        if let Some(s) = self.unexplained_since {
            d = d.min(s + COUNTER_GRACE);
        }
        d
    }

    /// Reads what `/dev/kmsg` has (at most [`RECORDS_PER_CALL`] records); complete events go
    /// to `out` (usually from a later `on_tick`, after [`QUIET`]).
    pub fn on_readable(&mut self, now: Instant, out: &mut Vec<OomEvent>) {
        self.more = false;
        for _ in 0..RECORDS_PER_CALL {
            let Some(reader) = self.reader.as_mut() else {
                return;
            };
            let entry = match reader.next_record() {
                Ok(Some(e)) => e,
                Ok(None) => {
                    self.sync_reader_stats(now);
                    return self.on_tick(now, out);
                }
                Err(KmsgError::Malformed { .. }) | Err(KmsgError::Oversized { .. }) => {
                    self.stats.kmsg_errors += 1;
                    continue;
                }
                Err(e) => {
                    // A read error other than EAGAIN/EPIPE/EINVAL: the device is unusable.
                    // Go on from the counters.
                    self.stats.kmsg_errors += 1;
                    self.kmsg_error = Some(e.to_string());
                    self.reader = None;
                    return;
                }
            };
            let lost = entry.lost_before;
            // Format the record as the kmsg line the parser knows, into a reused buffer.
            let rec = entry.record;
            let mut line = std::mem::take(&mut self.line);
            format_record(&mut line, &rec);
            let kernel = rec.is_kernel();
            self.ingest_line(&line, kernel, lost, now);
            self.line = line;
        }
        self.sync_reader_stats(now);
        self.more = true;
    }

    fn sync_reader_stats(&mut self, now: Instant) {
        if let Some(r) = &self.reader {
            let s = r.stats();
            self.stats.kmsg_records = s.records;
            if s.overruns > self.stats.kmsg_overruns {
                // The ring buffer overwrote records before we read them (even before the
                // first one, when their number is unknown): a report may be among them.
                self.next_counters = self.next_counters.min(now);
            }
            self.stats.kmsg_overruns = s.overruns;
        }
    }

    /// Feeds one record (as a `/dev/kmsg` line: `prio,seq,usec,flags;text`). `lost_before`:
    /// records overwritten before it. For tests and replay; `on_readable` calls it.
    pub fn ingest_line(&mut self, line: &[u8], kernel: bool, lost_before: u64, now: Instant) {
        self.stats.kmsg_lost_records += lost_before;
        self.lost_since_event += lost_before;
        if !kernel {
            return;
        }
        self.line_no += 1;
        self.parser.push(line, self.line_no);
        self.last_record = Some(now);
        self.dirty = true;
    }

    /// Releases finished reports, reads the counters when due, reports unexplained rises.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<OomEvent>) {
        let mut evs = Vec::new();
        if let Some(last) = self.last_record {
            if self.dirty && now >= last + QUIET {
                self.dirty = false;
                self.parser.flush_complete(&mut evs);
            }
            if self.parser.has_open_report() && now >= last + STALE_REPORT {
                self.parser.finish(&mut evs);
            }
        }
        if !evs.is_empty() {
            // The counters rose before the report was printed: read them now to confirm.
            self.read_counters();
            for ev in evs {
                out.push(self.confirm(ev));
            }
        }
        if now >= self.next_counters {
            self.next_counters = now + self.counter_interval();
            self.read_counters();
        }
        self.check_unexplained(now, out);
    }

    fn counter_interval(&self) -> Duration {
        if self.reader.is_some() {
            COUNTER_SAFETY_INTERVAL
        } else {
            COUNTER_INTERVAL
        }
    }

    fn read_counters(&mut self) {
        match self.vmstat.read() {
            Some(v) => {
                if let Some(last) = self.vmstat_last {
                    self.stats.vmstat_kills += v.saturating_sub(last);
                }
                self.vmstat_last = Some(v);
            }
            None => self.stats.counter_read_errors += 1,
        }
        for c in &mut self.cgroups {
            match read_cg_counter(&c.w) {
                Some(v) => {
                    if let Some(last) = c.last {
                        c.unmatched += v.saturating_sub(last);
                    }
                    c.last = Some(v);
                }
                // A watched cgroup may come and go (a service restarting).
                None => c.last = None,
            }
        }
    }

    fn confirm(&mut self, mut ev: OomEvent) -> OomEvent {
        let mut confirmed_by = Vec::new();
        if ev.kind == EventKind::Kill {
            self.stats.reported_kills += 1;
            self.explained += 1;
            if self.stats.vmstat_kills >= self.explained {
                confirmed_by.push("vmstat".to_owned());
            } else {
                // Counted before our baseline, or the counter is missing: keep the books
                // straight so later counter-only kills are not hidden by this one.
                self.stats.vmstat_kills = self.explained;
            }
            let victim_cg = ev.task_memcg.clone().or_else(|| ev.oom_memcg.clone());
            if let Some(cg) = victim_cg {
                for c in &mut self.cgroups {
                    if c.unmatched > 0 && within(&cg, &c.w.path) {
                        c.unmatched -= 1;
                        confirmed_by.push(counter_name(c.w.version).to_owned());
                        break;
                    }
                }
            }
        }
        ev.detection = Some(Detection {
            via: "kmsg".to_owned(),
            confirmed_by,
            kmsg_lost_records: (self.lost_since_event > 0).then_some(self.lost_since_event),
            ..Detection::default()
        });
        self.lost_since_event = 0;
        ev
    }

    fn check_unexplained(&mut self, now: Instant, out: &mut Vec<OomEvent>) {
        let unexplained = self.stats.vmstat_kills.saturating_sub(self.explained);
        if unexplained == 0 {
            self.unexplained_since = None;
            return;
        }
        let since = *self.unexplained_since.get_or_insert(now);
        if now < since + COUNTER_GRACE {
            return;
        }
        self.unexplained_since = None;
        let mut left = unexplained;
        let mut emit = |count: u64, cg: Option<&CgState>, lost: u64, err: Option<&str>| {
            let mut ev = OomEvent::new(EventKind::Kill);
            let mut confirmed_by = vec!["vmstat".to_owned()];
            if let Some(c) = cg {
                confirmed_by.push(counter_name(c.w.version).to_owned());
                if c.w.version == CgroupVersion::V1 {
                    // v1 counts kills in this memcg itself (not its children): the victim was
                    // in it.
                    ev.task_memcg = Some(c.w.path.clone());
                }
            }
            ev.detection = Some(Detection {
                via: "counter".to_owned(),
                confirmed_by,
                count: Some(count),
                cgroup: cg.map(|c| c.w.path.clone()),
                kmsg_lost_records: (lost > 0).then_some(lost),
                kmsg_error: err.map(str::to_owned),
            });
            out.push(ev);
        };
        let lost = self.lost_since_event;
        let err = self.kmsg_error.clone();
        for c in &mut self.cgroups {
            if left == 0 {
                break;
            }
            if c.unmatched > 0 {
                let n = c.unmatched.min(left);
                c.unmatched -= n;
                left -= n;
                emit(n, Some(&*c), lost, err.as_deref());
            }
        }
        if left > 0 {
            emit(left, None, lost, err.as_deref());
        }
        self.lost_since_event = 0;
        self.stats.unreported_kills += unexplained;
        self.explained += unexplained;
    }
}

/// `prio,seq,usec,flags;text` into `out` (cleared first).
pub fn format_record(out: &mut Vec<u8>, rec: &KmsgRecord<'_>) {
    use std::io::Write;
    out.clear();
    let prio = (u32::from(rec.facility) << 3) | u32::from(rec.level);
    let _ = write!(
        out,
        "{prio},{},{},-;{}",
        rec.seq, rec.usec_monotonic, rec.text
    );
}

#[cfg(test)]
mod tests;
