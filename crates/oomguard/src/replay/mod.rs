//! `oomguard replay`: every kernel OOM report with a task dump, in any log `explain` reads (and
//! the kernel reports in oomguard's own event log), replayed through oomguard's badness and the
//! config's rules: whom the kernel chose, whom oomguard would choose, whether they agree and
//! why not. Where the event log holds the daemon's readings before a kill, it also says when
//! the config's triggers would have fired and how much earlier than the kernel.
//!
//! The replay itself is pure (`oomguard_core::replay`); this module reads, matches releases and
//! readings to reports, and prints text, JSON lines or an HTML page (`render.rs`).
//!
//! Exit status: 0 every replayed report agrees, 1 some differ or none could be replayed, 2
//! usage or I/O error.

pub mod input;
pub mod render;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use oomguard_core::config::{self, Config};
use oomguard_core::event::OomEvent;
use oomguard_core::oomlog::{Parser, Prefilter};
use oomguard_core::policy::Policy;
use oomguard_core::replay::{self as core, Leads, Outcome, Replay};

use crate::explain::{input as explain_input, scan};
use crate::term::ColorChoice;

/// How far before a kernel kill the daemon's readings count as "leading up to it".
pub const LEAD_WINDOW_S: f64 = 600.0;

/// `oomguard replay` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Log files to read (plain or gzip-compressed; every format `explain` reads); `-` reads
    /// stdin. With none and no --events: this machine's kernel log, as `explain` finds it.
    pub files: Vec<PathBuf>,
    /// The config whose rules, kill unit and triggers to replay (TOML, as `watch` reads it).
    /// Default: oomguard's built-in defaults (no rules), under which replay must choose the
    /// kernel's own victim whenever the dump is complete.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// oomguard's event log (JSON lines): the kernel reports the daemon recorded are replayed
    /// too, and its readings before each kernel kill say when the triggers would have fired.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// One JSON object per report: kernel_victim_pid, replay_victim_pid, agrees, reason, and the
    /// candidates with their badness.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page (explain's style, no scripts) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Colour the text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// One report replayed, with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub input: String,
    pub line: Option<u64>,
    pub time: Option<String>,
    #[serde(flatten)]
    pub replay: Replay,
    /// The daemon's readings before this kill, when the event log has them.
    pub triggers: Option<Leads>,
}

/// Agreement over all reports.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub replayed: usize,
    pub agree: usize,
    pub not_replayable: usize,
    pub by_outcome: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    pub fn add(&mut self, r: &Replay) {
        if r.outcome == Outcome::NotReplayable {
            self.not_replayable += 1;
            return;
        }
        self.replayed += 1;
        if r.agrees {
            self.agree += 1;
        }
        let key = serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *self.by_outcome.entry(key).or_default() += 1;
    }
}

/// Loads the config to replay: a file, or the built-in defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config {}", p.display()))?;
            Ok(config::parse(&text, &p.display().to_string())?)
        }
    }
}

/// Replays every report of one input; `sink` gets each.
pub fn replay_input(
    input: explain_input::Input,
    policy: &Policy,
    cfg: &Config,
    sink: &mut dyn FnMut(Replayed) -> io::Result<()>,
) -> io::Result<u64> {
    let releases = input::Releases::default();
    let mut tap = input::ReleaseTap::new(input.reader, releases.clone());
    let mut parser = Parser::new();
    let name = input.name.clone();
    let mut each = |ev: OomEvent| -> io::Result<()> {
        let v = input::release_at(&releases.borrow(), ev.line);
        let r = core::replay(&ev, v, policy, cfg.kill.unit);
        sink(Replayed {
            input: name.clone(),
            line: ev.line,
            time: ev.time.clone(),
            replay: r,
            triggers: None,
        })
    };
    let stats = scan::scan(&mut tap, &mut parser, &Prefilter::new(), &mut each)?;
    Ok(stats.lines)
}

/// Runs `replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<i32> {
    let cfg = load_config(args.config.as_deref())?;
    let policy = Policy::compile(&cfg.rules, 0).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let style = crate::term::Style::for_stdout(args.color);
    let events = match &args.events {
        Some(p) => Some(input::read_event_log(p)?),
        None => None,
    };
    if let Some(e) = &events {
        for w in &e.warnings {
            eprintln!("oomguard: {w}");
        }
    }
    let mut all: Vec<Replayed> = Vec::new();
    let mut failed = false;
    let mut inputs = Vec::new();
    if args.files.is_empty() && events.is_none() {
        let (input, note) = explain_input::system_log(Path::new("/"))?;
        eprintln!("oomguard: {note}");
        inputs.push(Ok(input));
    }
    for f in &args.files {
        inputs.push(explain_input::open_arg(f));
    }
    for input in inputs {
        let input = match input {
            Ok(i) => i,
            Err(e) => {
                eprintln!("oomguard: {e:#}");
                failed = true;
                continue;
            }
        };
        let name = input.name.clone();
        let mut sink = |r: Replayed| -> io::Result<()> {
            all.push(r);
            Ok(())
        };
        if let Err(e) = replay_input(input, &policy, &cfg, &mut sink) {
            eprintln!("oomguard: cannot read {name}: {e}");
            failed = true;
        }
    }
    if let (Some(log), Some(path)) = (&events, &args.events) {
        for (line, ev) in &log.reports {
            all.push(Replayed {
                input: path.display().to_string(),
                line: Some(*line),
                time: ev.time.clone(),
                replay: core::replay(ev, None, &policy, cfg.kill.unit),
                triggers: None,
            });
        }
        attach_leads(&mut all, log, &cfg, path);
    }
    let mut tally = Tally::default();
    for r in &all {
        tally.add(&r.replay);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = (|| -> io::Result<()> {
        for (n, r) in all.iter().enumerate() {
            if args.json {
                serde_json::to_writer(&mut out, r).map_err(io::Error::other)?;
                out.write_all(b"\n")?;
            } else {
                out.write_all(render::text(r, n + 1, &style).as_bytes())?;
            }
        }
        if !args.json {
            out.write_all(render::summary(&tally, &style).as_bytes())?;
        }
        if let Some(log) = &events {
            if !args.json && log.kernel_kills_unix_s.is_empty() {
                writeln!(
                    out,
                    "The event log has no kernel kill: nothing to time the triggers against."
                )?;
            }
        }
        out.flush()
    })();
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    if let Some(path) = &args.html {
        std::fs::write(path, render::html(&all, &tally))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("oomguard: wrote {}", path.display());
    }
    Ok(if failed {
        2
    } else if tally.replayed > 0 && tally.agree == tally.replayed {
        0
    } else {
        1
    })
}

/// For every kernel kill with a known time, the daemon's readings before it.
fn attach_leads(all: &mut [Replayed], log: &input::EventLog, cfg: &Config, path: &Path) {
    let glob = |pat: &str, p: &str| crate::watch::cgroups::glob_match(pat, p);
    let name = path.display().to_string();
    for r in all.iter_mut() {
        let at = if r.input == name {
            log.reports
                .iter()
                .find(|(l, _)| Some(*l) == r.line)
                .and_then(|(_, e)| e.unix_time_s)
        } else {
            r.time
                .as_deref()
                .and_then(oomguard_core::since::parse_datetime)
        };
        let memcg = r
            .replay
            .scope
            .strip_prefix("memcg ")
            .filter(|m| m.starts_with('/'));
        if let Some(at) = at {
            r.triggers = Some(core::leads(
                &log.readings,
                at,
                memcg,
                cfg,
                LEAD_WINDOW_S,
                &glob,
            ));
        }
    }
}
