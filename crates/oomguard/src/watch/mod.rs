//! `oomguard watch`: the prevention daemon. Acts before the kernel must: watches MemAvailable,
//! free swap, PSI and memory cgroups' headroom, and signals the right victim (the kernel's badness
//! plus the operator's rules) through a pidfd, SIGTERM then SIGKILL, with `process_mrelease`.
//!
//! This module turns the config file and flags into the effective [`Config`]; `daemon.rs` is the
//! loop (its kill step, candidates and ranking ahead of need in `daemon/`), `cgroups.rs` the
//! per-cgroup watch, `sdnotify.rs` systemd's readiness and watchdog, `mlock.rs` the daemon's
//! self-protection (memory lock, own `oom_score_adj`, shedding start-up pages). Its flags are
//! `crate::cli::WatchArgs`.
//!
//! Exit status: 0 after SIGTERM/SIGINT (or `--check` accepting the config), 2 for a bad config,
//! bad flags or a start-up failure (the message names the file, key and line).

pub mod appear;
pub mod cgroups;
mod daemon;
pub mod mlock;
mod sdnotify;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use oomguard_core::config::{self, CgroupWatch, Config, KillUnit, RuleAction, RuleConfig};
use oomguard_core::size::{self, Amount};

pub use daemon::{Daemon, Setup};

/// The default config file; used when it exists and `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/oomguard/oomguard.toml";

pub use crate::cli::WatchArgs;

/// Reads the config file (if any) and applies the flags on top.
pub fn effective_config(args: &WatchArgs) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let (mut cfg, origin) = match &args.config {
        Some(p) => (load_file(p)?, Some(p.clone())),
        None if Path::new(DEFAULT_CONFIG).exists() => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            (load_file(&p)?, Some(p))
        }
        None => (Config::default(), None),
    };
    apply_flags(&mut cfg, args)?;
    config::validate(&cfg).map_err(|e| anyhow::anyhow!("flags and config together: {e}"))?;
    Ok((cfg, origin))
}

/// Parses one config file.
pub fn load_file(p: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config {}", p.display()))?;
    Ok(config::parse(&text, &p.display().to_string())?)
}

fn flag_amount(name: &str, v: &Option<String>) -> anyhow::Result<Option<Amount>> {
    v.as_deref()
        .map(|s| size::parse_amount(s).with_context(|| format!("--{name}")))
        .transpose()
}

fn apply_flags(cfg: &mut Config, a: &WatchArgs) -> anyhow::Result<()> {
    cfg.dry_run |= a.dry_run;
    if let Some(v) = flag_amount("mem-min", &a.mem_min)? {
        cfg.memory.term_below = v;
    }
    if let Some(v) = flag_amount("mem-kill", &a.mem_kill)? {
        cfg.memory.kill_below = v;
    } else if let (Some(_), Amount::Percent(t)) = (&a.mem_min, cfg.memory.term_below) {
        // Like earlyoom: with only the SIGTERM level given, SIGKILL is half of it.
        if let Amount::Percent(k) = cfg.memory.kill_below {
            if k > t {
                cfg.memory.kill_below = Amount::Percent(t / 2.0);
            }
        }
    } else if let (Some(_), Amount::Bytes(t)) = (&a.mem_min, cfg.memory.term_below) {
        if !matches!(cfg.memory.kill_below, Amount::Bytes(k) if k <= t) {
            cfg.memory.kill_below = Amount::Bytes(t / 2);
        }
    }
    if let Some(v) = flag_amount("swap-min", &a.swap_min)? {
        cfg.swap.term_below = Some(v);
    }
    if let Some(s) = &a.psi_some {
        cfg.psi.some = Some(config::parse_psi(s).map_err(|e| anyhow::anyhow!("--psi-some: {e}"))?);
    }
    if let Some(s) = &a.psi_full {
        cfg.psi.full = Some(config::parse_psi(s).map_err(|e| anyhow::anyhow!("--psi-full: {e}"))?);
    }
    let headroom = flag_amount("cgroup-headroom", &a.cgroup_headroom)?;
    let cgroup_psi = match &a.cgroup_psi {
        Some(s) => Some(config::parse_psi(s).map_err(|e| anyhow::anyhow!("--cgroup-psi: {e}"))?),
        None => None,
    };
    for p in &a.cgroup {
        cfg.cgroups.push(CgroupWatch {
            path: p.clone(),
            headroom: headroom.unwrap_or(Amount::Percent(5.0)),
            psi: None,
        });
    }
    for c in &mut cfg.cgroups {
        if let Some(h) = headroom {
            c.headroom = h;
        }
        if cgroup_psi.is_some() {
            c.psi = cgroup_psi;
        }
    }
    // Flag rules go first: the first matching rule decides, and the command line is the most
    // specific statement of intent.
    let mut flag_rules = Vec::new();
    for (action, list) in [
        (RuleAction::Protect, &a.protect),
        (RuleAction::Prefer, &a.prefer),
        (RuleAction::Avoid, &a.avoid),
    ] {
        for re in list {
            flag_rules.push(RuleConfig {
                action,
                name: Some(re.clone()),
                cmdline: None,
                exe: None,
                cgroup: None,
                user: None,
                adjust: 300,
                diagnose: None,
            });
        }
    }
    flag_rules.append(&mut cfg.rules);
    cfg.rules = flag_rules;
    if let Some(k) = &a.kill_group {
        cfg.kill.unit = match k.as_str() {
            "process" => KillUnit::Process,
            "pgroup" => KillUnit::Pgroup,
            "cgroup" => KillUnit::Cgroup,
            other => bail!("--kill-group {other:?}: expected process, pgroup or cgroup"),
        };
    }
    if let Some(d) = &a.term_grace {
        cfg.kill.term_grace = size::parse_duration(d).context("--term-grace")?;
    }
    if let Some(m) = &a.metrics_listen {
        cfg.metrics.listen = m.clone();
    }
    if let Some(l) = &a.event_log {
        cfg.events.log = l.clone();
    }
    if let Some(c) = &a.candidates_cgroup {
        cfg.candidates_cgroup = Some(c.clone());
    }
    if let Some(p) = a.candidates_parent {
        if p <= 0 {
            bail!("--candidates-parent {p}: expected a pid");
        }
        cfg.candidates_parent_pid = Some(p);
    }
    Ok(())
}

