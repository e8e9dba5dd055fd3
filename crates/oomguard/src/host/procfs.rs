//! `/proc` reader. Machine-wide files are read by path; per-process files are read through an
//! `O_DIRECTORY` fd on `/proc/PID` (one path lookup per process, and the fd pins the process's
//! directory so all reads describe the same process), into a caller-owned buffer that is reused
//! across processes.

use super::ReadError;
use oomguard_core::host::{process, system, ParseError};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Reader of a `/proc` tree rooted at `root` (the real one is `/proc`).
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs::new("/proc")
    }
}

fn read_path(path: &Path, per_process: bool) -> Result<Vec<u8>, ReadError> {
    std::fs::read(path).map_err(|e| ReadError::from_io(path.to_path_buf(), e, per_process))
}

impl ProcFs {
    /// A reader rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    /// The root this reader reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read_parsed<T>(
        &self,
        rel: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        let path = self.root.join(rel);
        let text = read_path(&path, false)?;
        parse(&text).map_err(|e| ReadError::malformed(path, e))
    }

    /// `/proc/meminfo`.
    pub fn read_meminfo(&self) -> Result<system::MemInfo, ReadError> {
        self.read_parsed("meminfo", system::parse_meminfo)
    }

    /// `/proc/pressure/memory`; [`ReadError::NotPresent`] without PSI (pre-4.20 or `psi=0`).
    pub fn read_pressure_memory(&self) -> Result<system::Pressure, ReadError> {
        self.read_parsed("pressure/memory", system::parse_pressure)
    }

    /// `/proc/vmstat`.
    pub fn read_vmstat(&self) -> Result<system::VmStat, ReadError> {
        self.read_parsed("vmstat", system::parse_vmstat)
    }

    /// `/proc/swaps`.
    pub fn read_swaps(&self) -> Result<Vec<system::SwapArea>, ReadError> {
        self.read_parsed("swaps", system::parse_swaps)
    }

    /// `/proc/sys/vm/NAME` as an integer.
    pub fn read_sysctl_vm(&self, name: &'static str) -> Result<i64, ReadError> {
        self.read_parsed(&format!("sys/vm/{name}"), |t| {
            system::parse_sysctl_i64(name, t)
        })
    }

    /// `/proc/sys/kernel/osrelease`, trimmed.
    pub fn read_osrelease(&self) -> Result<String, ReadError> {
        let path = self.root.join("sys/kernel/osrelease");
        let text = read_path(&path, false)?;
        Ok(String::from_utf8_lossy(&text).trim().to_owned())
    }

    /// Opens the directory of `/proc` itself for listing and `openat`.
    pub fn open_root(&self) -> Result<ProcRoot, ReadError> {
        let fd = open_dir(None, &self.root)
            .map_err(|e| ReadError::from_io(self.root.clone(), e, false))?;
        Ok(ProcRoot {
            fd,
            root: self.root.clone(),
            dents: vec![0u8; 32 * 1024],
        })
    }

    /// Opens `/proc/PID` (convenience for one-off reads; scans use [`ProcRoot::open_pid`]).
    pub fn open_pid(&self, pid: i32) -> Result<PidDir, ReadError> {
        self.open_root()?.open_pid(pid)
    }
}

