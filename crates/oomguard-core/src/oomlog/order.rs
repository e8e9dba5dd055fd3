//! The input's order: a newest-first log (`journalctl -r`, log-search exports) is recognised from
//! the first report's stamps and line order (`Probe`), and each report of it is collected and
//! put back in order before it is read (`Parser::flush_chunk`). `print_rank` is the kernel's
//! print order of one report, which report assembly uses too.

use super::lines::{self, Line};
use super::{prefix, OwnedMeta, Parser, Rec, CHUNK_MAX};

/// Whether the input runs oldest-first (every kernel log as written) or newest-first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    #[default]
    Unknown,
    Forward,
    Reversed,
}

/// The previous record, as the order probe compares it: print rank, stamp, host, process.
type Seen = (u8, Option<f64>, Option<String>, Option<i64>);

/// What the records seen so far say about the order.
#[derive(Debug, Default)]
pub(super) struct Probe {
    pub(super) recs: Vec<Rec>,
    /// > 0: oldest-first, < 0: newest-first.
    pub(super) score: i32,
    prev: Option<Seen>,
    pub(super) first_line: u64,
}

impl Parser {
    /// Adds what one record says about the order to the probe: its stamp against the previous
    /// record's, and whether the pair is in the kernel's print order or the reverse of it.
    pub(super) fn observe(&mut self, kind: &Line<'_>, meta: &OwnedMeta) {
        let Some(rank) = print_rank(kind) else {
            return;
        };
        let key = order_key(meta);
        let pid = match kind {
            Line::Killed(k) => Some(k.pid),
            Line::Select(s) => Some(s.pid),
            Line::Summary(s) => s.pid,
            Line::Reaped(r) => Some(r.pid),
            _ => None,
        };
        if let Some((prev_rank, prev_key, prev_host, prev_pid)) = &self.probe.prev {
            if prev_host == &meta.host {
                if let (Some(a), Some(b)) = (prev_key, key) {
                    if b > *a {
                        self.probe.score += 1;
                    } else if b < *a {
                        self.probe.score -= 1;
                    }
                }
                let same_process = pid.is_some() && *prev_pid == pid;
                self.probe.score += pair_order(*prev_rank, rank, same_process);
            }
        }
        self.probe.prev = Some((rank, key, meta.host.clone(), pid));
    }

    /// Fixes the order and reads the records held so far accordingly.
    pub(super) fn decide(&mut self, order: Order) {
        self.order = order;
        let recs = std::mem::take(&mut self.probe.recs);
        for r in recs {
            match order {
                Order::Reversed => {
                    let header = matches!(lines::classify(&r.text), Some(Line::Header(_)));
                    self.collect(r);
                    if header {
                        self.flush_chunk();
                    }
                }
                _ => {
                    if let Some(kind) = lines::classify(&r.text) {
                        self.apply(kind, &r.meta, r.line_no);
                    }
                }
            }
        }
    }

    pub(super) fn collect(&mut self, r: Rec) {
        self.chunk_last_line = r.line_no;
        self.chunk.push(r);
        if self.chunk.len() >= CHUNK_MAX {
            self.flush_chunk();
        }
    }

    /// Reads one collected report of a newest-first log oldest-first: reversed, then, when every
    /// record has a stamp, sorted by it (exports sorted by a coarser time leave records of the
    /// same second in any order; the sort is stable, so equal stamps keep the reversed order).
    pub(super) fn flush_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let mut recs = std::mem::take(&mut self.chunk);
        recs.reverse();
        if recs.iter().all(|r| order_key(&r.meta).is_some()) {
            recs.sort_by(|a, b| {
                order_key(&a.meta)
                    .partial_cmp(&order_key(&b.meta))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        for r in recs {
            if let Some(kind) = lines::classify(&r.text) {
                self.apply(kind, &r.meta, r.line_no);
            }
        }
    }
}

/// Where a line comes in the kernel's print order of one report (mm/oom_kill.c dump_header,
/// then the kill): header, cpuset, memcg usage or Mem-Info, task dump, summary or selection,
/// kill, group, reaper. `None` for lines that give no order evidence.
pub(super) fn print_rank(l: &Line<'_>) -> Option<u8> {
    Some(match l {
        Line::Header(_) => 0,
        Line::Cpuset { .. } => 1,
        Line::MemInfo | Line::TaskIn { .. } => 2,
        Line::Usage { .. } | Line::Mem(_) => 3,
        Line::TasksState => 4,
        Line::TaskColumns(_) => 5,
        Line::TaskRow(_) => 6,
        Line::Summary(_) | Line::Select(_) => 7,
        Line::Killed(_) | Line::NoKillable(_) => 8,
        Line::GroupKill { .. } => 9,
        Line::Reaped(_) => 10,
        Line::Panic(_) | Line::InitPanic(_) => return None,
    })
}

/// +1 when `a` then `b` is the kernel's order, -1 when it is the reverse, 0 when the pair says
/// nothing (a header after a kill starts the next report in either order). A kill then a
/// selection, or a reaper then a kill, is the reverse order only about the same process: in a
/// `grep`-filtered burst the next report's lines follow the last one's in the same way.
fn pair_order(a: u8, b: u8, same_process: bool) -> i32 {
    match (a, b) {
        (0, 1..) | (2, 3) | (4, 5) | (5, 6) | (7, 8) => 1,
        (8, 10) if same_process => 1,
        (1..=7, 0) | (3, 2) | (5, 4) | (6, 5) => -1,
        (8, 7) | (10, 8) if same_process => -1,
        _ => 0,
    }
}

/// A record's stamp for ordering: seconds since boot, or its wall-clock time.
fn order_key(m: &OwnedMeta) -> Option<f64> {
    m.kernel_time_s
        .or_else(|| m.time.as_deref().and_then(prefix::wall_seconds))
}
