//! Per-process files: `/proc/PID/stat`, `status`, `oom_score`, `oom_score_adj`, `cmdline` and
//! `cgroup`. Parsers borrow from the caller's buffer and do not allocate, so a scan can reuse one
//! buffer for every process.

use super::{lines, parse_i64, parse_u64, ParseError, ParseErrorKind};
use crate::units::kib_to_bytes;

/// `PF_EXITING` in `/proc/PID/stat` field 9 (flags): the task is in `do_exit()`.
pub const PF_EXITING: u32 = 0x0000_0004;
/// `PF_KTHREAD` (include/linux/sched.h, unchanged since 2.6.27): a kernel thread.
pub const PF_KTHREAD: u32 = 0x0020_0000;
/// `CAP_SYS_ADMIN`'s bit in `CapEff` (the root bonus of kernels before 4.17 keys on it).
pub const CAP_SYS_ADMIN_BIT: u32 = 21;

/// The fields of `/proc/PID/stat` oomguard uses. `comm` borrows the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat<'a> {
    pub pid: i32,
    /// The command name between the parentheses (may itself contain spaces and `)`).
    pub comm: &'a [u8],
    /// One-letter state: R, S, D, Z, X, T, t, I, ...
    pub state: u8,
    pub ppid: i32,
    /// Field 5: the process group id (the kill path's `pgroup` unit).
    pub pgrp: i32,
    /// `task->flags` (`PF_*`).
    pub flags: u32,
    pub num_threads: i64,
    /// Start time after boot in clock ticks: with the pid, a key that survives pid reuse.
    pub start_time_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

impl ProcStat<'_> {
    /// A kernel thread (`PF_KTHREAD`).
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
    /// The task has entered `do_exit()` (`PF_EXITING`).
    pub fn is_exiting(&self) -> bool {
        self.flags & PF_EXITING != 0
    }
}

/// The number (as in proc(5)) of a `/proc/PID/stat` field, by the name [`parse_stat`] gives it
/// in its errors; `None` for names it does not use.
pub fn stat_field_number(name: &str) -> Option<u8> {
    Some(match name {
        "pid" => 1,
        "state" => 3,
        "ppid" => 4,
        "pgrp" => 5,
        "flags" => 9,
        "num_threads" => 20,
        "starttime" => 22,
        "vsize" => 23,
        "rss" => 24,
        _ => return None,
    })
}

/// Parses `/proc/PID/stat`, the one parser of that file (the kill path's identity,
/// [`crate::killpath::parse_stat_identity`], is a view of it). The command name may contain
/// spaces and `)`, so the fields after it are found from the *last* `)` in the line.
pub fn parse_stat(text: &[u8]) -> Result<ProcStat<'_>, ParseError> {
    const FILE: &str = "stat";
    let open = memchr::memchr(b'(', text).ok_or(ParseError::new(
        FILE,
        1,
        ParseErrorKind::Malformed("no '('"),
    ))?;
    let close = memchr::memrchr(b')', text).ok_or(ParseError::new(
        FILE,
        1,
        ParseErrorKind::Malformed("no ')'"),
    ))?;
    if close < open {
        return Err(ParseError::new(
            FILE,
            1,
            ParseErrorKind::Malformed("')' before '('"),
        ));
    }
    let pid_txt = text[..open].trim_ascii();
    let pid = parse_i64(pid_txt)
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| ParseError::nan(FILE, 1, b"pid", pid_txt))?;
    let comm = &text[open + 1..close];
    // Fields after comm, numbered as in proc(5): 3 = state, 4 = ppid, 9 = flags, 20 =
    // num_threads, 22 = starttime, 23 = vsize, 24 = rss.
    let mut rest = text[close + 1..]
        .trim_ascii()
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let mut state = 0u8;
    let mut ppid = 0i32;
    let mut pgrp = 0i32;
    let mut flags = 0u32;
    let mut num_threads = 0i64;
    let mut start_time_ticks = 0u64;
    let mut vsize_bytes = 0u64;
    let mut rss_pages = 0u64;
    for field_no in 3..=24u32 {
        let f = rest.next().ok_or(ParseError::new(
            FILE,
            1,
            ParseErrorKind::MissingField(match field_no {
                3 => "state",
                4 => "ppid",
                5 => "pgrp",
                6..=9 => "flags",
                10..=20 => "num_threads",
                21 | 22 => "starttime",
                23 => "vsize",
                _ => "rss",
            }),
        ))?;
        let nan = |name: &'static str| ParseError::nan(FILE, 1, name.as_bytes(), f);
        match field_no {
            3 => {
                if f.len() != 1 {
                    return Err(nan("state"));
                }
                state = f[0];
            }
            4 => {
                ppid = parse_i64(f)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| nan("ppid"))?
            }
            5 => {
                pgrp = parse_i64(f)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| nan("pgrp"))?
            }
            9 => {
                flags = parse_u64(f)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| nan("flags"))?
            }
            20 => num_threads = parse_i64(f).ok_or_else(|| nan("num_threads"))?,
            22 => start_time_ticks = parse_u64(f).ok_or_else(|| nan("starttime"))?,
            23 => vsize_bytes = parse_u64(f).ok_or_else(|| nan("vsize"))?,
            24 => rss_pages = parse_u64(f).ok_or_else(|| nan("rss"))?,
            _ => {}
        }
    }
    Ok(ProcStat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
        flags,
        num_threads,
        start_time_ticks,
        vsize_bytes,
        rss_pages,
    })
}

