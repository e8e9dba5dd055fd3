//! One kernel message (prefixes already stripped) → what part of an OOM report it is.
//!
//! Patterns are *searched*, not anchored, because some transports leave junk in front of the
//! message. Each parser takes the exact printk formats of every kernel era from
//! `../shared/research/kernel-oom-formats.md` (§2) and is tolerant of the breakage that logs
//! add: missing spaces where lines were rejoined, `kB` suffixes, and comms that contain spaces,
//! parentheses or commas (a comm is attacker-controlled: never trust its shape).

use super::meminfo::{self, MemLine};
use super::prefix::{lead_i64, lead_u64};

/// A classified kernel message.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// `comm invoked oom-killer: gfp_mask=..., order=N, oom_score_adj=N`.
    Header(Header<'a>),
    /// ≤4.19: `comm cpuset=NAME mems_allowed=LIST`.
    Cpuset {
        cpuset: &'a str,
        mems_allowed: &'a str,
    },
    /// 5.0+: `oom-kill:constraint=...,task=comm,pid=N,uid=N`.
    Summary(Summary<'a>),
    /// ≤5.0: `MSG: Kill process N (comm) score S or sacrifice child` (and older forms).
    Select(Select<'a>),
    /// `[MSG: ]Killed process N (comm) total-vm:...`.
    Killed(Killed<'a>),
    /// ≤4.19 memcg: `Task in X killed as a result of limit of Y` (either half may stand alone).
    TaskIn {
        task_memcg: Option<&'a str>,
        oom_memcg: Option<&'a str>,
    },
    /// `memory: usage NkB, limit NkB, failcnt N` and its `memory+swap:`/`swap:`/`kmem:` siblings.
    Usage {
        counter: Counter,
        usage_kb: u64,
        limit_kb: u64,
        failcnt: Option<u64>,
    },
    /// `Tasks in X are going to be killed due to memory.oom.group set`.
    GroupKill { memcg: &'a str },
    /// `oom_reaper: reaped process N (comm), now anon-rss:..`.
    Reaped(Reaper<'a>),
    /// `Tasks state (memory values in pages):` (4.19+), printed before the column header.
    TasksState,
    /// The task dump's column header `[ pid ]   uid  tgid total_vm ... name`.
    TaskColumns(Vec<Column>),
    /// A task dump row, still unparsed: its columns depend on the header seen before it.
    TaskRow(&'a str),
    /// `Out of memory and no killable processes...`, as printed.
    NoKillable(&'a str),
    /// `Kernel panic - not syncing: REASON` about memory; the reason as printed.
    Panic(&'a str),
    /// `Kernel panic - not syncing: Attempted to kill init!`: an OOM consequence only when the
    /// OOM killer has just killed pid 1 (a memory.oom.group kill of a container's init).
    InitPanic(&'a str),
    /// `Mem-Info:`, the start of the global memory dump.
    MemInfo,
    /// A line of the Mem-Info block or of the memcg stat dump (see [`super::meminfo`]).
    Mem(MemLine<'a>),
}

/// The OOM header line.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    /// Empty on ≤2.6.17, which printed no comm.
    pub trigger_comm: &'a str,
    pub gfp_mask: Option<&'a str>,
    pub nodemask: Option<&'a str>,
    pub order: Option<i64>,
    /// `oom_score_adj=`, or on old kernels `oom_adj=`/`oomkilladj=` as printed.
    pub trigger_adj: Option<i64>,
}

/// The 5.0+ summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary<'a> {
    pub constraint: Option<&'a str>,
    pub nodemask: Option<&'a str>,
    pub cpuset: Option<&'a str>,
    pub mems_allowed: Option<&'a str>,
    pub oom_memcg: Option<&'a str>,
    pub global: bool,
    pub task_memcg: Option<&'a str>,
    pub comm: Option<&'a str>,
    pub pid: Option<i64>,
    pub uid: Option<u64>,
}

/// The pre-5.1 selection line.
#[derive(Debug, Clone, PartialEq)]
pub struct Select<'a> {
    pub message: Option<&'a str>,
    pub pid: i64,
    pub comm: &'a str,
    pub score: Option<i64>,
}

/// The kill line.
#[derive(Debug, Clone, PartialEq)]
pub struct Killed<'a> {
    pub message: Option<&'a str>,
    pub pid: i64,
    pub comm: &'a str,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub uid: Option<u64>,
    pub oom_score_adj: Option<i64>,
}

/// The oom_reaper's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaper<'a> {
    pub pid: i64,
    pub comm: &'a str,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
}

/// Which memcg counter a usage line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Memory,
    MemorySwap,
    Swap,
    Kmem,
}

/// A task dump column, by its header name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Uid,
    Tgid,
    TotalVm,
    Rss,
    RssAnon,
    RssFile,
    RssShmem,
    PgtablesBytes,
    NrPtes,
    NrPmds,
    Swapents,
    OomScoreAdj,
    OomAdj,
    Cpu,
    /// A column this parser does not know; its value is skipped.
    Other,
}

impl Column {
    fn from_name(name: &str) -> Option<Column> {
        Some(match name {
            "uid" => Column::Uid,
            "tgid" => Column::Tgid,
            "total_vm" => Column::TotalVm,
            "rss" => Column::Rss,
            "rss_anon" => Column::RssAnon,
            "rss_file" => Column::RssFile,
            "rss_shmem" => Column::RssShmem,
            "pgtables_bytes" => Column::PgtablesBytes,
            "nr_ptes" => Column::NrPtes,
            "nr_pmds" => Column::NrPmds,
            "swapents" => Column::Swapents,
            "oom_score_adj" => Column::OomScoreAdj,
            "oom_adj" | "oomkilladj" => Column::OomAdj,
            "cpu" => Column::Cpu,
            "name" => return None,
            _ => Column::Other,
        })
    }
}

/// Classifies one message. `None`: not part of an OOM report (as far as this line shows).
pub fn classify(text: &str) -> Option<Line<'_>> {
    let t = text.trim_start_matches([' ', '\t']);
    if t.starts_with('[') {
        if let Some(cols) = task_columns(t) {
            return Some(Line::TaskColumns(cols));
        }
        if is_task_row(t) {
            return Some(Line::TaskRow(t));
        }
    }
    if let Some(i) = find!(text, " invoked oom-killer:") {
        return header(text, i).map(Line::Header);
    }
    // ≤2.6.17 printed no comm: "oom-killer: gfp_mask=0x200d2, order=0".
    if let Some(rest) = t.strip_prefix("oom-killer: ") {
        return header_fields("", rest).map(Line::Header);
    }
    if let Some(i) = find!(text, "oom-kill:") {
        return Some(Line::Summary(summary(&text[i + "oom-kill:".len()..])));
    }
    if let Some(i) = find!(text, "oom_reaper: reaped process ") {
        return reaper(&text[i + "oom_reaper: reaped process ".len()..]).map(Line::Reaped);
    }
    if find!(text, "Killed process ").is_some() {
        return killed(text).map(Line::Killed);
    }
    if let Some(sel) = select(text) {
        return Some(Line::Select(sel));
    }
    if let Some(l) = memcg_lines(t) {
        return Some(l);
    }
    if t.starts_with("Tasks state (memory values in pages)") {
        return Some(Line::TasksState);
    }
    if let Some(i) = find!(text, "Out of memory and no killable processes") {
        return Some(Line::NoKillable(text[i..].trim_end()));
    }
    if let Some(i) = find!(text, "Kernel panic - not syncing:") {
        let why = text[i + "Kernel panic - not syncing:".len()..].trim();
        let about_memory = why.contains("emory") || why.contains("panic_on_oom");
        let why_trimmed = why.trim_end_matches('.').trim_end();
        if why.starts_with("Attempted to kill init!") {
            return Some(Line::InitPanic(why_trimmed));
        }
        return about_memory.then_some(Line::Panic(why_trimmed));
    }
    // "Mem-info:" until 2.6.2x/3.x on some arches (ia64 2.6.17, ARM 3.2), "Mem-Info:" after.
    if t.starts_with("Mem-Info:") || t.starts_with("Mem-info:") {
        return Some(Line::MemInfo);
    }
    if let Some(m) = meminfo::classify(t) {
        return Some(Line::Mem(m));
    }
    if let Some(i) = find!(text, " cpuset=") {
        let rest = &text[i + " cpuset=".len()..];
        if let Some(j) = find!(rest, " mems_allowed=") {
            return Some(Line::Cpuset {
                cpuset: &rest[..j],
                mems_allowed: rest[j + " mems_allowed=".len()..].trim_end(),
            });
        }
    }
    None
}

/// The value after `key` up to the earliest of `ends` (trimmed of separators), or to the end.
fn value<'a>(s: &'a str, key: &str, ends: &[&str]) -> Option<&'a str> {
    let start = s.find(key)? + key.len();
    let rest = &s[start..];
    let end = ends
        .iter()
        .filter_map(|e| rest.find(e))
        .min()
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches([',', ' ']).trim())
}

