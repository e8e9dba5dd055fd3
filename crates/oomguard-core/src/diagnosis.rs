//! What an OOM event means and what to change: pure rules over one [`OomEvent`], each stated
//! with the evidence it rests on. `explain` prints them; the daemon will attach them to its
//! events. A rule fires only on what the report shows; nothing is guessed.

use crate::event::{EventKind, OomEvent, TaskRow};
use crate::units::{mib_1, KIB};

/// Where the memory ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole machine (RAM + swap).
    Global,
    /// A memory cgroup's limit.
    Memcg,
    /// A cpuset's nodes.
    Cpuset,
    /// A NUMA memory policy's nodes.
    MemoryPolicy,
    /// The report does not say.
    Unknown,
}

/// The scope an event's evidence shows.
pub fn scope(ev: &OomEvent) -> Scope {
    match ev.constraint.as_deref() {
        Some("CONSTRAINT_MEMCG") => Scope::Memcg,
        Some("CONSTRAINT_CPUSET") => Scope::Cpuset,
        Some("CONSTRAINT_MEMORY_POLICY") => Scope::MemoryPolicy,
        Some("CONSTRAINT_NONE") => Scope::Global,
        _ if ev.is_memcg() => Scope::Memcg,
        // Before 5.0 a global OOM printed no constraint; "Out of memory" without any memcg line
        // is global unless a cpuset line shows a restricted set (cannot tell: Unknown).
        _ if ev
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Out of memory")) =>
        {
            Scope::Global
        }
        _ => Scope::Unknown,
    }
}

/// One finding: a cause or a change to make, with the figures that support it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub text: String,
}

/// Whether a finding explains (a cause) or advises (a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    Cause,
    Advice,
}

fn cause(text: String) -> Finding {
    Finding {
        kind: FindingKind::Cause,
        text,
    }
}

fn advice(text: String) -> Finding {
    Finding {
        kind: FindingKind::Advice,
        text,
    }
}

/// Page size in bytes for the task dump, inferred from the victim's kill line (kB) and its row
/// (pages) when both are shown; else 4 KiB, the x86 page.
pub fn page_bytes(ev: &OomEvent) -> u64 {
    let inferred = (|| {
        let rss_kb = ev.rss_kb()?;
        let row = ev.tasks.iter().find(|t| Some(t.pid) == ev.pid)?;
        let pages = row.rss_pages?;
        if pages < 64 || rss_kb == 0 {
            return None;
        }
        // Round to a power-of-two page size between 4 KiB and 256 KiB.
        let per = rss_kb * KIB / pages;
        [4096u64, 16384, 65536, 262_144]
            .into_iter()
            .min_by_key(|p| p.abs_diff(per))
            .filter(|p| p.abs_diff(per) * 4 < *p)
    })();
    inferred.unwrap_or(4096)
}

/// Task dump rows sorted by resident memory, largest first.
pub fn largest_tasks(ev: &OomEvent) -> Vec<&TaskRow> {
    let mut rows: Vec<&TaskRow> = ev.tasks.iter().collect();
    rows.sort_by_key(|t| std::cmp::Reverse(t.rss_pages.unwrap_or(0)));
    rows
}

