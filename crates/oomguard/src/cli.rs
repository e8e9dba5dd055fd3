//! The command line, defined once: clap derives the parser, help, and (at packaging time) the man
//! page and completions from these types. Every subcommand's flags are here; the subcommands
//! (`explain`, `rank`, `doctor`, `run`, `watch`, `events`) take them from here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::run::{backoff_arg, duration_arg, pct_arg, size_arg, RestartArg};
use crate::term::ColorChoice;
use oomguard_core::run::BackoffRange;

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
    Run(RunArgs),
    /// The prevention daemon: act before the kernel's OOM killer must.
    ///
    /// Watches MemAvailable, free swap, PSI and memory cgroups' headroom; when a rule fires,
    /// signals the right victim (the kernel's badness plus the config's rules) through a pidfd,
    /// SIGTERM then SIGKILL, releases its memory with process_mrelease, and waits until memory
    /// is back before choosing another. Exit status: 0 on SIGTERM/SIGINT or when --check accepts
    /// the config; 2 for a bad config or flag, or a start-up failure.
    Watch(WatchArgs),
    /// Show the daemon's event log: its kills, its warnings and the kernel's OOM kills.
    ///
    /// Exit status: 0, or 2 when the log cannot be read.
    Events(EventsArgs),
    /// Replay past kernel OOM reports: would oomguard, with this config, have chosen the
    /// kernel's victim?
    ///
    /// For every kernel OOM report with a task dump (any log `explain` reads, and with --events
    /// the reports in oomguard's event log): the candidates as the kernel saw them (each row's
    /// badness with the report's kernel era, in the scope of its constraint and memcg), whom the
    /// kernel chose, whom oomguard would choose with the config's rules and kill unit, whether
    /// they agree, and why not in one line (a tie broken by the kernel's scan order, the era's
    /// rounding, rows missing from the dump, a task oomguard never chooses, the config's rules).
    /// With the default config replay must choose the kernel's own victim whenever the dump is
    /// complete (docs/replay.md has the agreement over every fixture report). With --events,
    /// the daemon's readings before each kernel kill say when this config's triggers would have
    /// fired and how much earlier than the kernel. Exit status: 0 every replayed report agrees,
    /// 1 some differ or none could be replayed, 2 usage or I/O error.
    Replay(crate::replay::ReplayArgs),
    /// Prove the deployment on this machine: provoke a small confined OOM and check that the
    /// running daemon handles it end to end.
    ///
    /// Reads the daemon's config (--config) for its guarded cgroups, event log, metrics address,
    /// hooks and notifications; finds the `oomguard watch` running with that config; creates a
    /// throwaway memory cgroup named by a [[cgroups]] glob (or uses --cgroup), limited to
    /// 128 MiB with no swap beyond it; starts a hog there (oom_score_adj 1000, joined before it
    /// allocates, at most 256 MiB); and checks, one line per step, that the daemon killed it
    /// before the kernel (the cgroup's oom_kill counter stays 0), that the kill is in the event
    /// log and the journal (or "skipped: no journald"), that pre_kill/post_kill hooks ran
    /// without failing and /metrics counted the kill (oomguard_kills_total,
    /// oomguard_hook_runs_total, oomguard_hook_failures_total), and with --notify that a
    /// notification was sent; then removes the hog and the cgroup. It refuses, starting
    /// nothing, where it cannot confine the hog (not root, no memory controller, no limit).
    /// Exit status: 0 every step passed, 1 a step failed (named on its line), 2 usage error.
    Drill(crate::drill::DrillArgs),
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
    /// Where the kubelet keeps its logs (`pods/<namespace>_<pod>_<uid>/<container>/` and
    /// `containers/*.log`): the names of a killed container's pod and container are read from
    /// there when the report's cgroup path shows a pod uid. Missing directories are fine.
    #[arg(long, value_name = "DIR", default_value = "/var/log")]
    pub kubelet_logs: PathBuf,
    /// oomguard's event log (JSON lines): each kernel kill the daemon saw live is joined to
    /// its record there (same pid and name, same time) to show what led up to it (the flight
    /// recorder's minute). Default: /var/log/oomguard/events.jsonl when it exists; never
    /// required.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
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

