//! The daemon loop: one thread, one `poll()` over every input (signals, PSI triggers, cgroup
//! eventfds, the tell side's fds) with an adaptive timeout, and a reading of memory on each wake.
//!
//! Each reading goes down one typed pipeline (README, "Architecture"): the reading is a
//! `Snapshot`, a pure function of it, the thresholds and the [`History`] of earlier kills gives a
//! `Decision` (`oomguard_core::decision`), the kill step executes it through the [`Actuator`]
//! (`kill.rs`: candidates from `candidates.rs`, ranked ahead of need by `ahead.rs` under a fast
//! fill) and its `KillReport` becomes the event the tell side records.
//!
//! Steady state (no pressure) reads /proc/meminfo (and the PSI file when a PSI rule is set)
//! through descriptors opened at start into one buffer sized at start: no allocation, no
//! directory walk. The process scan happens only when a rule fires.
//!
//! Every path is under the [`Roots`] the daemon is given (the real machine by default), and the
//! actuator is a parameter: tests run the daemon on fake trees with a recording actuator.

mod ahead;
mod candidates;
mod diagnose;
mod forecast;
mod kill;
mod record;
mod reload;
mod thrash;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use oomguard_core::badness::Era;
use oomguard_core::config::Config;
use oomguard_core::decision::{self, History, Scope};
use oomguard_core::event::OomEvent;
use oomguard_core::host::system;
use oomguard_core::policy::{self, Policy};
use oomguard_core::size::format_bytes;
use oomguard_core::trigger::{self, Level, PollPlan, PsiState, Sample, Thresholds, WarmPlan};

use self::ahead::WarmScan;
use super::cgroups::{self, Watched};
use super::mlock;
use super::sdnotify::SdNotify;
use super::WatchArgs;
use crate::act::actuator::{Actuator, DryRunActuator, RealActuator};
use crate::host::machine::Roots;
use crate::host::page_size_bytes;
use crate::host::scan::{ProcSample, Scanner};
use crate::host::{CgroupFs, ProcFs};
use crate::sense::kernel_oom::{self, WatchedCgroup};
use crate::sense::psi::{PsiTrigger, StallKind, WindowRounding};
use crate::sense::reread;
use crate::tell::hub::{Teller, TellerOptions};

/// How the daemon is set up around its loop: where it reads, what acts, and whether it guards
/// itself. [`Setup::real`] is the machine as `oomguard watch` runs on it.
pub struct Setup {
    pub roots: Roots,
    pub actuator: Box<dyn Actuator>,
    /// Lock memory (`mlockall`), set its own `oom_score_adj` to -1000, shed start-up pages and
    /// rehearse a decision, arm PSI triggers and take SIGTERM/SIGINT/SIGHUP on a signalfd. Off
    /// for a daemon embedded in a test, which must leave its test process alone.
    pub protect_self: bool,
    /// The kernel log the kernel-OOM detector follows (`None`: the counters alone).
    pub kmsg: Option<PathBuf>,
}