/// Causes and advice for one event, most important first.
pub fn findings(ev: &OomEvent) -> Vec<Finding> {
    let mut out = Vec::new();
    let victim = ev.comm.as_deref().unwrap_or("?");
    match ev.kind {
        EventKind::Incomplete => out.push(cause(
            "The report's kill line is missing (the log was cut, or the kernel rate-limited \
             its messages); what is shown is all the log has."
                .to_owned(),
        )),
        EventKind::NoKillable | EventKind::Panic => out.push(cause(
            "The OOM killer found no process it was allowed to kill: every candidate was \
             protected (oom_score_adj -1000), already exiting, or a kernel thread."
                .to_owned(),
        )),
        EventKind::Kill | EventKind::Warn => {}
    }
    if ev.kind == EventKind::Panic {
        out.push(advice(
            "The kernel panicked instead of killing. If vm.panic_on_oom is set, that is by \
             design; otherwise leave at least one killable process (not every service at -1000)."
                .to_owned(),
        ));
    }
    match scope(ev) {
        Scope::Memcg => {
            let cg = ev.oom_memcg.as_deref().unwrap_or("(unknown)");
            match (ev.memcg_usage_kb, ev.memcg_limit_kb) {
                (Some(u), Some(l)) => out.push(cause(format!(
                    "Memory cgroup {cg} reached its limit: {} MiB used of {} MiB. The rest of the \
                     machine may have had plenty free.",
                    mib_1(u * KIB),
                    mib_1(l * KIB)
                ))),
                _ => out.push(cause(format!(
                    "Memory cgroup {cg} reached its limit; the rest of the machine may have had \
                     plenty free."
                ))),
            }
            if let (Some(anon), Some(limit)) = (ev.anon_rss_kb, ev.memcg_limit_kb) {
                if limit > 0 && anon * 2 > limit {
                    out.push(cause(format!(
                        "{victim} alone held {} MiB of anonymous memory ({}% of the limit): its \
                         heap grew until the limit, a leak or a limit too small for the load.",
                        mib_1(anon * KIB),
                        anon * 100 / limit
                    )));
                }
            }
            out.push(advice(format!(
                "Raise the limit of {cg} if the workload really needs more (cgroup v2 \
                 memory.max, v1 memory.limit_in_bytes, or the container's/unit's memory limit), \
                 or find what grew in {victim}."
            )));
        }
        Scope::Global => {
            out.push(cause(
                "The whole machine ran out of memory: RAM and swap were used up, so the kernel \
                 killed the process with the highest badness (RSS + swap + page tables, shifted \
                 by oom_score_adj)."
                    .to_owned(),
            ));
            out.push(advice(
                "Add swap or RAM, or run less here; check vm.overcommit_memory (with 1 the \
                 kernel never refuses an allocation, so exhaustion surfaces as kills like this \
                 one; 2 makes allocations fail instead). `oomguard doctor` audits these."
                    .to_owned(),
            ));
        }
        Scope::Cpuset | Scope::MemoryPolicy => out.push(cause(format!(
            "Only the NUMA nodes this task may use ran out ({}, nodemask {}, mems_allowed {}), \
             not necessarily the whole machine.",
            ev.constraint.as_deref().unwrap_or("?"),
            ev.nodemask.as_deref().unwrap_or("?"),
            ev.mems_allowed.as_deref().unwrap_or("?")
        ))),
        Scope::Unknown => {}
    }
    if ev
        .message
        .as_deref()
        .is_some_and(|m| m.contains("oom_kill_allocating_task"))
    {
        out.push(cause(
            "vm.oom_kill_allocating_task is set: the kernel killed the task that asked for \
             memory, not the largest one."
                .to_owned(),
        ));
    }
    if let (Some(sel), Some(pid)) = (ev.selected_pid, ev.pid) {
        if sel != pid {
            out.push(cause(format!(
                "The kernel selected {} (pid {sel}) and killed its child {victim} (pid {pid}) \
                 instead (the pre-5.1 \"sacrifice child\" rule).",
                ev.selected_comm.as_deref().unwrap_or("?")
            )));
        }
    }
    if let Some(order) = ev.order {
        if order > 0 && scope(ev) == Scope::Global {
            out.push(cause(format!(
                "The failed allocation needed 2^{order} contiguous pages (order {order}): memory \
                 may have been fragmented rather than exhausted."
            )));
        }
        if order < 0 {
            out.push(cause(
                "The OOM killer was forced by SysRq-f (order -1).".to_owned(),
            ));
        }
    }
    if let (Some(t), Some(v)) = (ev.trigger_comm.as_deref(), ev.comm.as_deref()) {
        if t != v && ev.kind == EventKind::Kill {
            out.push(cause(format!(
                "{t}'s allocation set it off; {v} was chosen because it scored highest, not \
                 because it asked for memory."
            )));
        }
    }
    // The victim against the largest process the dump shows.
    let page = page_bytes(ev);
    let largest = largest_tasks(ev);
    if let (Some(top), Some(pid)) = (largest.first(), ev.pid) {
        if top.pid != pid && top.rss_pages.unwrap_or(0) > 0 {
            let victim_rss = ev.rss_kb().map(|k| k * KIB);
            let top_rss = top.rss_pages.unwrap_or(0) * page;
            if victim_rss.is_none_or(|v| v < top_rss) {
                out.push(cause(format!(
                    "{victim} was not the largest process: {} (pid {}) held {} MiB{}. \
                     oom_score_adj made the difference (victim {}, {} {}).",
                    top.name,
                    top.pid,
                    mib_1(top_rss),
                    victim_rss
                        .map(|v| format!(" against {} MiB", mib_1(v)))
                        .unwrap_or_default(),
                    adj_text(ev.oom_score_adj),
                    top.name,
                    adj_text(top.oom_score_adj)
                )));
            }
        }
    }
    match ev.oom_score_adj {
        Some(adj) if adj > 0 => out.push(cause(format!(
            "{victim}'s oom_score_adj of {adj} made it a preferred victim."
        ))),
        Some(adj) if adj < 0 => out.push(cause(format!(
            "{victim} was protected (oom_score_adj {adj}) and still scored highest."
        ))),
        _ => {}
    }
    if let Some(r) = &ev.reaped {
        out.push(cause(format!(
            "The oom_reaper freed {}'s memory at once (left: anon {} kB, file {} kB, shmem {} \
             kB).",
            r.comm,
            r.anon_rss_kb.unwrap_or(0),
            r.file_rss_kb.unwrap_or(0),
            r.shmem_rss_kb.unwrap_or(0)
        )));
    }
    if ev.kind == EventKind::Kill {
        out.push(advice(format!(
            "If {victim} must survive, lower its oom_score_adj (systemd: OOMScoreAdjust=-500; \
             -1000 never kills it) and let something less important be the victim; to act \
             before the kernel must, run `oomguard watch`."
        )));
    }
    if ev.tasks.is_empty() && ev.trigger_comm.is_some() {
        out.push(advice(
            "The report has no task list (vm.oom_dump_tasks=0): set vm.oom_dump_tasks=1 to see \
             every candidate next time."
                .to_owned(),
        ));
    }
    out
}

