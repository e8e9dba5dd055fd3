//! A stand-in for `oomguard watch` built only from the `tell` components, so the whole chain
//! (real kernel OOM → detector → counter → Prometheus → alert) can be exercised before the
//! daemon exists: `tests/kernel_prometheus.rs` scrapes it with a real Prometheus.
//!
//! It reads the daemon's config file (`--config FILE`: `[metrics]`, `[events]`, `[[hooks]]`,
//! `[notify]`, `[[cgroups]]`) and runs the daemon's loop shape: one thread, one `poll()` over
//! the Teller's fds with its deadline. Its only "policy" is a stand-in for the real one: a
//! watched v1 memory cgroup whose usage comes within `headroom` of its limit gets its largest
//! process SIGKILLed through a pidfd, recorded as an oomguard kill (trigger `cgroup`).
//!
//! `cargo run --example tell_target -- --config FILE [--run-for SECS]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oomguard::act::pidfd::Pinned;
use oomguard::host::procfs::ProcFs;
use oomguard::sense::kernel_oom::{self, WatchedCgroup};
use oomguard::tell::hub::{Teller, TellerOptions};
use oomguard_core::event::{
    Action, EventKind, KillUnit, OomEvent, Outcome, Signal, Source, TriggerInfo, Victim,
};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::trigger::Trigger;
use rustix::event::{poll, PollFd, Timespec};

/// Host gauges and the stand-in policy run this often.
const SAMPLE: Duration = Duration::from_millis(100);

fn v1_memory_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    oomguard_core::run::parse_cgroup_mounts(&mounts)
        .memory_v1
        .map(PathBuf::from)
}

fn read_u64(p: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn vmrss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            oomguard_core::host::process::scan_status(s.as_bytes())
                .ok()?
                .status
                .vm_rss_bytes
        })
        .unwrap_or(0)
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    let mut run_for = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next(),
            "--run-for" => run_for = args.next().and_then(|s| s.parse::<u64>().ok()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let path = config.ok_or("--config FILE is required")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let cfg = oomguard_core::config::parse(&text, &path).map_err(|e| e.to_string())?;
    let mount = v1_memory_mount();
    let watched: Vec<WatchedCgroup> = cfg
        .cgroups
        .iter()
        .filter_map(|c| {
            let dir = mount.as_ref()?.join(c.path.trim_start_matches('/'));
            dir.exists().then(|| WatchedCgroup {
                path: c.path.clone(),
                dir,
                version: CgroupVersion::V1,
            })
        })
        .collect();
    let start = Instant::now();
    let mut teller = Teller::new(
        &cfg,
        TellerOptions {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            detector: Some(kernel_oom::Options {
                cgroups: watched.clone(),
                ..kernel_oom::Options::default()
            }),
            journal_socket: None,
            own_event_lines: false,
        },
        start,
    )?;
    if let Some(e) = teller.detector.as_ref().and_then(|d| d.kmsg_error()) {
        eprintln!("tell_target: /dev/kmsg not read ({e}); counters only");
    }
    if let Some(s) = &teller.server {
        eprintln!(
            "tell_target: metrics on http://{:?}/metrics",
            s.local_addr()
        );
    }
    let procfs = ProcFs::default();
    let mut next_sample = start;
    let mut kernel_events = Vec::new();
    loop {
        let now = Instant::now();
        if run_for.is_some_and(|s| now.duration_since(start) >= Duration::from_secs(s)) {
            return Ok(());
        }
        let wake = teller
            .next_deadline(now)
            .map_or(next_sample, |d| d.min(next_sample));
        let timeout = wake.saturating_duration_since(now);
        {
            let mut fds = Vec::new();
            teller.poll_fds(&mut fds);
            let mut pfds: Vec<PollFd<'_>> = fds
                .iter()
                .map(|(fd, fl)| PollFd::from_borrowed_fd(*fd, *fl))
                .collect();
            let ts = Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            let _ = poll(&mut pfds, Some(&ts));
        }
        let woke = Instant::now();
        teller.on_ready(woke, &mut kernel_events);
        for ev in kernel_events.drain(..) {
            eprintln!(
                "tell_target: kernel OOM kill: pid {:?} ({:?}) in {:?}, via {:?}",
                ev.pid,
                ev.comm,
                ev.task_memcg,
                ev.detection.as_ref().map(|d| d.via.as_str())
            );
        }
        if woke >= next_sample {
            next_sample = woke + SAMPLE;
            if let Ok(mem) = procfs.read_meminfo() {
                let psi = procfs.read_pressure_memory().ok();
                teller.set_host(&mem, psi.as_ref());
            }
            for (w, c) in watched.iter().zip(cfg.cgroups.iter()) {
                let usage = read_u64(&w.dir.join("memory.usage_in_bytes"));
                let limit =
                    read_u64(&w.dir.join("memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
                teller.set_cgroup(&w.path, usage, limit);
                let (Some(usage), Some(limit)) = (usage, limit) else {
                    continue;
                };
                let headroom = c.headroom.resolve(limit);
                if headroom == 0 || usage + headroom < limit {
                    continue;
                }
                stand_in_kill(&mut teller, w, usage, limit);
            }
        }
        teller.count_iteration(woke.elapsed());
    }
}

/// The stand-in policy: SIGKILL the cgroup's largest process through a pidfd; record it.
fn stand_in_kill(teller: &mut Teller, w: &WatchedCgroup, usage: u64, limit: u64) {
    let procs = std::fs::read_to_string(w.dir.join("cgroup.procs")).unwrap_or_default();
    let Some((pid, rss)) = procs
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .map(|p| (p, vmrss_bytes(p)))
        .max_by_key(|(_, r)| *r)
    else {
        return;
    };
    let Ok(pinned) = Pinned::open(pid) else {
        return;
    };
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_owned();
    let t0 = Instant::now();
    let sent = pinned.send_signal(rustix::process::Signal::KILL);
    let exited = pinned
        .wait_exit(Duration::from_millis(200))
        .unwrap_or(false);
    let mut ev = OomEvent::new(EventKind::Kill);
    ev.source = Source::Oomguard;
    ev.trigger = Some(TriggerInfo {
        reason: Trigger::CgroupHeadroom,
        detail: Some(format!("{} usage {usage} of limit {limit}", w.path)),
        cgroup: Some(w.path.clone()),
        cgroup_usage_bytes: Some(usage),
        cgroup_limit_bytes: Some(limit),
        ..TriggerInfo::default()
    });
    ev.victim = Some(Victim {
        pid: i64::from(pid),
        name,
        cgroup: Some(w.path.clone()),
        rss_bytes: Some(rss),
        ..Victim::default()
    });
    ev.action = Some(Action {
        signal: Some(Signal::Kill),
        unit: Some(KillUnit::Process),
        outcome: Some(match (&sent, exited) {
            (Err(_), _) => Outcome::Failed,
            (Ok(_), true) => Outcome::Exited,
            (Ok(_), false) => Outcome::Timeout,
        }),
        exited_after_ms: exited.then(|| t0.elapsed().as_millis() as u64),
        error: sent.err().map(|e| e.to_string()),
        ..Action::default()
    });
    let ev = teller.record(ev, Instant::now());
    eprintln!("tell_target: killed pid {pid} ({:?})", ev.id);
}
