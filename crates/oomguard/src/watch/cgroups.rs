//! Guarded memory cgroups: which directories a `[[cgroups]]` path (or glob) names, how close each
//! is to its limit, and the kernel notification that wakes the daemon when one gets close.
//!
//! "Close" is measured on the working set, usage minus inactive page cache, as the kernel's memcg
//! OOM killer only fires once reclaim cannot free enough: page cache near the limit is not a
//! reason to kill (`docker stats` and the kubelet measure it the same way).

use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use oomguard_core::host::cgroup::{
    parse_counter, parse_memory_stat, parse_v1_limit, parse_v2_limit,
};

use oomguard_core::cgroup_guard::PressureState;
use oomguard_core::config::{CgroupWatch, PsiSpec};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::size::Amount;

use crate::host::cgroupfs::Memcg;
use crate::host::{CgroupFs, ReadError};
use crate::sense::memcg_v1::MemcgEvent;
use crate::sense::psi::{PsiTrigger, StallKind, WindowRounding};

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
    /// The cgroup directory, kept open: each reading opens its files relative to it by a
    /// static name, so the steady-state loop allocates nothing (no path building).
    dirfd: Option<OwnedFd>,
    /// Set once its removal was logged, so a gone cgroup is reported once, not at every reading
    /// until the next rescan drops it.
    pub gone_reported: bool,
    /// Its time-to-OOM forecast (`watch/daemon/forecast.rs`).
    pub forecast: oomguard_core::forecast::Tracker,
    /// The rule's pressure limit on the cgroup's own `memory.pressure` (v2), and its state.
    pub psi: Option<PsiSpec>,
    pub pressure: PressureState,
    /// A PSI trigger on that file: wakes the daemon when stalls begin, so the rule's count starts
    /// without waiting for the next reading.
    pub psi_trigger: Option<PsiTrigger>,
    /// The `memory.high` the thrash rule's `throttle` step set (while it runs): a
    /// `memory.high` of exactly this value is not the guarded limit, so the throttle does not
    /// make the headroom rule kill what it is slowing down.
    pub throttle_high_bytes: Option<u64>,
}

/// One reading of a guarded cgroup (the decision's type, from `oomguard_core::decision`).
pub use oomguard_core::decision::CgroupReading as Reading;

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
pub(crate) fn memory_root(cgfs: &CgroupFs) -> Option<(CgroupVersion, PathBuf)> {
    let layout = cgfs.layout();
    if let Some(v1) = layout.v1_memory {
        return Some((CgroupVersion::V1, v1));
    }
    layout
        .v2
        .filter(|_| layout.v2_memory_controller)
        .map(|v2| (CgroupVersion::V2, v2))
}

/// The mount points of the cgroup hierarchies under the cgroup root, as text: a path the user
/// gave as a directory under one of them is a filesystem path, not a hierarchy path.
fn mounts(cgfs: &CgroupFs) -> Vec<String> {
    let layout = cgfs.layout();
    let mut m = vec![cgfs.root().display().to_string()];
    m.extend(layout.v1_memory.iter().map(|p| p.display().to_string()));
    m.extend(layout.v2.iter().map(|p| p.display().to_string()));
    m
}

/// Rewrites a cgroup path given as a directory under a cgroup mount
/// (`/sys/fs/cgroup/memory/app`) into the hierarchy path the kernel prints (`/app`); `None`
/// when `given` is already a hierarchy path.
pub fn normalise_path(cgfs: &CgroupFs, given: &str) -> Option<String> {
    let mounts = mounts(cgfs);
    let refs: Vec<&str> = mounts.iter().map(String::as_str).collect();
    oomguard_core::host::cgroup::strip_mount(given, &refs)
}

