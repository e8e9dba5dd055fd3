//! A pinned process handle: a pidfd plus the start time that proves whose pidfd it is.
//!
//! A pid is only a name; between the scan that chose a victim and the signal, the victim may
//! exit and the kernel may hand its pid to an unrelated process. A pidfd refers to one process
//! (its `struct pid`), never to whoever holds the number later, and
//! `pidfd_send_signal` on a pidfd whose process has been reaped fails with ESRCH instead of
//! killing a stranger (checked on kernel 6.18). What a pidfd does NOT tell us is whether the
//! process it refers to is the one the scan saw, so [`Pinned::open_expecting`] compares the
//! start time the scan recorded with the start time of the process the pidfd refers to.
//!
//! Ordering that makes the check sound:
//! 1. `pidfd_open(pid)`: fixes the process that holds `pid` now.
//! 2. read `/proc/pid/stat`: the start time of whoever holds `pid` during the read.
//! 3. `pidfd_send_signal(pidfd, 0)`: succeeds only if the pidfd's process has not been reaped,
//!    and a pid number is not reused before its holder is reaped, so the stat read in step 2
//!    described the pidfd's process.
//!
//! Every later `/proc/PID/*` read goes through [`Pinned::read_proc_file`], which repeats
//! step 3 after reading for the same reason.
//!
//! Waiting uses `poll(POLLIN)` on the pidfd, which fires when the process exits (it need not
//! be our child). Memory is returned early with `process_mrelease` (Linux 5.15), for which
//! neither rustix nor nix has a wrapper, hence the raw `libc::syscall`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use oomguard_core::killpath::{parse_stat_identity, StatIdentity, StatParseError};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};

/// Errors of the pinned-process operations. The first three are outcomes a caller acts on:
/// skip the process (gone, reused) or degrade (permission denied).
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The process exited (and was reaped) before or while we pinned it.
    #[error("pid {pid} is gone")]
    Gone {
        /// The pid asked for.
        pid: i32,
    },
    /// The pid now belongs to another process than the one the caller saw.
    #[error(
        "pid {pid} was reused: expected start time {expected_ticks} ticks, found {found_ticks}"
    )]
    Reused {
        /// The pid asked for.
        pid: i32,
        /// Start time the caller recorded when it chose the process.
        expected_ticks: u64,
        /// Start time of the process that holds the pid now.
        found_ticks: u64,
    },
    /// We may not signal or inspect this process (EPERM/EACCES).
    #[error("{op} on pid {pid}: permission denied")]
    PermissionDenied {
        /// The pid.
        pid: i32,
        /// What we tried.
        op: &'static str,
    },
    /// `pidfd_open` said EINVAL: the number is not a thread-group leader (a thread id), or not
    /// a valid pid at all.
    #[error("pid {pid} is not a process (thread id or invalid)")]
    NotAProcess {
        /// The pid asked for.
        pid: i32,
    },
    /// The actuator refuses to signal this process (init, or the guard itself).
    #[error("refusing to signal pid {pid}: {why}")]
    Refused {
        /// The pid.
        pid: i32,
        /// Which rule.
        why: &'static str,
    },
    /// `/proc/PID/stat` could not be parsed.
    #[error("malformed {path}: {detail}")]
    Malformed {
        /// The file read.
        path: PathBuf,
        /// What was wrong.
        detail: StatParseError,
    },
    /// Any other I/O error, with the operation and pid.
    #[error("{op} on pid {pid}: {source}")]
    Io {
        /// The pid.
        pid: i32,
        /// What we tried.
        op: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
}

/// What `pidfd_send_signal` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The kernel queued the signal for the pinned process.
    Delivered,
    /// ESRCH: the pinned process has been reaped; nobody was signalled.
    AlreadyGone,
}

/// What `process_mrelease` did. Only `Released` means the call reaped memory; the others are
/// the clean fallbacks (the exit path will free the memory anyway, just later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MreleaseOutcome {
    /// Returned 0: the address space was reaped (or had already been by the OOM reaper).
    Released,
    /// ENOSYS: kernel older than 5.15 or a seccomp filter without `process_mrelease`.
    NotSupported,
    /// EINVAL: the process is not exiting (no SIGKILL delivered yet) or shares its mm with a
    /// live process.
    NotExiting,
    /// ESRCH: the process has no mm any more (it already freed its memory) or was reaped.
    AlreadyFreed,
    /// EAGAIN/EINTR persisted over the retries: the mm was busy; exit will free it.
    Busy,
}

