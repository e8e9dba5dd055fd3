//! Test support for the `sys` tests that run against the real kernel: throwaway cgroups that
//! remove themselves, and children (sleepers and capped memory hogs) that are pinned by pidfd at
//! spawn and killed through it and reaped on drop.
//!
//! Safety rules these helpers enforce: only our own children are ever signalled, and only
//! through their pidfd; every hog writes oom_score_adj 1000 and joins its memory cgroup before
//! exec (so its whole image is charged there), and allocates a capped amount.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oomguard_core::killpath::{cgroup_path, parse_pid_list, Hierarchy};
use rustix::process::Signal;

use crate::act::pidfd::Pinned;

/// Upper bound on any hog allocation in these tests.
pub const HOG_CAP_BYTES: usize = 120 << 20;
/// Upper bound on any memory cgroup limit these tests set.
pub const MEMCG_LIMIT_CAP_BYTES: u64 = 128 << 20;

const HOG_BYTES_ENV: &str = "OOMGUARD_TEST_HOG_BYTES";
const HOG_READY: &str = "OOMGUARD_HOG_READY";

/// Tests that read or flood `/dev/kmsg` hold this: a flood overruns the ring buffer for
/// every reader in the process.
pub static KMSG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The one skip rule (`OOMGUARD_REQUIRE_KERNEL=1` makes it a failure).
pub use crate::kernel_skip::{is_root, skip};

/// Mount point of the v1 hierarchy carrying `memory`, or of cgroup2 when `None` (read by the one
/// `/proc/self/mounts` parser, `oomguard_core::run::parse_cgroup_mounts`).
fn cgroup_mount(controller: Option<&str>) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let m = oomguard_core::run::parse_cgroup_mounts(&mounts);
    match controller {
        None => m.unified,
        Some("memory") => m.memory_v1,
        Some(_) => None,
    }
    .map(PathBuf::from)
}

/// Our own cgroup directory in a hierarchy.
fn own_cgroup_dir(controller: Option<&str>) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let hierarchy = controller.map_or(Hierarchy::Unified, Hierarchy::V1Controller);
    let rel = cgroup_path(&text, hierarchy)?;
    let mount = cgroup_mount(controller)?;
    Some(mount.join(rel.trim_start_matches('/')))
}

/// A cgroup created for one test; removed on drop once its tasks are gone.
pub struct TempCgroup {
    pub dir: PathBuf,
    /// The path as `/proc/PID/cgroup` shows it for members.
    pub rel_path: String,
}

