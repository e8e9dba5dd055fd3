//! The event log: one JSON object per line (`docs/event-schema.md`), appended with one
//! `write()` per event, so an event is in the file (in the page cache) the moment `write`
//! returns and survives the daemon crashing. No fsync: on the kill path a sync can stall for
//! seconds behind other writeback, and a power loss is not what the log guards against.
//!
//! Rotation by size: before a write that would pass `max_bytes`, `events.jsonl` becomes
//! `events.jsonl.1`, `.1` becomes `.2`, ... and `.keep` is dropped (logrotate's numbering).
//!
//! Never fatal: a full disk, a removed directory, a read-only file system are counted and the
//! event is dropped from the file (it still reaches the journal and metrics). A log file that
//! was deleted or renamed under us (`st_nlink == 0`) is noticed and reopened, with its
//! directory recreated.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oomguard_core::config::EventsConfig;
use oomguard_core::event::OomEvent;

/// Counters of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventLogStats {
    pub written: u64,
    pub errors: u64,
    pub rotations: u64,
}

/// The JSON-lines event log. See the module docs.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    size: u64,
    buf: Vec<u8>,
    stats: EventLogStats,
    last_error: Option<String>,
}

impl EventLog {
    /// A log at `cfg.log`; `None` when the config disables it (empty path). Opening is lazy,
    /// so a missing directory at start is created at the first event.
    pub fn new(cfg: &EventsConfig) -> Option<Self> {
        if cfg.log.is_empty() {
            return None;
        }
        Some(Self::at(Path::new(&cfg.log), cfg.max_bytes, cfg.keep))
    }

    pub fn at(path: &Path, max_bytes: u64, keep: u32) -> Self {
        EventLog {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(4096),
            keep,
            file: None,
            size: 0,
            buf: Vec::with_capacity(4096),
            stats: EventLogStats::default(),
            last_error: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> EventLogStats {
        self.stats
    }

    /// The last error, for the daemon's log (taken, so it is logged once).
    pub fn take_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// Appends `ev` as one line. `false` (and the error counted) when it could not be written.
    pub fn write(&mut self, ev: &OomEvent) -> bool {
        self.buf.clear();
        if let Err(e) = serde_json::to_writer(&mut self.buf, ev) {
            return self.fail(format!("serialising event: {e}"));
        }
        self.buf.push(b'\n');
        if let Err(e) = self.ensure_open() {
            return self.fail(e);
        }
        if self.size > 0 && self.size + self.buf.len() as u64 > self.max_bytes {
            if let Err(e) = self.rotate() {
                self.fail(e);
                // Go on writing to the old file rather than lose the event.
            }
            if let Err(e) = self.ensure_open() {
                return self.fail(e);
            }
        }
        let Some(f) = self.file.as_mut() else {
            return self.fail("log not open".to_owned());
        };
        match f.write_all(&self.buf) {
            Ok(()) => {
                self.size += self.buf.len() as u64;
                self.stats.written += 1;
                true
            }
            Err(e) => {
                // ENOSPC may have left a partial line: the next open starts a fresh one.
                self.file = None;
                let msg = format!("write {}: {e}", self.path.display());
                self.fail(msg)
            }
        }
    }

    fn fail(&mut self, msg: String) -> bool {
        self.stats.errors += 1;
        self.last_error = Some(msg);
        false
    }

    fn ensure_open(&mut self) -> Result<(), String> {
        if let Some(f) = &self.file {
            match f.metadata() {
                Ok(m) if m.nlink() > 0 => return Ok(()),
                // Deleted or renamed away: writes would vanish. Reopen.
                _ => self.file = None,
            }
        }
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("create {}: {e}", dir.display()))?;
            }
        }
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(|e| format!("open {}: {e}", self.path.display()))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        // A partial line left by a failed write would glue onto ours: start on a new line.
        if size > 0 && !ends_with_newline(&f, size) {
            let _ = (&f).write_all(b"\n");
        }
        self.size = size;
        self.file = Some(f);
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), String> {
        self.file = None;
        self.size = 0;
        self.stats.rotations += 1;
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            return std::fs::remove_file(&self.path)
                .map_err(|e| format!("rotate {}: {e}", self.path.display()));
        }
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                let _ = std::fs::rename(&from, numbered(n + 1));
            }
        }
        std::fs::rename(&self.path, numbered(1))
            .map_err(|e| format!("rotate {}: {e}", self.path.display()))
    }
}