/// A number after `key` (e.g. `anon-rss:`), allowing spaces before it and a `kB` after it.
/// Digit-group commas that a person or a log viewer added (`total-vm:26,184,840kB`) are read
/// through: a field separator is a comma followed by a space or a key, never by a digit.
fn num_after(s: &str, key: &str) -> Option<u64> {
    let start = s.find(key)? + key.len();
    let t = s[start..].trim_start();
    let (mut v, mut rest) = lead_u64(t)?;
    while let Some(r) = rest.strip_prefix(',') {
        let Some((part, r2)) = lead_u64(r) else { break };
        let width = r.len() - r2.len();
        v = v
            .checked_mul(10u64.checked_pow(width as u32)?)?
            .checked_add(part)?;
        rest = r2;
    }
    Some(v)
}

fn inum_after(s: &str, key: &str) -> Option<i64> {
    let start = s.find(key)? + key.len();
    lead_i64(s[start..].trim_start()).map(|(v, _)| v)
}

fn header(text: &str, at: usize) -> Option<Header<'_>> {
    header_fields(
        text[..at].trim_start(),
        &text[at + " invoked oom-killer:".len()..],
    )
}

fn header_fields<'a>(trigger_comm: &'a str, rest: &'a str) -> Option<Header<'a>> {
    let keys = [
        "nodemask=",
        "order=",
        "oom_score_adj=",
        "oom_adj=",
        "oomkilladj=",
    ];
    let gfp_mask = value(rest, "gfp_mask=", &keys);
    let nodemask = value(rest, "nodemask=", &["order=", "oom_score_adj="]);
    // `oom_adj=` is a suffix of `...oom_score_adj=`'s neighbour only by name: search exact keys.
    let trigger_adj = inum_after(rest, "oom_score_adj=")
        .or_else(|| inum_after(rest, " oom_adj="))
        .or_else(|| inum_after(rest, "oomkilladj="));
    Some(Header {
        trigger_comm,
        gfp_mask,
        nodemask,
        order: inum_after(rest, "order="),
        trigger_adj,
    })
}

