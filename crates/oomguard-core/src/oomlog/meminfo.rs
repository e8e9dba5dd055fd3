//! The memory half of an OOM report: the global `Mem-Info:` block (`show_mem()`, every era from
//! 2.6 to 6.x) and the memory cgroup stat dump (`Memory cgroup stats for X:`, ≤4.19 one-line and
//! 5.x+ `key value` forms, cgroup v1 and v2).
//!
//! [`classify`] recognises one line (stateless, cheap: it runs on every line of an open report);
//! [`MemAcc`] accumulates a report's lines, and [`MemAcc::finish`] converts everything to bytes
//! once the page size is known (Mem-Info counters are in pages; see
//! `kernel-oom-formats.md` §2.6–2.7). Everything kept is bounded: at most [`MAX_ZONES`] zones,
//! [`MAX_HUGE_POOLS`] huge page pools and [`MAX_SLAB_ROWS`] slab caches per report.

use crate::event::{
    FreeBlocks, HugePages, MemInfo, MemcgStat, MemcgStatFormat, Memory, PageSizeSource, SlabCache,
    Zone,
};

use super::prefix::lead_u64;

/// Zones kept per report (a large NUMA machine prints 4 per node).
pub const MAX_ZONES: usize = 64;
/// Huge page pools kept per report (one per node and page size).
pub const MAX_HUGE_POOLS: usize = 64;
/// Rows of `Unreclaimable slab info:` kept (the largest).
pub const MAX_SLAB_ROWS: usize = 10;
/// Buddy orders kept per zone (MAX_ORDER is 11 on x86, up to 14 on large-page arches).
const MAX_ORDERS: usize = 20;

