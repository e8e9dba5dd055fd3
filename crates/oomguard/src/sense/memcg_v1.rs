//! cgroup v1 memory controller notifications as pollable eventfds
//! (`Documentation/admin-guide/cgroup-v1/memory.rst` §9–11).
//!
//! Registration: create an eventfd, open the control file (`memory.usage_in_bytes`,
//! `memory.oom_control`, `memory.pressure_level`) and write `"<eventfd> <control fd> [args]"`
//! to `cgroup.event_control` of the same cgroup. The kernel takes its own references, so the
//! control file is closed again at once; the registration lives until the eventfd is closed or
//! the cgroup is removed. Each notification adds to the eventfd counter: a read returns (and
//! resets) the number of notifications since the last read.
//!
//! Kernel behaviour worth knowing (seen on 6.18 here):
//! - a usage threshold fires on crossing in *either* direction, and is evaluated on the
//!   memcg's event-ratelimited path (every 128 page charge events per cpu), so it fires a
//!   little after the crossing, not at the exact byte;
//! - `memory.oom_control` fires when the memcg enters OOM, before or while the kernel OOM
//!   killer acts (unless `oom_kill_disable` is set, in which case the tasks wait);
//! - removing the cgroup signals every registered eventfd once (so the daemon must check that
//!   the cgroup still exists before believing a notification).
//!
//! cgroup v2 has no `cgroup.event_control`; use `memory.events` (poll for changes) and PSI
//! triggers on `memory.pressure` instead.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oomguard_core::host::cgroup::{parse_v1_oom_control, OomControlV1 as OomControl};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};

