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
mod tests {
    use super::*;
    use crate::testutil::{is_root, skip, Hog, TempCgroup, KMSG_LOCK};
    use std::io::Write;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/explain/real/memcg-allocating-task.kmsg.log"
    );
    const FIXTURE_CG: &str = "/process_api/4a82ca3de78bc2bcc986eb2a290d8a6a/oomguard-fixture-4";

    /// A fake /proc with a vmstat, and a fake v1 memcg with an oom_control.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("proc")).unwrap();
            std::fs::create_dir_all(dir.path().join("cg")).unwrap();
            let f = Fake { dir };
            f.set(5, 0);
            f
        }
        fn set(&self, vmstat: u64, cg: u64) {
            std::fs::write(
                self.dir.path().join("proc/vmstat"),
                format!("nr_free_pages 1000\noom_kill {vmstat}\npswpin 0\n"),
            )
            .unwrap();
            std::fs::write(
                self.dir.path().join("cg/memory.oom_control"),
                format!("oom_kill_disable 0\nunder_oom 0\noom_kill {cg}\n"),
            )
            .unwrap();
        }
        fn detector(&self, now: Instant) -> KernelOomDetector {
            KernelOomDetector::new(
                Options {
                    kmsg: None,
                    proc_root: self.dir.path().join("proc"),
                    cgroups: vec![WatchedCgroup {
                        path: FIXTURE_CG.to_owned(),
                        dir: self.dir.path().join("cg"),
                        version: CgroupVersion::V1,
                    }],
                },
                now,
            )
        }
    }

    fn kernel_facility(line: &str) -> bool {
        line.split(',')
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p >> 3 == 0)
    }

    #[test]
    fn interleaved_report_is_assembled_and_confirmed_by_the_counters() {
        let fake = Fake::new();
        let t0 = Instant::now();
        let mut det = fake.detector(t0);
        // The kill happened: counters first (as the kernel does), then the report.
        fake.set(6, 1);
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        let mut seq = 100_000u64;
        for (i, line) in text.lines().enumerate() {
            det.ingest_line(line.as_bytes(), kernel_facility(line), 0, t0);
            // Unrelated kernel and userspace records between every line of the report.
            if i % 3 == 0 {
                seq += 1;
                let other = format!("6,{seq},1,-;usb 1-1: new high-speed USB device number {i}");
                det.ingest_line(other.as_bytes(), true, 0, t0);
                let user = format!("12,{seq},1,-;Killed process 1 (init) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB");
                det.ingest_line(user.as_bytes(), false, 0, t0);
            }
        }
        let mut out = Vec::new();
        det.on_tick(t0 + Duration::from_millis(10), &mut out);
        assert!(out.is_empty(), "held until the log is quiet");
        det.on_tick(t0 + QUIET, &mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        let ev = &out[0];
        assert_eq!(ev.kind, EventKind::Kill);
        assert_eq!(ev.pid, Some(13249));
        assert_eq!(ev.comm.as_deref(), Some("python3"));
        assert_eq!(ev.task_memcg.as_deref(), Some(FIXTURE_CG));
        assert_eq!(ev.memcg_limit_kb, Some(98304));
        assert_eq!(ev.anon_rss_kb, Some(67584));
        let d = ev.detection.as_ref().unwrap();
        assert_eq!(d.via, "kmsg");
        assert_eq!(d.confirmed_by, vec!["vmstat", "memory.oom_control"]);
        // Nothing unexplained is left: no counter-only event later.
        let mut later = Vec::new();
        det.on_tick(t0 + Duration::from_secs(2), &mut later);
        det.on_tick(t0 + Duration::from_secs(3), &mut later);
        assert!(later.is_empty(), "{later:#?}");
        assert_eq!(det.stats().reported_kills, 1);
        assert_eq!(det.stats().unreported_kills, 0);
    }

    #[test]
    fn kill_seen_only_in_counters_is_reported_with_what_is_known() {
        let fake = Fake::new();
        let t0 = Instant::now();
        let mut det = fake.detector(t0);
        // Two kills: one in the watched cgroup, one elsewhere; their report lines were lost.
        fake.set(7, 1);
        det.ingest_line(b"6,500,1,-;unrelated record after a gap", true, 1234, t0);
        let mut out = Vec::new();
        let mut t = t0;
        while out.is_empty() && t < t0 + Duration::from_secs(2) {
            t = det.next_deadline(t).max(t + Duration::from_millis(1));
            det.on_tick(t, &mut out);
        }
        assert!(
            t - t0 <= COUNTER_INTERVAL + COUNTER_GRACE + QUIET,
            "{:?}",
            t - t0
        );
        assert_eq!(out.len(), 2, "{out:#?}");
        let d0 = out[0].detection.as_ref().unwrap();
        assert_eq!(d0.via, "counter");
        assert_eq!(d0.count, Some(1));
        assert_eq!(d0.cgroup.as_deref(), Some(FIXTURE_CG));
        assert_eq!(d0.confirmed_by, vec!["vmstat", "memory.oom_control"]);
        assert_eq!(d0.kmsg_lost_records, Some(1234));
        assert_eq!(out[0].task_memcg.as_deref(), Some(FIXTURE_CG));
        let d1 = out[1].detection.as_ref().unwrap();
        assert_eq!((d1.count, d1.cgroup.as_deref()), (Some(1), None));
        assert_eq!(det.stats().unreported_kills, 2);
    }

    #[test]
    fn within_is_path_aware() {
        assert!(within("/a/b", "/a"));
        assert!(within("/a", "/a"));
        assert!(within("/a/b", "/"));
        assert!(!within("/a/bc", "/a/b"));
    }

    // ---- real kernel ----

    /// Sets kernel.printk_devkmsg=on for the flood (userspace writes are rate-limited to 10 per
    /// 5 s otherwise) and restores it.
    struct DevkmsgOn(Option<String>);
    const PRINTK_DEVKMSG: &str = "/proc/sys/kernel/printk_devkmsg";
    impl DevkmsgOn {
        fn set() -> Self {
            let old = std::fs::read_to_string(PRINTK_DEVKMSG).unwrap_or_default();
            let old = old.trim().to_owned();
            if old == "on" || old.is_empty() {
                return DevkmsgOn(None);
            }
            // "on\n" with the newline: 6.18's handler rejects it without.
            let _ = std::fs::write(PRINTK_DEVKMSG, "on\n");
            DevkmsgOn(Some(old))
        }
    }
    impl Drop for DevkmsgOn {
        fn drop(&mut self) {
            if let Some(old) = &self.0 {
                if let Err(e) = std::fs::write(PRINTK_DEVKMSG, format!("{old}\n")) {
                    eprintln!("WARNING: could not restore {PRINTK_DEVKMSG}={old}: {e}");
                }
            }
        }
    }

    fn flood(tag: &str, n: usize) {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .unwrap();
        let pad = "x".repeat(64);
        for i in 0..n {
            let _ = w.write_all(format!("<12>{tag} flood {i} {pad}\n").as_bytes());
        }
    }

    struct Run {
        events: Vec<(Instant, OomEvent)>,
        exited_at: Option<Instant>,
        longest_call: Duration,
    }

    /// The daemon's loop in miniature: poll the detector's fd and the hog's pidfd, with the
    /// detector's deadline; stop when `done` says so or at `limit`.
    fn run_loop(
        det: &mut KernelOomDetector,
        hog: &Hog,
        limit: Duration,
        done: impl Fn(&OomEvent) -> bool,
    ) -> Run {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let start = Instant::now();
        let mut run = Run {
            events: Vec::new(),
            exited_at: None,
            longest_call: Duration::ZERO,
        };
        while start.elapsed() < limit {
            let now = Instant::now();
            let wake = det.next_deadline(now).min(start + limit);
            let timeout = wake.saturating_duration_since(now);
            let ts = Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            let (kmsg_ready, hog_gone) = {
                let mut fds = vec![PollFd::from_borrowed_fd(
                    hog.kid.pinned.pidfd(),
                    PollFlags::IN,
                )];
                if let Some(fd) = det.fd() {
                    fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                }
                let _ = poll(&mut fds, Some(&ts));
                (
                    fds.get(1).is_some_and(|f| !f.revents().is_empty()),
                    !fds[0].revents().is_empty(),
                )
            };
            let t = Instant::now();
            if hog_gone && run.exited_at.is_none() {
                run.exited_at = Some(t);
            }
            let mut out = Vec::new();
            if kmsg_ready {
                det.on_readable(t, &mut out);
            }
            det.on_tick(Instant::now(), &mut out);
            run.longest_call = run.longest_call.max(t.elapsed());
            let at = Instant::now();
            let finished = out.iter().any(&done);
            run.events.extend(out.into_iter().map(|e| (at, e)));
            if finished {
                break;
            }
        }
        run
    }

    fn setup(test: &str) -> Option<(TempCgroup, WatchedCgroup)> {
        if !is_root() {
            skip(test, "needs root (memory cgroups, /dev/kmsg)");
            return None;
        }
        let cg = TempCgroup::memory_v1(test, 64 << 20)?;
        let w = WatchedCgroup {
            path: cg.rel_path.clone(),
            dir: cg.dir.clone(),
            version: CgroupVersion::V1,
        };
        Some((cg, w))
    }

    fn comm_of(pid: i32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim_end()
            .to_owned()
    }

    /// The kernel (not oomguard) kills a hog in a 64 MiB memcg; the detector reports it from
    /// /dev/kmsg within 1 s with the right victim, cgroup and figures, confirmed by counters.
    /// Userspace records are written into /dev/kmsg throughout, interleaving with the report.
    #[test]
    fn real_memcg_oom_is_reported_within_a_second() {
        let _lock = KMSG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let Some((cg, w)) = setup("tell-oom") else {
            return;
        };
        let _devkmsg = DevkmsgOn::set();
        let mut det = KernelOomDetector::new(
            Options {
                cgroups: vec![w],
                ..Options::default()
            },
            Instant::now(),
        );
        if let Some(e) = det.kmsg_error() {
            skip("real_memcg_oom_is_reported_within_a_second", e);
            return;
        }
        let tag = format!("oomguard-tell-{}", std::process::id());
        let noise = {
            let tag = tag.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    flood(&format!("{tag} noise {i}"), 1);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let mut hog = Hog::spawn(120 << 20, Some(&cg), false).unwrap();
        let pid = hog.pid();
        let comm = comm_of(pid);
        let run = run_loop(&mut det, &hog, Duration::from_secs(15), |e| {
            e.pid == Some(i64::from(pid))
        });
        noise.join().unwrap();
        hog.reap();
        let (at, ev) = run
            .events
            .iter()
            .find(|(_, e)| e.pid == Some(i64::from(pid)))
            .unwrap_or_else(|| panic!("no event for pid {pid}: {:#?}", run.events));
        let exited = run.exited_at.unwrap_or(*at);
        let latency = at.saturating_duration_since(exited);
        eprintln!(
            "kernel OOM of pid {pid} reported {latency:?} after its exit was seen; longest detector call {:?}; stats {:?}",
            run.longest_call,
            det.stats()
        );
        let bound = COUNTER_INTERVAL + COUNTER_GRACE + Duration::from_millis(300);
        assert!(latency < bound, "{latency:?}");
        assert_eq!(ev.kind, EventKind::Kill);
        assert_eq!(ev.comm.as_deref(), Some(comm.as_str()));
        assert_eq!(ev.task_memcg.as_deref(), Some(cg.rel_path.as_str()));
        assert_eq!(ev.oom_memcg.as_deref(), Some(cg.rel_path.as_str()));
        assert_eq!(ev.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
        assert_eq!(ev.memcg_limit_kb, Some(65536));
        assert_eq!(ev.oom_score_adj, Some(1000));
        assert!(
            ev.anon_rss_kb.unwrap_or(0) > 32 << 10,
            "{:?}",
            ev.anon_rss_kb
        );
        let d = ev.detection.as_ref().unwrap();
        assert_eq!(d.via, "kmsg");
        assert!(d.confirmed_by.contains(&"vmstat".to_owned()), "{d:?}");
        assert!(
            d.confirmed_by.contains(&"memory.oom_control".to_owned()),
            "{d:?}"
        );
        assert!(
            run.longest_call < Duration::from_millis(50),
            "{:?}",
            run.longest_call
        );
    }

    /// A flood overruns the ring buffer (EPIPE) before the OOM: the follower resumes and still
    /// reports the kill from its report.
    #[test]
    fn follower_survives_an_overrun_and_reports_the_next_oom() {
        let _lock = KMSG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let Some((cg, w)) = setup("tell-flood") else {
            return;
        };
        let _devkmsg = DevkmsgOn::set();
        let mut det = KernelOomDetector::new(
            Options {
                cgroups: vec![w],
                ..Options::default()
            },
            Instant::now(),
        );
        if det.kmsg_error().is_some() {
            return;
        }
        // 5,000 records of ~110 bytes: several times the ring buffer.
        flood(&format!("oomguard-tell-{}", std::process::id()), 5000);
        let mut hog = Hog::spawn(120 << 20, Some(&cg), false).unwrap();
        let pid = hog.pid();
        let run = run_loop(&mut det, &hog, Duration::from_secs(15), |e| {
            e.pid == Some(i64::from(pid))
        });
        hog.reap();
        let s = det.stats();
        eprintln!("after the flood: {s:?}");
        // The follower opened at the end and had read nothing before the flood, so the gap's
        // size is unknown (no sequence number to subtract from): the overrun is what shows.
        assert!(s.kmsg_overruns >= 1, "{s:?}");
        let ev = run
            .events
            .iter()
            .map(|(_, e)| e)
            .find(|e| e.pid == Some(i64::from(pid)))
            .unwrap_or_else(|| panic!("no event for {pid}: {:#?}", run.events));
        assert_eq!(ev.detection.as_ref().unwrap().via, "kmsg");
        assert_eq!(ev.task_memcg.as_deref(), Some(cg.rel_path.as_str()));
    }

    /// The report itself is overwritten before the follower reads it: the kill is still
    /// reported, from the counters, naming the cgroup.
    #[test]
    fn kill_whose_report_was_overwritten_is_reported_from_the_counters() {
        let _lock = KMSG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let Some((cg, w)) = setup("tell-lost") else {
            return;
        };
        let _devkmsg = DevkmsgOn::set();
        let mut det = KernelOomDetector::new(
            Options {
                cgroups: vec![w],
                ..Options::default()
            },
            Instant::now(),
        );
        if det.kmsg_error().is_some() {
            return;
        }
        let mut hog = Hog::spawn(120 << 20, Some(&cg), false).unwrap();
        let pid = hog.pid();
        assert!(hog.kid.pinned.wait_exit(Duration::from_secs(15)).unwrap());
        // Not read yet: now bury the report under 5,000 records.
        flood(&format!("oomguard-tell-{}", std::process::id()), 5000);
        let start = Instant::now();
        let path = cg.rel_path.clone();
        let run = run_loop(&mut det, &hog, Duration::from_secs(5), |e| {
            e.detection
                .as_ref()
                .is_some_and(|d| d.cgroup.as_deref() == Some(path.as_str()))
        });
        hog.reap();
        let (at, ev) = run
            .events
            .iter()
            .find(|(_, e)| {
                e.detection
                    .as_ref()
                    .is_some_and(|d| d.cgroup.as_deref() == Some(cg.rel_path.as_str()))
            })
            .unwrap_or_else(|| panic!("no counter event: {:#?}", run.events));
        let took = at.duration_since(start);
        eprintln!("report of pid {pid} lost; counter event after {took:?}: {ev:?}");
        // At most one counter interval, the grace, and a margin for a loaded machine.
        let bound = COUNTER_INTERVAL + COUNTER_GRACE + Duration::from_millis(300);
        assert!(took < bound, "{took:?}");
        let d = ev.detection.as_ref().unwrap();
        assert_eq!(d.via, "counter");
        assert_eq!(d.count, Some(1));
        assert!(det.stats().kmsg_overruns >= 1, "{:?}", det.stats());
        assert_eq!(ev.task_memcg.as_deref(), Some(cg.rel_path.as_str()));
    }

    /// /dev/kmsg unreadable: detection runs on the counters alone.
    #[test]
    fn counters_alone_when_kmsg_is_unreadable() {
        let Some((cg, w)) = setup("tell-nokmsg") else {
            return;
        };
        let mut det = KernelOomDetector::new(
            Options {
                kmsg: Some(PathBuf::from("/nonexistent/kmsg")),
                cgroups: vec![w],
                ..Options::default()
            },
            Instant::now(),
        );
        assert!(det.kmsg_error().is_some());
        assert!(det.fd().is_none());
        let mut hog = Hog::spawn(120 << 20, Some(&cg), false).unwrap();
        let path = cg.rel_path.clone();
        let run = run_loop(&mut det, &hog, Duration::from_secs(15), |e| {
            e.detection
                .as_ref()
                .is_some_and(|d| d.cgroup.as_deref() == Some(path.as_str()))
        });
        hog.reap();
        let (at, ev) = run
            .events
            .iter()
            .find(|(_, e)| {
                e.detection
                    .as_ref()
                    .is_some_and(|d| d.cgroup.as_deref() == Some(cg.rel_path.as_str()))
            })
            .unwrap_or_else(|| panic!("no counter event: {:#?}", run.events));
        let latency = at.saturating_duration_since(run.exited_at.unwrap_or(*at));
        eprintln!("counter-only detection {latency:?} after exit");
        let bound = COUNTER_INTERVAL + COUNTER_GRACE + Duration::from_millis(300);
        assert!(latency < bound, "{latency:?}");
        let d = ev.detection.as_ref().unwrap();
        assert!(d.kmsg_error.is_some());
        assert_eq!(d.confirmed_by, vec!["vmstat", "memory.oom_control"]);
    }
}
