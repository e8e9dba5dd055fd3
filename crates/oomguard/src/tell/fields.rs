//! The flat view of an event that hooks (`OOMGUARD_*` environment variables), the journal
//! (`OOMGUARD_*` fields) and notifications share, so the three never disagree on a name.
//!
//! Values are passed through literally (a process name may be `$(touch /tmp/x)` or contain a
//! newline: nothing here is ever given to a shell). Only NUL, which neither an environment
//! variable nor a journal field can carry, becomes a space.

use oomguard_core::event::{EventKind, OomEvent, Source};
use oomguard_core::units::{format_mib_delta, format_mib_per_s, format_mib_whole};

/// The diagnostic's output in a journal field or hook variable: the first 4 KiB.
pub const DIAGNOSTICS_FIELD_BYTES: usize = 4096;

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `kill`, `warn`, ... as in the JSON.
pub fn kind_str(k: EventKind) -> &'static str {
    match k {
        EventKind::Kill => "kill",
        EventKind::NoKillable => "no_killable",
        EventKind::Panic => "panic",
        EventKind::Incomplete => "incomplete",
        EventKind::Warning => "warning",
        EventKind::Exit => "exit",
        EventKind::Forecast => "forecast",
    }
}

/// `kernel` or `oomguard`.
pub fn source_str(s: Source) -> &'static str {
    match s {
        Source::Kernel => "kernel",
        Source::Oomguard => "oomguard",
    }
}

/// The victim, whichever part of the event names it: `(pid, name, uid, cgroup)`.
pub fn victim(ev: &OomEvent) -> (Option<i64>, Option<&str>, Option<u64>, Option<&str>) {
    match &ev.victim {
        Some(v) => (
            Some(v.pid),
            Some(v.name.as_str()),
            v.uid,
            v.cgroup.as_deref(),
        ),
        None => (
            ev.pid.or(ev.selected_pid),
            ev.comm.as_deref().or(ev.selected_comm.as_deref()),
            ev.uid,
            ev.task_memcg
                .as_deref()
                .or_else(|| ev.detection.as_ref().and_then(|d| d.cgroup.as_deref())),
        ),
    }
}

/// A forecast's one line: the scope, when it runs out, how fast it fills, who grows most.
fn forecast_title(ev: &OomEvent) -> String {
    let Some(f) = &ev.forecast else {
        return "Memory forecast".to_owned();
    };
    let scope = if f.scope == "machine" {
        "the machine".to_owned()
    } else {
        format!("cgroup {}", printable(&f.scope))
    };
    let mut t = format!(
        "Memory forecast: {scope} runs out of memory in about {:.1} s ({} left, filling at {})",
        f.seconds_to_oom,
        format_mib_whole(f.free_bytes),
        format_mib_per_s(f.fill_bytes_per_s)
    );
    if let Some(g) = f.growers.first() {
        t.push_str(&format!(
            "; top grower {} (pid {}, {}",
            printable(&g.name),
            g.pid,
            format_mib_whole(g.rss_bytes)
        ));
        if let Some(d) = g.growth_bytes {
            t.push_str(&format!(", {}", format_mib_delta(d)));
        }
        t.push(')');
    }
    t
}

/// The victim's resident memory in bytes.
pub fn rss_bytes(ev: &OomEvent) -> Option<u64> {
    ev.victim
        .as_ref()
        .and_then(|v| v.rss_bytes)
        .or_else(|| ev.rss_kb().map(|k| k * 1024))
}

/// Longest value passed on (bytes). The kernel refuses an exec whose single environment
/// string exceeds `MAX_ARG_STRLEN` (128 KiB) with E2BIG, and a 1 MiB command line is possible:
/// found by the large-stdin hook test. The full value is in the JSON on stdin.
pub const MAX_FIELD_BYTES: usize = 4096;

fn clean(s: &str) -> String {
    let mut end = s.len().min(MAX_FIELD_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].replace('\0', " ")
}

