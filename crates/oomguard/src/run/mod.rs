//! `oomguard run -- CMD`: supervise a command in its own memory cgroup, say why each death
//! happened, restart it with backoff. Design, exit statuses and examples: `docs/run.md`.
//!
//! One thread, one `poll`: the child's pidfd (its exit), a signalfd (signals to forward),
//! `/dev/kmsg` (the kernel's OOM reports, fed to `oomguard_core::oomlog::Parser`), v1 usage
//! threshold eventfds (prompt warn/guard wake-ups), the hooks' pidfds and a 100 ms tick that
//! reads the cgroup's usage. The decisions (why it died, whether and when to restart, when to
//! warn, whom the guard kills) are pure functions in `oomguard_core::run`; this module gathers
//! their evidence.
//!
//! Events (deaths, OOM kills in the cgroup, warnings) go where the daemon's go: through a
//! [`Teller`] built from the daemon's config file (`--config`, read by `watch`'s loader), to the
//! event log, the journal and the hooks; and, per invocation, to `--json-events FILE`.

pub mod cgroup;
pub mod guard;
pub mod signals;
mod supervise;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;
use oomguard_core::event::{EventKind, OomEvent, RunInfo, Source};
use oomguard_core::killpath::{cgroup_is_within, parse_stat_identity};
use oomguard_core::oomlog::Parser;
use oomguard_core::run::{
    classify, default_name, explain, guard_level, parse_backoff, parse_percent, signal_name,
    valid_name, Backoff, BackoffRange, Cause, CgroupFacts, CgroupVersion, DeathEvidence,
    RestartPolicy, WaitStatus, WarnTracker,
};
use oomguard_core::size::{parse_bytes, parse_duration};
use oomguard_core::units::{mib_1, KIB, MIB};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Signal;

use crate::act::actuator::RealActuator;
use crate::act::pidfd::Pinned;
use crate::sense::kmsg::{KmsgError, KmsgReader, KmsgStart};
use crate::sense::memcg_v1::MemcgEvent;
use crate::tell::hub::{Teller, TellerOptions};
use crate::watch::{effective_config, WatchArgs};
use cgroup::{CgroupEnv, Limits, RunCgroup};
use signals::{Received, SignalFd, SI_KERNEL};

/// How often the cgroup's usage is read for `--warn-at` and `--guard` (on v1 a usage threshold
/// eventfd also wakes the loop at once).
const TICK: Duration = Duration::from_millis(100);
/// How long to wait, after a death that looks like an OOM kill, for the kernel's report to be
/// readable in `/dev/kmsg`. On 6.18 here it is there within a few milliseconds of the kill.
const REPORT_WAIT: Duration = Duration::from_millis(1000);
/// Quiet time after a guard kill before the guard may act again (memory is being freed).
const GUARD_COOLDOWN: Duration = Duration::from_millis(500);
/// The most `run` waits, before exiting, for hooks still running (each is also killed at its
/// own `timeout`); what is left then is killed as at a timeout. A second SIGINT/SIGTERM cuts
/// the wait short.
const HOOK_GRACE_MAX: Duration = Duration::from_secs(30);

/// The restart policy on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartArg {
    /// Never restart; exit with the command's status.
    Never,
    /// Restart only after an OOM kill (the kernel's or --guard's).
    OnOom,
    /// Restart after any death except exit status 0.
    OnFailure,
    /// Restart after every death, exit status 0 included.
    Always,
}

impl From<RestartArg> for RestartPolicy {
    fn from(r: RestartArg) -> Self {
        match r {
            RestartArg::Never => RestartPolicy::Never,
            RestartArg::OnOom => RestartPolicy::OnOom,
            RestartArg::OnFailure => RestartPolicy::OnFailure,
            RestartArg::Always => RestartPolicy::Always,
        }
    }
}

