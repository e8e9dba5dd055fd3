//! The `oomguard` binary: parse the command line, run the subcommand, map the outcome to the
//! documented exit status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use oomguard::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Explain(args) => oomguard::explain::run(args).map(|s| s as u8),
        Command::Run(args) => oomguard::run::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("oomguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
