//! The `restart` step's side effect (issue 16): restarting a guarded cgroup's systemd service
//! with `systemctl restart --no-block -- UNIT`, run as an argv (never through a shell; the
//! unit name is checked against systemd's rules first, `oomguard_core::restrain::restart_unit`),
//! started beside the daemon's loop and polled ([`RestartJob`], on `tell::child::Runner`, the
//! runner of the hooks and diagnostics), behind the [`UnitRestarter`] trait so that tests can
//! point it at a fake `systemctl` that records its argv.
//!
//! `--no-block` enqueues the restart job and returns: the daemon's loop never waits for a
//! service's stop timeout (up to 90 s by default) while other scopes need it. Whether the
//! restart helped is judged by the chain as after any step (the first window after the
//! step's). D-Bus would have needed a client crate for one call; systemctl is on every
//! systemd machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::tell::child::{Finished, Outcome, Runner, Spec};

/// Restarts systemd units.
pub trait UnitRestarter {
    /// Whether units can be restarted here; `Err`: why not (the step is refused).
    fn ready(&self) -> Result<(), String>;
    /// Asks for `unit`'s restart and returns at once: the answer comes through
    /// [`RestartJob::poll`], so the daemon's loop never waits on systemd (which can be slow
    /// to answer on a machine that thrashes, exactly when this step runs).
    fn start(&mut self, unit: &str) -> RestartJob;
}

/// One restart asked for: `systemctl` running under the runner the hooks and diagnostics use
/// (`tell::child`: argv only, its own process group, non-blocking pipes, killed through its
/// pidfd at the timeout), or its answer.
#[derive(Debug)]
pub struct RestartJob {
    runner: Runner,
    unit: String,
    timeout: Duration,
    answer: Option<Result<String, String>>,
}

impl RestartJob {
    /// A job whose answer is known at once (it could not be started, or a test's fake).
    pub fn answered(r: Result<String, String>) -> Self {
        RestartJob {
            runner: Runner::new(),
            unit: String::new(),
            timeout: Duration::ZERO,
            answer: Some(r),
        }
    }

    /// The answer, once: `Ok` what was done, `Err` why it failed (systemctl's status and
    /// output, or killed at its timeout); `None` while systemctl still runs, and after the
    /// answer was taken.
    pub fn poll(&mut self, now: Instant) -> Option<Result<String, String>> {
        if self.answer.is_none() && self.runner.running() > 0 {
            let mut done = Vec::with_capacity(1);
            self.runner.on_tick(now, &mut done);
            if let Some(f) = done.pop() {
                self.answer = Some(answer(&f, &self.unit, self.timeout));
            }
        }
        self.answer.take()
    }

    /// Whether systemctl still runs.
    pub fn running(&self) -> bool {
        self.runner.running() > 0
    }
}

impl Drop for RestartJob {
    /// A job dropped unanswered (the daemon exits or reloads) does not leave its systemctl
    /// behind: killed as at a timeout.
    fn drop(&mut self) {
        let now = Instant::now();
        self.runner.expire_all(now);
        self.runner.on_tick(now, &mut Vec::new());
    }
}

fn answer(f: &Finished, unit: &str, timeout: Duration) -> Result<String, String> {
    let out = f.output.trim().replace('\n', "; ");
    let with_output = |what: String| {
        if out.is_empty() {
            what
        } else {
            format!("{what}: {out}")
        }
    };
    match &f.outcome {
        Outcome::Exited(0) => Ok(format!(
            "systemctl restart --no-block -- {unit}: restart job queued"
        )),
        Outcome::Exited(c) => Err(with_output(format!("{}: exit status: {c}", f.label))),
        Outcome::Signaled(sig) => Err(with_output(format!("{}: killed by signal {sig}", f.label))),
        Outcome::TimedOut => Err(format!("{}: no answer within {timeout:?}: killed", f.label)),
        Outcome::SpawnFailed(e) => Err(format!("{}: cannot run: {e}", f.label)),
    }
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

/// Starts `bin args` (an argv, no shell, no stdin) under a runner of its own; the job kills it
/// after `timeout`.
fn spawn(bin: &Path, args: &[&str], unit: &str, timeout: Duration) -> RestartJob {
    let mut argv = vec![bin.display().to_string()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let spec = Spec {
        label: argv.join(" "),
        argv,
        env: Vec::new(),
        stdin: None,
        timeout,
        user: None,
    };
    let mut job = RestartJob {
        runner: Runner::new(),
        unit: unit.to_owned(),
        timeout,
        answer: None,
    };
    if let Err(f) = job.runner.spawn(spec, Instant::now()) {
        job.answer = Some(answer(&f, unit, timeout));
    }
    job
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