/// A line of the memory dump, not yet parsed: its kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemLine<'a> {
    /// The first block's `key:pages` tokens (`active_anon:15 inactive_anon:51 ...`), possibly
    /// several lines joined by rsyslog's `#012`.
    Counters(&'a str),
    /// 4.8+ `Node N active_anon:NkB ... kernel_stack:NkB ...`.
    Node(&'a str),
    /// `[Node N ]ZONE free:NkB min:NkB low:NkB high:NkB ... present:NkB managed:NkB ...`.
    Zone(&'a str),
    /// `[Node N ]ZONE: 1*4kB (U) 5*8kB ... = NkB`.
    Buddy(&'a str),
    /// `Node N hugepages_total=T hugepages_free=F hugepages_surp=S hugepages_size=NkB`.
    HugePages(&'a str),
    /// `N total pagecache pages`, `N pages RAM`, ...
    Pages(PageCount, u64),
    /// `Free swap  = NkB` / `Total swap = NkB`.
    Swap { total: bool, kb: u64 },
    /// `Unreclaimable slab info:` (4.15+), or its `Name  Used  Total` header.
    SlabInfo,
    /// `name  NKB  NKB` under `Unreclaimable slab info:`.
    SlabRow {
        name: &'a str,
        used_kb: u64,
        total_kb: u64,
    },
    /// `Memory cgroup stats for PATH:` and, ≤4.19, the `cache:NKB rss:NKB ...` that follow.
    MemcgStats { path: &'a str, legacy: &'a str },
    /// A 5.x+ stat dump line `key value`: only meaningful after [`MemLine::MemcgStats`].
    StatKv(&'a str, u64),
}

/// The single-figure page count lines at the end of Mem-Info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCount {
    Pagecache,
    SwapCache,
    Ram,
    HighMem,
    Reserved,
    CmaReserved,
    Hwpoisoned,
    Shared,
    NonShared,
}

/// First-block counter keys, lowercased (2.6.2x prints `Active:`/`Active_anon:`).
const COUNTER_KEYS: [&str; 25] = [
    "active_anon",
    "inactive_anon",
    "isolated_anon",
    "active_file",
    "inactive_file",
    "isolated_file",
    "active",
    "inactive",
    "unevictable",
    "dirty",
    "writeback",
    "unstable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
    "mapped",
    "shmem",
    "pagetables",
    "sec_pagetables",
    "bounce",
    "kernel_misc_reclaimable",
    "free",
    "free_pcp",
    "free_cma",
    "nr_dirtied",
];

const ZONE_NAMES: [&str; 7] = [
    "DMA",
    "DMA32",
    "Normal",
    "HighMem",
    "Movable",
    "Device",
    "Unmovable",
];

/// Recognises a memory dump line (prefixes already stripped).
pub fn classify(text: &str) -> Option<MemLine<'_>> {
    let t = text.trim();
    let first = *t.as_bytes().first()?;
    if first.is_ascii_digit() {
        return page_count(t);
    }
    if let Some(rest) = t.strip_prefix("Node ") {
        let (_, after) = lead_u64(rest)?;
        let after = after.trim_start();
        if after.starts_with("hugepages_total=") {
            return Some(MemLine::HugePages(t));
        }
        if let Some(z) = zone_kind(after, t) {
            return Some(z);
        }
        let key = after.split(':').next()?;
        return (key == "active_anon").then_some(MemLine::Node(t));
    }
    if let Some(z) = zone_kind(t, t) {
        return Some(z);
    }
    if let Some(rest) = t.strip_prefix("Memory cgroup stats for ") {
        if let Some(path) = rest.strip_suffix(':') {
            return Some(MemLine::MemcgStats { path, legacy: "" });
        }
        // ≤4.19: `PATH: cache:0KB rss:...`; a path may itself contain ": ", so take the first
        // split whose remainder starts with a `key:NKB` token.
        let mut from = 0;
        while let Some(i) = rest[from..].find(": ") {
            let at = from + i;
            let tail = rest[at + 2..].trim_start();
            if is_kb_token(tail.split_whitespace().next().unwrap_or("")) {
                return Some(MemLine::MemcgStats {
                    path: &rest[..at],
                    legacy: tail,
                });
            }
            from = at + 2;
        }
        return None;
    }
    if let Some(rest) = t.strip_prefix("Free swap") {
        return swap_kb(rest).map(|kb| MemLine::Swap { total: false, kb });
    }
    if let Some(rest) = t.strip_prefix("Total swap") {
        return swap_kb(rest).map(|kb| MemLine::Swap { total: true, kb });
    }
    if t.starts_with("Unreclaimable slab info:")
        || t == "Name                      Used          Total"
    {
        return Some(MemLine::SlabInfo);
    }
    if first.is_ascii_alphabetic() {
        if let Some((key, _)) = t.split_once(':') {
            // The keys are lower case: a case-blind compare, without lowering a copy of every line's
            // first word.
            if COUNTER_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
                && t.split([' ', '\t'])
                    .filter(|s| !s.is_empty())
                    .all(is_counter_token)
            {
                return Some(MemLine::Counters(t));
            }
        }
    }
    let mut it = t.split_whitespace();
    let (a, b, c, d) = (it.next(), it.next(), it.next(), it.next());
    match (a, b, c, d) {
        (Some(key), Some(v), None, None) if is_stat_key(key) => {
            let (n, r) = lead_u64(v)?;
            r.is_empty().then_some(MemLine::StatKv(key, n))
        }
        (Some(name), Some(used), Some(total), None) => {
            let used_kb = kb_suffixed(used)?;
            let total_kb = kb_suffixed(total)?;
            Some(MemLine::SlabRow {
                name,
                used_kb,
                total_kb,
            })
        }
        _ => None,
    }
}

fn is_stat_key(k: &str) -> bool {
    k.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `key:123` (a counter token), allowing rsyslog's `#012` glued to the value.
fn is_counter_token(tok: &str) -> bool {
    tok.split("#012").filter(|s| !s.is_empty()).all(|part| {
        part.split_once(':').is_some_and(|(k, v)| {
            !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && lead_u64(v).is_some_and(|(_, r)| r.is_empty())
        })
    })
}

fn is_kb_token(tok: &str) -> bool {
    tok.split_once(':')
        .is_some_and(|(_, v)| kb_suffixed(v).is_some())
}

/// `123KB` or `123kB`.
fn kb_suffixed(v: &str) -> Option<u64> {
    let (n, r) = lead_u64(v)?;
    matches!(r, "KB" | "kB").then_some(n)
}

fn swap_kb(rest: &str) -> Option<u64> {
    let v = rest.trim_start().strip_prefix('=')?.trim();
    kb_suffixed(v)
}

/// `ZONE free:` → zone line; `ZONE: N*SkB ...` → buddy line. `whole` is the full line.
fn zone_kind<'a>(s: &str, whole: &'a str) -> Option<MemLine<'a>> {
    let name_end = s.find([' ', ':'])?;
    let name = &s[..name_end];
    if !ZONE_NAMES.contains(&name) {
        return None;
    }
    let rest = &s[name_end..];
    if rest.starts_with(" free:") {
        return Some(MemLine::Zone(whole));
    }
    if rest.starts_with(": ") && rest.contains('*') {
        return Some(MemLine::Buddy(whole));
    }
    None
}

fn page_count(t: &str) -> Option<MemLine<'_>> {
    let (n, rest) = lead_u64(t)?;
    let what = match rest.trim() {
        "total pagecache pages" => PageCount::Pagecache,
        "pages in swap cache" => PageCount::SwapCache,
        "pages RAM" | "pages of RAM" => PageCount::Ram,
        "pages HighMem/MovableOnly" | "pages HighMem" | "pages of HIGHMEM" => PageCount::HighMem,
        "pages reserved" | "reserved pages" => PageCount::Reserved,
        "pages cma reserved" => PageCount::CmaReserved,
        "pages hwpoisoned" => PageCount::Hwpoisoned,
        "pages shared" => PageCount::Shared,
        "pages non-shared" => PageCount::NonShared,
        _ => return None,
    };
    Some(MemLine::Pages(what, n))
}

/// `key:NkB` values of a line, summed into `sum` for each `key` found.
fn kb_value(line: &str, key: &str) -> Option<u64> {
    let mut from = 0;
    while let Some(i) = line[from..].find(key) {
        let at = from + i;
        // Whole key only: `min:` must not match `...admin:`.
        let boundary = at == 0 || line.as_bytes()[at - 1] == b' ';
        if boundary {
            let v = &line[at + key.len()..];
            let v = v.trim_start();
            if let Some((n, r)) = lead_u64(v) {
                if r.starts_with("kB") || r.starts_with("KB") {
                    return Some(n);
                }
            }
        }
        from = at + key.len();
    }
    None
}

fn add(slot: &mut Option<u64>, v: u64) {
    *slot = Some(slot.unwrap_or(0).saturating_add(v));
}

/// First-block counters, in pages, as printed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counters {
    v: [Option<u64>; COUNTER_KEYS.len()],
}

