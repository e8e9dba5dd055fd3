//! Release chores: `cargo run -p xtask -- dist [DIR]` writes (by default into `dist/`) the man pages and shell completions
//! that the .deb ships, all generated from `oomguard::cli::Cli`, so a new subcommand or flag
//! appears in them with no edit here.
//!
//! What is generated and what is hand-written:
//! - `man/man1/oomguard.1`: NAME, SYNOPSIS, DESCRIPTION, OPTIONS and the subcommand list from
//!   clap_mangen, then one section per subcommand (its synopsis, description and options, also
//!   from clap_mangen), then the hand-written sections in `man/oomguard.1.roff` (EXIT STATUS,
//!   ENVIRONMENT, FILES, EXAMPLES, SEE ALSO).
//! - `man/man1/oomguard-SUB.1`: one page per subcommand, as git ships `git-log(1)`.
//! - `man/man5/oomguard.toml.5`: hand-written (`man/oomguard.toml.5.roff`), with the shipped
//!   default config appended verbatim as its EXAMPLE, so the page cannot drift from the file.
//! - `completions/{oomguard.bash,_oomguard,oomguard.fish}`: clap_complete.
//!
//! The xtask is kept out of the `oomguard` binary so the daemon does not link roff and completion
//! generators it never runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// Hand-written sections of oomguard(1), appended after the generated ones.
const OOMGUARD_1_EXTRA: &str = include_str!("../man/oomguard.1.roff");
/// oomguard.toml(5), hand-written; `@DEFAULT_CONFIG@` is replaced with the shipped file.
const OOMGUARD_TOML_5: &str = include_str!("../man/oomguard.toml.5.roff");
/// The default config the package installs as /etc/oomguard/oomguard.toml.
const DEFAULT_CONFIG: &str = include_str!("../../../packaging/oomguard.toml");

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dist", dir] => dist(Path::new(dir)),
        ["dist"] => dist(&default_dist_dir()),
        _ => bail!("usage: cargo run -p xtask -- dist [DIR]   (default: dist/ in the workspace)"),
    }
}

/// `dist/` at the workspace root, where the .deb's assets point (crates/oomguard/Cargo.toml).
/// Deliberately not under `target/`: cargo-deb treats files under `target/release/` as build
/// products and would not gzip the man pages as Debian policy asks, and warns about any other
/// `target/` path.
fn default_dist_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root).join("dist")
}

/// Writes every generated artefact under `dir` (created if missing, files overwritten).
fn dist(dir: &Path) -> Result<()> {
    let man1 = dir.join("man/man1");
    let man5 = dir.join("man/man5");
    let comp = dir.join("completions");
    for d in [&man1, &man5, &comp] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }

    write(&man1.join("oomguard.1"), &oomguard_1()?)?;
    for sub in visible_subcommands(&built_cli()) {
        let name = format!("oomguard-{}", sub.get_name());
        let page = clap_mangen::Man::new(sub.clone().name(name.clone()))
            .title(name.to_uppercase())
            .source(source())
            .manual("oomguard manual");
        let mut buf = Vec::new();
        page.render(&mut buf)?;
        buf.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBoomguard\\fR(1), \\fBoomguard.toml\\fR(5)\n");
        write(&man1.join(format!("{name}.1")), &buf)?;
    }
    write(&man5.join("oomguard.toml.5"), oomguard_toml_5().as_bytes())?;

    for (shell, file) in [
        (Shell::Bash, "oomguard.bash"),
        (Shell::Zsh, "_oomguard"),
        (Shell::Fish, "oomguard.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(
            shell,
            &mut oomguard::cli::Cli::command(),
            "oomguard",
            &mut buf,
        );
        write(&comp.join(file), &buf)?;
    }
    println!("wrote man pages and completions to {}", dir.display());
    Ok(())
}

/// The CLI with clap's derived settings applied (bin names, help flags), as at run time.
fn built_cli() -> clap::Command {
    let mut cmd = oomguard::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn visible_subcommands(cmd: &clap::Command) -> Vec<clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect()
}

fn source() -> String {
    format!("oomguard {}", env!("CARGO_PKG_VERSION"))
}

