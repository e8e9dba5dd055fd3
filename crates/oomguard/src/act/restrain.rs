//! Actions short of a kill, the side-effect half (issue 16): freezing a guarded cgroup (v1
//! freezer, v2 `cgroup.freeze`) or stopping its one process, and undoing it, behind the
//! [`Restrainer`] trait so that the daemon's steps can only log ([`DryRunRestrainer`]) or run
//! on a fake cgroup tree (the real one writes files below an injectable root; the escalation
//! itself is pure, in `oomguard_core::restrain`); and the state file that lists
//! what is changed ([`StateFile`]: written atomically and synced before each change, so a
//! daemon killed with SIGKILL is undone by the next one).
//!
//! Nothing here decides: `oomguard_core::restrain` says which step runs and when it ends, and
//! the daemon (`watch/daemon/thrash.rs`) resolves a [`Target`] from a guarded scope, never
//! from a path it was handed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oomguard_core::restrain::{parse_state, render_state, Change};

use super::pidfd::{PinError, Pinned, SignalOutcome};

/// What a change is applied to, resolved to files and processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A v1 freezer cgroup directory (its `freezer.state`).
    FreezerV1 { dir: PathBuf },
    /// A v2 cgroup directory (its `cgroup.freeze`).
    FreezeV2 { dir: PathBuf },
    /// One process, by pid and start time (a pid reused by a stranger is never signalled).
    Stop { pid: i32, start_time_ticks: u64 },
    /// A v2 cgroup's `memory.high`: `set_bytes` written by the throttle, `previous` (the text
    /// read before, bytes or `max`) written back by the undo.
    MemoryHigh {
        dir: PathBuf,
        set_bytes: u64,
        previous: String,
    },
    /// A v2 cgroup's `memory.reclaim` (5.19+): `bytes` asked; nothing to undo.
    Reclaim { dir: PathBuf, bytes: u64 },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::FreezerV1 { dir } => format!("{}/freezer.state", dir.display()),
            Target::FreezeV2 { dir } => format!("{}/cgroup.freeze", dir.display()),
            Target::Stop {
                pid,
                start_time_ticks,
            } => format!("pid {pid} (start {start_time_ticks} ticks)"),
            Target::MemoryHigh {
                dir,
                set_bytes,
                previous,
            } => format!(
                "{}/memory.high ({set_bytes}; was {previous})",
                dir.display()
            ),
            Target::Reclaim { dir, bytes } => {
                format!("{}/memory.reclaim ({bytes} bytes)", dir.display())
            }
        }
    }

    /// What applying it does, for a dry run's log: `freeze`, `throttle`, `reclaim from`.
    fn verb(&self, apply: bool) -> &'static str {
        match (self, apply) {
            (Target::MemoryHigh { .. }, true) => "throttle",
            (Target::MemoryHigh { .. }, false) => "restore",
            (Target::Reclaim { .. }, true) => "reclaim",
            (Target::Reclaim { .. }, false) => "leave (nothing to undo)",
            (_, true) => "freeze",
            (_, false) => "thaw",
        }
    }
}

/// Why a change could not be made or undone; each names the file or the process.
#[derive(Debug, thiserror::Error)]
pub enum RestrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Pin(#[from] PinError),
    #[error("pid {pid} is gone")]
    Gone { pid: i32 },
}

/// The side effects of the freeze, throttle and reclaim steps.
pub trait Restrainer {
    /// Freezes (stops), throttles or reclaims from the target.
    fn apply(&mut self, target: &Target) -> Result<(), RestrainError>;
    /// Thaws (continues) it, restores its `memory.high` (a reclaim has nothing to undo).
    fn undo(&mut self, target: &Target) -> Result<(), RestrainError>;
    /// Whether this restrainer changes anything (a dry run does not, and keeps no state).
    fn changes(&self) -> bool {
        true
    }
}

/// Writes `value` to an existing kernel file (never creates one: a typo'd or vanished cgroup is
/// an error naming the file, not a new regular file).
fn write_existing(path: &Path, value: &str) -> Result<(), RestrainError> {
    let io = |source| RestrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    // O_TRUNC as a shell `echo >` does (kernfs ignores it; a fake tree needs it).
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    f.write_all(value.as_bytes()).map_err(io)
}