impl Counters {
    fn get(&self, key: &str) -> Option<u64> {
        COUNTER_KEYS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| self.v[i])
    }
}

/// The memcg stat figures of one format, in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
struct StatFigures {
    v: [Option<u64>; STAT_KEYS.len()],
}

/// v2 names of the memcg stat fields kept, in [`MemcgStat`] order.
const STAT_KEYS: [&str; 26] = [
    "anon",
    "file",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "slab_reclaimable",
    "slab_unreclaimable",
    "swapcached",
    "swap",
    "zswap",
    "active_anon",
    "inactive_anon",
    "active_file",
    "inactive_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
];

/// A v1 key's v2 name (v2 names map to themselves).
fn v2_name(v1: &str) -> &str {
    match v1 {
        "rss" => "anon",
        "cache" => "file",
        "mapped_file" => "file_mapped",
        "rss_huge" => "anon_thp",
        "dirty" => "file_dirty",
        "writeback" => "file_writeback",
        other => other,
    }
}

impl StatFigures {
    fn add(&mut self, key: &str, bytes: u64) -> bool {
        match STAT_KEYS.iter().position(|k| *k == v2_name(key)) {
            Some(i) => {
                add(&mut self.v[i], bytes);
                true
            }
            None => false,
        }
    }
    fn is_empty(&self) -> bool {
        self.v.iter().all(Option::is_none)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct MemcgAcc {
    cgroup: String,
    cgroups: u32,
    legacy: bool,
    v1_keys: bool,
    local: StatFigures,
    total: StatFigures,
}

/// What a report's memory lines said so far. Bounded (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemAcc {
    seen_mem_info: bool,
    counters: Counters,
    node_kernel_stack_kb: Option<u64>,
    zone_kernel_stack_kb: Option<u64>,
    anon_thp_kb: Option<u64>,
    shmem_thp_kb: Option<u64>,
    zones: Vec<Zone>,
    huge: Vec<HugePages>,
    pages: [Option<u64>; 9],
    swap_free_kb: Option<u64>,
    swap_total_kb: Option<u64>,
    slab: Vec<SlabCache>,
    memcg: Option<MemcgAcc>,
    /// True between `Memory cgroup stats for X:` and the next non-`key value` line.
    in_stat_dump: bool,
}

impl MemAcc {
    /// `Mem-Info:` was seen: a new block starts. A report may print two (a `warn_alloc`
    /// failure's dump, then the OOM's): the last one before the kill is the OOM's.
    pub fn start_mem_info(&mut self) {
        let memcg = self.memcg.take();
        *self = MemAcc {
            memcg,
            seen_mem_info: true,
            ..MemAcc::default()
        };
    }

