//! The systemd journal, spoken natively: one datagram per record on
//! `/run/systemd/journal/socket` with `KEY=value` fields (journald's native protocol,
//! `systemd.journal-fields(7)`), so every event lands with structured fields a fleet can
//! filter on (`journalctl MESSAGE_ID=... OOMGUARD_COMM=java`) and node-problem-detector can
//! match. When the socket is absent (no journald, as on this project's CI), records go to
//! stderr as one line each.
//!
//! Non-blocking: a full socket buffer (journald stalled) drops the record and counts it; the
//! JSON log and metrics still have it. Records are kept under [`MAX_RECORD`] (the task dump is
//! never sent here) so a datagram never needs the memfd fallback.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use oomguard_core::event::{EventKind, OomEvent, Source};

use super::fields;

/// journald's socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// Largest record sent (well below the default datagram limit of about 200 KiB).
pub const MAX_RECORD: usize = 16 * 1024;

/// `MESSAGE_ID`s, one per event kind, fixed forever (`journalctl MESSAGE_ID=...`).
pub mod message_id {
    /// The kernel's OOM killer killed a process.
    pub const KERNEL_OOM_KILL: &str = "419d7992537c42f5b3db8a1bd18da69f";
    /// A kernel OOM that killed nothing (no killable process, panic, or an incomplete report).
    pub const KERNEL_OOM_OTHER: &str = "15085d1315d94b9198072de4788f91e2";
    /// oomguard killed a process.
    pub const OOMGUARD_KILL: &str = "c2ed21cdfdd0466fa4bf89e28c7fab3f";
    /// oomguard warned (a threshold crossed, nothing killed).
    pub const OOMGUARD_WARN: &str = "409019125f7442399a7fdd8e77e51406";
    /// Anything else the daemon logs (hook results, errors).
    pub const DAEMON_LOG: &str = "aa9658201a9b4eb5a0084030b1602167";
}

/// The fixed `MESSAGE_ID` of an event.
pub fn message_id_of(ev: &OomEvent) -> &'static str {
    match (ev.source, ev.kind) {
        (Source::Kernel, EventKind::Kill) => message_id::KERNEL_OOM_KILL,
        (Source::Kernel, _) => message_id::KERNEL_OOM_OTHER,
        (Source::Oomguard, EventKind::Warning | EventKind::Forecast) => message_id::OOMGUARD_WARN,
        (Source::Oomguard, _) => message_id::OOMGUARD_KILL,
    }
}

/// Syslog priorities.
pub mod priority {
    pub const ERR: u8 = 3;
    pub const WARNING: u8 = 4;
    pub const NOTICE: u8 = 5;
    pub const INFO: u8 = 6;
}

/// Counters of the journal sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub sent: u64,
    /// Dropped because the socket was full or gone.
    pub dropped: u64,
    pub stderr_lines: u64,
}

/// Where records go.
#[derive(Debug)]
pub struct Journal {
    sock: Option<(UnixDatagram, PathBuf)>,
    buf: Vec<u8>,
    stats: JournalStats,
    identifier: String,
}

/// Appends one field in the native protocol: `KEY=value\n`, or for values with a newline
/// `KEY\n<u64 LE length><value>\n`.
pub fn put_field(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// Parses a native-protocol datagram back into fields (for tests and tools).
pub fn parse_datagram(mut d: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let nl = d.iter().position(|b| *b == b'\n')?;
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                line[eq + 1..].to_vec(),
            ));
            d = &d[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &d[nl + 1..];
            let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
            let value = rest.get(8..8 + len)?.to_vec();
            if rest.get(8 + len) != Some(&b'\n') {
                return None;
            }
            out.push((key, value));
            d = &rest[9 + len..];
        }
    }
    Some(out)
}

impl Journal {
    /// journald when its socket exists, else stderr.
    pub fn open_default() -> Self {
        Self::open(Path::new(JOURNAL_SOCKET))
    }

