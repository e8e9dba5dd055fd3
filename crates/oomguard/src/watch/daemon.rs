//! The daemon loop: one thread, one `poll()` over every input (signals, PSI triggers, cgroup
//! eventfds) with an adaptive timeout; a reading of memory on each wake; and, when a rule fires,
//! the kill path: scan, judge, re-check, pin, signal, release, wait, recover.
//!
//! Steady state (no pressure) reads /proc/meminfo (and the PSI file when a PSI rule is set)
//! through descriptors opened at start into one buffer sized at start: no allocation, no
//! directory walk. The process scan happens only when a rule fires.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use oomguard_core::badness::{self, Era};
use oomguard_core::config::{Config, KillUnit};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::host::system;
use oomguard_core::policy::{self, Judgement, Policy};
use oomguard_core::size::format_bytes;
use oomguard_core::trigger::{
    self, Level, PollPlan, PsiRule, PsiState, Sample, Thresholds, Trigger, Verdict, WarmPlan,
};

use super::cgroups::{self, Watched};
use super::sdnotify::Notifier;
use super::WatchArgs;
use crate::host::scan::{ProcSample, Sampled, ScanStats, Scanner};
use crate::host::{page_size_bytes, CgroupFs, ProcFs};
use crate::sys::actuator::{
    self, Actuator, CgroupTarget, DryRunActuator, KillOutcome, KillPlan, KillResult, RealActuator,
};
use crate::sys::pidfd::Pinned;
use crate::sys::psi::{PsiTrigger, StallKind, WindowRounding};
use crate::sys::{mlock, reread};
use crate::tell::hub::{Teller, TellerOptions};
use crate::tell::kernel_oom::{self, WatchedCgroup};
use oomguard_core::event::{self as ev, EventKind, OomEvent, Source};

/// Where a decision applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Global,
    Cgroup(usize),
}

/// State after a kill: no new victim in the same scope until memory is back.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    started: Instant,
    /// The figure that must rise (MemAvailable, or a cgroup's memory below its limit) as it was
    /// at the last counted rise, and when that was.
    last_value: u64,
    last_rise: Instant,
    victim_gone: bool,
}

/// How long memory must stop rising, after the victim is gone, before a new victim may be chosen
/// while pressure remains. The reaper and exit path return a victim's pages within a few ms
/// (docs/kill-path.md: 1–4 ms for 32–120 MiB); 250 ms of no rise means it is over.
const SETTLE: Duration = Duration::from_millis(250);

/// The ahead-of-need ranking (see [`WarmPlan`]): a whole-process scan done in slices of
/// [`WARM_SLICE`] between readings while memory falls fast towards the SIGTERM threshold, so the
/// decision at the crossing re-reads only the [`WARM_TOP`] best candidates instead of every
/// process. Measured here (docs/benchmarks.md): the decision scan of 8,000 processes took 0.46 s,
/// 470 ms from crossing to signal at 256 MiB/s; a slice keeps the reading interval near 1 ms.
/// A process started after the pass began is listed and read at the decision; a process that grew
/// past the best [`WARM_TOP`] since the pass began is the case this trades away (passes repeat
/// every [`WARM_REFRESH`] while memory falls); a pass is used only if it began at most
/// [`WARM_MAX_AGE`] ago.
#[derive(Debug, Default)]
struct WarmScan {
    pids: Vec<i32>,
    next: usize,
    /// The pass in progress began then.
    started: Option<Instant>,
    /// What this pass reads of each process (chosen when it began).
    glance: Glance,
    partial: Vec<Glimpse>,
    /// `/proc/sys/kernel/ns_last_pid` just before the pass listed `/proc`: a process started
    /// since has a higher pid (unless pid numbers wrapped).
    last_pid: Option<i32>,
    /// The last complete pass (its pids sorted), its `last_pid`, and when it began.
    done_last_pid: Option<i32>,
    done: Vec<Glimpse>,
    done_pids: Vec<i32>,
    /// The pass's best candidates by the policy's score, read in full and judged when the pass
    /// completed (see [`Daemon::rank_warm`]).
    best: Vec<ProcSample>,
    done_at: Option<Instant>,
    /// MemAvailable at the start of the fill window, and when: the fill that asks for a ranking
    /// is measured over at least [`WARM_FILL_WINDOW`], as readings 1 ms apart often see no change
    /// (the kernel folds per-CPU counter deltas into MemAvailable in batches).
    window: Option<(u64, Instant)>,
    fill_bytes_per_s: f64,
    /// Keep ranking until then (the last time the plan asked for it, plus [`WARM_LINGER`]).
    until: Option<Instant>,
}

/// The fill that asks for a ranking ahead is measured over at least this.
const WARM_FILL_WINDOW: Duration = Duration::from_millis(100);
/// ... or until MemAvailable fell this much, whichever comes first: a fast fill starts the
/// ranking sooner. The per-CPU batching moves MemAvailable by a few MiB at most, so 32 MiB is a
/// real fall. Measured with bench/watch.sh: at ~2.5 GiB/s with 8,000 processes the 100 ms window
/// alone started the first pass only ~150 ms before the crossing, too late in 3 of 5 runs.
const WARM_FILL_DROP_BYTES: u64 = 32 << 20;
/// Once asked for, the ranking goes on for at least this (no flapping on a noisy fill).
const WARM_LINGER: Duration = Duration::from_secs(1);
/// How long one slice of the ahead-of-need scan may take before the next reading.
const WARM_SLICE: Duration = Duration::from_millis(1);
/// A complete pass is repeated after this while memory keeps falling fast.
const WARM_REFRESH: Duration = Duration::from_millis(500);
/// A pass older than this is not used for a decision.
const WARM_MAX_AGE: Duration = Duration::from_secs(2);
/// Candidates re-read (identity and memory) at the decision, best first by the pass's figures.
/// The fast grower that brought the crossing only gains rank between the pass and the decision.
const WARM_TOP: usize = 16;
/// At most this many processes are read in full when a pass completes (the best by their
/// glimpse, until [`WARM_TOP`] eligible ones are found and no later one can beat the best).
const WARM_READ_MAX: usize = 64;

/// What the ahead-of-need pass reads of each process. Reading `stat`, `status` and
/// `oom_score_adj` of 8,000 processes took 125-140 ms on the idle development VM (and 0.2-0.5 s
/// under load), `oom_score` alone 29-35 ms and `stat` 41-47 ms (measured with a C loop of
/// openat/read/close over every pid, 2026-11-29); a fill at 2.5 GiB/s leaves ~200 ms between
/// the first fall and a threshold 512 MiB lower. `oom_score` is the kernel's own badness
/// (memory, swap, page tables and `oom_score_adj`) in steps of 1/1000 of RAM + swap: enough to
/// rank, and the best are then read in full and judged exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Glance {
    /// `oom_score` only: no rule can raise a score, so the kernel's badness bounds the
    /// policy's score from above.
    #[default]
    Score,
    /// `oom_score` and `stat`: a `prefer` rule may raise a score (the name bounds by how much),
    /// or candidates are limited to one parent's descendants (the parent pid).
    ScoreAndStat,
}

/// One process as the ahead-of-need pass glimpsed it: enough to rank it, not to judge it.
#[derive(Debug, Clone, Copy)]
struct Glimpse {
    pid: i32,
    /// 0 when `stat` was not read.
    ppid: i32,
    /// An upper bound of the policy's score, in permille of the global totalpages.
    bound_permille: i64,
}

/// The running daemon.
pub struct Daemon {
    /// Whether `mlockall` succeeded (then re-done after shedding start-up pages).
    locked: bool,
    cfg: Config,
    origin: Option<PathBuf>,
    args: WatchArgs,
    procfs: ProcFs,
    cgfs: CgroupFs,
    meminfo: File,
    psi_file: Option<File>,
    buf: Vec<u8>,
    th: Thresholds,
    poll_plan: PollPlan,
    psi_state: PsiState,
    psi_triggers: Vec<PsiTrigger>,
    cgroups: Vec<Watched>,
    policy: Policy,
    actuator: Box<dyn Actuator>,
    scanner: Scanner,
    samples: Vec<ProcSample>,
    pids: Vec<i32>,
    era: Era,
    page_size: u64,
    users: HashMap<u32, String>,
    last_mem: Option<(u64, Instant)>,
    recovery: HashMap<Scope, Recovery>,
    /// No candidate was found: wait before scanning again (no busy loop).
    idle_until: HashMap<Scope, Instant>,
    warm_plan: WarmPlan,
    warm_wanted: bool,
    warm: WarmScan,
    /// How the last decision's candidates were listed, for its log line.
    candidates_note: String,
    kills: u64,
    decisions: u64,
    loops: u64,
    sigfd: OwnedFd,
    notifier: Notifier,
    started: Instant,
    report: Option<Duration>,
    last_report: Instant,
    /// The event log, journal, hooks, notifications, metrics and the kernel-OOM detector.
    tell: Teller,
    kernel_events: Vec<OomEvent>,
    /// Reused by every cgroup reading (sized at start).
    cgbuf: Vec<u8>,
    /// Reused by every poll() (sized at start).
    pollfds: Vec<libc::pollfd>,
}

