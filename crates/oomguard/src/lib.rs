//! oomguard: the I/O half. Readers of the live system (each with an injectable root), the
//! subcommands' bodies, and the sinks that turn events into text, JSON and metrics. Parsing and
//! policy live in `oomguard-core`; `main.rs` only parses the command line and maps errors to exit
//! codes.

pub mod act;
pub mod cli;
pub mod doctor;
pub mod drill;
pub mod events;
pub mod explain;
pub mod host;
#[cfg(test)]
pub(crate) mod kernel_skip;
pub mod rank;
pub mod replay;
pub mod run;
pub mod sense;
pub mod tell;
pub mod term;
#[cfg(test)]
pub(crate) mod testutil;
pub mod watch;
