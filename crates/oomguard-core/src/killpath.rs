//! The kill path's view of the few small kernel files it reads right before it acts: the
//! identity fields of `/proc/PID/stat`, pid lists (`cgroup.procs`, `tasks`: parsed only here),
//! one hierarchy's line of `/proc/PID/cgroup` and cgroup membership.
//!
//! They are views for the kill path, which only needs identity (pid + start time), process
//! group, membership and a few counters: each kernel file has one parser, in `host::process`
//! (`stat`, `status`, `cgroup`) and `host::cgroup` (`memory.oom_control`), and the functions
//! here call it. No I/O here; `oomguard::act` reads the files.

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

/// The identity fields of `/proc/PID/stat`, read by the one parser of that file,
/// [`crate::host::process::parse_stat`].
///
/// The command name (field 2) may contain spaces and `)`, so fields from 3 on are split after
/// the LAST `)` of the text, never by counting spaces from the start. An error names the first
/// field the parser needed and did not find (a truncated file misses field 22 first, since
/// identity uses none of fields 6-21).
pub fn parse_stat_identity(text: &[u8]) -> Result<StatIdentity, StatParseError> {
    use crate::host::{process, ParseErrorKind};
    let st = process::parse_stat(text).map_err(|e| match e.kind {
        ParseErrorKind::Malformed(_) => StatParseError::NoComm,
        ParseErrorKind::MissingField(name) => {
            match process::stat_field_number(name).unwrap_or(22) {
                n @ (0..=5 | 23..) => StatParseError::Field(n),
                _ => StatParseError::Field(22),
            }
        }
        ParseErrorKind::NotANumber { field, .. } => {
            StatParseError::Field(process::stat_field_number(&field).unwrap_or(1))
        }
        ParseErrorKind::OutOfRange(_) => StatParseError::Field(1),
    })?;
    Ok(StatIdentity {
        pid: st.pid,
        state: st.state,
        ppid: st.ppid,
        pgrp: st.pgrp,
        start_time_ticks: st.start_time_ticks,
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

/// Returns the cgroup path of a process in one hierarchy from `/proc/PID/cgroup` text, read by
/// the one parser of that file ([`crate::host::process::cgroup_lines`]; odd lines are skipped).
pub fn cgroup_path<'t>(text: &'t str, hierarchy: Hierarchy<'_>) -> Option<&'t str> {
    crate::host::process::cgroup_lines(text)
        .find(|l| match hierarchy {
            Hierarchy::Unified => l.is_v2(),
            Hierarchy::V1Controller(name) => l.has_controller(name),
        })
        .map(|l| l.path)
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
