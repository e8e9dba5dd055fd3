//! The whole-machine process scan: every process's memory figures and `oom_score_adj`, with the
//! kernel's verdict computed by `oomguard_core::badness`. It never fails because one process
//! vanished or one file was unreadable: it skips and counts ([`ScanStats`]). Kernel threads are
//! recognised from the `PF_KTHREAD` flag in `stat` and excluded before `status` is read.
//!
//! Per process it reads `stat`, `status` and `oom_score_adj` through one `O_DIRECTORY` fd, into
//! one buffer reused for the whole scan; results go into a caller-owned `Vec` that is cleared
//! and refilled, so a steady-state rescan allocates nothing.

use super::procfs::{PidDir, ProcRoot};
use super::{ProcFs, ReadError};
use oomguard_core::badness::{TaskFacts, TaskMemPages};
use oomguard_core::host::process::{self, ProcStatus};
use serde::Serialize;
use std::path::Path;

/// A process name as `/proc/PID/stat` prints it (up to 64 bytes on 6.x), stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 64],
    len: u8,
}

impl Comm {
    /// Copies (and truncates to 64 bytes) a name.
    pub fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; 64];
        let n = name.len().min(64);
        bytes[..n].copy_from_slice(&name[..n]);
        Comm {
            bytes,
            len: n as u8,
        }
    }
    /// The name, lossily decoded.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes[..usize::from(self.len)])
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for Comm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// One process as the scan saw it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    pub pid: i32,
    /// The thread group: equal to `pid` for a process. `/proc/TID` of a thread (not listed in
    /// `/proc`, but found when opened by number) gives a sample whose `tgid` differs.
    pub tgid: i32,
    pub ppid: i32,
    pub comm: Comm,
    pub state: char,
    pub uid: u32,
    pub start_time_ticks: u64,
    /// In `do_exit()` (`PF_EXITING`): the kernel would let it finish rather than pick another.
    pub exiting: bool,
    pub oom_score_adj: i16,
    /// `None` when the process has no mm (zombie).
    pub mem: Option<TaskMemPages>,
    pub cap_sys_admin: bool,
}

impl ProcSample {
    /// The facts `oom_badness()` looks at. `is_global_init` is pid 1 of the *scanned* `/proc`
    /// (oomguard runs in the initial pid namespace; in a container pid 1 is not global init, and
    /// the kernel would score it).
    pub fn facts(&self, pid1_is_global_init: bool) -> TaskFacts {
        TaskFacts {
            is_global_init: self.pid == 1 && pid1_is_global_init,
            is_kernel_thread: false,
            mem: self.mem,
            oom_score_adj: self.oom_score_adj,
            cap_sys_admin: self.cap_sys_admin,
        }
    }
}

/// What a scan skipped, and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanStats {
    /// Entries listed in `/proc`.
    pub listed: u64,
    /// Processes sampled.
    pub sampled: u64,
    pub kernel_threads: u64,
    /// Gone between listing and reading.
    pub vanished: u64,
    pub permission_denied: u64,
    pub malformed: u64,
    pub io_errors: u64,
    /// The first few error messages (file and line), for the report.
    pub first_errors: Vec<String>,
}

impl ScanStats {
    fn note(&mut self, e: &ReadError) {
        match e {
            ReadError::Vanished { .. } | ReadError::NotPresent { .. } => {
                self.vanished += 1;
                return;
            }
            ReadError::PermissionDenied { .. } => self.permission_denied += 1,
            ReadError::Malformed { .. } => self.malformed += 1,
            ReadError::Io { .. } => self.io_errors += 1,
        }
        if self.first_errors.len() < 5 {
            self.first_errors.push(e.to_string());
        }
    }
}

/// Reusable scan state: the open `/proc`, the pid list and the read buffer.
#[derive(Debug)]
pub struct Scanner {
    proc_root: ProcRoot,
    pids: Vec<i32>,
    buf: Vec<u8>,
    page_size_bytes: u64,
}

/// Result of sampling one process.
pub enum Sampled {
    Process(ProcSample),
    KernelThread,
}

impl Scanner {
    /// Opens `procfs`'s root for scanning.
    pub fn new(procfs: &ProcFs) -> Result<Self, ReadError> {
        Ok(Scanner {
            proc_root: procfs.open_root()?,
            pids: Vec::with_capacity(1024),
            buf: Vec::with_capacity(8192),
            page_size_bytes: super::page_size_bytes(),
        })
    }

    /// The `/proc` root path.
    pub fn root(&self) -> &Path {
        self.proc_root.root()
    }

