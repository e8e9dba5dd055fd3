//! `explain --html FILE`: one self-contained HTML page (inline CSS and SVG, no script, no font or
//! anything else from the network) with, per event, the summary, where the memory went (a
//! stacked bar and its legend), the largest tasks, the diagnosis and every parsed parameter with
//! what it means; for several events a timeline of kills by victim name.
//!
//! Everything from the log (names, cgroup paths, messages) is attacker-controlled: it passes
//! through [`esc`] (control characters escaped as in the terminal output, then HTML-escaped), and
//! a Content-Security-Policy that forbids scripts outright backs that up.
//! Memory stays bounded: at most [`MAX_DETAILED`] events get a full section, at most
//! [`MAX_TIMELINE`] kills are kept for the timeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use oomguard_core::breakdown::{self, Basis, PartKind};
use oomguard_core::diagnosis::{self, FindingKind, Scope};
use oomguard_core::event::{EventKind, OomEvent};
use oomguard_core::units::{mib_1, KIB};

use super::render::safe;

/// Events drawn in full; later ones only join the timeline and the count.
pub const MAX_DETAILED: usize = 200;
/// Kills kept for the timeline.
pub const MAX_TIMELINE: usize = 10_000;
/// Victim names with their own timeline row; the rest share one.
const TIMELINE_ROWS: usize = 12;
/// Largest tasks drawn per event.
const TOP_TASKS: usize = 10;

