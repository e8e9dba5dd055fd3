//! `oomguard doctor`: an audit of this machine's OOM risk. Each check reads what it needs through
//! the injectable readers and produces [`Finding`]s with a severity, the evidence (file and value
//! read) and the fix. A check that cannot read its input degrades: the report lists what is
//! missing instead of guessing.
//!
//! The finding list is open: [`Report::push`] lets other sources add findings (the `explain`
//! integration adds "recent kernel OOM kills in the kernel log" in `kernel_log_check`; the zram
//! devices under sysfs add theirs in [`zram_check`]).
//!
//! Exit status (documented in `--help`): 0 when nothing is worse than info, 1 when the worst
//! finding is a warning, 2 when it is critical, 3 when the audit could not run.

use crate::cli::DoctorArgs;
use crate::host::cgroupfs::{CgroupLayout, Memcg};
use crate::host::scan::{ProcSample, ScanStats, Scanner};
use crate::host::{page_size_bytes, CgroupFs, ProcFs, ReadError, ZramFs};
use oomguard_core::host::cgroup::Limit;
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::host::system::MemInfo;
use oomguard_core::host::zram::{ZramFull, DEFAULT_ZRAM_FULL_PCT};
use oomguard_core::units::{mib_1, MIB};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// How bad a finding is. Ordered: `Ok < Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Critical,
}

/// A file read and the value found in it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Evidence {
    pub file: String,
    pub value: String,
}

/// One audit result.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier (`overcommit`, `swap`, `panic_on_oom`, ...).
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: Vec<Evidence>,
    pub fix: Option<String>,
}

/// The audit.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Inputs that could not be read (permission, absent, malformed), each with the reason.
    pub missing: Vec<String>,
    pub scan: ScanStats,
}

impl Report {
    /// Adds a finding (from a check here, or from elsewhere such as `explain`).
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// The worst severity, `Ok` for an empty report.
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// The exit status for the worst severity.
    pub fn exit_code(&self) -> i32 {
        match self.worst() {
            Severity::Ok | Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
        }
    }

    /// The findings with this id.
    pub fn by_id<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.id == id)
    }
}

fn ev(file: impl Into<String>, value: impl std::fmt::Display) -> Evidence {
    Evidence {
        file: file.into(),
        value: value.to_string(),
    }
}

fn finding(
    id: &'static str,
    severity: Severity,
    title: impl Into<String>,
    evidence: Vec<Evidence>,
    fix: Option<&str>,
) -> Finding {
    Finding {
        id,
        severity,
        title: title.into(),
        evidence,
        fix: fix.map(str::to_owned),
    }
}

/// Critical services checked when no `--critical` is given.
pub const DEFAULT_CRITICAL: [&str; 4] = ["sshd", "systemd-journald", "systemd", "init"];
/// Userspace OOM killers recognised by process name.
pub const USERSPACE_KILLERS: [&str; 5] = ["earlyoom", "nohang", "systemd-oomd", "oomd", "oomguard"];

struct Ctx<'a> {
    proc: &'a ProcFs,
    cgroup: &'a CgroupFs,
    report: Report,
}

impl Ctx<'_> {
    fn missing(&mut self, e: &ReadError) {
        self.report.missing.push(e.to_string());
    }
    fn sysctl(&mut self, name: &'static str) -> Option<i64> {
        match self.proc.read_sysctl_vm(name) {
            Ok(v) => Some(v),
            Err(e) => {
                self.missing(&e);
                None
            }
        }
    }
    fn file(&self, rel: &str) -> String {
        self.proc.root().join(rel).display().to_string()
    }
}

