//! Prometheus metrics: a registry whose every series exists from the start (so a scrape never
//! inserts, and a counter that is still 0 is visible, which `increase()` needs), rendered by
//! hand into one reused buffer in the text exposition format 0.0.4, and the node_exporter
//! textfile. The HTTP responder that serves it is `super::metrics_http`.
//!
//! Names follow the Prometheus naming guide: the `oomguard_` prefix, base units (`_bytes`,
//! `_seconds`, `_ratio`), `_total` on counters, `_info` for build info. Labels are bounded
//! sets: trigger, signal, constraint, hook event, HTTP code, and the *configured* watched
//! cgroups; never a pid or a per-process cgroup (`docs/metrics.md` lists every series).

use std::fmt::Write as _;
use std::path::Path;

use oomguard_core::config::HookEvent;

use super::hooks::{event_name, HOOK_EVENTS, N_HOOK_EVENTS};

/// Why oomguard acted (the trigger label): the one trigger type of the pipeline.
pub use oomguard_core::trigger::Trigger;

/// Every trigger label, in the order of the series.
pub const TRIGGERS: [Trigger; 8] = Trigger::ALL;

/// What a decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Warn,
    Sigterm,
    Sigkill,
}

pub const DECISIONS: [Decision; 3] = [Decision::Warn, Decision::Sigterm, Decision::Sigkill];

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Warn => "warn",
            Decision::Sigterm => "sigterm",
            Decision::Sigkill => "sigkill",
        }
    }
}

/// The signal label of kills.
pub const SIGNALS: [&str; 2] = ["SIGTERM", "SIGKILL"];

/// The kernel's OOM constraint, as a label.
pub const CONSTRAINTS: [&str; 5] = ["none", "cpuset", "memory_policy", "memcg", "unknown"];

/// `CONSTRAINT_MEMCG` → index of `memcg`.
pub fn constraint_index(c: Option<&str>) -> usize {
    match c {
        Some("CONSTRAINT_NONE") => 0,
        Some("CONSTRAINT_CPUSET") => 1,
        Some("CONSTRAINT_MEMORY_POLICY") => 2,
        Some("CONSTRAINT_MEMCG") => 3,
        _ => 4,
    }
}

/// HTTP status codes the responder counts.
pub const HTTP_CODES: [u16; 6] = [200, 400, 404, 405, 408, 431];

/// Most watched cgroups given their own series (the rest are not exported).
pub const MAX_CGROUP_SERIES: usize = 64;

/// Most (namespace, container) pairs given their own kill counter; later pairs are counted
/// under `_other` (a name Kubernetes, LXC and machined never give: they start with a letter or
/// digit). Names only, never a pid, pod uid or container id: those change with every restart
/// and would grow the series without bound.
pub const MAX_WORKLOAD_SERIES: usize = 32;

/// Kills of one named workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSeries {
    pub namespace: String,
    pub container: String,
    /// `[kernel, oomguard]`
    pub kills_total: [u64; 2],
}

/// One watched cgroup's gauges.
#[derive(Debug, Clone)]
pub struct CgroupSeries {
    pub label: String,
    pub usage_bytes: Option<f64>,
    pub limit_bytes: Option<f64>,
    /// The forecast's estimate (`+Inf` when not filling).
    pub time_to_oom_seconds: Option<f64>,
}

