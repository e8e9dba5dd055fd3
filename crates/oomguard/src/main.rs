//! The `oomguard` binary: parse the command line, run the subcommand, map the outcome to the
//! documented exit status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use oomguard::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each subcommand documents its own exit statuses; this is the status for "could not run"
    // (explain: 2 = usage or I/O error; rank and doctor: 3, since doctor uses 0-2 for severities).
    let (result, error_code) = match &cli.command {
        Command::Explain(args) => (oomguard::explain::run(args).map(|s| s as i32), 2),
        Command::Rank(args) => (oomguard::rank::run(args), 3),
        Command::Doctor(args) => (oomguard::doctor::run(args), 3),
        Command::Run(args) => (oomguard::run::run(args).map(i32::from), 2),
        Command::Watch(args) => (oomguard::watch::run(args), 2),
        Command::Events(args) => (oomguard::events::run(args), 2),
        Command::Replay(args) => (oomguard::replay::run(args), 2),
        Command::Drill(args) => (oomguard::drill::run(args), 2),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(error_code)),
        Err(e) => {
            eprintln!("oomguard: error: {e:#}");
            ExitCode::from(error_code)
        }
    }
}
