//! [`Teller`]: every sink and the kernel-OOM detector behind one handle, so the daemon's loop
//! needs four calls: [`Teller::poll_fds`] into its poll set, [`Teller::next_deadline`] into its
//! timeout, [`Teller::on_ready`] after every wake-up, and [`Teller::record`] for each event of
//! its own (plus [`Teller::pre_kill`] right before a kill). Nothing here blocks or panics on
//! I/O errors; each sink counts its own failures (and they show in the metrics).
//!
//! What happens to an event in [`Teller::record`], in this order (cheapest and most important
//! first, all after the kill was signalled): stamp (id, time, host) → JSON log (one write) →
//! journal (one datagram) → metrics → hooks (`warn`, `post_kill`, `kernel_oom`; spawned) →
//! desktop notifications for kills (spawned).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use oomguard_core::config::{Config, HookEvent};
use oomguard_core::event::{EventKind, OomEvent, Signal, Source};
use rustix::event::PollFlags;

use super::eventlog::EventLog;
use super::hooks::Hooks;
use super::journal::{priority, Journal};
use super::metrics::{Metrics, Trigger};
use super::metrics_http::MetricsServer;
use super::notify::Notifier;
use super::{earliest, Stamper};
use crate::sense::kernel_oom::{self, KernelOomDetector};

use crate::host::pods::PodLogs;

/// How often the node_exporter textfile is rewritten.
pub const TEXTFILE_INTERVAL: Duration = Duration::from_secs(15);

/// What the daemon passes besides its config.
#[derive(Debug, Clone, Default)]
pub struct TellerOptions {
    /// The build's version (`oomguard_build_info`).
    pub version: String,
    /// The kernel-OOM detector's sources; `None`: no detector.
    pub detector: Option<kernel_oom::Options>,
    /// Journal socket override (tests); `None`: journald's, when `events.journal` is on.
    pub journal_socket: Option<PathBuf>,
    /// The embedder prints its own line for every event it records (`oomguard run`): without
    /// journald, events are not echoed to stderr a second time. Hook results still are.
    pub own_event_lines: bool,
}

/// All the "tell" parts. See the module docs.
#[derive(Debug)]
pub struct Teller {
    pub stamper: Stamper,
    pub log: Option<EventLog>,
    pub journal: Journal,
    pub hooks: Hooks,
    pub notifier: Notifier,
    pub metrics: Metrics,
    pub server: Option<MetricsServer>,
    pub detector: Option<KernelOomDetector>,
    textfile: Option<PathBuf>,
    next_textfile: Instant,
    scratch: Vec<OomEvent>,
    own_event_lines: bool,
    pod_logs: PodLogs,
    /// The daemon's flight recorder (`oomguard_core::recorder`), which it samples; every kill
    /// event and every kernel event recorded here carries its series. `None`: off, or not the
    /// daemon (`oomguard run`).
    pub recorder: Option<oomguard_core::recorder::Recorder>,
}

impl Teller {
    /// Builds every part from the config. Fails only when the metrics address cannot be bound
    /// (a start-up error the operator must see).
    pub fn new(cfg: &Config, opts: TellerOptions, now: Instant) -> Result<Self, String> {
        let server = if cfg.metrics.listen.is_empty() {
            None
        } else {
            Some(
                MetricsServer::bind(&cfg.metrics.listen)
                    .map_err(|e| format!("metrics.listen {}: {e}", cfg.metrics.listen))?,
            )
        };
        let journal = match (&opts.journal_socket, cfg.events.journal) {
            (Some(p), _) => Journal::open(p),
            (None, true) => Journal::open_default(),
            // Journal off: stderr only (a path that cannot exist).
            (None, false) => Journal::open(std::path::Path::new("/nonexistent/journal")),
        };
        let labels: Vec<String> = cfg.cgroups.iter().map(|c| c.path.clone()).collect();
        Ok(Teller {
            stamper: Stamper::new(),
            log: EventLog::new(&cfg.events),
            journal,
            hooks: Hooks::new(&cfg.hooks),
            notifier: Notifier::new(cfg.notify),
            metrics: Metrics::new(&opts.version, &labels),
            server,
            detector: opts.detector.map(|o| KernelOomDetector::new(o, now)),
            textfile: (!cfg.metrics.textfile.is_empty())
                .then(|| PathBuf::from(&cfg.metrics.textfile)),
            next_textfile: now,
            scratch: Vec::new(),
            own_event_lines: opts.own_event_lines,
            pod_logs: PodLogs::new(&cfg.events.kubelet_logs),
            recorder: None,
        })
    }

