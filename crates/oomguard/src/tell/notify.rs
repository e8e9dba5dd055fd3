//! Desktop notifications (opt-in, `[notify]`): after a kill or a kernel OOM, tell the people at
//! the machine. Two forms, both run as child processes through [`Runner`] (never on the kill
//! path, never linked: a system daemon has no session bus, and zbus would bring threads):
//!
//! - `dbus-send --system / net.nuetzlich.SystemNotifications.Notify string:TITLE string:BODY`:
//!   earlyoom's form since 1.6, shown by `systembus-notify` running in the user's session;
//! - `notify-send TITLE BODY` in each graphical session: a session is a `/run/user/UID/bus`
//!   socket; the command runs as that user (uid, and the gid owning the directory) with
//!   `DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/UID/bus`.
//!
//! The texts come from [`fields::summary`], with control characters shown as `?`; they are
//! single argv elements, so a victim named `$(reboot)` is just text.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oomguard_core::config::NotifyConfig;
use oomguard_core::event::OomEvent;

use super::child::{Finished, Runner, Spec};
use super::fields;

/// A notification command gets this long before it is killed.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the programs and sessions are (tests point these at fakes).
#[derive(Debug, Clone)]
pub struct NotifyPaths {
    pub dbus_send: PathBuf,
    pub notify_send: PathBuf,
    /// `/run/user`: one directory per logged-in uid.
    pub run_user: PathBuf,
}

impl Default for NotifyPaths {
    fn default() -> Self {
        NotifyPaths {
            dbus_send: PathBuf::from("/usr/bin/dbus-send"),
            notify_send: PathBuf::from("/usr/bin/notify-send"),
            run_user: PathBuf::from("/run/user"),
        }
    }
}

/// Sends desktop notifications. See the module docs.
#[derive(Debug)]
pub struct Notifier {
    cfg: NotifyConfig,
    paths: NotifyPaths,
    runner: Runner,
    failed: Vec<Finished>,
    sent: u64,
}

/// A graphical session: its uid, the gid to run as, and its bus socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub uid: u32,
    pub gid: u32,
    pub bus: PathBuf,
}

/// The sessions under `run_user` (`/run/user/UID/bus` sockets).
pub fn sessions(run_user: &Path) -> Vec<Session> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(run_user) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(uid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let bus = entry.path().join("bus");
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if bus.exists() {
            out.push(Session {
                uid,
                gid: meta.gid(),
                bus,
            });
        }
    }
    out.sort_by_key(|s| s.uid);
    out
}

impl Notifier {
    pub fn new(cfg: NotifyConfig) -> Self {
        Self::with_paths(cfg, NotifyPaths::default())
    }

    pub fn with_paths(cfg: NotifyConfig, paths: NotifyPaths) -> Self {
        Notifier {
            cfg,
            paths,
            runner: Runner::new(),
            failed: Vec::new(),
            sent: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.dbus || self.cfg.notify_send
    }

    /// Notifications started so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Starts the notification commands for `ev`; returns how many started. Returns at once.
    pub fn notify(&mut self, ev: &OomEvent, now: Instant) -> usize {
        let (title, body) = fields::summary(ev);
        let mut specs = Vec::new();
        if self.cfg.dbus {
            specs.push(Spec {
                label: "notify dbus-send".to_owned(),
                argv: vec![
                    self.paths.dbus_send.to_string_lossy().into_owned(),
                    "--system".to_owned(),
                    "/".to_owned(),
                    "net.nuetzlich.SystemNotifications.Notify".to_owned(),
                    format!("string:{title}"),
                    format!("string:{body}"),
                ],
                env: Vec::new(),
                stdin: None,
                timeout: NOTIFY_TIMEOUT,
                user: None,
            });
        }
        if self.cfg.notify_send {
            let me = rustix::process::geteuid().as_raw();
            for s in sessions(&self.paths.run_user) {
                // Switching user needs root; otherwise only our own session can be reached.
                let user = if me == 0 {
                    Some((s.uid, s.gid))
                } else if s.uid == me {
                    None
                } else {
                    continue;
                };
                specs.push(Spec {
                    label: format!("notify notify-send uid {}", s.uid),
                    argv: vec![
                        self.paths.notify_send.to_string_lossy().into_owned(),
                        "--app-name=oomguard".to_owned(),
                        "--urgency=critical".to_owned(),
                        "--".to_owned(),
                        title.clone(),
                        body.clone(),
                    ],
                    env: vec![
                        (
                            "DBUS_SESSION_BUS_ADDRESS".to_owned(),
                            format!("unix:path={}", s.bus.display()),
                        ),
                        (
                            "XDG_RUNTIME_DIR".to_owned(),
                            s.bus
                                .parent()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default(),
                        ),
                    ],
                    stdin: None,
                    timeout: NOTIFY_TIMEOUT,
                    user,
                });
            }
        }
        let mut started = 0;
        for spec in specs {
            match self.runner.spawn(spec, now) {
                Ok(()) => {
                    started += 1;
                    self.sent += 1;
                }
                Err(f) => self.failed.push(f),
            }
        }
        started
    }

    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.failed.is_empty() {
            return Some(now);
        }
        self.runner.next_deadline(now)
    }

    pub fn running(&self) -> usize {
        self.runner.running()
    }

    /// Reaps; results (with output) go to `out` for the log.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Finished>) {
        out.append(&mut self.failed);
        self.runner.on_tick(now, out);
    }
}