/// oomguard(1): the generated top half, a section per subcommand, the hand-written rest.
fn oomguard_1() -> Result<Vec<u8>> {
    let cmd = built_cli();
    let man = clap_mangen::Man::new(cmd.clone())
        .source(source())
        .manual("oomguard manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;

    for sub in visible_subcommands(&cmd) {
        // A subcommand's page rendered by clap_mangen, its section headings demoted to
        // subsections under one `.SH "OOMGUARD SUB"` heading: man(7) has only two heading levels.
        let full_name = format!("oomguard {}", sub.get_name());
        let page = clap_mangen::Man::new(sub.clone().name(full_name.clone()));
        let mut part = Vec::new();
        page.render_synopsis_section(&mut part)?;
        page.render_description_section(&mut part)?;
        page.render_options_section(&mut part)?;
        writeln!(out, ".SH \"{}\"", full_name.to_uppercase())?;
        out.extend_from_slice(&demote_headings(&String::from_utf8_lossy(&part)).into_bytes());
    }

    man.render_version_section(&mut out)?;
    out.extend_from_slice(OOMGUARD_1_EXTRA.as_bytes());
    Ok(out)
}

/// `.SH X` → `.SS X`, leaving every other line alone.
fn demote_headings(roff: &str) -> String {
    roff.lines()
        .map(|l| match l.strip_prefix(".SH ") {
            Some(rest) => format!(".SS {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

/// oomguard.toml(5) with the shipped config as its example. Each line of the file is escaped
/// for roff: a leading `.` or `'` would be read as a request, and `\` starts an escape.
fn oomguard_toml_5() -> String {
    let mut example = String::new();
    for line in DEFAULT_CONFIG.lines() {
        let escaped = line.replace('\\', "\\e");
        if escaped.starts_with('.') || escaped.starts_with('\'') {
            example.push_str("\\&");
        }
        example.push_str(&escaped);
        example.push('\n');
    }
    OOMGUARD_TOML_5
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@DEFAULT_CONFIG@", example.trim_end())
}

fn write(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_subcommand_has_a_section_in_oomguard_1() {
        let page = String::from_utf8(oomguard_1().unwrap()).unwrap();
        let subs = visible_subcommands(&built_cli());
        assert!(!subs.is_empty());
        for sub in subs {
            let heading = format!(".SH \"OOMGUARD {}\"", sub.get_name().to_uppercase());
            assert!(page.contains(&heading), "no {heading} in oomguard.1");
        }
        for hand in ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"] {
            assert!(page.contains(&format!(".SH \"{hand}\"")), "no {hand}");
        }
    }

    #[test]
    fn every_hook_variable_is_in_environment() {
        // The variables come from `tell::fields::pairs` (and OOMGUARD_HOOK from the hook runner);
        // read the names from its source so a new field cannot go undocumented.
        let src = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../oomguard/src/tell/fields.rs"),
        )
        .unwrap();
        let body = src.split("pub fn pairs(").nth(1).unwrap();
        let body = body.split("\n}\n").next().unwrap();
        let mut names: Vec<&str> = body
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|w| {
                w.len() > 1
                    && w.chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            })
            .collect();
        names.push("HOOK");
        assert!(names.len() > 20, "{names:?}");
        for n in names {
            let var = format!("\\fBOOMGUARD_{n}\\fR");
            assert!(
                OOMGUARD_1_EXTRA.contains(&var),
                "OOMGUARD_{n} is not in ENVIRONMENT"
            );
        }
    }

    #[test]
    fn demote_touches_only_section_headings() {
        assert_eq!(
            demote_headings(".SH OPTIONS\n.TP\n\\fB\\-\\-json\\fR\n"),
            ".SS OPTIONS\n.TP\n\\fB\\-\\-json\\fR\n"
        );
    }

    #[test]
    fn the_config_example_is_escaped_for_roff() {
        let page = oomguard_toml_5();
        assert!(!page.contains("@DEFAULT_CONFIG@") && !page.contains("@VERSION@"));
        // The shipped sshd rule has `\\(deleted\\)` in TOML; roff must get `\e` for each `\`,
        // or groff would read `\(de` as a special character.
        assert!(DEFAULT_CONFIG.contains(r"( \\(deleted\\))"));
        assert!(
            page.contains(r"( \e\e(deleted\e\e))"),
            "backslashes not escaped"
        );
        // No example line may start a roff request.
        let example = page.split(".nf\n").nth(1).unwrap_or_default();
        for line in example.lines().take_while(|l| *l != ".fi") {
            assert!(!line.starts_with('.') && !line.starts_with('\''), "{line}");
        }
    }
}
