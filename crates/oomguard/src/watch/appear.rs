//! Wake-ups for guarded cgroups that appear: inotify on the directories where a `[[cgroups]]`
//! pattern's cgroup would be made, so a service that starts (or restarts) after the daemon is
//! guarded from its first allocation instead of at the next periodic rescan.
//!
//! Why: systemd makes a service's cgroup at every start. In the VM lab (docs/vm-lab.md) a
//! service started after the daemon filled its 128 MiB `MemoryMax` at 256 MiB/s in half a second,
//! long before the 10 s rescan found it, and the kernel's memcg OOM killer took it. `mkdir` on
//! cgroupfs goes through `vfs_mkdir`, which raises `IN_CREATE` on the parent (every kernel with
//! inotify), so watching the parent is enough.
//!
//! What is watched, per pattern: the deepest existing directory on the pattern's literal prefix
//! (the components before the first glob), never the guarded cgroup itself (its removal and
//! re-creation show in its parent). When an intermediate directory is missing, the deepest
//! existing ancestor is watched and [`Appear::rearm`] moves the watch down as the tree grows.
//! Steady state: one more fd in the loop's poll set; nothing is read unless the kernel says so.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

/// The inotify instance and what it watches.
#[derive(Debug)]
pub struct Appear {
    fd: OwnedFd,
    /// Watched directories with their watch descriptors.
    watched: Vec<(PathBuf, i32)>,
    buf: Vec<MaybeUninit<u8>>,
}

/// The directory to watch for `pattern` (a hierarchy path, `*` globs allowed) below `root`.
pub fn watch_dir(root: &Path, pattern: &str) -> PathBuf {
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    // The literal prefix, without the last component (the cgroup itself, or a glob).
    let literal = comps.iter().take_while(|c| !c.contains('*')).count();
    let upto = literal.min(comps.len().saturating_sub(1));
    let mut dir = root.to_path_buf();
    for c in &comps[..upto] {
        let next = dir.join(c);
        if !next.is_dir() {
            break;
        }
        dir = next;
    }
    dir
}

impl Appear {
    /// An inotify instance watching the directories of `patterns`; `Ok(None)` when there are no
    /// patterns (nothing to guard, no fd).
    pub fn new(root: &Path, patterns: &[&str]) -> std::io::Result<Option<Appear>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        let mut a = Appear {
            fd,
            watched: Vec::new(),
            buf: vec![MaybeUninit::uninit(); 4096],
        };
        a.rearm(root, patterns)?;
        Ok(Some(a))
    }

    /// The fd for the loop's poll set (readable when a directory was made or moved in).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directories watched now.
    pub fn watched(&self) -> impl Iterator<Item = &Path> {
        self.watched.iter().map(|(p, _)| p.as_path())
    }

    /// Recomputes the directories (the tree may have grown or shrunk): adds watches for new
    /// ones, removes those no longer wanted.
    pub fn rearm(&mut self, root: &Path, patterns: &[&str]) -> std::io::Result<()> {
        let mut want: Vec<PathBuf> = patterns.iter().map(|p| watch_dir(root, p)).collect();
        want.sort();
        want.dedup();
        self.watched.retain(|(p, wd)| {
            let keep = want.contains(p) && p.is_dir();
            if !keep {
                // A removed directory's watch is already gone (IN_IGNORED); that error is moot.
                let _ = inotify::remove_watch(&self.fd, *wd);
            }
            keep
        });
        for dir in want {
            if self.watched.iter().any(|(p, _)| *p == dir) {
                continue;
            }
            let flags = WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::ONLYDIR;
            let wd = inotify::add_watch(&self.fd, &dir, flags)?;
            self.watched.push((dir, wd));
        }
        Ok(())
    }

    /// Reads every pending event; true when a directory was made or moved into a watched one.
    pub fn drain(&mut self) -> bool {
        let mut seen = false;
        let mut r = inotify::Reader::new(&self.fd, &mut self.buf);
        loop {
            match r.next() {
                Ok(ev) => {
                    let f = ev.events();
                    if f.contains(inotify::ReadFlags::ISDIR)
                        && (f.contains(inotify::ReadFlags::CREATE)
                            || f.contains(inotify::ReadFlags::MOVED_TO))
                    {
                        seen = true;
                    }
                    // Queue overflow: something may have been missed; rescan to be sure.
                    if f.contains(inotify::ReadFlags::QUEUE_OVERFLOW) {
                        seen = true;
                    }
                }
                Err(_) => return seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn watch_dir_is_the_deepest_existing_parent_of_the_literal_prefix() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("system.slice/app.service")).unwrap();
        assert_eq!(
            watch_dir(r, "/system.slice/app.service"),
            r.join("system.slice")
        );
        assert_eq!(
            watch_dir(r, "/system.slice/*.service"),
            r.join("system.slice")
        );
        assert_eq!(watch_dir(r, "/og.slice/og-*.service"), r.to_path_buf());
        assert_eq!(watch_dir(r, "/a/b/c"), r.to_path_buf());
        assert_eq!(watch_dir(r, "/*/x"), r.to_path_buf());
        assert_eq!(watch_dir(r, "/top"), r.to_path_buf());
    }

    #[test]
    fn a_directory_made_where_a_pattern_points_wakes_it_and_rearm_follows_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let mut a = Appear::new(r, &["/og.slice/og-*.service"])
            .unwrap()
            .unwrap();
        assert!(!a.drain(), "nothing happened yet");
        // A plain file is not a cgroup.
        std::fs::write(r.join("file"), "x").unwrap();
        assert!(!a.drain());
        std::fs::create_dir(r.join("og.slice")).unwrap();
        assert!(a.drain());
        a.rearm(r, &["/og.slice/og-*.service"]).unwrap();
        assert_eq!(a.watched().collect::<Vec<_>>(), [r.join("og.slice")]);
        std::fs::create_dir(r.join("og.slice/og-1.service")).unwrap();
        assert!(a.drain());
        // Removed and made again: seen again in the parent.
        std::fs::remove_dir(r.join("og.slice/og-1.service")).unwrap();
        std::fs::create_dir(r.join("og.slice/og-1.service")).unwrap();
        assert!(a.drain());
        // The slice itself goes: rearm watches the root again.
        std::fs::remove_dir(r.join("og.slice/og-1.service")).unwrap();
        std::fs::remove_dir(r.join("og.slice")).unwrap();
        let _ = a.drain();
        a.rearm(r, &["/og.slice/og-*.service"]).unwrap();
        assert_eq!(a.watched().collect::<Vec<_>>(), [r.to_path_buf()]);
    }

    #[test]
    fn no_patterns_no_fd() {
        let t = tempfile::tempdir().unwrap();
        assert!(Appear::new(t.path(), &[]).unwrap().is_none());
    }
}