/// A process pinned by a pidfd, with its verified start time.
#[derive(Debug)]
pub struct Pinned {
    pid: i32,
    start_time_ticks: u64,
    pidfd: OwnedFd,
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn proc_path(pid: i32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// Sends signal 0 through a pidfd: Ok(true) if the process is not yet reaped.
fn pidfd_alive(pid: i32, fd: BorrowedFd<'_>) -> Result<bool, PinError> {
    // SAFETY: pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags) with a
    // valid borrowed fd, signal 0 (existence check), a null info pointer and no flags.
    // rustix's `Signal` cannot express 0, hence the raw call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        // EPERM means it exists but we may not signal it; existence is what we asked.
        Some(libc::EPERM) => Ok(true),
        _ => Err(PinError::Io {
            pid,
            op: "pidfd_send_signal(0)",
            source: err,
        }),
    }
}

fn read_proc(pid: i32, file: &'static str) -> Result<Vec<u8>, PinError> {
    std::fs::read(proc_path(pid, file)).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => PinError::Gone { pid },
        Some(libc::EACCES) | Some(libc::EPERM) => PinError::PermissionDenied {
            pid,
            op: "read /proc/PID",
        },
        _ => PinError::Io {
            pid,
            op: file,
            source: e,
        },
    })
}

fn parse_identity(pid: i32, text: &[u8]) -> Result<StatIdentity, PinError> {
    parse_stat_identity(text).map_err(|detail| PinError::Malformed {
        path: proc_path(pid, "stat"),
        detail,
    })
}

impl Pinned {
    /// Pins whichever process holds `pid` now and records its start time.
    ///
    /// Use [`Pinned::open_expecting`] when acting on a process chosen earlier.
    pub fn open(pid: i32) -> Result<Self, PinError> {
        // Check the sign first: rustix's `Pid::from_raw` asserts on negative values.
        if pid <= 0 {
            return Err(PinError::NotAProcess { pid });
        }
        let raw_pid = Pid::from_raw(pid).ok_or(PinError::NotAProcess { pid })?;
        let pidfd =
            rustix::process::pidfd_open(raw_pid, PidfdFlags::empty()).map_err(|e| match e {
                rustix::io::Errno::SRCH => PinError::Gone { pid },
                rustix::io::Errno::INVAL => PinError::NotAProcess { pid },
                other => PinError::Io {
                    pid,
                    op: "pidfd_open",
                    source: errno(other),
                },
            })?;
        let identity = parse_identity(pid, &read_proc(pid, "stat")?)?;
        // The stat describes the pidfd's process only if that process still held the pid
        // after the read (module docs, step 3).
        if !pidfd_alive(pid, pidfd.as_fd())? {
            return Err(PinError::Gone { pid });
        }
        Ok(Self {
            pid,
            start_time_ticks: identity.start_time_ticks,
            pidfd,
        })
    }

    /// Pins `pid` only if it is still the process that started at `start_time_ticks`: the pid a
    /// scan saw, not a process that got the number since.
    pub fn open_expecting(pid: i32, start_time_ticks: u64) -> Result<Self, PinError> {
        let pinned = Self::open(pid)?;
        if pinned.start_time_ticks != start_time_ticks {
            return Err(PinError::Reused {
                pid,
                expected_ticks: start_time_ticks,
                found_ticks: pinned.start_time_ticks,
            });
        }
        Ok(pinned)
    }

    /// The pid (in our pid namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The verified start time, in clock ticks since boot.
    pub fn start_time_ticks(&self) -> u64 {
        self.start_time_ticks
    }

    /// The pidfd, for callers that poll several processes at once.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reads `/proc/PID/<file>` and returns it only if it described the pinned process: the
    /// process must still be unreaped after the read, and for `stat` the start time must match.
    pub fn read_proc_file(&self, file: &'static str) -> Result<Vec<u8>, PinError> {
        let text = read_proc(self.pid, file)?;
        if !pidfd_alive(self.pid, self.pidfd.as_fd())? {
            return Err(PinError::Gone { pid: self.pid });
        }
        Ok(text)
    }

    /// Re-reads the identity fields of `/proc/PID/stat` through the pin (state, pgrp…).
    pub fn read_identity(&self) -> Result<StatIdentity, PinError> {
        let identity = parse_identity(self.pid, &self.read_proc_file("stat")?)?;
        if identity.start_time_ticks != self.start_time_ticks {
            // Cannot happen while the pidfd's process is unreaped; kept as a guard.
            return Err(PinError::Reused {
                pid: self.pid,
                expected_ticks: self.start_time_ticks,
                found_ticks: identity.start_time_ticks,
            });
        }
        Ok(identity)
    }