/// The fields of `/proc/PID/status` oomguard uses, sizes in bytes. The memory fields are `None`
/// when the task has no mm (kernel threads, zombies): the kernel prints them only for tasks with
/// an mm, and that absence is what makes `oom_badness()` skip the task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStatus {
    pub state: u8,
    pub tgid: i32,
    pub ppid: i32,
    pub uid_real: u32,
    pub uid_effective: u32,
    /// `Kthread:` (6.x); `None` on kernels that do not print it (use the stat flags).
    pub kthread: Option<bool>,
    pub threads: Option<u64>,
    pub vm_rss_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub vm_pte_bytes: Option<u64>,
    /// `VmPMD` (4.0-4.14 only; page tables were split by level then).
    pub vm_pmd_bytes: Option<u64>,
    pub vm_swap_bytes: Option<u64>,
    /// Effective capabilities bitmask (`CapEff`).
    pub cap_eff: Option<u64>,
}

impl ProcStatus {
    /// The task has an mm (the kernel printed its memory lines).
    pub fn has_mm(&self) -> bool {
        self.vm_rss_bytes.is_some() || self.rss_anon_bytes.is_some()
    }
    /// `CAP_SYS_ADMIN` in the effective set, if `CapEff` was present.
    pub fn has_cap_sys_admin(&self) -> Option<bool> {
        self.cap_eff.map(|c| c & (1u64 << CAP_SYS_ADMIN_BIT) != 0)
    }
}

/// Parses `/proc/PID/status`. A task with an mm on a 4.5+ kernel must show `RssAnon`, `RssFile`,
/// `RssShmem`, `VmPTE` and `VmSwap`; if `VmRSS` is there but one of those is missing or garbled,
/// that is an error (a score computed without it would be silently wrong).
pub fn parse_status(text: &[u8]) -> Result<ProcStatus, ParseError> {
    const FILE: &str = "status";
    super::require_final_newline(FILE, text)?;
    let scan = scan_status(text)?;
    if !scan.seen_tgid {
        return Err(ParseError::missing(FILE, "Tgid"));
    }
    let s = scan.status;
    if s.vm_rss_bytes.is_some() {
        for (name, v) in [
            ("RssAnon", s.rss_anon_bytes),
            ("RssFile", s.rss_file_bytes),
            ("RssShmem", s.rss_shmem_bytes),
            ("VmPTE", s.vm_pte_bytes),
            ("VmSwap", s.vm_swap_bytes),
        ] {
            if v.is_none() {
                return Err(ParseError::missing(FILE, name));
            }
        }
    }
    Ok(s)
}

