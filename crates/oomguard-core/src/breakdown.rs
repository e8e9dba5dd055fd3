//! Where the memory went: one event's `Mem-Info` block or memcg stat dump turned into a
//! breakdown of a total (RAM, or the cgroup's limit) into parts that add up to it, with the
//! remainder the report does not account for. Pure; `explain` draws it, the diagnosis rules in
//! [`crate::diagnosis`] read it. `docs/explain-report.md` says how each part is computed.

use crate::diagnosis::page_bytes;
use crate::event::{MemInfo, MemcgStat, OomEvent};
use crate::units::KIB;

/// A memcg limit this large means "no limit" (`PAGE_COUNTER_MAX` pages, printed as
/// 9007199254740988 kB on x86-64; anything above 2^50 kB is no real limit).
const UNLIMITED_KB: u64 = 1 << 50;

/// What a part of the breakdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// Anonymous memory of processes (heap, stacks, private mappings), without shmem.
    Anon,
    /// File pages cached (the file LRU): reclaimable, unless dirty or mapped and busy.
    PageCache,
    /// shmem/tmpfs/SysV shared memory: files in RAM, freed only when the files go.
    Shmem,
    /// Unevictable pages (mlock, ramfs) not counted as shmem.
    Unevictable,
    /// Kernel slab that cannot be reclaimed.
    SlabUnreclaimable,
    /// Kernel slab that can be reclaimed (dentries, inodes).
    SlabReclaimable,
    /// Page tables of processes.
    PageTables,
    /// Kernel stacks of threads.
    KernelStack,
    /// Other kernel memory the memcg counted (v2 `kernel` rest, percpu, sock, v1 kmem).
    KernelOther,
    /// Huge pages reserved in hugetlb pools and in use.
    HugeUsed,
    /// Huge pages reserved in hugetlb pools but free: unusable for anything else.
    HugeFree,
    /// Reserved at boot (kernel image, struct pages): `N pages reserved`.
    Reserved,
    /// Free pages (global), or the headroom below the limit (memcg).
    Free,
    /// What the report does not account for.
    Unaccounted,
}

impl PartKind {
    /// A short label for tables and legends.
    pub fn label(self) -> &'static str {
        match self {
            PartKind::Anon => "user anonymous",
            PartKind::PageCache => "page cache",
            PartKind::Shmem => "shmem/tmpfs",
            PartKind::Unevictable => "unevictable (mlock)",
            PartKind::SlabUnreclaimable => "slab, unreclaimable",
            PartKind::SlabReclaimable => "slab, reclaimable",
            PartKind::PageTables => "page tables",
            PartKind::KernelStack => "kernel stacks",
            PartKind::KernelOther => "other kernel",
            PartKind::HugeUsed => "huge pages, used",
            PartKind::HugeFree => "huge pages, free",
            PartKind::Reserved => "reserved at boot",
            PartKind::Free => "free",
            PartKind::Unaccounted => "not accounted for",
        }
    }

    /// A stable machine name (CSS classes, JSON).
    pub fn key(self) -> &'static str {
        match self {
            PartKind::Anon => "anon",
            PartKind::PageCache => "pagecache",
            PartKind::Shmem => "shmem",
            PartKind::Unevictable => "unevictable",
            PartKind::SlabUnreclaimable => "slab_unreclaimable",
            PartKind::SlabReclaimable => "slab_reclaimable",
            PartKind::PageTables => "pagetables",
            PartKind::KernelStack => "kernel_stack",
            PartKind::KernelOther => "kernel_other",
            PartKind::HugeUsed => "huge_used",
            PartKind::HugeFree => "huge_free",
            PartKind::Reserved => "reserved",
            PartKind::Free => "free",
            PartKind::Unaccounted => "unaccounted",
        }
    }
}

/// One part: `bytes` of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub kind: PartKind,
    pub bytes: u64,
}

/// What the total is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// `N pages RAM` of the Mem-Info block.
    Ram,
    /// No RAM line: the sum of what the block shows.
    MemInfoSum,
    /// The memory cgroup's limit.
    MemcgLimit,
    /// The cgroup had no limit: its usage.
    MemcgUsage,
}

/// An event's memory, split into parts that add up to `total_bytes` (the last part,
/// [`PartKind::Unaccounted`], is the remainder; `overcounted_bytes` is set instead when the
/// parts exceed the total, as counters read at slightly different moments can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    pub basis: Basis,
    pub total_bytes: u64,
    pub parts: Vec<Part>,
    pub overcounted_bytes: u64,
    /// Sum of `rss` over the task dump, in bytes (`None` without a dump).
    pub tasks_rss_bytes: Option<u64>,
    /// What the counters show for process memory that RSS counts: anon + shmem + mapped file.
    pub counters_rss_bytes: Option<u64>,
}

