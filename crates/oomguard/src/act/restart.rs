//! The `restart` step's side effect (issue 16): restarting a guarded cgroup's systemd service
//! with `systemctl restart --no-block -- UNIT`, run as an argv (never through a shell; the
//! unit name is checked against systemd's rules first, `oomguard_core::restrain::restart_unit`),
//! with a bounded wait, behind the [`UnitRestarter`] trait so that tests can point it at a fake
//! `systemctl` that records its argv.
//!
//! `--no-block` enqueues the restart job and returns: the daemon's loop never waits for a
//! service's stop timeout (up to 90 s by default) while other scopes need it. Whether the
//! restart helped is judged by the chain as after any step (the first window after the
//! step's). D-Bus would have needed a client crate for one call; systemctl is on every
//! systemd machine.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Restarts systemd units.
pub trait UnitRestarter {
    /// Whether units can be restarted here; `Err`: why not (the step is refused).
    fn ready(&self) -> Result<(), String>;
    /// Asks for `unit`'s restart and returns at once: the answer comes through
    /// [`RestartJob::poll`], so the daemon's loop never waits on systemd (which can be slow
    /// to answer on a machine that thrashes, exactly when this step runs).
    fn start(&mut self, unit: &str) -> RestartJob;
}

/// One restart asked for: `systemctl` running, or its answer.
#[derive(Debug)]
pub struct RestartJob {
    state: JobState,
}

#[derive(Debug)]
enum JobState {
    Running {
        child: Child,
        shown: String,
        unit: String,
        deadline: Instant,
        timeout: Duration,
    },
    Answered(Option<Result<String, String>>),
}

impl RestartJob {
    /// A job whose answer is known at once (it could not be started, or a test's fake).
    pub fn answered(r: Result<String, String>) -> Self {
        RestartJob {
            state: JobState::Answered(Some(r)),
        }
    }

    /// The answer, once: `Ok` what was done, `Err` why it failed (systemctl's status and
    /// stderr, or killed at its deadline); `None` while systemctl still runs, and after the
    /// answer was taken.
    pub fn poll(&mut self, now: Instant) -> Option<Result<String, String>> {
        let JobState::Running {
            child,
            shown,
            unit,
            deadline,
            timeout,
        } = &mut self.state
        else {
            let JobState::Answered(a) = &mut self.state else {
                return None;
            };
            return a.take();
        };
        let answer = match child.try_wait() {
            Ok(Some(st)) => answer(child, shown, unit, st),
            Ok(None) if now >= *deadline => {
                // Ours: the child only.
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{shown}: no answer within {timeout:?}: killed"))
            }
            Ok(None) => return None,
            Err(e) => Err(format!("{shown}: waiting: {e}")),
        };
        self.state = JobState::Answered(None);
        Some(answer)
    }

    /// Whether systemctl still runs.
    pub fn running(&self) -> bool {
        matches!(self.state, JobState::Running { .. })
    }
}