/// `/proc/PID/status` read without [`parse_status`]'s completeness checks (final newline, `Tgid`,
/// the full set of memory lines): what `run --guard` needs of a line it reads through a pin.
/// Malformed lines and values are still errors; the `Name:` (the comm) comes back as text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusScan<'a> {
    pub status: ProcStatus,
    /// `Name:`, the command name, as printed (escaped by the kernel).
    pub name: &'a [u8],
    seen_tgid: bool,
}

/// The line-by-line part of [`parse_status`], the one reader of that file's lines.
pub fn scan_status(text: &[u8]) -> Result<StatusScan<'_>, ParseError> {
    const FILE: &str = "status";
    let mut s = ProcStatus::default();
    let mut name: &[u8] = b"";
    let mut seen_tgid = false;
    for (n, line) in lines(text) {
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(ParseError::new(
                FILE,
                n,
                ParseErrorKind::Malformed("no ':'"),
            ));
        };
        let key = &line[..colon];
        let val = line[colon + 1..].trim_ascii();
        let kb = |v: &[u8]| -> Result<u64, ParseError> {
            let num = v.strip_suffix(b" kB").unwrap_or(v).trim_ascii();
            parse_u64(num)
                .map(kib_to_bytes)
                .ok_or_else(|| ParseError::nan(FILE, n, key, v))
        };
        let int = |v: &[u8]| -> Result<i32, ParseError> {
            parse_i64(v)
                .and_then(|x| i32::try_from(x).ok())
                .ok_or_else(|| ParseError::nan(FILE, n, key, v))
        };
        match key {
            b"Name" => name = val,
            b"State" => s.state = val.first().copied().unwrap_or(b'?'),
            b"Tgid" => {
                s.tgid = int(val)?;
                seen_tgid = true;
            }
            b"PPid" => s.ppid = int(val)?,
            b"Uid" => {
                let mut it = val
                    .split(|&b| b == b'\t' || b == b' ')
                    .filter(|p| !p.is_empty());
                let mut next = || -> Result<u32, ParseError> {
                    let f = it.next().ok_or(ParseError::new(
                        FILE,
                        n,
                        ParseErrorKind::Malformed("Uid: expected 4 ids"),
                    ))?;
                    parse_u64(f)
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| ParseError::nan(FILE, n, b"Uid", f))
                };
                s.uid_real = next()?;
                s.uid_effective = next()?;
            }
            b"Kthread" => s.kthread = Some(int(val)? != 0),
            b"Threads" => {
                s.threads = Some(parse_u64(val).ok_or_else(|| ParseError::nan(FILE, n, key, val))?)
            }
            b"VmRSS" => s.vm_rss_bytes = Some(kb(val)?),
            b"RssAnon" => s.rss_anon_bytes = Some(kb(val)?),
            b"RssFile" => s.rss_file_bytes = Some(kb(val)?),
            b"RssShmem" => s.rss_shmem_bytes = Some(kb(val)?),
            b"VmPTE" => s.vm_pte_bytes = Some(kb(val)?),
            b"VmPMD" => s.vm_pmd_bytes = Some(kb(val)?),
            b"VmSwap" => s.vm_swap_bytes = Some(kb(val)?),
            b"CapEff" => {
                let hex = std::str::from_utf8(val)
                    .ok()
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ParseError::nan(FILE, n, key, val))?;
                s.cap_eff = Some(hex);
            }
            _ => {}
        }
    }
    Ok(StatusScan {
        status: s,
        name,
        seen_tgid,
    })
}

/// The range of `oom_score_adj` (`OOM_SCORE_ADJ_MIN`..`OOM_SCORE_ADJ_MAX`).
pub const OOM_SCORE_ADJ_MIN: i16 = -1000;
/// See [`OOM_SCORE_ADJ_MIN`].
pub const OOM_SCORE_ADJ_MAX: i16 = 1000;

/// Parses `/proc/PID/oom_score_adj` (-1000..=1000).
pub fn parse_oom_score_adj(text: &[u8]) -> Result<i16, ParseError> {
    let v = super::parse_single_i64("oom_score_adj", text)?;
    if !(i64::from(OOM_SCORE_ADJ_MIN)..=i64::from(OOM_SCORE_ADJ_MAX)).contains(&v) {
        return Err(ParseError::new(
            "oom_score_adj",
            1,
            ParseErrorKind::OutOfRange("oom_score_adj outside -1000..=1000"),
        ));
    }
    Ok(v as i16)
}

