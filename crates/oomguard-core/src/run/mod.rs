//! The pure half of `oomguard run -- CMD`: command-line values (backoff ranges, percentages;
//! sizes and durations are read by `crate::size`, as everywhere else), the choice of
//! memory-cgroup hierarchy from `/proc/self/mounts` and `/proc/self/cgroup` text, the restart
//! policy and its exponential backoff, the warn-at hysteresis, the `--guard` victim
//! ranking, and the classification of a death from its evidence into one sentence.
//!
//! Nothing here opens a file, reads a clock or waits for a process: the supervisor in
//! `oomguard::run` gathers the evidence and calls in here. Durations are passed in, so backoff
//! and hysteresis are tested without sleeping.

use std::fmt;
use std::time::Duration;

use crate::badness::{badness, pick_highest, Era, TaskFacts, TaskMemPages};
use crate::event::OomEvent;
use crate::units::{KIB, MIB};

// ---------------------------------------------------------------------------------------------
// Command-line values

/// Why a size, duration or range on the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The text as given.
    pub input: String,
    /// What is wrong, and what would be right.
    pub why: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid value {:?}: {}", self.input, self.why)
    }
}

impl std::error::Error for ValueError {}

fn value_error(input: &str, why: &'static str) -> ValueError {
    ValueError {
        input: input.to_owned(),
        why: why.to_owned(),
    }
}

/// A backoff range `MIN..MAX`, e.g. `1s..60s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffRange {
    /// The first delay.
    pub min: Duration,
    /// The cap.
    pub max: Duration,
}

/// Parses `MIN..MAX` (each a duration, MIN ≤ MAX).
pub fn parse_backoff(input: &str) -> Result<BackoffRange, ValueError> {
    let Some((min, max)) = input.split_once("..") else {
        return Err(value_error(input, "expected MIN..MAX, e.g. 1s..60s"));
    };
    let part = |t: &str| {
        crate::size::parse_duration(t).map_err(|e| ValueError {
            input: input.to_owned(),
            why: e.to_string(),
        })
    };
    let (min, max) = (part(min)?, part(max)?);
    if min > max {
        return Err(value_error(input, "MIN is larger than MAX"));
    }
    Ok(BackoffRange { min, max })
}

/// Parses `--warn-at`: a percentage of the limit, `1`..`100`, with or without `%`.
pub fn parse_percent(input: &str) -> Result<u8, ValueError> {
    let s = input.trim();
    let s = s.strip_suffix('%').unwrap_or(s);
    match s.parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(p),
        _ => Err(value_error(input, "expected a percentage from 1 to 100")),
    }
}

/// True when `name` can be a cgroup directory component oomguard creates: `[A-Za-z0-9._-]`,
/// 1 to 64 bytes, not starting with a dot.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A name for the cgroup from the command's first word: its base name, with every byte
/// [`valid_name`] refuses replaced by `_`.
pub fn default_name(program: &str) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    let mut out: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, 'x');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Which hierarchy

/// The cgroup version a memory cgroup is created in (the one type for both hierarchies).
pub use crate::host::process::CgroupVersion;

/// Mount points of the unified hierarchy and of the v1 hierarchy carrying `memory`, from
/// `/proc/self/mounts` text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// Where `cgroup2` is mounted.
    pub unified: Option<String>,
    /// Where the v1 hierarchy with the `memory` controller is mounted.
    pub memory_v1: Option<String>,
}

/// Reads the cgroup mounts out of `/proc/self/mounts` (first one of each kind wins).
pub fn parse_cgroup_mounts(mounts: &str) -> CgroupMounts {
    let mut out = CgroupMounts::default();
    for line in mounts.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(_), Some(dir), Some(fstype), Some(opts)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        // Mount points with spaces are octal-escaped (`\040`); cgroup mounts never have them in
        // practice, and a path we cannot use is skipped rather than guessed.
        if dir.contains('\\') {
            continue;
        }
        if fstype == "cgroup2" && out.unified.is_none() {
            out.unified = Some(dir.to_owned());
        } else if fstype == "cgroup"
            && out.memory_v1.is_none()
            && opts.split(',').any(|o| o == "memory")
        {
            out.memory_v1 = Some(dir.to_owned());
        }
    }
    out
}

/// True when a `cgroup.controllers` text lists `memory`.
pub fn lists_memory(controllers: &str) -> bool {
    controllers.split_ascii_whitespace().any(|c| c == "memory")
}