impl Breakdown {
    /// Bytes of one kind (0 when absent).
    pub fn bytes(&self, kind: PartKind) -> u64 {
        self.parts
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.bytes)
            .fold(0, u64::saturating_add)
    }

    /// Share of the total in per-mille (for one decimal of percent).
    pub fn permille(&self, bytes: u64) -> u64 {
        if self.total_bytes == 0 {
            return 0;
        }
        ((bytes as u128 * 1000 + self.total_bytes as u128 / 2) / self.total_bytes as u128) as u64
    }
}

/// The breakdown the event's report allows: from the memcg stat dump for a memcg OOM, else
/// from the Mem-Info block; `None` when the report shows neither (nor a memcg usage line).
pub fn breakdown(ev: &OomEvent) -> Option<Breakdown> {
    let mem = ev.memory.as_ref();
    let stat = mem.and_then(|m| m.memcg_stat.as_ref());
    let info = mem.and_then(|m| m.mem_info.as_ref());
    let mut b = if ev.is_memcg() && (stat.is_some() || ev.memcg_usage_kb.is_some()) {
        from_memcg(ev, stat)
    } else if let Some(i) = info {
        from_mem_info(i)
    } else if stat.is_some() {
        from_memcg(ev, stat)
    } else {
        None
    }?;
    if !ev.tasks.is_empty() {
        let page = page_bytes(ev);
        b.tasks_rss_bytes = Some(
            ev.tasks
                .iter()
                .map(|t| t.rss_pages.unwrap_or(0).saturating_mul(page))
                .fold(0, u64::saturating_add),
        );
    }
    Some(b)
}

fn finish(basis: Basis, total: Option<u64>, mut parts: Vec<Part>) -> Breakdown {
    parts.retain(|p| p.bytes > 0);
    let sum = parts.iter().map(|p| p.bytes).fold(0, u64::saturating_add);
    let (basis, total) = match total {
        Some(t) if t > 0 => (basis, t),
        _ => (Basis::MemInfoSum, sum),
    };
    let overcounted = sum.saturating_sub(total);
    let rest = total.saturating_sub(sum);
    if rest > 0 {
        parts.push(Part {
            kind: PartKind::Unaccounted,
            bytes: rest,
        });
    }
    Breakdown {
        basis,
        total_bytes: total,
        parts,
        overcounted_bytes: overcounted,
        tasks_rss_bytes: None,
        counters_rss_bytes: None,
    }
}

fn part(kind: PartKind, bytes: u64) -> Part {
    Part { kind, bytes }
}

fn from_mem_info(i: &MemInfo) -> Option<Breakdown> {
    let z = |v: Option<u64>| v.unwrap_or(0);
    let shmem = z(i.shmem_bytes);
    // shmem pages sit on the anon LRU (swap-backed, 2.6.28+): anon LRU − shmem is what
    // processes own. Before 2.6.28 the LRU was not split; then "anon" is unknown and the LRU
    // total stands in as page cache + anon together.
    let anon_lru = z(i.active_anon_bytes)
        .saturating_add(z(i.inactive_anon_bytes))
        .saturating_add(z(i.isolated_anon_bytes));
    let file_lru = z(i.active_file_bytes)
        .saturating_add(z(i.inactive_file_bytes))
        .saturating_add(z(i.isolated_file_bytes));
    let lumped = z(i.lru_active_bytes).saturating_add(z(i.lru_inactive_bytes));
    let mut parts = vec![
        part(PartKind::Anon, anon_lru.saturating_sub(shmem)),
        part(PartKind::PageCache, file_lru.saturating_add(lumped)),
        part(PartKind::Shmem, shmem),
        part(PartKind::Unevictable, z(i.unevictable_bytes)),
    ];
    match (i.slab_unreclaimable_bytes, i.slab_bytes) {
        (Some(u), _) => {
            parts.push(part(PartKind::SlabUnreclaimable, u));
            parts.push(part(PartKind::SlabReclaimable, z(i.slab_reclaimable_bytes)));
        }
        // ≤2.6.3x: slab not split; count it as unreclaimable would overstate, so as reclaimable
        // would understate: show it whole under "unreclaimable" only when nothing else is known.
        (None, Some(s)) => parts.push(part(PartKind::SlabUnreclaimable, s)),
        (None, None) => {}
    }
    parts.push(part(
        PartKind::PageTables,
        z(i.pagetables_bytes).saturating_add(z(i.sec_pagetables_bytes)),
    ));
    parts.push(part(PartKind::KernelStack, z(i.kernel_stack_bytes)));
    let (mut used, mut free) = (0u64, 0u64);
    for h in &i.hugepages {
        used = used.saturating_add(h.total.saturating_sub(h.free).saturating_mul(h.size_bytes));
        free = free.saturating_add(h.free.saturating_mul(h.size_bytes));
    }
    parts.push(part(PartKind::HugeUsed, used));
    parts.push(part(PartKind::HugeFree, free));
    parts.push(part(PartKind::Reserved, z(i.reserved_bytes)));
    parts.push(part(PartKind::Free, z(i.free_bytes)));
    let mut b = finish(Basis::Ram, i.ram_bytes, parts);
    b.counters_rss_bytes = Some(
        anon_lru
            .saturating_sub(shmem)
            .saturating_add(shmem)
            .saturating_add(z(i.mapped_bytes)),
    );
    Some(b)
}

