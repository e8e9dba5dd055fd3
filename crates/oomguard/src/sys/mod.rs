//! Low-level, daemon-independent building blocks on the real kernel: pinned processes and the
//! signals, memory release and waits done through them (`pidfd`), the kill path behind a trait
//! (`actuator`), pressure and cgroup notifications as pollable fds (`psi`, `memcg_v1`), the
//! kernel log follower (`kmsg`) and self-protection (`mlock`).
//!
//! Everything here is one syscall or file away from the kernel and nothing here decides
//! anything: parsing lives in `oomguard_core`, policy in the daemon that sits on these.
//! Design notes and measurements: `docs/kill-path.md`.

pub mod actuator;
pub mod kmsg;
pub mod memcg_v1;
pub mod mlock;
pub mod pidfd;
pub mod psi;

#[cfg(test)]
pub(crate) mod testutil;

/// Reads a whole small kernel file through an open descriptor, from offset 0, into `buf`.
///
/// One `pread` into the buffer sized at start (meminfo is ~1.5 KiB): a seq_file hands out the
/// whole text in one read when it fits, so a short read is the end of the file. Seek + read to
/// EOF took three syscalls, and the kernel built the meminfo text twice (once more for the read
/// that returns 0). earlyoom reads meminfo with one `pread` too; idle CPU side by side is in
/// docs/benchmarks.md.
pub fn reread(f: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let size = buf.capacity().max(8192);
    buf.clear();
    buf.resize(size, 0);
    let mut len = 0;
    loop {
        let n = f.read_at(&mut buf[len..], len as u64)?;
        len += n;
        if n == 0 || len < buf.len() {
            break;
        }
        // Filled the buffer: there may be more.
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Ok(())
}