// clap prefixes these messages with the flag and the value as given
// (`invalid value '12 parsecs' for '--memory-max <SIZE>': ...`).
pub(crate) fn size_arg(s: &str) -> Result<u64, String> {
    match parse_bytes(s) {
        // No cgroup limit of 0 bytes lets a command start.
        Ok(0) => Err("a memory size must be above zero".to_owned()),
        Ok(b) => Ok(b),
        Err(e) => Err(e.to_string()),
    }
}
pub(crate) fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}
pub(crate) fn backoff_arg(s: &str) -> Result<BackoffRange, String> {
    parse_backoff(s).map_err(|e| e.why)
}
pub(crate) fn pct_arg(s: &str) -> Result<u8, String> {
    parse_percent(s).map_err(|e| e.why)
}

pub use crate::cli::RunArgs;

/// Where events go.
struct EventSink {
    out: Option<Box<dyn Write>>,
}

impl EventSink {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Self> {
        let out: Option<Box<dyn Write>> = match path {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stderr())),
            Some(p) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("open --json-events file {}", p.display()))?,
            )),
        };
        Ok(Self { out })
    }

    fn emit(&mut self, ev: &OomEvent) {
        let Some(out) = &mut self.out else { return };
        let line = match serde_json::to_string(ev) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("oomguard run: warning: cannot serialise an event: {e}");
                return;
            }
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            eprintln!("oomguard run: warning: cannot write an event: {e}");
        }
    }
}

/// Validated settings.
struct Config {
    name: String,
    policy: RestartPolicy,
    warn_at: Option<u8>,
    guard_headroom: Option<u64>,
}

fn config(args: &RunArgs) -> anyhow::Result<Config> {
    let Some(program) = args.command.first() else {
        anyhow::bail!("no command given: oomguard run [OPTIONS] -- CMD [ARGS...]");
    };
    if program.is_empty() {
        anyhow::bail!("the command is an empty string");
    }
    let name = match &args.name {
        Some(n) if valid_name(n) => n.clone(),
        Some(n) => anyhow::bail!(
            "invalid --name {n:?}: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)"
        ),
        None => format!(
            "{}-{}",
            default_name(&program.to_string_lossy()),
            std::process::id()
        ),
    };
    if args.warn_at.is_some() && args.memory_max.is_none() {
        anyhow::bail!("--warn-at is a percentage of --memory-max: give --memory-max too");
    }
    if let (Some(max), Some(high)) = (args.memory_max, args.memory_high) {
        if high > max {
            anyhow::bail!("--memory-high ({high} bytes) is above --memory-max ({max} bytes)");
        }
    }
    let guard_headroom = match (args.guard, args.memory_max) {
        (true, Some(max)) => {
            let h = args.guard_headroom.unwrap_or((max / 20).max(2 * MIB));
            if h >= max {
                anyhow::bail!("--guard-headroom must be below --memory-max");
            }
            Some(h)
        }
        _ => None,
    };
    Ok(Config {
        name,
        policy: args.restart.into(),
        warn_at: args.warn_at,
        guard_headroom,
    })
}

