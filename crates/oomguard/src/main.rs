use clap::Parser;

fn main() {
    let cli = oomguard::cli::Cli::parse();
    match cli.command {
        oomguard::cli::Command::Explain(_) => {}
    }
}