    /// True when the line continues a stat dump (a `key value` line is read only then).
    pub fn in_stat_dump(&self) -> bool {
        self.in_stat_dump
    }

    /// Leaves the stat dump: any other line of the report ends it.
    pub fn end_stat_dump(&mut self) {
        self.in_stat_dump = false;
    }

    pub fn apply(&mut self, line: MemLine<'_>) {
        if !matches!(line, MemLine::StatKv(..)) {
            self.in_stat_dump = false;
        }
        match line {
            MemLine::Counters(t) => {
                self.seen_mem_info = true;
                for tok in t.split([' ', '\t']).flat_map(|s| s.split("#012")) {
                    let Some((k, v)) = tok.split_once(':') else {
                        continue;
                    };
                    let key = k.to_ascii_lowercase();
                    if let (Some(i), Some((n, _))) =
                        (COUNTER_KEYS.iter().position(|c| *c == key), lead_u64(v))
                    {
                        self.counters.v[i] = Some(n);
                    }
                }
            }
            MemLine::Node(t) => {
                self.seen_mem_info = true;
                if let Some(v) = kb_value(t, "kernel_stack:") {
                    add(&mut self.node_kernel_stack_kb, v);
                }
                if let Some(v) = kb_value(t, "anon_thp:") {
                    add(&mut self.anon_thp_kb, v);
                }
                if let Some(v) = kb_value(t, "shmem_thp:") {
                    add(&mut self.shmem_thp_kb, v);
                }
            }
            MemLine::Zone(t) => {
                self.seen_mem_info = true;
                let (node, name, _) = zone_head(t);
                if let Some(v) = kb_value(t, "kernel_stack:") {
                    add(&mut self.zone_kernel_stack_kb, v);
                }
                if self.zones.len() < MAX_ZONES {
                    let b = |k| kb_value(t, k).map(|v| v.saturating_mul(1024));
                    self.zones.push(Zone {
                        node,
                        name: name.to_owned(),
                        free_bytes: b("free:"),
                        min_bytes: b("min:"),
                        low_bytes: b("low:"),
                        high_bytes: b("high:"),
                        present_bytes: b("present:"),
                        managed_bytes: b("managed:"),
                        free_blocks: Vec::new(),
                    });
                }
            }
            MemLine::Buddy(t) => {
                let (node, name, rest) = zone_head(t);
                let rest = rest.trim_start_matches(':');
                let blocks: Vec<FreeBlocks> = rest
                    .split_whitespace()
                    .filter_map(|tok| {
                        let (count, r) = lead_u64(tok)?;
                        let size = kb_suffixed(r.strip_prefix('*')?)?;
                        Some(FreeBlocks {
                            block_bytes: size.saturating_mul(1024),
                            count,
                        })
                    })
                    .take(MAX_ORDERS)
                    .collect();
                if let Some(z) = self
                    .zones
                    .iter_mut()
                    .find(|z| z.node == node && z.name == name && z.free_blocks.is_empty())
                {
                    z.free_blocks = blocks;
                }
            }
            MemLine::HugePages(t) => {
                let (node, _, _) = zone_head(t);
                let rest = t;
                let num = |k: &str| {
                    let i = rest.find(k)? + k.len();
                    lead_u64(&rest[i..]).map(|(v, _)| v)
                };
                let size_kb = rest
                    .find("hugepages_size=")
                    .and_then(|i| kb_suffixed(rest[i + "hugepages_size=".len()..].trim()));
                if let (Some(total), Some(free), Some(size_kb)) =
                    (num("hugepages_total="), num("hugepages_free="), size_kb)
                {
                    if self.huge.len() < MAX_HUGE_POOLS {
                        self.huge.push(HugePages {
                            node,
                            size_bytes: size_kb.saturating_mul(1024),
                            total,
                            free,
                            surplus: num("hugepages_surp=").unwrap_or(0),
                        });
                    }
                }
            }
            MemLine::Pages(what, n) => {
                self.pages[what as usize] = Some(n);
            }
            MemLine::Swap { total, kb } => {
                if total {
                    self.swap_total_kb = Some(kb);
                } else {
                    self.swap_free_kb = Some(kb);
                }
            }
            MemLine::SlabInfo => {}
            MemLine::SlabRow {
                name,
                used_kb,
                total_kb,
            } => {
                self.slab.push(SlabCache {
                    name: name.to_owned(),
                    used_bytes: used_kb.saturating_mul(1024),
                    total_bytes: total_kb.saturating_mul(1024),
                });
                self.slab.sort_by_key(|s| std::cmp::Reverse(s.total_bytes));
                self.slab.truncate(MAX_SLAB_ROWS);
            }
            MemLine::MemcgStats { path, legacy } => {
                let m = self.memcg.get_or_insert_with(|| MemcgAcc {
                    cgroup: path.to_owned(),
                    cgroups: 0,
                    legacy: !legacy.is_empty(),
                    v1_keys: false,
                    local: StatFigures::default(),
                    total: StatFigures::default(),
                });
                m.cgroups = m.cgroups.saturating_add(1);
                for tok in legacy.split_whitespace() {
                    if let Some((k, v)) = tok.split_once(':') {
                        if let Some(kb) = kb_suffixed(v) {
                            // ≤4.19 printed each cgroup's local figures: the subtree is the sum.
                            m.local.add(k, kb.saturating_mul(1024));
                            m.v1_keys |= k == "rss" || k == "cache";
                        }
                    }
                }
                self.in_stat_dump = legacy.is_empty();
            }
            MemLine::StatKv(key, v) => {
                if !self.in_stat_dump {
                    return;
                }
                if let Some(m) = &mut self.memcg {
                    m.v1_keys |= key == "rss" || key == "cache";
                    match key.strip_prefix("total_") {
                        Some(k) => {
                            m.total.add(k, v);
                        }
                        None => {
                            m.local.add(key, v);
                        }
                    }
                }
            }
        }
    }