/// `oomguard watch`'s body. Returns the exit code.
pub fn run(args: &WatchArgs) -> anyhow::Result<i32> {
    let (cfg, origin) = effective_config(args)?;
    let report = args
        .report_interval
        .as_deref()
        .map(size::parse_duration)
        .transpose()
        .context("--report-interval")?;
    if args.check {
        let mut cfg = cfg;
        let cgfs = crate::host::CgroupFs::default();
        let mut out = String::new();
        for note in cgroups::normalise_config(&cgfs, &mut cfg.cgroups) {
            out.push_str(&note);
            out.push('\n');
        }
        out.push_str(&describe(&cfg, origin.as_deref()));
        out.push_str(&cfg.thrash.describe());
        out.push_str(&check_thrash_steps(
            &cgfs,
            &cfg,
            Path::new("/run/systemd/system"),
        ));
        out.push_str(&check_cgroups(&cgfs, &cfg));
        print!("{out}");
        return Ok(0);
    }
    let mut d = Daemon::start(cfg, origin, args.clone(), report)?;
    d.run()
}

/// `--check`'s notes on `[thrash] actions` steps this host cannot take: `throttle` and
/// `reclaim` need cgroup v2, `restart` needs systemd as PID 1 (`booted`: its marker
/// directory). Each is refused at run time with the same reason, and the chain escalates.
fn check_thrash_steps(cgfs: &crate::host::CgroupFs, cfg: &Config, booted: &Path) -> String {
    use oomguard_core::config::ActionStep;
    use std::fmt::Write as _;
    let t = &cfg.thrash;
    let mut o = String::new();
    if !t.enable {
        return o;
    }
    let v2 = cgfs.layout().v2_memory_controller;
    for a in &t.actions {
        let why = match a {
            ActionStep::Throttle | ActionStep::Reclaim if !v2 => format!(
                "needs cgroup v2 ({}); {} has no v2 memory controller",
                if *a == ActionStep::Throttle {
                    "memory.high"
                } else {
                    "memory.reclaim"
                },
                cgfs.root().display()
            ),
            ActionStep::Throttle | ActionStep::Reclaim if t.machine && !t.cgroups => {
                "applies to guarded cgroups only, and thrash.cgroups is off".to_owned()
            }
            ActionStep::Restart if !booted.is_dir() => {
                format!("needs systemd as PID 1 ({} is missing)", booted.display())
            }
            _ => continue,
        };
        let _ = writeln!(
            o,
            "warning: thrash.actions: {:?} {why}: it will be refused at run time and the chain escalates to the next step",
            a.label()
        );
    }
    o
}

/// `--check`'s report of the guarded cgroups on this host: the ones each path matches now, and a
/// warning naming the closest existing cgroup for a path that matches none.
fn check_cgroups(cgfs: &crate::host::CgroupFs, cfg: &Config) -> String {
    use std::fmt::Write as _;
    let patterns: Vec<_> = cfg
        .cgroups
        .iter()
        .map(|c| (c.path.clone(), c.headroom))
        .collect();
    if patterns.is_empty() {
        return String::new();
    }
    let mut o = String::new();
    match cgroups::resolve(cgfs, &patterns) {
        Ok(found) => {
            for w in &found {
                let _ = writeln!(o, "cgroup {}: found at {}", w.path, w.dir.display());
            }
            for warning in cgroups::unmatched(cgfs, &patterns, &found) {
                let _ = writeln!(o, "{warning}");
            }
        }
        Err(e) => {
            let _ = writeln!(o, "warning: {e:#}");
        }
    }
    o
}

