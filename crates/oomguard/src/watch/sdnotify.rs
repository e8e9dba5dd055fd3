//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): a datagram to $NOTIFY_SOCKET. A few
//! lines of std instead of a crate; a no-op outside systemd.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The notify socket, if systemd gave one, and the watchdog period.
#[derive(Debug)]
pub struct SdNotify {
    sock: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Instant,
}

impl SdNotify {
    /// From the environment ($NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID).
    pub fn from_env() -> Self {
        let sock = std::env::var("NOTIFY_SOCKET").ok().and_then(|p| {
            let addr = match p.strip_prefix('@') {
                Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&p).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|_| pid_ok)
            .map(Duration::from_micros);
        SdNotify {
            sock,
            watchdog,
            last_ping: Instant::now(),
        }
    }

    fn send(&self, msg: &str) {
        if let Some((s, addr)) = &self.sock {
            // Best effort: systemd not listening is not oomguard's problem.
            let _ = s.send_to_addr(msg.as_bytes(), addr);
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// The longest the loop may sleep so the watchdog is fed in time (half the period).
    pub fn max_sleep(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Pings the watchdog when half its period has passed.
    pub fn tick(&mut self) {
        if let Some(w) = self.watchdog {
            if self.last_ping.elapsed() >= w / 2 {
                self.send("WATCHDOG=1");
                self.last_ping = Instant::now();
            }
        }
    }
}