/// The Teller for `run`'s events, from the daemon's config file (`--config`, or the default
/// file when it exists, read by `watch`'s loader) with `--event-log` on top. The metrics
/// listener and textfile are the daemon's business: a one-line note, then off.
fn teller(args: &RunArgs, name: &str) -> anyhow::Result<Teller> {
    let (mut cfg, origin) = effective_config(&WatchArgs {
        config: args.config.clone(),
        event_log: args.event_log.clone(),
        ..WatchArgs::default()
    })?;
    if !cfg.metrics.listen.is_empty() || !cfg.metrics.textfile.is_empty() {
        eprintln!(
            "oomguard run: {name}: note: [metrics] of {} is for oomguard watch; not served by run",
            origin
                .as_deref()
                .map_or("the config".into(), |p| p.display().to_string())
        );
        cfg.metrics = Default::default();
    }
    let opts = TellerOptions {
        version: env!("CARGO_PKG_VERSION").into(),
        // run follows /dev/kmsg itself and ties each kernel report to its cgroup and its death.
        detector: None,
        journal_socket: None,
        own_event_lines: true,
    };
    Teller::new(&cfg, opts, Instant::now()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs `oomguard run`; returns the exit status (see docs/run.md). Errors before the command
/// first starts are usage or set-up errors (exit 2, nothing left behind).
pub fn run(args: &RunArgs) -> anyhow::Result<u8> {
    let cfg = config(args)?;
    let tell = teller(args, &cfg.name)?;
    let env = CgroupEnv::read_live()?;
    let limits = Limits {
        max_bytes: args.memory_max,
        high_bytes: args.memory_high,
    };
    // Signals are blocked before the cgroup exists, so a SIGTERM during set-up is not lost
    // and cannot kill us between mkdir and the Drop that removes it.
    let sigs = SignalFd::new().context("signalfd for SIGINT/SIGTERM/SIGHUP/SIGQUIT")?;
    let sink = EventSink::open(args.json_events.as_ref())?;
    let mut cg = RunCgroup::create(&env, args.cgroup_parent.as_deref(), &cfg.name, limits)?;
    if let Some(why) = &cg.v2_skipped {
        eprintln!("oomguard run: {}: using cgroup v1: {why}", cfg.name);
    }
    let limit_bytes = cg.read_limit_bytes()?;
    let kmsg = match KmsgReader::open(KmsgStart::End) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!(
                "oomguard run: {}: warning: cannot follow the kernel log ({e}); OOM kills are \
                 told from the cgroup's oom_kill counter only, without the kernel's figures",
                cfg.name
            );
            None
        }
    };
    let mut sup = Supervisor {
        args,
        cfg,
        cg: &cg,
        limit_bytes,
        sigs,
        kmsg,
        sink,
        tell,
        stop: None,
    };
    let code = sup.run_all();
    let Supervisor {
        mut tell,
        sigs,
        cfg,
        ..
    } = sup;
    if let Err(e) = cg.remove() {
        eprintln!("oomguard run: warning: {e}");
    }
    finish_hooks(&mut tell, &sigs, &cfg.name);
    code
}

/// Gives hooks still running (fired by the last events) time to finish before `run` exits:
/// each until its own timeout, all within [`HOOK_GRACE_MAX`], or until a further
/// SIGINT/SIGTERM; then kills what is left and reaps it.
fn finish_hooks(tell: &mut Teller, sigs: &SignalFd, name: &str) {
    let mut found = Vec::new();
    let start = Instant::now();
    let mut until = start + HOOK_GRACE_MAX;
    let mut announced = false;
    let mut expired = false;
    loop {
        let now = Instant::now();
        tell.on_ready(now, &mut found);
        let running = tell.children_running();
        if running == 0 {
            return;
        }
        if now >= until && !expired {
            eprintln!("oomguard run: {name}: killing {running} hook(s) still running");
            tell.expire_children(now);
            expired = true;
            // The kill is immediate; reaping needs the exit to be noticed: a moment more.
            until = now + Duration::from_secs(1);
            continue;
        }
        if now >= until {
            return;
        }
        if !announced && now >= start + Duration::from_secs(1) {
            eprintln!(
                "oomguard run: {name}: waiting for {running} hook(s) (SIGINT/SIGTERM to cut short)"
            );
            announced = true;
        }
        // A stop request cuts the wait short; SIGHUP has no one left to go to.
        while let Ok(Some(r)) = sigs.read() {
            if r.signal != libc::SIGHUP && !expired {
                until = now;
            }
        }
        let mut fds = vec![PollFd::from_borrowed_fd(sigs.fd(), PollFlags::IN)];
        let timeout = add_tell_fds(tell, &mut fds, now, until.saturating_duration_since(now));
        let _ = rustix::event::poll(&mut fds, Some(&poll_timeout(timeout)));
    }
}

/// Adds the Teller's fds (hook pidfds) to a poll set and cuts `timeout` to its next deadline.
fn add_tell_fds<'a>(
    tell: &'a Teller,
    fds: &mut Vec<PollFd<'a>>,
    now: Instant,
    timeout: Duration,
) -> Duration {
    let mut tfds = Vec::new();
    tell.poll_fds(&mut tfds);
    fds.extend(
        tfds.into_iter()
            .map(|(fd, flags)| PollFd::from_borrowed_fd(fd, flags)),
    );
    match tell.next_deadline(now) {
        Some(d) => timeout.min(d.saturating_duration_since(now)),
        None => timeout,
    }
}

