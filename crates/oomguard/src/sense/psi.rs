//! PSI triggers as pollable fds (Linux 5.2, `Documentation/accounting/psi.rst`).
//!
//! Writing `some|full <stall_us> <window_us>` to `/proc/pressure/memory` (or a cgroup v2
//! `memory.pressure`) arms a trigger on that open fd: the kernel raises POLLPRI when tasks were
//! stalled for at least `stall_us` within any `window_us` window, at most once per window.
//! The trigger lives as long as the fd; writing a second trigger to the same fd is EBUSY.
//!
//! Kernel rules the planner ([`plan_trigger`]) applies before the write so that the kernel's bare
//! EINVAL never reaches the user unexplained:
//! - the window is at most 10 s, and the stall must be positive and not exceed the window;
//! - without CAP_SYS_RESOURCE the window must be a multiple of 2 s (Linux 6.5, commit
//!   d82caa273565 "sched/psi: Allow unprivileged polling of N*2s period"); checked on 6.18
//!   here: `some 150000 1000000` gives EINVAL as root without CAP_SYS_RESOURCE, a 2 s window
//!   works. Older kernels require CAP_SYS_RESOURCE for any trigger (EPERM/EACCES at write).
//! - privileged windows below 500 ms were rejected before commit 519fabc; we keep 500 ms as
//!   the floor for portability.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oomguard_core::host::process::parse_status;
use oomguard_core::killpath::CAP_SYS_RESOURCE;
use rustix::event::{PollFd, PollFlags, Timespec};

/// The system-wide memory pressure file.
pub const PROC_PRESSURE_MEMORY: &str = "/proc/pressure/memory";

const WINDOW_MAX: Duration = Duration::from_secs(10);
const WINDOW_MIN: Duration = Duration::from_millis(500);
const UNPRIVILEGED_WINDOW_STEP: Duration = Duration::from_secs(2);

/// `some`: at least one task stalled; `full`: all non-idle tasks stalled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallKind {
    /// `some`.
    Some,
    /// `full`.
    Full,
}

impl StallKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Some => "some",
            Self::Full => "full",
        }
    }
}

/// How to treat a window the kernel would reject for lack of CAP_SYS_RESOURCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRounding {
    /// Fail with a clear error.
    Strict,
    /// Round the window up to the next multiple of 2 s (and scale the stall with it, keeping
    /// the stall/window ratio the user asked for).
    RoundUp,
}

/// A validated trigger, ready to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerSpec {
    /// `some` or `full`.
    pub kind: StallKind,
    /// Stall threshold, microseconds.
    pub stall_us: u64,
    /// Window, microseconds.
    pub window_us: u64,
    /// True when [`WindowRounding::RoundUp`] changed the request.
    pub rounded: bool,
}

impl TriggerSpec {
    /// The text the kernel expects, NUL-terminated as in the kernel's own example.
    pub fn to_kernel_text(&self) -> String {
        format!(
            "{} {} {}\0",
            self.kind.as_str(),
            self.stall_us,
            self.window_us
        )
    }
}

