//! Self-protection: keep the guard's own memory resident and make the kernel OOM killer
//! avoid it. Both degrade instead of failing: a guard that could not lock its memory is still
//! better running than not.
//!
//! - `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` (ONFAULT: Linux 4.4) locks pages as they
//!   are touched instead of faulting in every mapping up front, which keeps RSS at the working
//!   set (measured in research/ecosystem.md: 1.9 MB with ONFAULT vs 2.9 MB without). Kernels
//!   without ONFAULT answer EINVAL, and then we retry without it. It needs CAP_IPC_LOCK or an
//!   RLIMIT_MEMLOCK large enough for the whole process (`LimitMEMLOCK=infinity`).
//! - `/proc/self/oom_score_adj`: lowering it below the process's `oom_score_adj_min` needs
//!   CAP_SYS_RESOURCE; without it the write fails with EACCES (root here lacks that
//!   capability). systemd's `OOMScoreAdjust=` sets it before the daemon starts, which is the
//!   recommended way.

use std::io;
use std::path::Path;

use rustix::mm::MlockAllFlags;

const OWN_OOM_SCORE_ADJ: &str = "/proc/self/oom_score_adj";

/// What [`lock_all_memory`] achieved.
#[derive(Debug)]
pub enum MlockStatus {
    /// `MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT`.
    LockedOnFault,
    /// `MCL_CURRENT | MCL_FUTURE` after ONFAULT was refused (older kernel): every mapping is
    /// faulted in and locked, so RSS is higher.
    LockedWithoutOnFault {
        /// Why ONFAULT failed.
        onfault_error: io::Error,
    },
    /// Not locked; the guard runs but may be paged out under the very pressure it guards
    /// against.
    Failed {
        /// The error of the last attempt (EPERM: no CAP_IPC_LOCK; ENOMEM: RLIMIT_MEMLOCK too
        /// small).
        error: io::Error,
    },
}

impl MlockStatus {
    /// True when memory is locked in either mode.
    pub fn is_locked(&self) -> bool {
        !matches!(self, Self::Failed { .. })
    }

    /// A one-line explanation with what to change.
    pub fn describe(&self) -> String {
        match self {
            Self::LockedOnFault => "memory locked (mlockall CURRENT|FUTURE|ONFAULT)".into(),
            Self::LockedWithoutOnFault { onfault_error } => format!(
                "memory locked without MCL_ONFAULT ({onfault_error}); RSS includes every mapping"
            ),
            Self::Failed { error } => format!(
                "memory NOT locked: mlockall failed ({error}); grant CAP_IPC_LOCK or set \
                 LimitMEMLOCK=infinity"
            ),
        }
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Locks all current and future memory, preferring lock-on-fault.
pub fn lock_all_memory() -> MlockStatus {
    let base = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE;
    match rustix::mm::mlockall(base | MlockAllFlags::ONFAULT) {
        Ok(()) => MlockStatus::LockedOnFault,
        Err(onfault) => match rustix::mm::mlockall(base) {
            Ok(()) => MlockStatus::LockedWithoutOnFault {
                onfault_error: errno(onfault),
            },
            Err(e) => MlockStatus::Failed { error: errno(e) },
        },
    }
}

/// The mappings [`shed_file_pages`] may drop, from `/proc/self/smaps` text: file-backed
/// (a path and an inode), private, readable and not writable, and holding no private
/// (copy-on-write) page (`Anonymous: 0 kB`). The relocated part of a binary (RELRO: written by
/// the loader, then made read-only) has private pages and is therefore never chosen; code and
/// constants are. Returns `(start, end)` addresses.
pub fn sheddable_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, bool)> = None;
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let first = f.next().unwrap_or("");
        let range = first.split_once('-').and_then(|(a, b)| {
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        });
        if let Some((start, end)) = range {
            if let Some((s, e, true)) = current.take() {
                out.push((s, e));
            }
            let perms = f.next().unwrap_or("").as_bytes();
            let (_offset, _dev) = (f.next(), f.next());
            let inode = f.next().unwrap_or("0");
            let path = f.next().unwrap_or("");
            let ok = perms.len() == 4
                && perms[0] == b'r'
                && perms[1] == b'-'
                && perms[3] == b'p'
                && inode != "0"
                && path.starts_with('/');
            current = Some((start, end, ok));
        } else if let Some(kib) = line.strip_prefix("Anonymous:") {
            if kib.trim() != "0 kB" {
                if let Some(c) = current.as_mut() {
                    c.2 = false;
                }
            }
        }
    }
    if let Some((s, e, true)) = current {
        out.push((s, e));
    }
    out
}