/// The effective settings, for `--check` and the start-up log.
pub fn describe(cfg: &Config, origin: Option<&Path>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "config: {}",
        origin.map_or("(none: defaults)".to_owned(), |p| p.display().to_string())
    );
    let _ = writeln!(o, "dry_run: {}", cfg.dry_run);
    let _ = writeln!(
        o,
        "memory: SIGTERM below {}, SIGKILL below {} of MemAvailable",
        cfg.memory.term_below, cfg.memory.kill_below
    );
    match cfg.swap.term_below {
        Some(s) => {
            let _ = writeln!(o, "swap: SIGTERM below {s} free (only where swap exists)");
        }
        None => {
            let _ = writeln!(o, "swap: no rule");
        }
    }
    for (n, p) in [("some", cfg.psi.some), ("full", cfg.psi.full)] {
        if let Some(p) = p {
            let _ = writeln!(
                o,
                "psi {n}: avg10 above {}% for {:?}",
                p.avg10_pct, p.duration
            );
        }
    }
    for c in &cfg.cgroups {
        let _ = writeln!(
            o,
            "cgroup {}: act within {} of its limit",
            c.path, c.headroom
        );
    }
    let _ = writeln!(
        o,
        "kill: unit {:?}, SIGTERM grace {:?}, recovery margin {}, recovery timeout {:?}",
        cfg.kill.unit,
        cfg.kill.term_grace,
        size::format_bytes(cfg.kill.recovery_margin),
        cfg.kill.recovery_timeout
    );
    let _ = writeln!(
        o,
        "poll: {:?}..{:?}, planning for fills up to {}/s",
        cfg.poll.min,
        cfg.poll.max,
        size::format_bytes(cfg.poll.fill_rate)
    );
    if cfg.forecast.lead.is_zero() {
        let _ = writeln!(
            o,
            "forecast: no event (lead 0); the time-to-OOM metric stays"
        );
    } else {
        let _ = writeln!(
            o,
            "forecast: event when a scope's time to OOM falls to {:?} (again after it rose above {:?})",
            cfg.forecast.lead,
            cfg.forecast.lead * 2
        );
    }
    let _ = match cfg.recorder.capacity() {
        0 => writeln!(o, "recorder: off"),
        n => writeln!(
            o,
            "recorder: the last {:?} ({n} samples, one per {:?}) on every kill event",
            cfg.recorder.span, cfg.recorder.interval
        ),
    };
    let rule_diagnoses = cfg.rules.iter().any(|r| r.diagnose.is_some());
    if cfg.kill.diagnose.is_empty() && !rule_diagnoses {
        let _ = writeln!(o, "diagnose: none before kills");
    } else {
        let _ = writeln!(
            o,
            "diagnose: {} before each kill (rules' own first), waiting at most {:?}; skipped at the SIGKILL level",
            if cfg.kill.diagnose.is_empty() {
                "only for rules that set one".to_owned()
            } else {
                format!("{:?}", cfg.kill.diagnose)
            },
            cfg.kill.diagnose_timeout
        );
    }
    for (i, r) in cfg.rules.iter().enumerate() {
        let _ = writeln!(
            o,
            "rule {i}: {:?} name={:?} cmdline={:?} exe={:?} cgroup={:?} user={:?} adjust={}{}",
            r.action,
            r.name,
            r.cmdline,
            r.exe,
            r.cgroup,
            r.user,
            r.adjust,
            r.diagnose
                .as_ref()
                .map(|d| format!(" diagnose={d:?}"))
                .unwrap_or_default()
        );
    }
    if let Some(c) = &cfg.candidates_cgroup {
        let _ = writeln!(o, "candidates: only in cgroup {c}");
    }
    if let Some(p) = cfg.candidates_parent_pid {
        let _ = writeln!(o, "candidates: only descendants of pid {p}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_and_derive_the_kill_level() {
        let args = WatchArgs {
            mem_min: Some("20%".into()),
            protect: vec!["^sshd$".into()],
            cgroup: vec!["/a".into()],
            cgroup_headroom: Some("64M".into()),
            kill_group: Some("pgroup".into()),
            ..Default::default()
        };
        let mut cfg = Config::default();
        apply_flags(&mut cfg, &args).unwrap();
        assert_eq!(cfg.memory.term_below, Amount::Percent(20.0));
        // The default kill level (5 %) is below 20 %: kept.
        assert_eq!(cfg.memory.kill_below, Amount::Percent(5.0));
        assert_eq!(cfg.cgroups[0].headroom, Amount::Bytes(64 << 20));
        assert_eq!(cfg.rules[0].action, RuleAction::Protect);
        assert_eq!(cfg.kill.unit, KillUnit::Pgroup);
        let mut cfg = Config::default();
        apply_flags(
            &mut cfg,
            &WatchArgs {
                mem_min: Some("3%".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.memory.kill_below, Amount::Percent(1.5));
        let mut cfg = Config::default();
        apply_flags(
            &mut cfg,
            &WatchArgs {
                mem_min: Some("1G".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.memory.kill_below, Amount::Bytes(512 << 20));
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let mut cfg = Config::default();
        let e = apply_flags(
            &mut cfg,
            &WatchArgs {
                mem_min: Some("12 parsecs".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("--mem-min"), "{e:#}");
        let e = apply_flags(
            &mut cfg,
            &WatchArgs {
                psi_some: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("--psi-some"), "{e:#}");
    }
}
