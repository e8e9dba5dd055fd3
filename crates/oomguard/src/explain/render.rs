//! Human output of `explain`: per event what died, where memory ran out, how big the victim
//! was, what triggered it, the largest tasks, then why and what to change; and a summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use oomguard_core::breakdown::{self, Basis, Breakdown, PartKind};
use oomguard_core::diagnosis::{self, FindingKind, Scope};
use oomguard_core::event::{EventKind, OomEvent};
use oomguard_core::units::{mib_1, KIB};

use crate::term::Style;

/// Escapes control characters in attacker-controlled text (comms, cgroup paths) so a name can
/// never move the cursor, clear the screen or fake a line of output.
pub fn safe(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn kb(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_owned(), |k| format!("{} MiB", mib_1(k * KIB)))
}

/// `N process` / `N processes`.
pub fn processes(n: u64) -> String {
    if n == 1 {
        "1 process".to_owned()
    } else {
        format!("{n} processes")
    }
}

/// The wall-clock time of a record stamped only in seconds since boot, from the boot time of
/// this machine (`boot_epoch_s`, see `input::boot_epoch_s`): `2026-12-03 08:12:01 UTC`. Only
/// meaningful for this machine's own log of the current boot.
pub fn derived_time(kernel_time_s: f64, boot_epoch_s: f64) -> String {
    let t = (boot_epoch_s + kernel_time_s).max(0.0);
    let iso = oomguard_core::time::format_utc_usec((t * 1e6) as u64);
    // `2026-12-03T08:12:01.123456+00:00` → `2026-12-03 08:12:01 UTC`.
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

/// One event as text. `n`/`total` number it; `input` names the file it came from.
pub fn event(ev: &OomEvent, n: usize, input: &str, st: &Style) -> String {
    event_at(ev, n, input, st, None)
}

/// [`event`], with the machine's boot time for a live log whose records carry only seconds
/// since boot: their wall-clock time is derived and shown as such.
pub fn event_at(
    ev: &OomEvent,
    n: usize,
    input: &str,
    st: &Style,
    boot_epoch_s: Option<f64>,
) -> String {
    let mut o = String::new();
    let what = kind_title(ev.kind);
    let mut when = Vec::new();
    if let Some(t) = &ev.time {
        when.push(safe(t));
    } else if let (Some(k), Some(b)) = (ev.kernel_time_s, boot_epoch_s) {
        when.push(format!(
            "{} (derived from the boot time)",
            derived_time(k, b)
        ));
    }
    if let Some(h) = &ev.host {
        when.push(format!("host {}", safe(h)));
    }
    if let Some(k) = ev.kernel_time_s {
        when.push(format!("{k:.3} s after boot"));
    }
    if let Some(l) = ev.line {
        when.push(format!("{}:{l}", safe(input)));
    }
    let _ = writeln!(
        o,
        "{} {}  {}",
        st.red(&format!("#{n}")),
        st.bold(what),
        st.dim(&when.join(" · "))
    );
    if let (Some(pid), Some(comm)) = (ev.pid, &ev.comm) {
        let mut who = format!("{} (pid {pid}", st.bold(&safe(comm)));
        if let Some(uid) = ev.uid {
            let _ = write!(who, ", uid {uid}");
        }
        who.push(')');
        if let Some(score) = ev.score {
            let _ = write!(who, ", score {score}");
        }
        if let (Some(sp), Some(sc)) = (ev.selected_pid, &ev.selected_comm) {
            if sp != pid {
                let _ = write!(who, "; selected {} (pid {sp})", safe(sc));
            }
        }
        let _ = writeln!(o, "  {:<9}{who}", "Killed");
    }
    if let Some(w) = &ev.workload {
        if let Some(d) = w.describe() {
            let _ = writeln!(o, "  {:<9}{}", "Workload", safe(&d));
        }
        if w.first_process == Some(false) {
            let _ = writeln!(
                o,
                "  {:<9}{}",
                "",
                st.yellow(&format!(
                    "pid {}: {}",
                    ev.pid.unwrap_or(0),
                    oomguard_core::workload::KEPT_RUNNING
                ))
            );
        }
    }
    let scope = match diagnosis::scope(ev) {
        Scope::Global => "the whole machine (global OOM)".to_owned(),
        Scope::Memcg => {
            let cg = ev
                .oom_memcg
                .as_deref()
                .map(safe)
                .unwrap_or_else(|| "?".into());
            match (ev.memcg_usage_kb, ev.memcg_limit_kb) {
                (Some(u), Some(l)) => format!(
                    "memory cgroup {cg} at its limit: {} of {} MiB",
                    mib_1(u * KIB),
                    mib_1(l * KIB)
                ),
                _ => format!("memory cgroup {cg} at its limit"),
            }
        }
        Scope::Cpuset => "the cpuset's memory nodes (CONSTRAINT_CPUSET)".to_owned(),
        Scope::MemoryPolicy => "the memory policy's nodes (CONSTRAINT_MEMORY_POLICY)".to_owned(),
        Scope::Unknown => "not shown in the log".to_owned(),
    };
    let _ = writeln!(o, "  {:<9}{scope}", "Where");
    if let Some(tm) = &ev.task_memcg {
        if ev.oom_memcg.as_deref() != Some(tm.as_str()) || diagnosis::scope(ev) != Scope::Memcg {
            let _ = writeln!(o, "  {:<9}{}", "Cgroup", safe(tm));
        }
    }
    if let Some(g) = &ev.oom_group {
        let _ = writeln!(
            o,
            "  {:<9}whole group {} killed (memory.oom.group)",
            "Group",
            safe(g)
        );
    }
    if ev.kind == EventKind::Kill {
        let mut size = format!(
            "{} resident (anon {}, file {}, shmem {}), {} virtual",
            kb(ev.rss_kb()),
            kb(ev.anon_rss_kb),
            kb(ev.file_rss_kb),
            kb(ev.shmem_rss_kb),
            kb(ev.total_vm_kb)
        );
        if let Some(p) = ev.pgtables_kb {
            let _ = write!(size, ", page tables {p} kB");
        }
        if let Some(a) = ev.oom_score_adj {
            let _ = write!(size, ", oom_score_adj {a}");
        }
        let _ = writeln!(o, "  {:<9}{size}", "Size");
    }
    if let Some(t) = &ev.trigger_comm {
        let mut trig = format!("{} asked for memory", safe(t));
        if let Some(order) = ev.order {
            let _ = write!(trig, ", order {order}");
        }
        if let Some(g) = &ev.gfp_mask {
            let _ = write!(trig, ", gfp_mask {}", safe(g));
        }
        if let Some(a) = ev.trigger_oom_score_adj {
            let _ = write!(trig, ", its oom_score_adj {a}");
        }
        let _ = writeln!(o, "  {:<9}{trig}", "Trigger");
    }
    if !ev.tasks.is_empty() {
        let page = diagnosis::page_bytes(ev);
        let total: u64 = ev.tasks.iter().map(|t| t.rss_pages.unwrap_or(0)).sum();
        let _ = writeln!(
            o,
            "  {:<9}{} in the dump{}; largest:",
            "Tasks",
            processes(ev.tasks.len() as u64 + ev.tasks_dropped),
            if ev.tasks_dropped > 0 {
                " (some not kept)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            o,
            "  {}",
            st.dim("       pid    rss MiB  share    adj  name")
        );
        for t in diagnosis::largest_tasks(ev).into_iter().take(5) {
            let rss = t.rss_pages.unwrap_or(0);
            let share = (rss * 100).checked_div(total).unwrap_or(0);
            let adj = t
                .oom_score_adj
                .or(t.oom_adj)
                .map_or("?".to_owned(), |a| a.to_string());
            let mark = if Some(t.pid) == ev.pid {
                st.red("✗")
            } else {
                " ".to_owned()
            };
            let _ = writeln!(
                o,
                "  {mark} {:>9} {:>10} {:>5}% {:>6}  {}",
                t.pid,
                mib_1(rss * page),
                share,
                adj,
                safe(&t.name)
            );
        }
    }
    if let Some(b) = breakdown::breakdown(ev) {
        o.push_str(&memory_lines(&b, st));
    }
    if let Some(l) = super::recorded::text_line(ev) {
        o.push_str(&l);
    }
    let findings = diagnosis::findings(ev);
    let causes: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::Cause)
        .collect();
    let advice: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::Advice)
        .collect();
    if !causes.is_empty() {
        let _ = writeln!(o, "  {}", st.yellow("Why"));
        for f in causes {
            let _ = writeln!(o, "    • {}", safe(&f.text));
        }
    }
    if !advice.is_empty() {
        let _ = writeln!(o, "  {}", st.green("What to change"));
        for f in advice {
            let _ = writeln!(o, "    • {}", safe(&f.text));
        }
    }
    o
}

