//! `replay`'s human output: per report the kernel's choice against oomguard's, the reason in one
//! line, the top candidates with their badness, and the triggers' lead; a summary with the
//! agreement rate; and the same as one HTML page in `explain --html`'s style.
//!
//! Names, cgroup paths and reasons (which quote names) come from logs: control characters are
//! escaped ([`safe`]) in text and HTML-escaped ([`esc`]) in the page.

use std::fmt::Write as _;

use oomguard_core::badness::{self, Verdict};
use oomguard_core::replay::{Leads, Outcome};

use super::{Replayed, Tally};
use crate::explain::html::{esc, CSS};
use crate::explain::render::safe;
use crate::term::Style;

/// Candidates shown per report in text.
const TOP_TEXT: usize = 5;
/// Candidates shown per report in HTML.
const TOP_HTML: usize = 12;

fn pid_name(pid: Option<i64>, comm: Option<&str>) -> String {
    match (pid, comm) {
        (Some(p), Some(c)) => format!("{} (pid {p})", safe(c)),
        (Some(p), None) => format!("pid {p}"),
        _ => "none".to_owned(),
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Agrees => "agrees",
        Outcome::Tie => "differs: tie",
        Outcome::Rounding => "differs: rounding/totalpages",
        Outcome::RowsMissing => "differs: rows missing",
        Outcome::Policy => "differs: the config's rules",
        Outcome::Unkillable => "differs: never chosen by oomguard",
        Outcome::NotReplayable => "not replayable",
        Outcome::Unexplained => "differs: UNEXPLAINED",
    }
}

/// Indices of the candidates most likely chosen first, by the kernel's badness.
fn top(r: &Replayed, n: usize) -> Vec<usize> {
    let c = &r.replay.candidates;
    let mut idx: Vec<usize> = (0..c.len()).collect();
    idx.sort_by(|a, b| badness::victim_order((c[*a].verdict, *a), (c[*b].verdict, *b)));
    idx.truncate(n);
    idx
}

fn verdict_text(v: Verdict) -> String {
    match v {
        Verdict::Points(p) => p.to_string(),
        Verdict::Unkillable(u) => format!("never ({})", u.reason()),
    }
}

fn leads_text(l: &Leads) -> String {
    let mut o = String::new();
    match &l.first_fire {
        Some(f) => {
            let _ = write!(
                o,
                "  triggers: with this config `{}` ({}) fires at a reading {:.1} s before the kernel's kill",
                f.trigger, f.level, f.lead_s
            );
        }
        None if l.readings > 0 => {
            let _ = write!(
                o,
                "  triggers: none of the {} readings before the kill fires this config's triggers",
                l.readings
            );
        }
        None => o.push_str("  triggers: no reading before the kill"),
    }
    if let Some(g) = &l.first_logged {
        let _ = write!(
            o,
            "; the daemon logged `{}` {:.1} s before",
            safe(&g.trigger),
            g.lead_s
        );
    }
    let _ = writeln!(o, "\n  ({})", l.note);
    o
}

/// One report as text.
pub fn text(r: &Replayed, n: usize, st: &Style) -> String {
    let p = &r.replay;
    let mut o = String::new();
    let at = match r.line {
        Some(l) => format!("{} line {l}", safe(&r.input)),
        None => safe(&r.input),
    };
    let era = match (&p.era.version, p.era.era) {
        (Some(v), _) => format!("kernel {v}"),
        (None, Some(e)) => format!("{e:?}"),
        (None, None) => "pre-2.6.36".to_owned(),
    };
    let _ = writeln!(
        o,
        "{} {n}: {at}, {era}, {}",
        st.bold("Report"),
        safe(&p.scope)
    );
    if p.outcome == Outcome::NotReplayable {
        let _ = writeln!(o, "  not replayable: {}", safe(&p.reason));
        o.push('\n');
        return o;
    }
    let verdict = if p.agrees {
        st.green(outcome_word(p.outcome))
    } else {
        st.red(outcome_word(p.outcome))
    };
    let _ = writeln!(
        o,
        "  kernel chose   {}",
        pid_name(p.kernel_victim_pid, p.kernel_victim_comm.as_deref())
    );
    if p.kernel_killed_pid != p.kernel_victim_pid {
        let _ = writeln!(
            o,
            "  (and killed   pid {}, a child sacrificed for it)",
            p.kernel_killed_pid.unwrap_or(0)
        );
    }
    let _ = writeln!(
        o,
        "  oomguard picks {}   {verdict}",
        pid_name(p.replay_victim_pid, p.replay_victim_comm.as_deref())
    );
    let _ = writeln!(o, "  why: {}", safe(&p.reason));
    if let Some(c) = &p.score_check {
        let _ = writeln!(o, "  score check: {c}");
    }
    let _ = writeln!(
        o,
        "  era: {}; totalpages: {}; kill unit: {}",
        safe(&p.era.basis),
        safe(&p.total_pages.basis),
        p.kill_unit
    );
    let _ = writeln!(
        o,
        "  {:>8} {:>6} {:>6} {:>10} {:>12}  name",
        "pid", "uid", "adj", "mem pages", "badness"
    );
    for i in top(r, TOP_TEXT) {
        let c = &p.candidates[i];
        let mut mark = String::new();
        if Some(c.pid) == p.kernel_victim_pid {
            mark.push_str(" <- kernel");
        }
        if Some(c.pid) == p.replay_victim_pid {
            mark.push_str(" <- oomguard");
        }
        let _ = writeln!(
            o,
            "  {:>8} {:>6} {:>6} {:>10} {:>12}  {}{mark}",
            c.pid,
            c.uid.map_or("?".to_owned(), |u| u.to_string()),
            c.oom_score_adj.map_or("?".to_owned(), |a| a.to_string()),
            c.mem_pages.map_or("?".to_owned(), |m| m.to_string()),
            verdict_text(c.verdict),
            safe(&c.name)
        );
    }
    if p.candidates.len() > TOP_TEXT {
        let _ = writeln!(o, "  ... {} candidates in all", p.candidates.len());
    }
    if let Some(l) = &r.triggers {
        o.push_str(&leads_text(l));
    }
    o.push('\n');
    o
}

