//! Memory-cgroup files, v1 (`memory.usage_in_bytes`, `limit_in_bytes`, `memsw.*`, `oom_control`,
//! `stat`, `failcnt`) and v2 (`memory.current`, `max`, `high`, `low`, `min`, `swap.current`,
//! `swap.max`, `events`, `events.local`, `stat`, `pressure`, `oom.group`).

use super::{for_each_kv, parse_single_u64, ParseError, ParseErrorKind};
use serde::Serialize;

/// v1's "no limit": `PAGE_COUNTER_MAX * PAGE_SIZE` reads back as 9223372036854771712 on 64-bit
/// with 4 KiB pages. Anything at or above 2^62 is treated as unlimited.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// A memory limit: a byte count, or none (`max` in v2, the page-counter maximum in v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Limit {
    Bytes(u64),
    Unlimited,
}

impl Limit {
    /// The limit in bytes, `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Bytes(b) => Some(b),
            Limit::Unlimited => None,
        }
    }
}

/// Parses a v1 `*limit_in_bytes` file.
pub fn parse_v1_limit(file: &'static str, text: &[u8]) -> Result<Limit, ParseError> {
    let v = parse_single_u64(file, text)?;
    Ok(if v >= V1_UNLIMITED_FLOOR {
        Limit::Unlimited
    } else {
        Limit::Bytes(v)
    })
}

/// Parses a v2 `memory.max` / `high` / `swap.max` file: a byte count or `max`.
pub fn parse_v2_limit(file: &'static str, text: &[u8]) -> Result<Limit, ParseError> {
    if text.trim_ascii() == b"max" {
        return Ok(Limit::Unlimited);
    }
    parse_single_u64(file, text).map(Limit::Bytes)
}

/// Parses a single byte count (`memory.usage_in_bytes`, `memory.current`, `memory.low`,
/// `memory.min`, `memory.swap.current`, `memory.failcnt`, `memory.swappiness`).
pub fn parse_counter(file: &'static str, text: &[u8]) -> Result<u64, ParseError> {
    parse_single_u64(file, text)
}

/// v1 `memory.oom_control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OomControlV1 {
    pub oom_kill_disable: bool,
    pub under_oom: bool,
    /// OOM kills in this memcg (4.13+).
    pub oom_kill: Option<u64>,
}

/// Parses v1 `memory.oom_control`.
pub fn parse_v1_oom_control(text: &[u8]) -> Result<OomControlV1, ParseError> {
    const FILE: &str = "memory.oom_control";
    let mut c = OomControlV1::default();
    let mut disable = None;
    for_each_kv(FILE, text, |k, v| match k {
        b"oom_kill_disable" => disable = Some(v != 0),
        b"under_oom" => c.under_oom = v != 0,
        b"oom_kill" => c.oom_kill = Some(v),
        _ => {}
    })?;
    c.oom_kill_disable = disable.ok_or(ParseError::missing(FILE, "oom_kill_disable"))?;
    Ok(c)
}

/// v2 `memory.events` / `memory.events.local`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEventsV2 {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: Option<u64>,
    pub oom_group_kill: Option<u64>,
}

/// Parses v2 `memory.events` or `memory.events.local` (`file` names which, for errors).
pub fn parse_v2_events(file: &'static str, text: &[u8]) -> Result<MemoryEventsV2, ParseError> {
    let mut e = MemoryEventsV2::default();
    let mut have_oom = false;
    for_each_kv(file, text, |k, v| match k {
        b"low" => e.low = v,
        b"high" => e.high = v,
        b"max" => e.max = v,
        b"oom" => {
            e.oom = v;
            have_oom = true;
        }
        b"oom_kill" => e.oom_kill = Some(v),
        b"oom_group_kill" => e.oom_group_kill = Some(v),
        _ => {}
    })?;
    if !have_oom {
        return Err(ParseError::missing(file, "oom"));
    }
    Ok(e)
}

/// The `memory.stat` fields oomguard uses (v1 names in bytes; v2 names in bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStat {
    /// v2 `anon` / v1 `rss`.
    pub anon_bytes: Option<u64>,
    /// v2 `file` / v1 `cache`.
    pub file_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    /// v1 `swap`.
    pub swap_bytes: Option<u64>,
    /// v1 `hierarchical_memory_limit`: the effective limit including ancestors.
    pub hierarchical_memory_limit_bytes: Option<u64>,
    /// v1 `hierarchical_memsw_limit`.
    pub hierarchical_memsw_limit_bytes: Option<u64>,
    /// v1 `total_rss` (hierarchical).
    pub total_anon_bytes: Option<u64>,
    pub pgmajfault: Option<u64>,
    /// `inactive_file` (this cgroup; v2 is hierarchical already): page cache the kernel reclaims
    /// first, so "usage minus inactive file" is the working set that decides an OOM.
    pub inactive_file_bytes: Option<u64>,
    /// v1 `total_inactive_file` (hierarchical).
    pub total_inactive_file_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_anon_bytes: Option<u64>,
    pub active_anon_bytes: Option<u64>,
    /// v1 `total_active_file`, `total_inactive_anon`, `total_active_anon` (hierarchical).
    pub total_active_file_bytes: Option<u64>,
    pub total_inactive_anon_bytes: Option<u64>,
    pub total_active_anon_bytes: Option<u64>,
    /// `workingset_refault_file` (v2 5.9+, v1 5.9+), or the older single `workingset_refault`
    /// (v2 4.20-5.8, file pages only). A count of pages, not bytes: the kernel exports the
    /// workingset counters as events even in v1, whose other fields are bytes
    /// (`memcg_page_state_output_unit`, mm/memcontrol.c).
    pub workingset_refault_file: Option<u64>,
    /// `workingset_refault_anon` (5.9+), pages.
    pub workingset_refault_anon: Option<u64>,
    /// v1 `total_workingset_refault_file` / `total_workingset_refault_anon` (hierarchical).
    pub total_workingset_refault_file: Option<u64>,
    pub total_workingset_refault_anon: Option<u64>,
    /// v1 `total_pgmajfault` (hierarchical; v2 `pgmajfault` is hierarchical already).
    pub total_pgmajfault: Option<u64>,
}

