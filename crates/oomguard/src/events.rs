//! `oomguard events`: the event log read back for people (`--json`: as stored). Rotated files
//! are read oldest first; `--since` keeps events from that time on; `--follow` waits for new
//! ones (across rotations) like `tail -F`. A line that is not a JSON event is skipped with a
//! warning naming the file and line, never fatal: the log must stay readable after a crash
//! cut its last line, or after someone edited it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use oomguard_core::units::{format_mib_per_s, format_mib_whole};
use serde_json::Value;

use crate::cli::EventsArgs;

use crate::tell::eventlog::log_files;

/// How often `--follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

struct Filter {
    since: Option<f64>,
}

fn event_time(v: &Value) -> Option<f64> {
    v.get("unix_time_s").and_then(Value::as_f64).or_else(|| {
        v.get("time")
            .and_then(Value::as_str)
            .and_then(oomguard_core::since::parse_datetime)
    })
}

impl Filter {
    fn keep(&self, v: &Value) -> bool {
        match self.since {
            None => true,
            Some(s) => event_time(v).is_some_and(|t| t >= s),
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn n(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn printable(t: &str) -> String {
    crate::tell::fields::printable(t)
}

/// One event as one line of text.
pub fn render_line(v: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    let time = event_time(v)
        .map(|t| {
            let us = (t * 1e6) as u64;
            let full = oomguard_core::time::format_utc_usec(us);
            // 2026-11-29T14:31:02.123456+00:00 → 2026-11-29 14:31:02
            full.get(..19).unwrap_or(&full).replace('T', " ")
        })
        .or_else(|| s(v, "time").map(printable))
        .unwrap_or_else(|| "-".to_owned());
    parts.push(time);
    parts.push(s(v, "source").unwrap_or("?").to_owned());
    parts.push(s(v, "kind").unwrap_or("?").to_owned());
    let victim = v.get("victim").filter(|x| x.is_object());
    let (pid, name) = match victim {
        Some(vi) => (n(vi, "pid"), s(vi, "name")),
        None => (n(v, "pid"), s(v, "comm")),
    };
    match (name, pid) {
        (Some(nm), Some(p)) => parts.push(format!("{} (pid {p})", printable(nm))),
        (None, Some(p)) => parts.push(format!("pid {p}")),
        (Some(nm), None) => parts.push(printable(nm)),
        (None, None) => {}
    }
    let cgroup = victim
        .and_then(|vi| s(vi, "cgroup"))
        .or_else(|| s(v, "task_memcg"))
        .or_else(|| v.get("detection").and_then(|d| s(d, "cgroup")));
    if let Some(c) = cgroup {
        parts.push(format!("cgroup {}", printable(c)));
    }
    // The workload as stored (names included, as the daemon found them then): deserialized
    // back into the core type so the phrase is the one `explain` prints.
    if let Some(w) = v
        .get("workload")
        .and_then(|w| serde_json::from_value::<oomguard_core::workload::Workload>(w.clone()).ok())
    {
        if let Some(d) = w.describe() {
            parts.push(printable(&d));
        }
        if w.first_process == Some(false) {
            parts.push(format!("({})", oomguard_core::workload::KEPT_RUNNING));
        }
    }
    let rss = victim
        .and_then(|vi| vi.get("rss_bytes").and_then(Value::as_u64))
        .or_else(|| {
            v.get("anon_rss_kb").and_then(Value::as_u64).map(|a| {
                (a + v.get("file_rss_kb").and_then(Value::as_u64).unwrap_or(0)
                    + v.get("shmem_rss_kb").and_then(Value::as_u64).unwrap_or(0))
                    * 1024
            })
        });
    if let Some(r) = rss {
        parts.push(format!("rss {}", format_mib_whole(r)));
    }
    if let Some(c) = s(v, "constraint") {
        parts.push(c.trim_start_matches("CONSTRAINT_").to_lowercase());
    }
    if let Some(t) = v.get("trigger").and_then(|t| s(t, "reason")) {
        parts.push(format!("trigger {t}"));
    }
    if let Some(a) = v.get("action").filter(|a| a.is_object()) {
        if let Some(sig) = s(a, "signal") {
            parts.push(sig.to_owned());
        }
        if let Some(o) = s(a, "outcome") {
            let after = a
                .get("exited_after_ms")
                .and_then(Value::as_u64)
                .map(|m| format!(" after {m} ms"))
                .unwrap_or_default();
            parts.push(format!("{o}{after}"));
        }
    }
    if let Some(f) = v.get("forecast").filter(|f| f.is_object()) {
        let secs = f
            .get("seconds_to_oom")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let rate = f
            .get("fill_bytes_per_s")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        parts.push(format!(
            "{} out of memory in ~{secs:.1} s at {}",
            s(f, "scope").map_or("?".to_owned(), printable),
            format_mib_per_s(rate)
        ));
        let growers: Vec<String> = f
            .get("growers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|g| {
                format!(
                    "{} (pid {}, {})",
                    s(g, "name").map_or("?".to_owned(), printable),
                    n(g, "pid").unwrap_or(0),
                    format_mib_whole(g.get("rss_bytes").and_then(Value::as_u64).unwrap_or(0))
                )
            })
            .collect();
        if !growers.is_empty() {
            parts.push(format!("growers {}", growers.join(", ")));
        }
    }
    if let Some(d) = v.get("detection") {
        if s(d, "via") == Some("counter") {
            parts.push(format!(
                "seen in counters only (x{})",
                d.get("count").and_then(Value::as_u64).unwrap_or(1)
            ));
        }
    }
    if let Some(r) = v.get("run").filter(|r| r.is_object()) {
        parts.push(format!(
            "run {}: {}",
            printable(s(r, "name").unwrap_or("?")),
            printable(s(r, "why").unwrap_or(""))
        ));
    }
    if let Some(id) = s(v, "id") {
        parts.push(format!("[{}]", printable(id)));
    }
    let mut line = parts.join("  ");
    // The flight recorder's minute, read back into the core type: one short line below.
    if let Some(r) = v
        .get("recorder")
        .and_then(|r| serde_json::from_value::<oomguard_core::recorder::Recording>(r.clone()).ok())
    {
        if let Some(sum) = r.summary() {
            line.push_str(&format!("\n    {}", printable(&sum)));
        }
    }
    // The diagnostic run before the kill: how it ended, then its first lines of output.
    if let Some(d) = v.get("diagnostics").filter(|d| d.is_object()) {
        let prog = d
            .get("argv")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let prog = prog.rsplit('/').next().unwrap_or(prog);
        let status = s(d, "status").unwrap_or("?");
        let how = match (status, d.get("exit_code").and_then(Value::as_i64)) {
            ("exited", Some(c)) => format!("exited {c}"),
            ("signaled", _) => format!(
                "killed by signal {}",
                d.get("signal").and_then(Value::as_i64).unwrap_or(0)
            ),
            (other, _) => other.replace('_', " "),
        };
        let ms = d.get("runtime_ms").and_then(Value::as_f64).unwrap_or(0.0);
        line.push_str(&format!(
            "\n    diagnostics: {} {how} in {ms:.0} ms",
            printable(prog)
        ));
        if let Some(n) = s(d, "note") {
            line.push_str(&format!(" ({})", printable(n)));
        }
        let out = s(d, "output").unwrap_or("");
        const SHOWN_LINES: usize = 5;
        for l in out.lines().take(SHOWN_LINES) {
            line.push_str(&format!("\n      | {}", printable(l)));
        }
        let more = out.lines().count().saturating_sub(SHOWN_LINES);
        if more > 0 {
            line.push_str(&format!(
                "\n      | ... {more} more lines (--json has them all)"
            ));
        }
    }
    line
}

/// Handles one line; false when stdout is gone (stop quietly).
fn emit(
    line: &[u8],
    file: &Path,
    line_no: u64,
    args: &EventsArgs,
    filter: &Filter,
    out: &mut impl Write,
) -> bool {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return true;
    }
    let v: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            eprintln!(
                "oomguard: warning: {} line {line_no}: not a JSON object; skipped",
                file.display()
            );
            return true;
        }
        Err(e) => {
            eprintln!(
                "oomguard: warning: {} line {line_no}: not a JSON event ({e}); skipped",
                file.display()
            );
            return true;
        }
    };
    if !filter.keep(&v) {
        return true;
    }
    let r = if args.json {
        writeln!(out, "{text}")
    } else {
        writeln!(out, "{}", render_line(&v))
    };
    r.and_then(|_| out.flush()).is_ok()
}