    /// Sends `sig` through the pidfd. ESRCH (reaped) is the ordinary `AlreadyGone` outcome:
    /// the signal reached nobody, in particular no process that reused the pid.
    pub fn send_signal(&self, sig: Signal) -> Result<SignalOutcome, PinError> {
        match rustix::process::pidfd_send_signal(&self.pidfd, sig) {
            Ok(()) => Ok(SignalOutcome::Delivered),
            Err(rustix::io::Errno::SRCH) => Ok(SignalOutcome::AlreadyGone),
            Err(rustix::io::Errno::PERM) => Err(PinError::PermissionDenied {
                pid: self.pid,
                op: "pidfd_send_signal",
            }),
            Err(e) => Err(PinError::Io {
                pid: self.pid,
                op: "pidfd_send_signal",
                source: errno(e),
            }),
        }
    }

    /// Asks the kernel to reap the address space of the (SIGKILLed, exiting) process now,
    /// instead of waiting for the exit path. Call it after `send_signal(KILL)`.
    pub fn release_memory(&self) -> Result<MreleaseOutcome, PinError> {
        // The kernel answers EAGAIN when it could not take the mm lock / finish the reap, and
        // EINTR when a fatal signal interrupted it; two retries are plenty in practice.
        for _ in 0..3 {
            // SAFETY: process_mrelease(int pidfd, unsigned int flags) with a valid borrowed fd
            // and flags 0, the only defined value.
            let rc =
                unsafe { libc::syscall(libc::SYS_process_mrelease, self.pidfd.as_raw_fd(), 0) };
            if rc == 0 {
                return Ok(MreleaseOutcome::Released);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOSYS) => return Ok(MreleaseOutcome::NotSupported),
                Some(libc::EINVAL) => return Ok(MreleaseOutcome::NotExiting),
                Some(libc::ESRCH) => return Ok(MreleaseOutcome::AlreadyFreed),
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    return Err(PinError::PermissionDenied {
                        pid: self.pid,
                        op: "process_mrelease",
                    })
                }
                _ => {
                    return Err(PinError::Io {
                        pid: self.pid,
                        op: "process_mrelease",
                        source: err,
                    })
                }
            }
        }
        Ok(MreleaseOutcome::Busy)
    }

    /// Waits up to `timeout` for the process to exit: `Ok(true)` once it has (it may still be
    /// an unreaped zombie of its parent), `Ok(false)` on timeout. Works for any process, not
    /// only our children.
    pub fn wait_exit(&self, timeout: Duration) -> Result<bool, PinError> {
        wait_pidfd(self.pid, self.pidfd.as_fd(), timeout)
    }

    /// Non-blocking exit check.
    pub fn has_exited(&self) -> Result<bool, PinError> {
        self.wait_exit(Duration::ZERO)
    }
}

