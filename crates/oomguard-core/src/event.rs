//! The one event type: an OOM kill (or an OOM that killed nothing), as read from kernel text or
//! produced by the daemon. `docs/event-schema.md` is its contract; field names are stable.
//!
//! Every field is an `Option`: what the text does not show stays `None` (`null` in JSON), never a
//! guess. Units are in the names (`_kb` is the kernel's "kB", i.e. KiB).

use serde::{Deserialize, Serialize};

pub use crate::config::KillUnit;
use crate::trigger::Trigger;
pub use crate::workload::Workload;

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
    /// The daemon's time-to-OOM estimate of a scope fell to `forecast.lead` (once per
    /// episode; `crate::forecast`). Nothing was killed.
    Forecast,
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

/// How the page size used to convert page counts to bytes was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSizeSource {
    /// `N pages RAM` against the zones' `present:` kB figures in the same Mem-Info block.
    MemInfo,
    /// The victim's task dump row (pages) against its kill line (kB).
    TaskDump,
    /// Neither was shown: 4 KiB, the x86 page.
    Default,
}

/// The memory picture of a report: where every page was. Byte fields are `None` when the
/// report does not print that figure. Page counts were converted with `page_size_bytes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    pub page_size_bytes: u64,
    pub page_size_source: PageSizeSource,
    /// The global `Mem-Info:` block (`show_mem()`), printed for every OOM but a memcg one.
    pub mem_info: Option<MemInfo>,
    /// The memory cgroup's stat dump (`Memory cgroup stats for X:`), memcg OOMs only.
    pub memcg_stat: Option<MemcgStat>,
}

/// The `Mem-Info:` block, every era. See `docs/event-schema.md` for each field's line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemInfo {
    pub active_anon_bytes: Option<u64>,
    pub inactive_anon_bytes: Option<u64>,
    pub isolated_anon_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub isolated_file_bytes: Option<u64>,
    /// ≤2.6.27: one active and one inactive LRU for anon and file together.
    pub lru_active_bytes: Option<u64>,
    pub lru_inactive_bytes: Option<u64>,
    pub unevictable_bytes: Option<u64>,
    pub dirty_bytes: Option<u64>,
    pub writeback_bytes: Option<u64>,
    pub unstable_bytes: Option<u64>,
    pub slab_reclaimable_bytes: Option<u64>,
    pub slab_unreclaimable_bytes: Option<u64>,
    /// ≤2.6.3x: slab not split into reclaimable and unreclaimable.
    pub slab_bytes: Option<u64>,
    pub mapped_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    pub pagetables_bytes: Option<u64>,
    pub sec_pagetables_bytes: Option<u64>,
    pub bounce_bytes: Option<u64>,
    pub kernel_misc_reclaimable_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub free_pcp_bytes: Option<u64>,
    pub free_cma_bytes: Option<u64>,
    /// Summed over the `Node N` lines (5.x+) or, before, over the zone lines.
    pub kernel_stack_bytes: Option<u64>,
    pub anon_thp_bytes: Option<u64>,
    pub shmem_thp_bytes: Option<u64>,
    pub zones: Vec<Zone>,
    pub hugepages: Vec<HugePages>,
    pub pagecache_bytes: Option<u64>,
    pub swap_cache_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub ram_bytes: Option<u64>,
    pub highmem_bytes: Option<u64>,
    pub reserved_bytes: Option<u64>,
    pub cma_reserved_bytes: Option<u64>,
    pub hwpoisoned_bytes: Option<u64>,
    pub shared_bytes: Option<u64>,
    pub non_shared_bytes: Option<u64>,
    /// 4.15+ `Unreclaimable slab info:` rows, largest first (at most 10 kept).
    pub unreclaimable_slab: Vec<SlabCache>,
}

/// One zone line (`Node 0 DMA32 free:...kB min:...kB ...`) and its buddy line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Zone {
    pub node: Option<u32>,
    pub name: String,
    pub free_bytes: Option<u64>,
    pub min_bytes: Option<u64>,
    pub low_bytes: Option<u64>,
    pub high_bytes: Option<u64>,
    pub present_bytes: Option<u64>,
    pub managed_bytes: Option<u64>,
    /// The buddy line (`1*4kB (U) 5*8kB ... = NkB`): free blocks per block size; `[]` without it.
    pub free_blocks: Vec<FreeBlocks>,
}

/// `count` free blocks of `block_bytes` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FreeBlocks {
    pub block_bytes: u64,
    pub count: u64,
}

/// A huge page pool: `Node N hugepages_total=T hugepages_free=F hugepages_surp=S hugepages_size=NkB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HugePages {
    pub node: Option<u32>,
    pub size_bytes: u64,
    pub total: u64,
    pub free: u64,
    pub surplus: u64,
}