/// Runs every check against the given roots.
pub fn audit(proc: &ProcFs, cgroup: &CgroupFs, critical: &[String]) -> Report {
    let mut cx = Ctx {
        proc,
        cgroup,
        report: Report::default(),
    };
    let meminfo = match proc.read_meminfo() {
        Ok(m) => Some(m),
        Err(e) => {
            cx.missing(&e);
            None
        }
    };
    check_overcommit(&mut cx, meminfo.as_ref());
    check_swap(&mut cx, meminfo.as_ref());
    check_oom_sysctls(&mut cx);
    check_psi(&mut cx);
    let layout = cgroup.layout();
    check_cgroups(&mut cx, &layout);
    check_memcgs(&mut cx, &layout);
    let mut samples = Vec::new();
    match Scanner::new(proc) {
        Ok(mut scanner) => {
            let mut stats = ScanStats::default();
            if let Err(e) = scanner.scan(&mut samples, &mut stats) {
                cx.missing(&e);
            }
            if stats.permission_denied > 0 {
                cx.report.missing.push(format!(
                    "{} processes unreadable (permission denied): process checks are partial",
                    stats.permission_denied
                ));
            }
            cx.report.scan = stats;
        }
        Err(e) => cx.missing(&e),
    }
    check_protected_large(&mut cx, &samples, meminfo.as_ref());
    check_critical_unprotected(&mut cx, &samples, critical);
    check_userspace_killers(&mut cx, &samples);
    cx.report
}

fn check_overcommit(cx: &mut Ctx, m: Option<&MemInfo>) {
    let Some(mode) = cx.sysctl("overcommit_memory") else {
        return;
    };
    let f = cx.file("sys/vm/overcommit_memory");
    let mut evidence = vec![ev(&f, mode)];
    let (limit, committed) = m.map_or((None, None), |m| {
        (m.commit_limit_bytes, m.committed_as_bytes)
    });
    let total = m.and_then(|m| Some(m.mem_total_bytes? + m.swap_total_bytes.unwrap_or(0)));
    if let (Some(l), Some(c)) = (limit, committed) {
        evidence.push(ev(
            cx.file("meminfo"),
            format!(
                "CommitLimit {} MiB, Committed_AS {} MiB",
                mib_1(l),
                mib_1(c)
            ),
        ));
    }
    let (sev, title, fix) = match mode {
        1 => (
            Severity::Warning,
            "vm.overcommit_memory=1: every allocation succeeds, so running out ends in OOM kills, never in an allocation error".to_owned(),
            Some("sysctl vm.overcommit_memory=0 (heuristic), unless a workload documents that it needs 1 (e.g. Redis fork for snapshots)"),
        ),
        2 => match (limit, committed) {
            (Some(l), Some(c)) if c.saturating_mul(10) >= l.saturating_mul(9) => (
                Severity::Warning,
                format!("vm.overcommit_memory=2 and Committed_AS is {}% of CommitLimit: allocations are about to fail with ENOMEM", c * 100 / l.max(1)),
                Some("raise vm.overcommit_ratio (or overcommit_kbytes) or add swap; find the large committers with `oomguard rank`"),
            ),
            _ => (
                Severity::Info,
                "vm.overcommit_memory=2 (strict): allocations beyond CommitLimit fail with ENOMEM instead of OOM kills".to_owned(),
                None,
            ),
        },
        0 => match (committed, total) {
            (Some(c), Some(t)) if c > t => (
                Severity::Warning,
                format!("vm.overcommit_memory=0 and Committed_AS ({} MiB) exceeds RAM + swap ({} MiB): if the committed memory is touched, the OOM killer runs", mib_1(c), mib_1(t)),
                Some("add swap or memory, or cap the workloads (memory cgroup limits)"),
            ),
            _ => (
                Severity::Ok,
                "vm.overcommit_memory=0 (heuristic) and Committed_AS within RAM + swap".to_owned(),
                None,
            ),
        },
        other => (
            Severity::Warning,
            format!("vm.overcommit_memory={other} is not a mode the kernel defines (0, 1, 2)"),
            Some("sysctl vm.overcommit_memory=0"),
        ),
    };
    cx.report
        .push(finding("overcommit", sev, title, evidence, fix));
}