/// Errors of trigger creation and waiting, each saying what to change.
#[derive(Debug, thiserror::Error)]
pub enum PsiError {
    /// The request breaks a kernel rule; the message says which.
    #[error("invalid PSI trigger: {0}")]
    Invalid(String),
    /// The kernel said EINVAL for a request we believed valid.
    #[error("{path}: kernel rejected trigger {text:?} (EINVAL): {hint}")]
    Rejected {
        /// The pressure file.
        path: PathBuf,
        /// What we wrote (without the NUL).
        text: String,
        /// What to change.
        hint: &'static str,
    },
    /// EPERM/EACCES.
    #[error("{path}: permission denied creating a PSI trigger: {hint}")]
    PermissionDenied {
        /// The pressure file.
        path: PathBuf,
        /// What to change.
        hint: &'static str,
    },
    /// The pressure file does not exist: PSI is off (`psi=0`, or CONFIG_PSI_DEFAULT_DISABLED
    /// without `psi=1`) or the cgroup is gone.
    #[error("{path}: not available ({source}); PSI needs CONFIG_PSI and, on some distributions, the `psi=1` boot parameter")]
    Unavailable {
        /// The pressure file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O error.
    #[error(transparent)]
    Io(#[from] super::SenseIoError),
}

/// Whether this process has CAP_SYS_RESOURCE in its effective set (from `/proc/self/status`).
pub fn has_cap_sys_resource() -> bool {
    std::fs::read("/proc/self/status")
        .ok()
        .and_then(|s| parse_status(&s).ok()?.cap_eff)
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Validates a trigger against the kernel's rules for a caller that is (or is not)
/// privileged. Pure; no I/O.
pub fn plan_trigger(
    kind: StallKind,
    stall: Duration,
    window: Duration,
    privileged: bool,
    rounding: WindowRounding,
) -> Result<TriggerSpec, PsiError> {
    if stall.is_zero() {
        return Err(PsiError::Invalid(
            "the stall threshold must be positive".into(),
        ));
    }
    if window > WINDOW_MAX {
        return Err(PsiError::Invalid(format!(
            "window {window:?} exceeds the kernel maximum of 10 s"
        )));
    }
    if window < WINDOW_MIN {
        return Err(PsiError::Invalid(format!(
            "window {window:?} is below 500 ms (older kernels reject it)"
        )));
    }
    if stall > window {
        return Err(PsiError::Invalid(format!(
            "stall {stall:?} exceeds the window {window:?}"
        )));
    }
    let step_us = UNPRIVILEGED_WINDOW_STEP.as_micros();
    let window_us = window.as_micros();
    let stall_us = stall.as_micros();
    let (stall_us, window_us, rounded) = if privileged || window_us % step_us == 0 {
        (stall_us, window_us, false)
    } else {
        match rounding {
            WindowRounding::Strict => {
                return Err(PsiError::Invalid(format!(
                    "window {window:?} is not a multiple of 2 s, which the kernel requires \
                     without CAP_SYS_RESOURCE: use a 2, 4, 6, 8 or 10 s window, or grant \
                     CAP_SYS_RESOURCE (AmbientCapabilities=CAP_SYS_RESOURCE in the unit)"
                )))
            }
            WindowRounding::RoundUp => {
                let new_window = window_us.div_ceil(step_us) * step_us;
                // Keep the ratio: a 150 ms stall in 1 s becomes 300 ms in 2 s.
                let new_stall = (stall_us * new_window / window_us).min(new_window);
                (new_stall, new_window, true)
            }
        }
    };
    Ok(TriggerSpec {
        kind,
        stall_us: u64::try_from(stall_us).unwrap_or(u64::MAX),
        window_us: u64::try_from(window_us).unwrap_or(u64::MAX),
        rounded,
    })
}

/// What a wait on a trigger saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsiWake {
    /// POLLPRI: the stall threshold was crossed within a window.
    Triggered,
    /// Nothing within the timeout.
    Timeout,
    /// POLLERR: the pressure file went away (its cgroup was removed); the trigger is dead.
    Gone,
}

/// An armed PSI trigger; dropping it cancels the trigger.
#[derive(Debug)]
pub struct PsiTrigger {
    file: File,
    path: PathBuf,
    spec: TriggerSpec,
}

impl PsiTrigger {
    /// Opens `path` (e.g. [`PROC_PRESSURE_MEMORY`] or `<cgroup>/memory.pressure`) and arms
    /// `spec` on it.
    pub fn arm(path: &Path, spec: TriggerSpec) -> Result<Self, PsiError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) => PsiError::Unavailable {
                    path: path.to_path_buf(),
                    source,
                },
                Some(libc::EACCES) | Some(libc::EPERM) => PsiError::PermissionDenied {
                    path: path.to_path_buf(),
                    hint: "opening a pressure file for writing needs root (or ownership of the \
                           cgroup); kernels before 6.5 also need CAP_SYS_RESOURCE",
                },
                _ => PsiError::Io(super::SenseIoError {
                    op: "open",
                    path: path.to_path_buf(),
                    source,
                }),
            })?;
        let text = spec.to_kernel_text();
        let mut file = file;
        file.write_all(text.as_bytes())
            .map_err(|source| match source.raw_os_error() {
                Some(libc::EINVAL) => PsiError::Rejected {
                    path: path.to_path_buf(),
                    text: text.trim_end_matches('\0').to_owned(),
                    hint: if has_cap_sys_resource() {
                        "check stall <= window <= 10 s (and window >= 500 ms before Linux 6.3)"
                    } else {
                        "without CAP_SYS_RESOURCE the window must be a multiple of 2 s \
                         (Linux >= 6.5); older kernels refuse unprivileged triggers entirely"
                    },
                },
                Some(libc::EPERM) | Some(libc::EACCES) => PsiError::PermissionDenied {
                    path: path.to_path_buf(),
                    hint: "grant CAP_SYS_RESOURCE, or on Linux >= 6.5 use a window that is a \
                           multiple of 2 s; cgroup memory.pressure on some 6.x kernels before \
                           fix 8b39d20 wrongly needs it too (fall back to /proc/pressure/memory)",
                },
                Some(libc::EBUSY) => PsiError::Invalid(
                    "this fd already carries a trigger; open the file again".into(),
                ),
                Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => PsiError::Unavailable {
                    path: path.to_path_buf(),
                    source,
                },
                _ => PsiError::Io(super::SenseIoError {
                    op: "write trigger to",
                    path: path.to_path_buf(),
                    source,
                }),
            })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            spec,
        })
    }

    /// Plans the trigger for this process's privileges ([`has_cap_sys_resource`]) and arms it:
    /// the one call the daemon makes per pressure file.
    pub fn arm_planned(
        path: &Path,
        kind: StallKind,
        stall: Duration,
        window: Duration,
        rounding: WindowRounding,
    ) -> Result<Self, PsiError> {
        let spec = plan_trigger(kind, stall, window, has_cap_sys_resource(), rounding)?;
        Self::arm(path, spec)
    }

    /// The armed spec.
    pub fn spec(&self) -> TriggerSpec {
        self.spec
    }

    /// The fd to put in the daemon's poll set (interest: POLLPRI).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Waits up to `timeout` for the trigger.
    pub fn wait(&self, timeout: Duration) -> Result<PsiWake, PsiError> {
        let ts = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::from_borrowed_fd(self.file.as_fd(), PollFlags::PRI)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => Ok(PsiWake::Timeout),
            Ok(_) => {
                let rev = fds[0].revents();
                if rev.contains(PollFlags::ERR) || rev.contains(PollFlags::NVAL) {
                    Ok(PsiWake::Gone)
                } else if rev.contains(PollFlags::PRI) {
                    Ok(PsiWake::Triggered)
                } else {
                    Ok(PsiWake::Timeout)
                }
            }
            Err(rustix::io::Errno::INTR) => Ok(PsiWake::Timeout),
            Err(e) => Err(PsiError::Io(super::SenseIoError {
                op: "poll",
                path: self.path.clone(),
                source: std::io::Error::from_raw_os_error(e.raw_os_error()),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{skip, TempCgroup};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn planning_rules() {
        let p = plan_trigger(
            StallKind::Some,
            ms(150),
            ms(2000),
            false,
            WindowRounding::Strict,
        )
        .unwrap();
        assert_eq!(p.to_kernel_text(), "some 150000 2000000\0");
        assert!(!p.rounded);

        let err = plan_trigger(
            StallKind::Some,
            ms(150),
            ms(1000),
            false,
            WindowRounding::Strict,
        )
        .unwrap_err();
        assert!(err.to_string().contains("multiple of 2 s"), "{err}");

        let p = plan_trigger(
            StallKind::Full,
            ms(150),
            ms(1000),
            false,
            WindowRounding::RoundUp,
        )
        .unwrap();
        assert_eq!(
            (p.stall_us, p.window_us, p.rounded),
            (300_000, 2_000_000, true)
        );
        assert_eq!(p.to_kernel_text(), "full 300000 2000000\0");

        let p = plan_trigger(
            StallKind::Some,
            ms(150),
            ms(1000),
            true,
            WindowRounding::Strict,
        )
        .unwrap();
        assert_eq!(p.window_us, 1_000_000);

        let p = plan_trigger(
            StallKind::Some,
            ms(900),
            ms(9000),
            false,
            WindowRounding::RoundUp,
        )
        .unwrap();
        assert_eq!((p.stall_us, p.window_us), (1_000_000, 10_000_000));

        for (stall, window) in [(0, 2000), (150, 12_000), (150, 100), (3000, 2000)] {
            assert!(
                plan_trigger(
                    StallKind::Some,
                    ms(stall),
                    ms(window),
                    true,
                    WindowRounding::RoundUp
                )
                .is_err(),
                "{stall} {window}"
            );
        }
    }

    #[test]
    fn system_trigger_2s_window_polls() {
        let path = Path::new(PROC_PRESSURE_MEMORY);
        if !path.exists() {
            skip(
                "system_trigger_2s_window_polls",
                "no /proc/pressure/memory (PSI off)",
            );
            return;
        }
        let spec = plan_trigger(
            StallKind::Some,
            ms(150),
            ms(2000),
            false,
            WindowRounding::Strict,
        )
        .unwrap();
        let trig = match PsiTrigger::arm(path, spec) {
            Ok(t) => t,
            Err(PsiError::PermissionDenied { .. }) => {
                skip(
                    "system_trigger_2s_window_polls",
                    "not allowed to arm PSI triggers",
                );
                return;
            }
            Err(e) => panic!("{e}"),
        };
        // The poll times out without error on an idle machine; on a shared one (builds, the
        // real-kernel tests' hogs) 150 ms of stall in 2 s happens, and it fired once here.
        let w = trig.wait(ms(50)).unwrap();
        assert!(matches!(w, PsiWake::Timeout | PsiWake::Triggered), "{w:?}");
        // A second trigger on the same fd is refused by the kernel.
        let mut f = trig.file.try_clone().unwrap();
        let err = f.write_all(spec.to_kernel_text().as_bytes()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBUSY));
    }

    #[test]
    fn arm_planned_rounds_up_without_cap_sys_resource() {
        let path = Path::new(PROC_PRESSURE_MEMORY);
        if !path.exists() || has_cap_sys_resource() {
            skip("arm_planned_rounds_up", "needs PSI and no CAP_SYS_RESOURCE");
            return;
        }
        let trig = match PsiTrigger::arm_planned(
            path,
            StallKind::Some,
            ms(100),
            ms(1000),
            WindowRounding::RoundUp,
        ) {
            Ok(t) => t,
            Err(PsiError::PermissionDenied { .. }) => return,
            Err(e) => panic!("{e}"),
        };
        let spec = trig.spec();
        assert!(spec.rounded);
        assert_eq!((spec.stall_us, spec.window_us), (200_000, 2_000_000));
        // The armed trigger is live: waiting on it works. Whether the machine stalled 200 ms in
        // the last 2 s is not this test's to assert: in CI, memcg OOM tests running beside it
        // (their reclaim counts in the system-wide file) made it fire (seen in ship-test).
        let woke = trig.wait(ms(10)).unwrap();
        assert!(
            matches!(woke, PsiWake::Timeout | PsiWake::Triggered),
            "{woke:?}"
        );
    }

    #[test]
    fn unprivileged_1s_window_is_explained() {
        let path = Path::new(PROC_PRESSURE_MEMORY);
        if !path.exists() || has_cap_sys_resource() {
            skip(
                "unprivileged_1s_window_is_explained",
                "needs PSI and a process without CAP_SYS_RESOURCE",
            );
            return;
        }
        // Bypass the planner to see what the kernel says.
        let spec = TriggerSpec {
            kind: StallKind::Some,
            stall_us: 150_000,
            window_us: 1_000_000,
            rounded: false,
        };
        let err = PsiTrigger::arm(path, spec).unwrap_err();
        let msg = err.to_string();
        eprintln!("kernel answer to a 1 s window without CAP_SYS_RESOURCE: {msg}");
        assert!(
            matches!(
                err,
                PsiError::Rejected { .. } | PsiError::PermissionDenied { .. }
            ),
            "{msg}"
        );
        assert!(msg.contains("2 s"), "{msg}");
    }

    #[test]
    fn cgroup_v2_memory_pressure_trigger() {
        let Some(cg) = TempCgroup::unified("psi") else {
            return;
        };
        let path = cg.dir.join("memory.pressure");
        if !path.exists() {
            skip(
                "cgroup_v2_memory_pressure_trigger",
                "no memory.pressure in cgroup v2",
            );
            return;
        }
        let spec = plan_trigger(
            StallKind::Full,
            ms(100),
            ms(2000),
            false,
            WindowRounding::Strict,
        )
        .unwrap();
        match PsiTrigger::arm(&path, spec) {
            Ok(trig) => {
                assert_eq!(trig.wait(ms(20)).unwrap(), PsiWake::Timeout);
                drop(trig);
            }
            // Some 6.x kernels wrongly refuse unprivileged cgroup triggers (fix 8b39d20).
            Err(e @ PsiError::PermissionDenied { .. }) => eprintln!("cgroup trigger refused: {e}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn trigger_reports_gone_when_cgroup_removed() {
        let Some(cg) = TempCgroup::unified("psigone") else {
            return;
        };
        let path = cg.dir.join("memory.pressure");
        if !path.exists() {
            skip(
                "trigger_reports_gone_when_cgroup_removed",
                "no memory.pressure",
            );
            return;
        }
        let spec = plan_trigger(
            StallKind::Some,
            ms(100),
            ms(2000),
            false,
            WindowRounding::Strict,
        )
        .unwrap();
        let Ok(trig) = PsiTrigger::arm(&path, spec) else {
            return;
        };
        drop(cg); // rmdir while the trigger is armed
        let wake = trig.wait(ms(200)).unwrap();
        // Kernel 6.18: kernfs reports POLLERR|POLLPRI on a removed file; we map that to Gone.
        assert_eq!(wake, PsiWake::Gone);
    }
}
