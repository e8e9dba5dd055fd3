//! The one event type: an OOM kill (or an OOM that killed nothing), as read from kernel text or
//! produced by the daemon. `docs/event-schema.md` is its contract; field names are stable.
//!
//! Every field is an `Option`: what the text does not show stays `None` (`null` in JSON), never a
//! guess. Units are in the names (`_kb` is the kernel's "kB", i.e. KiB).

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A process was killed.
    Kill,
    /// The OOM killer found nothing it may kill ("Out of memory and no killable processes").
    NoKillable,
    /// The kernel panicked on the OOM (`panic_on_oom`, or nothing killable in a global OOM).
    Panic,
    /// A report whose kill line is missing (log truncated, or its lines were lost).
    Incomplete,
    /// A command supervised by `oomguard run` died without being OOM-killed (an exit, or a
    /// signal that was not an OOM kill). `run` says how.
    Exit,
    /// `oomguard run --warn-at`: the supervised cgroup's usage crossed the warn level.
    Warning,
}

/// Where the event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Kernel,
    Oomguard,
}

/// What the oom_reaper said it left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaped {
    pub pid: i64,
    pub comm: String,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
}

/// One row of the kernel's task dump (`vm.oom_dump_tasks`). Columns an era does not print are
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskRow {
    pub pid: i64,
    pub uid: Option<u64>,
    pub tgid: Option<i64>,
    pub total_vm_pages: Option<u64>,
    pub rss_pages: Option<u64>,
    pub rss_anon_pages: Option<u64>,
    pub rss_file_pages: Option<u64>,
    pub rss_shmem_pages: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub nr_ptes_pages: Option<u64>,
    pub nr_pmds_pages: Option<u64>,
    pub swapents_pages: Option<u64>,
    pub oom_score_adj: Option<i64>,
    pub oom_adj: Option<i64>,
    pub cpu: Option<u64>,
    pub name: String,
}

/// What `oomguard run` adds to the events of the command it supervises (`null` elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// The `--name` of the supervised service.
    pub name: String,
    /// Its memory cgroup, as the kernel prints cgroup paths.
    pub cgroup: String,
    /// 1 for the first start, 2 after the first restart, ...
    pub start: u32,
    /// The main process of this start.
    pub main_pid: i64,
    /// `kernel_oom`, `oomguard`, `exit`, `signal` for deaths; `warn_at` for warnings.
    pub cause: String,
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it (`SIGKILL`), when one did.
    pub signal: Option<String>,
    /// Whether it dumped core.
    pub core_dumped: bool,
    /// The status `oomguard run` would exit with for this death (code, or 128 + signal).
    pub status: Option<u8>,
    /// How long this start ran, in milliseconds.
    pub ran_ms: u64,
    /// The cgroup's usage when oomguard last read it (every 100 ms, and at v1 threshold
    /// crossings; for a warning: at the crossing). For the usage at an OOM kill, see
    /// `memcg_usage_kb` of the kernel's report.
    pub last_usage_bytes: Option<u64>,
    /// The cgroup's limit (`memory.max` / `memory.limit_in_bytes`).
    pub limit_bytes: Option<u64>,
    /// The delay before the next start; `null` when there is none.
    pub restart_in_ms: Option<u64>,
    /// The one-line explanation printed on stderr.
    pub why: String,
}

/// One OOM event. See `docs/event-schema.md` for where each field comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomEvent {
    pub kind: EventKind,
    pub source: Source,
    pub message: Option<String>,
    pub pid: Option<i64>,
    pub comm: Option<String>,
    pub selected_pid: Option<i64>,
    pub selected_comm: Option<String>,
    pub score: Option<i64>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub uid: Option<u64>,
    pub oom_score_adj: Option<i64>,
    pub constraint: Option<String>,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub oom_group: Option<String>,
    pub cpuset: Option<String>,
    pub mems_allowed: Option<String>,
    pub nodemask: Option<String>,
    pub trigger_comm: Option<String>,
    pub gfp_mask: Option<String>,
    pub order: Option<i64>,
    pub trigger_oom_score_adj: Option<i64>,
    pub memcg_usage_kb: Option<u64>,
    pub memcg_limit_kb: Option<u64>,
    pub memcg_failcnt: Option<u64>,
    pub memsw_usage_kb: Option<u64>,
    pub memsw_limit_kb: Option<u64>,
    pub swap_usage_kb: Option<u64>,
    pub swap_limit_kb: Option<u64>,
    pub kmem_usage_kb: Option<u64>,
    pub kmem_limit_kb: Option<u64>,
    pub reaped: Option<Reaped>,
    pub tasks: Vec<TaskRow>,
    /// Rows of the task dump beyond the per-event cap, counted but not kept.
    pub tasks_dropped: u64,
    pub host: Option<String>,
    pub time: Option<String>,
    pub kernel_time_s: Option<f64>,
    pub line: Option<u64>,
    /// Set by `oomguard run` for the command it supervises; `null` otherwise.
    pub run: Option<RunInfo>,
}

impl OomEvent {
    /// An empty event of `kind` from the kernel; the parser fills in what the text shows.
    pub fn new(kind: EventKind) -> Self {
        OomEvent {
            kind,
            source: Source::Kernel,
            message: None,
            pid: None,
            comm: None,
            selected_pid: None,
            selected_comm: None,
            score: None,
            total_vm_kb: None,
            anon_rss_kb: None,
            file_rss_kb: None,
            shmem_rss_kb: None,
            pgtables_kb: None,
            uid: None,
            oom_score_adj: None,
            constraint: None,
            oom_memcg: None,
            task_memcg: None,
            oom_group: None,
            cpuset: None,
            mems_allowed: None,
            nodemask: None,
            trigger_comm: None,
            gfp_mask: None,
            order: None,
            trigger_oom_score_adj: None,
            memcg_usage_kb: None,
            memcg_limit_kb: None,
            memcg_failcnt: None,
            memsw_usage_kb: None,
            memsw_limit_kb: None,
            swap_usage_kb: None,
            swap_limit_kb: None,
            kmem_usage_kb: None,
            kmem_limit_kb: None,
            reaped: None,
            tasks: Vec::new(),
            tasks_dropped: 0,
            host: None,
            time: None,
            kernel_time_s: None,
            line: None,
            run: None,
        }
    }

    /// True when a memory cgroup's limit, not the whole machine, ran out.
    pub fn is_memcg(&self) -> bool {
        self.constraint.as_deref() == Some("CONSTRAINT_MEMCG") || self.oom_memcg.is_some()
    }

    /// The victim's resident memory (anon + file + shmem) in kB, when the kill line shows it.
    pub fn rss_kb(&self) -> Option<u64> {
        let anon = self.anon_rss_kb?;
        Some(anon + self.file_rss_kb.unwrap_or(0) + self.shmem_rss_kb.unwrap_or(0))
    }
}