impl TempCgroup {
    fn create(controller: Option<&str>, name: &str) -> Result<Self, String> {
        if !is_root() {
            return Err("needs root".into());
        }
        let parent = own_cgroup_dir(controller)
            .ok_or_else(|| format!("no {controller:?} cgroup hierarchy mounted"))?;
        let mount = cgroup_mount(controller).ok_or("no mount")?;
        let dir = parent.join(format!("oomguard-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let rel = dir
            .strip_prefix(&mount)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        Ok(Self {
            dir,
            rel_path: format!("/{rel}"),
        })
    }

    /// A child memory cgroup (v1) under our own, with a limit; `None` (after printing why) when
    /// that is impossible here.
    pub fn memory_v1(name: &str, limit_bytes: u64) -> Option<Self> {
        assert!(limit_bytes <= MEMCG_LIMIT_CAP_BYTES);
        let cg = match Self::create(Some("memory"), name) {
            Ok(cg) => cg,
            Err(reason) => {
                skip(
                    name,
                    &format!("cgroup v1 memory controller unusable: {reason}"),
                );
                return None;
            }
        };
        if let Err(e) = std::fs::write(
            cg.dir.join("memory.limit_in_bytes"),
            limit_bytes.to_string(),
        ) {
            skip(name, &format!("cannot set memory.limit_in_bytes: {e}"));
            return None;
        }
        Some(cg)
    }

    /// A child cgroup in the unified (v2) hierarchy under our own.
    pub fn unified(name: &str) -> Option<Self> {
        match Self::create(None, name) {
            Ok(cg) => Some(cg),
            Err(reason) => {
                skip(name, &format!("cgroup v2 unusable: {reason}"));
                None
            }
        }
    }

    pub fn procs(&self) -> Vec<i32> {
        std::fs::read(self.dir.join("cgroup.procs"))
            .map(|t| parse_pid_list(&t))
            .unwrap_or_default()
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        // Members are our own children, killed and reaped by their `Kid` guards (dropped
        // before this guard). Give exits a moment, then rmdir, retrying EBUSY.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.procs().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("WARNING: could not remove {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// A child process, pinned at spawn; on drop it is SIGKILLed through its pidfd and reaped.
pub struct Kid {
    pub child: Child,
    pub pinned: Pinned,
    reaped: bool,
}

/// Spawns `cmd` as a child, optionally joining `cgroup` and setting oom_score_adj 1000 before
/// exec (both in the child, between fork and exec).
pub fn spawn_kid(
    mut cmd: Command,
    cgroup: Option<&TempCgroup>,
    oom_score_adj_1000: bool,
    ignore_term: bool,
) -> std::io::Result<Kid> {
    let procs = cgroup
        .map(|cg| CString::new(cg.dir.join("cgroup.procs").to_string_lossy().into_owned()))
        .transpose()
        .map_err(std::io::Error::other)?;
    let adj_path = c"/proc/self/oom_score_adj";
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (open, write, close, signal) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if oom_score_adj_1000 {
                let fd = libc::open(adj_path.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"1000".as_ptr().cast(), 4) != 4 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            if let Some(procs) = &procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            if ignore_term {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pinned = Pinned::open(child.id() as i32).map_err(std::io::Error::other)?;
    Ok(Kid {
        child,
        pinned,
        reaped: false,
    })
}

/// `sleep 1000` as a pinned child.
pub fn sleeper(cgroup: Option<&TempCgroup>, ignore_term: bool) -> Kid {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    #[allow(clippy::expect_used)]
    spawn_kid(cmd, cgroup, false, ignore_term).expect("spawn sleep")
}

impl Kid {
    pub fn pid(&self) -> i32 {
        self.pinned.pid()
    }

    /// Reaps the child (it must have exited or be about to); returns the terminating signal.
    pub fn reap(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.reaped = true;
        self.child.wait().ok().and_then(|s| s.signal())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.pinned.send_signal(Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// A capped memory hog: the test binary re-executed in hog mode (see [`hog_entry`]).
pub struct Hog {
    pub kid: Kid,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Hog {
    /// Spawns a hog that touches `bytes` of anonymous memory (1 MiB at a time), reports
    /// readiness on stdout and sleeps. oom_score_adj 1000, in `cgroup` from before exec.
    pub fn spawn(
        bytes: usize,
        cgroup: Option<&TempCgroup>,
        ignore_term: bool,
    ) -> std::io::Result<Self> {
        assert!(bytes <= HOG_CAP_BYTES, "hog allocation above the test cap");
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            "testutil::hog_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOG_BYTES_ENV, bytes.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let mut kid = spawn_kid(cmd, cgroup, true, ignore_term)?;
        let stdout = kid.child.stdout.take().map(BufReader::new);
        Ok(Self { kid, stdout })
    }

    pub fn pid(&self) -> i32 {
        self.kid.pid()
    }

    /// Blocks until the hog has touched all its memory (true) or exited first (false).
    pub fn wait_ready(&mut self) -> bool {
        let Some(out) = self.stdout.as_mut() else {
            return false;
        };
        let mut line = String::new();
        loop {
            line.clear();
            match out.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) if line.contains(HOG_READY) => return true,
                Ok(_) => {}
            }
        }
    }

    pub fn reap(&mut self) -> Option<i32> {
        self.kid.reap()
    }
}

/// Hog mode of the test binary: does nothing in a normal test run.
#[test]
fn hog_entry() {
    let Some(bytes) = std::env::var(HOG_BYTES_ENV)
        .ok()
        .and_then(|b| b.parse::<usize>().ok())
    else {
        return;
    };
    let bytes = bytes.min(HOG_CAP_BYTES);
    let chunk = 1 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    while held.len() * chunk < bytes {
        // vec![1; n] writes every byte, so each page is faulted in and charged.
        held.push(vec![1u8; chunk]);
    }
    println!("{HOG_READY} {}", held.len());
    loop {
        std::thread::sleep(Duration::from_secs(1000));
        std::hint::black_box(&held);
    }
}