fn log(msg: std::fmt::Arguments<'_>) {
    let mut e = io::stderr().lock();
    let _ = writeln!(e, "oomguard: {msg}");
}

/// Blocks SIGTERM, SIGINT and SIGHUP and returns a signalfd for them.
fn signal_fd() -> anyhow::Result<OwnedFd> {
    // SAFETY: sigset and signalfd are plain libc calls on a zeroed, owned set; the returned fd
    // is checked before it is owned.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error()).context("blocking signals");
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("signalfd");
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Pending signals on the signalfd.
fn read_signals(fd: &OwnedFd) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        let mut info = [0u8; 128];
        // SAFETY: reading into an owned buffer of the signalfd_siginfo size.
        let n = unsafe { libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
        if n != 128 {
            return out;
        }
        out.push(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]));
    }
}

fn read_sample(
    meminfo: &mut File,
    psi: Option<&mut File>,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Sample> {
    read_full(meminfo, psi, buf).map(|(s, _, _)| s)
}

/// A sample plus the parsed files, for the metrics gauges.
fn read_full(
    meminfo: &mut File,
    psi: Option<&mut File>,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(Sample, system::MemInfo, Option<system::Pressure>)> {
    reread(meminfo, buf).context("reading /proc/meminfo")?;
    let m = system::parse_meminfo_watch(buf).map_err(|e| anyhow!("/proc/meminfo: {e}"))?;
    let mut s = Sample {
        mem_total_bytes: m.mem_total_bytes.unwrap_or(0),
        mem_available_bytes: m
            .mem_available_bytes
            .ok_or_else(|| anyhow!("/proc/meminfo has no MemAvailable (kernel < 3.14?)"))?,
        swap_total_bytes: m.swap_total_bytes.unwrap_or(0),
        swap_free_bytes: m.swap_free_bytes.unwrap_or(0),
        ..Default::default()
    };
    let mut pressure = None;
    if let Some(f) = psi {
        reread(f, buf).context("reading /proc/pressure/memory")?;
        let p = system::parse_pressure(buf).map_err(|e| anyhow!("/proc/pressure/memory: {e}"))?;
        s.psi_some_avg10_pct = Some(p.some.avg10_pct);
        s.psi_full_avg10_pct = p.full.map(|f| f.avg10_pct);
        pressure = Some(p);
    }
    Ok((s, m, pressure))
}

fn thresholds(cfg: &Config, s: &Sample) -> Thresholds {
    let psi = |p: Option<oomguard_core::config::PsiSpec>| {
        p.map(|p| PsiRule {
            avg10_pct: p.avg10_pct,
            duration: p.duration,
        })
    };
    Thresholds {
        mem_term_bytes: cfg.memory.term_below.resolve(s.mem_total_bytes),
        mem_kill_bytes: cfg.memory.kill_below.resolve(s.mem_total_bytes),
        swap_term_bytes: cfg
            .swap
            .term_below
            .filter(|_| s.swap_total_bytes > 0)
            .map(|a| a.resolve(s.swap_total_bytes)),
        psi_some: psi(cfg.psi.some),
        psi_full: psi(cfg.psi.full),
    }
}

impl Daemon {
    /// Starts: validates the config against this host, protects itself, opens every input.
    /// Every failure here is fatal and named; after this, nothing stops the loop.
    pub fn start(
        cfg: Config,
        origin: Option<PathBuf>,
        args: WatchArgs,
        report: Option<Duration>,
    ) -> anyhow::Result<Daemon> {
        let procfs = ProcFs::default();
        let cgfs = CgroupFs::default();
        let (kernel, era) = crate::rank::kernel_era(&procfs)?;
        let policy =
            Policy::compile(&cfg.rules, std::process::id() as i32).map_err(|e| anyhow!(e))?;
        let mut meminfo = File::open("/proc/meminfo").context("opening /proc/meminfo")?;
        let need_psi = cfg.psi.some.is_some() || cfg.psi.full.is_some();
        let mut psi_file = if need_psi {
            Some(File::open("/proc/pressure/memory").context(
                "a PSI rule is set but /proc/pressure/memory cannot be opened (kernel without PSI, or booted with psi=0)",
            )?)
        } else {
            None
        };
        let mut buf = Vec::with_capacity(8192);
        let s = read_sample(&mut meminfo, psi_file.as_mut(), &mut buf)?;
        let th = thresholds(&cfg, &s);
        let patterns: Vec<_> = cfg
            .cgroups
            .iter()
            .map(|c| (c.path.clone(), c.headroom))
            .collect();
        let mut cgroups = cgroups::resolve(&cgfs, &patterns)?;
        if cgroups.is_empty() && !patterns.is_empty() {
            log(format_args!(
                "warning: no cgroup matches {:?} yet; will look again every 10 s",
                patterns.iter().map(|p| &p.0).collect::<Vec<_>>()
            ));
        }
        for w in &mut cgroups {
            match cgroups::read(&cgfs, w) {
                Ok(r) => {
                    if r.limit_bytes.is_none() {
                        log(format_args!(
                            "warning: cgroup {} has no memory limit: nothing to guard there",
                            w.path
                        ));
                    } else if let Some(msg) = w.arm(&r) {
                        log(format_args!("{msg}"));
                    }
                }
                Err(e) => log(format_args!("warning: cgroup {}: {e}", w.path)),
            }
        }
        // Self-protection. Each step degrades with a message rather than refusing to run.
        let lock = mlock::lock_all_memory();
        let adj = mlock::set_own_oom_score_adj(-1000);
        let actuator: Box<dyn Actuator> = if cfg.dry_run {
            Box::new(DryRunActuator::new(Box::new(io::stderr())))
        } else {
            Box::new(RealActuator)
        };
        let mut psi_triggers = Vec::new();
        for (kind, spec) in [
            (StallKind::Some, cfg.psi.some),
            (StallKind::Full, cfg.psi.full),
        ] {
            if let Some(p) = spec {
                // Wake when stalls reach the rule's share of a 2 s window (the smallest window
                // unprivileged callers may use on 6.5+); the rule itself is judged on avg10.
                let window = Duration::from_secs(2);
                let stall = window.mul_f64((p.avg10_pct / 100.0).clamp(0.001, 1.0));
                match PsiTrigger::arm_planned(
                    Path::new("/proc/pressure/memory"),
                    kind,
                    stall,
                    window,
                    WindowRounding::RoundUp,
                ) {
                    Ok(t) => psi_triggers.push(t),
                    Err(e) => log(format_args!(
                        "PSI trigger not armed ({e}); PSI is polled instead"
                    )),
                }
            }
        }
        let scanner = Scanner::new(&procfs).context("opening /proc")?;
        let sigfd = signal_fd()?;
        let notifier = Notifier::from_env();
        log(format_args!(
            "started on kernel {kernel}: MemTotal {}, SIGTERM below {} and SIGKILL below {} available{}{}; {}; {}",
            format_bytes(s.mem_total_bytes),
            format_bytes(th.mem_term_bytes),
            format_bytes(th.mem_kill_bytes),
            if cfg.dry_run { "; DRY RUN: nothing will be signalled" } else { "" },
            match (cfg.swap.term_below, s.swap_total_bytes) {
                (Some(_), 0) => "; no swap here: the swap rule is inert",
                _ => "",
            },
            lock.describe(),
            adj.describe()
        ));
        for w in &cgroups {
            log(format_args!(
                "guarding cgroup {} ({:?}), acting within {} of its limit",
                w.path, w.version, w.headroom
            ));
        }
        let detector = kernel_oom::Options {
            cgroups: cgroups
                .iter()
                .map(|w| WatchedCgroup {
                    path: w.path.clone(),
                    dir: w.dir.clone(),
                    version: w.version,
                })
                .collect(),
            ..Default::default()
        };
        let tell = Teller::new(
            &cfg,
            TellerOptions {
                version: env!("CARGO_PKG_VERSION").into(),
                detector: Some(detector),
                journal_socket: None,
                own_event_lines: false,
            },
            Instant::now(),
        )
        .map_err(|e| anyhow!("{e}"))?;
        if !cfg.metrics.listen.is_empty() {
            log(format_args!(
                "serving metrics on http://{}/metrics",
                cfg.metrics.listen
            ));
        }
        let poll_plan = PollPlan {
            min: cfg.poll.min,
            max: cfg.poll.max,
            floor_fill_bytes_per_s: cfg.poll.fill_rate as f64,
        };
        Ok(Daemon {
            cfg,
            origin,
            args,
            procfs,
            cgfs,
            meminfo,
            psi_file,
            buf,
            th,
            poll_plan,
            psi_state: PsiState::default(),
            psi_triggers,
            cgroups,
            policy,
            actuator,
            scanner,
            samples: Vec::with_capacity(4096),
            pids: Vec::with_capacity(4096),
            era,
            page_size: page_size_bytes(),
            users: crate::rank::users(Path::new("/etc/passwd")),
            last_mem: None,
            recovery: HashMap::new(),
            idle_until: HashMap::new(),
            warm_plan: WarmPlan::DEFAULT,
            warm_wanted: false,
            warm: WarmScan::default(),
            candidates_note: String::new(),
            locked: lock.is_locked(),
            kills: 0,
            decisions: 0,
            loops: 0,
            sigfd,
            notifier,
            started: Instant::now(),
            report,
            last_report: Instant::now(),
            tell,
            kernel_events: Vec::with_capacity(16),
            cgbuf: Vec::with_capacity(16 * 1024),
            pollfds: Vec::with_capacity(64),
        })
    }

    fn sample(&mut self) -> anyhow::Result<Sample> {
        read_sample(&mut self.meminfo, self.psi_file.as_mut(), &mut self.buf)
    }

    /// The loop. Returns the exit code when asked to stop.
    pub fn run(&mut self) -> anyhow::Result<i32> {
        let msg = self.settle_memory();
        log(format_args!("{msg}"));
        self.notifier.ready("watching");
        let mut last_rescan = Instant::now();
        loop {
            self.loops += 1;
            self.notifier.tick();
            let now = Instant::now();
            let mut timeout = self.poll_plan.max;
            match read_full(&mut self.meminfo, self.psi_file.as_mut(), &mut self.buf) {
                Ok((s, m, p)) => {
                    self.tell.set_host(&m, p.as_ref());
                    timeout = timeout.min(self.check_global(&s, now));
                }
                Err(e) => log(format_args!("error: {e:#}")),
            }
            for i in 0..self.cgroups.len() {
                timeout = timeout.min(self.check_cgroup(i));
            }
            if last_rescan.elapsed() >= Duration::from_secs(10) && !self.cfg.cgroups.is_empty() {
                self.rescan_cgroups();
                last_rescan = Instant::now();
            }
            if let Some(r) = self.report {
                if self.last_report.elapsed() >= r {
                    self.status_line();
                    self.last_report = Instant::now();
                }
                timeout = timeout.min(r);
            }
            if let Some(w) = self.notifier.max_sleep() {
                timeout = timeout.min(w);
            }
            if let Some(d) = self.tell.next_deadline(Instant::now()) {
                timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            }
            self.tell.count_iteration(now.elapsed());
            // Ranking ahead of need: one slice per iteration, and read again right away.
            if (self.warm_wanted || self.warm.started.is_some()) && self.warm_step() {
                timeout = Duration::ZERO;
            }
            if let Some(code) = self.wait(timeout)? {
                self.notifier.stopping();
                log(format_args!(
                    "stopping: {} decisions, {} kills, {} loop iterations",
                    self.decisions, self.kills, self.loops
                ));
                return Ok(code);
            }
        }
    }

    /// Sleeps on every input until `timeout`; handles signals. `Some(code)` to exit.
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        // The array is kept between iterations (no allocation in the steady loop).
        let mut fds = std::mem::take(&mut self.pollfds);
        fds.clear();
        let pfd = |fd: RawFd, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        fds.push(pfd(self.sigfd.as_raw_fd(), libc::POLLIN));
        for t in &self.psi_triggers {
            fds.push(pfd(t.fd().as_raw_fd(), libc::POLLPRI));
        }
        for w in &self.cgroups {
            if let Some(ev) = &w.wake {
                fds.push(pfd(ev.fd().as_raw_fd(), libc::POLLIN));
            }
        }
        self.tell.poll_raw(&mut fds);
        // ppoll, not poll: poll's timeout is whole milliseconds, and a deadline less than 1 ms
        // away rounded down to 0 made the loop spin until it passed (measured: ~35 wake-ups in
        // the last millisecond before each of the detector's counter reads, 227 ms of CPU a
        // minute while idle).
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: fds is a valid array of pollfd for its length; ts outlives the call; a null
        // sigmask leaves the mask alone.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        let signalled = fds[0].revents != 0;
        self.pollfds = fds;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log(format_args!("poll: {e}"));
            }
            return Ok(None);
        }
        // The tell side: it never blocks (kmsg, scrapes, hooks). Kernel OOM kills it finds are
        // logged, counted and handed to hooks there.
        self.tell
            .on_polled(Instant::now(), &self.pollfds, &mut self.kernel_events);
        self.kernel_events.clear();
        // Drain the cgroup eventfds so they do not stay readable.
        for w in &self.cgroups {
            if let Some(ev) = &w.wake {
                let _ = ev.read_count();
            }
        }
        if signalled {
            for sig in read_signals(&self.sigfd) {
                match sig as i32 {
                    libc::SIGTERM | libc::SIGINT => return Ok(Some(0)),
                    libc::SIGHUP => self.reload(),
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// SIGHUP: re-reads the config; a bad one is rejected and the running one stays.
    fn reload(&mut self) {
        self.notifier.reloading();
        let cfg = match super::effective_config(&self.args) {
            Ok((c, _)) => c,
            Err(e) => {
                log(format_args!(
                    "reload rejected, keeping the running config: {e:#}"
                ));
                self.notifier.ready("watching (reload rejected)");
                return;
            }
        };
        let policy = match Policy::compile(&cfg.rules, std::process::id() as i32) {
            Ok(p) => p,
            Err(e) => {
                log(format_args!(
                    "reload rejected, keeping the running config: {e}"
                ));
                self.notifier.ready("watching (reload rejected)");
                return;
            }
        };
        self.policy = policy;
        self.cfg = cfg;
        if let Ok(s) = self.sample() {
            self.th = thresholds(&self.cfg, &s);
        }
        self.poll_plan = PollPlan {
            min: self.cfg.poll.min,
            max: self.cfg.poll.max,
            floor_fill_bytes_per_s: self.cfg.poll.fill_rate as f64,
        };
        self.rescan_cgroups();
        log(format_args!(
            "reloaded {}",
            self.origin
                .as_ref()
                .map_or("flags".to_owned(), |p| p.display().to_string())
        ));
        // Parsing and compiling touched code the loop does not run: shed it again, but only
        // while memory is calm and not falling fast: the rehearsal is a ranking pass (tens of ms
        // with thousands of processes) during which the loop does not read memory.
        let calm = self.sample().is_ok_and(|s| {
            trigger::evaluate(&self.th, &s, &self.psi_state, self.started.elapsed()).level
                == Level::Calm
        });
        let msg = if calm && !self.warm_wanted {
            self.settle_memory()
        } else {
            "memory: start-up pages of the reload kept (memory is not calm; shed at the next reload)"
                .to_owned()
        };
        log(format_args!("{msg}"));
        self.notifier.ready("watching");
    }

    fn rescan_cgroups(&mut self) {
        let patterns: Vec<_> = self
            .cfg
            .cgroups
            .iter()
            .map(|c| (c.path.clone(), c.headroom))
            .collect();
        let Ok(found) = cgroups::resolve(&self.cgfs, &patterns) else {
            return;
        };
        // Keep existing watches (and their state); add new ones; drop removed ones.
        self.cgroups
            .retain(|w| w.exists() && found.iter().any(|f| f.dir == w.dir));
        for mut f in found {
            if self.cgroups.iter().any(|w| w.dir == f.dir) {
                continue;
            }
            if let Ok(r) = cgroups::read(&self.cgfs, &f) {
                if let Some(msg) = f.arm(&r) {
                    log(format_args!("{msg}"));
                }
            }
            log(format_args!(
                "guarding cgroup {} ({:?}), acting within {} of its limit",
                f.path, f.version, f.headroom
            ));
            self.cgroups.push(f);
        }
        self.recovery.retain(|s, _| {
            matches!(s, Scope::Global) || matches!(s, Scope::Cgroup(i) if *i < self.cgroups.len())
        });
    }

    fn status_line(&mut self) {
        if let Ok(s) = self.sample() {
            log(format_args!(
                "status: MemAvailable {} of {}, swap free {} of {}, PSI some {:?} full {:?}; {} decisions, {} kills, {} loops",
                format_bytes(s.mem_available_bytes),
                format_bytes(s.mem_total_bytes),
                format_bytes(s.swap_free_bytes),
                format_bytes(s.swap_total_bytes),
                s.psi_some_avg10_pct,
                s.psi_full_avg10_pct,
                self.decisions,
                self.kills,
                self.loops
            ));
        }
    }

    /// Whether an earlier kill in `scope` still holds back a new one. `value` is the figure that
    /// recovers (MemAvailable, or a cgroup's memory below its limit).
    fn held_back(&mut self, scope: Scope, value: u64, recovered: bool) -> bool {
        let timeout = self.cfg.kill.recovery_timeout;
        let Some(r) = self.recovery.get_mut(&scope) else {
            return false;
        };
        let now = Instant::now();
        // A rise is 1 MiB above the figure at the last counted rise, however many readings it
        // took: under pressure the daemon reads every millisecond or so, and memory coming back
        // at tens of MiB/s moves less than 1 MiB between two readings. Measuring from the last
        // counted rise (not the previous reading, not the lowest) keeps noise that goes up and
        // down around one level from counting as a rise.
        if value >= r.last_value.saturating_add(1 << 20) {
            r.last_rise = now;
            r.last_value = value;
        }
        let settled = r.victim_gone && now.duration_since(r.last_rise) >= SETTLE;
        if recovered || settled || now.duration_since(r.started) >= timeout {
            self.recovery.remove(&scope);
            return false;
        }
        true
    }

    /// System-wide rules; returns how long the loop may sleep.
    fn check_global(&mut self, s: &Sample, now: Instant) -> Duration {
        let since = now.duration_since(self.started);
        self.psi_state.observe(&self.th, s, since);
        let fill = match self.last_mem {
            Some((prev, at)) => trigger::fill_rate(
                prev,
                Duration::ZERO,
                s.mem_available_bytes,
                now.duration_since(at),
            ),
            None => 0.0,
        };
        self.last_mem = Some((s.mem_available_bytes, now));
        let verdict = trigger::evaluate(&self.th, s, &self.psi_state, since);
        let recovered = trigger::recovered(&self.th, s, self.cfg.kill.recovery_margin);
        let held = self.held_back(Scope::Global, s.mem_available_bytes, recovered);
        if verdict.level != Level::Calm && !held && !self.idle(Scope::Global) {
            self.act(Scope::Global, verdict, describe_sample(&self.th, s));
        }
        let headroom = s.mem_available_bytes.saturating_sub(self.th.mem_term_bytes);
        let w = &mut self.warm;
        match w.window {
            Some((prev, at))
                if now.duration_since(at) >= WARM_FILL_WINDOW
                    || prev.saturating_sub(s.mem_available_bytes) >= WARM_FILL_DROP_BYTES =>
            {
                w.fill_bytes_per_s = trigger::fill_rate(
                    prev,
                    Duration::ZERO,
                    s.mem_available_bytes,
                    now.duration_since(at),
                );
                w.window = Some((s.mem_available_bytes, now));
            }
            Some(_) => {}
            None => w.window = Some((s.mem_available_bytes, now)),
        }
        if self.warm_plan.wanted(headroom, w.fill_bytes_per_s) {
            w.until = Some(now + WARM_LINGER);
        }
        self.warm_wanted =
            verdict.level == Level::Calm && w.until.is_some_and(|t| now < t) && self.warm_usable();
        let mut t = self.poll_plan.interval(headroom, fill);
        // A PSI rule counting towards its duration is judged at least every 100 ms.
        if self.th.psi_some.is_some() || self.th.psi_full.is_some() {
            t = t.min(Duration::from_millis(100).max(self.poll_plan.min));
        }
        t
    }

    /// One guarded cgroup; returns how long the loop may sleep.
    fn check_cgroup(&mut self, i: usize) -> Duration {
        let now = Instant::now();
        let reading = match self.cgroups[i].read_fast(&self.cgfs, &mut self.cgbuf) {
            Ok(r) => r,
            Err(e) => {
                if !self.cgroups[i].exists() {
                    log(format_args!(
                        "cgroup {} is gone; no longer guarded",
                        self.cgroups[i].path
                    ));
                } else {
                    log(format_args!("cgroup {}: {e}", self.cgroups[i].path));
                }
                return self.poll_plan.max;
            }
        };
        self.tell.set_cgroup(
            &self.cgroups[i].path,
            Some(reading.usage_bytes),
            reading.limit_bytes,
        );
        let w = &mut self.cgroups[i];
        if let Some(msg) = w.arm(&reading) {
            log(format_args!("{msg}"));
        }
        let Some(room) = reading.room_bytes(w.headroom) else {
            return self.poll_plan.max;
        };
        let fill = match w.last {
            Some((prev, at)) => -trigger::fill_rate(
                prev,
                Duration::ZERO,
                reading.working_set_bytes,
                now.duration_since(at),
            ),
            None => 0.0,
        };
        w.last = Some((reading.working_set_bytes, now));
        let limit = reading.limit_bytes.unwrap_or(0);
        let headroom = w.headroom.resolve(limit);
        let recovered = room >= headroom.max(1);
        // Recovery is watched on the memory below the limit, not on `room`: room is 0 all the
        // while the working set is above the trigger, so memory coming back there would look
        // like no change and allow a second victim after SETTLE.
        let held = self.held_back(
            Scope::Cgroup(i),
            limit.saturating_sub(reading.working_set_bytes),
            recovered,
        );
        // A headroom of 0 means "watch only": metrics and kernel-OOM detection for the cgroup,
        // no kills (at the limit itself the kernel's memcg OOM killer is already at work).
        if headroom > 0 && room == 0 && !held && !self.idle(Scope::Cgroup(i)) {
            // Past a quarter of the headroom the kernel's memcg OOM is close: no SIGTERM grace.
            let kill_at = limit.saturating_sub(headroom / 4);
            let level = if reading.working_set_bytes >= kill_at {
                Level::Kill
            } else {
                Level::Term
            };
            let figures = format!(
                "cgroup {} working set {} (usage {}) within {} of its {} limit",
                self.cgroups[i].path,
                format_bytes(reading.working_set_bytes),
                format_bytes(reading.usage_bytes),
                format_bytes(headroom),
                format_bytes(limit)
            );
            self.act(
                Scope::Cgroup(i),
                Verdict {
                    level,
                    trigger: Some(Trigger::CgroupHeadroom),
                },
                figures,
            );
        }
        self.poll_plan.interval(room, fill)
    }

    fn idle(&mut self, scope: Scope) -> bool {
        match self.idle_until.get(&scope) {
            Some(t) if Instant::now() < *t => true,
            Some(_) => {
                self.idle_until.remove(&scope);
                false
            }
            None => false,
        }
    }

    /// Every process (or the `candidates_cgroup` subtree's) into `self.samples`.
    fn scan_global(&mut self, stats: &mut ScanStats) -> anyhow::Result<()> {
        match &self.cfg.candidates_cgroup {
            Some(cg) => {
                let (_, dir) = crate::rank::resolve_cgroup(&self.cgfs, cg)?;
                self.cgfs.subtree_procs(&dir, &mut self.pids)?;
                self.scanner.scan_pids(&self.pids, &mut self.samples, stats);
            }
            None => self.scanner.scan(&mut self.samples, stats)?,
        }
        Ok(())
    }

    /// `candidates_parent`: keeps only that pid's descendants.
    fn retain_descendants(&mut self) {
        let Some(parent) = self.cfg.candidates_parent_pid else {
            return;
        };
        let keep = descendants(parent, self.samples.iter().map(|s| (s.pid, s.ppid)));
        self.samples.retain(|s| keep.contains(&s.pid));
    }

    /// Whether an ahead-of-need ranking can serve a decision: the system-wide scan of every
    /// process, judged without reading per-process files the scan does not read.
    fn warm_usable(&self) -> bool {
        let n = self.policy.needs();
        self.cfg.candidates_cgroup.is_none() && !(n.cmdline || n.exe || n.cgroup)
    }

    /// One slice of the ahead-of-need scan; returns whether a pass is still in progress.
    fn warm_step(&mut self) -> bool {
        let w = &mut self.warm;
        if w.started.is_none() {
            if w.done_at.is_some_and(|t| t.elapsed() < WARM_REFRESH) {
                return false;
            }
            w.last_pid = read_last_pid(&mut self.buf);
            if self.scanner.list_pids(&mut w.pids).is_err() {
                return false;
            }
            w.next = 0;
            w.partial.clear();
            w.glance = if self.policy.prefers() || self.cfg.candidates_parent_pid.is_some() {
                Glance::ScoreAndStat
            } else {
                Glance::Score
            };
            w.started = Some(Instant::now());
        }
        let t0 = Instant::now();
        while w.next < w.pids.len() {
            let pid = w.pids[w.next];
            w.next += 1;
            // Vanished and unreadable processes are skipped, as in the full scan.
            if let Some(g) = glimpse(&mut self.scanner, &self.policy, self.era, w.glance, pid) {
                w.partial.push(g);
            }
            if w.next % 16 == 0 && t0.elapsed() >= WARM_SLICE {
                return true;
            }
        }
        std::mem::swap(&mut w.done, &mut w.partial);
        w.done_pids.clear();
        w.done_pids.extend(w.done.iter().map(|g| g.pid));
        w.done_pids.sort_unstable();
        w.done_last_pid = w.last_pid;
        w.done_at = w.started.take();
        self.rank_warm();
        false
    }

    /// Ranks a complete pass (off the decision's path): reads in full and judges the processes
    /// best by their glimpse, in that order, until [`WARM_TOP`] are eligible and the next one's
    /// bound is below the best's exact score (none further down can win), or [`WARM_READ_MAX`]
    /// were read; keeps the eligible ones, after the `candidates_parent` filter.
    fn rank_warm(&mut self) {
        let Ok(s) = read_sample(&mut self.meminfo, None, &mut self.buf) else {
            self.warm.done_at = None;
            return;
        };
        let totalpages =
            badness::global_totalpages(s.mem_total_bytes, s.swap_total_bytes, self.page_size);
        let keep = self
            .cfg
            .candidates_parent_pid
            .map(|parent| descendants(parent, self.warm.done.iter().map(|g| (g.pid, g.ppid))));
        let mut order: Vec<(i64, i32)> = self
            .warm
            .done
            .iter()
            .filter(|g| g.bound_permille > i64::MIN)
            .filter(|g| keep.as_ref().is_none_or(|k| k.contains(&g.pid)))
            .map(|g| (g.bound_permille, g.pid))
            .collect();
        order.sort_unstable_by_key(|&(b, _)| std::cmp::Reverse(b));
        self.warm.best.clear();
        let mut best_permille: Option<i64> = None;
        for (read, &(bound, pid)) in order.iter().enumerate() {
            let enough = self.warm.best.len() >= WARM_TOP;
            if read >= WARM_READ_MAX || (enough && best_permille.is_some_and(|b| bound < b)) {
                break;
            }
            let Ok(Sampled::Process(p)) = self.scanner.sample(pid) else {
                continue;
            };
            let judged = self.judge(&p, [None, None, None], totalpages);
            if let Judgement::Eligible { score, .. } = judged {
                let pm = badness::permille_floor(score, totalpages);
                best_permille = Some(best_permille.map_or(pm, |b| b.max(pm)));
                self.warm.best.push(p);
            }
        }
    }

    /// Appends the processes started since the ahead-of-need pass listed `/proc`. Pids are handed
    /// out in increasing order until they wrap, so those are the pids from the pass's
    /// `ns_last_pid` to today's, opened by number (a thread's number is skipped); listing `/proc`
    /// instead took 13 ms with 8,000 processes here, more than the rest of the decision. After a
    /// wrap, or if more than 4,096 pids were handed out, `/proc` is listed.
    fn add_new_processes(&mut self) {
        let (Some(from), Some(to)) = (self.warm.done_last_pid, read_last_pid(&mut self.buf)) else {
            return self.add_unlisted();
        };
        if to < from || to - from > 4096 {
            return self.add_unlisted();
        }
        for pid in from + 1..=to {
            if self.warm.done_pids.binary_search(&pid).is_ok() {
                continue; // started between ns_last_pid and the listing: in the pass already
            }
            if let Ok(Sampled::Process(s)) = self.scanner.sample(pid) {
                if s.tgid == s.pid {
                    self.samples.push(s);
                }
            }
        }
    }

    /// Appends every process `/proc` lists that the ahead-of-need pass did not see.
    fn add_unlisted(&mut self) {
        if self.scanner.list_pids(&mut self.pids).is_err() {
            return;
        }
        for i in 0..self.pids.len() {
            let pid = self.pids[i];
            if self.warm.done_pids.binary_search(&pid).is_err() {
                if let Ok(Sampled::Process(s)) = self.scanner.sample(pid) {
                    self.samples.push(s);
                }
            }
        }
    }

    /// Fills `self.samples` from the ahead-of-need ranking when one is fresh enough (finishing a
    /// pass in progress if there is no complete one): the pass's best, re-read now (a process
    /// whose start time changed is a reused pid, and dropped), and every process started since
    /// the pass (listed now, read now). Returns when that pass began and how many are new.
    fn warm_candidates(&mut self) -> Option<(Instant, usize)> {
        if !self.warm_usable() {
            return None;
        }
        let fresh = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() <= WARM_MAX_AGE);
        if !fresh(self.warm.done_at) && fresh(self.warm.started) {
            while self.warm_step() {}
        }
        let at = self.warm.done_at.filter(|t| t.elapsed() <= WARM_MAX_AGE)?;
        for i in 0..self.warm.best.len() {
            let old = self.warm.best[i];
            if let Ok(Sampled::Process(s)) = self.scanner.sample(old.pid) {
                if s.start_time_ticks == old.start_time_ticks {
                    self.samples.push(s);
                }
            }
        }
        let re_read = self.samples.len();
        self.add_new_processes();
        let mut new = self.samples.len() - re_read;
        if let Some(parent) = self.cfg.candidates_parent_pid.filter(|_| new > 0) {
            // A new process's ancestry: the pass plus the new ones.
            let pairs = self.warm.done.iter().map(|g| (g.pid, g.ppid));
            let fresh = self.samples[re_read..].iter().map(|s| (s.pid, s.ppid));
            let keep = descendants(parent, pairs.chain(fresh));
            let mut i = 0;
            self.samples.retain(|s| {
                i += 1;
                i <= re_read || keep.contains(&s.pid)
            });
            new = self.samples.len() - re_read;
        }
        if self.samples.is_empty() {
            return None;
        }
        Some((at, new))
    }

    /// The candidates for `scope`, in the kernel's walk order; returns totalpages.
    fn candidates(&mut self, scope: Scope) -> anyhow::Result<u64> {
        self.candidates_note.clear();
        self.samples.clear();
        self.pids.clear();
        let mut stats = ScanStats::default();
        let ps = self.page_size;
        let totalpages = match scope {
            Scope::Global => {
                let warm = self.warm_candidates();
                match warm {
                    Some((at, new)) => {
                        self.candidates_note = format!(
                            " (ranked ahead from a scan begun {:.0} ms earlier over {} processes; best {} re-read, {new} new since)",
                            at.elapsed().as_secs_f64() * 1e3,
                            self.warm.done.len(),
                            self.samples.len() - new
                        );
                    }
                    None => {
                        self.samples.clear();
                        self.scan_global(&mut stats)?;
                        self.retain_descendants();
                    }
                }
                let s = read_sample(&mut self.meminfo, None, &mut self.buf)?;
                badness::global_totalpages(s.mem_total_bytes, s.swap_total_bytes, ps)
            }
            Scope::Cgroup(i) => {
                let w = &self.cgroups[i];
                self.cgfs.subtree_procs(&w.dir, &mut self.pids)?;
                self.scanner
                    .scan_pids(&self.pids, &mut self.samples, &mut stats);
                let memcg = self.cgfs.read_memcg(w.version, &w.dir)?;
                let swap = read_sample(&mut self.meminfo, None, &mut self.buf)
                    .map(|s| s.swap_total_bytes)
                    .unwrap_or(0);
                let swappiness = crate::host::optional(self.procfs.read_sysctl_vm("swappiness"))
                    .ok()
                    .flatten()
                    .unwrap_or(60)
                    .max(0) as u64;
                crate::rank::memcg_totalpages(&memcg, ps, swappiness, swap / ps).0
            }
        };
        // for_each_process() walks in creation order: start time, then pid.
        self.samples.sort_by_key(|s| (s.start_time_ticks, s.pid));
        Ok(totalpages)
    }

    /// The kill path for one decision.
    /// The policy's judgement of one process, with the optional fields rules may look at
    /// (`[cmdline, exe, cgroup]`, `None` where not read).
    fn judge(&self, s: &ProcSample, fields: [Option<&str>; 3], totalpages: u64) -> Judgement {
        let name = s.comm.as_str();
        let [cmdline, exe, cgroup] = fields;
        let c = policy::Candidate {
            pid: s.pid,
            name: &name,
            cmdline,
            exe,
            cgroup,
            uid: s.uid,
            user: self.users.get(&s.uid).map(String::as_str),
            verdict: badness::badness(self.era, &s.facts(true), totalpages),
            exiting: s.exiting,
        };
        self.policy.judge(&c, totalpages)
    }

    /// The policy's judgement of every candidate in `self.samples`, with the cmdline and cgroup
    /// read for rules that need them (kept for the decision's log line and event).
    #[allow(clippy::type_complexity)]
    fn judge_candidates(
        &mut self,
        totalpages: u64,
    ) -> (Vec<Judgement>, Vec<(Option<String>, Option<String>)>) {
        let needs = self.policy.needs();
        let root = self.procfs.root().to_path_buf();
        let mut judged = Vec::with_capacity(self.samples.len());
        let mut extra: Vec<(Option<String>, Option<String>)> =
            Vec::with_capacity(self.samples.len());
        for s in &self.samples {
            // Opening /proc/PID costs two syscalls per process: only when a rule reads from it.
            let dir = if needs.cmdline || needs.cgroup {
                self.scanner.open_pid(s.pid).ok()
            } else {
                None
            };
            let cmdline = if needs.cmdline {
                dir.as_ref()
                    .and_then(|d| d.read_cmdline(&root, self.scanner.buf()).ok())
            } else {
                None
            };
            let cgroup = if needs.cgroup {
                dir.as_ref()
                    .and_then(|d| {
                        d.read_memory_cgroup(&root, self.scanner.buf())
                            .ok()
                            .flatten()
                    })
                    .map(|(_, p)| p)
            } else {
                None
            };
            let exe = if needs.exe {
                std::fs::read_link(root.join(s.pid.to_string()).join("exe"))
                    .ok()
                    .map(|p| p.display().to_string())
            } else {
                None
            };
            let fields = [cmdline.as_deref(), exe.as_deref(), cgroup.as_deref()];
            judged.push(self.judge(s, fields, totalpages));
            extra.push((cmdline, cgroup));
        }
        (judged, extra)
    }

    /// Rehearses a system-wide decision without acting: ranks every process (ahead of need,
    /// as under a fast fill, where the policy allows) and judges them, so that the code of the
    /// decision's path is resident (and, with `MCL_ONFAULT`, locked) before it is needed
    /// rather than faulted in from the page cache under the very pressure it answers.
    fn rehearse(&mut self) {
        if self.warm_usable() {
            while self.warm_step() {}
        }
        if let Ok(totalpages) = self.candidates(Scope::Global) {
            let (judged, _) = self.judge_candidates(totalpages);
            let chosen = policy::choose(&judged).map(|vi| self.samples[vi].comm.as_str().len());
            std::hint::black_box(chosen);
        }
        self.samples.clear();
        self.warm.done_at = None;
        self.warm.started = None;
    }

    /// After start-up (and a reload): drops the pages only start-up used, rehearses a decision,
    /// and locks what is resident then. Returns a line for the log.
    fn settle_memory(&mut self) -> String {
        let was_locked = self.locked;
        if was_locked {
            if let Err(e) = mlock::unlock_all_memory() {
                return format!("memory: cannot unlock to shed start-up pages ({e}); kept as is");
            }
        }
        let shed = mlock::shed_file_pages();
        self.rehearse();
        mlock::trim_heap();
        let lock = if was_locked {
            let l = mlock::lock_all_memory();
            self.locked = l.is_locked();
            format!("; {}", l.describe())
        } else {
            String::new()
        };
        match shed {
            Ok(b) => format!(
                "memory: start-up pages shed ({} of read-only mappings), decision path rehearsed{lock}",
                format_bytes(b)
            ),
            Err(e) => format!("memory: start-up pages not shed ({e}){lock}"),
        }
    }

    fn act(&mut self, scope: Scope, verdict: Verdict, figures: String) {
        self.decisions += 1;
        let t0 = Instant::now();
        let trig = verdict.trigger.map_or("?", Trigger::label);
        let totalpages = match self.candidates(scope) {
            Ok(t) => t,
            Err(e) => {
                log(format_args!(
                    "decision #{}: {trig}: {figures}; cannot list candidates: {e:#}",
                    self.decisions
                ));
                self.idle_until
                    .insert(scope, Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        let (judged, extra) = self.judge_candidates(totalpages);
        let root = self.procfs.root().to_path_buf();
        let Some(vi) = policy::choose(&judged) else {
            log(format_args!(
                "decision #{}: {trig}: {figures}; no eligible victim among {} processes (all excluded); looking again in 1 s",
                self.decisions,
                self.samples.len()
            ));
            self.idle_until
                .insert(scope, Instant::now() + Duration::from_secs(1));
            return;
        };
        let scan_ms = t0.elapsed().as_secs_f64() * 1e3;
        // Re-check right before acting: the scan took time, and the pressure may be gone.
        let still = match scope {
            Scope::Global => self
                .sample()
                .ok()
                .map(|s| trigger::evaluate(&self.th, &s, &self.psi_state, self.started.elapsed())),
            Scope::Cgroup(i) => cgroups::read(&self.cgfs, &self.cgroups[i]).ok().map(|r| {
                if r.room_bytes(self.cgroups[i].headroom) == Some(0) {
                    verdict
                } else {
                    Verdict::CALM
                }
            }),
        };
        if still.is_some_and(|v| v.level == Level::Calm) {
            log(format_args!(
                "decision #{}: {trig}: {figures}; pressure gone after the scan: standing down",
                self.decisions
            ));
            return;
        }
        let level = still.map_or(verdict.level, |v| v.level.max(verdict.level));
        let victim = self.samples[vi];
        let (score, rule) = match &judged[vi] {
            Judgement::Eligible { score, rule } => (*score, rule.clone()),
            Judgement::Excluded(_) => (0, None),
        };
        let mem = victim.mem.unwrap_or_default();
        let name = victim.comm.as_str().into_owned();
        let user = self.users.get(&victim.uid).cloned();
        let dir = self.scanner.open_pid(victim.pid).ok();
        let cgroup = extra[vi].1.clone().or_else(|| {
            dir.as_ref()
                .and_then(|d| {
                    d.read_memory_cgroup(&root, self.scanner.buf())
                        .ok()
                        .flatten()
                })
                .map(|(_, p)| p)
        });
        let cmdline = extra[vi]
            .0
            .clone()
            .or_else(|| {
                dir.as_ref()
                    .and_then(|d| d.read_cmdline(&root, self.scanner.buf()).ok())
            })
            .map(|c| c.chars().take(1024).collect::<String>());
        let rss_bytes = mem.rss_pages * self.page_size;
        let who = format!(
            "pid {} {:?} user {} cgroup {} score {} rss {} adj {}{}",
            victim.pid,
            name,
            user.clone().unwrap_or_else(|| victim.uid.to_string()),
            cgroup.clone().unwrap_or_else(|| "?".into()),
            score,
            format_bytes(rss_bytes),
            victim.oom_score_adj,
            rule.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        test_seam_pause(
            "OOMGUARD_TEST_PAUSE_BEFORE_PIN_MS",
            "before pinning",
            victim.pid,
            victim.start_time_ticks,
        );
        let pinned = match Pinned::open_expecting(victim.pid, victim.start_time_ticks) {
            Ok(p) => p,
            Err(e) => {
                log(format_args!(
                    "decision #{}: {trig}: {figures}; victim {who}: {e}; nothing signalled",
                    self.decisions
                ));
                return;
            }
        };
        let plan = KillPlan {
            term_grace: (level == Level::Term).then_some(self.cfg.kill.term_grace),
            kill_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(5),
        };
        let sample_before = self.sample().ok();
        let before = sample_before.map_or(0, |s| s.mem_available_bytes);
        // The one event of this kill: filled now, completed with the outcome, then recorded
        // (event log, journal, metrics, post_kill hooks, notifications).
        let mut event = OomEvent::new(EventKind::Kill);
        event.source = Source::Oomguard;
        event.pid = Some(i64::from(victim.pid));
        event.comm = Some(name.clone());
        event.uid = Some(u64::from(victim.uid));
        event.oom_score_adj = Some(i64::from(victim.oom_score_adj));
        event.task_memcg = cgroup.clone();
        let (cg_path, cg_reading) = match scope {
            Scope::Cgroup(i) => (
                Some(self.cgroups[i].path.clone()),
                cgroups::read(&self.cgfs, &self.cgroups[i]).ok(),
            ),
            Scope::Global => (None, None),
        };
        event.trigger = Some(ev::Trigger {
            reason: trig.to_owned(),
            detail: Some(figures.clone()),
            mem_total_bytes: sample_before.map(|s| s.mem_total_bytes),
            mem_available_bytes: sample_before.map(|s| s.mem_available_bytes),
            swap_total_bytes: sample_before.map(|s| s.swap_total_bytes),
            swap_free_bytes: sample_before.map(|s| s.swap_free_bytes),
            psi_some_avg10_pct: sample_before.and_then(|s| s.psi_some_avg10_pct),
            psi_full_avg10_pct: sample_before.and_then(|s| s.psi_full_avg10_pct),
            cgroup: cg_path,
            cgroup_usage_bytes: cg_reading.map(|r| r.usage_bytes),
            cgroup_limit_bytes: cg_reading.and_then(|r| r.limit_bytes),
        });
        event.victim = Some(ev::Victim {
            pid: i64::from(victim.pid),
            name: name.clone(),
            uid: Some(u64::from(victim.uid)),
            user: user.clone(),
            cgroup: cgroup.clone(),
            cmdline,
            oom_score: Some(score),
            oom_score_adj: Some(i64::from(victim.oom_score_adj)),
            rss_bytes: Some(rss_bytes),
            swap_bytes: Some(mem.swap_pages * self.page_size),
        });
        // Whose cgroup it is (unit, container, pod: pure, from the path), before pre_kill hooks
        // see the event; the names (a directory read) are added after the kill, by `record`.
        event.identify();
        // pre_kill hooks get a short, bounded head start (never longer than the hook module's
        // cap), and only while they still run.
        if let Some(until) = self.tell.pre_kill(&event, Instant::now()) {
            while Instant::now() < until && self.tell.hooks.pre_kill_running() {
                self.tell.on_ready(Instant::now(), &mut self.kernel_events);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let outcome = self.kill(scope, &pinned, &plan);
        self.kills += 1;
        // The processes changed: a ranking done ahead is not reused for the next decision.
        self.warm.done_at = None;
        self.warm.started = None;
        let after = self.sample().ok();
        let (result, victim_gone) = describe_outcome(&outcome);
        let sent = match &outcome {
            Ok(o)
                if o.targets.iter().any(|t| t.kill_sent)
                    && o.targets.iter().any(|t| t.term_sent) =>
            {
                "SIGTERM then SIGKILL"
            }
            Ok(o) if o.targets.iter().any(|t| t.kill_sent) => "SIGKILL",
            Ok(o) if o.targets.iter().any(|t| t.term_sent) => "SIGTERM",
            _ => "nothing",
        };
        log(format_args!(
            "kill #{} ({}): {trig}: {figures}; victim {who}; sent {sent}; {result}; scan {scan_ms:.1} ms{}; MemAvailable {} -> {}",
            self.kills,
            if self.cfg.dry_run { "dry run" } else { "real" },
            self.candidates_note,
            format_bytes(before),
            after.map_or("?".to_owned(), |s| format_bytes(s.mem_available_bytes)),
        ));
        let first = outcome.as_ref().ok().and_then(|o| o.targets.first());
        event.action = Some(ev::Action {
            signal: Some(match sent {
                "SIGTERM then SIGKILL" | "SIGKILL" => "SIGKILL".to_owned(),
                "SIGTERM" => "SIGTERM".to_owned(),
                _ if self.cfg.dry_run => if level == Level::Kill {
                    "SIGKILL"
                } else {
                    "SIGTERM"
                }
                .to_owned(),
                _ => "none".to_owned(),
            }),
            unit: Some(format!("{:?}", self.cfg.kill.unit).to_lowercase()),
            dry_run: self.cfg.dry_run,
            outcome: Some(
                match (&outcome, first.map(|t| t.result)) {
                    (_, _) if self.cfg.dry_run => "dry_run",
                    (Err(_), _) => "failed",
                    (_, Some(KillResult::ExitedAfterTerm | KillResult::ExitedAfterKill)) => {
                        "exited"
                    }
                    (_, Some(KillResult::AlreadyGone)) => "vanished",
                    (_, Some(KillResult::StillAlive)) => "timeout",
                    _ => "failed",
                }
                .to_owned(),
            ),
            exited_after_ms: first
                .and_then(|t| t.exited_after)
                .map(|d| d.as_millis() as u64),
            freed_bytes: after.map(|s| s.mem_available_bytes.saturating_sub(before)),
            mrelease: first
                .and_then(|t| t.mrelease)
                .map(|m| matches!(m, crate::sys::pidfd::MreleaseOutcome::Released)),
            error: outcome.as_ref().err().map(|e| e.to_string()),
        });
        self.tell.record(event, Instant::now());
        let value = match scope {
            Scope::Global => after.map_or(0, |s| s.mem_available_bytes),
            // The same figure `check_cgroup` watches: memory below the limit.
            Scope::Cgroup(i) => cgroups::read(&self.cgfs, &self.cgroups[i])
                .ok()
                .and_then(|r| r.limit_bytes.map(|l| l.saturating_sub(r.working_set_bytes)))
                .unwrap_or(0),
        };
        let now = Instant::now();
        self.recovery.insert(
            scope,
            Recovery {
                started: now,
                last_value: value,
                last_rise: now,
                victim_gone,
            },
        );
    }

    fn kill(
        &mut self,
        scope: Scope,
        pinned: &Pinned,
        plan: &KillPlan,
    ) -> Result<KillOutcome, actuator::ActuatorError> {
        test_seam_pause(
            "OOMGUARD_TEST_PAUSE_AFTER_PIN_MS",
            "after pinning",
            pinned.pid(),
            pinned.start_time_ticks(),
        );
        // Escalate early when memory reaches the SIGKILL level while the victim takes its time.
        let kill_bytes = self.th.mem_kill_bytes;
        let mut meminfo = self.meminfo.try_clone().ok();
        let mut buf = Vec::with_capacity(8192);
        let cg = match scope {
            Scope::Cgroup(i) => Some((self.cgfs.clone(), i)),
            Scope::Global => None,
        };
        let cgroups = &self.cgroups;
        let mut escalate = || -> bool {
            match &cg {
                None => meminfo
                    .as_mut()
                    .and_then(|f| read_sample(f, None, &mut buf).ok())
                    .is_some_and(|s| s.mem_available_bytes < kill_bytes),
                Some((cgfs, i)) => {
                    let w = &cgroups[*i];
                    cgroups::read(cgfs, w).ok().is_some_and(|r| {
                        let limit = r.limit_bytes.unwrap_or(u64::MAX);
                        r.working_set_bytes >= limit.saturating_sub(w.headroom.resolve(limit) / 4)
                    })
                }
            }
        };
        match self.cfg.kill.unit {
            KillUnit::Process => Ok(actuator::kill_escalating(
                self.actuator.as_mut(),
                pinned,
                plan,
                &mut escalate,
            )),
            KillUnit::Pgroup => {
                // The group of the pinned process, read through the pin: `getpgid(pid)` names
                // the group of whoever holds the number now, which after the victim's exit and
                // a pid reuse is a stranger's. Gone: the single-process path reports it.
                let pgid = pinned.read_identity().map_or(0, |id| id.pgrp);
                if pgid <= 0 {
                    return Ok(actuator::kill_escalating(
                        self.actuator.as_mut(),
                        pinned,
                        plan,
                        &mut escalate,
                    ));
                }
                actuator::kill_process_group(self.actuator.as_mut(), pgid, plan, &mut escalate)
            }
            KillUnit::Cgroup => {
                // Gone (or no memory cgroup): the single-process path reports it.
                let target = victim_cgroup(&self.cgfs, pinned);
                match target {
                    Some(t) => {
                        actuator::kill_cgroup(self.actuator.as_mut(), &t, plan, &mut escalate)
                    }
                    None => Ok(actuator::kill_escalating(
                        self.actuator.as_mut(),
                        pinned,
                        plan,
                        &mut escalate,
                    )),
                }
            }
        }
    }
}

/// The pids among `(pid, ppid)` pairs that descend from `parent` (its children, their
/// children, ...); a chain is followed at most 4,096 steps (pid loops cannot occur, but a torn
/// read across a reparenting could look like one).
fn descendants(parent: i32, pairs: impl Iterator<Item = (i32, i32)>) -> HashSet<i32> {
    let ppid: HashMap<i32, i32> = pairs.collect();
    let descends = |mut p: i32| {
        for _ in 0..4096 {
            match ppid.get(&p) {
                Some(&pp) if pp == parent => return true,
                Some(&pp) if pp > 0 => p = pp,
                _ => return false,
            }
        }
        false
    };
    ppid.keys().copied().filter(|&p| descends(p)).collect()
}

/// Glimpses one process for the ahead-of-need pass (see [`Glance`]); `None` for a kernel
/// thread, a process a name-only `protect` rule excludes, or one that vanished or could not be
/// read (skipped, as in the full scan).
fn glimpse(
    scanner: &mut Scanner,
    policy: &Policy,
    era: badness::Era,
    glance: Glance,
    pid: i32,
) -> Option<Glimpse> {
    let (ppid, shift) = match glance {
        Glance::Score => (0, 0),
        Glance::ScoreAndStat => {
            let (ppid, comm) = scanner.glance_stat(pid).ok()??;
            match policy.name_shift_bound(&comm.as_str()) {
                Some(shift) => (ppid, shift),
                // Kept for the ancestry of `candidates_parent`, never ranked.
                None => {
                    return Some(Glimpse {
                        pid,
                        ppid,
                        bound_permille: i64::MIN,
                    })
                }
            }
        }
    };
    let display = scanner.read_oom_score(pid).ok()?;
    Some(Glimpse {
        pid,
        ppid,
        bound_permille: badness::oom_score_permille_bound(era, display).saturating_add(shift),
    })
}

/// The last pid handed out in this pid namespace (`/proc/sys/kernel/ns_last_pid`, 3.3+).
fn read_last_pid(buf: &mut Vec<u8>) -> Option<i32> {
    let mut f = File::open("/proc/sys/kernel/ns_last_pid").ok()?;
    reread(&mut f, buf).ok()?;
    std::str::from_utf8(buf).ok()?.trim().parse().ok()
}

/// Test seam, compiled only into builds with debug assertions (the test profile): with the
/// environment variable `var` set (`OOMGUARD_TEST_PAUSE_BEFORE_PIN_MS` between choosing the
/// victim and pinning it, `OOMGUARD_TEST_PAUSE_AFTER_PIN_MS` between pinning it and resolving
/// its kill unit), the kill path sleeps that many ms, so a test can make the victim exit and hand
/// its pid to a new process in exactly the window a real race would use (tests/watch_cli.rs,
/// `victim_exits_by_itself_and_its_pid_is_reused_*`). Why a seam: a hidden flag would ship in
/// release builds, and a unit test of `act` would need a fake /proc *and* a real pidfd for the
/// same pid. Release builds ignore the variables.
fn test_seam_pause(var: &str, when: &str, pid: i32, start_time_ticks: u64) {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) {
        log(format_args!(
            "test seam: pausing {ms} ms {when} pid {pid} (start {start_time_ticks} ticks)"
        ));
        std::thread::sleep(Duration::from_millis(ms));
    }
    #[cfg(not(debug_assertions))]
    let _ = (var, when, pid, start_time_ticks);
}

/// The victim's memory cgroup as a kill target (its leaf cgroup, never the root), read through
/// the pin: `/proc/PID/cgroup` by number would describe whoever holds the pid now, which after
/// the victim's exit and a pid reuse is a stranger, whose cgroup would then be killed.
fn victim_cgroup(cgfs: &CgroupFs, pinned: &Pinned) -> Option<CgroupTarget> {
    use oomguard_core::host::process::{memory_cgroup_path, parse_cgroup};
    let text = pinned.read_proc_file("cgroup").ok()?;
    let lines = parse_cgroup(&text).ok()?;
    let (version, path) = memory_cgroup_path(&lines)?;
    if path == "/" || path.is_empty() {
        return None;
    }
    let dir = cgfs.memcg_dir(version, path)?;
    Some(CgroupTarget {
        dir,
        rel_path: path.to_owned(),
        v1_controller: (version == CgroupVersion::V1).then(|| "memory".to_owned()),
    })
}

fn describe_sample(th: &Thresholds, s: &Sample) -> String {
    let mut out = format!(
        "MemAvailable {} (SIGTERM below {}, SIGKILL below {})",
        format_bytes(s.mem_available_bytes),
        format_bytes(th.mem_term_bytes),
        format_bytes(th.mem_kill_bytes)
    );
    if s.swap_total_bytes > 0 {
        out.push_str(&format!(
            ", swap free {} of {}",
            format_bytes(s.swap_free_bytes),
            format_bytes(s.swap_total_bytes)
        ));
    }
    if let Some(p) = s.psi_some_avg10_pct {
        out.push_str(&format!(", PSI some avg10 {p:.2}%"));
    }
    if let Some(p) = s.psi_full_avg10_pct {
        out.push_str(&format!(" full {p:.2}%"));
    }
    out
}

fn describe_outcome(o: &Result<KillOutcome, actuator::ActuatorError>) -> (String, bool) {
    match o {
        Err(e) => (format!("not killed: {e}"), false),
        Ok(o) => {
            let mut parts = Vec::new();
            for t in &o.targets {
                let how = match t.result {
                    KillResult::ExitedAfterTerm => "exited after SIGTERM",
                    KillResult::ExitedAfterKill => "exited after SIGKILL",
                    KillResult::AlreadyGone => "already gone (nothing signalled)",
                    KillResult::StillAlive => "STILL ALIVE",
                    KillResult::DryRun => "dry run: not signalled",
                    KillResult::Failed => "signal failed",
                };
                let after = t
                    .exited_after
                    .map(|d| format!(" in {:.1} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or_default();
                let mrel = t
                    .mrelease
                    .map(|m| format!(", mrelease {m:?}"))
                    .unwrap_or_default();
                let err = t
                    .error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                parts.push(format!("pid {} {how}{after}{mrel}{err}", t.pid));
            }
            if o.escalated_early {
                parts.push("SIGKILL early: memory reached the kill level".to_owned());
            }
            if !o.remaining_pids.is_empty() {
                parts.push(format!("still listed: {:?}", o.remaining_pids));
            }
            (parts.join(", "), o.all_gone())
        }
    }
}

impl AsFd for Daemon {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sigfd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sys::reread;

    #[test]
    fn reread_gets_whole_files_small_and_larger_than_the_buffer() {
        let mut buf = Vec::with_capacity(8192);
        let mut f = File::open("/proc/self/status").unwrap();
        reread(&mut f, &mut buf).unwrap();
        assert!(buf.starts_with(b"Name:") && buf.ends_with(b"\n"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let text: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&p, &text).unwrap();
        let mut f = File::open(&p).unwrap();
        reread(&mut f, &mut buf).unwrap();
        assert_eq!(buf, text);
        // Again, from offset 0, into the grown buffer.
        reread(&mut f, &mut buf).unwrap();
        assert_eq!(buf, text);
    }
}
