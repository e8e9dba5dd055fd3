//! The scope's `totalpages` as far as a report shows it (`constrained_alloc()`): the memcg limit
//! (plus swap room) for a memcg OOM, RAM plus swap for a global one, with the bounds the kernel's
//! figure lies in when the report gives it only roughly.

use serde::Serialize;

use crate::event::OomEvent;

/// The scope's `totalpages` (the unit of `oom_score_adj`), as far as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotalPages {
    /// The best figure; `None` when the report gives no size of the scope.
    pub pages: Option<u64>,
    /// Bounds the kernel's figure lies in (inclusive).
    pub lo_pages: u64,
    pub hi_pages: u64,
    pub basis: String,
}

/// Upper bound used when the report gives no size at all: 2^40 pages (4 PiB of 4 KiB pages).
const UNKNOWN_HI_PAGES: u64 = 1 << 40;

/// `totalpages` for the report's scope (`constrained_alloc()`): a memcg OOM uses
/// `mem_cgroup_get_max()` (limit, plus swap where swap is accounted and swappiness is not 0);
/// a global OOM `totalram_pages() + total_swap_pages`; cpuset and mempolicy OOMs the allowed
/// nodes' present pages plus swap (the report does not print these: bounded by the machine).
pub fn total_pages(ev: &OomEvent, page_bytes: u64) -> TotalPages {
    let ps = page_bytes.max(1);
    let kb_pages = |kb: u64| kb.saturating_mul(1024) / ps;
    // 9007199254740988kB (v2 max) and 9007199254740991kB (v1 res_counter) mean unlimited.
    let limited = |kb: u64| kb < (1u64 << 50);
    let unknown = |basis: &str| TotalPages {
        pages: None,
        lo_pages: 1,
        hi_pages: UNKNOWN_HI_PAGES,
        basis: basis.to_owned(),
    };
    if ev.is_memcg() {
        let Some(limit_kb) = ev.memcg_limit_kb.filter(|k| limited(*k)) else {
            return unknown("memcg OOM without its limit line");
        };
        let limit = kb_pages(limit_kb).max(1);
        // Swap counted on top of the limit: v1 memsw - memory, v2 swap.max; either way capped
        // by the machine's total swap, which a memcg report does not print.
        let swap_room = match (ev.memsw_limit_kb, ev.swap_limit_kb) {
            (Some(ms), _) => Some(if limited(ms) {
                kb_pages(ms).saturating_sub(limit)
            } else {
                UNKNOWN_HI_PAGES
            }),
            (None, Some(s)) => Some(if limited(s) {
                kb_pages(s)
            } else {
                UNKNOWN_HI_PAGES
            }),
            (None, None) => None,
        };
        return match swap_room {
            Some(0) | None => TotalPages {
                pages: Some(limit),
                lo_pages: limit,
                hi_pages: limit,
                basis: format!("the memcg limit, {limit} pages (no swap room above it)"),
            },
            Some(room) => TotalPages {
                pages: Some(limit),
                lo_pages: limit,
                hi_pages: limit.saturating_add(room),
                basis: format!(
                    "the memcg limit, {limit} pages, plus swap up to the machine's (not in a memcg report)"
                ),
            },
        };
    }
    let info = ev.memory.as_ref().and_then(|m| m.mem_info.as_ref());
    let Some(info) = info else {
        return unknown("no Mem-Info block");
    };
    let swap = info.swap_total_bytes.map(|b| b / ps);
    let managed: Option<u64> = {
        let zs: Vec<u64> = info.zones.iter().filter_map(|z| z.managed_bytes).collect();
        (!zs.is_empty() && zs.len() == info.zones.len()).then(|| zs.iter().map(|b| b / ps).sum())
    };
    let scope_note = match crate::diagnosis::scope(ev) {
        crate::diagnosis::Scope::Cpuset | crate::diagnosis::Scope::MemoryPolicy => {
            // Allowed nodes only: at most the machine.
            Some("cpuset/mempolicy OOM: the allowed nodes' pages, at most the machine's")
        }
        _ => None,
    };
    let (ram, exact, basis) = match (managed, info.ram_bytes, info.reserved_bytes) {
        (Some(m), _, _) => (m, true, "the zones' managed pages"),
        (None, Some(r), Some(res)) => (
            (r / ps).saturating_sub(res / ps),
            false,
            "pages RAM minus reserved",
        ),
        (None, Some(r), None) => (r / ps, false, "pages RAM"),
        _ => return unknown("Mem-Info without RAM figures"),
    };
    let total = ram + swap.unwrap_or(0);
    // totalram_pages() is the managed count; "RAM - reserved" is within a fraction of a per
    // cent of it (memory hotplug and balloon drivers move it). Allow 1 %.
    let slack = if exact { 0 } else { total / 100 };
    let lo = if scope_note.is_some() {
        1
    } else {
        total - slack
    };
    TotalPages {
        pages: Some(total),
        lo_pages: lo.max(1),
        hi_pages: total + slack,
        basis: format!(
            "{basis}{} = {total} pages{}",
            if swap.is_some() { " + swap" } else { "" },
            scope_note.map(|n| format!("; {n}")).unwrap_or_default()
        ),
    }
}
