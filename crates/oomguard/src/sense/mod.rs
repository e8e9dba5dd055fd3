//! Sensing: what the daemon (and `run`) learn from the kernel, each source a pollable fd or a
//! file re-read through a kept descriptor. Memory pressure (`psi`: PSI triggers), cgroup
//! thresholds and OOM notifications (`memcg_v1`: eventfds), the kernel log follower (`kmsg`)
//! and the kernel-OOM detector built on it and on the `oom_kill` counters (`kernel_oom`).
//!
//! Nothing here decides: parsing lives in `oomguard_core`, the decision in `watch`, the kill in
//! `act`. Design notes and measurements: `docs/kill-path.md`, `docs/tell.md`.

pub mod kernel_oom;
pub mod kmsg;
pub mod memcg_v1;
pub mod psi;

/// An I/O error of a sensor: what was tried, on which file, and the errno. The one I/O variant
/// of [`psi::PsiError`], [`memcg_v1::MemcgError`] and [`kmsg::KmsgError`] (each `Io(..)`).
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct SenseIoError {
    /// What we tried (`open`, `poll`, `write trigger to`...).
    pub op: &'static str,
    /// The file or device.
    pub path: std::path::PathBuf,
    /// The errno.
    #[source]
    pub source: std::io::Error,
}

/// Reads a whole small kernel file through an open descriptor, from offset 0, into `buf`.
///
/// One `pread` into the buffer sized at start (meminfo is ~1.5 KiB): a seq_file hands out the
/// whole text in one read when it fits, so a short read is the end of the file. Seek + read to
/// EOF took three syscalls, and the kernel built the meminfo text twice (once more for the read
/// that returns 0). earlyoom reads meminfo with one `pread` too; idle CPU side by side is in
/// docs/benchmarks.md.
pub fn reread(f: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // Into the buffer's spare capacity: zero-filling 8 KiB before every read was a visible
    // part of the idle loop's user time.
    buf.clear();
    if buf.capacity() < 8192 {
        buf.reserve(8192);
    }
    loop {
        let len = buf.len();
        let spare = buf.capacity() - len;
        // SAFETY: pread writes at most `spare` bytes into the vector's spare capacity, which
        // it owns; only the bytes written are then counted in by set_len.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf.as_mut_ptr().add(len).cast(),
                spare,
                len as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        // SAFETY: the kernel initialised `n` bytes after `len`, within capacity.
        unsafe { buf.set_len(len + n) };
        if n == 0 || n < spare {
            return Ok(());
        }
        // Filled the buffer: there may be more.
        buf.reserve(buf.capacity());
    }
}
