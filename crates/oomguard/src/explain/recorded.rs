//! What led up to a kernel kill, from oomguard's own event log: when the daemon saw a kernel OOM
//! kill live, its event (`source: kernel`) carries the flight recorder's minute before it
//! (`oomguard_core::recorder`). `explain` joins each report it reads to that event (same pid and
//! victim name, and the same kernel timestamp or wall-clock times within [`JOIN_WINDOW_S`]) and
//! shows the minute: a compact line in text, an inline SVG sparkline of MemAvailable and each
//! guarded cgroup's usage in HTML, the top growers and when the first trigger fired; `--json`
//! carries it as the event's `recorder` (and the daemon's `id`).
//!
//! The log is never required: absent at the default path, nothing is said; unreadable (or
//! absent where `--events` pointed), one line on stderr, and `explain` goes on without it.

use std::fmt::Write as _;
use std::path::Path;

use oomguard_core::event::OomEvent;
use oomguard_core::recorder::Recording;
use oomguard_core::size::format_bytes;
use serde_json::Value;

use super::html::esc;

/// How far apart the report's wall-clock time and the daemon's may be for one kill: the daemon
/// stamps its event when it read the report from /dev/kmsg, within a second or two of the kill.
pub const JOIN_WINDOW_S: f64 = 5.0;
/// How far apart two readings of the same report's kernel timestamp may be (printed to µs or ms).
const KERNEL_TIME_EPS_S: f64 = 0.01;

/// One kernel kill the daemon recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub pid: i64,
    pub name: String,
    pub unix_time_s: Option<f64>,
    pub kernel_time_s: Option<f64>,
    pub id: Option<String>,
    pub recording: Recording,
}

/// The daemon's recorded kernel kills, from one event log.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    pub kills: Vec<Recorded>,
}

/// Reads `path` (JSON lines, as the daemon writes them). Returns the log, or `None` with the
/// note to print (`None` and no note: absent at the default path).
pub fn load(path: &Path, explicit: bool) -> (Option<EventLog>, Option<String>) {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return (None, None),
        Err(e) => {
            return (
                None,
                Some(format!(
                    "cannot read oomguard's event log {}: {e}; explaining without what led up to each kill",
                    path.display()
                )),
            )
        }
    };
    (Some(parse(&String::from_utf8_lossy(&text))), None)
}

/// The kernel kills with a recording among the event log's lines; other lines are skipped.
pub fn parse(text: &str) -> EventLog {
    let kills = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["source"] == "kernel" && v["kind"] == "kill")
        .filter_map(|v| {
            Some(Recorded {
                pid: v["pid"].as_i64()?,
                name: v["comm"].as_str()?.to_owned(),
                unix_time_s: v["unix_time_s"].as_f64(),
                kernel_time_s: v["kernel_time_s"].as_f64(),
                id: v["id"].as_str().map(str::to_owned),
                recording: serde_json::from_value(v.get("recorder")?.clone()).ok()?,
            })
        })
        .collect();
    EventLog { kills }
}

impl EventLog {
    /// The daemon's record of `ev`'s kill: same pid and name, and the same kernel timestamp, or
    /// else wall-clock times within [`JOIN_WINDOW_S`] (`wall_s`: the report's, when known). A
    /// report with neither (a syslog time without the kernel's stamp) is not joined: pid and
    /// name alone recur across boots.
    pub fn find(&self, ev: &OomEvent, wall_s: Option<f64>) -> Option<&Recorded> {
        let (pid, name) = (ev.pid?, ev.comm.as_deref()?);
        let same: Vec<&Recorded> = self
            .kills
            .iter()
            .filter(|r| r.pid == pid && r.name == name)
            .collect();
        if let Some(k) = ev.kernel_time_s {
            let by_stamp = same.iter().find(|r| {
                r.kernel_time_s
                    .is_some_and(|rk| (rk - k).abs() <= KERNEL_TIME_EPS_S)
            });
            if let Some(r) = by_stamp {
                return Some(r);
            }
        }
        let w = wall_s?;
        same.iter()
            .filter_map(|r| Some((r, (r.unix_time_s? - w).abs())))
            .filter(|(_, d)| *d <= JOIN_WINDOW_S)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| *r)
    }
}

/// The report's wall-clock time in Unix seconds, when it can be known: derived from the boot
/// time for a live log, or an ISO 8601 `time` with a zone (`2024-05-01T10:00:00+0000`, `...Z`).
/// Syslog times (`Jun  4 07:41:59`) carry neither year nor zone: `None`.
pub fn wall_time_s(ev: &OomEvent, boot_epoch_s: Option<f64>) -> Option<f64> {
    if let Some(t) = ev.time.as_deref().and_then(parse_iso8601) {
        return Some(t);
    }
    Some(boot_epoch_s? + ev.kernel_time_s?)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH[:]MM)` → Unix seconds (`,frac` too, as `dmesg
/// --time-format iso` prints it).
fn parse_iso8601(s: &str) -> Option<f64> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> { s.get(a..b)?.parse().ok() };
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !matches!(s.get(10..11)?, "T" | " ") {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = s.get(19..)?;
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix(['.', ',']) {
        let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let z: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if z.len() != 4 {
                return None;
            }
            sign * (z.get(0..2)?.parse::<i64>().ok()? * 3600
                + z.get(2..4)?.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) as f64 + frac)
}