/// A stop request (a forwarded SIGINT/SIGTERM/SIGQUIT).
#[derive(Debug, Clone, Copy)]
struct Stop {
    signal: i32,
    kill_at: Instant,
    killed: bool,
}

struct Supervisor<'a> {
    args: &'a RunArgs,
    cfg: Config,
    cg: &'a RunCgroup,
    limit_bytes: Option<u64>,
    sigs: SignalFd,
    kmsg: Option<KmsgReader>,
    sink: EventSink,
    tell: Teller,
    stop: Option<Stop>,
}

/// One start of the command and how it ended.
struct Death {
    pid: i32,
    comm: Option<String>,
    status: WaitStatus,
    ran_for: Duration,
    cause: Cause,
    why: String,
    /// Other OOM kills (kernel or guard) in the cgroup during this start, as events.
    other_kills: Vec<OomEvent>,
    usage_bytes: Option<u64>,
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn poll_timeout(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

impl Supervisor<'_> {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Sends an event to the Teller (event log, journal, hooks), then, stamped with its id and
    /// time, to `--json-events`.
    fn emit(&mut self, ev: OomEvent) {
        let ev = self.tell.record(ev, Instant::now());
        self.sink.emit(&ev);
    }

    /// Lets the Teller reap and time out hooks (it never blocks).
    fn tell_tick(&mut self) {
        let mut found = Vec::new();
        self.tell.on_ready(Instant::now(), &mut found);
    }

    fn run_info(&self, start: u32, pid: i32, cause: &str, why: String) -> RunInfo {
        RunInfo {
            name: self.cfg.name.clone(),
            cgroup: self.cg.rel_path.clone(),
            start,
            main_pid: i64::from(pid),
            cause: cause.to_owned(),
            exit_code: None,
            signal: None,
            core_dumped: false,
            status: None,
            ran_ms: 0,
            last_usage_bytes: None,
            limit_bytes: self.limit_bytes,
            restart_in_ms: None,
            why,
        }
    }

    /// Starts, supervises and restarts until done; returns the exit status.
    fn run_all(&mut self) -> anyhow::Result<u8> {
        let mut backoff = Backoff::new(self.args.backoff, self.args.healthy_after);
        let mut restarts: u32 = 0;
        let mut start: u32 = 0;
        loop {
            start += 1;
            let (child, pinned, comm) = match self.spawn() {
                Ok(x) => x,
                Err(e) => {
                    eprintln!(
                        "oomguard run: {}: cannot start the command: {e:#}",
                        self.name()
                    );
                    // As a shell says it: 127 not found, 126 found but not executable.
                    let code = match e.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
                        Some(std::io::ErrorKind::NotFound) => 127,
                        _ => 126,
                    };
                    return Ok(code);
                }
            };
            eprintln!(
                "oomguard run: {}: started pid {} ({}) in {} at {}{}",
                self.name(),
                pinned.pid(),
                comm.as_deref().unwrap_or("?"),
                self.cg.version,
                self.cg.rel_path,
                self.limit_bytes
                    .map(|l| format!(", limit {} MiB", mib_1(l)))
                    .unwrap_or_default()
            );
            let death = self.supervise(start, child, &pinned, comm)?;
            let status = death.status.shell_status();
            // Leftovers (daemonised children) would hold memory into the next start.
            match self.cg.empty() {
                Ok(0) => {}
                Ok(n) => eprintln!(
                    "oomguard run: {}: killed {n} process(es) left in the cgroup",
                    self.name()
                ),
                Err(e) => eprintln!("oomguard run: {}: warning: {e}", self.name()),
            }
            let decision: Result<Duration, String> = if let Some(stop) = self.stop {
                Err(format!("stopping on {}", signal_name(stop.signal)))
            } else if !self.cfg.policy.restarts_after(&death.cause) {
                Err(format!(
                    "not restarting (--restart {})",
                    clap::ValueEnum::to_possible_value(&self.args.restart)
                        .map(|v| v.get_name().to_owned())
                        .unwrap_or_default()
                ))
            } else if let Some(max) = self.args.max_restarts.filter(|&m| restarts >= m) {
                Err(format!("not restarting: --max-restarts {max} reached"))
            } else {
                Ok(backoff.after_death(death.ran_for))
            };
            self.report(start, &death, &decision);
            let Ok(delay) = decision else {
                eprintln!(
                    "oomguard run: {}: exiting with status {status}",
                    self.name()
                );
                return Ok(status);
            };
            restarts += 1;
            if self.sleep_interruptibly(delay)? {
                eprintln!(
                    "oomguard run: {}: stopped during the backoff; exiting with status {status}",
                    self.name()
                );
                return Ok(status);
            }
        }
    }