/// Polls one pidfd for POLLIN (exit) for up to `timeout`, retrying EINTR with the remaining
/// time.
pub(crate) fn wait_pidfd(
    pid: i32,
    fd: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<bool, PinError> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: i64::try_from(remaining.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(remaining.subsec_nanos()),
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            // POLLIN on exit; POLLHUP/POLLERR also mean there is no live process left.
            Ok(n) if n > 0 => return Ok(!fds[0].revents().is_empty()),
            Ok(_) => return Ok(false),
            Err(rustix::io::Errno::INTR) if !remaining.is_zero() => continue,
            Err(rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => {
                return Err(PinError::Io {
                    pid,
                    op: "poll(pidfd)",
                    source: errno(e),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;
    use std::process::Command;

    fn sleeper() -> std::process::Child {
        Command::new("sleep").arg("1000").spawn().unwrap()
    }

    #[test]
    fn pin_signal_wait_real_child() {
        let mut child = sleeper();
        let pid = child.id() as i32;
        let pinned = Pinned::open(pid).unwrap();
        assert_eq!(pinned.pid(), pid);
        let id = pinned.read_identity().unwrap();
        assert_eq!(id.ppid, std::process::id() as i32);
        assert!(!pinned.has_exited().unwrap());
        // A live process that has not been SIGKILLed cannot be mreleased (kernel 6.18: EINVAL).
        assert_eq!(
            pinned.release_memory().unwrap(),
            MreleaseOutcome::NotExiting
        );
        assert_eq!(
            pinned.send_signal(Signal::TERM).unwrap(),
            SignalOutcome::Delivered
        );
        assert!(pinned.wait_exit(Duration::from_secs(5)).unwrap());
        // Exited but unreaped (zombie): POLLIN already fired, and a signal still "delivers"
        // (kernel 6.18), harmlessly, since the pid cannot be reused before the reap.
        assert_eq!(
            pinned.send_signal(Signal::TERM).unwrap(),
            SignalOutcome::Delivered
        );
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        // Reaped: ESRCH, reported as AlreadyGone, never a kill of whoever reuses the pid.
        assert_eq!(
            pinned.send_signal(Signal::KILL).unwrap(),
            SignalOutcome::AlreadyGone
        );
        assert!(pinned.has_exited().unwrap());
        assert!(matches!(
            pinned.read_proc_file("stat"),
            Err(PinError::Gone { .. })
        ));
        assert_eq!(
            pinned.release_memory().unwrap(),
            MreleaseOutcome::AlreadyFreed
        );
    }

    #[test]
    fn reused_pid_is_detected() {
        let mut child = sleeper();
        let pid = child.id() as i32;
        let real = Pinned::open(pid).unwrap();
        // A scan that recorded a different start time is talking about another process.
        let err = Pinned::open_expecting(pid, real.start_time_ticks() + 1).unwrap_err();
        assert!(
            matches!(err, PinError::Reused { pid: p, found_ticks, .. } if p == pid && found_ticks == real.start_time_ticks()),
            "{err}"
        );
        let again = Pinned::open_expecting(pid, real.start_time_ticks()).unwrap();
        again.send_signal(Signal::KILL).unwrap();
        child.wait().unwrap();
        assert!(matches!(
            Pinned::open_expecting(pid, real.start_time_ticks()),
            Err(PinError::Gone { .. })
        ));
    }

    /// A real pid reuse, forced with `kernel.ns_last_pid`: the old pin must neither signal nor
    /// describe the new holder, and pinning with the old start time must say `Reused`.
    #[test]
    fn real_pid_reuse_is_detected() {
        const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
        let mut old = sleeper();
        let pid = old.id() as i32;
        let old_pin = Pinned::open(pid).unwrap();
        let old_start = old_pin.start_time_ticks();
        old_pin.send_signal(Signal::KILL).unwrap();
        old.wait().unwrap();
        // Start times have clock-tick (10 ms) resolution; make sure the new process gets a
        // later tick, as any real reuse (cycling through pid_max) would.
        std::thread::sleep(Duration::from_millis(30));
        let mut reused = None;
        for _ in 0..50 {
            if std::fs::write(NS_LAST_PID, (pid - 1).to_string()).is_err() {
                testutil::skip("real_pid_reuse_is_detected", "cannot write ns_last_pid");
                return;
            }
            let mut candidate = sleeper();
            if candidate.id() as i32 == pid {
                reused = Some(candidate);
                break;
            }
            // Another fork on the machine took the pid first; try again.
            Pinned::open(candidate.id() as i32)
                .unwrap()
                .send_signal(Signal::KILL)
                .unwrap();
            candidate.wait().unwrap();
        }
        let Some(mut new) = reused else {
            testutil::skip("real_pid_reuse_is_detected", "could not get the pid reused");
            return;
        };
        // The old pin reaches nobody: not the new holder of the number.
        assert_eq!(
            old_pin.send_signal(Signal::KILL).unwrap(),
            SignalOutcome::AlreadyGone
        );
        assert!(matches!(
            old_pin.read_proc_file("stat"),
            Err(PinError::Gone { .. })
        ));
        let err = Pinned::open_expecting(pid, old_start).unwrap_err();
        assert!(
            matches!(err, PinError::Reused { expected_ticks, found_ticks, .. }
                if expected_ticks == old_start && found_ticks > old_start),
            "{err}"
        );
        let new_pin = Pinned::open(pid).unwrap();
        assert!(
            !new_pin.has_exited().unwrap(),
            "the new holder was not touched"
        );
        new_pin.send_signal(Signal::KILL).unwrap();
        new.wait().unwrap();
    }

    /// POLLIN on a pidfd works for a process that is not our child (a grandchild here, which
    /// exits on its own: it is never signalled).
    #[test]
    fn wait_exit_works_for_non_children() {
        use std::io::BufRead;
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 0.3 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        let pinned = Pinned::open(grandchild).unwrap();
        let id = pinned.read_identity().unwrap();
        assert_eq!(id.ppid, sh.id() as i32, "not our child");
        assert!(!pinned.has_exited().unwrap());
        assert!(pinned.wait_exit(Duration::from_secs(5)).unwrap());
        assert!(sh.wait().unwrap().success());
    }

    #[test]
    fn invalid_pids() {
        assert!(matches!(Pinned::open(0), Err(PinError::NotAProcess { .. })));
        assert!(matches!(
            Pinned::open(-5),
            Err(PinError::NotAProcess { .. })
        ));
        // pid_max is at most 4M (PID_MAX_LIMIT), so this pid cannot exist.
        assert!(matches!(
            Pinned::open(i32::MAX),
            Err(PinError::Gone { .. }) | Err(PinError::NotAProcess { .. })
        ));
    }

    #[test]
    fn wait_exit_times_out_on_live_process() {
        let mut child = sleeper();
        let pinned = Pinned::open(child.id() as i32).unwrap();
        let t = Instant::now();
        assert!(!pinned.wait_exit(Duration::from_millis(50)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(45));
        pinned.send_signal(Signal::KILL).unwrap();
        assert!(pinned.wait_exit(Duration::from_secs(5)).unwrap());
        child.wait().unwrap();
    }

    #[test]
    fn kill_then_mrelease_real_hog() {
        let Some(memcg) = testutil::TempCgroup::memory_v1("pidfd-mrelease", 64 << 20) else {
            return;
        };
        let mut hog = testutil::Hog::spawn(32 << 20, Some(&memcg), false).unwrap();
        assert!(hog.wait_ready(), "hog did not become ready");
        let pinned = Pinned::open(hog.pid()).unwrap();
        assert_eq!(
            pinned.send_signal(Signal::KILL).unwrap(),
            SignalOutcome::Delivered
        );
        let outcome = pinned.release_memory().unwrap();
        // Released, or AlreadyFreed if the exit path beat us to it.
        assert!(
            matches!(
                outcome,
                MreleaseOutcome::Released | MreleaseOutcome::AlreadyFreed
            ),
            "{outcome:?}"
        );
        assert!(pinned.wait_exit(Duration::from_secs(5)).unwrap());
        hog.reap();
    }

    fn memcg_usage(cg: &testutil::TempCgroup) -> u64 {
        std::fs::read_to_string(cg.dir.join("memory.usage_in_bytes"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Time from `pidfd_send_signal(SIGKILL)` to POLLIN on the pidfd, with and without
    /// `process_mrelease` in between, for hogs of several sizes inside a 128 MiB memcg (the
    /// test cap; 200 MiB would need a larger memcg). The two modes alternate kill by kill so
    /// that drift hits both alike. Also samples the memcg's usage right after mrelease returns
    /// (plain: right after the signal was sent), to show how much is still charged.
    /// Run: `cargo test -p oomguard --lib measure_kill -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement; prints figures for docs/kill-path.md"]
    fn measure_kill_to_exit_latency() {
        let Some(cg) = testutil::TempCgroup::memory_v1("measure", testutil::MEMCG_LIMIT_CAP_BYTES)
        else {
            return;
        };
        let rounds = 21;
        let fmt = |v: &mut Vec<u128>| -> String {
            if v.is_empty() {
                return "-".into();
            }
            v.sort_unstable();
            format!("{} ({}-{})", v[v.len() / 2], v[0], v[v.len() - 1])
        };
        println!("median (min-max) over {rounds} kills each; times in microseconds");
        println!(
            "{:>8} | {:<8} | {:>22} | {:>18} | {:>22}",
            "size", "mode", "kill->mrelease returns", "charged then, MiB", "kill->pidfd POLLIN"
        );
        for mib in [32usize, 64, 120] {
            // [plain, mrelease] × (mrelease return, usage MiB, pollin)
            let mut series: [[Vec<u128>; 3]; 2] = Default::default();
            for round in 0..rounds * 2 {
                let with_mrelease = round % 2 == 1;
                let mut hog = testutil::Hog::spawn(mib << 20, Some(&cg), false).unwrap();
                assert!(hog.wait_ready());
                let pinned = Pinned::open(hog.pid()).unwrap();
                let s = &mut series[usize::from(with_mrelease)];
                let t0 = Instant::now();
                pinned.send_signal(Signal::KILL).unwrap();
                if with_mrelease {
                    let m = pinned.release_memory().unwrap();
                    s[0].push(t0.elapsed().as_micros());
                    assert!(
                        matches!(m, MreleaseOutcome::Released | MreleaseOutcome::AlreadyFreed),
                        "{m:?}"
                    );
                }
                let usage = memcg_usage(&cg);
                assert!(pinned.wait_exit(Duration::from_secs(10)).unwrap());
                s[2].push(t0.elapsed().as_micros());
                s[1].push(u128::from(usage >> 20));
                hog.reap();
            }
            for (mode, s) in ["plain", "mrelease"].iter().zip(series.iter_mut()) {
                let [mrel, usage, exit] = s;
                println!(
                    "{mib:>4} MiB | {mode:<8} | {:>22} | {:>18} | {:>22}",
                    fmt(mrel),
                    fmt(usage),
                    fmt(exit),
                );
            }
        }
    }
}