/// (year, month, day) → days since 1970-01-01 (the inverse of `time::civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The text line below an explained event: `led up to it (oomguard event ID): last 60 s: ...`.
pub fn text_line(ev: &OomEvent) -> Option<String> {
    let sum = ev.recorder.as_ref()?.summary()?;
    Some(format!(
        "  Led up to it (oomguard's event log{}): {}\n",
        ev.id
            .as_deref()
            .map(|i| format!(", event {}", super::render::safe(i)))
            .unwrap_or_default(),
        super::render::safe(&sum)
    ))
}

/// A polyline of `values` (oldest first, at times `t_s`) in a `w`×`h` box, scaled to `[lo, hi]`.
fn polyline(t_s: &[f64], values: &[Option<u64>], lo: u64, hi: u64, w: f64, h: f64) -> String {
    let (t0, t1) = match (t_s.first(), t_s.last()) {
        (Some(a), Some(b)) if b > a => (*a, *b),
        _ => (-1.0, 0.0),
    };
    let span = (hi.saturating_sub(lo)).max(1) as f64;
    let mut pts = String::new();
    for (t, v) in t_s.iter().zip(values) {
        let Some(v) = v else { continue };
        let x = (t - t0) / (t1 - t0) * w;
        let y = h - (v.saturating_sub(lo) as f64 / span) * h;
        let _ = write!(pts, "{x:.1},{y:.1} ");
    }
    pts.trim_end().to_owned()
}

/// The HTML block of an explained event with a recording: a sparkline per series (MemAvailable,
/// each guarded cgroup's usage), the growers and the first trigger. Empty without one.
pub fn html_section(ev: &OomEvent) -> String {
    let Some(r) = ev.recorder.as_ref().filter(|r| !r.t_s.is_empty()) else {
        return String::new();
    };
    let mut o = String::new();
    let span = r.t_s.last().copied().unwrap_or(0.0) - r.t_s.first().copied().unwrap_or(0.0);
    let _ = write!(
        o,
        "<section class=\"recorder\"><h3>What led up to it</h3>\n<p class=\"note\">From \
         oomguard's event log{}: the daemon's readings in the {:.0} s before it saw this kill.</p>\n",
        ev.id
            .as_deref()
            .map(|i| format!(" (event <code>{}</code>)", esc(i)))
            .unwrap_or_default(),
        span.max(0.0)
    );
    let mut series: Vec<(String, Vec<Option<u64>>)> = vec![(
        "MemAvailable".to_owned(),
        r.mem_available_bytes.iter().map(|v| Some(*v)).collect(),
    )];
    for (path, v) in &r.cgroups {
        series.push((format!("cgroup {path} usage"), v.clone()));
    }
    o.push_str("<table class=\"spark\"><tbody>");
    for (label, vals) in &series {
        let seen: Vec<u64> = vals.iter().flatten().copied().collect();
        let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
            continue;
        };
        let lo = seen.iter().copied().min().unwrap_or(0);
        let hi = seen.iter().copied().max().unwrap_or(0);
        let pts = polyline(&r.t_s, vals, lo, hi, 300.0, 40.0);
        let _ = write!(
            o,
            "<tr><th>{}</th><td><svg class=\"sparkline\" viewBox=\"0 0 300 40\" width=\"300\" \
             height=\"40\" role=\"img\" aria-label=\"{} from {} to {}\"><polyline fill=\"none\" \
             stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{pts}\"/></svg></td>\
             <td class=\"r\">{} → {}</td><td class=\"dim\">min {} · max {}</td></tr>",
            esc(label),
            esc(label),
            format_bytes(*first),
            format_bytes(*last),
            format_bytes(*first),
            format_bytes(*last),
            format_bytes(lo),
            format_bytes(hi)
        );
    }
    o.push_str("</tbody></table>\n");
    if !r.growers.is_empty() {
        o.push_str("<p>Grew most: ");
        let g: Vec<String> = r
            .growers
            .iter()
            .map(|g| {
                format!(
                    "{} <span class=\"dim\">(pid {})</span> {}",
                    esc(&g.name),
                    g.pid,
                    match g.growth_bytes {
                        Some(b) if b >= 0 => format!("+{}", format_bytes(b as u64)),
                        Some(b) => format!("−{}", format_bytes(b.unsigned_abs())),
                        None => format!("at {}", format_bytes(g.rss_bytes)),
                    }
                )
            })
            .collect();
        o.push_str(&g.join(", "));
        o.push_str(".</p>\n");
    }
    match r.first_trigger_s {
        Some(t) => {
            let _ = writeln!(
                o,
                "<p>oomguard's first trigger of this episode fired {:.1} s before the kill.</p>",
                -t
            );
        }
        None => o.push_str(
            "<p>No oomguard trigger fired in that span: the kernel acted before oomguard saw it coming.</p>\n",
        ),
    }
    o.push_str("</section>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_with_a_zone_are_read_and_syslog_times_are_not() {
        // `date -u -d 2024-05-01T10:00:00Z +%s` = 1714557600.
        assert_eq!(
            parse_iso8601("2024-05-01T10:00:00+0000"),
            Some(1_714_557_600.0)
        );
        assert_eq!(
            parse_iso8601("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600.0)
        );
        assert_eq!(
            parse_iso8601("2024-05-01T10:00:00.5Z"),
            Some(1_714_557_600.5)
        );
        assert_eq!(parse_iso8601("Jun  4 07:41:59"), None);
        assert_eq!(parse_iso8601("2024-05-01T10:00:00"), None);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    }
}
