//! What an OOM event means and what to change: pure rules over one [`OomEvent`], each stated
//! with the evidence it rests on. `explain` prints them; the daemon will attach them to its
//! events. A rule fires only on what the report shows; nothing is guessed.

use crate::breakdown::{self, Breakdown, PartKind};
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
    if let Some(m) = &ev.memory {
        if m.page_size_source != crate::event::PageSizeSource::Default {
            return m.page_size_bytes;
        }
    }
    page_bytes_inferred(ev).unwrap_or(4096)
}

/// The page size the victim's row and kill line show, if they show it.
pub fn page_bytes_inferred(ev: &OomEvent) -> Option<u64> {
    (|| {
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
    })()
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
        // `oomguard run` events that are not kernel OOM reports: nothing to diagnose here.
        EventKind::Kill | EventKind::Exit | EventKind::Warning | EventKind::Forecast => {}
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
        let has_mem_info = ev.memory.as_ref().is_some_and(|m| m.mem_info.is_some());
        if order > 0 && scope(ev) == Scope::Global && !has_mem_info {
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
    out.extend(memory_findings(ev));
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

/// Unreclaimable slab at or above this share of the total is a kernel-side consumer worth
/// naming: on a healthy machine it is a few percent (the 6.18 VM here: 1–2 %; the era fixtures'
/// healthy reports 1–5 %), and the leak reports in the corpus reach 50–80 %.
const SLAB_PERMILLE: u64 = 200;
/// shmem/tmpfs at or above this share of the total.
const SHMEM_PERMILLE: u64 = 200;
/// Free huge pages at or above this share of the total (and a quarter of their pool).
const HUGE_FREE_PERMILLE: u64 = 50;
/// A victim below this share of the total freed little.
const SMALL_VICTIM_PERMILLE: u64 = 50;
/// Processes of one name: at least this many, together at least half the dump's RSS.
const GROUP_MIN_COUNT: usize = 8;
/// Swap with less than this share free is full.
const SWAP_FULL_PERMILLE: u64 = 50;

fn pct(permille: u64) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// The rules that look past the victim, at where the memory was (the Mem-Info block, the memcg
/// stat dump, the task dump). Each states its evidence. See `docs/explain-report.md`.
pub fn memory_findings(ev: &OomEvent) -> Vec<Finding> {
    let mut out = Vec::new();
    let b = breakdown::breakdown(ev);
    let info = ev.memory.as_ref().and_then(|m| m.mem_info.as_ref());
    let of_what = match b.as_ref().map(|b| b.basis) {
        Some(breakdown::Basis::MemcgLimit) => "of the cgroup's limit",
        Some(breakdown::Basis::MemcgUsage) => "of the cgroup's usage",
        Some(breakdown::Basis::Ram) => "of RAM",
        _ => "of what the report shows",
    };
    if let Some(b) = &b {
        slab_rule(ev, b, of_what, &mut out);
        shmem_rule(b, of_what, &mut out);
        huge_rule(b, of_what, &mut out);
        small_victim_rule(ev, b, of_what, &mut out);
    }
    group_rule(ev, &mut out);
    if let Some(i) = info {
        if scope(ev) != Scope::Memcg {
            fragmentation_rule(ev, i, &mut out);
            swap_rule(i, &mut out);
        }
    }
    memcg_limit_rule(ev, b.as_ref(), &mut out);
    out
}

fn slab_rule(ev: &OomEvent, b: &Breakdown, of_what: &str, out: &mut Vec<Finding>) {
    let slab = b.bytes(PartKind::SlabUnreclaimable);
    let pm = b.permille(slab);
    if pm < SLAB_PERMILLE {
        return;
    }
    let top: Vec<String> = ev
        .memory
        .as_ref()
        .and_then(|m| m.mem_info.as_ref())
        .map(|i| {
            i.unreclaimable_slab
                .iter()
                .take(3)
                .map(|c| format!("{} {} MiB", c.name, mib_1(c.total_bytes)))
                .collect()
        })
        .unwrap_or_default();
    let caches = if top.is_empty() {
        String::new()
    } else {
        format!(" Largest caches: {}.", top.join(", "))
    };
    out.push(cause(format!(
        "Unreclaimable kernel slab held {} MiB, {} {of_what}: memory the kernel itself \
         allocated and cannot give back. Killing processes will not help; this looks like a \
         kernel-side leak (a driver or subsystem allocating without freeing).{caches}",
        mib_1(slab),
        pct(pm)
    )));
    out.push(advice(
        "Find the growing cache with `slabtop` or /proc/slabinfo (and \
         /sys/kernel/debug/kmemleak if enabled); update or unload the driver that owns it."
            .to_owned(),
    ));
}

fn shmem_rule(b: &Breakdown, of_what: &str, out: &mut Vec<Finding>) {
    let shmem = b.bytes(PartKind::Shmem);
    let pm = b.permille(shmem);
    if pm < SHMEM_PERMILLE {
        return;
    }
    out.push(cause(format!(
        "shmem/tmpfs held {} MiB, {} {of_what}: files kept in RAM (tmpfs such as /dev/shm or \
         /run, SysV or POSIX shared memory, memfd). Killing a process does not free them; only \
         deleting the files (or the segments) does.",
        mib_1(shmem),
        pct(pm)
    )));
    out.push(advice(
        "List big files on tmpfs mounts (`df -t tmpfs`, `du -xsh /dev/shm/*`) and SysV \
         segments (`ipcs -m`); cap tmpfs with its size= mount option."
            .to_owned(),
    ));
}

fn huge_rule(b: &Breakdown, of_what: &str, out: &mut Vec<Finding>) {
    let free = b.bytes(PartKind::HugeFree);
    let used = b.bytes(PartKind::HugeUsed);
    let pool = free.saturating_add(used);
    if b.permille(free) < HUGE_FREE_PERMILLE || free.saturating_mul(4) < pool {
        return;
    }
    out.push(cause(format!(
        "{} MiB is reserved as huge pages (hugetlbfs pool) and {} MiB of it ({} {of_what}) sat \
         unused: reserved huge pages cannot hold anything else, so the rest of the system ran \
         out with them free.",
        mib_1(pool),
        mib_1(free),
        pct(b.permille(free))
    )));
    out.push(advice(
        "Lower vm.nr_hugepages (or the hugepages= boot parameter) to what the application \
         really maps (HugePages_Total − HugePages_Free in /proc/meminfo under load)."
            .to_owned(),
    ));
}

fn small_victim_rule(ev: &OomEvent, b: &Breakdown, of_what: &str, out: &mut Vec<Finding>) {
    let Some(victim_bytes) = ev.rss_kb().map(|k| k.saturating_mul(KIB)) else {
        return;
    };
    if ev.kind != EventKind::Kill || b.permille(victim_bytes) >= SMALL_VICTIM_PERMILLE {
        return;
    }
    let victim = ev.comm.as_deref().unwrap_or("?");
    let biggest = b
        .parts
        .iter()
        .filter(|p| !matches!(p.kind, PartKind::Free | PartKind::Unaccounted))
        .max_by_key(|p| p.bytes);
    let mut text = format!(
        "The victim {victim} held only {} MiB, {} {of_what}: killing it freed little.",
        mib_1(victim_bytes),
        pct(b.permille(victim_bytes))
    );
    if let Some(p) = biggest {
        text.push_str(&format!(
            " The memory was in {}: {} MiB ({}).",
            p.kind.label(),
            mib_1(p.bytes),
            pct(b.permille(p.bytes))
        ));
    }
    let page = page_bytes(ev);
    if let Some(top) = largest_tasks(ev).first() {
        let top_bytes = top.rss_pages.unwrap_or(0).saturating_mul(page);
        if Some(top.pid) != ev.pid && top_bytes > victim_bytes.saturating_mul(2) {
            text.push_str(&format!(
                " The real consumer in the task dump: {} (pid {}) with {} MiB.",
                top.name,
                top.pid,
                mib_1(top_bytes)
            ));
        }
    }
    out.push(cause(text));
}

/// Processes sharing a name, largest group first: (name, count, rss bytes).
pub fn task_groups(ev: &OomEvent) -> Vec<(String, usize, u64)> {
    let page = page_bytes(ev);
    let mut groups: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for t in &ev.tasks {
        let g = groups.entry(t.name.as_str()).or_default();
        g.0 += 1;
        g.1 =
            g.1.saturating_add(t.rss_pages.unwrap_or(0).saturating_mul(page));
    }
    let mut v: Vec<(String, usize, u64)> = groups
        .into_iter()
        .map(|(n, (c, b))| (n.to_owned(), c, b))
        .collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    v
}

fn group_rule(ev: &OomEvent, out: &mut Vec<Finding>) {
    let groups = task_groups(ev);
    let total = groups.iter().map(|g| g.2).fold(0u64, u64::saturating_add);
    let Some((name, count, bytes)) = groups.first() else {
        return;
    };
    if *count < GROUP_MIN_COUNT || total == 0 || bytes.saturating_mul(2) < total {
        return;
    }
    let page = page_bytes(ev);
    let largest_one = ev
        .tasks
        .iter()
        .filter(|t| &t.name == name)
        .map(|t| t.rss_pages.unwrap_or(0).saturating_mul(page))
        .max()
        .unwrap_or(0);
    out.push(cause(format!(
        "{count} processes named {name} together held {} MiB, {}% of the task dump's RSS, none \
         more than {} MiB alone: a fork bomb or a worker pool sized beyond the memory.",
        mib_1(*bytes),
        bytes.saturating_mul(100) / total,
        mib_1(largest_one)
    )));
    out.push(advice(format!(
        "Cap {name}'s worker count (its max children/workers setting), or give it a cgroup \
         with memory.max and pids.max so the pool, not the machine, hits the limit."
    )));
}

fn fragmentation_rule(ev: &OomEvent, i: &crate::event::MemInfo, out: &mut Vec<Finding>) {
    let Some(order) = ev.order.filter(|o| *o > 0 && *o < 20) else {
        return;
    };
    let page = ev.memory.as_ref().map_or(4096, |m| m.page_size_bytes);
    let need = page << order;
    let free = i.free_bytes.unwrap_or(0);
    let high: u64 = i
        .zones
        .iter()
        .filter_map(|z| z.high_bytes)
        .fold(0, u64::saturating_add);
    // "Free" means comfortably above the zones' high watermarks together.
    if free == 0 || high == 0 || free < high.saturating_mul(2) {
        return;
    }
    let largest = i
        .zones
        .iter()
        .flat_map(|z| z.free_blocks.iter())
        .filter(|f| f.count > 0)
        .map(|f| f.block_bytes)
        .max();
    let blocks = match largest {
        Some(l) if l < need => format!("; the largest free block in any zone was {} kB", l / KIB),
        Some(_) => {
            "; blocks that large existed, but not in a zone this allocation may use".to_owned()
        }
        None => String::new(),
    };
    out.push(cause(format!(
        "Memory was free but fragmented: {} MiB free (the zones' high watermarks total {} MiB), \
         yet the allocation needed {} kB contiguous (order {order}){blocks}.",
        mib_1(free),
        mib_1(high),
        need / KIB
    )));
    out.push(advice(
        "Fragmentation, not exhaustion: check the driver or subsystem that asks for order > 0 \
         (the header's gfp_mask and trigger); vm.min_free_kbytes higher and compaction \
         (CONFIG_COMPACTION, vm.compaction_proactiveness) keep larger blocks available."
            .to_owned(),
    ));
}

fn swap_rule(i: &crate::event::MemInfo, out: &mut Vec<Finding>) {
    let (Some(total), Some(free)) = (i.swap_total_bytes, i.swap_free_bytes) else {
        return;
    };
    if total == 0 {
        out.push(cause(
            "There was no swap (Total swap = 0kB): every anonymous page had to stay in RAM, \
             so idle memory could not make room."
                .to_owned(),
        ));
        out.push(advice(
            "Add some swap (or zram) so cold anonymous memory can leave RAM before the OOM \
             killer must act."
                .to_owned(),
        ));
    } else if free.saturating_mul(1000) < total.saturating_mul(SWAP_FULL_PERMILLE) {
        out.push(cause(format!(
            "Swap was full: {} MiB of {} MiB in use. Both RAM and swap were exhausted.",
            mib_1(total - free),
            mib_1(total)
        )));
    }
}

fn memcg_limit_rule(ev: &OomEvent, b: Option<&Breakdown>, out: &mut Vec<Finding>) {
    if scope(ev) != Scope::Memcg {
        return;
    }
    let (Some(usage_kb), Some(limit_kb)) = (ev.memcg_usage_kb, ev.memcg_limit_kb) else {
        return;
    };
    if limit_kb == 0 || limit_kb >= 1 << 50 || usage_kb.saturating_mul(100) < limit_kb * 95 {
        return;
    }
    let limit = limit_kb.saturating_mul(KIB);
    // What the cgroup cannot reclaim without swap: anon + shmem from the stat dump, else the
    // task dump's RSS.
    let pinned = match b {
        Some(b) if b.counters_rss_bytes.is_some() => b
            .bytes(PartKind::Anon)
            .saturating_add(b.bytes(PartKind::Shmem)),
        _ => {
            let page = page_bytes(ev);
            ev.tasks
                .iter()
                .map(|t| t.rss_pages.unwrap_or(0).saturating_mul(page))
                .fold(0, u64::saturating_add)
        }
    };
    let cache = b.map_or(0, |b| b.bytes(PartKind::PageCache));
    let page = page_bytes(ev);
    let virt = ev
        .tasks
        .iter()
        .map(|t| t.total_vm_pages.unwrap_or(0).saturating_mul(page))
        .fold(0u64, u64::saturating_add);
    let failcnt = ev.memcg_failcnt.unwrap_or(0);
    let pinned_most = pinned.saturating_mul(10) >= limit.saturating_mul(9);
    if !pinned_most || (failcnt < 100 && virt < limit.saturating_mul(2)) {
        return;
    }
    let cg = ev.oom_memcg.as_deref().unwrap_or("(unknown)");
    let mut evidence = vec![format!(
        "{} MiB of it was memory the cgroup cannot reclaim without swap (anonymous and shmem), \
         only {} MiB page cache was left to drop",
        mib_1(pinned),
        mib_1(cache)
    )];
    if failcnt >= 100 {
        evidence.push(format!("the limit was hit {failcnt} times (failcnt)"));
    }
    if virt >= limit.saturating_mul(2) {
        evidence.push(format!(
            "its processes had {} MiB of virtual memory mapped",
            mib_1(virt)
        ));
    }
    out.push(cause(format!(
        "The limit of {cg} ({} MiB) is far below what its workload uses: {}.",
        mib_1(limit),
        evidence.join("; ")
    )));
}

fn adj_text(adj: Option<i64>) -> String {
    adj.map_or_else(|| "adj ?".to_owned(), |a| format!("adj {a}"))
}

#[cfg(test)]
mod tests;