/// `oomguard run` arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Hard memory limit of the command's cgroup (memory.max on v2, memory.limit_in_bytes on
    /// v1): K, M, G, T are powers of 1024, e.g. 512M.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub memory_max: Option<u64>,
    /// Throttling limit (memory.high; cgroup v2 only: refused on v1).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub memory_high: Option<u64>,
    /// Warn (stderr line and event) each time usage rises past PCT percent of --memory-max.
    #[arg(long, value_name = "PCT", value_parser = pct_arg)]
    pub warn_at: Option<u8>,
    /// When to start the command again after it died.
    #[arg(long, value_enum, default_value_t = RestartArg::OnFailure)]
    pub restart: RestartArg,
    /// Give up after this many restarts (default: no limit).
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// Delay before a restart: MIN, doubled after each quick death, at most MAX.
    #[arg(long, value_name = "MIN..MAX", default_value = "1s..60s", value_parser = backoff_arg)]
    pub backoff: BackoffRange,
    /// A run at least this long resets the backoff to MIN.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration_arg)]
    pub healthy_after: Duration,
    /// Service name, used for the cgroup (`oomguard/NAME`) and in messages (default: the
    /// command's base name and oomguard's pid).
    #[arg(long)]
    pub name: Option<String>,
    /// Create the cgroup (`oomguard/NAME`) below this cgroup directory instead of below
    /// oomguard's own cgroup.
    #[arg(long, value_name = "DIR")]
    pub cgroup_parent: Option<PathBuf>,
    /// Kill the worst process in the cgroup (the kernel's memcg badness) with SIGKILL when usage
    /// comes within --guard-headroom of --memory-max, before the kernel's OOM killer must.
    #[arg(long, requires = "memory_max")]
    pub guard: bool,
    /// How close to the limit --guard acts (default: 5% of --memory-max, at least 2M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg, requires = "guard")]
    pub guard_headroom: Option<u64>,
    /// After a forwarded SIGINT/SIGTERM/SIGQUIT, SIGKILL the cgroup if the command has not
    /// exited within this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration_arg)]
    pub stop_timeout: Duration,
    /// The daemon's config file (TOML), for its `[events]` (event log, journal) and
    /// `[[hooks]]`. Default: /etc/oomguard/oomguard.toml when it exists, else the built-in
    /// defaults (event log /var/log/oomguard/events.jsonl, journal on).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The JSON-lines event log, overriding the config's `events.log` (`""` turns it off).
    #[arg(long, value_name = "PATH")]
    pub event_log: Option<String>,
    /// Also write every event (deaths, OOM kills, warnings) as one JSON line to FILE
    /// (appended, never rotated; `-` is stderr), besides the event log. Schema:
    /// docs/event-schema.md.
    #[arg(long, value_name = "FILE")]
    pub json_events: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `oomguard watch` flags. Every flag overrides the config file's key of the same meaning.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WatchArgs {
    /// Config file (TOML). Default: /etc/oomguard/oomguard.toml when it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the config and flags, print the effective settings, and exit.
    #[arg(long)]
    pub check: bool,
    /// Log every decision but never send a signal.
    #[arg(long)]
    pub dry_run: bool,
    /// SIGTERM when MemAvailable falls below SIZE or PCT of MemTotal (memory.term_below).
    #[arg(long, value_name = "SIZE|PCT")]
    pub mem_min: Option<String>,
    /// SIGKILL when MemAvailable falls below SIZE or PCT of MemTotal (memory.kill_below).
    #[arg(long, value_name = "SIZE|PCT")]
    pub mem_kill: Option<String>,
    /// SIGTERM when free swap falls below SIZE or PCT of SwapTotal (only where swap exists).
    #[arg(long, value_name = "SIZE|PCT")]
    pub swap_min: Option<String>,
    /// Act when PSI memory `some` avg10 stays above PCT for DURATION (default 10s).
    #[arg(long, value_name = "PCT[/DURATION]")]
    pub psi_some: Option<String>,
    /// Act when PSI memory `full` avg10 stays above PCT for DURATION (default 10s).
    #[arg(long, value_name = "PCT[/DURATION]")]
    pub psi_full: Option<String>,
    /// Guard this memory cgroup (path as in /proc/PID/cgroup, `*` globs allowed); repeatable.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Act when a guarded cgroup's working set comes within SIZE or PCT of its limit.
    #[arg(long, value_name = "SIZE|PCT")]
    pub cgroup_headroom: Option<String>,
    /// Also act when a guarded cgroup's own memory.pressure (cgroup v2) shows `some` avg10
    /// above PCT for DURATION (like 20/5s): stalls on memory without coming near the limit.
    #[arg(long, value_name = "PCT[/DURATION]")]
    pub cgroup_psi: Option<String>,
    /// Prefer processes whose name matches RE (score +300, like oom_score_adj +300); repeatable.
    #[arg(long, value_name = "RE")]
    pub prefer: Vec<String>,
    /// Avoid processes whose name matches RE (score -300); repeatable.
    #[arg(long, value_name = "RE")]
    pub avoid: Vec<String>,
    /// Never kill processes whose name matches RE; repeatable.
    #[arg(long, value_name = "RE")]
    pub protect: Vec<String>,
    /// What one kill takes down.
    #[arg(long, value_name = "UNIT", value_parser = ["process", "pgroup", "cgroup"])]
    pub kill_group: Option<String>,
    /// How long a victim may take to exit after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION")]
    pub term_grace: Option<String>,
    /// Only processes in this memory cgroup (subtree) may be chosen system-wide.
    #[arg(long, value_name = "PATH")]
    pub candidates_cgroup: Option<String>,
    /// Only descendants of this pid may be chosen system-wide.
    #[arg(long, value_name = "PID")]
    pub candidates_parent: Option<i32>,
    /// Serve Prometheus metrics on ADDR (`127.0.0.1:9748`, or `:PORT` for loopback).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The JSON-lines event log (default /var/log/oomguard/events.jsonl; `""` turns it off).
    #[arg(long, value_name = "PATH")]
    pub event_log: Option<String>,
    /// Print a status line (memory, PSI, loop figures) every DURATION.
    #[arg(long, value_name = "DURATION")]
    pub report_interval: Option<String>,
}