/// Parses `/proc/PID/oom_score` (0..=2000 on 5.9+, 0..=1000 before).
pub fn parse_oom_score(text: &[u8]) -> Result<u64, ParseError> {
    super::parse_single_u64("oom_score", text)
}

/// Renders `/proc/PID/cmdline` (NUL-separated arguments) for display: arguments joined by
/// spaces, trailing NULs dropped. Empty for kernel threads and zombies.
pub fn cmdline_display(raw: &[u8]) -> String {
    let trimmed = match raw.iter().rposition(|&b| b != 0) {
        Some(end) => &raw[..=end],
        None => return String::new(),
    };
    let joined: Vec<u8> = trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    String::from_utf8_lossy(&joined).into_owned()
}

/// One line of `/proc/PID/cgroup`: `hierarchy-ID:controller-list:path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLine<'a> {
    pub hierarchy_id: u32,
    /// Comma-separated controllers (`memory`, `cpu,cpuacct`, `name=systemd`); empty for v2.
    pub controllers: &'a str,
    pub path: &'a str,
}

impl CgroupLine<'_> {
    /// The unified (v2) hierarchy's line: `0::/path`.
    pub fn is_v2(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }
    /// This v1 line carries `controller`.
    pub fn has_controller(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }
}

/// Parses `/proc/PID/cgroup` into its lines, the one parser of that file. The path may contain
/// `:`, so only the first two colons split.
pub fn parse_cgroup(text: &[u8]) -> Result<Vec<CgroupLine<'_>>, ParseError> {
    const FILE: &str = "cgroup";
    let text = std::str::from_utf8(text)
        .map_err(|_| ParseError::new(FILE, 0, ParseErrorKind::Malformed("not UTF-8")))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, line)| parse_cgroup_line(line, i + 1))
        .collect()
}

/// The well-formed lines of `/proc/PID/cgroup` text, skipping any other: the tolerant form of
/// [`parse_cgroup`] for the kill path, which looks for one hierarchy's line and must not fail
/// because another line is odd.
pub fn cgroup_lines(text: &str) -> impl Iterator<Item = CgroupLine<'_>> {
    text.lines()
        .filter_map(|line| parse_cgroup_line(line, 0).ok())
}

/// One line of `/proc/PID/cgroup`; `n` is its 1-based number for the error.
fn parse_cgroup_line(line: &str, n: usize) -> Result<CgroupLine<'_>, ParseError> {
    const FILE: &str = "cgroup";
    let mut parts = line.splitn(3, ':');
    let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::new(
            FILE,
            n,
            ParseErrorKind::Malformed("expected id:controllers:path"),
        ));
    };
    let hierarchy_id = id
        .parse::<u32>()
        .map_err(|_| ParseError::nan(FILE, n, b"hierarchy-ID", id.as_bytes()))?;
    Ok(CgroupLine {
        hierarchy_id,
        controllers: ctl,
        path,
    })
}

/// The memory cgroup path of a process: the v1 `memory` line if there is one (the memory
/// controller is on v1 on hybrid hosts), else the v2 `0::` line.
pub fn memory_cgroup_path<'a>(lines: &[CgroupLine<'a>]) -> Option<(CgroupVersion, &'a str)> {
    if let Some(l) = lines.iter().find(|l| l.has_controller("memory")) {
        return Some((CgroupVersion::V1, l.path));
    }
    lines
        .iter()
        .find(|l| l.is_v2())
        .map(|l| (CgroupVersion::V2, l.path))
}