fn ends_with_newline(f: &File, size: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    // A device such as /dev/full cannot be read back: treat as clean.
    f.read_at(&mut b, size - 1).map_or(true, |_| b[0] == b'\n')
}

/// The files of a log, oldest first: `path.N`, ..., `path.1`, `path`.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1..=1000u32 {
        let mut p = path.to_path_buf().into_os_string();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::event::{EventKind, Source};

    fn ev(pid: i64) -> OomEvent {
        let mut e = OomEvent::new(EventKind::Kill);
        e.source = Source::Oomguard;
        e.pid = Some(pid);
        e.comm = Some("hog\nwith newline".to_owned());
        e.id = Some(format!("t-{pid}"));
        e
    }

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn writes_one_line_per_event_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/events.jsonl");
        let mut log = EventLog::at(&path, 1 << 20, 3);
        assert!(log.write(&ev(1)));
        assert!(log.write(&ev(2)));
        let got = lines(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["pid"], 2);
        assert_eq!(got[0]["comm"], "hog\nwith newline");
        assert_eq!(got[0]["source"], "oomguard");
        assert_eq!(log.stats().written, 2);
    }

    #[test]
    fn rotates_by_size_keeping_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let one = serde_json::to_vec(&ev(0)).unwrap().len() as u64 + 1;
        // 4096 is the floor of max_bytes.
        let mut log = EventLog::at(&path, 4096, 2);
        let per_file = 4096 / one;
        let total = per_file * 4 + 1;
        for i in 0..total {
            assert!(log.write(&ev(i as i64)));
        }
        assert!(path.exists());
        assert!(dir.path().join("events.jsonl.1").exists());
        assert!(dir.path().join("events.jsonl.2").exists());
        assert!(!dir.path().join("events.jsonl.3").exists());
        for f in log_files(&path) {
            assert!(std::fs::metadata(&f).unwrap().len() <= 4096, "{f:?}");
        }
        // The newest event is last in the current file; the files read in order are in order.
        let all: Vec<i64> = log_files(&path)
            .iter()
            .flat_map(|f| lines(f))
            .map(|v| v["pid"].as_i64().unwrap())
            .collect();
        assert_eq!(*all.last().unwrap(), total as i64 - 1);
        assert!(all.windows(2).all(|w| w[0] + 1 == w[1]));
        assert_eq!(log.stats().rotations, 4);
    }

    #[test]
    fn full_disk_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        // /dev/full: every write fails with ENOSPC, as on a full file system.
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let mut log = EventLog::at(&path, 1 << 20, 3);
        assert!(!log.write(&ev(1)));
        assert!(!log.write(&ev(2)));
        assert_eq!(log.stats().errors, 2);
        assert_eq!(log.stats().written, 0);
        let err = log.take_error().unwrap();
        assert!(err.contains("No space left"), "{err}");
    }

    #[test]
    fn removed_directory_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("log");
        let path = sub.join("events.jsonl");
        let mut log = EventLog::at(&path, 1 << 20, 3);
        assert!(log.write(&ev(1)));
        std::fs::remove_dir_all(&sub).unwrap();
        assert!(log.write(&ev(2)), "{:?}", log.take_error());
        let got = lines(&path);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["pid"], 2);
    }

    #[test]
    fn unwritable_place_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the directory should be: mkdir fails with ENOTDIR/EEXIST.
        std::fs::write(dir.path().join("notadir"), b"x").unwrap();
        let mut log = EventLog::at(&dir.path().join("notadir/events.jsonl"), 1 << 20, 3);
        assert!(!log.write(&ev(1)));
        assert_eq!(log.stats().errors, 1);
    }
}