fn cstring(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_dir(at: Option<&OwnedFd>, p: &Path) -> io::Result<OwnedFd> {
    let c = cstring(p)?;
    open_c(at, &c, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
}

fn open_c(at: Option<&OwnedFd>, c: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let dirfd = at.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: `c` is a valid NUL-terminated string; openat does not retain the pointer.
    let fd = unsafe { libc::openat(dirfd, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The open `/proc` directory: lists pids allocation-free with `getdents64` into a reused buffer.
#[derive(Debug)]
pub struct ProcRoot {
    fd: OwnedFd,
    root: PathBuf,
    dents: Vec<u8>,
}

impl ProcRoot {
    /// Lists the numeric entries (process ids) into `out` (cleared first), in directory order
    /// (ascending pid for the real `/proc`).
    pub fn list_pids(&mut self, out: &mut Vec<i32>) -> Result<(), ReadError> {
        out.clear();
        // SAFETY: lseek on an owned directory fd; rewinds the listing.
        unsafe { libc::lseek(self.fd.as_raw_fd(), 0, libc::SEEK_SET) };
        loop {
            // SAFETY: the buffer is valid for `len` bytes; getdents64 writes at most that many.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd.as_raw_fd(),
                    self.dents.as_mut_ptr(),
                    self.dents.len(),
                )
            };
            if n < 0 {
                return Err(ReadError::from_io(
                    self.root.clone(),
                    io::Error::last_os_error(),
                    false,
                ));
            }
            if n == 0 {
                return Ok(());
            }
            let buf = &self.dents[..n as usize];
            let mut off = 0usize;
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            while off + 19 <= buf.len() {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                if reclen == 0 || off + reclen > buf.len() {
                    break;
                }
                let name = &buf[off + 19..off + reclen];
                let name = &name[..memchr::memchr(0, name).unwrap_or(name.len())];
                if let Some(pid) = oomguard_core::host::parse_u64(name) {
                    if let Ok(pid) = i32::try_from(pid) {
                        out.push(pid);
                    }
                }
                off += reclen;
            }
        }
    }

    /// Opens `/proc/PID` as a directory fd.
    pub fn open_pid(&self, pid: i32) -> Result<PidDir, ReadError> {
        let mut name = [0u8; 16];
        let len = fmt_pid(pid, &mut name);
        let c = CStr::from_bytes_with_nul(&name[..=len]).map_err(|_| ReadError::Vanished {
            path: self.root.join(pid.to_string()),
        })?;
        match open_c(
            Some(&self.fd),
            c,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        ) {
            Ok(fd) => Ok(PidDir { fd, pid }),
            Err(e) => Err(ReadError::from_io(self.root.join(pid.to_string()), e, true)),
        }
    }

    /// The root path (for error messages).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `/proc/PID/FILE` into `buf` with one `openat` relative to the `/proc` fd (no
    /// per-process directory fd: the scan path, where pinning is not needed; the kill path uses
    /// [`PidDir`]).
    pub fn read_pid_file(&self, pid: i32, file: &str, buf: &mut Vec<u8>) -> Result<(), ReadError> {
        let mut name = [0u8; 64];
        let len = fmt_pid(pid, &mut name);
        let f = file.as_bytes();
        if len + 1 + f.len() + 1 > name.len() {
            return Err(ReadError::NotPresent {
                path: self.root.join(file),
            });
        }
        name[len] = b'/';
        name[len + 1..len + 1 + f.len()].copy_from_slice(f);
        name[len + 1 + f.len()] = 0;
        let path = || self.root.join(pid.to_string()).join(file);
        let c = CStr::from_bytes_with_nul(&name[..len + f.len() + 2])
            .map_err(|_| ReadError::NotPresent { path: path() })?;
        let fd = open_c(Some(&self.fd), c, libc::O_RDONLY | libc::O_CLOEXEC)
            .map_err(|e| ReadError::from_io(path(), e, true))?;
        read_fd(fd, buf).map_err(|e| ReadError::from_io(path(), e, true))?;
        if buf.is_empty() && file != "cmdline" {
            return Err(ReadError::Vanished { path: path() });
        }
        Ok(())
    }
}

/// Reads an fd to the end into `buf` (cleared first), into the buffer's spare capacity (no
/// zero-filling: this runs for every file of every process in a scan). Allocation-free once
/// `buf` has grown to the largest file's size. A short read is the end: regular files return
/// less than asked only at EOF, and procfs seq_files (stat, status, oom_score_adj, ...) hand out
/// everything they generated in one read when the buffer is big enough; skipping the confirming
/// read saves a syscall per file in the scan.
fn read_fd(fd: OwnedFd, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if buf.capacity() < 4096 {
        buf.reserve(4096);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let start = buf.len();
        let offered = buf.capacity() - start;
        // SAFETY: read(2) writes at most `offered` bytes into the vector's spare capacity.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().add(start).cast(), offered) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        // SAFETY: the kernel initialised `n` bytes after `start`, within capacity.
        unsafe { buf.set_len(start + n) };
        if n < offered {
            return Ok(());
        }
    }
}

/// Writes `pid` in decimal plus a NUL into `buf` (at least 12 bytes); returns the digits' length.
fn fmt_pid(pid: i32, buf: &mut [u8]) -> usize {
    let mut tmp = [0u8; 12];
    let mut v = pid.unsigned_abs();
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    buf[..digits.len()].copy_from_slice(digits);
    buf[digits.len()] = 0;
    digits.len()
}

/// An open `/proc/PID` directory. Every read goes through this fd.
#[derive(Debug)]
pub struct PidDir {
    fd: OwnedFd,
    pid: i32,
}

impl PidDir {
    /// The pid this directory belongs to.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn path(&self, root: &Path, file: &str) -> PathBuf {
        root.join(self.pid.to_string()).join(file)
    }

    /// Reads `file` (a NUL-terminated name such as `c"status"`) into `buf` (cleared first).
    /// Allocation-free once `buf` has grown to the largest file's size.
    pub fn read_into(&self, root: &Path, file: &CStr, buf: &mut Vec<u8>) -> Result<(), ReadError> {
        buf.clear();
        let name = file.to_str().unwrap_or("?");
        let fd = open_c(Some(&self.fd), file, libc::O_RDONLY | libc::O_CLOEXEC)
            .map_err(|e| ReadError::from_io(self.path(root, name), e, true))?;
        read_fd(fd, buf).map_err(|e| ReadError::from_io(self.path(root, name), e, true))
    }

    /// Reads and parses one file.
    pub fn read_parsed<'b, T>(
        &self,
        root: &Path,
        file: &CStr,
        buf: &'b mut Vec<u8>,
        parse: impl FnOnce(&'b [u8]) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        self.read_into(root, file, buf)?;
        let name = file.to_str().unwrap_or("?");
        let path = || self.path(root, name);
        // An empty per-process file means the process exited between open and read.
        if buf.is_empty() && name != "cmdline" {
            return Err(ReadError::Vanished { path: path() });
        }
        parse(buf.as_slice()).map_err(|e| ReadError::malformed(path(), e))
    }

    /// `/proc/PID/oom_score_adj`.
    pub fn read_oom_score_adj(&self, root: &Path, buf: &mut Vec<u8>) -> Result<i16, ReadError> {
        self.read_parsed(root, c"oom_score_adj", buf, process::parse_oom_score_adj)
    }

    /// `/proc/PID/oom_score`.
    pub fn read_oom_score(&self, root: &Path, buf: &mut Vec<u8>) -> Result<u64, ReadError> {
        self.read_parsed(root, c"oom_score", buf, process::parse_oom_score)
    }

    /// `/proc/PID/status`.
    pub fn read_status(
        &self,
        root: &Path,
        buf: &mut Vec<u8>,
    ) -> Result<process::ProcStatus, ReadError> {
        self.read_parsed(root, c"status", buf, process::parse_status)
    }

    /// `/proc/PID/cmdline` for display.
    pub fn read_cmdline(&self, root: &Path, buf: &mut Vec<u8>) -> Result<String, ReadError> {
        self.read_into(root, c"cmdline", buf)?;
        Ok(process::cmdline_display(buf))
    }

    /// The memory cgroup of the process from `/proc/PID/cgroup`.
    pub fn read_memory_cgroup(
        &self,
        root: &Path,
        buf: &mut Vec<u8>,
    ) -> Result<Option<(process::CgroupVersion, String)>, ReadError> {
        let lines = self.read_parsed(root, c"cgroup", buf, process::parse_cgroup)?;
        Ok(process::memory_cgroup_path(&lines).map(|(v, p)| (v, p.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_formatting() {
        let mut b = [0u8; 16];
        assert_eq!(fmt_pid(0, &mut b), 1);
        assert_eq!(&b[..2], b"0\0");
        assert_eq!(fmt_pid(4_194_304, &mut b), 7);
        assert_eq!(&b[..8], b"4194304\0");
    }
}