/// `(NAME, value)` pairs, names without the `OOMGUARD_` prefix. Only what the event shows.
pub fn pairs(ev: &OomEvent) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::with_capacity(24);
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k, clean(&v)));
        }
    };
    put("EVENT_ID", ev.id.clone());
    put("KIND", Some(kind_str(ev.kind).to_owned()));
    put("SOURCE", Some(source_str(ev.source).to_owned()));
    put("TIME", ev.time.clone());
    put("UNIX_TIME", ev.unix_time_s.map(|t| format!("{t:.3}")));
    put("HOST", ev.host.clone());
    let (pid, name, uid, cgroup) = victim(ev);
    put("PID", pid.map(|p| p.to_string()));
    put("COMM", name.map(str::to_owned));
    put("UID", uid.map(|u| u.to_string()));
    put("CGROUP", cgroup.map(str::to_owned));
    put("RSS_BYTES", rss_bytes(ev).map(|b| b.to_string()));
    if let Some(v) = &ev.victim {
        put("USER", v.user.clone());
        put("CMDLINE", v.cmdline.clone());
        put("OOM_SCORE", v.oom_score.map(|s| s.to_string()));
        put("OOM_SCORE_ADJ", v.oom_score_adj.map(|s| s.to_string()));
    } else {
        put("OOM_SCORE_ADJ", ev.oom_score_adj.map(|s| s.to_string()));
    }
    put("CONSTRAINT", ev.constraint.clone());
    put("OOM_MEMCG", ev.oom_memcg.clone());
    if let Some(t) = &ev.trigger {
        put("TRIGGER", Some(t.reason.label().to_owned()));
        put("TRIGGER_DETAIL", t.detail.clone());
        put(
            "MEM_AVAILABLE_BYTES",
            t.mem_available_bytes.map(|b| b.to_string()),
        );
        put("MEM_TOTAL_BYTES", t.mem_total_bytes.map(|b| b.to_string()));
        put("SWAP_FREE_BYTES", t.swap_free_bytes.map(|b| b.to_string()));
        put(
            "PSI_SOME_AVG10",
            t.psi_some_avg10_pct.map(|b| b.to_string()),
        );
        put(
            "PSI_FULL_AVG10",
            t.psi_full_avg10_pct.map(|b| b.to_string()),
        );
    } else if ev.source == Source::Kernel {
        put("TRIGGER", Some("kernel".to_owned()));
    }
    if let Some(a) = &ev.action {
        put("SIGNAL", a.signal.map(|s| s.as_str().to_owned()));
        put("OUTCOME", a.outcome.map(|o| o.as_str().to_owned()));
        put("EXITED_AFTER_MS", a.exited_after_ms.map(|b| b.to_string()));
        put("FREED_BYTES", a.freed_bytes.map(|b| b.to_string()));
        put(
            "DRY_RUN",
            Some(if a.dry_run { "1" } else { "0" }.to_owned()),
        );
    }
    // A step of a rule's chain of actions (`[thrash] actions`): which, where in the chain, and
    // what became of it, so a journal query or a hook can follow an escalation without reading
    // the message (`OOMGUARD_STEP=throttle OOMGUARD_STEP_OUTCOME=ended`).
    if let Some(s) = &ev.step {
        put("STEP", Some(s.action.to_owned()));
        put("STEP_INDEX", Some(s.index.to_string()));
        put("STEP_OF", Some(s.of.to_string()));
        put("STEP_OUTCOME", Some(s.outcome.to_owned()));
        put("STEP_DETAIL", s.detail.clone());
    }
    if let Some(f) = &ev.forecast {
        put("SCOPE", Some(f.scope.clone()));
        put("SECONDS_TO_OOM", Some(format!("{:.3}", f.seconds_to_oom)));
        put(
            "FILL_BYTES_PER_S",
            Some(format!("{:.0}", f.fill_bytes_per_s)),
        );
        put("FREE_BYTES", Some(f.free_bytes.to_string()));
        put(
            "GROWERS",
            Some(
                f.growers
                    .iter()
                    .map(|g| format!("{}:{}", g.pid, g.name))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        );
    }
    if let Some(d) = &ev.diagnostics {
        put("DIAGNOSTICS", Some(d.summary()));
        put(
            "DIAGNOSTICS_STATUS",
            Some(
                match d.status {
                    oomguard_core::diagnose::Status::Exited => "exited",
                    oomguard_core::diagnose::Status::Signaled => "signaled",
                    oomguard_core::diagnose::Status::TimedOut => "timed_out",
                    oomguard_core::diagnose::Status::Failed => "failed",
                    oomguard_core::diagnose::Status::Skipped => "skipped",
                }
                .to_owned(),
            ),
        );
        put(
            "DIAGNOSTICS_OUTPUT",
            Some(cut_at_char(&d.output, DIAGNOSTICS_FIELD_BYTES).to_owned()),
        );
    }
    if let Some(r) = &ev.recorder {
        // The flight recorder: its one line, and the series people plot (space-separated,
        // oldest first; the JSON on a hook's stdin has them all).
        let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
        put("RECORDER", r.summary());
        put(
            "RECORDER_T_S",
            Some(join(&mut r.t_s.iter().map(|t| format!("{t}")))),
        );
        put(
            "RECORDER_MEM_AVAILABLE_BYTES",
            Some(join(&mut r.mem_available_bytes.iter().map(u64::to_string))),
        );
        put(
            "RECORDER_FIRST_TRIGGER_S",
            r.first_trigger_s.map(|t| format!("{t:.3}")),
        );
    }
    if let Some(d) = &ev.detection {
        put("DETECTED_VIA", Some(d.via.clone()));
        put("COUNT", d.count.map(|c| c.to_string()));
    }
    if let Some(w) = &ev.workload {
        put("UNIT", w.unit.clone());
        put(
            "CONTAINER_RUNTIME",
            w.container_runtime.map(|r| r.as_str().to_owned()),
        );
        put("CONTAINER_ID", w.container_id.clone());
        put("CONTAINER_NAME", w.container_name.clone());
        put("POD_UID", w.pod_uid.clone());
        put("POD_NAMESPACE", w.pod_namespace.clone());
        put("POD_NAME", w.pod_name.clone());
        put("POD_QOS", w.qos.map(|q| q.as_str().to_owned()));
        put(
            "FIRST_PROCESS",
            w.first_process
                .map(|f| if f { "1" } else { "0" }.to_owned()),
        );
    }
    if let Some(r) = &ev.run {
        put("RUN_NAME", Some(r.name.clone()));
        put("RUN_CGROUP", Some(r.cgroup.clone()));
        put("RUN_START", Some(r.start.to_string()));
        put("RUN_MAIN_PID", Some(r.main_pid.to_string()));
        put("RUN_CAUSE", Some(r.cause.clone()));
        put("RUN_EXIT_CODE", r.exit_code.map(|c| c.to_string()));
        put("RUN_SIGNAL", r.signal.clone());
        put("RUN_STATUS", r.status.map(|s| s.to_string()));
        put("RUN_RAN_MS", Some(r.ran_ms.to_string()));
        put("RUN_LIMIT_BYTES", r.limit_bytes.map(|b| b.to_string()));
        put("RUN_RESTART_IN_MS", r.restart_in_ms.map(|m| m.to_string()));
        put("RUN_WHY", Some(r.why.clone()));
    }
    out
}