/// Width of the breakdown bar in cells.
const BAR_CELLS: usize = 50;

/// A part's colour (256-colour SGR) and its letter when colour is off.
fn swatch(k: PartKind) -> (&'static str, char) {
    match k {
        PartKind::Anon => ("38;5;203", 'a'),
        PartKind::PageCache => ("38;5;75", 'c'),
        PartKind::Shmem => ("38;5;171", 's'),
        PartKind::Unevictable => ("38;5;131", 'u'),
        PartKind::SlabUnreclaimable => ("38;5;214", 'K'),
        PartKind::SlabReclaimable => ("38;5;222", 'k'),
        PartKind::PageTables => ("38;5;44", 'p'),
        PartKind::KernelStack => ("38;5;37", 't'),
        PartKind::KernelOther => ("38;5;180", 'o'),
        PartKind::HugeUsed => ("38;5;70", 'H'),
        PartKind::HugeFree => ("38;5;150", 'h'),
        PartKind::Reserved => ("38;5;245", 'r'),
        PartKind::Free => ("38;5;240", '.'),
        PartKind::Unaccounted => ("38;5;250", '?'),
    }
}

/// Cells per part, largest remainder first, so the bar is always exactly `cells` wide.
pub fn bar_cells(b: &Breakdown, cells: usize) -> Vec<(PartKind, usize)> {
    let total: u128 = b.parts.iter().map(|p| p.bytes as u128).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut out: Vec<(PartKind, usize, u128)> = b
        .parts
        .iter()
        .map(|p| {
            let exact = p.bytes as u128 * cells as u128;
            (p.kind, (exact / total) as usize, exact % total)
        })
        .collect();
    let used: usize = out.iter().map(|x| x.1).sum();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|a, b| out[*b].2.cmp(&out[*a].2));
    for i in order.into_iter().take(cells.saturating_sub(used)) {
        out[i].1 += 1;
    }
    out.into_iter().map(|(k, n, _)| (k, n)).collect()
}

