//! Prometheus metrics: a registry whose every series exists from the start (so a scrape never
//! inserts, and a counter that is still 0 is visible, which `increase()` needs), rendered by
//! hand into one reused buffer in the text exposition format 0.0.4; an HTTP/1.0 responder that
//! runs inside the daemon's poll loop; and the node_exporter textfile.
//!
//! Names follow the Prometheus naming guide: the `oomguard_` prefix, base units (`_bytes`,
//! `_seconds`, `_ratio`), `_total` on counters, `_info` for build info. Labels are bounded
//! sets: trigger, signal, constraint, hook event, HTTP code, and the *configured* watched
//! cgroups; never a pid or a per-process cgroup (`docs/metrics.md` lists every series).
//!
//! The responder never blocks its caller: the listener and every connection are non-blocking;
//! a connection has [`REQUEST_DEADLINE`] to send its request (else 408) and
//! [`CONNECTION_DEADLINE`] in all, [`MAX_REQUEST_BYTES`] for its request head (else 431), and
//! at most [`MAX_CONNECTIONS`] are open (more are closed at accept). Garbage gets 400, a path
//! other than `/metrics` 404, a method other than GET/HEAD 405.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use oomguard_core::config::HookEvent;

use super::hooks::{event_name, HOOK_EVENTS, N_HOOK_EVENTS};

/// Why oomguard acted (the trigger label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Memory,
    Swap,
    PsiSome,
    PsiFull,
    Cgroup,
}