/// Unmaps the read-only file pages (this program's and its libraries' code and constants) that
/// start-up faulted in, so that the resident, locked set becomes what runs after this call: the
/// watch loop and whatever the caller exercises next. Start-up (argument and config parsing,
/// regex compilation, the first scans) touches code the loop never runs again; with
/// `MCL_ONFAULT` those pages would stay locked for the daemon's life. `MADV_DONTNEED` on these
/// mappings only drops page-table entries of page-cache pages, which fault back in from the page
/// cache on the next touch: no data is lost (the mappings chosen by [`sheddable_ranges`] hold no
/// private page). Must run while memory is unlocked (the kernel refuses `MADV_DONTNEED` on
/// locked mappings). Returns the bytes of the mappings shed.
pub fn shed_file_pages() -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut shed = 0u64;
    for (start, end) in sheddable_ranges(&smaps) {
        // SAFETY: the range is one of this process's own mappings, read-only, file-backed and
        // without private pages (see `sheddable_ranges`): dropping its page-table entries only
        // makes the next access fault the same page-cache page back in.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        shed += (end - start) as u64;
    }
    Ok(shed)
}

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`): start-up frees
/// more than the loop will ever allocate again (config text, compiled rule sets' scratch, the
/// rehearsal's candidate strings).
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: plain glibc call, no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Undoes [`lock_all_memory`].
pub fn unlock_all_memory() -> io::Result<()> {
    rustix::mm::munlockall().map_err(errno)
}

/// What [`set_own_oom_score_adj`] achieved.
#[derive(Debug)]
pub enum OomScoreAdjStatus {
    /// The value was written.
    Set {
        /// The value now in effect.
        value: i32,
    },
    /// The write failed; the guard runs with `current`.
    Degraded {
        /// What we asked for.
        requested: i32,
        /// The value in effect (None if unreadable).
        current: Option<i32>,
        /// The write error.
        error: io::Error,
    },
}

impl OomScoreAdjStatus {
    /// A one-line explanation with what to change.
    pub fn describe(&self) -> String {
        match self {
            Self::Set { value } => format!("oom_score_adj set to {value}"),
            Self::Degraded {
                requested,
                current,
                error,
            } => {
                let now = current.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                let hint = match error.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EPERM) => {
                        "; lowering oom_score_adj needs CAP_SYS_RESOURCE: set \
                         OOMScoreAdjust= in the systemd unit instead"
                    }
                    Some(libc::EINVAL) => "; the valid range is -1000..=1000",
                    _ => "",
                };
                format!("oom_score_adj NOT set to {requested} ({error}), running with {now}{hint}")
            }
        }
    }
}

fn read_adj(path: &Path) -> io::Result<i32> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The process's own `oom_score_adj`.
pub fn own_oom_score_adj() -> io::Result<i32> {
    read_adj(Path::new(OWN_OOM_SCORE_ADJ))
}

/// Sets the process's own `oom_score_adj` (-1000 = never chosen by the kernel OOM killer).
/// Never fails: a refusal comes back as [`OomScoreAdjStatus::Degraded`].
pub fn set_own_oom_score_adj(value: i32) -> OomScoreAdjStatus {
    set_oom_score_adj_at(Path::new(OWN_OOM_SCORE_ADJ), value)
}

fn set_oom_score_adj_at(path: &Path, value: i32) -> OomScoreAdjStatus {
    match std::fs::write(path, value.to_string()) {
        Ok(()) => OomScoreAdjStatus::Set { value },
        Err(error) => OomScoreAdjStatus::Degraded {
            requested: value,
            current: read_adj(path).ok(),
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sense::psi::has_cap_sys_resource;
    use crate::testutil::skip;

    fn vm_lck_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Real smaps text (this machine, kernel 6.18, trimmed to the lines the parser reads):
    /// the binary's four mappings, an anonymous heap and libc's code.
    const SMAPS: &str = "\
55ff00063000-55ff000d2000 r--p 00000000 fe:00 5414921                    /usr/bin/oomguard
Size:                444 kB
Rss:                 308 kB
Anonymous:             0 kB
55ff000d2000-55ff0031f000 r-xp 0006e000 fe:00 5414921                    /usr/bin/oomguard
Rss:                1852 kB
Anonymous:             0 kB
55ff0031f000-55ff0032b000 r--p 002ba000 fe:00 5414921                    /usr/bin/oomguard
Rss:                  48 kB
Anonymous:            48 kB
55ff0032b000-55ff0032d000 rw-p 002c5000 fe:00 5414921                    /usr/bin/oomguard
Anonymous:             8 kB
55ff0114c000-55ff0116d000 rw-p 00000000 00:00 0                          [heap]
Anonymous:           132 kB
7f2d1b628000-7f2d1b77d000 r-xp 00028000 fe:00 1054203                    /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f2d1b7d8000-7f2d1b7d9000 r--p 00000000 00:00 0 
Anonymous:             0 kB
7ffd3b9f1000-7ffd3b9f3000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
";

    #[test]
    fn sheds_only_code_and_constants_never_relocated_or_anonymous_pages() {
        assert_eq!(
            sheddable_ranges(SMAPS),
            vec![
                (0x55ff00063000, 0x55ff000d2000),
                (0x55ff000d2000, 0x55ff0031f000),
                (0x7f2d1b628000, 0x7f2d1b77d000),
            ]
        );
        assert!(sheddable_ranges("").is_empty());
        assert!(sheddable_ranges("garbage\nAnonymous: 4 kB\n").is_empty());
    }

    /// Locking and shedding in parallel threads would collide (`MADV_DONTNEED` refuses locked
    /// mappings): the tests that do either take this first.
    static MAPPINGS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn shedding_own_code_lowers_rss_and_the_program_runs_on() {
        let _g = MAPPINGS.lock().unwrap();
        let rss_file_kib = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap()
        };
        let before = rss_file_kib();
        let shed = shed_file_pages().unwrap();
        let after = rss_file_kib();
        assert!(shed > 0);
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        // Code and constants fault back in: the test harness and std run on.
        assert_eq!(format!("{}", 6 * 7), "42");
    }

    #[test]
    fn mlockall_onfault_then_unlock() {
        let _g = MAPPINGS.lock().unwrap();
        let status = lock_all_memory();
        eprintln!("{}", status.describe());
        if !status.is_locked() {
            skip("mlockall_onfault_then_unlock", &status.describe());
            return;
        }
        assert!(matches!(status, MlockStatus::LockedOnFault), "{status:?}");
        // Touch a fresh page so something is locked even with ONFAULT.
        let v = std::hint::black_box(vec![1u8; 1 << 16]);
        assert!(vm_lck_kib() > 0);
        drop(v);
        unlock_all_memory().unwrap();
        assert_eq!(vm_lck_kib(), 0);
    }

    #[test]
    fn oom_score_adj_minus_1000_degrades_without_cap_sys_resource() {
        let before = own_oom_score_adj().unwrap();
        if has_cap_sys_resource() {
            // Would really protect the test binary; not what this test is about.
            skip(
                "oom_score_adj_minus_1000",
                "has CAP_SYS_RESOURCE; would succeed",
            );
            return;
        }
        let status = set_own_oom_score_adj(-1000);
        eprintln!("{}", status.describe());
        match &status {
            OomScoreAdjStatus::Degraded {
                requested: -1000,
                current,
                error,
            } => {
                assert_eq!(error.raw_os_error(), Some(libc::EACCES));
                assert_eq!(*current, Some(before));
                assert!(status.describe().contains("CAP_SYS_RESOURCE"));
            }
            other => panic!("expected Degraded, got {other:?}"),
        }
        // Writing the current value is always allowed.
        assert!(matches!(
            set_own_oom_score_adj(before),
            OomScoreAdjStatus::Set { .. }
        ));
    }

    #[test]
    fn out_of_range_is_degraded_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oom_score_adj");
        std::fs::write(&path, "0\n").unwrap();
        assert!(matches!(
            set_oom_score_adj_at(&path, 500),
            OomScoreAdjStatus::Set { value: 500 }
        ));
        let status = set_own_oom_score_adj(5000);
        assert!(matches!(status, OomScoreAdjStatus::Degraded { .. }));
        assert!(
            status.describe().contains("-1000..=1000"),
            "{}",
            status.describe()
        );
    }
}