fn pct(permille: u64) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// The breakdown: a one-line bar, its legend with MiB and shares, RSS against counters.
fn memory_lines(b: &Breakdown, st: &Style) -> String {
    let mut o = String::new();
    let basis = match b.basis {
        Basis::Ram => "RAM",
        Basis::MemInfoSum => "memory shown",
        Basis::MemcgLimit => "cgroup limit",
        Basis::MemcgUsage => "cgroup usage (no limit)",
    };
    let mut bar = String::new();
    for (k, n) in bar_cells(b, BAR_CELLS) {
        let (code, letter) = swatch(k);
        if n == 0 {
            continue;
        }
        if st.is_on() {
            bar.push_str(&st.sgr(code, &"█".repeat(n)));
        } else {
            bar.extend(std::iter::repeat_n(letter, n));
        }
    }
    let _ = writeln!(
        o,
        "  {:<9}{basis} {} MiB  [{bar}]",
        "Memory",
        mib_1(b.total_bytes)
    );
    let mut line = String::new();
    let mut width = 0usize;
    for p in &b.parts {
        let (code, letter) = swatch(p.kind);
        let mark = if st.is_on() {
            st.sgr(code, "█")
        } else {
            letter.to_string()
        };
        let item = format!(
            "{} {} MiB {}",
            p.kind.label(),
            mib_1(p.bytes),
            pct(b.permille(p.bytes))
        );
        if width > 0 && width + item.len() + 4 > 88 {
            let _ = writeln!(o, "  {:<9}{line}", "");
            line.clear();
            width = 0;
        }
        if width > 0 {
            line.push_str("  ");
            width += 2;
        }
        line.push_str(&format!("{mark} {item}"));
        width += item.len() + 2;
    }
    if !line.is_empty() {
        let _ = writeln!(o, "  {:<9}{line}", "");
    }
    if b.overcounted_bytes > 0 {
        let _ = writeln!(
            o,
            "  {:<9}{}",
            "",
            st.dim(&format!(
                "(the counters add up to {} MiB more than the total: read at slightly different moments)",
                mib_1(b.overcounted_bytes)
            ))
        );
    }
    match (b.tasks_rss_bytes, b.counters_rss_bytes) {
        (Some(t), Some(c)) => {
            let _ = writeln!(
                o,
                "  {:<9}task dump RSS {} MiB; counters (anon + shmem + mapped file) {} MiB",
                "",
                mib_1(t),
                mib_1(c)
            );
        }
        (Some(t), None) => {
            let _ = writeln!(o, "  {:<9}task dump RSS {} MiB", "", mib_1(t));
        }
        _ => {}
    }
    o
}