/// Escapes log text for HTML: control characters first (as the terminal output does), then
/// `& < > " '`.
pub fn esc(s: &str) -> String {
    let s = safe(s);
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The page being built.
#[derive(Debug, Default)]
pub struct HtmlReport {
    sections: Vec<String>,
    /// (kernel seconds or event number, victim name, event number)
    kills: Vec<(Option<f64>, String, usize)>,
    total: usize,
    inputs: Vec<String>,
}

impl HtmlReport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes an input file name (shown in the header).
    pub fn input(&mut self, name: &str) {
        if self.inputs.len() < 50 && !self.inputs.iter().any(|i| i == name) {
            self.inputs.push(name.to_owned());
        }
    }

    /// Adds event number `n` read from `input`.
    pub fn add(&mut self, ev: &OomEvent, n: usize, input: &str) {
        self.total += 1;
        if self.kills.len() < MAX_TIMELINE {
            let name = ev
                .comm
                .clone()
                .unwrap_or_else(|| format!("({})", super::render::kind_word(ev.kind)));
            self.kills.push((ev.kernel_time_s, name, n));
        }
        if self.sections.len() < MAX_DETAILED {
            self.sections.push(section(ev, n, input));
        }
    }

    /// The whole document.
    pub fn finish(&self) -> String {
        let mut o = String::with_capacity(64 * 1024);
        let title = format!(
            "OOM report: {} event{}",
            self.total,
            if self.total == 1 { "" } else { "s" }
        );
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; img-src data:\">\n\
             <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
            esc(&title)
        );
        let _ = writeln!(
            o,
            "<header><h1>{}</h1><p class=\"sub\">Read by <b>oomguard explain</b> from {}. \
             Figures are what the kernel printed; nothing is guessed.</p></header>",
            esc(&title),
            if self.inputs.is_empty() {
                "the kernel log".to_owned()
            } else {
                self.inputs
                    .iter()
                    .map(|i| format!("<code>{}</code>", esc(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        if self.total > 1 {
            o.push_str(&self.timeline());
        }
        if self.total == 0 {
            o.push_str("<p>No OOM events were found.</p>\n");
        }
        for s in &self.sections {
            o.push_str(s);
        }
        if self.total > self.sections.len() {
            let _ = writeln!(
                o,
                "<p class=\"note\">{} more events are in the timeline only.</p>",
                self.total - self.sections.len()
            );
        }
        o.push_str("</main>\n</body>\n</html>\n");
        o
    }

    /// Kills by victim name over time: one row per name, one tick per kill.
    fn timeline(&self) -> String {
        let mut o = String::new();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, name, _) in &self.kills {
            *counts.entry(name.as_str()).or_default() += 1;
        }
        let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let shown: Vec<&str> = names.iter().take(TIMELINE_ROWS).map(|n| n.0).collect();
        let others = names.len() > TIMELINE_ROWS;
        // Kernel time when every kill has it (and it grows), else event order.
        let by_time = self.kills.iter().all(|k| k.0.is_some())
            && self.kills.windows(2).all(|w| w[0].0 <= w[1].0);
        let x = |k: &(Option<f64>, String, usize)| -> f64 {
            if by_time {
                k.0.unwrap_or(0.0)
            } else {
                k.2 as f64
            }
        };
        let (lo, hi) = self.kills.iter().fold((f64::MAX, f64::MIN), |(lo, hi), k| {
            (lo.min(x(k)), hi.max(x(k)))
        });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let axis = if by_time {
            format!("{:.1} s to {:.1} s after boot", lo.max(0.0), hi.max(0.0))
        } else {
            format!("events 1 to {}", self.kills.len())
        };
        let _ = write!(
            o,
            "<section class=\"card\"><h2>Kills over time</h2><p class=\"sub\">One row per \
             victim name, one tick per kill; {axis}.</p><div class=\"tl\">"
        );
        let mut rows: Vec<(String, usize)> =
            shown.iter().map(|n| ((*n).to_owned(), 0usize)).collect();
        if others {
            rows.push(("(other names)".to_owned(), 0));
        }
        for (label, _) in &rows {
            let mut ticks = String::new();
            let mut count = 0usize;
            for k in &self.kills {
                let mine = if label == "(other names)" && others {
                    !shown.contains(&k.1.as_str())
                } else {
                    k.1 == *label
                };
                if mine {
                    count += 1;
                    let px = (x(k) - lo) / span * 990.0 + 5.0;
                    let _ = write!(
                        ticks,
                        "<rect x=\"{:.1}\" y=\"2\" width=\"3\" height=\"16\"/>",
                        px - 1.5
                    );
                }
            }
            let _ = write!(
                o,
                "<div class=\"tl-name\" title=\"{0}\">{0} <span class=\"n\">× {count}</span></div>\
                 <svg class=\"tl-strip\" viewBox=\"0 0 1000 20\" preserveAspectRatio=\"none\" \
                 width=\"100%\" height=\"20\" role=\"img\" aria-label=\"{count} kills of {0}\">\
                 <line x1=\"0\" y1=\"10\" x2=\"1000\" y2=\"10\"/>{ticks}</svg>",
                esc(label)
            );
        }
        o.push_str("</div></section>\n");
        o
    }
}

/// The stylesheet: system fonts, a single column that reads on a phone (390 px) and a laptop.
pub const CSS: &str = r#"
:root{--fg:#1d232b;--dim:#5d6873;--bg:#f3f5f7;--card:#fff;--line:#dfe3e8;--accent:#b4232a}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:16px}
header h1{font-size:1.6rem;margin:.2em 0}
h2{font-size:1.25rem;margin:0 0 .2em;overflow-wrap:anywhere}
h3{font-size:1rem;margin:1.2em 0 .4em;color:var(--fg)}
.num{color:var(--accent)}
.sub,.dim,.note{color:var(--dim)}
.note{overflow-wrap:anywhere}
.sub{margin:.2em 0 .8em;overflow-wrap:anywhere}
.note{font-size:.9rem}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;margin:0 0 16px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
.facts dt{font-weight:600;color:var(--dim)}
.facts dd{margin:0;overflow-wrap:anywhere}
figure{margin:0}
svg.breakdown{display:block;border-radius:6px;background:#eef0f2}
table{border-collapse:collapse;width:100%}
td,th{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--dim);font-size:.85rem}
.r{text-align:right;white-space:nowrap}
.legend{margin-top:8px;font-size:.92rem}
.legend td:first-child{white-space:nowrap}
.sw{display:inline-block;width:.85em;height:.85em;border-radius:2px;margin-right:.5em;vertical-align:-.05em;box-shadow:inset 0 0 0 1px rgba(0,0,0,.15)}
.findings{margin:0;padding-left:1.2em}
.findings li{margin:.25em 0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
.tasks .name{overflow-wrap:break-word}
.tasks .wide{width:38%;min-width:90px}
.tasks tr.victim td{background:#fdf0f0}
.tasks b{color:var(--accent);font-size:.8rem}
svg.tbar rect{fill:#e5534b}
svg.tbar{display:block;background:#f0f2f4}
.spark th{text-align:left;font-weight:500;padding-right:1em}
svg.sparkline{display:block;color:#1f6feb;background:#f6f8fa}
details{margin-top:1em}
summary{cursor:pointer;font-weight:600}
.params{table-layout:fixed}
.params th:nth-child(1){width:30%}.params th:nth-child(2){width:32%}
.params td{overflow-wrap:anywhere}
.tl{display:grid;grid-template-columns:minmax(90px,max-content) 1fr;gap:6px 12px;align-items:center}
.tl-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:40vw}
.tl .n{color:var(--dim);font-size:.85rem}
svg.tl-strip line{stroke:var(--line);stroke-width:2}
svg.tl-strip rect{fill:var(--accent)}
.p-anon{fill:#e5534b;background:#e5534b}.p-pagecache{fill:#4a90d9;background:#4a90d9}
.p-shmem{fill:#b05cc8;background:#b05cc8}.p-unevictable{fill:#8c4a3c;background:#8c4a3c}
.p-slab_unreclaimable{fill:#f0a020;background:#f0a020}.p-slab_reclaimable{fill:#f5cf7a;background:#f5cf7a}
.p-pagetables{fill:#20a8a8;background:#20a8a8}.p-kernel_stack{fill:#167a7a;background:#167a7a}
.p-kernel_other{fill:#c8a882;background:#c8a882}.p-huge_used{fill:#4f9a3a;background:#4f9a3a}
.p-huge_free{fill:#a8d690;background:#a8d690}.p-reserved{fill:#8a9097;background:#8a9097}
.p-free{fill:#d4dade;background:#d4dade}.p-unaccounted{fill:#ffffff;background:#ffffff;stroke:#c4c9ce}
@media (max-width:600px){
 main{padding:10px}
 body{font-size:14px}
 .card{padding:12px}
 .facts{grid-template-columns:1fr}
 .facts dt{margin-top:6px}
 header h1{font-size:1.3rem}
 h2{font-size:1.1rem}
 .legend td:last-child{display:none}
 .tasks .wide{display:none}
 .params thead{display:none}
 .params tr{display:grid;grid-template-columns:45% 55%;border-bottom:1px solid var(--line)}
 .params td{border:0}
 .params td:last-child{grid-column:1 / -1;padding-top:0;font-size:.85em}
}
"#;

fn kb(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_owned(), |k| format!("{} MiB", mib_1(k * KIB)))
}

fn pct(permille: u64) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// One event's section.
fn section(ev: &OomEvent, n: usize, input: &str) -> String {
    let mut o = String::new();
    let what = super::render::kind_title(ev.kind);
    let who = match (&ev.comm, ev.pid) {
        (Some(c), Some(p)) => format!(": {} <span class=\"dim\">(pid {p})</span>", esc(c)),
        _ => String::new(),
    };
    let mut when = Vec::new();
    if let Some(t) = &ev.time {
        when.push(esc(t));
    }
    if let Some(h) = &ev.host {
        when.push(format!("host {}", esc(h)));
    }
    if let Some(k) = ev.kernel_time_s {
        when.push(format!("{k:.3} s after boot"));
    }
    if let Some(l) = ev.line {
        when.push(format!("{}:{l}", esc(input)));
    }
    let _ = write!(
        o,
        "<article class=\"card event\" id=\"event-{n}\">\n<h2><span class=\"num\">#{n}</span> \
         {what}{who}</h2>\n<p class=\"sub\">{}</p>\n<dl class=\"facts\">",
        when.join(" · ")
    );
    let mut fact = |k: &str, v: String| {
        let _ = write!(o, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact("Where", esc(&where_text(ev)));
    if let Some(tm) = &ev.task_memcg {
        fact("Cgroup", format!("<code>{}</code>", esc(tm)));
    }
    if let Some(w) = &ev.workload {
        if let Some(d) = w.describe() {
            let mut v = esc(&d);
            if w.first_process == Some(false) {
                let _ = write!(
                    v,
                    "<br><strong>pid {}: {}</strong>",
                    ev.pid.unwrap_or(0),
                    esc(oomguard_core::workload::KEPT_RUNNING)
                );
            }
            fact("Workload", v);
        }
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
        if let Some(a) = ev.oom_score_adj {
            let _ = write!(size, ", oom_score_adj {a}");
        }
        fact("Victim", size);
    }
    if let Some(t) = &ev.trigger_comm {
        let mut trig = format!("{} asked for memory", esc(t));
        if let Some(order) = ev.order {
            let _ = write!(trig, ", order {order}");
        }
        if let Some(g) = &ev.gfp_mask {
            let _ = write!(trig, ", gfp_mask <code>{}</code>", esc(g));
        }
        fact("Trigger", trig);
    }
    o.push_str("</dl>\n");
    if let Some(b) = breakdown::breakdown(ev) {
        let basis = match b.basis {
            Basis::Ram => "RAM",
            Basis::MemInfoSum => "memory the report shows",
            Basis::MemcgLimit => "the cgroup's limit",
            Basis::MemcgUsage => "the cgroup's usage (it had no limit)",
        };
        let _ = write!(
            o,
            "<h3>Where the memory went</h3>\n<p class=\"sub\">{} MiB of {basis}, as the \
             report's {} show{}.</p>\n",
            mib_1(b.total_bytes),
            if matches!(b.basis, Basis::MemcgLimit | Basis::MemcgUsage) {
                "memcg lines"
            } else {
                "Mem-Info counters"
            },
            if matches!(b.basis, Basis::MemcgLimit | Basis::MemcgUsage) {
                ""
            } else {
                " it"
            }
        );
        let total: u128 = b.parts.iter().map(|p| p.bytes as u128).sum::<u128>().max(1);
        let mut x = 0f64;
        let mut rects = String::new();
        for p in &b.parts {
            let w = p.bytes as f64 / total as f64 * 1000.0;
            let _ = write!(
                rects,
                "<rect class=\"p-{}\" x=\"{x:.2}\" y=\"0\" width=\"{w:.2}\" height=\"40\"><title>{}: {} MiB</title></rect>",
                p.kind.key(),
                p.kind.label(),
                mib_1(p.bytes)
            );
            x += w;
        }
        let _ = write!(
            o,
            "<figure class=\"bar\"><svg class=\"breakdown\" viewBox=\"0 0 1000 40\" \
             preserveAspectRatio=\"none\" width=\"100%\" height=\"40\" role=\"img\" \
             aria-label=\"memory breakdown\">{rects}</svg>\n<table class=\"legend\"><tbody>"
        );
        for p in &b.parts {
            let _ = write!(
                o,
                "<tr><td><span class=\"sw p-{}\"></span>{}</td><td class=\"r\">{} MiB</td>\
                 <td class=\"r\">{}</td><td class=\"dim\">{}</td></tr>",
                p.kind.key(),
                p.kind.label(),
                mib_1(p.bytes),
                pct(b.permille(p.bytes)),
                part_meaning(p.kind)
            );
        }
        o.push_str("</tbody></table>");
        if b.overcounted_bytes > 0 {
            let _ = write!(
                o,
                "<p class=\"note\">The counters add up to {} MiB more than the total (read at \
                 slightly different moments).</p>",
                mib_1(b.overcounted_bytes)
            );
        }
        if let Some(t) = b.tasks_rss_bytes {
            let _ = write!(
                o,
                "<p class=\"note\">Task dump: {} MiB resident in total",
                mib_1(t)
            );
            if let Some(c) = b.counters_rss_bytes {
                let _ = write!(
                    o,
                    "; the counters show {} MiB of anonymous, shmem and mapped file memory",
                    mib_1(c)
                );
            }
            o.push_str(".</p>");
        }
        o.push_str("</figure>\n");
    }
    let findings = diagnosis::findings(ev);
    for (kind, title) in [
        (FindingKind::Cause, "Why"),
        (FindingKind::Advice, "What to change"),
    ] {
        let items: Vec<_> = findings.iter().filter(|f| f.kind == kind).collect();
        if items.is_empty() {
            continue;
        }
        let _ = write!(o, "<h3>{title}</h3>\n<ul class=\"findings\">");
        for f in items {
            let _ = write!(o, "<li>{}</li>", esc(&f.text));
        }
        o.push_str("</ul>\n");
    }
    if !ev.tasks.is_empty() {
        let page = diagnosis::page_bytes(ev);
        let rows = diagnosis::largest_tasks(ev);
        let top = rows
            .first()
            .and_then(|t| t.rss_pages)
            .unwrap_or(0)
            .max(1)
            .saturating_mul(page);
        let _ = write!(
            o,
            "<h3>Largest tasks by resident memory</h3>\n<p class=\"sub\">{} in the \
             task dump{}.</p>\n<div class=\"scroll\"><table class=\"tasks\"><thead><tr><th>pid</th>\
             <th>name</th><th class=\"r\">RSS MiB</th><th class=\"wide\">share of the largest</th>\
             <th class=\"r\">adj</th></tr></thead><tbody>",
            super::render::processes(ev.tasks.len() as u64 + ev.tasks_dropped),
            if ev.tasks_dropped > 0 {
                " (some not kept)"
            } else {
                ""
            }
        );
        for t in rows.into_iter().take(TOP_TASKS) {
            let bytes = t.rss_pages.unwrap_or(0).saturating_mul(page);
            let w = (bytes as f64 / top as f64 * 100.0).clamp(0.0, 100.0);
            let victim = Some(t.pid) == ev.pid;
            let adj = t
                .oom_score_adj
                .or(t.oom_adj)
                .map_or("?".to_owned(), |a| a.to_string());
            let _ = write!(
                o,
                "<tr{}><td>{}</td><td class=\"name\">{}{}</td><td class=\"r\">{}</td><td class=\"wide\">\
                 <svg class=\"tbar\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" \
                 width=\"100%\" height=\"12\" role=\"img\" aria-label=\"{} MiB\"><rect \
                 width=\"{w:.2}\" height=\"10\"/></svg></td><td class=\"r\">{adj}</td></tr>",
                if victim { " class=\"victim\"" } else { "" },
                t.pid,
                esc(&t.name),
                if victim { " <b>killed</b>" } else { "" },
                mib_1(bytes),
                mib_1(bytes)
            );
        }
        o.push_str("</tbody></table></div>\n");
        let groups = diagnosis::task_groups(ev);
        if groups.first().is_some_and(|g| g.1 > 1) {
            o.push_str("<p class=\"note\">By name: ");
            let items: Vec<String> = groups
                .iter()
                .take(5)
                .map(|(n, c, b)| format!("{} × {} ({} MiB)", c, esc(n), mib_1(*b)))
                .collect();
            o.push_str(&items.join(", "));
            o.push_str(".</p>\n");
        }
    }
    o.push_str(&super::recorded::html_section(ev));
    o.push_str(&parameters(ev));
    o.push_str("</article>\n");
    o
}

fn where_text(ev: &OomEvent) -> String {
    match diagnosis::scope(ev) {
        Scope::Global => "the whole machine (global OOM)".to_owned(),
        Scope::Memcg => {
            let cg = ev.oom_memcg.as_deref().unwrap_or("?");
            match (ev.memcg_usage_kb, ev.memcg_limit_kb) {
                (Some(u), Some(l)) => format!(
                    "memory cgroup {cg} at its limit: {} of {} MiB",
                    mib_1(u * KIB),
                    mib_1(l * KIB)
                ),
                _ => format!("memory cgroup {cg} at its limit"),
            }
        }
        Scope::Cpuset => "the cpuset's memory nodes".to_owned(),
        Scope::MemoryPolicy => "the memory policy's nodes".to_owned(),
        Scope::Unknown => "not shown in the log".to_owned(),
    }
}

fn part_meaning(k: PartKind) -> &'static str {
    match k {
        PartKind::Anon => "heaps, stacks and private mappings of processes (anon LRU minus shmem)",
        PartKind::PageCache => "cached file data (file LRU); the kernel drops it under pressure",
        PartKind::Shmem => "tmpfs files, shared memory, memfd: freed only when deleted",
        PartKind::Unevictable => "mlocked or ramfs pages that cannot be reclaimed",
        PartKind::SlabUnreclaimable => "kernel objects that cannot be freed on demand",
        PartKind::SlabReclaimable => "kernel caches (dentries, inodes) that can be shrunk",
        PartKind::PageTables => "the page tables mapping processes' memory",
        PartKind::KernelStack => "one kernel stack per thread",
        PartKind::KernelOther => "other kernel memory charged (percpu, sockets, vmalloc, kmem)",
        PartKind::HugeUsed => "hugetlbfs pages reserved and in use",
        PartKind::HugeFree => "hugetlbfs pages reserved but unused: lost to everything else",
        PartKind::Reserved => "taken at boot (kernel image, page structures, firmware)",
        PartKind::Free => "free pages (memcg: the headroom below the limit)",
        PartKind::Unaccounted => "what the printed counters do not cover",
    }
}

/// Every non-null parsed field with its value and a one-line meaning.
fn parameters(ev: &OomEvent) -> String {
    let mut rows: Vec<(String, String, &'static str)> = Vec::new();
    let Ok(serde_json::Value::Object(top)) = serde_json::to_value(ev) else {
        return String::new();
    };
    for (k, v) in &top {
        match k.as_str() {
            "tasks" | "memory" | "reaped" | "workload" | "recorder" => {}
            _ => push_scalar(&mut rows, k, k, v),
        }
    }
    if let Some(serde_json::Value::Object(w)) = top.get("workload") {
        for (k, v) in w {
            push_scalar(
                &mut rows,
                &format!("workload.{k}"),
                &format!("workload.{k}"),
                v,
            );
        }
    }
    if let Some(serde_json::Value::Object(r)) = top.get("reaped") {
        for (k, v) in r {
            push_scalar(&mut rows, &format!("reaped.{k}"), &format!("reaped.{k}"), v);
        }
    }
    if let Some(serde_json::Value::Object(m)) = top.get("memory") {
        for (k, v) in m {
            match (k.as_str(), v) {
                ("mem_info" | "memcg_stat", serde_json::Value::Object(inner)) => {
                    for (ik, iv) in inner {
                        match (ik.as_str(), iv) {
                            ("zones", serde_json::Value::Array(zs)) => {
                                for z in zs {
                                    zone_row(&mut rows, z);
                                }
                            }
                            ("hugepages", serde_json::Value::Array(hs)) => {
                                for h in hs {
                                    let node = h["node"]
                                        .as_u64()
                                        .map_or(String::new(), |n| format!("node {n}, "));
                                    rows.push((
                                        format!("{k}.hugepages"),
                                        format!(
                                            "{node}{} kB pages: {} total, {} free, {} surplus",
                                            h["size_bytes"].as_u64().unwrap_or(0) / KIB,
                                            h["total"], h["free"], h["surplus"]
                                        ),
                                        "a hugetlb pool (vm.nr_hugepages); reserved whether used or not",
                                    ));
                                }
                            }
                            ("unreclaimable_slab", serde_json::Value::Array(cs)) => {
                                for c in cs {
                                    rows.push((
                                        format!("{k}.unreclaimable_slab"),
                                        format!(
                                            "{}: {} MiB used of {} MiB",
                                            esc(c["name"].as_str().unwrap_or("?")),
                                            mib_1(c["used_bytes"].as_u64().unwrap_or(0)),
                                            mib_1(c["total_bytes"].as_u64().unwrap_or(0))
                                        ),
                                        "one of the largest unreclaimable slab caches",
                                    ));
                                }
                            }
                            _ => push_scalar(&mut rows, &format!("{k}.{ik}"), ik, iv),
                        }
                    }
                }
                _ => push_scalar(&mut rows, &format!("memory.{k}"), k, v),
            }
        }
    }
    let mut o = format!(
        "<details><summary>Every parsed parameter ({})</summary><div class=\"scroll\">\
         <table class=\"params\"><thead><tr><th>field</th><th>value</th><th>meaning</th></tr>\
         </thead><tbody>",
        rows.len()
    );
    for (k, v, m) in rows {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{v}</td><td class=\"dim\">{m}</td></tr>",
            esc(&k)
        );
    }
    o.push_str("</tbody></table></div></details>\n");
    o
}

fn zone_row(rows: &mut Vec<(String, String, &'static str)>, z: &serde_json::Value) {
    let node = z["node"]
        .as_u64()
        .map_or(String::new(), |n| format!("Node {n} "));
    let mib = |k: &str| z[k].as_u64().map_or("?".to_owned(), mib_1);
    let largest = z["free_blocks"]
        .as_array()
        .and_then(|bs| {
            bs.iter()
                .filter(|b| b["count"].as_u64().unwrap_or(0) > 0)
                .filter_map(|b| b["block_bytes"].as_u64())
                .max()
        })
        .map_or(String::new(), |b| {
            format!("; largest free block {} kB", b / KIB)
        });
    rows.push((
        "mem_info.zones".to_owned(),
        format!(
            "{node}{}: free {} MiB, watermarks min {} / low {} / high {} MiB, present {} MiB, \
             managed {} MiB{largest}",
            esc(z["name"].as_str().unwrap_or("?")),
            mib("free_bytes"),
            mib("min_bytes"),
            mib("low_bytes"),
            mib("high_bytes"),
            mib("present_bytes"),
            mib("managed_bytes")
        ),
        "a memory zone: below its min watermark only the kernel may allocate; reclaim runs \
         from low to high",
    ));
}

fn push_scalar(
    rows: &mut Vec<(String, String, &'static str)>,
    label: &str,
    key: &str,
    v: &serde_json::Value,
) {
    let text = match v {
        serde_json::Value::Null => return,
        serde_json::Value::String(s) => esc(s),
        serde_json::Value::Number(n) => {
            if key.ends_with("_limit_kb") && n.as_u64().is_some_and(|k| k >= 1 << 50) {
                format!("{n} kB (no limit)")
            } else if key.ends_with("_limit_bytes") && n.as_u64().is_some_and(|b| b >= 1 << 60) {
                format!("{n} (no limit)")
            } else if key.ends_with("_bytes") {
                match n.as_u64() {
                    Some(b) => format!("{b} ({} MiB)", mib_1(b)),
                    None => n.to_string(),
                }
            } else if key.ends_with("_kb") {
                match n.as_u64() {
                    Some(k) => format!("{k} kB ({} MiB)", mib_1(k.saturating_mul(KIB))),
                    None => n.to_string(),
                }
            } else {
                n.to_string()
            }
        }
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return,
    };
    if key == "tasks_dropped" && v.as_u64() == Some(0) {
        return;
    }
    rows.push((label.to_owned(), text, meaning(key)));
}

/// One line on what a field means (docs/event-schema.md says where each comes from).
fn meaning(key: &str) -> &'static str {
    match key {
        "kind" => "what happened: kill, no_killable, panic, or incomplete (kill line missing)",
        "source" => "who reported it: the kernel, or oomguard itself",
        "message" => "the kill message's prefix: says global, memcg or allocating-task OOM",
        "pid" | "comm" => "the process the kernel killed",
        "selected_pid" | "selected_comm" => {
            "the process the OOM killer chose (before 5.1 a child could die instead)"
        }
        "score" => "the badness the kernel printed for the chosen process",
        "total_vm_kb" => "the victim's virtual size (mapped, not necessarily resident)",
        "anon_rss_kb" => "the victim's resident anonymous memory: what killing it frees",
        "file_rss_kb" => "the victim's resident file pages (shared, cheap to drop)",
        "shmem_rss_kb" => "the victim's resident shared memory (not freed if others map it)",
        "pgtables_kb" => "the victim's page tables",
        "uid" => "the victim's user id",
        "oom_score_adj" => "the victim's adjustment (-1000 never killed, 1000 killed first)",
        "constraint" => "what ran out: NONE (machine), MEMCG, CPUSET or MEMORY_POLICY",
        "oom_memcg" => "the cgroup whose limit was hit",
        "task_memcg" => "the victim's cgroup",
        "workload.unit" => "the innermost systemd unit (or slice) of the victim's cgroup",
        "workload.container_runtime" => "the container runtime the cgroup path names",
        "workload.container_id" => "the container's id, from the cgroup path",
        "workload.container_name" => "the container's name (lxc/nspawn: path; Kubernetes: kubelet logs)",
        "workload.pod_uid" => "the Kubernetes pod's uid, from the cgroup path",
        "workload.pod_namespace" | "workload.pod_name" => "the pod's namespace and name (kubelet logs)",
        "workload.qos" => "the pod's QoS class, from where the kubelet put its cgroup",
        "workload.first_process" => {
            "whether the victim was its container's first process (false: the container kept running)"
        }
        "oom_group" => "the whole cgroup was killed (memory.oom.group)",
        "cpuset" | "mems_allowed" | "nodemask" => "the NUMA nodes the allocation could use",
        "trigger_comm" => "the task whose allocation invoked the OOM killer",
        "gfp_mask" => {
            "the allocation's flags (GFP_KERNEL: kernel, GFP_HIGHUSER_MOVABLE: user pages)"
        }
        "order" => "the allocation size: 2^order contiguous pages (0 = one page; -1 = SysRq)",
        "trigger_oom_score_adj" => "the triggering task's adjustment",
        "memcg_usage_kb" | "memcg_limit_kb" | "memcg_failcnt" => {
            "the cgroup's memory use, limit, and how often it hit the limit"
        }
        "memsw_usage_kb" | "memsw_limit_kb" => "cgroup v1 memory+swap use and limit",
        "swap_usage_kb" | "swap_limit_kb" => "cgroup v2 swap use and limit",
        "kmem_usage_kb" | "kmem_limit_kb" => "cgroup v1 kernel memory charged to the cgroup",
        "tasks_dropped" => "task dump rows beyond the per-event cap, counted not kept",
        "host" => "the host that logged the kill",
        "time" => "wall-clock time as printed",
        "kernel_time_s" => "seconds since boot",
        "line" => "the kill line's line number in the input",
        "page_size_bytes" => "the page size used to turn page counts into bytes",
        "page_size_source" => {
            "how the page size was found: mem_info (RAM vs zones), task_dump, or default 4 KiB"
        }
        "active_anon_bytes" => "anonymous pages used recently (anon LRU; includes shmem)",
        "inactive_anon_bytes" => {
            "anonymous pages not used recently: first to swap (includes shmem)"
        }
        "isolated_anon_bytes" | "isolated_file_bytes" => {
            "pages taken off the LRU for reclaim or migration at that instant"
        }
        "active_file_bytes" => "file cache used recently",
        "inactive_file_bytes" => "file cache not used recently: first to be dropped",
        "lru_active_bytes" | "lru_inactive_bytes" => "≤2.6.27: the one LRU of anon and file pages",
        "unevictable_bytes" => "pages that cannot be reclaimed (mlock, ramfs, locked shmem)",
        "dirty_bytes" | "file_dirty_bytes" => "file pages modified but not yet written back",
        "writeback_bytes" | "file_writeback_bytes" => "file pages being written back",
        "unstable_bytes" => "NFS pages sent but not committed by the server",
        "slab_reclaimable_bytes" => "kernel caches that can be shrunk (dentries, inodes)",
        "slab_unreclaimable_bytes" => "kernel objects that cannot be freed on demand",
        "slab_bytes" => "all kernel slab (old kernels do not split it)",
        "mapped_bytes" | "file_mapped_bytes" => "file pages mapped into processes",
        "shmem_bytes" => "shmem/tmpfs/shared memory pages",
        "pagetables_bytes" => "page tables",
        "sec_pagetables_bytes" => "secondary page tables (KVM, IOMMU)",
        "bounce_bytes" => "bounce buffers for devices that cannot reach all memory",
        "kernel_misc_reclaimable_bytes" => "other reclaimable kernel memory",
        "free_bytes" => "free pages",
        "free_pcp_bytes" => "free pages held in per-CPU lists",
        "free_cma_bytes" => "free pages in the CMA area (movable allocations only)",
        "kernel_stack_bytes" => "kernel stacks of all threads",
        "anon_thp_bytes" => "anonymous memory in transparent huge pages",
        "shmem_thp_bytes" => "shmem in transparent huge pages",
        "pagecache_bytes" => "all page cache, including shmem and swap cache",
        "swap_cache_bytes" | "swapcached_bytes" => "pages in both swap and RAM",
        "swap_free_bytes" => "free swap space",
        "swap_total_bytes" => "total swap space (0: no swap)",
        "ram_bytes" => "all RAM the kernel knows of",
        "highmem_bytes" => "32-bit high memory, or movable-only memory",
        "reserved_bytes" => "RAM reserved at boot (kernel, page structures)",
        "cma_reserved_bytes" => "RAM set aside for contiguous allocations (CMA)",
        "hwpoisoned_bytes" => "RAM taken out of use after hardware errors",
        "shared_bytes" | "non_shared_bytes" => "old kernels: pages mapped by several / one process",
        "format" => "which memcg stat format the kernel printed (v1_line ≤4.19, v1, v2)",
        "cgroup" => "the cgroup the stat dump describes",
        "cgroups" => "how many cgroups' lines were summed",
        "anon_bytes" => "anonymous memory charged to the cgroup",
        "file_bytes" => "page cache charged to the cgroup (includes shmem)",
        "kernel_bytes" => "kernel memory charged to the cgroup",
        "percpu_bytes" => "per-CPU kernel memory",
        "sock_bytes" => "network socket buffers",
        "vmalloc_bytes" => "vmalloc memory",
        "swap_bytes" => "swap used by the cgroup (v1)",
        "zswap_bytes" => "compressed swap in RAM",
        "hierarchical_memory_limit_bytes" => "the effective limit, including ancestors",
        "hierarchical_memsw_limit_bytes" => "the effective memory+swap limit, including ancestors",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"\n"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\n"
        );
    }
}