/// Errors of v1 memcg event registration and reads.
#[derive(Debug, thiserror::Error)]
pub enum MemcgError {
    /// The cgroup has no `cgroup.event_control` (not cgroup v1, or not a memory cgroup).
    #[error("{path} does not exist: not a cgroup v1 memory cgroup")]
    NotV1 {
        /// The missing file.
        path: PathBuf,
    },
    /// The kernel refused the registration (EINVAL: bad threshold or control file).
    #[error("registering {what} via {path} failed: {source}")]
    Register {
        /// What was registered.
        what: String,
        /// The `cgroup.event_control` path.
        path: PathBuf,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O error.
    #[error(transparent)]
    Io(#[from] super::SenseIoError),
}

/// What a [`MemcgEvent`] watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemcgEventKind {
    /// `memory.usage_in_bytes` crossing this many bytes (either way).
    UsageThreshold {
        /// The threshold.
        bytes: u64,
    },
    /// The memcg entering OOM (`memory.oom_control`).
    Oom,
    /// `memory.pressure_level` at this level (`low`, `medium`, `critical`), optionally with a
    /// mode (`default`, `hierarchy`, `local`).
    PressureLevel {
        /// The level and mode text, e.g. `critical` or `medium,local`.
        spec: String,
    },
}

/// A registered v1 memcg notification.
#[derive(Debug)]
pub struct MemcgEvent {
    efd: OwnedFd,
    dir: PathBuf,
    kind: MemcgEventKind,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MemcgError + 'a {
    move |source| {
        MemcgError::Io(super::SenseIoError {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

impl MemcgEvent {
    /// Notifies when `memory.usage_in_bytes` of the memcg at `dir` crosses `bytes`.
    pub fn usage_threshold(dir: &Path, bytes: u64) -> Result<Self, MemcgError> {
        Self::register(dir, MemcgEventKind::UsageThreshold { bytes })
    }

    /// Notifies when the memcg at `dir` goes OOM.
    pub fn oom(dir: &Path) -> Result<Self, MemcgError> {
        Self::register(dir, MemcgEventKind::Oom)
    }

    /// Notifies at a `memory.pressure_level` (vmpressure) level.
    pub fn pressure_level(dir: &Path, spec: &str) -> Result<Self, MemcgError> {
        Self::register(
            dir,
            MemcgEventKind::PressureLevel {
                spec: spec.to_owned(),
            },
        )
    }

    fn register(dir: &Path, kind: MemcgEventKind) -> Result<Self, MemcgError> {
        let event_control = dir.join("cgroup.event_control");
        if !event_control.exists() {
            return Err(MemcgError::NotV1 {
                path: event_control,
            });
        }
        let (file, args) = match &kind {
            MemcgEventKind::UsageThreshold { bytes } => {
                ("memory.usage_in_bytes", bytes.to_string())
            }
            MemcgEventKind::Oom => ("memory.oom_control", String::new()),
            MemcgEventKind::PressureLevel { spec } => ("memory.pressure_level", spec.clone()),
        };
        let control_path = dir.join(file);
        let control = std::fs::File::open(&control_path).map_err(io_err("open", &control_path))?;
        let efd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| {
                MemcgError::Io(super::SenseIoError {
                    op: "eventfd",
                    path: event_control.clone(),
                    source: errno(e),
                })
            })?;
        let line = format!("{} {} {}", efd.as_raw_fd(), control.as_raw_fd(), args);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&event_control)
            .and_then(|mut f| f.write_all(line.trim_end().as_bytes()))
            .map_err(|source| MemcgError::Register {
                what: format!("{kind:?}"),
                path: event_control.clone(),
                source,
            })?;
        // The kernel holds its own reference to the control file now.
        drop(control);
        Ok(Self {
            efd,
            dir: dir.to_path_buf(),
            kind,
        })
    }

    /// What this event watches.
    pub fn kind(&self) -> &MemcgEventKind {
        &self.kind
    }

    /// The eventfd for the daemon's poll set (interest: POLLIN).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    /// True while the cgroup directory still exists; a notification received after it was
    /// removed is the removal, not an event.
    pub fn cgroup_exists(&self) -> bool {
        self.dir.join("cgroup.event_control").exists()
    }

    /// Reads and resets the notification count: `Some(n)` if there were notifications,
    /// `None` if none are pending.
    pub fn read_count(&self) -> Result<Option<u64>, MemcgError> {
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.efd, &mut buf) {
            Ok(8) => Ok(Some(u64::from_ne_bytes(buf))),
            Ok(_) => Ok(None),
            Err(rustix::io::Errno::AGAIN) => Ok(None),
            Err(e) => Err(MemcgError::Io(super::SenseIoError {
                op: "read eventfd for",
                path: self.dir.clone(),
                source: errno(e),
            })),
        }
    }

    /// Waits up to `timeout` for a notification, then reads the count.
    pub fn wait(&self, timeout: Duration) -> Result<Option<u64>, MemcgError> {
        let ts = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::from_borrowed_fd(self.efd.as_fd(), PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => Ok(None),
            Ok(_) => self.read_count(),
            Err(e) => Err(MemcgError::Io(super::SenseIoError {
                op: "poll eventfd for",
                path: self.dir.clone(),
                source: errno(e),
            })),
        }
    }
}

/// Reads `memory.oom_control` of the memcg at `dir`.
pub fn read_oom_control(dir: &Path) -> Result<OomControl, MemcgError> {
    let path = dir.join("memory.oom_control");
    let text = std::fs::read(&path).map_err(io_err("read", &path))?;
    parse_v1_oom_control(&text).map_err(|e| {
        MemcgError::Io(super::SenseIoError {
            op: "parse",
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Hog, TempCgroup};

    const MIB: u64 = 1 << 20;

    #[test]
    fn usage_threshold_fires_for_40_mib_child() {
        let Some(cg) = TempCgroup::memory_v1("threshold", 64 * MIB) else {
            return;
        };
        let ev = MemcgEvent::usage_threshold(&cg.dir, 32 * MIB).unwrap();
        assert_eq!(ev.read_count().unwrap(), None, "nothing yet");
        let mut hog = Hog::spawn((40 * MIB) as usize, Some(&cg), false).unwrap();
        assert!(hog.wait_ready());
        let n = ev.wait(Duration::from_secs(5)).unwrap();
        assert!(
            n.is_some_and(|n| n >= 1),
            "threshold eventfd did not fire: {n:?}"
        );
        let usage: u64 = std::fs::read_to_string(cg.dir.join("memory.usage_in_bytes"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(usage > 32 * MIB, "usage {usage}");
        // Killing the hog drops usage below the threshold again: crossing down fires too.
        hog.kid
            .pinned
            .send_signal(rustix::process::Signal::KILL)
            .unwrap();
        hog.reap();
        let down = ev.wait(Duration::from_secs(5)).unwrap();
        eprintln!("threshold notifications on the way down: {down:?}");
        assert!(down.is_some());
    }

    #[test]
    fn oom_control_fires_and_oom_kill_counts() {
        let Some(cg) = TempCgroup::memory_v1("oom", 64 * MIB) else {
            return;
        };
        let ev = MemcgEvent::oom(&cg.dir).unwrap();
        let before = read_oom_control(&cg.dir).unwrap();
        assert!(!before.oom_kill_disable && !before.under_oom);
        // 100 MiB into a 64 MiB memcg without swap: the memcg OOM killer must act.
        let mut hog = Hog::spawn((100 * MIB) as usize, Some(&cg), false).unwrap();
        assert!(!hog.wait_ready(), "the hog must not survive its limit");
        let n = ev.wait(Duration::from_secs(10)).unwrap();
        assert!(n.is_some_and(|n| n >= 1), "oom eventfd did not fire: {n:?}");
        assert_eq!(hog.reap(), Some(libc::SIGKILL));
        let after = read_oom_control(&cg.dir).unwrap();
        assert_eq!(
            after.oom_kill.unwrap_or(0),
            before.oom_kill.unwrap_or(0) + 1,
            "{after:?}"
        );
    }

    #[test]
    fn cgroup_removal_signals_the_eventfd() {
        let Some(cg) = TempCgroup::memory_v1("removal", 64 * MIB) else {
            return;
        };
        let ev = MemcgEvent::oom(&cg.dir).unwrap();
        assert!(ev.cgroup_exists());
        drop(cg);
        let n = ev.wait(Duration::from_secs(2)).unwrap();
        eprintln!("oom eventfd after rmdir: {n:?}");
        assert!(!ev.cgroup_exists());
        assert_eq!(n, Some(1));
    }

    #[test]
    fn not_v1_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            MemcgEvent::oom(dir.path()),
            Err(MemcgError::NotV1 { .. })
        ));
    }

    #[test]
    fn pressure_level_registers() {
        let Some(cg) = TempCgroup::memory_v1("vmpressure", 64 * MIB) else {
            return;
        };
        let ev = MemcgEvent::pressure_level(&cg.dir, "critical").unwrap();
        assert_eq!(ev.read_count().unwrap(), None);
        assert!(MemcgEvent::pressure_level(&cg.dir, "bogus").is_err());
    }
}
