//! Tests of `kernel_oom`.

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
