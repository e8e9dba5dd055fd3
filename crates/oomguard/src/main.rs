use clap::Parser;

fn main() {
    let cli = oomguard::cli::Cli::parse();
    match cli.command {
        oomguard::cli::Command::Explain(_) => {}
        oomguard::cli::Command::Rank(args) => exit(oomguard::rank::run(&args)),
        oomguard::cli::Command::Doctor(args) => exit(oomguard::doctor::run(&args)),
    }
}

/// Maps a subcommand's result to the process exit status; errors print their context chain and
/// exit 3 (doctor documents 0-2 as severities).
fn exit(r: anyhow::Result<i32>) {
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("oomguard: {e:#}");
            std::process::exit(3);
        }
    }
}
