//! Child processes the daemon starts and forgets: hooks and notifications. [`Runner::spawn`]
//! returns as soon as the program is exec'd; [`Runner::on_tick`] feeds stdin, collects output,
//! kills what overran its timeout and reaps what exited, all without blocking.
//!
//! Why the pieces are as they are:
//! - argv, never a shell: a victim's name is attacker-controlled (earlyoom 1.1 fixed a shell
//!   injection through exactly this);
//! - each child leads its own process group, so a timeout kills what the hook started too. The
//!   group id cannot be reused while the leader is our unreaped child;
//! - the kill goes through a pidfd taken right after spawn (the pid is our unreaped child, so
//!   it is still ours), as everywhere on oomguard's kill paths;
//! - stdin, stdout and stderr are non-blocking pipes: a hook that never reads its stdin or
//!   floods its stdout cannot stall the loop; output beyond [`OUTPUT_CAP`] is dropped and counted.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// Output kept per child (stdout and stderr together).
pub const OUTPUT_CAP: usize = 16 * 1024;
/// How often running children are checked for exit when the loop has nothing else to do. The
/// loop may also poll [`Runner::pidfds`] (POLLIN at exit) and call `on_tick` at once.
pub const REAP_INTERVAL: Duration = Duration::from_millis(50);
/// Children running at once; more are refused (counted) rather than queued, so a storm of
/// events cannot fork-bomb the host.
pub const MAX_RUNNING: usize = 16;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names the child in logs (`hook post_kill #0`, `notify-send uid 1000`).
    pub label: String,
    pub argv: Vec<String>,
    /// Added to the daemon's environment.
    pub env: Vec<(String, String)>,
    /// Written to the child's stdin, which is then closed. `None`: stdin is /dev/null.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Run as this uid/gid (root only; supplementary groups are dropped).
    pub user: Option<(u32, u32)>,
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// Killed by us at its timeout.
    TimedOut,
    /// It could not be started.
    SpawnFailed(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

/// A child that is done.
#[derive(Debug, Clone)]
pub struct Finished {
    pub label: String,
    pub outcome: Outcome,
    pub runtime: Duration,
    /// stdout then stderr as they arrived, lossy UTF-8, capped at [`OUTPUT_CAP`].
    pub output: String,
    pub output_truncated: bool,
}

/// Counters of one runner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerStats {
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub spawn_failed: u64,
    /// Refused because [`MAX_RUNNING`] children were running.
    pub refused_busy: u64,
}

struct Running {
    label: String,
    child: Child,
    pidfd: OwnedFd,
    started: Instant,
    deadline: Instant,
    stdin: Option<ChildStdin>,
    stdin_data: Vec<u8>,
    stdin_pos: usize,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    output: Vec<u8>,
    truncated: bool,
    killed: bool,
}