fn summary(s: &str) -> Summary<'_> {
    // The comm and the cgroup paths may contain commas, and `nodemask`/`mems_allowed` print
    // ranges with commas ("0-1,3"): split from the right for pid/uid/task, and take each
    // left-hand value up to the next known key, as the kernel prints them in a fixed order.
    let (head, uid) = match s.rfind(",uid=") {
        Some(i) => (&s[..i], lead_u64(&s[i + 5..]).map(|(v, _)| v)),
        None => (s, None),
    };
    let (head, pid) = match head.rfind(",pid=") {
        Some(i) => (&head[..i], lead_i64(&head[i + 5..]).map(|(v, _)| v)),
        None => (head, None),
    };
    let (head, comm) = match head.rfind(",task=") {
        Some(i) => (&head[..i], Some(&head[i + 6..])),
        None => (head, None),
    };
    let keys = [
        ",nodemask=",
        ",cpuset=",
        ",mems_allowed=",
        ",oom_memcg=",
        ",global_oom",
        ",task_memcg=",
    ];
    let ends_after = |k: &str| -> Vec<&str> {
        let i = keys.iter().position(|x| *x == k).map_or(0, |i| i + 1);
        keys[i..].to_vec()
    };
    let field = |k: &str| -> Option<&str> {
        let key = k.trim_start_matches(',');
        let pos = if head.starts_with(key) {
            Some(0)
        } else {
            head.find(k).map(|i| i + 1)
        }?;
        let rest = &head[pos + key.len()..];
        let end = ends_after(k)
            .iter()
            .filter_map(|e| rest.find(e))
            .min()
            .unwrap_or(rest.len());
        Some(&rest[..end])
    };
    let constraint = head.strip_prefix("constraint=").map(|r| {
        let end = keys
            .iter()
            .filter_map(|e| r.find(e))
            .min()
            .unwrap_or(r.len());
        &r[..end]
    });
    let task_memcg = head
        .find(",task_memcg=")
        .map(|i| &head[i + ",task_memcg=".len()..]);
    Summary {
        constraint,
        nodemask: field(",nodemask="),
        cpuset: field(",cpuset="),
        mems_allowed: field(",mems_allowed="),
        oom_memcg: field(",oom_memcg="),
        global: head.contains(",global_oom"),
        task_memcg,
        comm,
        pid,
        uid,
    }
}