/// Where `run` creates its cgroup when no parent is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyChoice {
    /// v1 or v2.
    pub version: CgroupVersion,
    /// The hierarchy's mount point.
    pub mount: String,
    /// oomguard's own cgroup in it, as `/proc/self/cgroup` shows it (`/` for the root).
    pub own_path: String,
    /// When v1 was chosen although a unified hierarchy exists: why v2 was not used.
    pub v2_skipped: Option<String>,
}

/// Chooses the hierarchy: v2 when the unified hierarchy's own cgroup offers the memory
/// controller (`own_v2_controllers` is the text of its `cgroup.controllers`, `None` if
/// unreadable), else v1 `memory`. The error says what is missing.
pub fn choose_hierarchy(
    mounts: &CgroupMounts,
    self_cgroup: &str,
    own_v2_controllers: Option<&str>,
) -> Result<HierarchyChoice, String> {
    use crate::killpath::{cgroup_path, Hierarchy};
    let mut v2_skipped = None;
    if let Some(unified) = &mounts.unified {
        match (
            cgroup_path(self_cgroup, Hierarchy::Unified),
            own_v2_controllers,
        ) {
            (Some(own), Some(ctl)) if lists_memory(ctl) => {
                return Ok(HierarchyChoice {
                    version: CgroupVersion::V2,
                    mount: unified.clone(),
                    own_path: own.to_owned(),
                    v2_skipped: None,
                })
            }
            (Some(own), Some(ctl)) => {
                v2_skipped = Some(format!(
                    "the memory controller is not available in cgroup v2 at {unified}{own} \
                     (cgroup.controllers: {:?})",
                    ctl.trim()
                ))
            }
            (None, _) => {
                v2_skipped = Some("/proc/self/cgroup has no cgroup v2 (0::) line".to_owned())
            }
            (Some(own), None) => {
                v2_skipped = Some(format!("cannot read {unified}{own}/cgroup.controllers"))
            }
        }
    }
    if let Some(v1) = &mounts.memory_v1 {
        if let Some(own) = cgroup_path(self_cgroup, Hierarchy::V1Controller("memory")) {
            return Ok(HierarchyChoice {
                version: CgroupVersion::V1,
                mount: v1.clone(),
                own_path: own.to_owned(),
                v2_skipped,
            });
        }
    }
    Err(match v2_skipped {
        Some(why) => format!("no usable memory cgroup controller: {why}, and no cgroup v1 memory hierarchy is mounted"),
        None => "no usable memory cgroup controller: neither cgroup v2 nor the cgroup v1 memory hierarchy is mounted".to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Restart policy and backoff

/// When a dead command is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never: `run` exits with the command's status.
    Never,
    /// Only after an OOM kill (the kernel's or oomguard's).
    OnOom,
    /// After any death except `exit 0`.
    OnFailure,
    /// After every death, `exit 0` included.
    Always,
}

impl RestartPolicy {
    /// Whether a command that died of `cause` is restarted under this policy.
    pub fn restarts_after(self, cause: &Cause) -> bool {
        match self {
            RestartPolicy::Never => false,
            RestartPolicy::OnOom => cause.is_oom(),
            RestartPolicy::OnFailure => !matches!(cause, Cause::Exited { code: 0 }),
            RestartPolicy::Always => true,
        }
    }
}

/// Exponential backoff between restarts: `min`, `2·min`, `4·min`, … capped at `max`; a run that
/// lasted at least `healthy_after` resets it to `min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    range: BackoffRange,
    healthy_after: Duration,
    /// Consecutive unhealthy deaths so far.
    failures: u32,
}

impl Backoff {
    pub fn new(range: BackoffRange, healthy_after: Duration) -> Self {
        Self {
            range,
            healthy_after,
            failures: 0,
        }
    }

    /// Records a death after the command ran for `ran_for`; returns the delay before the next
    /// start.
    pub fn after_death(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.healthy_after {
            self.failures = 0;
        }
        let shift = self.failures.min(32);
        self.failures = self.failures.saturating_add(1);
        let delay = self
            .range
            .min
            .checked_mul(1u32 << shift.min(31))
            .unwrap_or(self.range.max);
        delay.min(self.range.max)
    }

    /// Consecutive unhealthy deaths recorded (0 after a reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

// ---------------------------------------------------------------------------------------------
// Warn-at hysteresis

/// Fires once each time usage crosses the warn level upwards. After firing it re-arms only when
/// usage falls below the level by a margin (5% of the limit, at least 1 MiB), so usage hovering
/// at the level does not warn on every poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarnTracker {
    /// The warn level in bytes.
    pub level_bytes: u64,
    /// Usage below this re-arms the warning.
    pub rearm_bytes: u64,
    armed: bool,
}

impl WarnTracker {
    /// A tracker for `pct` percent of `limit_bytes`.
    pub fn new(limit_bytes: u64, pct: u8) -> Self {
        let level_bytes = (u128::from(limit_bytes) * u128::from(pct) / 100) as u64;
        let margin = (limit_bytes / 20).max(MIB);
        Self {
            level_bytes,
            rearm_bytes: level_bytes.saturating_sub(margin),
            armed: true,
        }
    }

    /// Feeds one usage reading; true when this reading is a new upward crossing.
    pub fn observe(&mut self, usage_bytes: u64) -> bool {
        if self.armed && usage_bytes >= self.level_bytes {
            self.armed = false;
            return true;
        }
        if !self.armed && usage_bytes < self.rearm_bytes {
            self.armed = true;
        }
        false
    }
}

// ---------------------------------------------------------------------------------------------
// --guard: ranking inside the cgroup

/// One process of the supervised cgroup, as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardCandidate {
    pub pid: i32,
    pub start_time_ticks: u64,
    pub comm: String,
    pub rss_bytes: u64,
    pub swap_bytes: u64,
    pub pgtables_bytes: u64,
    pub oom_score_adj: i64,
    /// `CAP_SYS_ADMIN` in `CapEff` (the root bonus of kernels before 4.17).
    pub cap_sys_admin: bool,
}

