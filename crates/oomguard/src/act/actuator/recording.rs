//! [`RecordingActuator`]: an [`Actuator`] that records every call and simulates how the
//! processes answer, so the escalation routines and the daemon can be tested without killing.

use super::*;

/// One call made on a [`RecordingActuator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `signal(pid, signo)`.
    Signal {
        /// Target pid.
        pid: i32,
        /// Raw signal number.
        signo: i32,
    },
    /// `release(pid)`.
    Release {
        /// Target pid.
        pid: i32,
    },
    /// `kill_cgroup(dir)`.
    KillCgroup {
        /// The cgroup directory.
        dir: PathBuf,
    },
}

/// How a simulated process reacts to signals in a [`RecordingActuator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulated {
    /// Exits on SIGTERM.
    ExitsOnTerm,
    /// Ignores SIGTERM, exits on SIGKILL.
    ExitsOnKill,
    /// Never exits (stuck in D state, say).
    Stuck,
}

/// Records every call and simulates exits; signals nothing. For policy and escalation tests.
#[derive(Debug)]
pub struct RecordingActuator {
    /// Calls in order (waits are not recorded).
    pub calls: Vec<Call>,
    /// How every target behaves.
    pub behaviour: Simulated,
    /// What `release` answers.
    pub mrelease_answer: MreleaseOutcome,
    exited: Vec<i32>,
    /// A copy of `calls` for whoever handed the recorder over (to a daemon, say).
    mirror: Option<std::sync::Arc<std::sync::Mutex<Vec<Call>>>>,
}

impl RecordingActuator {
    /// A recorder whose targets behave as `behaviour`.
    pub fn new(behaviour: Simulated) -> Self {
        Self {
            calls: Vec::new(),
            behaviour,
            mrelease_answer: MreleaseOutcome::Released,
            exited: Vec::new(),
            mirror: None,
        }
    }

    /// A recorder that also copies every call into the returned list, which stays readable
    /// after the recorder itself was handed over as a `Box<dyn Actuator>`.
    pub fn shared(behaviour: Simulated) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<Call>>>) {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut r = Self::new(behaviour);
        r.mirror = Some(log.clone());
        (r, log)
    }

    fn record(&mut self, call: Call) {
        if let Some(m) = &self.mirror {
            if let Ok(mut m) = m.lock() {
                m.push(call.clone());
            }
        }
        self.calls.push(call);
    }
}

impl Actuator for RecordingActuator {
    fn signal(&mut self, target: &Pinned, sig: Signal) -> Result<SignalOutcome, PinError> {
        let pid = target.pid();
        self.record(Call::Signal {
            pid,
            signo: sig.as_raw(),
        });
        if self.exited.contains(&pid) {
            return Ok(SignalOutcome::AlreadyGone);
        }
        let exits = matches!(
            (self.behaviour, sig),
            (Simulated::ExitsOnTerm, Signal::TERM | Signal::KILL)
                | (Simulated::ExitsOnKill, Signal::KILL)
        );
        if exits {
            self.exited.push(pid);
        }
        Ok(SignalOutcome::Delivered)
    }
    fn release(&mut self, target: &Pinned) -> Result<MreleaseOutcome, PinError> {
        self.record(Call::Release { pid: target.pid() });
        Ok(self.mrelease_answer)
    }
    fn wait_exit(&mut self, target: &Pinned, timeout: Duration) -> Result<bool, PinError> {
        if self.exited.contains(&target.pid()) {
            return Ok(true);
        }
        // Let simulated time pass without spinning.
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        Ok(false)
    }
    fn kill_cgroup(&mut self, cgroup_dir: &Path) -> Result<(), ActuatorError> {
        self.record(Call::KillCgroup {
            dir: cgroup_dir.to_path_buf(),
        });
        Ok(())
    }
}