/// `pid (comm)` where the comm ends at the last `)` before `tail_key` (or the last `)`).
fn pid_comm<'a>(s: &'a str, tail_keys: &[&str]) -> Option<(i64, &'a str, &'a str)> {
    let (pid, rest) = lead_i64(s.trim_start())?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('(')?;
    let close = tail_keys
        .iter()
        .filter_map(|k| rest.rfind(k))
        .min()
        .or_else(|| rest.rfind(')'))?;
    Some((pid, &rest[..close], &rest[close + 1..]))
}

fn message_before(text: &str, at: usize) -> Option<&str> {
    let m = text[..at].trim_end().trim_end_matches(':').trim();
    (!m.is_empty()).then_some(m)
}

fn killed(text: &str) -> Option<Killed<'_>> {
    let at = find!(text, "Killed process ")?;
    let message = message_before(text, at);
    // Some kernels pad the pid (`Killed process  532 (kodi.bin)`, seen on 6.x).
    let mut rest = text[at + "Killed process ".len()..].trim_start_matches(' ');
    let mut uid = None;
    // RHEL6: "Killed process N, UID U, (comm) total-vm:..."
    let (pid, after_pid) = lead_i64(rest)?;
    if let Some(r) = after_pid.strip_prefix(", UID ") {
        let (u, r) = lead_u64(r)?;
        uid = Some(u);
        rest = r.trim_start_matches([',', ' ']);
        rest = rest.strip_prefix('(')?;
    } else {
        rest = after_pid.trim_start().strip_prefix('(')?;
    }
    // RHEL7 (3.10.0-x.el7): "Killed process N (comm), UID U, total-vm:...".
    let keys = [") total-vm:", ")total-vm:", ") vsz:", ")vsz:", "), UID "];
    let close = keys
        .iter()
        .filter_map(|k| rest.rfind(k))
        .min()
        .or_else(|| rest.rfind(')'))?;
    let comm = &rest[..close];
    let f = &rest[close + 1..];
    Some(Killed {
        message,
        pid,
        comm,
        total_vm_kb: num_after(f, "total-vm:").or_else(|| num_after(f, "vsz:")),
        anon_rss_kb: num_after(f, "anon-rss:"),
        file_rss_kb: num_after(f, "file-rss:"),
        shmem_rss_kb: num_after(f, "shmem-rss:"),
        pgtables_kb: num_after(f, "pgtables:"),
        uid: uid.or_else(|| num_after(f, "UID:")).or_else(|| {
            f.strip_prefix(", UID ")
                .and_then(|r| lead_u64(r).map(|(v, _)| v))
        }),
        oom_score_adj: inum_after(f, "oom_score_adj:"),
    })
}

fn select(text: &str) -> Option<Select<'_>> {
    if find!(text, "sharing same memory").is_some() {
        return None;
    }
    let (at, key) = find!(text, "Kill process ")
        .map(|i| (i, "Kill process "))
        .or_else(|| find!(text, "kill process ").map(|i| (i, "kill process ")))?;
    let message = message_before(text, at);
    let rest = &text[at + key.len()..];
    let (pid, comm, tail) = pid_comm(rest, &[") score "])?;
    Some(Select {
        message,
        pid,
        comm,
        score: inum_after(tail, "score "),
    })
}

fn reaper(s: &str) -> Option<Reaper<'_>> {
    let (pid, comm, tail) = pid_comm(s, &["), now "])?;
    Some(Reaper {
        pid,
        comm,
        anon_rss_kb: num_after(tail, "anon-rss:"),
        file_rss_kb: num_after(tail, "file-rss:"),
        shmem_rss_kb: num_after(tail, "shmem-rss:"),
    })
}