fn check_swap(cx: &mut Ctx, m: Option<&MemInfo>) {
    let Some(m) = m else { return };
    let (Some(total), Some(swap)) = (m.mem_total_bytes, m.swap_total_bytes) else {
        cx.report.missing.push("meminfo: no SwapTotal".to_owned());
        return;
    };
    let e = vec![ev(
        cx.file("meminfo"),
        format!(
            "SwapTotal {} MiB, MemTotal {} MiB",
            mib_1(swap),
            mib_1(total)
        ),
    )];
    let fix = Some("add a swap file or zram (even a small one lets the kernel page out cold anonymous memory before it kills)");
    let f = if swap == 0 {
        finding("swap", Severity::Warning, "no swap: anonymous memory cannot be paged out, memory pressure goes straight to the OOM killer", e, fix)
    } else if swap < (total / 32).min(512 * MIB) {
        finding(
            "swap",
            Severity::Info,
            format!(
                "tiny swap ({} MiB): little room to page out cold memory",
                mib_1(swap)
            ),
            e,
            fix,
        )
    } else {
        finding("swap", Severity::Ok, "swap configured", e, None)
    };
    cx.report.push(f);
}

fn check_oom_sysctls(cx: &mut Ctx) {
    if let Some(v) = cx.sysctl("panic_on_oom") {
        let e = vec![ev(cx.file("sys/vm/panic_on_oom"), v)];
        cx.report.push(match v {
            0 => finding("panic_on_oom", Severity::Ok, "vm.panic_on_oom=0: the OOM killer kills a process, the machine stays up", e, None),
            1 => finding("panic_on_oom", Severity::Critical, "vm.panic_on_oom=1: a system-wide OOM panics the machine", e, Some("sysctl vm.panic_on_oom=0 unless this box is meant to reboot on OOM (kdump, failover)")),
            _ => finding("panic_on_oom", Severity::Critical, format!("vm.panic_on_oom={v}: every OOM, memory-cgroup ones included, panics the machine"), e, Some("sysctl vm.panic_on_oom=0")),
        });
    }
    if let Some(v) = cx.sysctl("oom_kill_allocating_task") {
        let e = vec![ev(cx.file("sys/vm/oom_kill_allocating_task"), v)];
        cx.report.push(if v != 0 {
            finding("oom_kill_allocating_task", Severity::Warning, "vm.oom_kill_allocating_task is set: the kernel kills whoever allocated last, not the biggest process", e, Some("sysctl vm.oom_kill_allocating_task=0"))
        } else {
            finding("oom_kill_allocating_task", Severity::Ok, "vm.oom_kill_allocating_task=0: the kernel picks by badness", e, None)
        });
    }
    if let Some(v) = cx.sysctl("oom_dump_tasks") {
        let e = vec![ev(cx.file("sys/vm/oom_dump_tasks"), v)];
        cx.report.push(if v == 0 {
            finding("oom_dump_tasks", Severity::Warning, "vm.oom_dump_tasks=0: the next OOM report will not list the tasks (no evidence of who used what)", e, Some("sysctl vm.oom_dump_tasks=1"))
        } else {
            finding("oom_dump_tasks", Severity::Ok, "vm.oom_dump_tasks=1: OOM reports include the task table", e, None)
        });
    }
}

fn check_psi(cx: &mut Ctx) {
    let f = cx.file("pressure/memory");
    match cx.proc.read_pressure_memory() {
        Ok(p) => cx.report.push(finding(
            "psi",
            Severity::Ok,
            "PSI available: memory pressure can be watched before OOM",
            vec![ev(
                f,
                format!(
                    "some avg10={:.2} full avg10={:.2}",
                    p.some.avg10_pct,
                    p.full.map_or(0.0, |x| x.avg10_pct)
                ),
            )],
            None,
        )),
        Err(ReadError::NotPresent { .. }) | Err(ReadError::Io { .. }) => cx.report.push(finding(
            "psi",
            Severity::Warning,
            "PSI (pressure stall information) unavailable: no early warning of memory pressure",
            vec![ev(f, "absent or disabled")],
            Some("boot with psi=1 (kernel 4.20+ with CONFIG_PSI)"),
        )),
        Err(e) => cx.missing(&e),
    }
}

