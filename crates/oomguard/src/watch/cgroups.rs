//! Guarded memory cgroups: which directories a `[[cgroups]]` path (or glob) names, how close each
//! is to its limit, and the kernel notification that wakes the daemon when one gets close.
//!
//! "Close" is measured on the working set, usage minus inactive page cache, as the kernel's memcg
//! OOM killer only fires once reclaim cannot free enough: page cache near the limit is not a
//! reason to kill (`docker stats` and the kubelet measure it the same way).

use std::path::{Path, PathBuf};
use std::time::Instant;

use oomguard_core::host::process::CgroupVersion;
use oomguard_core::size::Amount;

use crate::host::cgroupfs::Memcg;
use crate::host::{CgroupFs, ReadError};
use crate::sys::memcg_v1::MemcgEvent;

/// One guarded cgroup.
#[derive(Debug)]
pub struct Watched {
    /// The path as `/proc/PID/cgroup` shows it.
    pub path: String,
    pub dir: PathBuf,
    pub version: CgroupVersion,
    pub headroom: Amount,
    /// v1: an eventfd that fires when usage crosses `limit - headroom`.
    pub wake: Option<MemcgEvent>,
    /// The limit the eventfd was armed for.
    armed_for: Option<u64>,
    /// Previous working set and when, for the fill rate.
    pub last: Option<(u64, Instant)>,
}

/// A reading of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    /// The effective limit (v1: the lower of its own and the hierarchical one; v2: memory.max, or
    /// memory.high when lower). `None`: unlimited, nothing to guard.
    pub limit_bytes: Option<u64>,
}

impl Reading {
    /// Bytes left before the working set reaches `limit - headroom`; 0 when inside the headroom.
    pub fn room_bytes(&self, headroom: Amount) -> Option<u64> {
        let limit = self.limit_bytes?;
        let trigger = limit.saturating_sub(headroom.resolve(limit));
        Some(trigger.saturating_sub(self.working_set_bytes))
    }
}

/// `*` matches within one path component.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    p.len() == s.len()
        && p.iter()
            .zip(&s)
            .all(|(p, s)| component_match(p.as_bytes(), s.as_bytes()))
}

fn component_match(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| component_match(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && component_match(rest, &s[1..]),
    }
}

/// The memory hierarchy's root directory and version on this host.
fn memory_root(cgfs: &CgroupFs) -> Option<(CgroupVersion, PathBuf)> {
    let layout = cgfs.layout();
    if let Some(v1) = layout.v1_memory {
        return Some((CgroupVersion::V1, v1));
    }
    layout
        .v2
        .filter(|_| layout.v2_memory_controller)
        .map(|v2| (CgroupVersion::V2, v2))
}

/// Expands the configured paths into existing cgroup directories.
pub fn resolve(cgfs: &CgroupFs, patterns: &[(String, Amount)]) -> anyhow::Result<Vec<Watched>> {
    let mut out = Vec::new();
    if patterns.is_empty() {
        return Ok(out);
    }
    let Some((version, root)) = memory_root(cgfs) else {
        anyhow::bail!(
            "cannot guard cgroups: no memory controller (no v1 memory hierarchy, and cgroup v2 has \
             no memory controller) under {}",
            cgfs.root().display()
        );
    };
    for (pattern, headroom) in patterns {
        let mut dirs = Vec::new();
        if pattern.contains('*') {
            let fixed: Vec<&str> = pattern
                .trim_matches('/')
                .split('/')
                .take_while(|c| !c.contains('*'))
                .collect();
            let base = root.join(fixed.join("/"));
            let mut all = Vec::new();
            cgfs.walk(&base, 100_000, &mut all);
            for d in all {
                let rel = format!("/{}", d.strip_prefix(&root).unwrap_or(&d).display());
                if glob_match(pattern, &rel) {
                    dirs.push((rel, d));
                }
            }
        } else {
            let d = root.join(pattern.trim_start_matches('/'));
            if d.is_dir() {
                dirs.push((pattern.clone(), d));
            }
        }
        for (path, dir) in dirs {
            if !out.iter().any(|w: &Watched| w.dir == dir) {
                out.push(Watched {
                    path,
                    dir,
                    version,
                    headroom: *headroom,
                    wake: None,
                    armed_for: None,
                    last: None,
                });
            }
        }
    }
    Ok(out)
}

