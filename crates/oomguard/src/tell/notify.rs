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

    /// Treats every running notification command as past its timeout (see
    /// [`super::child::Runner::expire_all`]).
    pub fn expire_all(&mut self, now: Instant) {
        self.runner.expire_all(now);
    }

    /// Reaps; results (with output) go to `out` for the log.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Finished>) {
        out.append(&mut self.failed);
        self.runner.on_tick(now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::event::{EventKind, Source, Victim};
    use std::os::unix::fs::PermissionsExt;

    /// A fake program that records its argv (NUL-separated) and some of its environment.
    fn recorder(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        let out = dir.join(format!("{name}.argv"));
        let env = dir.join(format!("{name}.env"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\nprintf '%s\\n%s\\n%s\\n' \"$DBUS_SESSION_BUS_ADDRESS\" \"$XDG_RUNTIME_DIR\" \"$(id -u)\" > '{}'\n",
                out.display(),
                env.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn argv(dir: &Path, name: &str) -> Vec<String> {
        let raw = std::fs::read(dir.join(format!("{name}.argv"))).unwrap();
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect()
    }

    fn wait(n: &mut Notifier) -> Vec<Finished> {
        let start = Instant::now();
        let mut out = Vec::new();
        while n.running() > 0 && start.elapsed() < Duration::from_secs(5) {
            n.on_tick(Instant::now(), &mut out);
            std::thread::sleep(Duration::from_millis(5));
        }
        n.on_tick(Instant::now(), &mut out);
        out
    }

    fn event() -> OomEvent {
        let mut ev = OomEvent::new(EventKind::Kill);
        ev.source = Source::Oomguard;
        ev.id = Some("abc-3".to_owned());
        ev.victim = Some(Victim {
            pid: 77,
            name: "$(touch x)\nrm".to_owned(),
            rss_bytes: Some(512 << 20),
            ..Victim::default()
        });
        ev
    }

    #[test]
    fn dbus_send_gets_the_systembus_notify_form() {
        let dir = tempfile::tempdir().unwrap();
        let fake = recorder(dir.path(), "dbus-send");
        let mut n = Notifier::with_paths(
            NotifyConfig {
                dbus: true,
                notify_send: false,
            },
            NotifyPaths {
                dbus_send: fake.clone(),
                notify_send: PathBuf::from("/nonexistent"),
                run_user: dir.path().join("run-user"),
            },
        );
        let t = Instant::now();
        assert_eq!(n.notify(&event(), t), 1);
        assert!(t.elapsed() < Duration::from_millis(50));
        let res = wait(&mut n);
        assert!(res.iter().all(|f| f.outcome.is_success()), "{res:?}");
        let a = argv(dir.path(), "dbus-send");
        assert_eq!(
            a,
            vec![
                "--system".to_owned(),
                "/".to_owned(),
                "net.nuetzlich.SystemNotifications.Notify".to_owned(),
                "string:oomguard killed $(touch x)?rm (pid 77)".to_owned(),
                "string:oomguard killed $(touch x)?rm (pid 77), 512 MiB resident. Event abc-3."
                    .to_owned(),
            ]
        );
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn notify_send_runs_per_session_with_its_bus() {
        let dir = tempfile::tempdir().unwrap();
        let fake = recorder(dir.path(), "notify-send");
        let me = rustix::process::geteuid().as_raw();
        let run_user = dir.path().join("run-user");
        let session = run_user.join(me.to_string());
        std::fs::create_dir_all(&session).unwrap();
        // A real socket, as a session bus is.
        let _bus = std::os::unix::net::UnixListener::bind(session.join("bus")).unwrap();
        // A directory without a bus (a user logged in without a graphical session) is skipped.
        std::fs::create_dir_all(run_user.join("4242")).unwrap();
        assert_eq!(sessions(&run_user).len(), 1);
        let mut n = Notifier::with_paths(
            NotifyConfig {
                dbus: false,
                notify_send: true,
            },
            NotifyPaths {
                dbus_send: PathBuf::from("/nonexistent"),
                notify_send: fake,
                run_user: run_user.clone(),
            },
        );
        assert_eq!(n.notify(&event(), Instant::now()), 1);
        let res = wait(&mut n);
        assert!(res.iter().all(|f| f.outcome.is_success()), "{res:?}");
        let a = argv(dir.path(), "notify-send");
        assert_eq!(a[..3], ["--app-name=oomguard", "--urgency=critical", "--"]);
        assert_eq!(a[3], "oomguard killed $(touch x)?rm (pid 77)");
        let env = std::fs::read_to_string(dir.path().join("notify-send.env")).unwrap();
        let lines: Vec<&str> = env.lines().collect();
        assert_eq!(
            lines[0],
            format!("unix:path={}", session.join("bus").display())
        );
        assert_eq!(lines[1], session.display().to_string());
        assert_eq!(lines[2], me.to_string());
    }

    #[test]
    fn disabled_by_default() {
        let mut n = Notifier::new(NotifyConfig::default());
        assert!(!n.enabled());
        assert_eq!(n.notify(&event(), Instant::now()), 0);
    }
}
