//! The command line, defined once: clap derives the parser, help, and (at packaging time) the man
//! page and completions from these types.

use clap::{Parser, Subcommand};

/// Linux userspace OOM guard: explains kernel OOM kills, shows who dies next, prevents OOMs.
#[derive(Debug, Parser)]
#[command(name = "oomguard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain kernel OOM kills found in logs (kern.log, dmesg, journalctl, /dev/kmsg).
    Explain(ExplainArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Log files to read (plain or .gz); `-` reads stdin. With none, this machine's kernel log.
    pub files: Vec<std::path::PathBuf>,
}