    /// Scans every process into `out` (cleared first). Fails only if `/proc` itself cannot be
    /// listed.
    pub fn scan(
        &mut self,
        out: &mut Vec<ProcSample>,
        stats: &mut ScanStats,
    ) -> Result<(), ReadError> {
        out.clear();
        *stats = ScanStats {
            first_errors: std::mem::take(&mut stats.first_errors),
            ..ScanStats::default()
        };
        stats.first_errors.clear();
        self.proc_root.list_pids(&mut self.pids)?;
        // Taken for the loop and put back, so the pid buffer is reused scan after scan.
        let pids = std::mem::take(&mut self.pids);
        self.scan_pids(&pids, out, stats);
        self.pids = pids;
        Ok(())
    }

    /// Lists the pids in `/proc` into `out` (cleared first), for a scan done in slices.
    pub fn list_pids(&mut self, out: &mut Vec<i32>) -> Result<(), ReadError> {
        self.proc_root.list_pids(out)
    }

    /// Samples the given pids (e.g. a cgroup's members) into `out`, in the given order.
    pub fn scan_pids(&mut self, pids: &[i32], out: &mut Vec<ProcSample>, stats: &mut ScanStats) {
        out.clear();
        stats.listed = pids.len() as u64;
        for &pid in pids {
            match self.sample(pid) {
                Ok(Sampled::Process(s)) => {
                    stats.sampled += 1;
                    out.push(s);
                }
                Ok(Sampled::KernelThread) => stats.kernel_threads += 1,
                Err(e) => stats.note(&e),
            }
        }
    }

    /// Opens `/proc/PID`.
    pub fn open_pid(&self, pid: i32) -> Result<PidDir, ReadError> {
        self.proc_root.open_pid(pid)
    }

    /// Samples one process: `stat` (kernel-thread check, flags, start time), then `status` and
    /// `oom_score_adj`.
    pub fn sample(&mut self, pid: i32) -> Result<Sampled, ReadError> {
        let root = &self.proc_root;
        let malformed =
            |file: &str, e| ReadError::malformed(root.root().join(pid.to_string()).join(file), e);
        root.read_pid_file(pid, "stat", &mut self.buf)?;
        let (ppid, comm, state, flags, start_time_ticks) = {
            let st = process::parse_stat(&self.buf).map_err(|e| malformed("stat", e))?;
            if st.is_kernel_thread() {
                return Ok(Sampled::KernelThread);
            }
            (
                st.ppid,
                Comm::new(st.comm),
                st.state,
                st.flags,
                st.start_time_ticks,
            )
        };
        root.read_pid_file(pid, "status", &mut self.buf)?;
        let status: ProcStatus =
            process::parse_status(&self.buf).map_err(|e| malformed("status", e))?;
        if status.kthread == Some(true) {
            return Ok(Sampled::KernelThread);
        }
        root.read_pid_file(pid, "oom_score_adj", &mut self.buf)?;
        let oom_score_adj =
            process::parse_oom_score_adj(&self.buf).map_err(|e| malformed("oom_score_adj", e))?;
        Ok(Sampled::Process(ProcSample {
            pid,
            tgid: status.tgid,
            ppid,
            comm,
            state: char::from(state),
            uid: status.uid_real,
            start_time_ticks,
            exiting: flags & process::PF_EXITING != 0,
            oom_score_adj,
            mem: TaskMemPages::from_status(&status, self.page_size_bytes),
            cap_sys_admin: status.has_cap_sys_admin().unwrap_or(false),
        }))
    }

    /// `/proc/PID/oom_score`: the kernel's badness as it prints it (one small read).
    pub fn read_oom_score(&mut self, pid: i32) -> Result<u64, ReadError> {
        self.proc_root
            .read_pid_file(pid, "oom_score", &mut self.buf)?;
        process::parse_oom_score(&self.buf).map_err(|e| {
            ReadError::malformed(self.root().join(pid.to_string()).join("oom_score"), e)
        })
    }

    /// From `/proc/PID/stat` only: the parent pid and the name, or `None` for a kernel thread.
    pub fn glance_stat(&mut self, pid: i32) -> Result<Option<(i32, Comm)>, ReadError> {
        self.proc_root.read_pid_file(pid, "stat", &mut self.buf)?;
        let st = process::parse_stat(&self.buf)
            .map_err(|e| ReadError::malformed(self.root().join(pid.to_string()).join("stat"), e))?;
        Ok((!st.is_kernel_thread()).then(|| (st.ppid, Comm::new(st.comm))))
    }

    /// The shared read buffer, for one-off reads between scans.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}
