//! Telling people and fleets what happened: the daemon's sinks. (The kernel-OOM detector that
//! feeds them is a sensor: `crate::sense::kernel_oom`; `oomguard events` is `crate::events`.)
//!
//! Every part here is a component the daemon's single-threaded poll loop drives without threads
//! and without blocking (`docs/tell.md` shows the loop that drives them):
//!
//! - [`eventlog::EventLog`] (JSON lines, rotated) and [`journal::Journal`] (native journald
//!   protocol, else stderr): one write per event, errors counted, never fatal.
//! - [`hooks::Hooks`] and [`notify::Notifier`]: child processes started with an argv (no shell),
//!   reaped and timed out by [`child::Runner`] from `on_tick`; `fire()` returns at once.
//! - [`metrics::Metrics`] (pre-registered series, text format) and [`metrics_http::MetricsServer`]
//!   (an HTTP/1.0 responder inside the loop: non-blocking, deadlines and size caps per
//!   connection) plus the node_exporter textfile.
//!
//! What an event *is* lives in `oomguard_core::event`; this module only moves it around.

pub mod child;
pub mod eventlog;
pub mod fields;
pub mod hooks;
pub mod hub;
pub mod journal;
pub mod metrics;
pub mod metrics_http;
pub mod notify;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use oomguard_core::event::OomEvent;

/// Gives each event a unique id and the daemon's wall-clock stamp and host name.
#[derive(Debug)]
pub struct Stamper {
    prefix: String,
    seq: u64,
    host: Option<String>,
}

impl Stamper {
    /// Ids are `<daemon start in ms, hex>-<sequence>`: unique across restarts of the daemon on
    /// one host, short enough for a notification.
    pub fn new() -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        Stamper {
            prefix: format!("{start_ms:x}"),
            seq: 0,
            host,
        }
    }

    /// Sets `id`, `unix_time_s`, `time` (RFC 3339, UTC) and `host` where unset.
    pub fn stamp(&mut self, ev: &mut OomEvent) {
        self.seq += 1;
        if ev.id.is_none() {
            ev.id = Some(format!("{}-{}", self.prefix, self.seq));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if ev.unix_time_s.is_none() {
            ev.unix_time_s = Some(now.as_secs_f64());
        }
        if ev.time.is_none() {
            ev.time = Some(oomguard_core::time::format_utc_usec(now.as_micros() as u64));
        }
        if ev.host.is_none() {
            ev.host = self.host.clone();
        }
    }
}

impl Default for Stamper {
    fn default() -> Self {
        Self::new()
    }
}

/// The earliest of several optional deadlines (for `next_deadline()` of composite parts).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