fn signal(
    pid: i32,
    start_time_ticks: u64,
    sig: rustix::process::Signal,
) -> Result<(), RestrainError> {
    let p = Pinned::open_expecting(pid, start_time_ticks)?;
    match p.send_signal(sig)? {
        SignalOutcome::Delivered => Ok(()),
        SignalOutcome::AlreadyGone => Err(RestrainError::Gone { pid }),
    }
}

/// The real machine.
#[derive(Debug, Default)]
pub struct RealRestrainer;

impl Restrainer for RealRestrainer {
    fn apply(&mut self, target: &Target) -> Result<(), RestrainError> {
        match target {
            Target::FreezerV1 { dir } => write_existing(&dir.join("freezer.state"), "FROZEN"),
            Target::FreezeV2 { dir } => write_existing(&dir.join("cgroup.freeze"), "1"),
            Target::Stop {
                pid,
                start_time_ticks,
            } => signal(*pid, *start_time_ticks, rustix::process::Signal::STOP),
            Target::MemoryHigh { dir, set_bytes, .. } => {
                write_existing(&dir.join("memory.high"), &set_bytes.to_string())
            }
            // EAGAIN: the kernel reclaimed less than asked (the caller says so; not a failure).
            Target::Reclaim { dir, bytes } => {
                write_existing(&dir.join("memory.reclaim"), &bytes.to_string())
            }
        }
    }

    fn undo(&mut self, target: &Target) -> Result<(), RestrainError> {
        match target {
            Target::FreezerV1 { dir } => write_existing(&dir.join("freezer.state"), "THAWED"),
            Target::FreezeV2 { dir } => write_existing(&dir.join("cgroup.freeze"), "0"),
            // The stopped process gone (or its pid now another's): nothing is left stopped.
            Target::Stop {
                pid,
                start_time_ticks,
            } => match signal(*pid, *start_time_ticks, rustix::process::Signal::CONT) {
                Err(RestrainError::Gone { .. })
                | Err(RestrainError::Pin(PinError::Gone { .. } | PinError::Reused { .. })) => {
                    Ok(())
                }
                r => r,
            },
            Target::MemoryHigh { dir, previous, .. } => {
                write_existing(&dir.join("memory.high"), previous)
            }
            Target::Reclaim { .. } => Ok(()),
        }
    }
}

fn dry_log(apply: bool, target: &Target) {
    let mut e = io::stderr().lock();
    let _ = writeln!(
        e,
        "oomguard: dry run: would {} {}",
        target.verb(apply),
        target.describe()
    );
}

impl RestrainError {
    /// The write was refused with EAGAIN (`memory.reclaim`: less reclaimed than asked).
    pub fn is_again(&self) -> bool {
        matches!(self, RestrainError::Io { source, .. } if source.raw_os_error() == Some(libc::EAGAIN))
    }
}

/// `dry_run = true`: logs what it would do, changes nothing.
#[derive(Debug, Default)]
pub struct DryRunRestrainer;

impl Restrainer for DryRunRestrainer {
    fn apply(&mut self, target: &Target) -> Result<(), RestrainError> {
        dry_log(true, target);
        Ok(())
    }

    fn undo(&mut self, target: &Target) -> Result<(), RestrainError> {
        dry_log(false, target);
        Ok(())
    }

    fn changes(&self) -> bool {
        false
    }
}

/// The state file: what is changed right now.
#[derive(Debug, Clone)]
pub struct StateFile {
    pub path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// The changes listed, and warnings naming the file and line for what is not one. A missing
    /// file is an empty list.
    pub fn load(&self) -> (Vec<Change>, Vec<String>) {
        let text = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
            Err(e) => {
                return (
                    Vec::new(),
                    vec![format!("{}: cannot be read: {e}", self.path.display())],
                )
            }
        };
        let (changes, warnings) = parse_state(&String::from_utf8_lossy(&text));
        let warnings = warnings
            .into_iter()
            .map(|w| format!("{}: {w}", self.path.display()))
            .collect();
        (changes.into_iter().map(|(_, c)| c).collect(), warnings)
    }

    /// Replaces the file with `changes`: written to a temporary file beside it, synced, renamed
    /// over it, and the directory synced, so a crash leaves the old list or the new one, never
    /// half of one. An empty list removes the file. The directory is made when missing
    /// (`/run/oomguard` after a reboot).
    pub fn save(&self, changes: &[Change]) -> Result<(), RestrainError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RestrainError::Io { path, source }
        };
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        if changes.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => sync_dir(dir),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&self.path)(e)),
            };
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(render_state(changes).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        sync_dir(dir)
    }
}