    /// The fds to add to the daemon's poll set, with their interest.
    pub fn poll_fds<'a>(&'a self, out: &mut Vec<(BorrowedFd<'a>, PollFlags)>) {
        if let Some(d) = &self.detector {
            if let Some(fd) = d.fd() {
                out.push((fd, PollFlags::IN));
            }
        }
        if let Some(s) = &self.server {
            s.poll_fds(out);
        }
        for fd in self.hooks.pidfds() {
            out.push((fd, PollFlags::IN));
        }
    }

    /// [`Teller::poll_fds`] as raw `pollfd`s appended to a vector the caller reuses, so the
    /// daemon's loop does not allocate.
    pub fn poll_raw(&self, out: &mut Vec<libc::pollfd>) {
        use std::os::fd::AsRawFd;
        let mut push = |fd: BorrowedFd<'_>, f: PollFlags| {
            out.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: f.bits() as i16,
                revents: 0,
            });
        };
        if let Some(d) = &self.detector {
            if let Some(fd) = d.fd() {
                push(fd, PollFlags::IN);
            }
        }
        if let Some(s) = &self.server {
            s.for_each_poll_fd(&mut push);
        }
        for fd in self.hooks.pidfds() {
            push(fd, PollFlags::IN);
        }
    }

    /// When [`Teller::on_ready`] must run even if no fd is ready.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut d = self.detector.as_ref().map(|d| d.next_deadline(now));
        d = earliest(d, self.server.as_ref().and_then(|s| s.next_deadline()));
        d = earliest(d, self.hooks.next_deadline(now));
        d = earliest(d, self.notifier.next_deadline(now));
        if self.textfile.is_some() {
            d = earliest(d, Some(self.next_textfile));
        }
        d
    }

    /// Does whatever is due: reads the kernel log, answers scrapes, reaps hooks and
    /// notifications, writes the textfile. Kernel OOM events found are recorded (and returned
    /// in `out` for the daemon, which may want to react, e.g. re-plan after a kernel kill).
    pub fn on_ready(&mut self, now: Instant, out: &mut Vec<OomEvent>) {
        self.on_ready_kmsg(now, true, out);
    }

    /// [`Teller::on_ready`] after a `poll` over the fds [`Teller::poll_raw`] added: `/dev/kmsg`
    /// is read only when the poll said it is readable (the idle daemon then wakes without a
    /// `read` that answers EAGAIN); the detector's deadlines are served either way.
    pub fn on_polled(&mut self, now: Instant, polled: &[libc::pollfd], out: &mut Vec<OomEvent>) {
        let kmsg = self
            .detector
            .as_ref()
            .and_then(|d| d.fd())
            .map(|fd| fd.as_raw_fd());
        let readable = kmsg.is_some_and(|fd| polled.iter().any(|p| p.fd == fd && p.revents != 0));
        self.on_ready_kmsg(now, readable, out);
    }

    fn on_ready_kmsg(&mut self, now: Instant, kmsg_readable: bool, out: &mut Vec<OomEvent>) {
        let mut evs = std::mem::take(&mut self.scratch);
        if let Some(d) = &mut self.detector {
            if kmsg_readable {
                d.on_readable(now, &mut evs);
            } else {
                d.on_tick(now, &mut evs);
            }
            let s = d.stats();
            self.metrics.kmsg_records_lost_total = s.kmsg_lost_records;
        }
        for ev in evs.drain(..) {
            let ev = self.record(ev, now);
            out.push(ev);
        }
        self.scratch = evs;
        let mut results = Vec::new();
        self.hooks.on_tick(now, &mut results);
        for r in &results {
            let prio = if r.finished.outcome.is_success() {
                priority::INFO
            } else {
                priority::WARNING
            };
            self.journal.log(prio, &r.log_line());
        }
        let s = self.hooks.stats();
        self.metrics.set_hook_counts(s.runs, s.failures);
        let mut done = Vec::new();
        self.notifier.on_tick(now, &mut done);
        for f in done.iter().filter(|f| !f.outcome.is_success()) {
            self.journal.log(
                priority::WARNING,
                &format!("{}: {:?} {}", f.label, f.outcome, f.output.trim_end()),
            );
        }
        if let Some(s) = &mut self.server {
            s.on_ready(now, &mut self.metrics);
        }
        if let Some(p) = &self.textfile {
            if now >= self.next_textfile {
                self.next_textfile = now + TEXTFILE_INTERVAL;
                if let Err(e) = self.metrics.write_textfile(p) {
                    self.journal
                        .log(priority::WARNING, &format!("textfile {}: {e}", p.display()));
                }
            }
        }
    }

    /// Fires the `pre_kill` hooks for the kill the daemon is about to make; returns the
    /// instant the kill may be held until (at most `hooks::PRE_KILL_HEAD_START_MAX` away),
    /// `None` when no hook runs. The daemon signals at that instant or as soon as
    /// `self.hooks.pre_kill_running()` is false, whichever is first.
    pub fn pre_kill(&mut self, ev: &OomEvent, now: Instant) -> Option<Instant> {
        if !self.hooks.has(HookEvent::PreKill) {
            return None;
        }
        self.hooks.fire(HookEvent::PreKill, ev, now);
        self.hooks.pre_kill_hold_until(now)
    }

    /// Fills the event's `workload` from its cgroup path and names it from the kubelet's
    /// log directories (when not done yet). [`Teller::record`] calls it for every event; the
    /// daemon's kill path derives only the pure part before `pre_kill` (`OomEvent::identify`),
    /// so no directory is read between the decision and the signal.
    pub fn identify(&self, ev: &mut OomEvent) {
        self.pod_logs.fill_event(ev);
    }

    /// Records an event everywhere (see the module docs) and returns it stamped.
    pub fn record(&mut self, mut ev: OomEvent, now: Instant) -> OomEvent {
        self.identify(&mut ev);
        // The minute before: on kills (the daemon's kill path attaches its own, with the growers
        // of its scan) and on whatever the kernel did. Built here, off the steady path.
        let wants = ev.kind == EventKind::Kill || ev.source == Source::Kernel;
        if let Some(r) = self.recorder.as_ref().filter(|r| wants && !r.is_empty()) {
            if ev.recorder.is_none() {
                ev.recorder = Some(r.recording(now, None));
            }
        }
        self.stamper.stamp(&mut ev);
        if ev.kind == EventKind::Kill {
            if let Some(c) = ev.workload.as_ref().and_then(|w| {
                w.container_name
                    .as_deref()
                    .map(|c| (w.pod_namespace.as_deref().unwrap_or(""), c))
            }) {
                let dry = ev.action.as_ref().is_some_and(|a| a.dry_run);
                if !dry {
                    self.metrics
                        .inc_workload_kill(c.0, c.1, ev.source == Source::Oomguard);
                }
            }
        }
        if let Some(log) = &mut self.log {
            log.write(&ev);
            if let Some(e) = log.take_error() {
                self.journal
                    .log(priority::WARNING, &format!("event log: {e}"));
            }
            let s = log.stats();
            self.metrics.events_logged_total = s.written;
            self.metrics.event_log_errors_total = s.errors;
        }
        if self.journal.is_journal() || !self.own_event_lines {
            self.journal.event(&ev);
        }
        let unix = ev.unix_time_s.unwrap_or(0.0);
        let hook = match (ev.source, ev.kind) {
            (Source::Kernel, EventKind::Kill) => {
                let unreported = ev.detection.as_ref().is_some_and(|d| d.via == "counter");
                let n = ev
                    .detection
                    .as_ref()
                    .and_then(|d| d.count)
                    .unwrap_or(1)
                    .max(1);
                for _ in 0..n {
                    self.metrics
                        .inc_kernel_kill(ev.constraint.as_deref(), unreported, unix);
                }
                Some(HookEvent::KernelOom)
            }
            (Source::Kernel, _) => Some(HookEvent::KernelOom),
            // `oomguard run`: its command died of something else than an OOM kill.
            (Source::Oomguard, EventKind::Exit) => Some(HookEvent::Exit),
            // A warning ahead of time: no decision, no kill counted.
            (Source::Oomguard, EventKind::Forecast) => Some(HookEvent::Forecast),
            (Source::Oomguard, EventKind::Warning) => {
                if let Some(t) = trigger_of(&ev) {
                    self.metrics.inc_decision(super::metrics::Decision::Warn, t);
                }
                Some(HookEvent::Warn)
            }
            (Source::Oomguard, _) => {
                let t = trigger_of(&ev).unwrap_or(Trigger::MemAvailable);
                let sigkill = ev
                    .action
                    .as_ref()
                    .is_some_and(|a| a.signal == Some(Signal::Kill));
                let dry = ev.action.as_ref().is_some_and(|a| a.dry_run);
                let d = if sigkill {
                    super::metrics::Decision::Sigkill
                } else {
                    super::metrics::Decision::Sigterm
                };
                self.metrics.inc_decision(d, t);
                if !dry {
                    self.metrics.inc_kill(t, sigkill, unix);
                }
                Some(HookEvent::PostKill)
            }
        };
        if let Some(h) = hook {
            self.hooks.fire(h, &ev, now);
        }
        let notified = matches!(ev.kind, EventKind::Kill | EventKind::Forecast);
        if notified && self.notifier.enabled() {
            self.metrics.notifications_total += self.notifier.notify(&ev, now) as u64;
        }
        ev
    }

    /// Hooks and notification commands still running.
    pub fn children_running(&self) -> usize {
        self.hooks.running() + self.notifier.running()
    }

    /// Treats every running hook and notification as past its timeout: the next
    /// [`Teller::on_ready`] kills and reaps them (with their results logged as timeouts). For
    /// an embedder about to exit that gave them the time it could.
    pub fn expire_children(&mut self, now: Instant) {
        self.hooks.expire_all(now);
        self.notifier.expire_all(now);
    }

    /// Updates the host gauges from what the daemon read this tick.
    pub fn set_host(
        &mut self,
        mem: &oomguard_core::host::system::MemInfo,
        psi: Option<&oomguard_core::host::system::Pressure>,
    ) {
        let f = |v: Option<u64>| v.map(|b| b as f64);
        self.metrics.memory_total_bytes = f(mem.mem_total_bytes);
        self.metrics.memory_available_bytes = f(mem.mem_available_bytes);
        self.metrics.swap_total_bytes = f(mem.swap_total_bytes);
        self.metrics.swap_free_bytes = f(mem.swap_free_bytes);
        if let Some(p) = psi {
            self.metrics.psi_some_avg10_ratio = Some(p.some.avg10_pct / 100.0);
            self.metrics.psi_full_avg10_ratio = p.full.map(|l| l.avg10_pct / 100.0);
        }
    }

    /// Updates a watched cgroup's gauges (`label` as configured).
    pub fn set_cgroup(&mut self, label: &str, usage_bytes: Option<u64>, limit_bytes: Option<u64>) {
        if let Some(c) = self.metrics.cgroups.iter_mut().find(|c| c.label == label) {
            c.usage_bytes = usage_bytes.map(|b| b as f64);
            c.limit_bytes = limit_bytes.map(|b| b as f64);
        }
    }

    /// Updates a scope's time-to-OOM gauge (`None`: the machine; else a watched cgroup's
    /// label as configured). Allocates nothing.
    pub fn set_time_to_oom(&mut self, cgroup: Option<&str>, seconds: f64) {
        match cgroup {
            None => self.metrics.machine_time_to_oom_seconds = Some(seconds),
            Some(label) => {
                if let Some(c) = self.metrics.cgroups.iter_mut().find(|c| c.label == label) {
                    c.time_to_oom_seconds = Some(seconds);
                }
            }
        }
    }

    /// Counts one loop iteration and the time it worked (not waiting in poll).
    pub fn count_iteration(&mut self, busy: Duration) {
        self.metrics.loop_iterations_total += 1;
        self.metrics.loop_busy_seconds_total += busy.as_secs_f64();
    }
}