/// The kernel's `oom_badness()` for a memcg OOM in `era`, in pages: [`crate::badness::badness`]
/// with the memcg limit as `totalpages` (resident + swap + page tables, plus `oom_score_adj`
/// thousandths of the limit). `None` for `oom_score_adj` -1000 (never killed).
pub fn badness_pages(
    era: Era,
    c: &GuardCandidate,
    limit_bytes: u64,
    page_bytes: u64,
) -> Option<i64> {
    let page = page_bytes.max(1);
    let task = TaskFacts {
        is_global_init: false,
        is_kernel_thread: false,
        mem: Some(TaskMemPages {
            rss_pages: c.rss_bytes / page,
            swap_pages: c.swap_bytes / page,
            pgtables_pages: c.pgtables_bytes / page,
        }),
        oom_score_adj: c.oom_score_adj.clamp(-1000, 1000) as i16,
        cap_sys_admin: c.cap_sys_admin,
    };
    badness(era, &task, limit_bytes / page).points()
}

/// The process the guard kills: the highest badness; ties go to the larger RSS, then the
/// younger process (higher start time), as a later-started worker is usually the cheaper loss.
/// The choice is the one chooser's ([`crate::badness::pick_highest`], later wins on a tie), over
/// the candidates ordered by RSS and start time so the preferred one of a tie comes later.
pub fn choose_victim(
    era: Era,
    cands: &[GuardCandidate],
    limit_bytes: u64,
    page_bytes: u64,
) -> Option<&GuardCandidate> {
    let mut order: Vec<&GuardCandidate> = cands.iter().collect();
    order.sort_by_key(|c| (c.rss_bytes, c.start_time_ticks));
    let i = pick_highest(
        order
            .iter()
            .map(|c| badness_pages(era, c, limit_bytes, page_bytes)),
    )?;
    Some(order[i])
}

/// The usage at which the guard acts: `headroom_bytes` below the limit.
pub fn guard_level(limit_bytes: u64, headroom_bytes: u64) -> u64 {
    limit_bytes.saturating_sub(headroom_bytes)
}

// ---------------------------------------------------------------------------------------------
// Why it died

/// How `waitpid` says the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl WaitStatus {
    /// The status a shell would give: the code, or 128 + the signal.
    pub fn shell_status(self) -> u8 {
        match self {
            WaitStatus::Exited(code) => (code & 0xff) as u8,
            WaitStatus::Signaled { signal, .. } => (128 + (signal & 0x7f)) as u8,
        }
    }
}

/// The name of a signal (`SIGSEGV`), or `signal N` for numbers without one.
pub fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(signal).ok().and_then(|i| NAMES.get(i)) {
        Some(name) if !name.is_empty() => (*name).to_owned(),
        _ => format!("signal {signal}"),
    }
}