fn memcg_lines(t: &str) -> Option<Line<'_>> {
    for (key, counter) in [
        ("memory: usage ", Counter::Memory),
        ("memory+swap: usage ", Counter::MemorySwap),
        ("swap: usage ", Counter::Swap),
        ("kmem: usage ", Counter::Kmem),
    ] {
        if let Some(rest) = t.strip_prefix(key) {
            let (usage_kb, _) = lead_u64(rest)?;
            let limit_kb = num_after(rest, "limit ")?;
            return Some(Line::Usage {
                counter,
                usage_kb,
                limit_kb,
                failcnt: num_after(rest, "failcnt "),
            });
        }
    }
    if let Some(rest) = t.strip_prefix("Task in ") {
        return Some(match rest.find(" killed as a result of limit of ") {
            Some(i) => Line::TaskIn {
                task_memcg: Some(&rest[..i]),
                oom_memcg: Some(rest[i + " killed as a result of limit of ".len()..].trim_end()),
            },
            None => Line::TaskIn {
                task_memcg: Some(rest.strip_suffix(" killed").unwrap_or(rest).trim_end()),
                oom_memcg: None,
            },
        });
    }
    if let Some(rest) = t.strip_prefix("as a result of limit of ") {
        return Some(Line::TaskIn {
            task_memcg: None,
            oom_memcg: Some(rest.trim_end()),
        });
    }
    if let Some(rest) = t.strip_prefix("Tasks in ") {
        let i = rest.find(" are going to be killed due to memory.oom.group set")?;
        return Some(Line::GroupKill { memcg: &rest[..i] });
    }
    None
}

/// `[ pid ]   uid  tgid total_vm ...  name`: the column header (pid padded in several ways).
fn task_columns(t: &str) -> Option<Vec<Column>> {
    let close = t.find(']')?;
    if t[1..close].trim() != "pid" {
        return None;
    }
    let names: Vec<&str> = t[close + 1..].split_whitespace().collect();
    if names.last() != Some(&"name") {
        return None;
    }
    Some(names.iter().filter_map(|n| Column::from_name(n)).collect())
}

fn is_task_row(t: &str) -> bool {
    let Some(close) = t.find(']') else {
        return false;
    };
    let inner = t[1..close].trim();
    !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit())
}

/// The columns of a task dump whose header line is not in the excerpt, inferred from how many
/// numbers a row has after its `[pid]`. Every era's header starts `uid tgid total_vm rss` and
/// ends with the adjustment (see `kernel-oom-formats.md` §2); the middle is only named where the
/// count says which era it is, otherwise skipped.
/// - 6: 2.6.25-3.x `cpu oom_adj`;
/// - 7: 2.6.32 RHEL6 `cpu oom_adj oom_score_adj`, 3.x `nr_ptes swapents oom_score_adj`, 4.15+
///   `pgtables_bytes swapents oom_score_adj`: the last column is `oom_score_adj`; the middle
///   two are named only where the values say which (see [`seven_column_middle`]);
/// - 8: 4.x `nr_ptes nr_pmds swapents oom_score_adj`;
/// - 10: 6.x `rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj`.
pub fn infer_columns(row: &str) -> Option<Vec<Column>> {
    let close = row.find(']')?;
    let toks: Vec<&str> = row[close + 1..].split_whitespace().collect();
    let n = toks
        .iter()
        .take_while(|t| lead_i64(t).is_some_and(|(_, r)| r.is_empty()))
        .count();
    use Column::*;
    let head = [Uid, Tgid, TotalVm, Rss];
    let tail: &[Column] = match n {
        6 => &[Cpu, OomAdj],
        7 => seven_column_middle(&toks[4..6]),
        8 => &[NrPtes, NrPmds, Swapents, OomScoreAdj],
        10 => &[
            RssAnon,
            RssFile,
            RssShmem,
            PgtablesBytes,
            Swapents,
            OomScoreAdj,
        ],
        _ => return None,
    };
    // The name must follow; a row cut before its name is not trusted.
    if toks.len() <= n {
        return None;
    }
    Some(head.iter().chain(tail).copied().collect())
}