/// Parses `memory.stat` of either hierarchy.
pub fn parse_memory_stat(text: &[u8]) -> Result<MemoryStat, ParseError> {
    let mut s = MemoryStat::default();
    for_each_kv("memory.stat", text, |k, v| {
        let slot = match k {
            b"anon" | b"rss" => &mut s.anon_bytes,
            b"file" | b"cache" => &mut s.file_bytes,
            b"shmem" => &mut s.shmem_bytes,
            b"swap" => &mut s.swap_bytes,
            b"hierarchical_memory_limit" => &mut s.hierarchical_memory_limit_bytes,
            b"hierarchical_memsw_limit" => &mut s.hierarchical_memsw_limit_bytes,
            b"total_rss" => &mut s.total_anon_bytes,
            b"pgmajfault" => &mut s.pgmajfault,
            b"inactive_file" => &mut s.inactive_file_bytes,
            b"total_inactive_file" => &mut s.total_inactive_file_bytes,
            b"active_file" => &mut s.active_file_bytes,
            b"inactive_anon" => &mut s.inactive_anon_bytes,
            b"active_anon" => &mut s.active_anon_bytes,
            b"total_active_file" => &mut s.total_active_file_bytes,
            b"total_inactive_anon" => &mut s.total_inactive_anon_bytes,
            b"total_active_anon" => &mut s.total_active_anon_bytes,
            b"workingset_refault_file" | b"workingset_refault" => &mut s.workingset_refault_file,
            b"workingset_refault_anon" => &mut s.workingset_refault_anon,
            b"total_workingset_refault_file" => &mut s.total_workingset_refault_file,
            b"total_workingset_refault_anon" => &mut s.total_workingset_refault_anon,
            b"total_pgmajfault" => &mut s.total_pgmajfault,
            _ => return,
        };
        *slot = Some(v);
    })?;
    Ok(s)
}

/// Parses v2 `memory.oom.group` (0 or 1).
pub fn parse_v2_oom_group(text: &[u8]) -> Result<bool, ParseError> {
    match parse_single_u64("memory.oom.group", text)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ParseError::new(
            "memory.oom.group",
            1,
            ParseErrorKind::OutOfRange("expected 0 or 1"),
        )),
    }
}

/// The hierarchy path (`/app`, as `/proc/PID/cgroup` prints it) of a path a user gave as a
/// directory under one of the hierarchies' mount points (`/sys/fs/cgroup/memory/app`), `None`
/// when `given` is under none of them. The longest mount that contains `given` wins (the v2
/// mount `/sys/fs/cgroup` contains the v1 ones). A path equal to a mount is its root, `/`.
pub fn strip_mount(given: &str, mounts: &[&str]) -> Option<String> {
    let given = given.trim_end_matches('/');
    mounts
        .iter()
        .map(|m| m.trim_end_matches('/'))
        .filter(|m| !m.is_empty())
        .filter_map(|m| {
            let rest = given.strip_prefix(m)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((m.len(), rest))
        })
        .max_by_key(|&(len, _)| len)
        .map(|(_, rest)| {
            if rest.is_empty() {
                "/".to_owned()
            } else {
                rest.to_owned()
            }
        })
}