fn from_memcg(ev: &OomEvent, s: Option<&MemcgStat>) -> Option<Breakdown> {
    let usage = ev.memcg_usage_kb.map(|k| k.saturating_mul(KIB));
    let limit = ev
        .memcg_limit_kb
        .filter(|l| *l < UNLIMITED_KB)
        .map(|k| k.saturating_mul(KIB));
    let mut parts = Vec::new();
    let mut counters_rss = None;
    if let Some(s) = s {
        let z = |v: Option<u64>| v.unwrap_or(0);
        let shmem = z(s.shmem_bytes);
        parts.push(part(PartKind::Anon, z(s.anon_bytes)));
        parts.push(part(
            PartKind::PageCache,
            z(s.file_bytes).saturating_sub(shmem),
        ));
        parts.push(part(PartKind::Shmem, shmem));
        let slab_u = z(s.slab_unreclaimable_bytes);
        let slab_r = z(s.slab_reclaimable_bytes);
        let stack = z(s.kernel_stack_bytes);
        let pt = z(s.pagetables_bytes).saturating_add(z(s.sec_pagetables_bytes));
        parts.push(part(PartKind::SlabUnreclaimable, slab_u));
        parts.push(part(PartKind::SlabReclaimable, slab_r));
        parts.push(part(PartKind::PageTables, pt));
        parts.push(part(PartKind::KernelStack, stack));
        // v2 5.18+ `kernel` includes stacks, page tables, slab, percpu and vmalloc; before it,
        // percpu + sock; v1 only has the kmem counter.
        let itemised = slab_u
            .saturating_add(slab_r)
            .saturating_add(stack)
            .saturating_add(pt);
        let other = match (s.kernel_bytes, ev.kmem_usage_kb) {
            (Some(k), _) => k.saturating_sub(itemised),
            (None, Some(kmem)) if s.slab_unreclaimable_bytes.is_none() => {
                kmem.saturating_mul(KIB).saturating_sub(itemised)
            }
            _ => z(s.percpu_bytes).saturating_add(z(s.sock_bytes)),
        };
        parts.push(part(PartKind::KernelOther, other));
        counters_rss = Some(
            z(s.anon_bytes)
                .saturating_add(shmem)
                .saturating_add(z(s.file_mapped_bytes)),
        );
    } else if let Some(u) = usage {
        parts.push(part(PartKind::Unaccounted, u));
    }
    let (basis, total) = match (limit, usage) {
        (Some(l), _) => (Basis::MemcgLimit, Some(l)),
        (None, Some(u)) => (Basis::MemcgUsage, Some(u)),
        (None, None) => (Basis::MemcgUsage, None),
    };
    // The headroom: the limit minus what was charged (usage), not minus the stat sum.
    if let (Some(l), Some(u)) = (limit, usage) {
        parts.push(part(PartKind::Free, l.saturating_sub(u)));
    }
    // Without a stat dump usage is known but not its parts: it stays "not accounted for".
    let mut b = finish(basis, total, parts);
    b.counters_rss_bytes = counters_rss;
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, HugePages, Memory, PageSizeSource};

    fn ev_with(i: MemInfo) -> OomEvent {
        let mut e = OomEvent::new(EventKind::Kill);
        e.message = Some("Out of memory".into());
        e.memory = Some(Memory {
            page_size_bytes: 4096,
            page_size_source: PageSizeSource::MemInfo,
            mem_info: Some(i),
            memcg_stat: None,
        });
        e
    }

    #[test]
    fn global_parts_add_up_to_ram() {
        let g = 1u64 << 30;
        let b = breakdown(&ev_with(MemInfo {
            ram_bytes: Some(16 * g),
            active_anon_bytes: Some(6 * g),
            inactive_anon_bytes: Some(2 * g),
            shmem_bytes: Some(g),
            active_file_bytes: Some(g),
            slab_unreclaimable_bytes: Some(2 * g),
            slab_reclaimable_bytes: Some(0),
            free_bytes: Some(g),
            reserved_bytes: Some(g / 2),
            hugepages: vec![HugePages {
                node: Some(0),
                size_bytes: 2 << 20,
                total: 1024,
                free: 512,
                surplus: 0,
            }],
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(b.basis, Basis::Ram);
        assert_eq!(b.bytes(PartKind::Anon), 7 * g);
        assert_eq!(b.bytes(PartKind::Shmem), g);
        assert_eq!(b.bytes(PartKind::HugeUsed), g);
        assert_eq!(b.bytes(PartKind::HugeFree), g);
        let sum: u64 = b.parts.iter().map(|p| p.bytes).sum();
        assert_eq!(sum, b.total_bytes);
        assert_eq!(b.bytes(PartKind::Unaccounted), 16 * g - 14 * g - g / 2);
        assert_eq!(b.permille(b.bytes(PartKind::Anon)), 438);
    }
}