    /// Prints the death line and emits the events of this start.
    fn report(&mut self, start: u32, d: &Death, decision: &Result<Duration, String>) {
        let tail = match decision {
            Ok(delay) => format!(
                "; restarting in {} (restart {}{})",
                secs(*delay),
                start,
                self.args
                    .max_restarts
                    .map(|m| format!(" of {m}"))
                    .unwrap_or_default()
            ),
            Err(s) => format!("; {s}"),
        };
        eprintln!(
            "oomguard run: {}: pid {} {}{tail}",
            self.name(),
            d.pid,
            d.why
        );
        for k in &d.other_kills {
            let mut ev = k.clone();
            let why = format!(
                "{} OOM-killed pid {} ({}) in the cgroup",
                if k.source == Source::Oomguard {
                    "oomguard --guard"
                } else {
                    "the kernel"
                },
                k.pid.unwrap_or_default(),
                k.comm.as_deref().unwrap_or("?")
            );
            let tag = if k.source == Source::Oomguard {
                "oomguard"
            } else {
                "kernel_oom"
            };
            ev.run = Some(self.run_info(start, d.pid, tag, why));
            self.emit(ev);
        }
        let mut ev = match &d.cause {
            Cause::KernelOom { report: Some(r) } => r.clone(),
            Cause::Oomguard { kill } => kill.clone(),
            Cause::KernelOom { report: None } => {
                let mut e = OomEvent::new(EventKind::Kill);
                e.constraint = Some("CONSTRAINT_MEMCG".to_owned());
                e.oom_memcg = Some(self.cg.rel_path.clone());
                e.memcg_limit_kb = self.limit_bytes.map(|l| l / KIB);
                e
            }
            Cause::Exited { .. } | Cause::Signaled { .. } => {
                let mut e = OomEvent::new(EventKind::Exit);
                e.source = Source::Oomguard;
                e
            }
        };
        if ev.pid.is_none() {
            ev.pid = Some(i64::from(d.pid));
        }
        if ev.comm.is_none() {
            ev.comm = d.comm.clone();
        }
        if ev.task_memcg.is_none() {
            ev.task_memcg = Some(self.cg.rel_path.clone());
        }
        let mut info = self.run_info(start, d.pid, d.cause.tag(), d.why.clone());
        match d.status {
            WaitStatus::Exited(c) => info.exit_code = Some(c),
            WaitStatus::Signaled {
                signal,
                core_dumped,
            } => {
                info.signal = Some(signal_name(signal));
                info.core_dumped = core_dumped;
            }
        }
        info.status = Some(d.status.shell_status());
        info.ran_ms = u64::try_from(d.ran_for.as_millis()).unwrap_or(u64::MAX);
        info.last_usage_bytes = d.usage_bytes;
        info.restart_in_ms = decision
            .as_ref()
            .ok()
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        ev.run = Some(info);
        self.emit(ev);
    }