/// Which cgroup hierarchy a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V2 => "cgroup v2",
            CgroupVersion::V1 => "cgroup v1",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_real() {
        let t = include_bytes!("../../tests/fixtures/host/pid-stat-6.18.txt");
        let s = parse_stat(t).unwrap();
        assert_eq!(s.comm, b"sh");
        assert_eq!(s.state, b'S');
        assert!(!s.is_kernel_thread());
        assert!(s.rss_pages > 0);
    }

    #[test]
    fn stat_comm_with_parens_and_spaces() {
        let t = include_bytes!("../../tests/fixtures/host/pid-stat-comm-paren-6.18.txt");
        let s = parse_stat(t).unwrap();
        assert_eq!(s.comm, b"we) ird (x");
        assert_eq!(s.state, b'S');
        assert_eq!(s.flags, 4_194_304);
        assert_eq!(s.start_time_ticks, 27764);
        assert_eq!(s.rss_pages, 405);
    }

    #[test]
    fn stat_kthread() {
        let t = include_bytes!("../../tests/fixtures/host/kthread-stat-6.18.txt");
        let s = parse_stat(t).unwrap();
        assert_eq!(s.pid, 2);
        assert!(s.is_kernel_thread());
        let st = parse_status(include_bytes!(
            "../../tests/fixtures/host/kthread-status-6.18.txt"
        ))
        .unwrap();
        assert_eq!(st.kthread, Some(true));
        assert!(!st.has_mm());
    }

    #[test]
    fn stat_truncated_and_garbage() {
        assert!(parse_stat(b"").is_err());
        assert!(parse_stat(b"12 (x) S 1 1").is_err());
        let e = parse_stat(b"12 (x) S one 1 1 1 1 0 0 0 0 0 0 0 0 0 0 1 0 5 100 3").unwrap_err();
        assert!(e.to_string().contains("ppid"), "{e}");
        assert!(parse_stat(b"x (x) S 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 1 0 5 100 3").is_err());
    }

    #[test]
    fn status_real() {
        let t = include_bytes!("../../tests/fixtures/host/pid-status-6.18.txt");
        let s = parse_status(t).unwrap();
        assert!(s.has_mm());
        assert_eq!(s.kthread, Some(false));
        assert_eq!(s.uid_real, 0);
        assert_eq!(s.has_cap_sys_admin(), Some(true));
        assert!(s.vm_pte_bytes.is_some());
        assert_eq!(s.vm_swap_bytes, Some(0));
    }

    #[test]
    fn status_missing_rss_line_is_an_error_not_zero() {
        let t = include_str!("../../tests/fixtures/host/pid-status-6.18.txt");
        let cut: String = t
            .lines()
            .filter(|l| !l.starts_with("VmSwap"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = parse_status(cut.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::MissingField("VmSwap"));
        let bad = t.replace("VmPTE:\t", "VmPTE:\tx");
        assert!(parse_status(bad.as_bytes()).is_err());
    }

    #[test]
    fn adj_and_score() {
        assert_eq!(parse_oom_score_adj(b"-1000\n"), Ok(-1000));
        assert_eq!(parse_oom_score_adj(b"1000\n"), Ok(1000));
        assert!(parse_oom_score_adj(b"1001\n").is_err());
        assert!(parse_oom_score_adj(b"\n").is_err());
        assert_eq!(parse_oom_score(b"666\n"), Ok(666));
    }

    #[test]
    fn cmdline() {
        assert_eq!(cmdline_display(b"sleep\x0030\x00"), "sleep 30");
        assert_eq!(cmdline_display(b""), "");
    }

    #[test]
    fn cgroup_hybrid_and_v2() {
        let t = include_bytes!("../../tests/fixtures/host/pid-cgroup-v1-hybrid-6.18.txt");
        let l = parse_cgroup(t).unwrap();
        let (v, p) = memory_cgroup_path(&l).unwrap();
        assert_eq!(v, CgroupVersion::V1);
        assert!(p.starts_with("/process_api/"));
        let l = parse_cgroup(b"0::/system.slice/ssh.service\n").unwrap();
        assert_eq!(
            memory_cgroup_path(&l),
            Some((CgroupVersion::V2, "/system.slice/ssh.service"))
        );
        let l = parse_cgroup(b"0::/a:b\n").unwrap();
        assert_eq!(l[0].path, "/a:b");
        assert!(parse_cgroup(b"x::/\n").is_err());
        assert!(parse_cgroup(b"0/\n").is_err());
    }
}