/// A row of `Unreclaimable slab info:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlabCache {
    pub name: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Which stat format the memcg dump used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemcgStatFormat {
    /// ≤4.19: one line per cgroup of the subtree, `cache:NKB rss:NKB ...` (local figures, summed).
    V1Line,
    /// 5.x+ cgroup v1: `key bytes` lines; the `total_` (hierarchical) figures when printed.
    V1,
    /// 5.x+ cgroup v2: `memory.stat` as `key bytes` lines (hierarchical).
    V2,
}

/// The memcg stat dump in bytes, v1 keys mapped onto v2 names (`rss`→`anon`,
/// `cache`→`file`, `mapped_file`→`file_mapped`, `rss_huge`→`anon_thp`, `dirty`→`file_dirty`,
/// `writeback`→`file_writeback`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemcgStat {
    pub format: MemcgStatFormat,
    /// The cgroup the first `Memory cgroup stats for` line names.
    pub cgroup: String,
    /// How many cgroups' stat lines were summed (≤4.19 prints one per cgroup of the subtree).
    pub cgroups: u32,
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    pub file_mapped_bytes: Option<u64>,
    pub file_dirty_bytes: Option<u64>,
    pub file_writeback_bytes: Option<u64>,
    pub anon_thp_bytes: Option<u64>,
    pub kernel_bytes: Option<u64>,
    pub kernel_stack_bytes: Option<u64>,
    pub pagetables_bytes: Option<u64>,
    pub sec_pagetables_bytes: Option<u64>,
    pub percpu_bytes: Option<u64>,
    pub sock_bytes: Option<u64>,
    pub vmalloc_bytes: Option<u64>,
    pub slab_reclaimable_bytes: Option<u64>,
    pub slab_unreclaimable_bytes: Option<u64>,
    pub swapcached_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub zswap_bytes: Option<u64>,
    pub active_anon_bytes: Option<u64>,
    pub inactive_anon_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub unevictable_bytes: Option<u64>,
    pub hierarchical_memory_limit_bytes: Option<u64>,
    pub hierarchical_memsw_limit_bytes: Option<u64>,
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
    /// Where the memory was: the `Mem-Info:` block and/or the memcg stat dump, in bytes;
    /// `None` when the report shows neither.
    pub memory: Option<Memory>,
    pub host: Option<String>,
    pub time: Option<String>,
    pub kernel_time_s: Option<f64>,
    pub line: Option<u64>,
    /// Set by `oomguard run` for the command it supervises; `null` otherwise.
    pub run: Option<RunInfo>,
    /// Who the victim's cgroup belongs to (unit, container, pod), read from its path
    /// (`crate::workload`); omitted when the path shows none, so events outside units and
    /// containers keep their JSON unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    // The daemon's fields (`docs/event-schema.md`, "Daemon fields"). Added after the explain
    // fields and omitted when unset, so `explain --json` output is unchanged.
    /// Unique id of the event (`<boot-unique prefix>-<sequence>`); it appears in the log, the
    /// journal, hook environments and notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Wall-clock time the daemon saw the event, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix_time_s: Option<f64>,
    /// What made oomguard act or warn, with the figures at that moment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerInfo>,
    /// The process oomguard chose (its own kills and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub victim: Option<Victim>,
    /// What oomguard did and how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// How the daemon learned of a kernel kill, and which counters confirm it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// A `forecast` event's estimate and the scope's top growers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastInfo>,
    /// The daemon's flight recorder: its readings before the event (kills, and kernel OOM
    /// events seen live; `crate::recorder`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorder: Option<crate::recorder::Recording>,
    /// The output of the operator's diagnostic run before the kill (`crate::diagnose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<crate::diagnose::Diagnostics>,
    /// A step of the thrash rule's chain of actions (`[thrash] actions`) and how it went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<crate::restrain::StepInfo>,
}

/// What a `forecast` event says: which scope runs out, when, how fast, and who grows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastInfo {
    /// `machine`, or the guarded cgroup's path as configured.
    pub scope: String,
    /// The estimate when the event fired: free bytes / smoothed fill rate.
    pub seconds_to_oom: f64,
    /// The configured lead the estimate fell to.
    pub lead_s: f64,
    /// The smoothed fill rate, bytes per second.
    pub fill_bytes_per_s: f64,
    /// What is left: MemAvailable (machine), limit minus working set (cgroup).
    pub free_bytes: u64,
    /// The scope's limit: MemTotal (machine), the cgroup's limit.
    pub limit_bytes: Option<u64>,
    /// The processes of the scope that grew most since the episode's first reading (largest
    /// growth first; at most 5).
    pub growers: Vec<Grower>,
}

