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