/// All series. Set fields directly (gauges) or through the `inc_*` methods (counters).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub version: String,
    pub start_time_seconds: f64,
    pub memory_total_bytes: Option<f64>,
    pub memory_available_bytes: Option<f64>,
    pub swap_total_bytes: Option<f64>,
    pub swap_free_bytes: Option<f64>,
    pub psi_some_avg10_ratio: Option<f64>,
    pub psi_full_avg10_ratio: Option<f64>,
    /// The machine's time-to-OOM estimate (`+Inf` when not filling).
    pub machine_time_to_oom_seconds: Option<f64>,
    pub cgroups: Vec<CgroupSeries>,
    /// `[decision][trigger]`
    pub decisions_total: [[u64; TRIGGERS.len()]; 3],
    /// `[signal][trigger]`
    pub kills_total: [[u64; TRIGGERS.len()]; 2],
    pub kernel_oom_kills_total: [u64; 5],
    /// Kernel kills seen only in the counters (report lost or unreadable).
    pub kernel_oom_kills_unreported_total: u64,
    /// Kills by workload name (bounded: [`MAX_WORKLOAD_SERIES`] + `_other`).
    pub workload_kills: Vec<WorkloadSeries>,
    pub kmsg_records_lost_total: u64,
    pub hook_runs_total: [u64; N_HOOK_EVENTS],
    pub hook_failures_total: [u64; N_HOOK_EVENTS],
    pub notifications_total: u64,
    pub events_logged_total: u64,
    pub event_log_errors_total: u64,
    pub loop_iterations_total: u64,
    pub loop_busy_seconds_total: f64,
    pub last_kill_timestamp_seconds: f64,
    pub last_kernel_oom_kill_timestamp_seconds: f64,
    pub http_requests_total: [u64; 6],
    buf: String,
}

fn hook_idx(e: HookEvent) -> usize {
    HOOK_EVENTS.iter().position(|x| *x == e).unwrap_or(0)
}

