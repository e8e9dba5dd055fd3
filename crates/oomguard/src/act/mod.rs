//! Acting: the kill path. Processes pinned by pidfd and the signals, memory release and waits
//! done through the pin (`pidfd`), and the kill units (one process, its process group, its
//! memory cgroup) behind the [`actuator::Actuator`] trait, so that a decision's execution can be
//! recorded instead of performed (`RecordingActuator`) or only logged (`DryRunActuator`).
//!
//! The actions short of a kill (freeze, throttle, reclaim, and their undo) sit behind their own
//! trait in [`restrain`], with the state file that lets a restarted daemon undo them; the
//! `restart` step's `systemctl` run sits behind [`restart::UnitRestarter`].
//!
//! Nothing here chooses a victim: the daemon's policy does (`oomguard_core::policy`), and hands
//! over a pinned process and a plan. Design notes and measurements: `docs/kill-path.md`.

pub mod actuator;
pub mod pidfd;
pub mod report;
pub mod restart;
pub mod restrain;