/// Printable form of an attacker-controlled string for one-line human text (notifications,
/// journal MESSAGE): control characters become `?`. Structured fields keep the raw value.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A title and a one-paragraph body for people (journal MESSAGE, notifications).
pub fn summary(ev: &OomEvent) -> (String, String) {
    let (pid, name, _, cgroup) = victim(ev);
    let who = match (name, pid) {
        (Some(n), Some(p)) => format!("{} (pid {p})", printable(n)),
        (Some(n), None) => printable(n),
        (None, Some(p)) => format!("pid {p}"),
        (None, None) => "an unknown process".to_owned(),
    };
    let rss = rss_bytes(ev)
        .map(|b| format!(", {} resident", format_mib_whole(b)))
        .unwrap_or_default();
    let place = cgroup
        .map(|c| format!(" in cgroup {}", printable(c)))
        .unwrap_or_default();
    let title = match (ev.source, ev.kind) {
        (Source::Kernel, EventKind::Kill) => format!("Kernel OOM killer killed {who}"),
        (Source::Kernel, _) => format!("Kernel out of memory ({})", kind_str(ev.kind)),
        // The thrash rule's notify step: the scope re-reads its memory from disk, whatever
        // MemAvailable says; nobody is chosen yet.
        (Source::Oomguard, EventKind::Warning)
            if ev.trigger.as_ref().is_some_and(|t| t.reason.is_thrash()) =>
        {
            "Thrashing".to_owned()
        }
        (Source::Oomguard, EventKind::Warning) => format!("Low memory: {who} may be killed next"),
        (Source::Oomguard, EventKind::Exit) => format!("{who} died"),
        (Source::Oomguard, EventKind::Forecast) => forecast_title(ev),
        (Source::Oomguard, _) => format!("oomguard killed {who}"),
    };
    let mut body = format!("{title}{rss}{place}.");
    if let Some(w) = &ev.workload {
        if let Some(d) = w.describe() {
            body.push_str(&format!(" Workload: {}.", printable(&d)));
        }
        if w.first_process == Some(false) {
            body.push_str(&format!(
                " The victim was {}.",
                oomguard_core::workload::KEPT_RUNNING
            ));
        }
    }
    if let Some(d) = &ev.diagnostics {
        // The diagnostic before the kill: how it ended, and its output cut to
        // DIAGNOSTICS_FIELD_BYTES (the JSON on a hook's stdin and the event log have it all).
        body.push_str(&format!(" {}.", printable(&d.summary())));
    }
    if let Some(r) = &ev.run {
        // `oomguard run`'s own sentence: how it died, and what happens next.
        body.push_str(&format!(
            " oomguard run {}: {}.",
            printable(&r.name),
            printable(&r.why)
        ));
    }
    if let Some(t) = &ev.trigger {
        if let Some(d) = &t.detail {
            body.push_str(&format!(" Reason: {}.", printable(d)));
        }
    }
    if let Some(d) = &ev.detection {
        if d.via == "counter" {
            body.push_str(" Seen only in the oom_kill counters: the kernel's report was lost.");
        }
    }
    if let Some(line) = ev.recorder.as_ref().and_then(|r| r.summary()) {
        body.push_str(&format!(" Recorder: {}.", printable(&line)));
    }
    if let Some(id) = &ev.id {
        body.push_str(&format!(" Event {id}."));
    }
    (title, body)
}