/// One of a forecast's (or a flight recording's) top growers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grower {
    pub pid: i64,
    pub name: String,
    /// Resident memory now (anon + file + shmem).
    pub rss_bytes: u64,
    /// Growth of that since the episode's first reading; `null` when the process was not seen
    /// then (started since, or the fill was too fast for two readings).
    pub growth_bytes: Option<i64>,
}

/// What fired, with the figures read when it fired. Fields that do not apply are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerInfo {
    /// `memory` (MemAvailable), `swap`, `psi_some`, `psi_full`, `cgroup` (a watched cgroup
    /// near its limit). (A kernel kill has no trigger object; its hook and journal fields say
    /// `kernel`.)
    pub reason: Trigger,
    /// One line for people: which threshold, crossed by how much.
    pub detail: Option<String>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub psi_some_avg10_pct: Option<f64>,
    pub psi_full_avg10_pct: Option<f64>,
    /// The watched cgroup that fired (a configured path: bounded).
    pub cgroup: Option<String>,
    pub cgroup_usage_bytes: Option<u64>,
    pub cgroup_limit_bytes: Option<u64>,
}

/// The chosen process, as read right before acting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Victim {
    pub pid: i64,
    /// `comm` (at most 15 bytes; attacker-controlled: never pass it to a shell).
    pub name: String,
    pub uid: Option<u64>,
    /// The user name of `uid`, when it resolves.
    pub user: Option<String>,
    pub cgroup: Option<String>,
    /// Arguments joined by spaces (capped).
    pub cmdline: Option<String>,
    /// `/proc/PID/oom_score` (0–2000 scale).
    pub oom_score: Option<i64>,
    pub oom_score_adj: Option<i64>,
    pub rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
}

/// The signal of an action: the strongest one sent (`SIGKILL` after an escalation), the one a
/// dry run would have sent, or `none` (a warning, or nothing could be sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGKILL")]
    Kill,
    #[serde(rename = "none")]
    None,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
            Signal::None => "none",
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The victim exited.
    Exited,
    /// Still alive after the grace period and the wait after SIGKILL.
    Timeout,
    /// Gone before the signal.
    Vanished,
    /// The signal could not be sent (see `error`).
    Failed,
    /// Nothing was signalled: a dry run.
    DryRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Exited => "exited",
            Outcome::Timeout => "timeout",
            Outcome::Vanished => "vanished",
            Outcome::Failed => "failed",
            Outcome::DryRun => "dry_run",
        }
    }
}

impl KillUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            KillUnit::Process => "process",
            KillUnit::Pgroup => "pgroup",
            KillUnit::Cgroup => "cgroup",
        }
    }
}

/// What oomguard did about the event and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// `SIGTERM`, `SIGKILL`, or `none` for a warning.
    pub signal: Option<Signal>,
    /// `process`, `pgroup` or `cgroup`.
    pub unit: Option<KillUnit>,
    pub dry_run: bool,
    /// `exited`, `timeout` (still alive after the grace period), `vanished` (gone before the
    /// signal), `failed` (the signal could not be sent; see `error`), `dry_run`.
    pub outcome: Option<Outcome>,
    /// From the signal to the victim's exit.
    pub exited_after_ms: Option<u64>,
    /// MemAvailable after minus before (0 when it fell).
    pub freed_bytes: Option<u64>,
    /// `process_mrelease` was called and succeeded.
    pub mrelease: Option<bool>,
    pub error: Option<String>,
}

/// How a kernel kill reached the daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `kmsg` (the kernel's report was read) or `counter` (only a counter rose: the report was
    /// lost to a ring-buffer overrun, or /dev/kmsg is unreadable).
    pub via: String,
    /// Counters that rose with it: `vmstat` (`/proc/vmstat oom_kill`), `memory.oom_control`
    /// (v1), `memory.events` (v2).
    pub confirmed_by: Vec<String>,
    /// For `via: counter`: kills the counter showed beyond the reports read (`>= 1`).
    pub count: Option<u64>,
    /// For `via: counter`: the watched cgroup whose counter rose, when one did.
    pub cgroup: Option<String>,
    /// /dev/kmsg records lost to overruns since the previous event.
    pub kmsg_lost_records: Option<u64>,
    /// Why /dev/kmsg could not be read, when it could not.
    pub kmsg_error: Option<String>,
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
            memory: None,
            host: None,
            time: None,
            kernel_time_s: None,
            line: None,
            run: None,
            workload: None,
            id: None,
            unix_time_s: None,
            trigger: None,
            victim: None,
            action: None,
            detection: None,
            forecast: None,
            recorder: None,
            diagnostics: None,
            step: None,
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