impl Setup {
    /// The real machine: `/proc`, `/sys/fs/cgroup`, `/etc/passwd`, the real actuator (a dry-run
    /// one with `dry_run`), self-protection on.
    pub fn real(cfg: &Config) -> Setup {
        let actuator: Box<dyn Actuator> = if cfg.dry_run {
            Box::new(DryRunActuator::new(Box::new(io::stderr())))
        } else {
            Box::new(RealActuator)
        };
        Setup {
            roots: Roots::default(),
            actuator,
            protect_self: true,
            kmsg: Some(PathBuf::from(crate::sense::kmsg::DEV_KMSG)),
        }
    }
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
    /// `sys/kernel/ns_last_pid` under the proc root (for the ranking ahead of need).
    ns_last_pid: PathBuf,
    protect_self: bool,
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
    /// The recovery wait after each scope's last kill, and the scopes resting after a decision
    /// that found no candidate.
    history: History,
    warm_plan: WarmPlan,
    warm_wanted: bool,
    warm: WarmScan,
    /// The machine's time-to-OOM forecast (`forecast.rs`; each cgroup's is in its `Watched`).
    forecast: oomguard_core::forecast::Tracker,
    /// How the last decision's candidates were listed, for its log line.
    candidates_note: String,
    kills: u64,
    decisions: u64,
    loops: u64,
    /// SIGTERM, SIGINT, SIGHUP (`None` without self-protection: an embedded daemon).
    sigfd: Option<OwnedFd>,
    notifier: SdNotify,
    started: Instant,
    report: Option<Duration>,
    last_report: Instant,
    last_rescan: Instant,
    /// inotify on where guarded cgroups are made (`appear.rs`): a service's cgroup made after
    /// start is guarded at once, not at the next 10 s rescan.
    appear: Option<super::appear::Appear>,
    appear_pending: bool,
    /// The event log, journal, hooks, notifications, metrics and the kernel-OOM detector.
    tell: Teller,
    kernel_events: Vec<OomEvent>,
    /// Reused by every cgroup reading (sized at start).
    cgbuf: Vec<u8>,
    /// Reused by every poll() (sized at start).
    pollfds: Vec<libc::pollfd>,
    /// The thrash rule (`daemon/thrash.rs`); `None` when off.
    thrash: Option<thrash::ThrashWatch>,
    /// The thrash rule's `restart` step runs systemctl through this (a dry run never calls it).
    restarter: Box<dyn crate::act::restart::UnitRestarter>,
    /// The `[recorder]` the ring (in `tell`) was built for (`daemon/record.rs`).
    recorder_cfg: Option<oomguard_core::recorder::RecorderConfig>,
}