/// Reads a cgroup's usage, working set and limit.
pub fn read(cgfs: &CgroupFs, w: &Watched) -> Result<Reading, ReadError> {
    match cgfs.read_memcg(w.version, &w.dir)? {
        Memcg::V1(m) => {
            let own = m.limit.bytes();
            let hier = m
                .stat
                .hierarchical_memory_limit_bytes
                .filter(|b| *b < (1 << 62));
            let limit = match (own, hier) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let inactive = m
                .stat
                .total_inactive_file_bytes
                .or(m.stat.inactive_file_bytes)
                .unwrap_or(0);
            Ok(Reading {
                usage_bytes: m.usage_bytes,
                working_set_bytes: m.usage_bytes.saturating_sub(inactive),
                limit_bytes: limit,
            })
        }
        Memcg::V2(m) => {
            let max = m.max.bytes();
            let high = m.high.and_then(|h| h.bytes());
            let limit = match (max, high) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let inactive = m.stat.inactive_file_bytes.unwrap_or(0);
            Ok(Reading {
                usage_bytes: m.current_bytes,
                working_set_bytes: m.current_bytes.saturating_sub(inactive),
                limit_bytes: limit,
            })
        }
    }
}

impl Watched {
    /// (Re-)arms the v1 usage-threshold eventfd at `limit - headroom`. Failures degrade to
    /// polling and are returned for the log.
    pub fn arm(&mut self, reading: &Reading) -> Option<String> {
        if self.version != CgroupVersion::V1 {
            return None;
        }
        let limit = reading.limit_bytes?;
        if self.armed_for == Some(limit) && self.wake.is_some() {
            return None;
        }
        let at = limit.saturating_sub(self.headroom.resolve(limit));
        self.armed_for = Some(limit);
        match MemcgEvent::usage_threshold(&self.dir, at) {
            Ok(ev) => {
                self.wake = Some(ev);
                None
            }
            Err(e) => {
                self.wake = None;
                Some(format!(
                    "cgroup {}: no usage notification ({e}); polling instead",
                    self.path
                ))
            }
        }
    }

    /// Still there? (A removed cgroup's eventfd fires once; its files vanish.)
    pub fn exists(&self) -> bool {
        Path::new(&self.dir).join("cgroup.procs").exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_a_component() {
        assert!(glob_match(
            "/system.slice/*.service",
            "/system.slice/nginx.service"
        ));
        assert!(!glob_match(
            "/system.slice/*.service",
            "/system.slice/a/b.service"
        ));
        assert!(!glob_match(
            "/system.slice/*.service",
            "/system.slice/nginx.socket"
        ));
        assert!(glob_match("/kubepods/*/*", "/kubepods/burstable/pod1"));
        assert!(glob_match("/a", "/a/"));
        assert!(!glob_match("/a/*", "/a"));
    }

    #[test]
    fn room_is_measured_on_the_working_set() {
        let r = Reading {
            usage_bytes: 100 << 20,
            working_set_bytes: 60 << 20,
            limit_bytes: Some(128 << 20),
        };
        assert_eq!(r.room_bytes(Amount::Bytes(16 << 20)), Some(52 << 20));
        let r = Reading {
            usage_bytes: 0,
            working_set_bytes: 120 << 20,
            limit_bytes: Some(128 << 20),
        };
        assert_eq!(r.room_bytes(Amount::Bytes(16 << 20)), Some(0));
        let r = Reading {
            usage_bytes: 0,
            working_set_bytes: 0,
            limit_bytes: None,
        };
        assert_eq!(r.room_bytes(Amount::Percent(5.0)), None);
    }
}