/// The fifth and sixth numbers of a seven-number row, told apart by their values alone (no
/// era can be assumed: a paste may come from any kernel):
/// - `pgtables_bytes` is page-table memory in bytes, a whole number of pages (at least one for
///   a process with an mm; pages are 4 KiB or a multiple of it). Neither a page count
///   (`nr_ptes`, one page table page per 2 MiB mapped: 4096 of them map 8 GiB) nor a CPU number
///   is a non-zero multiple of 4096 in practice, so such a value names the 4.15+ columns;
/// - `oom_adj` lies in -17..=15, so a sixth number outside it is `swapents` (3.x `nr_ptes
///   swapents`, a page-table count cannot be told from a CPU number otherwise).
///
/// Anything else stays unnamed, as before: a wrong column would feed a wrong badness.
fn seven_column_middle(mid: &[&str]) -> &'static [Column] {
    use Column::*;
    let num = |i: usize| mid.get(i).and_then(|t| lead_i64(t)).map(|(v, _)| v);
    match (num(0), num(1)) {
        (Some(a), Some(_)) if a >= 4096 && a % 4096 == 0 => &[PgtablesBytes, Swapents, OomScoreAdj],
        (Some(_), Some(b)) if !(-17..=15).contains(&b) => &[NrPtes, Swapents, OomScoreAdj],
        _ => &[Other, Other, OomScoreAdj],
    }
}

