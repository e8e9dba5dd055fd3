//! Pure parsers for the few small kernel files the kill path reads right before it acts:
//! the identity fields of `/proc/PID/stat`, pid lists (`cgroup.procs`, `tasks`),
//! `memory.oom_control` (cgroup v1), the lines of `/proc/PID/cgroup` and `CapEff` in
//! `/proc/PID/status`.
//!
//! They are deliberately minimal: the kill path only needs identity (pid + start time), process
//! group, membership and a few counters. The full per-process snapshot parser belongs to the
//! scanner; if both exist after a merge, the scanner's `/proc/PID/stat` parser should absorb
//! [`parse_stat_identity`]. No I/O here; `oomguard::sys` reads the files.

/// The identity-relevant fields of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatIdentity {
    /// Field 1.
    pub pid: i32,
    /// Field 3, e.g. `R`, `S`, `D`, `Z`.
    pub state: u8,
    /// Field 4.
    pub ppid: i32,
    /// Field 5: the process group id.
    pub pgrp: i32,
    /// Field 22: start time since boot in clock ticks (`_SC_CLK_TCK`). With the pid it names a
    /// process uniquely for the lifetime of the boot.
    pub start_time_ticks: u64,
}

/// Why `/proc/PID/stat` text could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatParseError {
    /// No `(` … `)` around the command name.
    NoComm,
    /// A needed field is missing or not a number; the value is its 1-based field number.
    Field(u8),
}

impl std::fmt::Display for StatParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoComm => write!(f, "stat has no '(comm)'"),
            Self::Field(n) => write!(f, "stat field {n} is missing or not a number"),
        }
    }
}

impl std::error::Error for StatParseError {}

fn num<T: std::str::FromStr>(field: Option<&str>, n: u8) -> Result<T, StatParseError> {
    field
        .and_then(|s| s.parse().ok())
        .ok_or(StatParseError::Field(n))
}

/// Parses the identity fields of `/proc/PID/stat`.
///
/// The command name (field 2) may contain spaces and `)`, so fields from 3 on are split after
/// the LAST `)` of the text, never by counting spaces from the start.
pub fn parse_stat_identity(text: &[u8]) -> Result<StatIdentity, StatParseError> {
    let open = memchr::memchr(b'(', text).ok_or(StatParseError::NoComm)?;
    let close = memchr::memrchr(b')', text).ok_or(StatParseError::NoComm)?;
    if close < open {
        return Err(StatParseError::NoComm);
    }
    let head = std::str::from_utf8(&text[..open]).map_err(|_| StatParseError::Field(1))?;
    let pid = num(Some(head.trim()), 1)?;
    let tail = std::str::from_utf8(&text[close + 1..]).map_err(|_| StatParseError::Field(3))?;
    // `fields[0]` is field 3 (state), so field N is `fields[N - 3]`.
    let mut fields = tail.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|s| s.bytes().next())
        .ok_or(StatParseError::Field(3))?;
    let ppid = num(fields.next(), 4)?;
    let pgrp = num(fields.next(), 5)?;
    // Skip fields 6..=21 (16 fields) to reach field 22.
    let start_time_ticks = num(fields.nth(16), 22)?;
    Ok(StatIdentity {
        pid,
        state,
        ppid,
        pgrp,
        start_time_ticks,
    })
}

/// Parses a newline-separated pid list (`cgroup.procs`, `tasks`), skipping anything that is not
/// a positive pid (a pid from another pid namespace shows as 0).
pub fn parse_pid_list(text: &[u8]) -> Vec<i32> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok()?.trim().parse::<i32>().ok())
        .filter(|&pid| pid > 0)
        .collect()
}

/// Which hierarchy of `/proc/PID/cgroup` to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy<'a> {
    /// The unified (v2) hierarchy: the `0::PATH` line.
    Unified,
    /// A v1 hierarchy carrying this controller, e.g. `memory`.
    V1Controller(&'a str),
}

/// Returns the cgroup path of a process in one hierarchy from `/proc/PID/cgroup` text.
pub fn cgroup_path<'t>(text: &'t str, hierarchy: Hierarchy<'_>) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let hit = match hierarchy {
            Hierarchy::Unified => id == "0" && controllers.is_empty(),
            Hierarchy::V1Controller(name) => controllers.split(',').any(|c| c == name),
        };
        hit.then_some(path)
    })
}