/// The name among `names` closest to `want` by edit distance (ties: the first), for "did you
/// mean" messages; `None` when there are no names.
pub fn closest_name<'a>(want: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().min_by_key(|n| edit_distance(want, n))
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fx {
        ($n:literal) => {
            include_bytes!(concat!("../../tests/fixtures/host/", $n))
        };
    }

    #[test]
    fn v1_real_6_18() {
        assert_eq!(
            parse_v1_limit(
                "memory.limit_in_bytes",
                fx!("v1-memory.limit_in_bytes-6.18.txt")
            ),
            Ok(Limit::Unlimited)
        );
        assert!(parse_counter(
            "memory.usage_in_bytes",
            fx!("v1-memory.usage_in_bytes-6.18.txt")
        )
        .is_ok());
        assert!(parse_counter("memory.failcnt", fx!("v1-memory.failcnt-6.18.txt")).is_ok());
        let c = parse_v1_oom_control(fx!("v1-memory.oom_control-6.18.txt")).unwrap();
        assert_eq!(
            c,
            OomControlV1 {
                oom_kill_disable: false,
                under_oom: false,
                oom_kill: Some(0)
            }
        );
        let s = parse_memory_stat(fx!("v1-memory.stat-6.18.txt")).unwrap();
        assert!(s.anon_bytes.is_some());
        assert_eq!(
            s.hierarchical_memory_limit_bytes,
            Some(9_223_372_036_854_771_712)
        );
        // The thrash detector's inputs, read by hand from that file.
        assert_eq!(s.workingset_refault_file, Some(968));
        assert_eq!(s.workingset_refault_anon, Some(0));
        assert_eq!(s.total_workingset_refault_file, Some(968));
        assert_eq!(s.active_file_bytes, Some(1_064_960));
        assert_eq!(s.inactive_file_bytes, Some(2_777_088));
        assert_eq!(s.total_active_anon_bytes, Some(12_288));
        assert_eq!(s.total_pgmajfault, Some(25));
        assert_eq!(
            parse_v1_limit("x", b"104857600\n"),
            Ok(Limit::Bytes(104_857_600))
        );
    }

    #[test]
    fn v1_oom_control_pre_4_13_has_no_oom_kill() {
        let c = parse_v1_oom_control(b"oom_kill_disable 1\nunder_oom 0\n").unwrap();
        assert!(c.oom_kill_disable);
        assert_eq!(c.oom_kill, None);
        assert!(parse_v1_oom_control(b"under_oom 0\n").is_err());
        assert!(parse_v1_oom_control(b"oom_kill_disable\n").is_err());
    }

    #[test]
    fn v2_files() {
        // Formats as printed by mm/memcontrol.c (6.x): memory.max "max\n" or a number.
        assert_eq!(parse_v2_limit("memory.max", b"max\n"), Ok(Limit::Unlimited));
        assert_eq!(
            parse_v2_limit("memory.max", b"268435456\n"),
            Ok(Limit::Bytes(268_435_456))
        );
        assert!(parse_v2_limit("memory.max", b"maximum\n").is_err());
        let e = parse_v2_events(
            "memory.events",
            b"low 0\nhigh 12\nmax 40\noom 3\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!((e.high, e.max, e.oom, e.oom_kill), (12, 40, 3, Some(2)));
        // 4.19-era memory.events had no oom_group_kill.
        let e = parse_v2_events(
            "memory.events.local",
            b"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        )
        .unwrap();
        assert_eq!(e.oom_group_kill, None);
        assert!(parse_v2_events("memory.events", b"low 0\n").is_err());
        assert_eq!(parse_v2_oom_group(b"1\n"), Ok(true));
        assert!(parse_v2_oom_group(b"2\n").is_err());
        let s = parse_memory_stat(b"anon 1048576\nfile 2097152\nkernel 0\nshmem 0\n").unwrap();
        assert_eq!(s.anon_bytes, Some(1_048_576));
        // v2 6.x memory.stat lines the thrash detector reads (names from
        // Documentation/admin-guide/cgroup-v2.rst), and 5.4's single workingset_refault.
        let s = parse_memory_stat(
            b"anon 0\nfile 4096\ninactive_anon 0\nactive_anon 8192\ninactive_file 4096\nactive_file 0\nworkingset_refault_anon 3\nworkingset_refault_file 11\npgmajfault 2\n",
        )
        .unwrap();
        assert_eq!(
            (
                s.workingset_refault_file,
                s.workingset_refault_anon,
                s.active_anon_bytes
            ),
            (Some(11), Some(3), Some(8192))
        );
        let s = parse_memory_stat(b"anon 0\nworkingset_refault 5\n").unwrap();
        assert_eq!(s.workingset_refault_file, Some(5));
        let p = crate::host::system::parse_pressure(fx!("v2-memory.pressure-6.18.txt")).unwrap();
        assert!(p.full.is_some());
    }

    #[test]
    fn filesystem_paths_become_hierarchy_paths() {
        let mounts = [
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/unified",
        ];
        assert_eq!(
            strip_mount("/sys/fs/cgroup/memory/app", &mounts).as_deref(),
            Some("/app")
        );
        assert_eq!(
            strip_mount("/sys/fs/cgroup/memory/", &mounts).as_deref(),
            Some("/")
        );
        assert_eq!(
            strip_mount("/sys/fs/cgroup/system.slice/a.service", &mounts).as_deref(),
            Some("/system.slice/a.service")
        );
        // Not under a mount, or only a common prefix: kept as given.
        assert_eq!(strip_mount("/app", &mounts), None);
        assert_eq!(strip_mount("/sys/fs/cgroupx/app", &mounts), None);
        assert_eq!(
            closest_name("ap", ["system.slice", "app", "user.slice"]),
            Some("app")
        );
        assert_eq!(closest_name("x", std::iter::empty()), None);
    }
}
