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
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Restarts systemd units.
pub trait UnitRestarter {
    /// Whether units can be restarted here; `Err`: why not (the step is refused).
    fn ready(&self) -> Result<(), String>;
    /// Asks for `unit`'s restart; `Ok`: what was done (for the event), `Err`: why it failed.
    fn restart(&mut self, unit: &str) -> Result<String, String>;
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

    fn restart(&mut self, unit: &str) -> Result<String, String> {
        let bin = self.systemctl.as_deref().ok_or("no systemctl")?;
        run_bounded(bin, &["restart", "--no-block", "--", unit], self.timeout)
            .map(|()| format!("systemctl restart --no-block -- {unit}: restart job queued"))
    }
}

/// Runs `bin args` with no shell, stdin and stdout closed, stderr kept for the error; killed
/// (the child only: it is ours) after `timeout`.
fn run_bounded(bin: &Path, args: &[&str], timeout: Duration) -> Result<(), String> {
    let shown = format!("{} {}", bin.display(), args.join(" "));
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: cannot run: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown}: no answer within {timeout:?}: killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{shown}: waiting: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let mut b = Vec::new();
        let _ = s.by_ref().take(4096).read_to_end(&mut b);
        err = String::from_utf8_lossy(&b).trim().replace('\n', "; ");
    }
    Err(format!(
        "{shown}: {status}{}",
        if err.is_empty() {
            String::new()
        } else {
            format!(": {err}")
        }
    ))
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
        let done = r.restart("a b;touch x.service").unwrap();
        assert!(done.contains("restart job queued"), "{done}");
        assert_eq!(
            std::fs::read_to_string(&argv).unwrap(),
            "restart\n--no-block\n--\na b;touch x.service\n"
        );
        assert!(!t.path().join("x.service").exists());
        r.systemctl = Some(fake(
            t.path(),
            "echo 'Unit x.service not found.' >&2; exit 5",
        ));
        let e = r.restart("x.service").unwrap_err();
        assert!(
            e.contains("exit status: 5") && e.contains("not found"),
            "{e}"
        );
        r.systemctl = Some(fake(t.path(), "exec sleep 30"));
        r.timeout = Duration::from_millis(200);
        let e = r.restart("x.service").unwrap_err();
        assert!(e.contains("no answer within"), "{e}");
        r.systemctl = None;
        assert!(r.ready().unwrap_err().contains("no systemctl"));
    }
}