/// True when cgroup `path` is `base` or lies below it.
pub fn cgroup_is_within(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        return path.starts_with('/');
    }
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Capability number of CAP_SYS_RESOURCE (`linux/capability.h`).
pub const CAP_SYS_RESOURCE: u32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_identity_plain() {
        // Real /proc/PID/stat of `sleep 1000`, kernel 6.18.
        let text = b"4242 (sleep) S 4100 4242 4100 34816 4242 4194304 99 0 0 0 0 0 0 0 20 0 1 0 8812345 5722112 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let id = parse_stat_identity(text).unwrap();
        assert_eq!(
            id,
            StatIdentity {
                pid: 4242,
                state: b'S',
                ppid: 4100,
                pgrp: 4242,
                start_time_ticks: 8_812_345
            }
        );
    }

    #[test]
    fn stat_identity_hostile_comm() {
        // comm may contain ") " and digits; only the LAST ')' ends it.
        let text =
            b"77 (a) R 1 2 (x) S 5 6) Z 9 33 9 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0\n";
        let id = parse_stat_identity(text).unwrap();
        assert_eq!(id.pid, 77);
        assert_eq!(id.state, b'Z');
        assert_eq!(id.ppid, 9);
        assert_eq!(id.pgrp, 33);
        assert_eq!(id.start_time_ticks, 123_456);
    }

    #[test]
    fn stat_identity_truncated() {
        assert_eq!(
            parse_stat_identity(b"1 (init) S 0 1 1 0"),
            Err(StatParseError::Field(22))
        );
        assert_eq!(
            parse_stat_identity(b"1 init S"),
            Err(StatParseError::NoComm)
        );
    }

    #[test]
    fn pid_lists() {
        assert_eq!(parse_pid_list(b"12\n13\n\n0\nx\n 14 \n"), vec![12, 13, 14]);
        assert!(parse_pid_list(b"").is_empty());
    }

    /// `memory.oom_control` has one parser, `host::cgroup::parse_v1_oom_control`.
    #[test]
    fn oom_control() {
        use crate::host::cgroup::{parse_v1_oom_control, OomControlV1 as OomControl};
        let parse_oom_control = |t: &str| parse_v1_oom_control(t.as_bytes()).unwrap();
        let oc = parse_oom_control("oom_kill_disable 0\nunder_oom 1\noom_kill 3\n");
        assert_eq!(
            oc,
            OomControl {
                oom_kill_disable: false,
                under_oom: true,
                oom_kill: Some(3)
            }
        );
        assert_eq!(parse_oom_control("oom_kill_disable 1\n").oom_kill, None);
    }

    #[test]
    fn cgroup_lines() {
        let text = "9:name=systemd:/\n4:memory:/process_api/832d\n1:cpu,cpuacct:/a\n0::/ci/x\n";
        assert_eq!(
            cgroup_path(text, Hierarchy::V1Controller("memory")),
            Some("/process_api/832d")
        );
        assert_eq!(
            cgroup_path(text, Hierarchy::V1Controller("cpuacct")),
            Some("/a")
        );
        assert_eq!(cgroup_path(text, Hierarchy::Unified), Some("/ci/x"));
        assert_eq!(cgroup_path("4:memory:/m\n", Hierarchy::Unified), None);
    }

    #[test]
    fn within() {
        assert!(cgroup_is_within("/a/b", "/a"));
        assert!(cgroup_is_within("/a", "/a/"));
        assert!(!cgroup_is_within("/ab", "/a"));
        assert!(cgroup_is_within("/anything", "/"));
    }

    /// `CapEff` is read by the one parser of `/proc/PID/status`, `host::process::parse_status`.
    #[test]
    fn cap_eff() {
        let status = "Name:\tx\nTgid:\t1\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n";
        let caps = crate::host::process::parse_status(status.as_bytes())
            .unwrap()
            .cap_eff
            .unwrap();
        assert_eq!(caps & (1 << CAP_SYS_RESOURCE), 0);
        assert_ne!(caps & (1 << 21), 0);
    }
}