fn trigger_of(ev: &OomEvent) -> Option<Trigger> {
    ev.trigger.as_ref().map(|t| t.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::config::HookConfig;
    use oomguard_core::event::{Action, Victim};
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;

    fn hook_script(dir: &std::path::Path, name: &str) -> String {
        let p = dir.join(name);
        let out = dir.join(format!("{name}.out"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nprintf '%s %s\\n' \"$OOMGUARD_HOOK\" \"$OOMGUARD_EVENT_ID\" >> '{}'\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    /// One oomguard kill and one kernel kill through the Teller: each reaches the log, the
    /// journal, the metrics (served over HTTP) and its hook, with one id everywhere.
    #[test]
    fn record_reaches_every_sink() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("journal");
        let journald = UnixDatagram::bind(&sock).unwrap();
        let script = hook_script(dir.path(), "hook");
        let cfg = Config {
            events: oomguard_core::config::EventsConfig {
                log: dir.path().join("events.jsonl").display().to_string(),
                ..Default::default()
            },
            metrics: oomguard_core::config::MetricsConfig {
                listen: "127.0.0.1:0".to_owned(),
                textfile: dir.path().join("oomguard.prom").display().to_string(),
            },
            hooks: vec![
                HookConfig {
                    on: HookEvent::PostKill,
                    command: vec![script.clone()],
                    timeout: Duration::from_secs(5),
                },
                HookConfig {
                    on: HookEvent::KernelOom,
                    command: vec![script],
                    timeout: Duration::from_secs(5),
                },
            ],
            ..Config::default()
        };
        let now = Instant::now();
        let mut t = Teller::new(
            &cfg,
            TellerOptions {
                version: "9.9.9".to_owned(),
                detector: None,
                journal_socket: Some(sock.clone()),
                own_event_lines: false,
            },
            now,
        )
        .unwrap();
        let mut kill = OomEvent::new(EventKind::Kill);
        kill.source = Source::Oomguard;
        kill.trigger = Some(oomguard_core::event::TriggerInfo {
            reason: Trigger::PsiFull,
            ..Default::default()
        });
        kill.victim = Some(Victim {
            pid: 12,
            name: "hog".to_owned(),
            ..Victim::default()
        });
        kill.action = Some(Action {
            signal: Some(Signal::Term),
            ..Action::default()
        });
        let kill = t.record(kill, now);
        let mut kernel = OomEvent::new(EventKind::Kill);
        kernel.pid = Some(13);
        kernel.constraint = Some("CONSTRAINT_NONE".to_owned());
        let kernel = t.record(kernel, now);
        let (id1, id2) = (kill.id.clone().unwrap(), kernel.id.clone().unwrap());
        assert_ne!(id1, id2);
        assert!(kill.unix_time_s.is_some() && kill.time.is_some());

        // Log.
        let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 2);
        assert!(log.contains(&format!("\"id\":\"{id1}\"")));
        // Journal.
        let mut b = vec![0u8; 65536];
        let n = journald.recv(&mut b).unwrap();
        let f = super::super::journal::parse_datagram(&b[..n]).unwrap();
        assert!(f
            .iter()
            .any(|(k, v)| k == "OOMGUARD_EVENT_ID" && v == id1.as_bytes()));
        // Hooks (reaped by on_ready).
        let start = Instant::now();
        while t.hooks.running() > 0 && start.elapsed() < Duration::from_secs(5) {
            t.on_ready(Instant::now(), &mut Vec::new());
            std::thread::sleep(Duration::from_millis(5));
        }
        t.on_ready(Instant::now(), &mut Vec::new());
        let mut hooks: Vec<String> = std::fs::read_to_string(dir.path().join("hook.out"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        hooks.sort();
        assert_eq!(
            hooks,
            vec![format!("kernel_oom {id2}"), format!("post_kill {id1}")]
        );
        // Metrics, scraped over HTTP from the Teller's own server.
        let addr = t.server.as_ref().unwrap().local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        });
        let start = Instant::now();
        while !client.is_finished() && start.elapsed() < Duration::from_secs(5) {
            t.on_ready(Instant::now(), &mut Vec::new());
            std::thread::sleep(Duration::from_millis(2));
        }
        let text = client.join().unwrap();
        for want in [
            "oomguard_build_info{version=\"9.9.9\"} 1",
            "oomguard_kills_total{signal=\"SIGTERM\",trigger=\"psi_full\"} 1",
            "oomguard_decisions_total{action=\"sigterm\",trigger=\"psi_full\"} 1",
            "oomguard_kernel_oom_kills_total{constraint=\"none\"} 1",
            "oomguard_hook_runs_total{event=\"post_kill\"} 1",
            "oomguard_hook_failures_total{event=\"post_kill\"} 0",
            "oomguard_events_logged_total 2",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}:\n{text}");
        }
        // Textfile written on the first on_ready.
        let prom = std::fs::read_to_string(dir.path().join("oomguard.prom")).unwrap();
        assert!(prom.contains("oomguard_build_info"));
    }

    /// With the daemon's flight recorder in the Teller, a kernel event recorded there carries
    /// the series (and its journal entry the summary and the fields), a forecast does not.
    #[test]
    fn kernel_event_carries_the_recorder_and_a_forecast_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("journal");
        let journald = UnixDatagram::bind(&sock).unwrap();
        let cfg = Config {
            events: oomguard_core::config::EventsConfig {
                log: dir.path().join("events.jsonl").display().to_string(),
                ..Default::default()
            },
            ..Config::default()
        };
        let now = Instant::now();
        let mut t = Teller::new(
            &cfg,
            TellerOptions {
                journal_socket: Some(sock.clone()),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        let mut r = oomguard_core::recorder::Recorder::new(&cfg.recorder, 0).unwrap();
        r.begin(now, 900 << 20, 0, Some(1.0), None);
        r.end();
        r.begin(now + Duration::from_secs(1), 100 << 20, 0, Some(30.0), None);
        r.end();
        t.recorder = Some(r);
        let mut kernel = OomEvent::new(EventKind::Kill);
        kernel.pid = Some(13);
        let ev = t.record(kernel, now + Duration::from_secs(1));
        let rec = ev.recorder.as_ref().unwrap();
        assert_eq!(rec.t_s, vec![-1.0, 0.0]);
        assert_eq!(rec.mem_available_bytes, vec![900 << 20, 100 << 20]);
        let mut b = vec![0u8; 65536];
        let n = journald.recv(&mut b).unwrap();
        let f = super::super::journal::parse_datagram(&b[..n]).unwrap();
        let get = |k: &str| {
            f.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(
            get("OOMGUARD_RECORDER").as_deref(),
            Some("last 1 s: MemAvailable 900 MiB → 100 MiB, PSI some 1.0 → 30 %")
        );
        assert_eq!(get("OOMGUARD_RECORDER_T_S").as_deref(), Some("-1 0"));
        assert!(get("MESSAGE").unwrap().contains("Recorder: last 1 s"));
        let mut fc = OomEvent::new(EventKind::Forecast);
        fc.source = Source::Oomguard;
        assert!(t.record(fc, now).recorder.is_none());
    }

    /// A kernel kill in a Kubernetes container: the Teller derives the workload from the
    /// cgroup path, names it from the kubelet's log directories (`events.kubelet_logs`), and the
    /// journal fields, the JSON log and the bounded metric carry it.
    #[test]
    fn workload_is_named_and_reaches_journal_log_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("journal");
        let journald = UnixDatagram::bind(&sock).unwrap();
        let uid = "0330b2c1-a15b-4cdd-b5e5-72d4a90bee82";
        let id = "b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a";
        let kl = dir.path().join("kubelet");
        std::fs::create_dir_all(kl.join(format!("pods/shop_web-7d9f_{uid}/web"))).unwrap();
        let cfg = Config {
            events: oomguard_core::config::EventsConfig {
                log: dir.path().join("events.jsonl").display().to_string(),
                kubelet_logs: kl.display().to_string(),
                ..Default::default()
            },
            ..Config::default()
        };
        let now = Instant::now();
        let mut t = Teller::new(
            &cfg,
            TellerOptions {
                journal_socket: Some(sock.clone()),
                ..TellerOptions::default()
            },
            now,
        )
        .unwrap();
        let mut kernel = OomEvent::new(EventKind::Kill);
        kernel.pid = Some(13);
        kernel.task_memcg = Some(format!("/kubepods/burstable/pod{uid}/{id}"));
        let ev = t.record(kernel, now);
        let w = ev.workload.clone().unwrap();
        assert_eq!(
            w.describe().unwrap(),
            format!("container web of pod shop/web-7d9f (uid {uid}), QoS burstable")
        );
        let mut b = vec![0u8; 65536];
        let n = journald.recv(&mut b).unwrap();
        let f = super::super::journal::parse_datagram(&b[..n]).unwrap();
        let get = |k: &str| {
            f.iter()
                .find(|(fk, _)| fk == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("OOMGUARD_POD_NAMESPACE").as_deref(), Some("shop"));
        assert_eq!(get("OOMGUARD_POD_NAME").as_deref(), Some("web-7d9f"));
        assert_eq!(get("OOMGUARD_POD_UID").as_deref(), Some(uid));
        assert_eq!(get("OOMGUARD_CONTAINER_NAME").as_deref(), Some("web"));
        assert_eq!(get("OOMGUARD_CONTAINER_ID").as_deref(), Some(id));
        assert_eq!(get("OOMGUARD_POD_QOS").as_deref(), Some("burstable"));
        assert_eq!(get("OOMGUARD_CONTAINER_RUNTIME"), None);
        assert!(get("MESSAGE")
            .unwrap()
            .contains("Workload: container web of pod shop/web-7d9f"));
        let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(v["workload"]["pod_name"], "web-7d9f");
        assert_eq!(v["workload"]["container_name"], "web");
        let text = t.metrics.render().to_owned();
        let want =
            "oomguard_workload_oom_kills_total{namespace=\"shop\",container=\"web\",source=\"kernel\"} 1";
        assert!(text.lines().any(|l| l == want), "missing {want}:\n{text}");
        // Neither the pid nor the pod uid nor the container id is ever a label.
        assert!(!text.contains(uid) && !text.contains(id));
    }

    /// `oomguard run`'s exit event fires the `exit` hook and is not counted as a kill; with
    /// `own_event_lines` and no journald it is not echoed to stderr (run printed its own line).
    #[test]
    fn run_exit_event_fires_the_exit_hook_and_is_not_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let script = hook_script(dir.path(), "hook");
        let cfg = Config {
            events: oomguard_core::config::EventsConfig {
                log: String::new(),
                journal: false,
                ..Default::default()
            },
            hooks: vec![HookConfig {
                on: HookEvent::Exit,
                command: vec![script],
                timeout: Duration::from_secs(5),
            }],
            ..Config::default()
        };
        let now = Instant::now();
        let mut t = Teller::new(
            &cfg,
            TellerOptions {
                own_event_lines: true,
                journal_socket: Some(dir.path().join("no-journald")),
                ..TellerOptions::default()
            },
            now,
        )
        .unwrap();
        let mut ev = OomEvent::new(EventKind::Exit);
        ev.source = Source::Oomguard;
        let ev = t.record(ev, now);
        // Started, not over yet: a run is counted with its outcome.
        assert_eq!(t.children_running(), 1);
        assert_eq!(t.hooks.stats().runs(HookEvent::Exit), 0);
        assert_eq!(
            t.metrics.kills_total,
            [[0; crate::tell::metrics::TRIGGERS.len()]; 2]
        );
        assert_eq!(t.journal.stats().stderr_lines, 0, "not echoed");
        let start = Instant::now();
        while t.children_running() > 0 && start.elapsed() < Duration::from_secs(5) {
            t.on_ready(Instant::now(), &mut Vec::new());
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = std::fs::read_to_string(dir.path().join("hook.out")).unwrap();
        assert_eq!(out.trim(), format!("exit {}", ev.id.unwrap()));
        assert_eq!(t.hooks.stats().runs(HookEvent::Exit), 1);
        assert_eq!(t.hooks.stats().failures(HookEvent::Exit), 0);
    }
}