/// Starts, feeds, times out and reaps children. See the module docs.
#[derive(Default)]
pub struct Runner {
    running: Vec<Running>,
    stats: RunnerStats,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("running", &self.running.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn nonblocking(fd: impl AsFd) {
    // Failure would only make a pipe blocking; it cannot fail on a pipe we just made.
    let _ = rustix::io::ioctl_fionbio(fd, true);
}

impl Runner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> RunnerStats {
        self.stats
    }

    /// Children still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Starts `spec` and returns at once (after the kernel's fork/exec, a few hundred µs).
    /// A program that cannot be started yields a `SpawnFailed` result right away.
    pub fn spawn(&mut self, spec: Spec, now: Instant) -> Result<(), Finished> {
        let fail = |label: &str, why: String| Finished {
            label: label.to_owned(),
            outcome: Outcome::SpawnFailed(why),
            runtime: Duration::ZERO,
            output: String::new(),
            output_truncated: false,
        };
        if self.running.len() >= MAX_RUNNING {
            self.stats.refused_busy += 1;
            return Err(fail(
                &spec.label,
                format!("{MAX_RUNNING} hooks/notifications still running"),
            ));
        }
        let Some(program) = spec.argv.first() else {
            self.stats.spawn_failed += 1;
            return Err(fail(&spec.label, "empty command".to_owned()));
        };
        let mut cmd = Command::new(program);
        cmd.args(&spec.argv[1..])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(if spec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some((uid, gid)) = spec.user {
            cmd.uid(uid).gid(gid);
        }
        // The daemon and `oomguard run` block SIGINT/SIGTERM/SIGHUP/SIGQUIT to read them from a
        // signalfd, and `Command` passes the mask on through exec: a hook would start with
        // SIGTERM blocked, deaf to its own `timeout`/`kill`. Start every child with none blocked.
        // SAFETY: between fork and exec only sigemptyset and sigprocmask run, both
        // async-signal-safe, on a local sigset_t.
        unsafe {
            cmd.pre_exec(|| {
                let mut none = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
                libc::sigemptyset(none.as_mut_ptr());
                if libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.stats.spawn_failed += 1;
                return Err(fail(&spec.label, format!("{program}: {e}")));
            }
        };
        let pidfd = match Pid::from_raw(child.id() as i32)
            .ok_or(rustix::io::Errno::SRCH)
            .and_then(|p| pidfd_open(p, PidfdFlags::empty()))
        {
            Ok(fd) => fd,
            Err(e) => {
                // Without a pidfd we cannot time it out safely: end it now (it is our
                // unreaped child, so the pid is still ours).
                let _ = child.kill();
                let _ = child.wait();
                self.stats.spawn_failed += 1;
                return Err(fail(&spec.label, format!("pidfd_open: {e}")));
            }
        };
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        if let Some(s) = &stdin {
            nonblocking(s);
        }
        if let Some(s) = &stdout {
            nonblocking(s);
        }
        if let Some(s) = &stderr {
            nonblocking(s);
        }
        self.stats.started += 1;
        let mut r = Running {
            label: spec.label,
            child,
            pidfd,
            started: now,
            deadline: now + spec.timeout,
            stdin,
            stdin_data: spec.stdin.unwrap_or_default(),
            stdin_pos: 0,
            stdout,
            stderr,
            output: Vec::new(),
            truncated: false,
            killed: false,
        };
        r.feed_stdin();
        self.running.push(r);
        Ok(())
    }

    /// Moves every running child's timeout to `now` (for an embedder about to exit): the next
    /// [`Runner::on_tick`] kills them as at a timeout.
    pub fn expire_all(&mut self, now: Instant) {
        for r in &mut self.running {
            r.deadline = r.deadline.min(now);
        }
    }

    /// The children's pidfds (readable when the child exits), for the daemon's poll set.
    pub fn pidfds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        self.running.iter().map(|r| r.pidfd.as_fd())
    }

    /// When `on_tick` should run next: soon while children run, else never.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let soonest = self.running.iter().map(|r| r.deadline).min()?;
        Some(soonest.min(now + REAP_INTERVAL))
    }

    /// Feeds stdin, collects output, kills children past their timeout, reaps the exited.
    /// Never blocks.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Finished>) {
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            r.feed_stdin();
            r.collect_output();
            if !r.killed && now >= r.deadline {
                r.killed = true;
                let pgid = r.child.id() as i32;
                let _ = pidfd_send_signal(&r.pidfd, Signal::KILL);
                // The group: whatever the hook started. The leader is unreaped, so the group
                // id is still this group's.
                if let Some(pg) = Pid::from_raw(pgid) {
                    let _ = rustix::process::kill_process_group(pg, Signal::KILL);
                }
            }
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    let mut r = self.running.swap_remove(i);
                    r.collect_output();
                    let outcome = if r.killed {
                        Outcome::TimedOut
                    } else if let Some(code) = status.code() {
                        Outcome::Exited(code)
                    } else {
                        Outcome::Signaled(status.signal().unwrap_or(0))
                    };
                    match &outcome {
                        Outcome::Exited(0) => self.stats.succeeded += 1,
                        Outcome::TimedOut => self.stats.timed_out += 1,
                        _ => self.stats.failed += 1,
                    }
                    out.push(Finished {
                        label: r.label,
                        outcome,
                        runtime: now.saturating_duration_since(r.started),
                        output: String::from_utf8_lossy(&r.output).into_owned(),
                        output_truncated: r.truncated,
                    });
                }
                Ok(None) => i += 1,
                Err(_) => {
                    // ECHILD: someone else reaped it (a SIGCHLD=SIG_IGN embedder). Forget it.
                    let r = self.running.swap_remove(i);
                    self.stats.failed += 1;
                    out.push(Finished {
                        label: r.label,
                        outcome: Outcome::SpawnFailed("reaped elsewhere".to_owned()),
                        runtime: now.saturating_duration_since(r.started),
                        output: String::new(),
                        output_truncated: false,
                    });
                }
            }
        }
    }
}

impl Running {
    fn feed_stdin(&mut self) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        while self.stdin_pos < self.stdin_data.len() {
            match stdin.write(&self.stdin_data[self.stdin_pos..]) {
                Ok(0) => break,
                Ok(n) => self.stdin_pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EPIPE: the child does not read its stdin. That is its business.
                Err(_) => break,
            }
        }
        // Everything written (or the reader is gone): close, so the child sees EOF.
        self.stdin = None;
        self.stdin_data = Vec::new();
    }

    fn collect_output(&mut self) {
        let mut buf = [0u8; 4096];
        for which in 0..2 {
            // Bounded: a child writing as fast as we read cannot keep the loop here.
            for _ in 0..16 {
                let res = match which {
                    0 => match self.stdout.as_mut() {
                        Some(s) => s.read(&mut buf),
                        None => break,
                    },
                    _ => match self.stderr.as_mut() {
                        Some(s) => s.read(&mut buf),
                        None => break,
                    },
                };
                match res {
                    Ok(0) => {
                        if which == 0 {
                            self.stdout = None;
                        } else {
                            self.stderr = None;
                        }
                        break;
                    }
                    Ok(n) => {
                        let room = OUTPUT_CAP.saturating_sub(self.output.len());
                        if n > room {
                            self.truncated = true;
                        }
                        self.output.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
    }
}