fn sync_dir(dir: &Path) -> Result<(), RestrainError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| RestrainError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn real_restrainer_writes_the_freezer_files_and_never_creates_one() {
        let t = tempfile::tempdir().unwrap();
        let v1 = t.path().join("freezer/a");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("freezer.state"), "THAWED\n").unwrap();
        let mut r = RealRestrainer;
        let target = Target::FreezerV1 { dir: v1.clone() };
        r.apply(&target).unwrap();
        assert_eq!(
            std::fs::read_to_string(v1.join("freezer.state")).unwrap(),
            "FROZEN"
        );
        r.undo(&target).unwrap();
        assert_eq!(
            std::fs::read_to_string(v1.join("freezer.state")).unwrap(),
            "THAWED"
        );
        // A cgroup without the file (gone, or v2 before 5.2): an error naming it, nothing made.
        let missing = Target::FreezeV2 {
            dir: t.path().join("gone"),
        };
        let e = r.apply(&missing).unwrap_err().to_string();
        assert!(e.contains("gone/cgroup.freeze"), "{e}");
        assert!(!t.path().join("gone").exists());
        // A stop of a pid whose start time does not match is refused (pid reuse).
        let e = r
            .apply(&Target::Stop {
                pid: std::process::id() as i32,
                start_time_ticks: 1,
            })
            .unwrap_err();
        assert!(matches!(e, RestrainError::Pin(_)), "{e}");
    }

    #[test]
    fn real_restrainer_throttles_restores_and_reclaims() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("app");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.high"), "max\n").unwrap();
        std::fs::write(dir.join("memory.reclaim"), "").unwrap();
        let mut r = RealRestrainer;
        let high = Target::MemoryHigh {
            dir: dir.clone(),
            set_bytes: 167_772_160,
            previous: "max".into(),
        };
        r.apply(&high).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.high")).unwrap(),
            "167772160"
        );
        r.undo(&high).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.high")).unwrap(),
            "max"
        );
        let reclaim = Target::Reclaim {
            dir: dir.clone(),
            bytes: 1 << 20,
        };
        r.apply(&reclaim).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.reclaim")).unwrap(),
            "1048576"
        );
        r.undo(&reclaim).unwrap();
        // No memory.reclaim (before 5.19): an error naming the file, none made.
        std::fs::remove_file(dir.join("memory.reclaim")).unwrap();
        let e = r.apply(&reclaim).unwrap_err();
        assert!(e.to_string().contains("app/memory.reclaim"), "{e}");
        assert!(!e.is_again());
        assert!(!dir.join("memory.reclaim").exists());
        let again = RestrainError::Io {
            path: dir.clone(),
            source: io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert!(again.is_again());
    }

    #[test]
    fn state_file_is_replaced_whole_and_removed_when_empty() {
        let t = tempfile::tempdir().unwrap();
        let f = StateFile::new(t.path().join("run/oomguard/restrain.json"));
        assert_eq!(f.load(), (Vec::new(), Vec::new()));
        let c = vec![Change::FreezerV1 {
            cgroup: "/a".into(),
        }];
        f.save(&c).unwrap();
        assert_eq!(f.load(), (c.clone(), Vec::new()));
        assert!(!t.path().join("run/oomguard/restrain.json.tmp").exists());
        f.save(&[]).unwrap();
        assert!(!f.path.exists());
        f.save(&[]).unwrap();
        // Garbled: warnings name the file and the line.
        std::fs::create_dir_all(f.path.parent().unwrap()).unwrap();
        std::fs::write(&f.path, "# x\n{\"change\":\"freezer_v1\"\n").unwrap();
        let (got, w) = f.load();
        assert!(got.is_empty());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("restrain.json: line 2:"), "{w:?}");
    }
}