/// Normalises every `[[cgroups]] path` (see [`normalise_path`]); returns a note per rewrite.
pub fn normalise_config(cgfs: &CgroupFs, cgroups: &mut [CgroupWatch]) -> Vec<String> {
    let mut notes = Vec::new();
    for c in cgroups {
        if let Some(p) = normalise_path(cgfs, &c.path) {
            notes.push(format!(
                "cgroup {}: a directory under a cgroup mount; guarding the cgroup {p}",
                c.path
            ));
            c.path = p;
        }
    }
    notes
}

/// A warning for each pattern that matches none of `found`, naming the closest existing cgroup:
/// the deepest existing ancestor of the path, and there the child nearest by name.
pub fn unmatched(cgfs: &CgroupFs, patterns: &[(String, Amount)], found: &[Watched]) -> Vec<String> {
    let Some((_, root)) = memory_root(cgfs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (pattern, _) in patterns {
        if found
            .iter()
            .any(|w| w.path == *pattern || glob_match(pattern, &w.path))
        {
            continue;
        }
        let mut rel = String::new();
        let mut dir = root.clone();
        for comp in pattern
            .trim_matches('/')
            .split('/')
            .filter(|c| !c.is_empty())
        {
            if comp.contains('*') || !dir.join(comp).is_dir() {
                let children: Vec<String> = std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.filter_map(Result::ok)
                            .filter(|e| e.path().is_dir())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let want = comp.replace('*', "");
                if let Some(c) = oomguard_core::host::cgroup::closest_name(
                    &want,
                    children.iter().map(String::as_str),
                ) {
                    rel.push('/');
                    rel.push_str(c);
                }
                break;
            }
            rel.push('/');
            rel.push_str(comp);
            dir = dir.join(comp);
        }
        if rel.is_empty() {
            rel.push('/');
        }
        out.push(format!(
            "warning: NOT GUARDED: cgroup {pattern} matches no memory cgroup under {} (closest existing: {rel})",
            root.display()
        ));
    }
    out
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
                let dirfd = rustix::fs::open(
                    &dir,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .ok();
                out.push(Watched {
                    path,
                    dir,
                    version,
                    headroom: *headroom,
                    wake: None,
                    armed_for: None,
                    last: None,
                    dirfd,
                    gone_reported: false,
                    forecast: Default::default(),
                    psi: None,
                    pressure: PressureState::default(),
                    psi_trigger: None,
                    throttle_high_bytes: None,
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
            let high = m
                .high
                .and_then(|h| h.bytes())
                .filter(|h| Some(*h) != w.throttle_high_bytes);
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

/// Gives each watched cgroup the pressure rule of the first `[[cgroups]]` entry that names it
/// (the entry [`resolve`] took its headroom from) and, with `arm`, a PSI trigger on its
/// `memory.pressure`. Returns what to log: a rule that cannot apply (cgroup v1 has no
/// per-cgroup pressure file) or a trigger that could not be armed (then the file is polled).
pub fn apply_rules(cgroups: &mut [Watched], rules: &[CgroupWatch], arm: bool) -> Vec<String> {
    let mut said = Vec::new();
    for w in cgroups.iter_mut() {
        let rule = rules.iter().find(|r| {
            if r.path.contains('*') {
                glob_match(&r.path, &w.path)
            } else {
                r.path.trim_end_matches('/') == w.path.trim_end_matches('/')
            }
        });
        let Some(spec) = rule.and_then(|r| r.psi) else {
            w.psi = None;
            w.psi_trigger = None;
            continue;
        };
        if w.version != CgroupVersion::V2 {
            if w.psi.is_none() {
                said.push(format!(
                    "warning: cgroup {}: psi is set, but cgroup v1 has no per-cgroup                      memory.pressure; only its headroom is guarded",
                    w.path
                ));
            }
            w.psi = Some(spec);
            continue;
        }
        let rearm = w.psi != Some(spec) || (arm && w.psi_trigger.is_none());
        w.psi = Some(spec);
        if !arm || !rearm {
            continue;
        }
        // As for `[psi]`: wake when stalls reach the rule's share of a 2 s window; the rule
        // itself is judged on avg10.
        let window = std::time::Duration::from_secs(2);
        let stall = window.mul_f64((spec.avg10_pct / 100.0).clamp(0.001, 1.0));
        let file = w.dir.join("memory.pressure");
        match PsiTrigger::arm_planned(
            &file,
            StallKind::Some,
            stall,
            window,
            WindowRounding::RoundUp,
        ) {
            Ok(t) => w.psi_trigger = Some(t),
            Err(e) => {
                w.psi_trigger = None;
                said.push(format!(
                    "cgroup {}: PSI trigger not armed ({e}); its memory.pressure is polled instead",
                    w.path
                ));
            }
        }
    }
    said
}

impl Watched {
    /// The `some` avg10 of the cgroup's `memory.pressure` (v2), read through the kept fd into
    /// `buf`; `None` when it cannot be read (the pressure rule then does not count).
    pub fn pressure_avg10(&self, buf: &mut Vec<u8>) -> Option<f64> {
        let dir = self.dirfd.as_ref()?;
        read_at(dir, c"memory.pressure", buf).ok()?;
        oomguard_core::host::system::parse_pressure(buf)
            .ok()
            .map(|p| p.some.avg10_pct)
    }
}

/// Reads `name` relative to `dir` into `buf` (cleared; its capacity is reused).
fn read_at(dir: &OwnedFd, name: &CStr, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use rustix::fs::{openat, Mode, OFlags};
    let fd = openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let spare = buf.spare_capacity_mut();
        let (filled, _) = rustix::io::read(&fd, spare)?;
        let n = filled.len();
        if n == 0 {
            return Ok(());
        }
        // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
    }
}

fn io_err(path: &Path, name: &CStr, e: oomguard_core::host::ParseError) -> ReadError {
    ReadError::malformed(path.join(name.to_string_lossy().as_ref()), e)
}

impl Watched {
    /// [`read`] without allocating: the files are opened relative to the kept directory fd and
    /// read into `buf` (sized once by the caller). Falls back to [`read`] when there is no fd.
    pub fn read_fast(&self, cgfs: &CgroupFs, buf: &mut Vec<u8>) -> Result<Reading, ReadError> {
        let Some(dir) = &self.dirfd else {
            return read(cgfs, self);
        };
        let vanished = |name: &CStr, e: std::io::Error| {
            ReadError::from_io(self.dir.join(name.to_string_lossy().as_ref()), e, true)
        };
        let (usage_f, limit_f, high_f): (&CStr, &CStr, Option<&CStr>) = match self.version {
            CgroupVersion::V1 => (c"memory.usage_in_bytes", c"memory.limit_in_bytes", None),
            CgroupVersion::V2 => (c"memory.current", c"memory.max", Some(c"memory.high")),
        };
        read_at(dir, usage_f, buf).map_err(|e| vanished(usage_f, e))?;
        let usage =
            parse_counter("memory usage", buf).map_err(|e| io_err(&self.dir, usage_f, e))?;
        read_at(dir, limit_f, buf).map_err(|e| vanished(limit_f, e))?;
        let own = match self.version {
            CgroupVersion::V1 => parse_v1_limit("memory.limit_in_bytes", buf),
            CgroupVersion::V2 => parse_v2_limit("memory.max", buf),
        }
        .map_err(|e| io_err(&self.dir, limit_f, e))?
        .bytes();
        let high = match high_f {
            Some(h) => {
                read_at(dir, h, buf).map_err(|e| vanished(h, e))?;
                parse_v2_limit("memory.high", buf)
                    .map_err(|e| io_err(&self.dir, h, e))?
                    .bytes()
                    .filter(|b| Some(*b) != self.throttle_high_bytes)
            }
            None => None,
        };
        read_at(dir, c"memory.stat", buf).map_err(|e| vanished(c"memory.stat", e))?;
        let stat = parse_memory_stat(buf).map_err(|e| io_err(&self.dir, c"memory.stat", e))?;
        let hier = stat
            .hierarchical_memory_limit_bytes
            .filter(|b| *b < (1 << 62));
        let limit = [own, high, hier].into_iter().flatten().min();
        let inactive = stat
            .total_inactive_file_bytes
            .or(stat.inactive_file_bytes)
            .unwrap_or(0);
        Ok(Reading {
            usage_bytes: usage,
            working_set_bytes: usage.saturating_sub(inactive),
            limit_bytes: limit,
        })
    }

    /// The cgroup's `memory.stat` through the kept directory fd (the thrash rule's counters,
    /// `watch/daemon/thrash.rs`): one read into `buf`, no allocation.
    pub fn read_stat_fast(
        &self,
        buf: &mut Vec<u8>,
    ) -> Result<oomguard_core::host::cgroup::MemoryStat, ReadError> {
        let name = c"memory.stat";
        let path = || self.dir.join("memory.stat");
        match &self.dirfd {
            Some(dir) => {
                read_at(dir, name, buf).map_err(|e| ReadError::from_io(path(), e, true))?
            }
            None => {
                let mut f =
                    std::fs::File::open(path()).map_err(|e| ReadError::from_io(path(), e, true))?;
                crate::sense::reread(&mut f, buf)
                    .map_err(|e| ReadError::from_io(path(), e, true))?
            }
        }
        parse_memory_stat(buf).map_err(|e| io_err(&self.dir, name, e))
    }

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

    /// Still there, and still the same cgroup? (A removed cgroup's eventfd fires once; its files
    /// vanish.) A cgroup removed and made again at the same path (every restart of a systemd
    /// service does this) is another directory: the kept fd points at the dead one, so it is not
    /// "still there" and the rescan watches the new one. Found in the VM lab on cgroup v2: the
    /// path alone said yes, and the new cgroup was never guarded.
    pub fn exists(&self) -> bool {
        let Ok(now) = rustix::fs::stat(&self.dir) else {
            return false;
        };
        match &self.dirfd {
            Some(fd) => rustix::fs::fstat(fd)
                .is_ok_and(|kept| kept.st_ino == now.st_ino && kept.st_dev == now.st_dev),
            None => Path::new(&self.dir).join("cgroup.procs").exists(),
        }
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

    // ---- fake v2 trees (no v2 memory controller on the test machine) ----------------------

    /// memory.stat of a v2 memcg in 6.18's layout (the keys and order of mm/memcontrol.c's
    /// `memory_stats[]` and event list; figures chosen to be consistent: anon + file + kernel
    /// is about memory.current, inactive_file + active_file = file).
    fn v2_stat(anon: u64, inactive_file: u64, active_file: u64) -> String {
        let file = inactive_file + active_file;
        format!(
            "anon {anon}\nfile {file}\nkernel 6615040\nkernel_stack 327680\npagetables 1228800\n\
             sec_pagetables 0\npercpu 4800\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\n\
             file_mapped 4194304\nfile_dirty 8192\nfile_writeback 0\nswapcached 0\n\
             anon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon {anon}\nactive_anon 0\n\
             inactive_file {inactive_file}\nactive_file {active_file}\nunevictable 0\n\
             slab_reclaimable 5963640\nslab_unreclaimable 89048\nslab 6052688\n\
             workingset_refault_anon 0\nworkingset_refault_file 9236\n\
             workingset_activate_anon 0\nworkingset_activate_file 691\n\
             workingset_restore_anon 0\nworkingset_restore_file 0\nworkingset_nodereclaim 0\n\
             pgdemote_kswapd 0\npgdemote_direct 0\npgdemote_khugepaged 0\npgscan 0\npgsteal 0\n\
             pgscan_kswapd 0\npgscan_direct 0\npgscan_khugepaged 0\npgsteal_kswapd 0\n\
             pgsteal_direct 0\npgsteal_khugepaged 0\npgfault 935157\npgmajfault 534\n\
             pgrefill 0\npgactivate 0\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\n\
             zswpin 0\nzswpout 0\nzswpwb 0\nthp_fault_alloc 0\nthp_collapse_alloc 0\n\
             thp_swpout 0\nthp_swpout_fallback 0\n"
        )
    }

    struct FakeV2 {
        dir: tempfile::TempDir,
    }

    impl FakeV2 {
        /// A pure v2 host (`<root>/cgroup.controllers` with memory), or one hybrid-style with
        /// v2 at `unified/`.
        fn new(controllers: &str, at: &str) -> FakeV2 {
            let f = FakeV2 {
                dir: tempfile::tempdir().unwrap(),
            };
            f.write(
                &format!("{at}cgroup.controllers"),
                &format!("{controllers}\n"),
            );
            f.write(&format!("{at}cgroup.procs"), "1\n");
            f
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        fn fs(&self) -> CgroupFs {
            CgroupFs::new(self.dir.path())
        }
        /// One memcg's files, as a 6.18 kernel writes them.
        fn memcg(&self, path: &str, current: u64, max: &str, high: &str, inactive_file: u64) {
            let d = path.trim_start_matches('/');
            let limits = [
                ("memory.current", format!("{current}")),
                ("memory.max", max.to_owned()),
                ("memory.high", high.to_owned()),
                ("memory.low", "0".to_owned()),
                ("memory.min", "0".to_owned()),
                ("memory.swap.current", "0".to_owned()),
                ("memory.swap.max", "max".to_owned()),
                ("memory.oom.group", "0".to_owned()),
                ("cgroup.procs", "4242".to_owned()),
            ];
            for (f, v) in limits {
                self.write(&format!("{d}/{f}"), &format!("{v}\n"));
            }
            let events = "low 0\nhigh 12\nmax 3\noom 0\noom_kill 0\noom_group_kill 0\n";
            self.write(&format!("{d}/memory.events"), events);
            self.write(&format!("{d}/memory.events.local"), events);
            self.write(
                &format!("{d}/memory.pressure"),
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=221199\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=214901\n",
            );
            let active_file = 8 << 20;
            let anon = current.saturating_sub(inactive_file + active_file + 6615040);
            self.write(
                &format!("{d}/memory.stat"),
                &v2_stat(anon, inactive_file, active_file),
            );
        }
    }

    fn watch(fs: &CgroupFs, path: &str, headroom: Amount) -> Watched {
        let mut w = resolve(fs, &[(path.to_owned(), headroom)]).unwrap();
        assert_eq!(w.len(), 1, "{path}");
        w.remove(0)
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn v2_working_set_and_limit() {
        let f = FakeV2::new("cpuset cpu io memory pids", "");
        let fs = f.fs();
        // Table: memory.max, memory.high -> effective limit.
        let cases: [(&str, &str, Option<u64>); 5] = [
            ("536870912", "max", Some(512 * MIB)),
            // memory.high below memory.max is honoured: past it the kernel throttles and
            // reclaims hard, and the workload stalls long before memory.max.
            ("536870912", "419430400", Some(400 * MIB)),
            // memory.high above memory.max changes nothing.
            ("536870912", "1073741824", Some(512 * MIB)),
            ("max", "268435456", Some(256 * MIB)),
            ("max", "max", None),
        ];
        for (max, high, want) in cases {
            f.memcg("/system.slice/app.service", 300 * MIB, max, high, 100 * MIB);
            let w = watch(&fs, "/system.slice/app.service", Amount::Percent(5.0));
            assert_eq!(w.version, CgroupVersion::V2);
            let r = read(&fs, &w).unwrap();
            assert_eq!(r.usage_bytes, 300 * MIB, "{max} {high}");
            // Working set: usage minus inactive page cache (active page cache counts).
            assert_eq!(r.working_set_bytes, 200 * MIB, "{max} {high}");
            assert_eq!(r.limit_bytes, want, "max {max} high {high}");
        }
        // Room below the trigger, with memory.high the limit: 400 - 5 % = 380; 380 - 200.
        f.memcg(
            "/system.slice/app.service",
            300 * MIB,
            "536870912",
            "419430400",
            100 * MIB,
        );
        let w = watch(&fs, "/system.slice/app.service", Amount::Percent(5.0));
        let r = read(&fs, &w).unwrap();
        assert_eq!(r.room_bytes(w.headroom), Some(180 * MIB));
        // Page cache alone near the limit is no reason to act; anon is.
        f.memcg(
            "/system.slice/app.service",
            395 * MIB,
            "419430400",
            "max",
            300 * MIB,
        );
        assert!(read(&fs, &w).unwrap().room_bytes(w.headroom).unwrap() > 0);
        f.memcg(
            "/system.slice/app.service",
            395 * MIB,
            "419430400",
            "max",
            MIB,
        );
        assert_eq!(read(&fs, &w).unwrap().room_bytes(w.headroom), Some(0));
        // No eventfd on v2: arming is a no-op, not an error.
        let mut w = w;
        assert_eq!(w.arm(&r), None);
        assert!(w.wake.is_none());
    }

    #[test]
    fn v2_globs_resolve_on_a_fake_tree() {
        let f = FakeV2::new("cpuset cpu io memory pids", "");
        for p in [
            "/system.slice/nginx.service",
            "/system.slice/postgres.service",
            "/system.slice/ssh.socket",
            "/system.slice/nested/deep.service",
            "/kubepods/burstable/pod1",
            "/kubepods/besteffort/pod2",
        ] {
            f.memcg(p, 10 * MIB, "max", "max", 0);
        }
        let fs = f.fs();
        let paths = |pattern: &str| -> Vec<String> {
            let mut v: Vec<String> = resolve(&fs, &[(pattern.to_owned(), Amount::Percent(5.0))])
                .unwrap()
                .into_iter()
                .map(|w| {
                    assert_eq!(w.version, CgroupVersion::V2);
                    assert_eq!(w.dir, fs.root().join(w.path.trim_start_matches('/')));
                    w.path
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            paths("/system.slice/*.service"),
            [
                "/system.slice/nginx.service",
                "/system.slice/postgres.service"
            ]
        );
        assert_eq!(
            paths("/kubepods/*/*"),
            ["/kubepods/besteffort/pod2", "/kubepods/burstable/pod1"]
        );
        assert_eq!(
            paths("/system.slice/ssh.socket"),
            ["/system.slice/ssh.socket"]
        );
        assert!(paths("/system.slice/absent.service").is_empty());
        assert!(paths("/nothing/*").is_empty());
        // The same pattern twice, or two overlapping ones, watch each cgroup once.
        let both = resolve(
            &fs,
            &[
                ("/system.slice/*.service".to_owned(), Amount::Percent(5.0)),
                (
                    "/system.slice/nginx.service".to_owned(),
                    Amount::Percent(1.0),
                ),
            ],
        )
        .unwrap();
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn v2_without_the_memory_controller_cannot_guard() {
        // This test machine's layout: v2 at unified/ without memory, and here no v1 memory.
        let f = FakeV2::new("cpuset cpu io pids", "unified/");
        let err = resolve(&f.fs(), &[("/a".to_owned(), Amount::Percent(5.0))]).unwrap_err();
        assert!(format!("{err}").contains("no memory controller"), "{err}");
        // With the v1 memory hierarchy mounted next to it, v1 is used.
        f.write("memory/memory.usage_in_bytes", "0\n");
        f.write("memory/a/memory.usage_in_bytes", "0\n");
        let w = resolve(&f.fs(), &[("/a".to_owned(), Amount::Percent(5.0))]).unwrap();
        assert_eq!(w[0].version, CgroupVersion::V1);
    }
}