fn check_cgroups(cx: &mut Ctx, layout: &CgroupLayout) {
    let root = cx.cgroup.root().display().to_string();
    let mut e = vec![];
    if let Some(v1) = &layout.v1_memory {
        e.push(ev(v1.display().to_string(), "v1 memory controller mounted"));
    }
    if let Some(v2) = &layout.v2 {
        e.push(ev(
            v2.join("cgroup.controllers").display().to_string(),
            if layout.v2_memory_controller {
                "memory enabled"
            } else {
                "no memory controller"
            },
        ));
    }
    let f = match (&layout.v1_memory, layout.v2_memory_controller) {
        (None, false) => finding("cgroup", Severity::Warning, "no memory cgroup controller: workloads cannot be limited or protected individually", vec![ev(root, "no v1 memory hierarchy, no v2 memory controller")], Some("enable the memory controller (cgroup v2: systemd.unified_cgroup_hierarchy=1, cgroup_enable=memory)")),
        (Some(_), false) => finding("cgroup", Severity::Info, "memory controller on cgroup v1 (deprecated in 6.x): no memory.high/low/min protection, no memory.events", e, Some("move to cgroup v2 when the stack allows it")),
        (_, true) => finding("cgroup", Severity::Ok, "memory controller on cgroup v2", e, None),
    };
    cx.report.push(f);
}

fn check_memcgs(cx: &mut Ctx, layout: &CgroupLayout) {
    let mut bases: Vec<(CgroupVersion, std::path::PathBuf)> = vec![];
    if let Some(v1) = &layout.v1_memory {
        bases.push((CgroupVersion::V1, v1.clone()));
    }
    if let (Some(v2), true) = (&layout.v2, layout.v2_memory_controller) {
        bases.push((CgroupVersion::V2, v2.clone()));
    }
    let mut near = 0;
    let mut killed = 0;
    for (version, base) in bases {
        let mut dirs = vec![];
        cx.cgroup.walk(&base, 5000, &mut dirs);
        for dir in dirs.iter().skip(1) {
            let memcg = match cx.cgroup.read_memcg(version, dir) {
                Ok(m) => m,
                Err(ReadError::Vanished { .. } | ReadError::NotPresent { .. }) => continue,
                Err(e) => {
                    cx.missing(&e);
                    continue;
                }
            };
            let (usage, limit, ooms, under_oom, file) = match &memcg {
                Memcg::V1(m) => (
                    m.usage_bytes,
                    m.limit,
                    m.oom_control.oom_kill.unwrap_or(0),
                    m.oom_control.under_oom,
                    "memory.oom_control",
                ),
                Memcg::V2(m) => (
                    m.current_bytes,
                    m.max,
                    m.events.oom_kill.unwrap_or(0),
                    false,
                    "memory.events",
                ),
            };
            let shown = dir
                .strip_prefix(&base)
                .map_or(dir.display().to_string(), |p| format!("/{}", p.display()));
            if ooms > 0 || under_oom {
                killed += 1;
                cx.report.push(finding(
                    "memcg_oom_kills",
                    if under_oom {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "memory cgroup {shown} has had {ooms} OOM kill(s){}",
                        if under_oom {
                            " and is under OOM now"
                        } else {
                            ""
                        }
                    ),
                    vec![ev(
                        dir.join(file).display().to_string(),
                        format!(
                            "oom_kill {ooms}{}",
                            if under_oom { ", under_oom 1" } else { "" }
                        ),
                    )],
                    Some("raise its limit or find what grew: `oomguard rank --cgroup PATH`"),
                ));
            }
            if let Limit::Bytes(l) = limit {
                if l > 0 && usage.saturating_mul(10) >= l.saturating_mul(9) {
                    near += 1;
                    cx.report.push(finding(
                        "memcg_near_limit",
                        Severity::Warning,
                        format!(
                            "memory cgroup {shown} uses {}% of its limit",
                            usage.saturating_mul(100) / l
                        ),
                        vec![ev(
                            dir.display().to_string(),
                            format!("usage {} MiB, limit {} MiB", mib_1(usage), mib_1(l)),
                        )],
                        Some(
                            "raise the limit, or check `oomguard rank --cgroup PATH` for who grows",
                        ),
                    ));
                }
            }
        }
    }
    if near == 0 {
        cx.report.push(finding(
            "memcg_near_limit",
            Severity::Ok,
            "no memory cgroup above 90% of its limit",
            vec![],
            None,
        ));
    }
    if killed == 0 {
        cx.report.push(finding(
            "memcg_oom_kills",
            Severity::Ok,
            "no OOM kills recorded in memory cgroup counters",
            vec![],
            None,
        ));
    }
}