    /// True when any memory line was read.
    pub fn is_empty(&self) -> bool {
        !self.seen_mem_info && self.memcg.is_none()
    }

    /// The page size the Mem-Info block itself shows: `N pages RAM` against the zones'
    /// `present:` kB (both count the same pages since 2.6.2x), rounded to a power of two.
    fn page_size_from_zones(&self) -> Option<u64> {
        let ram = self.pages[PageCount::Ram as usize]?;
        let present = self
            .zones
            .iter()
            .filter_map(|z| z.present_bytes)
            .fold(0u64, u64::saturating_add);
        if ram < 1024 || present == 0 {
            return None;
        }
        let per = present / ram;
        [4096u64, 8192, 16384, 65536, 262_144]
            .into_iter()
            .min_by_key(|p| p.abs_diff(per))
            .filter(|p| p.abs_diff(per) * 8 < *p)
    }

    /// The report's memory in bytes. `task_dump_page` is the page size the task dump shows
    /// (victim row against kill line), used when the Mem-Info block cannot tell.
    pub fn finish(&self, task_dump_page: Option<u64>) -> Option<Memory> {
        if self.is_empty() {
            return None;
        }
        let (page, source) = match (self.page_size_from_zones(), task_dump_page) {
            (Some(p), _) => (p, PageSizeSource::MemInfo),
            (None, Some(p)) => (p, PageSizeSource::TaskDump),
            (None, None) => (4096, PageSizeSource::Default),
        };
        let pg = |v: Option<u64>| v.map(|n| n.saturating_mul(page));
        let kb = |v: Option<u64>| v.map(|n| n.saturating_mul(1024));
        let c = |k: &str| pg(self.counters.get(k));
        let p = |w: PageCount| pg(self.pages[w as usize]);
        let mem_info = self.seen_mem_info.then(|| MemInfo {
            active_anon_bytes: c("active_anon"),
            inactive_anon_bytes: c("inactive_anon"),
            isolated_anon_bytes: c("isolated_anon"),
            active_file_bytes: c("active_file"),
            inactive_file_bytes: c("inactive_file"),
            isolated_file_bytes: c("isolated_file"),
            lru_active_bytes: c("active"),
            lru_inactive_bytes: c("inactive"),
            unevictable_bytes: c("unevictable"),
            dirty_bytes: c("dirty"),
            writeback_bytes: c("writeback"),
            unstable_bytes: c("unstable"),
            slab_reclaimable_bytes: c("slab_reclaimable"),
            slab_unreclaimable_bytes: c("slab_unreclaimable"),
            slab_bytes: c("slab"),
            mapped_bytes: c("mapped"),
            shmem_bytes: c("shmem"),
            pagetables_bytes: c("pagetables"),
            sec_pagetables_bytes: c("sec_pagetables"),
            bounce_bytes: c("bounce"),
            kernel_misc_reclaimable_bytes: c("kernel_misc_reclaimable"),
            free_bytes: c("free"),
            free_pcp_bytes: c("free_pcp"),
            free_cma_bytes: c("free_cma"),
            // 5.x+ prints kernel_stack per node and no longer per zone; 4.x per zone only.
            kernel_stack_bytes: kb(self.node_kernel_stack_kb.or(self.zone_kernel_stack_kb)),
            anon_thp_bytes: kb(self.anon_thp_kb),
            shmem_thp_bytes: kb(self.shmem_thp_kb),
            zones: self.zones.clone(),
            hugepages: self.huge.clone(),
            pagecache_bytes: p(PageCount::Pagecache),
            swap_cache_bytes: p(PageCount::SwapCache),
            swap_free_bytes: kb(self.swap_free_kb),
            swap_total_bytes: kb(self.swap_total_kb),
            ram_bytes: p(PageCount::Ram),
            highmem_bytes: p(PageCount::HighMem),
            reserved_bytes: p(PageCount::Reserved),
            cma_reserved_bytes: p(PageCount::CmaReserved),
            hwpoisoned_bytes: p(PageCount::Hwpoisoned),
            shared_bytes: p(PageCount::Shared),
            non_shared_bytes: p(PageCount::NonShared),
            unreclaimable_slab: self.slab.clone(),
        });
        let memcg_stat = self.memcg.as_ref().map(|m| {
            let use_total = !m.total.is_empty();
            let f = if use_total { &m.total } else { &m.local };
            // The limits are not hierarchical sums: they are only printed unprefixed.
            let limit = |k: &str| {
                STAT_KEYS
                    .iter()
                    .position(|x| *x == k)
                    .and_then(|i| m.local.v[i])
            };
            let g = |k: &str| STAT_KEYS.iter().position(|x| *x == k).and_then(|i| f.v[i]);
            MemcgStat {
                format: if m.legacy {
                    MemcgStatFormat::V1Line
                } else if m.v1_keys {
                    MemcgStatFormat::V1
                } else {
                    MemcgStatFormat::V2
                },
                cgroup: m.cgroup.clone(),
                cgroups: m.cgroups,
                anon_bytes: g("anon"),
                file_bytes: g("file"),
                shmem_bytes: g("shmem"),
                file_mapped_bytes: g("file_mapped"),
                file_dirty_bytes: g("file_dirty"),
                file_writeback_bytes: g("file_writeback"),
                anon_thp_bytes: g("anon_thp"),
                kernel_bytes: g("kernel"),
                kernel_stack_bytes: g("kernel_stack"),
                pagetables_bytes: g("pagetables"),
                sec_pagetables_bytes: g("sec_pagetables"),
                percpu_bytes: g("percpu"),
                sock_bytes: g("sock"),
                vmalloc_bytes: g("vmalloc"),
                slab_reclaimable_bytes: g("slab_reclaimable"),
                slab_unreclaimable_bytes: g("slab_unreclaimable"),
                swapcached_bytes: g("swapcached"),
                swap_bytes: g("swap"),
                zswap_bytes: g("zswap"),
                active_anon_bytes: g("active_anon"),
                inactive_anon_bytes: g("inactive_anon"),
                active_file_bytes: g("active_file"),
                inactive_file_bytes: g("inactive_file"),
                unevictable_bytes: g("unevictable"),
                hierarchical_memory_limit_bytes: limit("hierarchical_memory_limit"),
                hierarchical_memsw_limit_bytes: limit("hierarchical_memsw_limit"),
            }
        });
        Some(Memory {
            page_size_bytes: page,
            page_size_source: source,
            mem_info,
            memcg_stat,
        })
    }
}

/// `[Node N ]ZONE rest` → (node, zone name, rest after the name).
fn zone_head(t: &str) -> (Option<u32>, &str, &str) {
    let (node, s) = match t.strip_prefix("Node ").and_then(lead_u64) {
        Some((n, r)) => (u32::try_from(n).ok(), r.trim_start()),
        None => (None, t),
    };
    let end = s.find([' ', ':']).unwrap_or(s.len());
    (node, &s[..end], &s[end..])
}

#[cfg(test)]
mod tests;
