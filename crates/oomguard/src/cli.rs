//! The command line, defined once: clap derives the parser, help, and (at packaging time) the man
//! page and completions from these types.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::term::ColorChoice;

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
    ///
    /// Reads every kernel era's OOM report format (2.6 to 6.x) under any common log prefix, and
    /// says what died, why, and what to change. Exit status: 0 events found, 1 none found,
    /// 2 usage or I/O error.
    Explain(ExplainArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Log files to read (plain or gzip-compressed); `-` reads stdin. With none: this machine's
    /// kernel log (/dev/kmsg, else dmesg, journalctl -k, /var/log/kern.log, /var/log/messages).
    pub files: Vec<PathBuf>,
    /// Print one JSON object per event (schema: docs/event-schema.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (inline CSS and SVG, no scripts) to FILE: per
    /// event the breakdown of memory, the largest tasks, the diagnosis and every parsed
    /// parameter explained; for several events a timeline of kills.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}