/// What oomguard knew about the death of the command's main process.
#[derive(Debug, Clone, Copy)]
pub struct DeathEvidence<'a> {
    /// The main process.
    pub pid: i64,
    /// Its wait status.
    pub status: WaitStatus,
    /// How much the cgroup's `oom_kill` counter rose during this run (`None`: unreadable).
    pub oom_kills_delta: Option<u64>,
    /// Kernel OOM reports (from `/dev/kmsg`) of kills in this cgroup during this run.
    pub kernel_reports: &'a [OomEvent],
    /// oomguard's own `--guard` kills during this run.
    pub guard_kills: &'a [OomEvent],
    /// Whether `/dev/kmsg` was followed (when not, kernel reports cannot be there).
    pub kmsg_followed: bool,
}

/// Why the command died.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The kernel's memcg OOM killer killed the main process. `report` is its OOM report when
    /// `/dev/kmsg` showed it.
    KernelOom { report: Option<OomEvent> },
    /// oomguard's `--guard` killed the main process.
    Oomguard { kill: OomEvent },
    /// It exited by itself.
    Exited { code: i32 },
    /// A signal killed it, and it was not an OOM kill.
    Signaled { signal: i32, core_dumped: bool },
}

impl Cause {
    /// True for a kill because memory ran out (the kernel's or oomguard's).
    pub fn is_oom(&self) -> bool {
        matches!(self, Cause::KernelOom { .. } | Cause::Oomguard { .. })
    }

    /// A short machine-readable name: `kernel_oom`, `oomguard`, `exit`, `signal`.
    pub fn tag(&self) -> &'static str {
        match self {
            Cause::KernelOom { .. } => "kernel_oom",
            Cause::Oomguard { .. } => "oomguard",
            Cause::Exited { .. } => "exit",
            Cause::Signaled { .. } => "signal",
        }
    }
}

/// Decides why the main process died.
///
/// - SIGKILL plus an oomguard kill record of that pid: oomguard.
/// - SIGKILL plus a kernel report naming that pid: the kernel OOM killer.
/// - SIGKILL, no report naming another pid either, and the cgroup's `oom_kill` counter rose:
///   the kernel OOM killer (the report was lost or `/dev/kmsg` was unreadable).
/// - Anything else is what the wait status says: an exit code is never an OOM of the main
///   process, and a SIGKILL while the counter did not move came from someone else.
pub fn classify(ev: &DeathEvidence<'_>) -> Cause {
    let (signal, core_dumped) = match ev.status {
        WaitStatus::Exited(code) => return Cause::Exited { code },
        WaitStatus::Signaled {
            signal,
            core_dumped,
        } => (signal, core_dumped),
    };
    if signal == 9 {
        if let Some(k) = ev.guard_kills.iter().find(|k| k.pid == Some(ev.pid)) {
            return Cause::Oomguard { kill: k.clone() };
        }
        if let Some(r) = ev.kernel_reports.iter().find(|r| r.pid == Some(ev.pid)) {
            return Cause::KernelOom {
                report: Some(r.clone()),
            };
        }
        let others_reported = !ev.kernel_reports.is_empty();
        if !others_reported && ev.oom_kills_delta.is_some_and(|d| d > 0) {
            return Cause::KernelOom { report: None };
        }
    }
    Cause::Signaled {
        signal,
        core_dumped,
    }
}

use crate::units::format_mib as mib;

fn kb_mib(kb: u64) -> String {
    mib(kb.saturating_mul(KIB))
}

/// Describes the victim's memory at death from a kill event: `RSS at death 507.0 MiB (anon
/// 500.0 MiB, file 7.0 MiB)`, shmem only when non-zero.
fn rss_clause(ev: &OomEvent) -> Option<String> {
    let total = ev.rss_kb()?;
    let mut parts = Vec::new();
    if let Some(a) = ev.anon_rss_kb {
        parts.push(format!("anon {}", kb_mib(a)));
    }
    if let Some(f) = ev.file_rss_kb {
        parts.push(format!("file {}", kb_mib(f)));
    }
    if let Some(s) = ev.shmem_rss_kb.filter(|&s| s > 0) {
        parts.push(format!("shmem {}", kb_mib(s)));
    }
    Some(format!(
        "RSS at death {} ({})",
        kb_mib(total),
        parts.join(", ")
    ))
}

/// What the supervisor knows about its cgroup, for the sentence.
#[derive(Debug, Clone, Copy)]
pub struct CgroupFacts<'a> {
    /// The cgroup path as the kernel prints it (`/process_api/x/oomguard-web`).
    pub path: &'a str,
    /// The limit that was set, if any.
    pub limit_bytes: Option<u64>,
}