/// The agreement rate and the count per outcome.
pub fn summary(t: &Tally, st: &Style) -> String {
    let mut o = String::new();
    if t.replayed == 0 {
        let _ = writeln!(
            o,
            "No report could be replayed ({} without a usable task dump or selection).",
            t.not_replayable
        );
        return o;
    }
    let pct = t.agree as f64 * 100.0 / t.replayed as f64;
    let _ = writeln!(
        o,
        "{} {} of {} replayed reports agree with the kernel's choice ({pct:.1} %); {} not replayable.",
        st.bold("Agreement:"),
        t.agree,
        t.replayed,
        t.not_replayable
    );
    for (k, n) in &t.by_outcome {
        if k != "agrees" {
            let _ = writeln!(o, "  {n} differ: {k}");
        }
    }
    o
}

/// The whole HTML page.
pub fn html(all: &[Replayed], t: &Tally) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let title = format!(
        "oomguard replay: {} of {} reports agree",
        t.agree, t.replayed
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
        "<header><h1>{}</h1><p class=\"sub\">Each kernel OOM report's task dump replayed by \
         <b>oomguard replay</b> through oomguard's badness (the report's kernel era) and the \
         config's rules. {} not replayable.</p></header>",
        esc(&title),
        t.not_replayable
    );
    o.push_str("<section class=\"card\"><h2>All reports</h2><div class=\"scroll\"><table><thead><tr><th>#</th><th>report</th><th>kernel chose</th><th>oomguard picks</th><th>outcome</th><th>why</th></tr></thead><tbody>\n");
    for (n, r) in all.iter().enumerate() {
        let p = &r.replay;
        let _ = writeln!(
            o,
            "<tr><td class=\"r\"><a href=\"#r{n1}\">{n1}</a></td><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.input),
            r.line.map(|l| format!(" line {l}")).unwrap_or_default(),
            esc(&pid_name(p.kernel_victim_pid, p.kernel_victim_comm.as_deref())),
            esc(&pid_name(p.replay_victim_pid, p.replay_victim_comm.as_deref())),
            esc(outcome_word(p.outcome)),
            esc(&p.reason),
            n1 = n + 1
        );
    }
    o.push_str("</tbody></table></div></section>\n");
    for (n, r) in all.iter().enumerate() {
        let p = &r.replay;
        if p.outcome == Outcome::NotReplayable {
            continue;
        }
        let _ =
            writeln!(
            o,
            "<section class=\"card\" id=\"r{}\"><h2>Report {}: <span class=\"num\">{}</span></h2>\
             <dl class=\"facts\"><dt>from</dt><dd><code>{}</code>{}</dd>\
             <dt>scope</dt><dd>{}</dd><dt>era</dt><dd>{}</dd><dt>totalpages</dt><dd>{}</dd>\
             <dt>kernel chose</dt><dd>{}</dd><dt>oomguard picks</dt><dd>{}</dd>\
             <dt>why</dt><dd>{}</dd><dt>kill unit</dt><dd>{}</dd></dl>",
            n + 1,
            n + 1,
            esc(outcome_word(p.outcome)),
            esc(&r.input),
            r.line.map(|l| format!(" line {l}")).unwrap_or_default(),
            esc(&p.scope),
            esc(&p.era.basis),
            esc(&p.total_pages.basis),
            esc(&pid_name(p.kernel_victim_pid, p.kernel_victim_comm.as_deref())),
            esc(&pid_name(p.replay_victim_pid, p.replay_victim_comm.as_deref())),
            esc(&p.reason),
            esc(&p.kill_unit)
        );
        o.push_str("<h3>Candidates, most likely victim first</h3><div class=\"scroll\"><table class=\"tasks\"><thead><tr><th class=\"r\">pid</th><th class=\"r\">uid</th><th class=\"r\">adj</th><th class=\"r\">mem pages</th><th class=\"r\">badness</th><th>oomguard</th><th>name</th></tr></thead><tbody>\n");
        for i in top(r, TOP_HTML) {
            let c = &p.candidates[i];
            let victim = Some(c.pid) == p.kernel_victim_pid;
            let _ = writeln!(
                o,
                "<tr{}><td class=\"r\">{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td><td>{}</td><td class=\"name\">{}{}</td></tr>",
                if victim { " class=\"victim\"" } else { "" },
                c.pid,
                c.uid.map_or("?".to_owned(), |u| u.to_string()),
                c.oom_score_adj.map_or("?".to_owned(), |a| a.to_string()),
                c.mem_pages.map_or("?".to_owned(), |m| m.to_string()),
                esc(&verdict_text(c.verdict)),
                esc(&c.judgement),
                esc(&c.name),
                match (victim, Some(c.pid) == p.replay_victim_pid) {
                    (true, true) => " <b>kernel, oomguard</b>",
                    (true, false) => " <b>kernel</b>",
                    (false, true) => " <b>oomguard</b>",
                    _ => "",
                }
            );
        }
        o.push_str("</tbody></table></div>\n");
        if let Some(l) = &r.triggers {
            let _ = writeln!(o, "<p class=\"note\">{}</p>", esc(leads_text(l).trim()));
        }
        o.push_str("</section>\n");
    }
    o.push_str("</main>\n</body>\n</html>\n");
    o
}
