//! Human output of `explain`: per event what died, where memory ran out, how big the victim
//! was, what triggered it, the largest tasks, then why and what to change; and a summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

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

/// One event as text. `n`/`total` number it; `input` names the file it came from.
pub fn event(ev: &OomEvent, n: usize, input: &str, st: &Style) -> String {
    let mut o = String::new();
    let what = match ev.kind {
        EventKind::Kill => "OOM kill",
        EventKind::NoKillable => "OOM with nothing to kill",
        EventKind::Panic => "OOM panic",
        EventKind::Incomplete => "OOM report without a kill line",
        EventKind::Warn => "oomguard warning",
    };
    let mut when = Vec::new();
    if let Some(t) = &ev.time {
        when.push(safe(t));
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
            "  {:<9}{} processes in the dump{}; largest:",
            "Tasks",
            ev.tasks.len() as u64 + ev.tasks_dropped,
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

/// Aggregates events for the closing summary: per victim name, count and first/last time.
#[derive(Debug, Default)]
pub struct Summary {
    by_name: BTreeMap<String, (u64, String, String)>,
    total: u64,
    dropped_names: u64,
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
        let when = ev
            .time
            .clone()
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

fn kind_word(k: EventKind) -> &'static str {
    match k {
        EventKind::Kill => "kill",
        EventKind::NoKillable => "nothing killable",
        EventKind::Panic => "panic",
        EventKind::Incomplete => "incomplete report",
        EventKind::Warn => "warning",
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
}