impl Metrics {
    /// The registry, with one series per watched cgroup label (capped).
    pub fn new(version: &str, cgroup_labels: &[String]) -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Metrics {
            version: version.to_owned(),
            start_time_seconds: start,
            memory_total_bytes: None,
            memory_available_bytes: None,
            swap_total_bytes: None,
            swap_free_bytes: None,
            psi_some_avg10_ratio: None,
            psi_full_avg10_ratio: None,
            machine_time_to_oom_seconds: None,
            cgroups: cgroup_labels
                .iter()
                .take(MAX_CGROUP_SERIES)
                .map(|l| CgroupSeries {
                    label: l.clone(),
                    usage_bytes: None,
                    limit_bytes: None,
                    time_to_oom_seconds: None,
                })
                .collect(),
            decisions_total: [[0; TRIGGERS.len()]; 3],
            kills_total: [[0; TRIGGERS.len()]; 2],
            kernel_oom_kills_total: [0; 5],
            kernel_oom_kills_unreported_total: 0,
            workload_kills: Vec::with_capacity(MAX_WORKLOAD_SERIES + 1),
            kmsg_records_lost_total: 0,
            hook_runs_total: [0; N_HOOK_EVENTS],
            hook_failures_total: [0; N_HOOK_EVENTS],
            notifications_total: 0,
            events_logged_total: 0,
            event_log_errors_total: 0,
            loop_iterations_total: 0,
            loop_busy_seconds_total: 0.0,
            last_kill_timestamp_seconds: 0.0,
            last_kernel_oom_kill_timestamp_seconds: 0.0,
            http_requests_total: [0; 6],
            buf: String::with_capacity(16 * 1024),
        }
    }

    pub fn inc_decision(&mut self, d: Decision, t: Trigger) {
        self.decisions_total[d as usize][t as usize] += 1;
    }

    /// An oomguard kill: `signal_is_kill` false for SIGTERM.
    pub fn inc_kill(&mut self, t: Trigger, signal_is_kill: bool, unix_time_s: f64) {
        self.kills_total[usize::from(signal_is_kill)][t as usize] += 1;
        self.last_kill_timestamp_seconds = unix_time_s;
    }

    /// A kernel OOM kill with its printed constraint; `unreported` when only a counter saw it.
    pub fn inc_kernel_kill(&mut self, constraint: Option<&str>, unreported: bool, unix_s: f64) {
        self.kernel_oom_kills_total[constraint_index(constraint)] += 1;
        if unreported {
            self.kernel_oom_kills_unreported_total += 1;
        }
        self.last_kernel_oom_kill_timestamp_seconds = unix_s;
    }

    /// A kill of a named workload (namespace `""` outside Kubernetes). `by_oomguard` false for
    /// the kernel's kills. Called only when an event names its container.
    pub fn inc_workload_kill(&mut self, namespace: &str, container: &str, by_oomguard: bool) {
        let i = match self
            .workload_kills
            .iter()
            .position(|w| w.namespace == namespace && w.container == container)
        {
            Some(i) => i,
            None => {
                let other = self.workload_kills.len() >= MAX_WORKLOAD_SERIES;
                let (ns, c) = if other {
                    ("_other", "_other")
                } else {
                    (namespace, container)
                };
                match self
                    .workload_kills
                    .iter()
                    .position(|w| w.namespace == ns && w.container == c)
                {
                    Some(i) => i,
                    None => {
                        self.workload_kills.push(WorkloadSeries {
                            namespace: ns.to_owned(),
                            container: c.to_owned(),
                            kills_total: [0; 2],
                        });
                        self.workload_kills.len() - 1
                    }
                }
            }
        };
        self.workload_kills[i].kills_total[usize::from(by_oomguard)] += 1;
    }

    pub fn set_hook_counts(&mut self, runs: [u64; N_HOOK_EVENTS], failures: [u64; N_HOOK_EVENTS]) {
        self.hook_runs_total = runs;
        self.hook_failures_total = failures;
    }

    pub fn inc_hook(&mut self, e: HookEvent, failed: bool) {
        self.hook_runs_total[hook_idx(e)] += 1;
        if failed {
            self.hook_failures_total[hook_idx(e)] += 1;
        }
    }

    pub(super) fn count_http(&mut self, code: u16) {
        if let Some(i) = HTTP_CODES.iter().position(|c| *c == code) {
            self.http_requests_total[i] += 1;
        }
    }

    /// Renders every series; the returned text borrows the registry's reused buffer.
    pub fn render(&mut self) -> &str {
        let mut b = std::mem::take(&mut self.buf);
        b.clear();
        self.render_into(&mut b);
        self.buf = b;
        &self.buf
    }

    fn render_into(&self, b: &mut String) {
        // `write!` into a String with capacity does not allocate; the buffer grows once.
        let _ = self.write_all(b);
    }

    fn write_all(&self, b: &mut String) -> std::fmt::Result {
        fn head(b: &mut String, name: &str, kind: &str, help: &str) -> std::fmt::Result {
            writeln!(b, "# HELP {name} {help}")?;
            writeln!(b, "# TYPE {name} {kind}")
        }
        fn gauge(b: &mut String, name: &str, help: &str, v: Option<f64>) -> std::fmt::Result {
            if let Some(v) = v {
                head(b, name, "gauge", help)?;
                writeln!(b, "{name} {v}")?;
            }
            Ok(())
        }
        head(
            b,
            "oomguard_build_info",
            "gauge",
            "Build information; always 1.",
        )?;
        writeln!(
            b,
            "oomguard_build_info{{version=\"{}\"}} 1",
            escape_label(&self.version)
        )?;
        head(
            b,
            "oomguard_start_time_seconds",
            "gauge",
            "Start time of the daemon, seconds since the Unix epoch.",
        )?;
        writeln!(b, "oomguard_start_time_seconds {}", self.start_time_seconds)?;
        gauge(
            b,
            "oomguard_memory_total_bytes",
            "MemTotal from /proc/meminfo.",
            self.memory_total_bytes,
        )?;
        gauge(
            b,
            "oomguard_memory_available_bytes",
            "MemAvailable from /proc/meminfo.",
            self.memory_available_bytes,
        )?;
        gauge(
            b,
            "oomguard_swap_total_bytes",
            "SwapTotal from /proc/meminfo.",
            self.swap_total_bytes,
        )?;
        gauge(
            b,
            "oomguard_swap_free_bytes",
            "SwapFree from /proc/meminfo.",
            self.swap_free_bytes,
        )?;
        gauge(
            b,
            "oomguard_pressure_memory_some_avg10_ratio",
            "Memory PSI some avg10, as a ratio (0-1).",
            self.psi_some_avg10_ratio,
        )?;
        gauge(
            b,
            "oomguard_pressure_memory_full_avg10_ratio",
            "Memory PSI full avg10, as a ratio (0-1).",
            self.psi_full_avg10_ratio,
        )?;
        if self.machine_time_to_oom_seconds.is_some()
            || self.cgroups.iter().any(|c| c.time_to_oom_seconds.is_some())
        {
            head(
                b,
                "oomguard_time_to_oom_seconds",
                "gauge",
                "Estimated seconds until the scope's free memory is gone at its smoothed fill rate (+Inf when not filling).",
            )?;
            if let Some(v) = self.machine_time_to_oom_seconds {
                writeln!(
                    b,
                    "oomguard_time_to_oom_seconds{{scope=\"machine\"}} {}",
                    PromFloat(v)
                )?;
            }
            for c in &self.cgroups {
                if let Some(v) = c.time_to_oom_seconds {
                    writeln!(
                        b,
                        "oomguard_time_to_oom_seconds{{scope=\"{}\"}} {}",
                        escape_label(&c.label),
                        PromFloat(v)
                    )?;
                }
            }
        }
        type Figure = fn(&CgroupSeries) -> Option<f64>;
        let per_cgroup: [(&str, &str, Figure); 2] = [
            (
                "oomguard_cgroup_memory_usage_bytes",
                "Memory usage of a watched cgroup.",
                |c| c.usage_bytes,
            ),
            (
                "oomguard_cgroup_memory_limit_bytes",
                "Memory limit of a watched cgroup (absent when unlimited).",
                |c| c.limit_bytes,
            ),
        ];
        if !self.cgroups.is_empty() {
            for (name, help, figure) in per_cgroup {
                head(b, name, "gauge", help)?;
                for c in &self.cgroups {
                    if let Some(v) = figure(c) {
                        writeln!(b, "{name}{{cgroup=\"{}\"}} {v}", escape_label(&c.label))?;
                    }
                }
            }
        }
        head(
            b,
            "oomguard_decisions_total",
            "counter",
            "Decisions to warn or kill, by action and trigger.",
        )?;
        for d in DECISIONS {
            for t in TRIGGERS {
                writeln!(
                    b,
                    "oomguard_decisions_total{{action=\"{}\",trigger=\"{}\"}} {}",
                    d.as_str(),
                    t.label(),
                    self.decisions_total[d as usize][t as usize]
                )?;
            }
        }
        head(
            b,
            "oomguard_kills_total",
            "counter",
            "Processes oomguard signalled to free memory, by signal and trigger.",
        )?;
        for (si, s) in SIGNALS.iter().enumerate() {
            for t in TRIGGERS {
                writeln!(
                    b,
                    "oomguard_kills_total{{signal=\"{s}\",trigger=\"{}\"}} {}",
                    t.label(),
                    self.kills_total[si][t as usize]
                )?;
            }
        }
        head(
            b,
            "oomguard_kernel_oom_kills_total",
            "counter",
            "Processes the kernel's OOM killer killed since the daemon started, by constraint.",
        )?;
        for (i, c) in CONSTRAINTS.iter().enumerate() {
            writeln!(
                b,
                "oomguard_kernel_oom_kills_total{{constraint=\"{c}\"}} {}",
                self.kernel_oom_kills_total[i]
            )?;
        }
        head(
            b,
            "oomguard_kernel_oom_kills_unreported_total",
            "counter",
            "Kernel OOM kills seen only in the oom_kill counters (the report was lost).",
        )?;
        writeln!(
            b,
            "oomguard_kernel_oom_kills_unreported_total {}",
            self.kernel_oom_kills_unreported_total
        )?;
        if !self.workload_kills.is_empty() {
            head(
                b,
                "oomguard_workload_oom_kills_total",
                "counter",
                "OOM kills by workload name (Kubernetes namespace and container, or the lxc/nspawn \
                 container name), by who killed: kernel or oomguard.",
            )?;
            for w in &self.workload_kills {
                for (i, src) in ["kernel", "oomguard"].iter().enumerate() {
                    writeln!(
                        b,
                        "oomguard_workload_oom_kills_total{{namespace=\"{}\",container=\"{}\",source=\"{src}\"}} {}",
                        escape_label(&w.namespace),
                        escape_label(&w.container),
                        w.kills_total[i]
                    )?;
                }
            }
        }
        head(
            b,
            "oomguard_kmsg_records_lost_total",
            "counter",
            "Kernel log records overwritten before the daemon read them.",
        )?;
        writeln!(
            b,
            "oomguard_kmsg_records_lost_total {}",
            self.kmsg_records_lost_total
        )?;
        head(
            b,
            "oomguard_hook_runs_total",
            "counter",
            "Hook commands started, by event.",
        )?;
        for e in HOOK_EVENTS {
            writeln!(
                b,
                "oomguard_hook_runs_total{{event=\"{}\"}} {}",
                event_name(e),
                self.hook_runs_total[hook_idx(e)]
            )?;
        }
        head(
            b,
            "oomguard_hook_failures_total",
            "counter",
            "Hook commands that failed, timed out or could not start, by event.",
        )?;
        for e in HOOK_EVENTS {
            writeln!(
                b,
                "oomguard_hook_failures_total{{event=\"{}\"}} {}",
                event_name(e),
                self.hook_failures_total[hook_idx(e)]
            )?;
        }
        for (name, help, v) in [
            (
                "oomguard_notifications_total",
                "Desktop notification commands started.",
                self.notifications_total,
            ),
            (
                "oomguard_events_logged_total",
                "Events written to the event log.",
                self.events_logged_total,
            ),
            (
                "oomguard_event_log_errors_total",
                "Events that could not be written to the event log.",
                self.event_log_errors_total,
            ),
            (
                "oomguard_loop_iterations_total",
                "Iterations of the daemon's main loop.",
                self.loop_iterations_total,
            ),
        ] {
            head(b, name, "counter", help)?;
            writeln!(b, "{name} {v}")?;
        }
        head(
            b,
            "oomguard_loop_busy_seconds_total",
            "counter",
            "Time the main loop spent working (not waiting in poll).",
        )?;
        writeln!(
            b,
            "oomguard_loop_busy_seconds_total {}",
            self.loop_busy_seconds_total
        )?;
        head(
            b,
            "oomguard_last_kill_timestamp_seconds",
            "gauge",
            "Time of oomguard's last kill, seconds since the Unix epoch (0: none yet).",
        )?;
        writeln!(
            b,
            "oomguard_last_kill_timestamp_seconds {}",
            self.last_kill_timestamp_seconds
        )?;
        head(
            b,
            "oomguard_last_kernel_oom_kill_timestamp_seconds",
            "gauge",
            "Time of the last kernel OOM kill seen, seconds since the Unix epoch (0: none yet).",
        )?;
        writeln!(
            b,
            "oomguard_last_kernel_oom_kill_timestamp_seconds {}",
            self.last_kernel_oom_kill_timestamp_seconds
        )?;
        head(
            b,
            "oomguard_http_requests_total",
            "counter",
            "Requests to the metrics endpoint, by response code.",
        )?;
        for (i, c) in HTTP_CODES.iter().enumerate() {
            writeln!(
                b,
                "oomguard_http_requests_total{{code=\"{c}\"}} {}",
                self.http_requests_total[i]
            )?;
        }
        Ok(())
    }

    /// Writes the node_exporter textfile: a temporary file beside `path`, then `rename`, so
    /// node_exporter never reads half a file. Not on the kill path: it is plain file I/O.
    pub fn write_textfile(&mut self, path: &Path) -> std::io::Result<()> {
        let text = self.render();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// Label values escape `\`, `"` and newline (text format 0.0.4).
/// A sample value in the text format's spelling: `+Inf`, `-Inf`, `NaN` (Rust prints `inf`).
struct PromFloat(f64);

impl std::fmt::Display for PromFloat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

fn escape_label(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    std::borrow::Cow::Owned(o)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn registry() -> Metrics {
        let mut m = Metrics::new("0.1.0", &["/system.slice/db.service".to_owned()]);
        m.memory_total_bytes = Some(8.0 * 1024.0 * 1024.0 * 1024.0);
        m.memory_available_bytes = Some(1.5e9);
        m.swap_total_bytes = Some(0.0);
        m.swap_free_bytes = Some(0.0);
        m.psi_some_avg10_ratio = Some(0.125);
        m.psi_full_avg10_ratio = Some(0.0);
        m.cgroups[0].usage_bytes = Some(1e8);
        m.cgroups[0].limit_bytes = Some(2e8);
        m.machine_time_to_oom_seconds = Some(f64::INFINITY);
        m.cgroups[0].time_to_oom_seconds = Some(42.5);
        m.inc_decision(Decision::Sigkill, Trigger::MemAvailable);
        m.inc_kill(Trigger::MemAvailable, true, 1_795_960_800.0);
        m.inc_kernel_kill(Some("CONSTRAINT_MEMCG"), false, 1_795_960_801.0);
        m.inc_hook(HookEvent::PostKill, false);
        m
    }

    #[test]
    fn time_to_oom_is_one_series_per_scope_and_plus_inf_when_not_filling() {
        let mut m = registry();
        let text = m.render().to_owned();
        assert!(
            text.contains("oomguard_time_to_oom_seconds{scope=\"machine\"} +Inf\n"),
            "{text}"
        );
        assert!(text
            .contains("oomguard_time_to_oom_seconds{scope=\"/system.slice/db.service\"} 42.5\n"));
        assert_eq!(
            text.matches("# TYPE oomguard_time_to_oom_seconds gauge")
                .count(),
            1
        );
    }

    #[test]
    fn workload_series_are_capped() {
        let mut m = registry();
        for i in 0..(MAX_WORKLOAD_SERIES + 10) {
            m.inc_workload_kill("ns", &format!("c{i}"), false);
        }
        m.inc_workload_kill("ns", "c0", true);
        assert_eq!(m.workload_kills.len(), MAX_WORKLOAD_SERIES + 1);
        let text = m.render().to_owned();
        assert!(text.contains(
            "oomguard_workload_oom_kills_total{namespace=\"_other\",container=\"_other\",source=\"kernel\"} 10"
        ));
        assert!(text.contains(
            "oomguard_workload_oom_kills_total{namespace=\"ns\",container=\"c0\",source=\"oomguard\"} 1"
        ));
    }

    #[test]
    fn text_format_follows_the_naming_guide() {
        let mut m = registry();
        let text = m.render().to_owned();
        let mut typed = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "{name} twice"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("oomguard_"), "{line}");
            let kind = typed
                .get(name)
                .unwrap_or_else(|| panic!("no TYPE for {line}"));
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(!line.contains("pid="), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        for want in [
            "oomguard_build_info{version=\"0.1.0\"} 1",
            "oomguard_memory_available_bytes 1500000000",
            "oomguard_pressure_memory_some_avg10_ratio 0.125",
            "oomguard_cgroup_memory_limit_bytes{cgroup=\"/system.slice/db.service\"} 200000000",
            "oomguard_kills_total{signal=\"SIGKILL\",trigger=\"memory\"} 1",
            "oomguard_kills_total{signal=\"SIGTERM\",trigger=\"psi_full\"} 0",
            "oomguard_decisions_total{action=\"sigkill\",trigger=\"memory\"} 1",
            "oomguard_kernel_oom_kills_total{constraint=\"memcg\"} 1",
            "oomguard_hook_runs_total{event=\"post_kill\"} 1",
            "oomguard_last_kill_timestamp_seconds 1795960800",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
        }
        // The buffer is reused: a second render does not grow it.
        let cap = m.buf.capacity();
        m.render();
        assert_eq!(m.buf.capacity(), cap);
    }

    /// `promtool check metrics` (Debian's prometheus package) lints the exposition.
    #[test]
    fn promtool_check_metrics_is_clean() {
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("SKIP promtool_check_metrics_is_clean: promtool not installed");
            return;
        };
        let mut m = registry();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(m.render().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && all.trim().is_empty(), "{all}");
    }

    #[test]
    fn textfile_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("oomguard.prom");
        let mut m = registry();
        m.write_textfile(&p).unwrap();
        m.inc_kill(Trigger::CgroupHeadroom, false, 1.0);
        m.write_textfile(&p).unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains("oomguard_kills_total{signal=\"SIGTERM\",trigger=\"cgroup\"} 1"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