    /// The journal at `socket` (tests bind their own), else stderr.
    pub fn open(socket: &Path) -> Self {
        let sock = UnixDatagram::unbound().ok().and_then(|s| {
            s.set_nonblocking(true).ok()?;
            s.connect(socket).ok()?;
            Some((s, socket.to_path_buf()))
        });
        Journal {
            sock,
            buf: Vec::with_capacity(MAX_RECORD),
            stats: JournalStats::default(),
            identifier: "oomguard".to_owned(),
        }
    }

    /// True when records go to journald (not stderr).
    pub fn is_journal(&self) -> bool {
        self.sock.is_some()
    }

    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// Records one event.
    pub fn event(&mut self, ev: &OomEvent) {
        let (_, body) = fields::summary(ev);
        let prio = match (ev.source, ev.kind) {
            (Source::Kernel, _) => priority::ERR,
            (Source::Oomguard, EventKind::Warning | EventKind::Forecast) => priority::NOTICE,
            (Source::Oomguard, _) => priority::WARNING,
        };
        let pairs = fields::pairs(ev);
        self.send(prio, message_id_of(ev), &body, &pairs);
    }

    /// A plain log line of the daemon's (hook results, errors).
    pub fn log(&mut self, prio: u8, message: &str) {
        self.send(prio, message_id::DAEMON_LOG, message, &[]);
    }