pub const TRIGGERS: [Trigger; 5] = [
    Trigger::Memory,
    Trigger::Swap,
    Trigger::PsiSome,
    Trigger::PsiFull,
    Trigger::Cgroup,
];

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Memory => "memory",
            Trigger::Swap => "swap",
            Trigger::PsiSome => "psi_some",
            Trigger::PsiFull => "psi_full",
            Trigger::Cgroup => "cgroup",
        }
    }
    /// From the event's `trigger.reason`.
    pub fn from_reason(s: &str) -> Option<Self> {
        TRIGGERS.into_iter().find(|t| t.as_str() == s)
    }
    fn idx(self) -> usize {
        self as usize
    }
}

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
    pub cgroups: Vec<CgroupSeries>,
    /// `[decision][trigger]`
    pub decisions_total: [[u64; 5]; 3],
    /// `[signal][trigger]`
    pub kills_total: [[u64; 5]; 2],
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
            cgroups: cgroup_labels
                .iter()
                .take(MAX_CGROUP_SERIES)
                .map(|l| CgroupSeries {
                    label: l.clone(),
                    usage_bytes: None,
                    limit_bytes: None,
                })
                .collect(),
            decisions_total: [[0; 5]; 3],
            kills_total: [[0; 5]; 2],
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
        self.decisions_total[d as usize][t.idx()] += 1;
    }

    /// An oomguard kill: `signal_is_kill` false for SIGTERM.
    pub fn inc_kill(&mut self, t: Trigger, signal_is_kill: bool, unix_time_s: f64) {
        self.kills_total[usize::from(signal_is_kill)][t.idx()] += 1;
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

    fn count_http(&mut self, code: u16) {
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
        if !self.cgroups.is_empty() {
            head(
                b,
                "oomguard_cgroup_memory_usage_bytes",
                "gauge",
                "Memory usage of a watched cgroup.",
            )?;
            for c in &self.cgroups {
                if let Some(v) = c.usage_bytes {
                    writeln!(
                        b,
                        "oomguard_cgroup_memory_usage_bytes{{cgroup=\"{}\"}} {v}",
                        escape_label(&c.label)
                    )?;
                }
            }
            head(
                b,
                "oomguard_cgroup_memory_limit_bytes",
                "gauge",
                "Memory limit of a watched cgroup (absent when unlimited).",
            )?;
            for c in &self.cgroups {
                if let Some(v) = c.limit_bytes {
                    writeln!(
                        b,
                        "oomguard_cgroup_memory_limit_bytes{{cgroup=\"{}\"}} {v}",
                        escape_label(&c.label)
                    )?;
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
                    t.as_str(),
                    self.decisions_total[d as usize][t.idx()]
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
                    t.as_str(),
                    self.kills_total[si][t.idx()]
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

/// A request has this long to arrive in full (slowloris guard).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// A connection is closed after this long whatever its state (a client that never reads).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Largest request head read.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Connections open at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 16;
/// Connections accepted per `on_readable` call (the rest wait in the backlog).
const ACCEPTS_PER_CALL: usize = 32;

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    req: Vec<u8>,
    accepted: Instant,
    out: Vec<u8>,
    out_pos: usize,
    /// The response is queued: no more reading.
    responding: bool,
}

/// Counters of the responder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub accepted: u64,
    pub refused_full: u64,
    pub timed_out: u64,
    pub responses: u64,
}

/// The in-loop HTTP/1.0 responder. See the module docs.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    conns: Vec<Conn>,
    stats: ServerStats,
    request_deadline: Duration,
    connection_deadline: Duration,
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// Not complete yet.
    Partial,
    Respond {
        code: u16,
        head_only: bool,
    },
}

/// Classifies the request bytes read so far.
fn parse_request(req: &[u8]) -> Parsed {
    let line_end = req.iter().position(|b| *b == b'\n');
    let first = &req[..line_end.unwrap_or(req.len())];
    // The method must be an upper-case token followed by a space; anything else is garbage
    // as soon as it shows (no need to wait for a newline that never comes).
    let method_len = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method_len == 0 && !first.is_empty() {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    }
    if method_len > 10 || (method_len < first.len() && first[method_len] != b' ') {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    }
    let complete = req.windows(4).any(|w| w == b"\r\n\r\n") || req.windows(2).any(|w| w == b"\n\n");
    if !complete {
        return Parsed::Partial;
    }
    let line = String::from_utf8_lossy(first);
    let mut parts = line.trim_end_matches(['\r', '\n']).split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return Parsed::Respond {
            code: 405,
            head_only: false,
        };
    }
    let path = target.split('?').next().unwrap_or("");
    Parsed::Respond {
        code: if path == "/metrics" { 200 } else { 404 },
        head_only,
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

impl MetricsServer {
    /// Binds `addr` (`127.0.0.1:9258`; a bare port or `:PORT` means 127.0.0.1: exposing
    /// the endpoint beyond the host must be asked for), non-blocking.
    pub fn bind(addr: &str) -> std::io::Result<Self> {
        let addr: SocketAddr = match addr.trim_start_matches(':').parse::<u16>() {
            Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            Err(_) => addr.parse().map_err(|e| {
                std::io::Error::new(ErrorKind::InvalidInput, format!("{addr}: {e}"))
            })?,
        };
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer {
            listener,
            conns: Vec::new(),
            stats: ServerStats::default(),
            request_deadline: REQUEST_DEADLINE,
            connection_deadline: CONNECTION_DEADLINE,
        })
    }

    /// Other deadlines than [`REQUEST_DEADLINE`] / [`CONNECTION_DEADLINE`] (tests).
    pub fn set_deadlines(&mut self, request: Duration, connection: Duration) {
        self.request_deadline = request;
        self.connection_deadline = connection.max(request);
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The fds to poll and their interest: the listener and reading connections for input,
    /// connections with a response queued for output.
    /// Calls `f` for each fd to poll (the listener, then each connection), without allocating.
    pub fn for_each_poll_fd(&self, f: &mut dyn FnMut(BorrowedFd<'_>, rustix::event::PollFlags)) {
        use rustix::event::PollFlags;
        f(self.listener.as_fd(), PollFlags::IN);
        for c in &self.conns {
            f(
                c.stream.as_fd(),
                if c.responding {
                    PollFlags::OUT
                } else {
                    PollFlags::IN
                },
            );
        }
    }

    pub fn poll_fds<'a>(&'a self, out: &mut Vec<(BorrowedFd<'a>, rustix::event::PollFlags)>) {
        use rustix::event::PollFlags;
        out.push((self.listener.as_fd(), PollFlags::IN));
        for c in &self.conns {
            let f = if c.responding {
                PollFlags::OUT
            } else {
                PollFlags::IN
            };
            out.push((c.stream.as_fd(), f));
        }
    }

    /// Deadline of the oldest connection, when one is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .map(|c| {
                if c.responding {
                    c.accepted + self.connection_deadline
                } else {
                    c.accepted + self.request_deadline
                }
            })
            .min()
    }

    /// Accepts, reads, answers and writes whatever is ready, then expires connections past
    /// their deadline. Every socket is non-blocking: this never waits. Call it when any of
    /// [`MetricsServer::poll_fds`] is ready, and at [`MetricsServer::next_deadline`].
    pub fn on_ready(&mut self, now: Instant, metrics: &mut Metrics) {
        for _ in 0..ACCEPTS_PER_CALL {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err()
                    {
                        self.stats.refused_full += 1;
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.stats.accepted += 1;
                    self.conns.push(Conn {
                        stream,
                        req: Vec::new(),
                        accepted: now,
                        out: Vec::new(),
                        out_pos: 0,
                        responding: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock: backlog empty. EMFILE and the like: try next time.
                Err(_) => break,
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            let keep = self.progress(i, now, metrics);
            if keep {
                i += 1;
            } else {
                self.conns.swap_remove(i);
            }
        }
    }

    /// `on_readable` under its conventional name.
    pub fn on_readable(&mut self, now: Instant, metrics: &mut Metrics) {
        self.on_ready(now, metrics);
    }

    /// Expires what is past its deadline (same work as `on_ready`).
    pub fn on_tick(&mut self, now: Instant, metrics: &mut Metrics) {
        self.on_ready(now, metrics);
    }

    fn respond(c: &mut Conn, code: u16, head_only: bool, metrics: &mut Metrics) {
        metrics.count_http(code);
        c.responding = true;
        c.out.clear();
        c.out_pos = 0;
        let (ctype, body): (&str, &[u8]) = if code == 200 {
            (
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render().as_bytes(),
            )
        } else {
            ("text/plain; charset=utf-8", reason(code).as_bytes())
        };
        let _ = write!(
            c.out,
            "HTTP/1.0 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reason(code),
            body.len()
        );
        if !head_only {
            c.out.extend_from_slice(body);
            if code != 200 {
                c.out.push(b'\n');
            }
        }
        // Nothing more is read from this client.
        let _ = c.stream.shutdown(std::net::Shutdown::Read);
    }

    /// Moves connection `i` along; false when it is done and must be dropped.
    fn progress(&mut self, i: usize, now: Instant, metrics: &mut Metrics) -> bool {
        let c = &mut self.conns[i];
        if !c.responding {
            let mut buf = [0u8; 1024];
            // Bounded: at most MAX_REQUEST_BYTES / 1024 + 1 reads.
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        let room = MAX_REQUEST_BYTES + 1 - c.req.len().min(MAX_REQUEST_BYTES + 1);
                        c.req.extend_from_slice(&buf[..n.min(room)]);
                        if c.req.len() > MAX_REQUEST_BYTES {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            match parse_request(&c.req) {
                Parsed::Respond { code, head_only } => Self::respond(c, code, head_only, metrics),
                Parsed::Partial if c.req.len() > MAX_REQUEST_BYTES => {
                    Self::respond(c, 431, false, metrics)
                }
                Parsed::Partial if now >= c.accepted + self.request_deadline => {
                    self.stats.timed_out += 1;
                    Self::respond(c, 408, false, metrics)
                }
                Parsed::Partial => return true,
            }
        }
        while c.out_pos < c.out.len() {
            match c.stream.write(&c.out[c.out_pos..]) {
                Ok(0) => return false,
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if now >= c.accepted + self.connection_deadline {
                        self.stats.timed_out += 1;
                        return false;
                    }
                    return true;
                }
                Err(_) => return false,
            }
        }
        self.stats.responses += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;
    use std::sync::mpsc;

    fn registry() -> Metrics {
        let mut m = Metrics::new("0.1.0", &["/system.slice/db.service".to_owned()]);
        m.memory_total_bytes = Some(8.0 * 1024.0 * 1024.0 * 1024.0);
        m.memory_available_bytes = Some(1.5e9);
        m.swap_total_bytes = Some(0.0);
        m.swap_free_bytes = Some(0.0);
        m.psi_some_avg10_ratio = Some(0.125);
        m.psi_full_avg10_ratio = Some(0.0);
        m.cgroups[0].usage_bytes = Some(1e8);
        m.cgroups[0].limit_bytes = Some(2e8);
        m.inc_decision(Decision::Sigkill, Trigger::Memory);
        m.inc_kill(Trigger::Memory, true, 1_795_960_800.0);
        m.inc_kernel_kill(Some("CONSTRAINT_MEMCG"), false, 1_795_960_801.0);
        m.inc_hook(HookEvent::PostKill, false);
        m
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
        m.inc_kill(Trigger::Cgroup, false, 1.0);
        m.write_textfile(&p).unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains("oomguard_kills_total{signal=\"SIGTERM\",trigger=\"cgroup\"} 1"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn request_parsing() {
        let r = |s: &[u8]| parse_request(s);
        assert_eq!(
            r(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Respond {
                code: 200,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Parsed::Respond {
                code: 200,
                head_only: false
            }
        );
        assert_eq!(
            r(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
            Parsed::Respond {
                code: 200,
                head_only: true
            }
        );
        assert_eq!(
            r(b"GET / HTTP/1.1\r\n\r\n"),
            Parsed::Respond {
                code: 404,
                head_only: false
            }
        );
        assert_eq!(
            r(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Parsed::Respond {
                code: 405,
                head_only: false
            }
        );
        assert_eq!(r(b"GET /metr"), Parsed::Partial);
        assert_eq!(r(b""), Parsed::Partial);
        assert_eq!(
            r(b"\x16\x03\x01\x02"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"get /metrics"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET/metrics"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET /metrics\r\n\r\n"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET metrics HTTP/1.1\r\n\r\n"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
    }

    /// Drives the server as the daemon's loop would (poll + on_ready) for `run`, measuring the
    /// longest `on_ready` call.
    fn serve(server: &mut MetricsServer, m: &mut Metrics, run: Duration) -> Duration {
        use rustix::event::{poll, PollFd, Timespec};
        let end = Instant::now() + run;
        let mut longest = Duration::ZERO;
        while Instant::now() < end {
            let now = Instant::now();
            let wake = server.next_deadline().unwrap_or(end).min(end);
            let timeout = wake.saturating_duration_since(now);
            {
                let mut fds = Vec::new();
                server.poll_fds(&mut fds);
                let mut pfds: Vec<PollFd<'_>> = fds
                    .iter()
                    .map(|(fd, fl)| PollFd::from_borrowed_fd(*fd, *fl))
                    .collect();
                let ts = Timespec {
                    tv_sec: timeout.as_secs() as i64,
                    tv_nsec: i64::from(timeout.subsec_nanos()),
                };
                let _ = poll(&mut pfds, Some(&ts));
            }
            let t = Instant::now();
            server.on_ready(t, m);
            longest = longest.max(t.elapsed());
        }
        longest
    }

    fn get(addr: SocketAddr, req: &[u8]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(req)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn slow_huge_and_garbage_clients_never_stall_the_loop() {
        let mut server = MetricsServer::bind("127.0.0.1:0").unwrap();
        server.set_deadlines(Duration::from_millis(500), Duration::from_secs(1));
        let addr = server.local_addr().unwrap();
        let mut m = registry();
        let (tx, rx) = mpsc::channel::<(&'static str, String, Duration)>();

        let t = tx.clone();
        let slow = std::thread::spawn(move || {
            // Connects and sends nothing: answered 408 at the request deadline and closed.
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            t.send(("slow", out, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let slow_partial = std::thread::spawn(move || {
            // Sends half a request, then nothing (slowloris).
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            t.send(("slow_partial", out, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let huge = std::thread::spawn(move || {
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
            for i in 0..20_000 {
                req.extend_from_slice(format!("X-Filler-{i}: aaaaaaaaaaaaaaaa\r\n").as_bytes());
            }
            // The server stops reading after 4 KiB; the write may fail with a reset.
            let _ = s.write_all(&req);
            let _ = s.shutdown(Shutdown::Write);
            let mut out = String::new();
            let r = s.read_to_string(&mut out);
            let shown = match r {
                Ok(_) => out,
                Err(e) => format!("error: {e}"),
            };
            t.send(("huge", shown, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let garbage = std::thread::spawn(move || {
            let start = Instant::now();
            let out = get(
                addr,
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n",
            )
            .unwrap_or_else(|e| format!("error: {e}"));
            t.send(("garbage", out, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let good = std::thread::spawn(move || {
            // Scrapes keep working while the others hang around.
            for _ in 0..20 {
                let start = Instant::now();
                let out = get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
                t.send(("good", out, start.elapsed())).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = get(addr, b"GET /nothing HTTP/1.0\r\n\r\n").unwrap();
            t.send(("404", out, Duration::ZERO)).unwrap();
        });
        drop(tx);
        let longest = serve(&mut server, &mut m, Duration::from_millis(1500));
        for h in [slow, slow_partial, huge, garbage, good] {
            h.join().unwrap();
        }
        let results: Vec<_> = rx.iter().collect();
        eprintln!("longest on_ready call: {longest:?}");
        assert!(
            longest < Duration::from_millis(20),
            "on_ready took {longest:?}"
        );
        let goods: Vec<_> = results.iter().filter(|r| r.0 == "good").collect();
        assert_eq!(goods.len(), 20);
        for (_, body, took) in &goods {
            assert!(body.starts_with("HTTP/1.0 200 OK\r\n"), "{body}");
            assert!(body.contains("oomguard_build_info"));
            assert!(*took < Duration::from_millis(200), "a scrape took {took:?}");
        }
        let one = |k: &str| results.iter().find(|r| r.0 == k).unwrap();
        let (_, body, took) = one("slow");
        assert!(body.starts_with("HTTP/1.0 408"), "{body}");
        assert!(
            *took >= Duration::from_millis(450) && *took < Duration::from_millis(900),
            "{took:?}"
        );
        let (_, body, _) = one("slow_partial");
        assert!(body.starts_with("HTTP/1.0 408"), "{body}");
        let (_, body, took) = one("huge");
        assert!(
            body.starts_with("HTTP/1.0 431") || body.starts_with("error:"),
            "{body}"
        );
        assert!(*took < Duration::from_millis(900));
        let (_, body, _) = one("garbage");
        assert!(
            body.starts_with("HTTP/1.0 400") || body.starts_with("error:"),
            "{body}"
        );
        let (_, body, _) = one("404");
        assert!(body.starts_with("HTTP/1.0 404"), "{body}");
        assert_eq!(server.connections(), 0, "every connection closed");
        let code = |c: u16| m.http_requests_total[HTTP_CODES.iter().position(|x| *x == c).unwrap()];
        assert_eq!(code(200), 20);
        assert_eq!(code(408), 2);
        assert_eq!(code(404), 1);
    }

    #[test]
    fn connection_cap_refuses_extra_connections() {
        let mut server = MetricsServer::bind("127.0.0.1:0").unwrap();
        server.set_deadlines(Duration::from_millis(300), Duration::from_millis(300));
        let addr = server.local_addr().unwrap();
        let mut m = registry();
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 4)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        server.on_ready(Instant::now(), &mut m);
        assert_eq!(server.connections(), MAX_CONNECTIONS);
        assert_eq!(server.stats().refused_full, 4);
        serve(&mut server, &mut m, Duration::from_millis(400));
        assert_eq!(server.connections(), 0);
        drop(idle);
    }
}
