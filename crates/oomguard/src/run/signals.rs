//! The signals `run` forwards (SIGINT, SIGTERM, SIGHUP, SIGQUIT), received as a pollable
//! `signalfd` so they sit in the supervisor's single `poll` next to the child's pidfd and
//! `/dev/kmsg`. The signals stay blocked once a [`SignalFd`] was made, on purpose: a SIGTERM
//! that arrives while `run` removes its cgroup and exits must not kill it half-way (the
//! supervisor reads and handles every one while it supervises). The child must not inherit the
//! mask (a blocked SIGTERM survives `exec`, and Rust's `Command` does not clear it: seen on
//! this project's toolchain, where `sleep` ran with SigBlk 0x4007), so the spawn calls
//! [`unblock_in_child`] between fork and exec.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

/// The signals forwarded to the command.
pub const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// `si_code` of a signal the kernel generated (a terminal's ^C, ^\, hangup), as opposed to one
/// a process sent with `kill()` (`SI_USER`).
pub const SI_KERNEL: i32 = 0x80;

/// One received signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: i32,
    /// `si_code`: [`SI_KERNEL`] for terminal-generated signals.
    pub code: i32,
    /// The sender's pid (0 for the kernel).
    pub sender_pid: u32,
}

/// A signalfd for [`FORWARDED`], with those signals blocked.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t; the zeroed value is
    // a valid starting point and the calls cannot fail for valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Unblocks [`FORWARDED`]; async-signal-safe, for a `pre_exec` closure.
///
/// # Safety
/// Call only in a single-threaded child between fork and exec (it changes the calling
/// thread's mask, which is what the exec'd program inherits).
pub unsafe fn unblock_in_child() -> std::io::Result<()> {
    let set = forwarded_set();
    // SAFETY: sigprocmask is async-signal-safe; `set` is a valid local sigset_t.
    if unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// True when `signal` is ignored (SIG_IGN) in this process, e.g. SIGHUP under `nohup`.
fn inherited_ignored(signal: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current disposition into a
    // local, zero-initialised struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

impl SignalFd {
    /// Blocks [`FORWARDED`] in this thread and opens a non-blocking signalfd for them. `run`
    /// is single-threaded, so the block covers the process.
    ///
    /// A signal inherited as ignored is left alone: the kernel would queue it once blocked
    /// (blocked signals are never discarded), and forwarding it would undo what whoever started
    /// us asked for (`nohup`, a shell's background job ignoring SIGINT/SIGQUIT). The command
    /// inherits the ignore across exec, as it would without oomguard.
    pub fn new() -> std::io::Result<Self> {
        let mut set = forwarded_set();
        for s in FORWARDED {
            if inherited_ignored(s) {
                // SAFETY: sigdelset on a valid local set and a valid signal number.
                unsafe { libc::sigdelset(&mut set, s) };
            }
        }
        // SAFETY: plain libc calls with valid pointers to local sigset_t values.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let raw = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if raw < 0 {
                let e = std::io::Error::last_os_error();
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(e);
            }
            Ok(Self {
                fd: OwnedFd::from_raw_fd(raw),
            })
        }
    }

    /// The fd for the poll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The next pending signal, `None` when none is pending.
    pub fn read(&self) -> std::io::Result<Option<Received>> {
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(n) if n == buf.len() => {
                // SAFETY: the kernel wrote one whole signalfd_siginfo; read_unaligned copes
                // with the byte buffer's alignment.
                let info: libc::signalfd_siginfo =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
                Ok(Some(Received {
                    signal: info.ssi_signo as i32,
                    code: info.ssi_code,
                    sender_pid: info.ssi_pid,
                }))
            }
            Ok(_) => Ok(None),
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(std::io::Error::from_raw_os_error(e.raw_os_error())),
        }
    }
}