fn adj_text(adj: Option<i64>) -> String {
    adj.map_or_else(|| "adj ?".to_owned(), |a| format!("adj {a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill() -> OomEvent {
        let mut e = OomEvent::new(EventKind::Kill);
        e.pid = Some(10);
        e.comm = Some("java".into());
        e.anon_rss_kb = Some(1_000_000);
        e.file_rss_kb = Some(0);
        e
    }

    fn has(f: &[Finding], needle: &str) -> bool {
        f.iter().any(|x| x.text.contains(needle))
    }

    #[test]
    fn memcg_limit_and_heap() {
        let mut e = kill();
        e.constraint = Some("CONSTRAINT_MEMCG".into());
        e.oom_memcg = Some("/svc".into());
        e.memcg_usage_kb = Some(1_048_576);
        e.memcg_limit_kb = Some(1_048_576);
        let f = findings(&e);
        assert!(has(
            &f,
            "Memory cgroup /svc reached its limit: 1024.0 MiB used of 1024.0 MiB"
        ));
        assert!(has(&f, "95% of the limit"));
        assert!(!has(&f, "whole machine"));
        e.anon_rss_kb = Some(10);
        assert!(!has(&findings(&e), "of the limit)"));
    }

    #[test]
    fn global_and_order_and_child() {
        let mut e = kill();
        e.message = Some("Out of memory".into());
        e.order = Some(3);
        e.selected_pid = Some(9);
        e.selected_comm = Some("parent".into());
        let f = findings(&e);
        assert!(has(&f, "whole machine ran out"));
        assert!(has(&f, "order 3"));
        assert!(has(&f, "selected parent (pid 9)"));
        e.order = Some(0);
        e.selected_pid = Some(10);
        let f = findings(&e);
        assert!(!has(&f, "contiguous"));
        assert!(!has(&f, "sacrifice"));
    }

    #[test]
    fn victim_not_largest_names_the_consumer() {
        let mut e = kill();
        e.anon_rss_kb = Some(4);
        e.oom_score_adj = Some(900);
        e.tasks = vec![
            TaskRow {
                pid: 10,
                rss_pages: Some(1),
                oom_score_adj: Some(900),
                name: "java".into(),
                ..Default::default()
            },
            TaskRow {
                pid: 11,
                rss_pages: Some(262_144),
                oom_score_adj: Some(-500),
                name: "db".into(),
                ..Default::default()
            },
        ];
        let f = findings(&e);
        assert!(has(&f, "db (pid 11) held 1024.0 MiB"), "{f:?}");
        assert!(has(&f, "preferred victim"));
        e.tasks.swap(0, 1);
        e.tasks[0].rss_pages = Some(0);
        assert!(!has(&findings(&e), "was not the largest"));
    }

    #[test]
    fn page_size_inferred_from_the_victim_row() {
        let mut e = kill();
        e.anon_rss_kb = Some(64 * 1000);
        e.tasks = vec![TaskRow {
            pid: 10,
            rss_pages: Some(1000),
            ..Default::default()
        }];
        assert_eq!(page_bytes(&e), 65536);
        e.tasks[0].rss_pages = Some(16000);
        assert_eq!(page_bytes(&e), 4096);
    }
}