/// One sentence saying why the command died, for the stderr report and the event's `run.why`.
pub fn explain(cause: &Cause, cg: &CgroupFacts<'_>, other_kills: &[OomEvent]) -> String {
    let mut s = match cause {
        Cause::KernelOom { report: Some(r) } => {
            let cgroup = r.oom_memcg.as_deref().unwrap_or(cg.path);
            let limit = r
                .memcg_limit_kb
                .map(|kb| kb.saturating_mul(KIB))
                .or(cg.limit_bytes);
            let mut s = match limit {
                Some(l) => format!(
                    "killed by the kernel OOM killer: cgroup {cgroup} reached its {} limit",
                    mib(l)
                ),
                None => {
                    format!("killed by the kernel OOM killer: cgroup {cgroup} ran out of memory")
                }
            };
            if let Some(rss) = rss_clause(r) {
                s.push_str("; ");
                s.push_str(&rss);
            }
            s
        }
        Cause::KernelOom { report: None } => {
            let mut s = format!(
                "killed by the kernel OOM killer: cgroup {} reached its {} limit",
                cg.path,
                cg.limit_bytes.map_or_else(|| "memory".to_owned(), mib)
            );
            s.push_str(
                " (its oom_kill counter rose; the kernel's OOM report was not seen in /dev/kmsg)",
            );
            s
        }
        Cause::Oomguard { kill } => {
            let mut s = "killed by oomguard (--guard)".to_owned();
            if let (Some(u), Some(l)) = (kill.memcg_usage_kb, kill.memcg_limit_kb) {
                s.push_str(&format!(
                    ": cgroup {} used {} of its {} limit",
                    kill.oom_memcg.as_deref().unwrap_or(cg.path),
                    kb_mib(u),
                    kb_mib(l)
                ));
            }
            if let Some(rss) = rss_clause(kill) {
                s.push_str("; ");
                s.push_str(&rss);
            }
            s
        }
        Cause::Exited { code } => format!("exited with status {code}"),
        Cause::Signaled {
            signal,
            core_dumped,
        } => {
            let mut s = format!("killed by {}", signal_name(*signal));
            if *core_dumped {
                s.push_str(" (core dumped)");
            }
            s
        }
    };
    let main_pid = match cause {
        Cause::KernelOom { report: Some(r) } => r.pid,
        Cause::Oomguard { kill } => kill.pid,
        _ => None,
    };
    let others: Vec<String> = other_kills
        .iter()
        .filter(|k| k.pid.is_some() && k.pid != main_pid)
        .map(|k| {
            format!(
                "pid {} ({})",
                k.pid.unwrap_or_default(),
                k.comm.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !others.is_empty() {
        s.push_str(&format!(
            "; also OOM-killed in its cgroup during this run: {}",
            others.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests;

/// The memory figures of `/proc/PID/status` the guard ranks and reports by, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusMemory {
    /// `Name:` (the comm).
    pub name: String,
    pub rss_anon_bytes: u64,
    pub rss_file_bytes: u64,
    pub rss_shmem_bytes: u64,
    pub swap_bytes: u64,
    pub pgtables_bytes: u64,
}

impl StatusMemory {
    /// Resident memory: anon + file + shmem.
    pub fn rss_bytes(&self) -> u64 {
        self.rss_anon_bytes + self.rss_file_bytes + self.rss_shmem_bytes
    }
}

/// The fields of `/proc/PID/status` text that [`StatusMemory`] holds, read by the one parser of
/// that file ([`crate::host::process::scan_status`]; kB → bytes there, once). Missing fields
/// (kernel threads, zombies) stay 0, and so does everything of a malformed file.
pub fn parse_status_memory(text: &str) -> StatusMemory {
    crate::host::process::scan_status(text.as_bytes())
        .map(|scan| StatusMemory::from_scan(&scan))
        .unwrap_or_default()
}

impl StatusMemory {
    /// The figures of one read of `/proc/PID/status`.
    pub fn from_scan(scan: &crate::host::process::StatusScan<'_>) -> Self {
        let s = scan.status;
        StatusMemory {
            name: String::from_utf8_lossy(scan.name).into_owned(),
            rss_anon_bytes: s.rss_anon_bytes.unwrap_or(0),
            rss_file_bytes: s.rss_file_bytes.unwrap_or(0),
            rss_shmem_bytes: s.rss_shmem_bytes.unwrap_or(0),
            swap_bytes: s.vm_swap_bytes.unwrap_or(0),
            pgtables_bytes: s.vm_pte_bytes.unwrap_or(0),
        }
    }
}