impl Drop for RestartJob {
    /// A job dropped unanswered (the daemon exits) does not leave its systemctl behind.
    fn drop(&mut self) {
        if let JobState::Running { child, .. } = &mut self.state {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn answer(child: &mut Child, shown: &str, unit: &str, st: ExitStatus) -> Result<String, String> {
    if st.success() {
        return Ok(format!(
            "systemctl restart --no-block -- {unit}: restart job queued"
        ));
    }
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let mut b = Vec::new();
        // Non-blocking (set at spawn): a grandchild holding the pipe open cannot stall this.
        let _ = s.by_ref().take(4096).read_to_end(&mut b);
        err = String::from_utf8_lossy(&b).trim().replace('\n', "; ");
    }
    Err(format!(
        "{shown}: {st}{}",
        if err.is_empty() {
            String::new()
        } else {
            format!(": {err}")
        }
    ))
}

/// Runs `systemctl`.
#[derive(Debug, Clone)]
pub struct SystemctlRestarter {
    /// The `systemctl` binary (`None`: not found).
    pub systemctl: Option<PathBuf>,
    /// systemd's marker that it is PID 1 (`/run/systemd/system`, as `sd_booted()` checks).
    pub booted_marker: PathBuf,
    /// How long `systemctl` may take before it is killed and the step counted as failed.
    pub timeout: Duration,
}

impl Default for SystemctlRestarter {
    /// The real machine: systemctl from the usual places (not `$PATH`: the daemon's
    /// environment is not trusted to name the binary it runs as root).
    fn default() -> Self {
        let systemctl = ["/usr/bin/systemctl", "/bin/systemctl"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        SystemctlRestarter {
            systemctl,
            booted_marker: PathBuf::from("/run/systemd/system"),
            timeout: Duration::from_secs(5),
        }
    }
}

impl UnitRestarter for SystemctlRestarter {
    fn ready(&self) -> Result<(), String> {
        if !self.booted_marker.is_dir() {
            return Err(format!(
                "systemd is not PID 1 here ({} is missing)",
                self.booted_marker.display()
            ));
        }
        match &self.systemctl {
            Some(_) => Ok(()),
            None => Err("no systemctl (looked in /usr/bin and /bin)".to_owned()),
        }
    }

    fn start(&mut self, unit: &str) -> RestartJob {
        let Some(bin) = self.systemctl.as_deref() else {
            return RestartJob::answered(Err("no systemctl".to_owned()));
        };
        spawn(
            bin,
            &["restart", "--no-block", "--", unit],
            unit,
            self.timeout,
        )
    }
}

/// Starts `bin args` with no shell, stdin and stdout closed, stderr kept (non-blocking) for
/// the error; the job kills it (the child only: it is ours) after `timeout`.
fn spawn(bin: &Path, args: &[&str], unit: &str, timeout: Duration) -> RestartJob {
    let shown = format!("{} {}", bin.display(), args.join(" "));
    match Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => {
            if let Some(e) = &child.stderr {
                // SAFETY: fcntl on a pipe fd this process owns.
                unsafe {
                    let fd = e.as_raw_fd();
                    let fl = libc::fcntl(fd, libc::F_GETFL);
                    if fl >= 0 {
                        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                    }
                }
            }
            RestartJob {
                state: JobState::Running {
                    child,
                    shown,
                    unit: unit.to_owned(),
                    deadline: Instant::now() + timeout,
                    timeout,
                },
            }
        }
        Err(e) => RestartJob::answered(Err(format!("{shown}: cannot run: {e}"))),
    }
}

/// Polls `job` until it answers or `limit` passes (tests, and nothing in the daemon's loop).
pub fn wait(job: &mut RestartJob, limit: Duration) -> Option<Result<String, String>> {
    let end = Instant::now() + limit;
    loop {
        if let Some(a) = job.poll(Instant::now()) {
            return Some(a);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake systemctl (a script this test writes) that records its argv one per line.
    fn fake(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("systemctl");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn runs_systemctl_as_an_argv_and_reports_its_failure_and_timeout() {
        let t = tempfile::tempdir().unwrap();
        let argv = t.path().join("argv");
        let marker = t.path().join("run/systemd/system");
        let mut r = SystemctlRestarter {
            systemctl: Some(fake(
                t.path(),
                &format!(
                    "for a in \"$@\"; do echo \"$a\" >> {}; done",
                    argv.display()
                ),
            )),
            booted_marker: marker.clone(),
            timeout: Duration::from_secs(5),
        };
        let e = r.ready().unwrap_err();
        assert!(e.contains("not PID 1"), "{e}");
        std::fs::create_dir_all(&marker).unwrap();
        r.ready().unwrap();
        // A name with shell characters would be one argument, never a command (and the core
        // refuses it before this: valid_unit_name).
        let mut job = r.start("a b;touch x.service");
        let done = wait(&mut job, Duration::from_secs(5)).unwrap().unwrap();
        assert!(done.contains("restart job queued"), "{done}");
        assert!(job.poll(Instant::now()).is_none(), "answered twice");
        assert_eq!(
            std::fs::read_to_string(&argv).unwrap(),
            "restart\n--no-block\n--\na b;touch x.service\n"
        );
        assert!(!t.path().join("x.service").exists());
        r.systemctl = Some(fake(
            t.path(),
            "echo 'Unit x.service not found.' >&2; exit 5",
        ));
        let e = wait(&mut r.start("x.service"), Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        assert!(
            e.contains("exit status: 5") && e.contains("not found"),
            "{e}"
        );
        // A systemctl that hangs: start returns at once, polls say nothing until the deadline,
        // then the child is killed and the step fails.
        r.systemctl = Some(fake(t.path(), "exec sleep 30"));
        r.timeout = Duration::from_millis(300);
        let t0 = Instant::now();
        let mut job = r.start("x.service");
        assert!(t0.elapsed() < Duration::from_millis(200), "start waited");
        assert!(job.poll(Instant::now()).is_none());
        assert!(job.running());
        let e = wait(&mut job, Duration::from_secs(5)).unwrap().unwrap_err();
        assert!(e.contains("no answer within"), "{e}");
        assert!(!job.running());
        // Dropped while running: its systemctl is killed and reaped.
        let job = r.start("x.service");
        drop(job);
        r.systemctl = None;
        assert!(r.ready().unwrap_err().contains("no systemctl"));
    }
}
