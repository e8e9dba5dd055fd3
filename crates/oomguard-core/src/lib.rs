//! oomguard-core: the pure half of oomguard.
//!
//! Everything here takes kernel text (`&[u8]`/`&str`) and returns typed values, or takes typed
//! values and returns a decision. Nothing in this crate opens a file, reads a clock or sends a
//! signal; the `oomguard` crate does the I/O and calls in here. That split keeps every parser
//! trivially testable on literal kernel text and fuzzable (see `fuzz/`).

pub mod badness;
pub mod breakdown;
pub mod cgroup_guard;
pub mod config;
pub mod decision;
pub mod diagnose;
pub mod diagnosis;
pub mod event;
pub mod forecast;
pub mod host;
pub mod killpath;
pub mod kmsg;
pub mod oomlog;
pub mod policy;
pub mod recorder;
pub mod replay;
pub mod restrain;
pub mod run;
pub mod since;
pub mod size;
pub mod thrash;
pub mod time;
pub mod trigger;
pub mod units;
pub mod workload;