fn check_protected_large(cx: &mut Ctx, samples: &[ProcSample], m: Option<&MemInfo>) {
    let ps = page_size_bytes();
    let total = m.and_then(|m| m.mem_total_bytes).unwrap_or(0);
    // "Large": at least 10 % of RAM. Such a process cannot be killed, so the kernel must find
    // the memory elsewhere or, if nothing else is killable, panic.
    let threshold = total / 10;
    let mut any = false;
    for s in samples.iter().filter(|s| s.oom_score_adj == -1000) {
        let bytes = s.mem.map_or(0, |m| m.total_pages() * ps);
        if total > 0 && bytes >= threshold {
            any = true;
            cx.report.push(finding("protected_large", Severity::Warning,
                format!("{} (pid {}) uses {} MiB and has oom_score_adj -1000: the OOM killer can never reclaim it", s.comm.as_str(), s.pid, mib_1(bytes)),
                vec![ev(cx.file(&format!("{}/oom_score_adj", s.pid)), -1000)],
                Some("protect it with a milder value (e.g. -900) or a memory.min/memory.low reservation so a runaway can still be stopped")));
        }
    }
    if !any {
        cx.report.push(finding(
            "protected_large",
            Severity::Ok,
            "no large process is fully exempt from the OOM killer",
            vec![],
            None,
        ));
    }
}

fn check_critical_unprotected(cx: &mut Ctx, samples: &[ProcSample], critical: &[String]) {
    let defaults: Vec<String> = DEFAULT_CRITICAL.iter().map(|s| (*s).to_owned()).collect();
    let names = if critical.is_empty() {
        &defaults
    } else {
        critical
    };
    let mut any = false;
    for s in samples {
        let comm = s.comm.as_str();
        // pid 1 is never picked by the kernel, whatever its adj.
        // comm is truncated to TASK_COMM_LEN - 1 = 15 bytes ("systemd-journal").
        if s.pid == 1 || !names.iter().any(|n| comm_matches(&comm, n)) {
            continue;
        }
        if s.oom_score_adj >= 0 {
            any = true;
            cx.report.push(finding(
                "critical_unprotected",
                Severity::Warning,
                format!(
                    "critical service {comm} (pid {}) is not protected: oom_score_adj {}",
                    s.pid, s.oom_score_adj
                ),
                vec![ev(
                    cx.file(&format!("{}/oom_score_adj", s.pid)),
                    s.oom_score_adj,
                )],
                Some("give it a negative oom_score_adj (systemd: OOMScoreAdjust=-900 in the unit)"),
            ));
        }
    }
    if !any {
        cx.report.push(finding(
            "critical_unprotected",
            Severity::Ok,
            format!(
                "critical services protected or not running ({})",
                names.join(", ")
            ),
            vec![],
            None,
        ));
    }
}