/// Aggregates events for the closing summary: per victim name, count and first/last time.
#[derive(Debug, Default)]
pub struct Summary {
    by_name: BTreeMap<String, (u64, String, String)>,
    total: u64,
    dropped_names: u64,
    /// The machine's boot time, for a live log (see [`event_at`]).
    pub boot_epoch_s: Option<f64>,
}

/// Distinct victim names kept for the summary (bounded memory on hostile input).
const MAX_NAMES: usize = 1000;

impl Summary {
    pub fn add(&mut self, ev: &OomEvent) {
        self.total += 1;
        let name = ev
            .comm
            .clone()
            .unwrap_or_else(|| format!("({})", kind_word(ev.kind)));
        let boot = self.boot_epoch_s;
        let when = ev
            .time
            .clone()
            .or_else(|| ev.kernel_time_s.zip(boot).map(|(k, b)| derived_time(k, b)))
            .or_else(|| ev.kernel_time_s.map(|k| format!("{k:.3} s after boot")))
            .unwrap_or_else(|| "?".into());
        if !self.by_name.contains_key(&name) && self.by_name.len() >= MAX_NAMES {
            self.dropped_names += 1;
            return;
        }
        let e = self
            .by_name
            .entry(name)
            .or_insert_with(|| (0, when.clone(), when.clone()));
        e.0 += 1;
        e.2 = when;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn render(&self, st: &Style) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{}",
            st.bold(&format!("Summary: {} OOM events", self.total))
        );
        let mut rows: Vec<_> = self.by_name.iter().collect();
        rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        for (name, (count, first, last)) in rows {
            let span = if first == last {
                format!("at {}", safe(first))
            } else {
                format!("first {}, last {}", safe(first), safe(last))
            };
            let _ = writeln!(
                o,
                "  {:>5} × {}  {}",
                count,
                st.cyan(&safe(name)),
                st.dim(&span)
            );
        }
        if self.dropped_names > 0 {
            let _ = writeln!(
                o,
                "  ({} more events under other names not listed)",
                self.dropped_names
            );
        }
        o
    }
}

/// The heading of an event, for people (text and HTML output share it).
pub fn kind_title(k: EventKind) -> &'static str {
    match k {
        EventKind::Kill => "OOM kill",
        EventKind::NoKillable => "OOM with nothing to kill",
        EventKind::Panic => "OOM panic",
        EventKind::Incomplete => "OOM report without a kill line",
        EventKind::Exit => "supervised command exit",
        EventKind::Warning => "memory warning",
        EventKind::Forecast => "time-to-OOM forecast",
    }
}

/// The short word for an event kind, in summaries (text and HTML output share it).
pub fn kind_word(k: EventKind) -> &'static str {
    match k {
        EventKind::Kill => "kill",
        EventKind::NoKillable => "nothing killable",
        EventKind::Panic => "panic",
        EventKind::Incomplete => "incomplete report",
        EventKind::Exit => "exit",
        EventKind::Warning => "warning",
        EventKind::Forecast => "forecast",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_escaped() {
        assert_eq!(safe("a\nb\x1b[2J"), "a\\nb\\u{1b}[2J");
        let mut ev = OomEvent::new(EventKind::Kill);
        ev.pid = Some(1);
        ev.comm = Some("x\n#2 OOM kill".into());
        let out = event(&ev, 1, "f", &Style::plain());
        assert!(!out.contains("\n#2"));
    }

    #[test]
    fn live_times_are_derived_and_say_so() {
        let mut ev = OomEvent::new(EventKind::Kill);
        ev.kernel_time_s = Some(8967.607);
        // Booted at 2026-12-03 06:00:00 UTC.
        let boot = 1_796_277_600.0;
        let out = event_at(&ev, 1, "/dev/kmsg", &Style::plain(), Some(boot));
        assert!(
            out.contains("2026-12-03 08:29:27 UTC (derived from the boot time)"),
            "{out}"
        );
        assert!(out.contains("8967.607 s after boot"), "{out}");
        // A record that printed its own time keeps it; nothing is derived.
        ev.time = Some("Jun  4 07:41:59".into());
        let out = event_at(&ev, 1, "f", &Style::plain(), Some(boot));
        assert!(
            out.contains("Jun  4 07:41:59") && !out.contains("derived"),
            "{out}"
        );
    }

    #[test]
    fn one_process_is_singular() {
        assert_eq!(processes(1), "1 process");
        assert_eq!(processes(0), "0 processes");
        assert_eq!(processes(2), "2 processes");
    }
}