    /// Starts the command in the cgroup; returns it pinned, with its comm.
    fn spawn(&mut self) -> anyhow::Result<(Child, Pinned, Option<String>)> {
        let procs = CString::new(self.cg.procs_file().as_os_str().as_bytes())
            .context("cgroup path contains a NUL byte")?;
        let mut cmd = Command::new(&self.args.command[0]);
        cmd.args(&self.args.command[1..]);
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // async-signal-safe functions (sigprocmask, open, write, close) on a path prepared
        // before the fork. Joining before exec charges the whole image of the command to its
        // cgroup.
        unsafe {
            cmd.pre_exec(move || {
                signals::unblock_in_child()?;
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if ok {
                    Ok(())
                } else {
                    Err(err)
                }
            });
        }
        let mut child = cmd.spawn().map_err(anyhow::Error::from)?;
        let pid = child.id() as i32;
        // Our own unreaped child: the pid cannot be reused before we wait for it.
        let pinned = match Pinned::open(pid) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(anyhow::Error::new(e).context("pidfd_open of the command"));
            }
        };
        let comm = pinned
            .read_proc_file("comm")
            .ok()
            .map(|c| String::from_utf8_lossy(&c).trim_end().to_owned());
        Ok((child, pinned, comm))
    }

    /// Handles one received signal: forward it, and note a stop request.
    fn on_signal(&mut self, r: Received, child: &Pinned, child_shares_pgrp: bool) {
        // A terminal's ^C / ^\ / hangup (si_code SI_KERNEL) already went to the whole
        // foreground process group; forwarding it again would deliver it twice.
        let already_delivered = r.code == SI_KERNEL && child_shares_pgrp;
        if !already_delivered {
            if let Some(sig) = Signal::from_named_raw(r.signal) {
                if let Err(e) = child.send_signal(sig) {
                    eprintln!(
                        "oomguard run: {}: cannot forward {}: {e}",
                        self.cfg.name,
                        signal_name(r.signal)
                    );
                }
            }
        }
        if r.signal != libc::SIGHUP && self.stop.is_none() {
            self.stop = Some(Stop {
                signal: r.signal,
                kill_at: Instant::now() + self.args.stop_timeout,
                killed: false,
            });
        }
    }

    /// Sleeps for the backoff, waking for signals; true when a stop was requested.
    fn sleep_interruptibly(&mut self, delay: Duration) -> anyhow::Result<bool> {
        let until = Instant::now() + delay;
        loop {
            while let Some(r) = self.sigs.read()? {
                if r.signal != libc::SIGHUP {
                    self.stop = Some(Stop {
                        signal: r.signal,
                        kill_at: Instant::now(),
                        killed: true,
                    });
                    return Ok(true);
                }
            }
            let now = Instant::now();
            if now >= until {
                return Ok(false);
            }
            let mut fds = vec![PollFd::from_borrowed_fd(self.sigs.fd(), PollFlags::IN)];
            let timeout = add_tell_fds(&self.tell, &mut fds, now, until - now);
            let _ = rustix::event::poll(&mut fds, Some(&poll_timeout(timeout)));
            drop(fds);
            self.tell_tick();
        }
    }

    /// Reads every pending kernel-log record into the parser. Returns true when one of them is
    /// the kernel's `Killed process PID` line for `pid`.
    fn drain_kmsg(&mut self, parser: &mut Parser, line_no: &mut u64, pid: i32) -> bool {
        let Some(reader) = &mut self.kmsg else {
            return false;
        };
        let needle = format!("Killed process {pid} (");
        let mut seen = false;
        loop {
            match reader.next_record() {
                Ok(Some(entry)) => {
                    let r = &entry.record;
                    if !r.is_kernel() {
                        continue;
                    }
                    // The parser reads /dev/kmsg record syntax itself (prefix, escapes).
                    let line = format!(
                        "{},{},{},-;{}",
                        (u32::from(r.facility) << 3) | u32::from(r.level),
                        r.seq,
                        r.usec_monotonic,
                        r.text
                    );
                    seen |= r.text.contains(&needle);
                    *line_no += 1;
                    parser.push(line.as_bytes(), *line_no);
                }
                Ok(None) => return seen,
                // An oversized or malformed record was skipped and counted by the reader; go on.
                Err(KmsgError::Oversized { .. } | KmsgError::Malformed { .. }) => continue,
                // A read error would repeat on every call: stop following the log.
                Err(e) => {
                    eprintln!(
                        "oomguard run: {}: warning: stopped following the kernel log: {e}",
                        self.cfg.name
                    );
                    self.kmsg = None;
                    return seen;
                }
            }
        }
    }
}