pub(super) fn log(msg: std::fmt::Arguments<'_>) {
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

pub(super) fn read_sample(
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
    Thresholds::from_config(cfg, s)
}

impl Daemon {
    /// Starts on the real machine ([`Setup::real`]).
    pub fn start(
        cfg: Config,
        origin: Option<PathBuf>,
        args: WatchArgs,
        report: Option<Duration>,
    ) -> anyhow::Result<Daemon> {
        let setup = Setup::real(&cfg);
        Daemon::new(cfg, origin, args, report, setup)
    }

    /// Starts: validates the config against this host, protects itself (with
    /// `setup.protect_self`), opens every input under `setup.roots`. Every failure here is fatal
    /// and named; after this, nothing stops the loop.
    pub fn new(
        cfg: Config,
        origin: Option<PathBuf>,
        args: WatchArgs,
        report: Option<Duration>,
        setup: Setup,
    ) -> anyhow::Result<Daemon> {
        let Setup {
            roots,
            actuator,
            protect_self,
            kmsg,
        } = setup;
        let procfs = roots.proc;
        let cgfs = roots.cgroup;
        let mut cfg = cfg;
        for note in cgroups::normalise_config(&cgfs, &mut cfg.cgroups) {
            log(format_args!("{note}"));
        }
        let (kernel, era) = crate::host::machine::kernel_era(&procfs)?;
        let policy =
            Policy::compile(&cfg.rules, std::process::id() as i32).map_err(|e| anyhow!(e))?;
        let meminfo_path = procfs.root().join("meminfo");
        let psi_path = procfs.root().join("pressure/memory");
        let mut meminfo = File::open(&meminfo_path)
            .with_context(|| format!("opening {}", meminfo_path.display()))?;
        let need_psi = cfg.psi.some.is_some() || cfg.psi.full.is_some();
        let mut psi_file = if need_psi {
            Some(File::open(&psi_path).with_context(|| format!(
                "a PSI rule is set but {} cannot be opened (kernel without PSI, or booted with psi=0)",
                psi_path.display()
            ))?)
        } else if !cfg.recorder.span.is_zero() {
            // The flight recorder shows PSI when the kernel has it: the loop then reads it
            // with meminfo (one more read of a small file per wake-up); no PSI, no column.
            File::open(&psi_path).ok()
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
        for warning in cgroups::unmatched(&cgfs, &patterns, &cgroups) {
            log(format_args!("{warning}"));
        }
        if cgroups.is_empty() && !patterns.is_empty() {
            log(format_args!(
                "warning: no cgroup matches {:?} yet; will look again every 10 s",
                patterns.iter().map(|p| &p.0).collect::<Vec<_>>()
            ));
        }
        for msg in cgroups::apply_rules(&mut cgroups, &cfg.cgroups, protect_self) {
            log(format_args!("{msg}"));
        }
        for w in &mut cgroups {
            match cgroups::read(&cgfs, w) {
                Ok(r) => {
                    if r.limit_bytes.is_none() && w.psi.is_none() {
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
        let (locked, protection) = if protect_self {
            let lock = mlock::lock_all_memory();
            let adj = mlock::set_own_oom_score_adj(-1000);
            (
                lock.is_locked(),
                format!("{}; {}", lock.describe(), adj.describe()),
            )
        } else {
            (false, "self-protection off (embedded)".to_owned())
        };
        let mut psi_triggers = Vec::new();
        // An embedded daemon polls PSI (a trigger is a kernel object of the real machine).
        let armed = if protect_self {
            [
                (StallKind::Some, cfg.psi.some),
                (StallKind::Full, cfg.psi.full),
            ]
        } else {
            [(StallKind::Some, None), (StallKind::Full, None)]
        };
        for (kind, spec) in armed {
            if let Some(p) = spec {
                // Wake when stalls reach the rule's share of a 2 s window (the smallest window
                // unprivileged callers may use on 6.5+); the rule itself is judged on avg10.
                let window = Duration::from_secs(2);
                let stall = window.mul_f64((p.avg10_pct / 100.0).clamp(0.001, 1.0));
                match PsiTrigger::arm_planned(
                    &psi_path,
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
        let scanner = Scanner::new(&procfs)
            .with_context(|| format!("opening {}", procfs.root().display()))?;
        let sigfd = if protect_self {
            Some(signal_fd()?)
        } else {
            None
        };
        let notifier = SdNotify::from_env();
        log(format_args!(
            "started on kernel {kernel}: MemTotal {}, SIGTERM below {} and SIGKILL below {} available{}{}; {}",
            format_bytes(s.mem_total_bytes),
            format_bytes(th.mem_term_bytes),
            format_bytes(th.mem_kill_bytes),
            if cfg.dry_run { "; DRY RUN: nothing will be signalled" } else { "" },
            match (cfg.swap.term_below, s.swap_total_bytes) {
                (Some(_), 0) => "; no swap here: the swap rule is inert",
                _ => "",
            },
            protection
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
            kmsg,
            proc_root: procfs.root().to_path_buf(),
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
        let thrash =
            thrash::ThrashWatch::open(&cfg.thrash, &procfs, &cgfs, page_size_bytes(), cfg.dry_run)?;
        let mut d = Daemon {
            cfg,
            origin,
            args,
            ns_last_pid: procfs.root().join("sys/kernel/ns_last_pid"),
            protect_self,
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
            users: crate::host::machine::users(&roots.passwd),
            last_mem: None,
            history: History::default(),
            warm_plan: WarmPlan::DEFAULT,
            warm_wanted: false,
            warm: WarmScan::default(),
            forecast: Default::default(),
            candidates_note: String::new(),
            locked,
            kills: 0,
            decisions: 0,
            loops: 0,
            sigfd,
            notifier,
            started: Instant::now(),
            report,
            last_report: Instant::now(),
            last_rescan: Instant::now(),
            appear: None,
            // The first pass arms the inotify watches (and rescans once).
            appear_pending: true,
            tell,
            kernel_events: Vec::with_capacity(16),
            cgbuf: Vec::with_capacity(16 * 1024),
            pollfds: Vec::with_capacity(64),
            thrash,
            restarter: Box::new(crate::act::restart::SystemctlRestarter::default()),
            recorder_cfg: None,
        };
        d.open_recorder();
        Ok(d)
    }

    /// One iteration of the loop without its wait: reads memory, decides and acts for the whole
    /// machine and for each guarded cgroup, looks for new cgroups every 10 s, reports, and does
    /// one slice of the ranking ahead of need. Returns how long the loop may sleep.
    pub fn step(&mut self) -> Duration {
        self.loops += 1;
        self.notifier.tick();
        let now = Instant::now();
        let mut timeout = self.poll_plan.max;
        match read_full(&mut self.meminfo, self.psi_file.as_mut(), &mut self.buf) {
            Ok((s, m, p)) => {
                self.tell.set_host(&m, p.as_ref());
                self.record_machine(&s, now);
                timeout = timeout.min(self.check_global(&s, now));
                self.thrash_machine(&m, &s, now);
            }
            Err(e) => log(format_args!("error: {e:#}")),
        }
        for i in 0..self.cgroups.len() {
            timeout = timeout.min(self.check_cgroup(i));
        }
        self.record_end();
        if (self.appear_pending || self.last_rescan.elapsed() >= Duration::from_secs(10))
            && !self.cfg.cgroups.is_empty()
        {
            self.appear_pending = false;
            self.rescan_cgroups();
            self.last_rescan = Instant::now();
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
        // A running thrash step ends on time (a freeze is thawed at the end of its window).
        timeout = timeout.min(self.thrash_tick(now));
        if let Some(d) = self.tell.next_deadline(Instant::now()) {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
        }
        self.tell.count_iteration(now.elapsed());
        // Ranking ahead of need: one slice per iteration, and read again right away.
        if (self.warm_wanted || self.warm.started.is_some()) && self.warm_step() {
            timeout = Duration::ZERO;
        }
        timeout
    }

    /// Replaces how the `restart` step restarts units (tests: a fake systemctl).
    pub fn set_unit_restarter(&mut self, r: Box<dyn crate::act::restart::UnitRestarter>) {
        self.restarter = r;
    }

    /// Decisions made and kills done so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.decisions, self.kills)
    }

    fn sample(&mut self) -> anyhow::Result<Sample> {
        read_sample(&mut self.meminfo, self.psi_file.as_mut(), &mut self.buf)
    }

    /// The loop. Returns the exit code when asked to stop.
    pub fn run(&mut self) -> anyhow::Result<i32> {
        if self.protect_self {
            let msg = self.settle_memory();
            log(format_args!("{msg}"));
        }
        self.notifier.ready("watching");
        loop {
            let timeout = self.step();
            if let Some(code) = self.wait(timeout)? {
                self.notifier.stopping();
                // Nothing frozen is left behind.
                self.thrash_restore_all("stopping");
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
        // Without a signalfd (an embedded daemon) the slot is an fd poll ignores.
        fds.push(pfd(
            self.sigfd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            libc::POLLIN,
        ));
        for t in &self.psi_triggers {
            fds.push(pfd(t.fd().as_raw_fd(), libc::POLLPRI));
        }
        for w in &self.cgroups {
            if let Some(ev) = &w.wake {
                fds.push(pfd(ev.fd().as_raw_fd(), libc::POLLIN));
            }
            if let Some(t) = &w.psi_trigger {
                fds.push(pfd(t.fd().as_raw_fd(), libc::POLLPRI));
            }
        }
        let appear_slot = self.appear.as_ref().map(|a| {
            fds.push(pfd(a.fd().as_raw_fd(), libc::POLLIN));
            fds.len() - 1
        });
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
        let appeared = appear_slot.is_some_and(|i| fds[i].revents != 0);
        self.pollfds = fds;
        if appeared {
            if let Some(a) = self.appear.as_mut() {
                self.appear_pending |= a.drain();
            }
        }
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
        if let Some(sigfd) = self.sigfd.as_ref().filter(|_| signalled) {
            for sig in read_signals(sigfd) {
                match sig as i32 {
                    libc::SIGTERM | libc::SIGINT => return Ok(Some(0)),
                    libc::SIGHUP => self.reload(),
                    _ => {}
                }
            }
        }
        Ok(None)
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
        self.forecast_machine(s, now);
        let (level, decision) = decision::decide_global(
            &self.th,
            s,
            &self.psi_state,
            since,
            &mut self.history,
            self.cfg.kill.recovery_margin,
            self.cfg.kill.recovery_timeout,
            Instant::now(),
        );
        let calm = level == Level::Calm;
        if let Some(d) = decision {
            self.act(d);
        }
        let headroom = s.mem_available_bytes.saturating_sub(self.th.mem_term_bytes);
        let wanted = self
            .warm
            .observe(&self.warm_plan, s.mem_available_bytes, headroom, now);
        self.warm_wanted = calm && wanted && self.warm_usable();
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
                    if !self.cgroups[i].gone_reported {
                        self.cgroups[i].gone_reported = true;
                        log(format_args!(
                            "cgroup {} is gone; no longer guarded (looking for it again every 10 s)",
                            self.cgroups[i].path
                        ));
                    }
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
        self.record_cgroup(i, reading.usage_bytes);
        self.thrash_cgroup(i, &reading, now);
        self.forecast_cgroup(i, &reading, now);
        let w = &mut self.cgroups[i];
        if let Some(msg) = w.arm(&reading) {
            log(format_args!("{msg}"));
        }
        if reading.room_bytes(w.headroom).is_none() {
            // No limit: nothing to come near, but a pressure rule still applies (a slice
            // without a limit is where systemd-oomd's pressure rule is used, too).
            if let Some(d) = self.check_cgroup_pressure(i, &reading, now) {
                self.act(d);
            }
            return match self.cgroups.get(i) {
                Some(w) if w.pressure.counting() => Duration::from_millis(100),
                _ => self.poll_plan.max,
            };
        }
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
        let (decision, room) = decision::decide_cgroup(
            i,
            &w.path,
            &reading,
            w.headroom,
            &mut self.history,
            self.cfg.kill.recovery_timeout,
            Instant::now(),
        );
        if let Some(d) = decision {
            self.act(d);
        } else if let Some(d) = self.check_cgroup_pressure(i, &reading, now) {
            self.act(d);
        }
        let mut t = self.poll_plan.interval(room.unwrap_or(0), fill);
        // A pressure rule counting towards its duration is judged at least every 100 ms.
        if self.cgroups.get(i).is_some_and(|w| w.pressure.counting()) {
            t = t.min(Duration::from_millis(100).max(self.poll_plan.min));
        }
        t
    }

    /// The cgroup's pressure rule (`[[cgroups]] psi`, cgroup v2), judged when its headroom
    /// rule made no decision.
    fn check_cgroup_pressure(
        &mut self,
        i: usize,
        reading: &cgroups::Reading,
        now: Instant,
    ) -> Option<oomguard_core::decision::Decision> {
        let w = &mut self.cgroups[i];
        let spec = w
            .psi
            .filter(|_| w.version == oomguard_core::host::process::CgroupVersion::V2)?;
        let avg10 = w.pressure_avg10(&mut self.cgbuf)?;
        oomguard_core::cgroup_guard::decide_pressure(
            i,
            &w.path,
            reading,
            &spec,
            avg10,
            &mut w.pressure,
            &mut self.history,
            self.cfg.kill.recovery_timeout,
            now,
        )
    }

    /// Every process (or the `candidates_cgroup` subtree's) into `self.samples`.
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
        self.warm.forget();
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sense::reread;

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