/// Reads one whole file; returns the byte offset read up to (a final partial line is left
/// for `--follow`) and the next line number, or `None` when stdout is gone.
fn read_file(
    path: &Path,
    args: &EventsArgs,
    filter: &Filter,
    out: &mut impl Write,
    stop_at_partial: bool,
) -> anyhow::Result<Option<(u64, u64)>> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut r = BufReader::new(f);
    let mut buf = Vec::new();
    let mut pos = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let got = r
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("read {}", path.display()))?;
        if got == 0 {
            break;
        }
        if stop_at_partial && buf.last() != Some(&b'\n') {
            break;
        }
        pos += got as u64;
        line_no += 1;
        if !emit(&buf, path, line_no, args, filter, out) {
            return Ok(None);
        }
    }
    Ok(Some((pos, line_no + 1)))
}

/// `--file`, else the config's `events.log` (when the config file exists), else the default.
fn log_path(args: &EventsArgs) -> anyhow::Result<PathBuf> {
    if let Some(f) = &args.file {
        return Ok(f.clone());
    }
    match std::fs::read_to_string(&args.config) {
        Ok(text) => {
            let cfg = oomguard_core::config::parse(&text, &args.config.display().to_string())?;
            if cfg.events.log.is_empty() {
                anyhow::bail!(
                    "{}: events.log is empty (the event log is off)",
                    args.config.display()
                );
            }
            Ok(PathBuf::from(cfg.events.log))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PathBuf::from(
            oomguard_core::config::EventsConfig::default().log,
        )),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", args.config.display())),
    }
}