fn check_userspace_killers(cx: &mut Ctx, samples: &[ProcSample]) {
    let me = std::process::id() as i32;
    let running: Vec<(i32, String)> = samples
        .iter()
        .filter(|s| s.pid != me)
        .filter_map(|s| {
            let c = s.comm.as_str();
            USERSPACE_KILLERS
                .iter()
                .find(|k| comm_matches(&c, k))
                .map(|k| (s.pid, (*k).to_owned()))
        })
        .collect();
    let evidence: Vec<Evidence> = running
        .iter()
        .map(|(pid, n)| ev(cx.file(&format!("{pid}/stat")), n))
        .collect();
    let mut kinds: Vec<&str> = running.iter().map(|(_, n)| n.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    cx.report.push(match kinds.len() {
        0 => finding(
            "userspace_oom_killers",
            Severity::Info,
            "no userspace OOM killer running: only the kernel's, which acts at the last moment",
            vec![],
            Some("run the oomguard daemon (or earlyoom/systemd-oomd)"),
        ),
        1 => finding(
            "userspace_oom_killers",
            Severity::Ok,
            format!("one userspace OOM killer running: {}", kinds[0]),
            evidence,
            None,
        ),
        _ => finding(
            "userspace_oom_killers",
            Severity::Warning,
            format!(
                "several userspace OOM killers running at once ({}): they race and may kill twice",
                kinds.join(", ")
            ),
            evidence,
            Some("keep one"),
        ),
    });
}

/// Whether a `comm` (truncated by the kernel to 15 bytes) is the process called `name`.
pub fn comm_matches(comm: &str, name: &str) -> bool {
    comm == name || (comm.len() == 15 && name.len() > 15 && name.starts_with(comm))
}

/// Writes the report for people.
pub fn write_plain(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let mut fs: Vec<&Finding> = r.findings.iter().collect();
    fs.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in fs {
        let tag = match f.severity {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        };
        writeln!(out, "[{tag}] {}", f.title)?;
        for e in &f.evidence {
            writeln!(out, "    evidence: {} = {}", e.file, e.value)?;
        }
        if let Some(fix) = &f.fix {
            if f.severity > Severity::Ok {
                writeln!(out, "    fix: {fix}")?;
            }
        }
    }
    for m in &r.missing {
        writeln!(out, "[incomplete] could not read: {m}")?;
    }
    writeln!(out, "worst: {:?} (exit {})", r.worst(), r.exit_code())
}

/// "Recent kernel OOM kills in the kernel log", read with `explain`'s parser.
pub fn kernel_log_check(r: &mut Report, log: Option<&Path>) {
    if log == Some(Path::new("none")) {
        return;
    }
    let opened = match log {
        Some(p) => crate::explain::input::open_arg(p).map(|i| (i, p.display().to_string())),
        None => crate::explain::input::system_log(Path::new("/")).map(|(i, _)| {
            let name = i.name.clone();
            (i, name)
        }),
    };
    let (input, source) = match opened {
        Ok(x) => x,
        Err(e) => {
            r.missing.push(format!("kernel log: {e:#}"));
            return;
        }
    };
    match crate::explain::collect(input, 100) {
        Err(e) => r.missing.push(format!("kernel log {source}: {e}")),
        Ok((events, total)) => r.push(kernel_oom_finding(&events, total, &source)),
    }
}

/// The finding for the kernel OOM events found in a log (`total` counted, the newest kept).
pub fn kernel_oom_finding(
    events: &[oomguard_core::event::OomEvent],
    total: u64,
    source: &str,
) -> Finding {
    use oomguard_core::event::EventKind;
    let kills: Vec<_> = events
        .iter()
        .filter(|e| e.kind != EventKind::Incomplete)
        .collect();
    if kills.is_empty() {
        return finding(
            "kernel_oom_kills",
            Severity::Ok,
            "no kernel OOM kill in the kernel log",
            vec![ev(source, format!("{total} OOM events"))],
            None,
        );
    }
    let mut evidence = vec![ev(source, format!("{total} OOM events"))];
    for e in kills.iter().rev().take(5) {
        let when = e
            .time
            .clone()
            .or_else(|| e.kernel_time_s.map(|t| format!("{t:.0} s after boot")))
            .unwrap_or_else(|| "?".into());
        let scope = e
            .oom_memcg
            .as_deref()
            .map_or("whole machine".to_owned(), |c| format!("cgroup {c}"));
        evidence.push(ev(
            format!("kill at {when}"),
            format!(
                "{:?} (pid {}) in {scope}",
                e.comm.as_deref().unwrap_or("?"),
                e.pid.map_or("?".into(), |p| p.to_string())
            ),
        ));
    }
    let global = kills
        .iter()
        .any(|e| e.oom_memcg.is_none() && e.constraint.as_deref() != Some("CONSTRAINT_MEMCG"));
    finding(
        "kernel_oom_kills",
        if global { Severity::Critical } else { Severity::Warning },
        format!(
            "the kernel's OOM killer killed {} time(s) recently{}",
            kills.len(),
            if global { ", at least once because the whole machine ran out" } else { " (memory cgroup limits)" }
        ),
        evidence,
        Some("run `oomguard explain` for what died, why and what to change; `oomguard watch` acts before the kernel must"),
    )
}

/// The `zram` finding, one per configured zram device: critical when it is nearly full
/// (`full_pct` of its `disksize`, or of its `mem_limit` in RAM), because then swap is exhausted
/// whatever `SwapFree` in /proc/meminfo says, and the next swap-out fails; ok otherwise.
/// Unconfigured devices (`disksize` 0) are not reported.
pub fn zram_check(r: &mut Report, zram: &ZramFs, meminfo: Option<&MemInfo>, full_pct: f64) {
    let devices = match zram.read_devices() {
        Ok(d) => d,
        Err(e) => {
            r.missing.push(e.to_string());
            return;
        }
    };
    let swap_free = meminfo.and_then(|m| Some((m.swap_free_bytes?, m.swap_total_bytes?)));
    for d in devices.iter().filter(|d| d.disksize_bytes > 0) {
        let dir = zram.block_dir().join(&d.name);
        let mut evidence = vec![
            ev(dir.join("disksize").display().to_string(), d.disksize_bytes),
            ev(
                dir.join("mm_stat").display().to_string(),
                format!(
                    "orig_data_size {} MiB, mem_used_total {} MiB, mem_limit {}",
                    mib_1(d.mm.orig_data_bytes),
                    mib_1(d.mm.mem_used_total_bytes),
                    if d.mm.mem_limit_bytes == 0 {
                        "none".to_owned()
                    } else {
                        format!("{} MiB", mib_1(d.mm.mem_limit_bytes))
                    }
                ),
            ),
        ];
        if let Some((free, total)) = swap_free {
            evidence.push(ev(
                "meminfo",
                format!("SwapFree {} MiB of {} MiB", mib_1(free), mib_1(total)),
            ));
        }
        r.push(match d.full(full_pct) {
            Some(full) => {
                let (how, pct) = match full {
                    ZramFull::Disksize { used_pct } => ("of its disksize", used_pct),
                    ZramFull::MemLimit { used_pct } => ("of its mem_limit in RAM", used_pct),
                };
                finding(
                    "zram",
                    Severity::Critical,
                    format!(
                        "{} is {pct:.0}% full ({how}): swap is exhausted even if SwapFree shows room, the next swap-out fails and the machine thrashes until the OOM killer runs",
                        d.name
                    ),
                    evidence,
                    Some("raise the device's disksize or mem_limit, add a disk swap at a lower priority behind it, or find what filled it with `oomguard rank`; oomguard counts a nearly full zram device as swap exhausted (reason zram-full)"),
                )
            }
            None => finding(
                "zram",
                Severity::Ok,
                format!(
                    "{} has room ({:.0}% of its disksize used)",
                    d.name,
                    d.mm.orig_data_bytes as f64 * 100.0 / d.disksize_bytes as f64
                ),
                evidence,
                None,
            ),
        });
    }
}

/// `oomguard doctor`'s body. Returns the exit code (worst severity).
pub fn run(args: &DoctorArgs) -> anyhow::Result<i32> {
    let proc = ProcFs::new(&args.proc_root);
    if !Path::new(&args.proc_root).join("meminfo").exists() {
        anyhow::bail!(
            "{} does not look like a proc filesystem",
            args.proc_root.display()
        );
    }
    let mut r = audit(&proc, &CgroupFs::new(&args.cgroup_root), &args.critical);
    // As with the kernel log: a fake proc root is judged against this machine's zram devices
    // only when a sysfs root is named too.
    if args.proc_root == Path::new("/proc") || args.sys_root != Path::new("/sys") {
        let meminfo = proc.read_meminfo().ok();
        zram_check(
            &mut r,
            &ZramFs::new(&args.sys_root),
            meminfo.as_ref(),
            DEFAULT_ZRAM_FULL_PCT,
        );
    }
    // The kernel log fallbacks (dmesg, journalctl) are this machine's: with a fake proc root
    // (tests, containers) read a kernel log only when one is named.
    match (&args.kernel_log, args.proc_root == Path::new("/proc")) {
        (Some(log), _) => kernel_log_check(&mut r, Some(log)),
        (None, true) => kernel_log_check(&mut r, None),
        (None, false) => r.missing.push(
            "kernel log: not read with a non-default --proc-root (name one with --kernel-log)"
                .to_owned(),
        ),
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written: std::io::Result<()> = if args.json {
        serde_json::to_writer_pretty(&mut out, &r)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_plain(&r, &mut out)
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(r.exit_code()),
    }
}
