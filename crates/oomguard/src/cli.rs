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
    /// Who dies next: every process as the kernel's OOM killer would rank it, most likely first.
    Rank(RankArgs),
    /// Audit this machine's OOM risk: each finding with severity, evidence and fix.
    ///
    /// Exit status: 0 nothing above info, 1 worst finding is a warning, 2 worst is critical,
    /// 3 the audit could not run.
    Doctor(DoctorArgs),
    /// Run a command in its own memory cgroup, say why each death happened, restart it.
    ///
    /// Creates a memory cgroup oomguard/NAME (v2 where the memory controller is on v2, else v1)
    /// below oomguard's own, applies the limits, starts CMD in it with stdin/stdout/stderr
    /// untouched, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT, explains each death (exit status,
    /// signal, kernel OOM kill with its figures from /dev/kmsg) to stderr and, as the daemon
    /// does, to the event log, journal and hooks of its config file, and restarts with
    /// exponential backoff. Exit
    /// status: the command's own (128+N for a signal N, 137 for an OOM kill), 2 for usage or
    /// set-up errors, 126/127 when CMD cannot be executed / is not found. See docs/run.md.
    Run(crate::run::RunArgs),
    /// The prevention daemon: act before the kernel's OOM killer must.
    ///
    /// Watches MemAvailable, free swap, PSI and memory cgroups' headroom; when a rule fires,
    /// signals the right victim (the kernel's badness plus the config's rules) through a pidfd,
    /// SIGTERM then SIGKILL, releases its memory with process_mrelease, and waits until memory
    /// is back before choosing another. Exit status: 0 on SIGTERM/SIGINT or when --check accepts
    /// the config; 2 for a bad config or flag, or a start-up failure.
    Watch(crate::watch::WatchArgs),
    /// Show the daemon's event log: its kills, its warnings and the kernel's OOM kills.
    ///
    /// Exit status: 0, or 2 when the log cannot be read.
    Events(EventsArgs),
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

#[derive(Debug, clap::Args)]
pub struct RankArgs {
    /// Rank as the memcg OOM killer of this cgroup would (a path as in /proc/PID/cgroup, or a
    /// directory under the cgroup root).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Show the top N candidates (0 = all).
    #[arg(short = 'n', default_value_t = 20)]
    pub count: usize,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Refresh in place like top, with MemAvailable, swap and PSI.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Raw byte counts instead of human-readable sizes.
    #[arg(long)]
    pub bytes: bool,
    /// Root of the proc filesystem (for tests and containers).
    #[arg(long, default_value = "/proc", hide = true)]
    pub proc_root: std::path::PathBuf,
    /// Root of the cgroup filesystems.
    #[arg(long, default_value = "/sys/fs/cgroup", hide = true)]
    pub cgroup_root: std::path::PathBuf,
    /// Benchmark mode: one full scan with scores, printed as `pid rss comm` lines (bench/scan.sh).
    #[arg(long, hide = true)]
    pub scan_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// A process name that must be protected (negative oom_score_adj); repeatable. Defaults:
    /// sshd, systemd-journald, systemd, init.
    #[arg(long = "critical", value_name = "NAME")]
    pub critical: Vec<String>,
    /// Root of the proc filesystem (for tests and containers).
    #[arg(long, default_value = "/proc", hide = true)]
    pub proc_root: std::path::PathBuf,
    /// Root of the cgroup filesystems.
    #[arg(long, default_value = "/sys/fs/cgroup", hide = true)]
    pub cgroup_root: std::path::PathBuf,
    /// Root of sysfs (zram devices under block/).
    #[arg(long, default_value = "/sys", hide = true)]
    pub sys_root: std::path::PathBuf,
    /// Read kernel OOM kills from this log instead of this machine's kernel log (/dev/kmsg,
    /// dmesg, journalctl -k, kern.log); `none` skips the check.
    #[arg(long, value_name = "FILE")]
    pub kernel_log: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// The event log (JSON lines; rotated files beside it are read first). Default: the
    /// config's `events.log`, else /var/log/oomguard/events.jsonl.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The daemon's config file, for `events.log`.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/oomguard/oomguard.toml"
    )]
    pub config: PathBuf,
    /// Keep running and print new events as they are logged.
    #[arg(short, long)]
    pub follow: bool,
    /// Print the events as stored: one JSON object per line (docs/event-schema.md).
    #[arg(long)]
    pub json: bool,
    /// Only events from this time on: 2026-11-29T14:00:00Z, "2026-11-29 14:00" (UTC),
    /// @UNIX_SECONDS, or a duration ago such as 10m, 2h, 1d.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}