/// `oomguard events`. Exit status: 0, or 2 when the log cannot be read.
pub fn run(args: &EventsArgs) -> anyhow::Result<i32> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let since = args
        .since
        .as_deref()
        .map(|t| oomguard_core::since::parse_since(t, now))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since {e}"))?;
    let filter = Filter { since };
    let path = log_path(args)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let files = log_files(&path);
    let (rotated, current) = files.split_at(files.len() - 1);
    for f in rotated {
        if read_file(f, args, &filter, &mut out, false)?.is_none() {
            return Ok(0);
        }
    }
    if !args.follow {
        if !path.exists() {
            anyhow::bail!("no event log at {}", path.display());
        }
        return Ok(read_file(&current[0], args, &filter, &mut out, false)?.map_or(0, |_| 0));
    }
    follow(&path, args, &filter, &mut out)
}

fn follow(
    path: &Path,
    args: &EventsArgs,
    filter: &Filter,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let mut state: Option<(u64, u64, u64)> = None; // (inode, offset, next line number)
    if path.exists() {
        match read_file(path, args, filter, out, true)? {
            Some((pos, next)) => {
                let ino = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
                state = Some((ino, pos, next));
            }
            None => return Ok(0),
        }
    }
    let mut pending = Vec::new();
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let (ino, mut pos, mut line_no) = match state {
            Some((ino, pos, l)) if ino == meta.ino() && meta.len() >= pos => (ino, pos, l),
            // New file (rotated or created): from its start.
            _ => {
                pending.clear();
                (meta.ino(), 0, 1)
            }
        };
        if meta.len() > pos {
            let mut f = File::open(path).with_context(|| format!("open {}", path.display()))?;
            f.seek(SeekFrom::Start(pos))?;
            let mut chunk = Vec::new();
            f.take(meta.len() - pos).read_to_end(&mut chunk)?;
            pos += chunk.len() as u64;
            pending.extend_from_slice(&chunk);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                if !emit(&line, path, line_no, args, filter, out) {
                    return Ok(0);
                }
                line_no += 1;
            }
        }
        state = Some((ino, pos, line_no));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forecast_line_names_scope_time_rate_and_growers() {
        let v: Value = serde_json::from_str(
            r#"{"kind":"forecast","source":"oomguard","unix_time_s":1796312581.2,
                "forecast":{"scope":"/app","seconds_to_oom":42.25,"lead_s":60.0,
                "fill_bytes_per_s":67108864.0,"free_bytes":1,"limit_bytes":2,
                "growers":[{"pid":7,"name":"leak\u001b[1m","rss_bytes":209715200,"growth_bytes":null}]}}"#,
        )
        .unwrap();
        let line = render_line(&v);
        assert!(line.contains("oomguard  forecast"), "{line}");
        assert!(
            line.contains("/app out of memory in ~42.2 s at 64 MiB/s"),
            "{line}"
        );
        assert!(line.contains("growers leak"), "{line}");
        assert!(line.contains("(pid 7, 200 MiB)"), "{line}");
        // The escape sequence in the name is not passed to the terminal.
        assert!(!line.contains('\u{1b}'), "{line}");
    }
}