/// Parses a task dump row against the columns of the header seen before it.
pub fn task_row(row: &str, columns: &[Column]) -> Option<crate::event::TaskRow> {
    let close = row.find(']')?;
    let (pid, _) = lead_i64(row[1..close].trim())?;
    let mut rest = &row[close + 1..];
    let mut out = crate::event::TaskRow {
        pid,
        ..Default::default()
    };
    for col in columns {
        rest = rest.trim_start_matches([' ', '\t']);
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = &rest[end..];
        let u = || lead_u64(tok).filter(|(_, r)| r.is_empty()).map(|(v, _)| v);
        let i = || lead_i64(tok).filter(|(_, r)| r.is_empty()).map(|(v, _)| v);
        // A column that should be numeric but is not: the row is not what the header says.
        match col {
            Column::Uid => out.uid = Some(u()?),
            Column::Tgid => out.tgid = Some(i()?),
            Column::TotalVm => out.total_vm_pages = Some(u()?),
            Column::Rss => out.rss_pages = Some(u()?),
            Column::RssAnon => out.rss_anon_pages = Some(u()?),
            Column::RssFile => out.rss_file_pages = Some(u()?),
            Column::RssShmem => out.rss_shmem_pages = Some(u()?),
            Column::PgtablesBytes => out.pgtables_bytes = Some(u()?),
            Column::NrPtes => out.nr_ptes_pages = Some(u()?),
            Column::NrPmds => out.nr_pmds_pages = Some(u()?),
            Column::Swapents => out.swapents_pages = Some(u()?),
            Column::OomScoreAdj => out.oom_score_adj = Some(i()?),
            Column::OomAdj => out.oom_adj = Some(i()?),
            Column::Cpu => out.cpu = Some(u()?),
            Column::Other => {
                i()?;
            }
        }
    }
    out.name = rest.trim().to_string();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_eras() {
        let h = |s| match classify(s) {
            Some(Line::Header(h)) => h,
            o => panic!("{o:?}"),
        };
        let a = h("bash invoked oom-killer: gfp_mask=0x84d0, order=0, oomkilladj=0");
        assert_eq!(
            (a.trigger_comm, a.gfp_mask, a.order, a.trigger_adj),
            ("bash", Some("0x84d0"), Some(0), Some(0))
        );
        let b = h("sh invoked oom-killer: gfp_mask=0xd0, order=1, oom_adj=0, oom_score_adj=-5");
        assert_eq!((b.order, b.trigger_adj), (Some(1), Some(-5)));
        let c = h("mem invoked oom-killer: gfp_mask=0x14200ca(GFP_HIGHUSER_MOVABLE), nodemask=(null),  order=0, oom_score_adj=0");
        assert_eq!(c.gfp_mask, Some("0x14200ca(GFP_HIGHUSER_MOVABLE)"));
        assert_eq!(c.nodemask, Some("(null)"));
        let d = h("Web Content invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP), order=-1, oom_score_adj=167");
        assert_eq!(
            (d.trigger_comm, d.order, d.trigger_adj),
            ("Web Content", Some(-1), Some(167))
        );
    }

    #[test]
    fn summary_with_commas() {
        let Some(Line::Summary(s)) = classify("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,3,oom_memcg=/a,b,task_memcg=/a,b/c,task=x,y,pid=7231,uid=0") else { panic!() };
        assert_eq!(s.constraint, Some("CONSTRAINT_MEMCG"));
        assert_eq!(s.mems_allowed, Some("0-1,3"));
        assert_eq!(s.oom_memcg, Some("/a,b"));
        assert_eq!(s.task_memcg, Some("/a,b/c"));
        assert_eq!((s.comm, s.pid, s.uid), (Some("x,y"), Some(7231), Some(0)));
        let Some(Line::Summary(g)) = classify("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=grep,pid=49358,uid=1000") else { panic!() };
        assert!(g.global);
        assert_eq!(
            (g.oom_memcg, g.task_memcg, g.cpuset),
            (None, Some("/user.slice"), Some("/"))
        );
    }

    #[test]
    fn killed_forms() {
        let k = |s| match classify(s) {
            Some(Line::Killed(k)) => k,
            o => panic!("{o:?}"),
        };
        let a = k("Memory cgroup out of memory: Killed process 7231 (python3) total-vm:78028kB, anon-rss:65152kB, file-rss:6612kB, shmem-rss:0kB, UID:0 pgtables:188kB oom_score_adj:0");
        assert_eq!(a.message, Some("Memory cgroup out of memory"));
        assert_eq!(
            (
                a.pid,
                a.comm,
                a.total_vm_kb,
                a.pgtables_kb,
                a.uid,
                a.oom_score_adj
            ),
            (7231, "python3", Some(78028), Some(188), Some(0), Some(0))
        );
        let b = k("Killed process 12, UID 48, (a) b) total-vm:10kB, anon-rss:1kB, file-rss:2kB");
        assert_eq!(
            (b.message, b.pid, b.uid, b.comm, b.file_rss_kb),
            (None, 12, Some(48), "a) b", Some(2))
        );
        let c = k("Out of memory: Killed process 4860 (xfs).");
        assert_eq!(
            (c.message, c.comm, c.total_vm_kb),
            (Some("Out of memory"), "xfs", None)
        );
        let d = k("Killed process 1 (x) total-vm:) total-vm:9kB, anon-rss:1kB");
        assert_eq!((d.comm, d.total_vm_kb), ("x) total-vm:", Some(9)));
        let e = k("Killed process 9 (a) vsz:100kB, anon-rss:5kB, file-rss:6kB");
        assert_eq!(e.total_vm_kb, Some(100));
    }

    #[test]
    fn select_forms() {
        let s = |t| match classify(t) {
            Some(Line::Select(s)) => s,
            o => panic!("{o:?}"),
        };
        let a = s("Out of memory: Kill process 29957 (java) score 366 or sacrifice child");
        assert_eq!(
            (a.message, a.pid, a.comm, a.score),
            (Some("Out of memory"), 29957, "java", Some(366))
        );
        let b = s("Out of memory: kill process 1 (a (b) score 7899 or a child");
        assert_eq!((b.comm, b.score), ("a (b", Some(7899)));
        let c = s("Out of Memory: Kill process 2 (x) score 9 and children.");
        assert_eq!(c.message, Some("Out of Memory"));
        assert_eq!(classify("Kill process 3 (y) sharing same memory"), None);
    }

    #[test]
    fn task_rows() {
        let Some(Line::TaskColumns(cols)) = classify("[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name") else { panic!() };
        let Some(Line::TaskRow(r)) = classify("[   7231]     0  7231    19507    17190    16288      902         0   192512        0             0 python3 -c x") else { panic!() };
        let row = task_row(r, &cols).unwrap();
        assert_eq!(row.pid, 7231);
        assert_eq!(row.rss_anon_pages, Some(16288));
        assert_eq!(row.pgtables_bytes, Some(192512));
        assert_eq!(row.name, "python3 -c x");
        // A row that does not fit the header is refused rather than misread.
        assert_eq!(task_row("[1] 0 x", &cols), None);
    }

    #[test]
    fn memcg_usage_and_task_in() {
        assert_eq!(
            classify("memory: usage 65536kB, limit 65536kB, failcnt 123"),
            Some(Line::Usage {
                counter: Counter::Memory,
                usage_kb: 65536,
                limit_kb: 65536,
                failcnt: Some(123)
            })
        );
        assert_eq!(
            classify("Task in /docker/abc killed as a result of limit of /docker"),
            Some(Line::TaskIn {
                task_memcg: Some("/docker/abc"),
                oom_memcg: Some("/docker")
            })
        );
        assert_eq!(
            classify("Tasks in /a/b are going to be killed due to memory.oom.group set"),
            Some(Line::GroupKill { memcg: "/a/b" })
        );
    }
}