    fn send(&mut self, prio: u8, mid: &str, message: &str, pairs: &[(&'static str, String)]) {
        let Some((sock, _)) = &self.sock else {
            self.stats.stderr_lines += 1;
            let line = fields::printable(message);
            let _ = writeln!(std::io::stderr(), "oomguard: {line}");
            return;
        };
        let buf = &mut self.buf;
        buf.clear();
        put_field(buf, "MESSAGE", message.as_bytes());
        put_field(buf, "MESSAGE_ID", mid.as_bytes());
        put_field(buf, "PRIORITY", prio.to_string().as_bytes());
        put_field(buf, "SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        for (k, v) in pairs {
            // Keep the record bounded: a long cmdline is cut, never the fixed fields.
            let room = MAX_RECORD.saturating_sub(buf.len() + k.len() + 20);
            if room == 0 {
                break;
            }
            let mut v = v.as_bytes();
            if v.len() > room {
                v = &v[..room];
            }
            put_field(buf, &format!("OOMGUARD_{k}"), v);
        }
        match sock.send(buf) {
            Ok(_) => self.stats.sent += 1,
            // journald restarted (its socket was recreated): reconnect once and retry.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED) | Some(libc::ENOTCONN)
                ) =>
            {
                let again = self.sock.as_ref().and_then(|(s, p)| {
                    s.connect(p).ok()?;
                    s.send(&self.buf).ok()
                });
                match again {
                    Some(_) => self.stats.sent += 1,
                    None => self.stats.dropped += 1,
                }
            }
            Err(_) => self.stats.dropped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::event::Victim;

    fn recv_fields(s: &UnixDatagram) -> Vec<(String, Vec<u8>)> {
        let mut b = vec![0u8; 65536];
        let n = s.recv(&mut b).unwrap();
        parse_datagram(&b[..n]).unwrap()
    }

    fn get<'a>(f: &'a [(String, Vec<u8>)], k: &str) -> Option<&'a [u8]> {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn native_protocol_fields_arrive_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::open(&path);
        assert!(j.is_journal());

        let mut ev = OomEvent::new(EventKind::Kill);
        ev.source = Source::Oomguard;
        ev.id = Some("abc-1".to_owned());
        ev.victim = Some(Victim {
            pid: 4242,
            name: "evil\nname $(x)".to_owned(),
            uid: Some(1000),
            cgroup: Some("/user.slice".to_owned()),
            rss_bytes: Some(300 << 20),
            ..Victim::default()
        });
        j.event(&ev);
        let f = recv_fields(&server);
        assert_eq!(
            get(&f, "MESSAGE_ID"),
            Some(message_id::OOMGUARD_KILL.as_bytes())
        );
        assert_eq!(get(&f, "PRIORITY"), Some(&b"4"[..]));
        assert_eq!(get(&f, "SYSLOG_IDENTIFIER"), Some(&b"oomguard"[..]));
        assert_eq!(get(&f, "OOMGUARD_PID"), Some(&b"4242"[..]));
        // The newline survives, in the binary-safe form.
        assert_eq!(get(&f, "OOMGUARD_COMM"), Some(&b"evil\nname $(x)"[..]));
        assert_eq!(get(&f, "OOMGUARD_UID"), Some(&b"1000"[..]));
        assert_eq!(get(&f, "OOMGUARD_CGROUP"), Some(&b"/user.slice"[..]));
        assert_eq!(get(&f, "OOMGUARD_RSS_BYTES"), Some(&b"314572800"[..]));
        assert_eq!(get(&f, "OOMGUARD_EVENT_ID"), Some(&b"abc-1"[..]));
        assert_eq!(get(&f, "OOMGUARD_SOURCE"), Some(&b"oomguard"[..]));
        let msg = String::from_utf8(get(&f, "MESSAGE").unwrap().to_vec()).unwrap();
        assert!(
            msg.contains("oomguard killed evil?name $(x) (pid 4242)"),
            "{msg}"
        );

        let mut k = OomEvent::new(EventKind::Kill);
        k.pid = Some(7);
        k.comm = Some("java".to_owned());
        k.constraint = Some("CONSTRAINT_MEMCG".to_owned());
        j.event(&k);
        let f = recv_fields(&server);
        assert_eq!(
            get(&f, "MESSAGE_ID"),
            Some(message_id::KERNEL_OOM_KILL.as_bytes())
        );
        assert_eq!(get(&f, "PRIORITY"), Some(&b"3"[..]));
        assert_eq!(
            get(&f, "OOMGUARD_CONSTRAINT"),
            Some(&b"CONSTRAINT_MEMCG"[..])
        );
        assert_eq!(get(&f, "OOMGUARD_TRIGGER"), Some(&b"kernel"[..]));
        assert_eq!(get(&f, "OOMGUARD_STEP"), None);
        assert_eq!(j.stats().sent, 2);

        // A step of a thrash chain carries its action, place and outcome as fields.
        let mut st = OomEvent::new(EventKind::Warning);
        st.source = Source::Oomguard;
        st.step = Some(oomguard_core::restrain::StepInfo {
            action: "throttle",
            index: 2,
            of: 3,
            outcome: "refused",
            detail: Some("cgroup v1 has no memory.high".to_owned()),
        });
        j.event(&st);
        let f = recv_fields(&server);
        assert_eq!(get(&f, "OOMGUARD_STEP"), Some(&b"throttle"[..]));
        assert_eq!(get(&f, "OOMGUARD_STEP_INDEX"), Some(&b"2"[..]));
        assert_eq!(get(&f, "OOMGUARD_STEP_OF"), Some(&b"3"[..]));
        assert_eq!(get(&f, "OOMGUARD_STEP_OUTCOME"), Some(&b"refused"[..]));
        assert_eq!(
            get(&f, "OOMGUARD_STEP_DETAIL"),
            Some(&b"cgroup v1 has no memory.high"[..])
        );
    }

    #[test]
    fn full_socket_drops_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let _server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::open(&path);
        let t = std::time::Instant::now();
        // Nobody reads: the queue fills (max_dgram_qlen, 512 by default) and sends fail.
        for _ in 0..2000 {
            j.log(priority::INFO, "filler");
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(j.stats().dropped > 0, "{:?}", j.stats());
    }

    #[test]
    fn reconnects_after_journald_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::open(&path);
        j.log(priority::INFO, "one");
        assert_eq!(recv_fields(&server)[0].1, b"one");
        // journald restarts: the socket file is recreated.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        j.log(priority::INFO, "two");
        assert_eq!(recv_fields(&server)[0].1, b"two");
        assert_eq!(j.stats().sent, 2);
    }

    #[test]
    fn no_socket_means_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("absent"));
        assert!(!j.is_journal());
        j.log(priority::INFO, "to stderr");
        assert_eq!(j.stats().stderr_lines, 1);
    }

    #[test]
    fn parse_rejects_truncated_binary_field() {
        let mut b = Vec::new();
        put_field(&mut b, "A", b"x\ny");
        assert!(parse_datagram(&b[..b.len() - 2]).is_none());
        assert_eq!(parse_datagram(&b).unwrap()[0].1, b"x\ny");
    }
}
