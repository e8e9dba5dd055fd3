//! The daemon's configuration: `/etc/oomguard/oomguard.toml`, parsed and validated here (pure:
//! text in, typed config or an error naming the key and line out). Command-line flags override
//! it (`oomguard watch --mem-min ...`), and `oomguard watch --check` prints the result.
//!
//! Every key has a default, so an empty file is a valid config; `docs/configuration.md` lists
//! them all with the reason for each default.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::size::{self, Amount};

pub mod thrash;
pub use self::thrash::{ActionStep, ThrashConfig};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Log decisions but never signal anything.
    pub dry_run: bool,
    pub memory: MemoryConfig,
    pub swap: SwapConfig,
    pub psi: PsiConfig,
    pub kill: KillConfig,
    pub poll: PollConfig,
    /// Memory cgroups to guard individually (containers, services).
    pub cgroups: Vec<CgroupWatch>,
    /// Who to protect, avoid or prefer.
    pub rules: Vec<RuleConfig>,
    /// Limit candidates (for tests and staged roll-outs): only processes in this cgroup
    /// (v1 memory or v2 path, subtree included) may be chosen system-wide.
    pub candidates_cgroup: Option<String>,
    /// Limit candidates to descendants of this pid (for tests).
    pub candidates_parent_pid: Option<i32>,
    pub events: EventsConfig,
    pub metrics: MetricsConfig,
    pub hooks: Vec<HookConfig>,
    pub notify: NotifyConfig,
    /// The thrash rule and its actions short of a kill (`config/thrash.rs`).
    pub thrash: ThrashConfig,
    /// The time-to-OOM forecast's event (`crate::forecast`).
    pub forecast: crate::forecast::ForecastConfig,
    /// The flight recorder: the readings of the last minute on every kill event
    /// (`crate::recorder`).
    pub recorder: crate::recorder::RecorderConfig,
}

/// System-wide MemAvailable thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// SIGTERM when MemAvailable falls below this (size, or percent of MemTotal).
    #[serde(deserialize_with = "de_amount")]
    pub term_below: Amount,
    /// SIGKILL when MemAvailable falls below this.
    #[serde(deserialize_with = "de_amount")]
    pub kill_below: Amount,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        // earlyoom's defaults (10 % / 5 %), which operators already know.
        MemoryConfig {
            term_below: Amount::Percent(10.0),
            kill_below: Amount::Percent(5.0),
        }
    }
}

/// Free-swap threshold; inert where there is no swap.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwapConfig {
    /// SIGTERM when SwapFree falls below this (size, or percent of SwapTotal). Off when unset.
    #[serde(deserialize_with = "de_opt_amount")]
    pub term_below: Option<Amount>,
}

/// PSI rules: `"PCT"` or `"PCT/DURATION"`, e.g. `"40/10s"` (avg10 above 40 % for 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PsiConfig {
    #[serde(deserialize_with = "de_opt_psi")]
    pub some: Option<PsiSpec>,
    #[serde(deserialize_with = "de_opt_psi")]
    pub full: Option<PsiSpec>,
}

/// One PSI rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiSpec {
    pub avg10_pct: f64,
    pub duration: Duration,
}

/// Default PSI duration when only a percentage is given: long enough that a burst of reclaim
/// during a build does not kill, short enough to beat a human noticing the freeze.
pub const DEFAULT_PSI_DURATION: Duration = Duration::from_secs(10);

/// Parses `PCT[/DURATION]` (`40`, `40%`, `40/10s`).
pub fn parse_psi(s: &str) -> Result<PsiSpec, String> {
    let (pct, dur) = match s.split_once('/') {
        Some((p, d)) => (p, Some(d)),
        None => (s, None),
    };
    let pct = pct.trim().trim_end_matches('%');
    let avg10_pct: f64 = pct
        .parse()
        .map_err(|_| format!("PSI rule {s:?}: expected PCT or PCT/DURATION, like 40/10s"))?;
    if !(0.0..=100.0).contains(&avg10_pct) {
        return Err(format!(
            "PSI rule {s:?}: the percentage must be between 0 and 100"
        ));
    }
    let duration = match dur {
        Some(d) => size::parse_duration(d).map_err(|e| e.to_string())?,
        None => DEFAULT_PSI_DURATION,
    };
    Ok(PsiSpec {
        avg10_pct,
        duration,
    })
}

/// How to kill.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillConfig {
    /// What one kill takes down.
    pub unit: KillUnit,
    /// How long a victim may take to exit after SIGTERM before SIGKILL.
    #[serde(deserialize_with = "de_duration")]
    pub term_grace: Duration,
    /// After a kill, MemAvailable must be this much above the SIGTERM threshold before another
    /// victim is chosen.
    #[serde(deserialize_with = "de_bytes")]
    pub recovery_margin: u64,
    /// Give up waiting for recovery after this long (then a new victim may be chosen).
    #[serde(deserialize_with = "de_duration")]
    pub recovery_timeout: Duration,
    /// When the victim's cgroup (or an ancestor up to the guarded one) has `memory.oom.group`
    /// set, kill that whole cgroup, as the kernel's OOM killer would: its owner said the
    /// workload cannot survive losing one process. `false`: the configured `unit` always.
    pub oom_group: bool,
    /// Run before each kill, once the victim is pinned, its output attached to the event
    /// (`crate::diagnose`): argv, `{pid}` as a whole argument; empty: none. A rule's own
    /// `diagnose` comes first.
    pub diagnose: Vec<String>,
    /// The longest a diagnostic may delay the kill (at most 10 s); it is killed then.
    #[serde(deserialize_with = "de_duration")]
    pub diagnose_timeout: Duration,
}

impl Default for KillConfig {
    fn default() -> Self {
        KillConfig {
            unit: KillUnit::Process,
            term_grace: Duration::from_secs(2),
            recovery_margin: 128 << 20,
            recovery_timeout: Duration::from_secs(10),
            oom_group: true,
            diagnose: Vec::new(),
            diagnose_timeout: Duration::from_secs(2),
        }
    }
}

/// What one kill takes down (also the event's `action.unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillUnit {
    /// The victim process (default).
    Process,
    /// Its whole process group.
    Pgroup,
    /// Its whole cgroup (`cgroup.kill` on v2, every task on v1).
    Cgroup,
}

/// Adaptive polling bounds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollConfig {
    #[serde(deserialize_with = "de_duration")]
    pub min: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub max: Duration,
    /// The fastest fill rate to plan for, bytes per second (`"10G"` = 10 GiB/s).
    #[serde(deserialize_with = "de_bytes")]
    pub fill_rate: u64,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            min: Duration::from_millis(1),
            max: Duration::from_secs(1),
            // The fastest single thread measured here (bench/fill.sh, docs/triggers.md): 2.2 GiB/s
            // touching 4 KiB pages, 8.2 GiB/s with MADV_HUGEPAGE (best 64 MiB window). The plan
            // sleeps headroom / rate before the next reading, so a floor below a real fill lets
            // that fill go past the threshold by up to the whole headroom before the daemon
            // looks (4 GiB/s, the old value, at 8.2 GiB/s: 1 GiB past a 1 GiB headroom). 10 GiB/s
            // covers the THP case with a margin; a faster fill is measured after one reading.
            fill_rate: 10 << 30,
        }
    }
}

/// A memory cgroup guarded on its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupWatch {
    /// Path in the cgroup hierarchy (`/system.slice/app.service`), `*` globs allowed.
    pub path: String,
    /// Act when usage comes within this of the limit (size, or percent of the limit). `0`
    /// turns this rule off (metrics, kernel-OOM detection), leaving the `psi` rule if set.
    #[serde(deserialize_with = "de_amount", default = "default_headroom")]
    pub headroom: Amount,
    /// Act when the cgroup's own `memory.pressure` (cgroup v2) shows its tasks stalled on
    /// memory: `"PCT[/DURATION]"`, the `some` avg10 above PCT for DURATION (as `[psi] some`,
    /// and as systemd-oomd's `ManagedOOMMemoryPressureLimit=`). Ignored, with a warning, on
    /// cgroup v1, which has no per-cgroup pressure file.
    #[serde(deserialize_with = "de_opt_psi", default)]
    pub psi: Option<PsiSpec>,
}

fn default_headroom() -> Amount {
    Amount::Percent(5.0)
}

/// What a rule does to the processes it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Never chosen by oomguard.
    Protect,
    /// Chosen later: score lowered by `adjust` (oom_score_adj units).
    Avoid,
    /// Chosen earlier: score raised by `adjust`.
    Prefer,
}

/// A policy rule: every matcher given must match (regexes are unanchored unless you anchor them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub action: RuleAction,
    /// Regex on the process name (`comm`, 15 bytes).
    pub name: Option<String>,
    /// Regex on the command line (arguments joined by spaces).
    pub cmdline: Option<String>,
    /// Regex on the executable path (`/proc/PID/exe`).
    pub exe: Option<String>,
    /// Regex on the cgroup path.
    pub cgroup: Option<String>,
    /// User name or numeric uid.
    pub user: Option<String>,
    /// Score change for avoid/prefer, in oom_score_adj units (0–1000).
    #[serde(default = "default_adjust")]
    pub adjust: u16,
    /// Diagnostics before killing a process this rule matched (overrides `[kill] diagnose`;
    /// `crate::diagnose`). With `action = "prefer"` and `adjust = 0` a rule only diagnoses.
    #[serde(default)]
    pub diagnose: Option<Vec<String>>,
}

fn default_adjust() -> u16 {
    // earlyoom's --prefer/--avoid shift its oom_score by 300; the same size here.
    300
}

/// The event journal.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// JSON-lines event log; empty to disable.
    pub log: String,
    /// Rotate the log when it reaches this size.
    #[serde(deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Also write events to the systemd journal when it is present.
    pub journal: bool,
    /// Where the kubelet keeps its logs (`pods/`, `containers/`): the names of a killed
    /// container's pod and container are read from there. Missing directories are fine.
    pub kubelet_logs: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            log: "/var/log/oomguard/events.jsonl".to_owned(),
            max_bytes: 16 << 20,
            keep: 5,
            journal: true,
            kubelet_logs: "/var/log".to_owned(),
        }
    }
}

/// Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `ADDR:PORT` to serve `/metrics` on; empty: no listener.
    pub listen: String,
    /// node_exporter textfile to write (e.g.
    /// `/var/lib/prometheus/node-exporter/oomguard.prom`); empty: none.
    pub textfile: String,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    Warn,
    PreKill,
    PostKill,
    KernelOom,
    /// A command supervised by `oomguard run` died other than by an OOM kill (an exit status,
    /// or a signal that was not an OOM kill). OOM deaths under `run` fire `kernel_oom` (the
    /// kernel's kill) or `post_kill` (`--guard`'s).
    Exit,
    /// The daemon's time-to-OOM estimate of a scope fell to `forecast.lead`.
    Forecast,
}

/// A command run on an event: argv, no shell.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    pub on: HookEvent,
    pub command: Vec<String>,
    #[serde(deserialize_with = "de_duration", default = "default_hook_timeout")]
    pub timeout: Duration,
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Desktop notifications (opt-in).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `dbus-send` to the system bus in systembus-notify's form (earlyoom's companion).
    pub dbus: bool,
    /// `notify-send` in each graphical session.
    pub notify_send: bool,
}

/// A config error: what is wrong, with the key and line when the file shows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses a config file's text. `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let cfg: Config =
        toml::from_str(text).map_err(|e| ConfigError(format_toml_error(&e, text, origin)))?;
    validate(&cfg).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
    Ok(cfg)
}

fn format_toml_error(e: &toml::de::Error, text: &str, origin: &str) -> String {
    let msg = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("{origin} line {line}: {msg} (at `{snippet}`)")
        }
        None => format!("{origin}: {msg}"),
    }
}

/// Cross-field checks the types cannot express.
pub fn validate(cfg: &Config) -> Result<(), String> {
    if let (Amount::Percent(t), Amount::Percent(k)) = (cfg.memory.term_below, cfg.memory.kill_below)
    {
        if k > t {
            return Err(format!(
                "memory.kill_below ({k}%) is above memory.term_below ({t}%): SIGKILL must be the lower threshold"
            ));
        }
    }
    if let (Amount::Bytes(t), Amount::Bytes(k)) = (cfg.memory.term_below, cfg.memory.kill_below) {
        if k > t {
            return Err(
                "memory.kill_below is above memory.term_below: SIGKILL must be the lower threshold"
                    .to_owned(),
            );
        }
    }
    if cfg.poll.min > cfg.poll.max {
        return Err("poll.min is longer than poll.max".to_owned());
    }
    cfg.forecast.validate()?;
    cfg.recorder.validate()?;
    crate::diagnose::validate_argv("kill.diagnose", &cfg.kill.diagnose)?;
    if cfg.kill.diagnose_timeout > crate::diagnose::MAX_TIMEOUT
        || cfg.kill.diagnose_timeout.is_zero()
    {
        return Err(format!(
            "kill.diagnose_timeout: {:?} is not between 0 and {:?} (it delays the kill)",
            cfg.kill.diagnose_timeout,
            crate::diagnose::MAX_TIMEOUT
        ));
    }
    for (i, r) in cfg.rules.iter().enumerate() {
        let any = r.name.is_some()
            || r.cmdline.is_some()
            || r.exe.is_some()
            || r.cgroup.is_some()
            || r.user.is_some();
        if !any {
            return Err(format!(
                "rules[{i}]: a rule needs at least one of name, cmdline, exe, cgroup, user"
            ));
        }
        for (key, re) in [
            ("name", &r.name),
            ("cmdline", &r.cmdline),
            ("exe", &r.exe),
            ("cgroup", &r.cgroup),
        ] {
            if let Some(re) = re {
                regex_lite::Regex::new(re)
                    .map_err(|e| format!("rules[{i}].{key}: invalid regex {re:?}: {e}"))?;
            }
        }
        if r.adjust > 1000 {
            return Err(format!("rules[{i}].adjust: {} is above 1000", r.adjust));
        }
        if let Some(d) = &r.diagnose {
            crate::diagnose::validate_argv(&format!("rules[{i}].diagnose"), d)?;
            if r.action == RuleAction::Protect {
                return Err(format!(
                    "rules[{i}].diagnose: a protect rule's processes are never killed"
                ));
            }
        }
    }
    for (i, h) in cfg.hooks.iter().enumerate() {
        if h.command.is_empty() || h.command[0].is_empty() {
            return Err(format!("hooks[{i}].command: needs a program path"));
        }
    }
    for (i, c) in cfg.cgroups.iter().enumerate() {
        if !c.path.starts_with('/') {
            return Err(format!("cgroups[{i}].path: {:?} must start with /", c.path));
        }
    }
    thrash::validate(&cfg.thrash)?;
    Ok(())
}

fn de_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
    let s = String::deserialize(d)?;
    size::parse_amount(&s).map_err(serde::de::Error::custom)
}

fn de_opt_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    size::parse_amount(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    size::parse_bytes(&s).map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    size::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn de_opt_psi<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PsiSpec>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_psi(&s).map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("", "x.toml"), Ok(Config::default()));
    }

    #[test]
    fn full_example_parses() {
        let text = r#"
dry_run = true
candidates_cgroup = "/test"
[memory]
term_below = "1G"
kill_below = "512M"
[swap]
term_below = "10%"
[psi]
some = "40/10s"
full = "20"
[kill]
unit = "cgroup"
term_grace = "500ms"
recovery_margin = "64M"
recovery_timeout = "5s"
[poll]
min = "2ms"
max = "500ms"
fill_rate = "8G"
[[cgroups]]
path = "/system.slice/*.service"
headroom = "64M"
[[rules]]
action = "protect"
name = "^sshd$"
[[rules]]
action = "prefer"
cmdline = "--type=renderer"
adjust = 500
[events]
log = ""
[metrics]
listen = "127.0.0.1:9748"
[[hooks]]
on = "post_kill"
command = ["/usr/local/bin/page-me", "--oom"]
timeout = "3s"
[notify]
dbus = true
"#;
        let c = parse(text, "x.toml").unwrap();
        assert!(c.dry_run);
        assert_eq!(c.memory.term_below, Amount::Bytes(1 << 30));
        assert_eq!(c.swap.term_below, Some(Amount::Percent(10.0)));
        assert_eq!(
            c.psi.some,
            Some(PsiSpec {
                avg10_pct: 40.0,
                duration: Duration::from_secs(10)
            })
        );
        assert_eq!(c.psi.full.map(|p| p.duration), Some(DEFAULT_PSI_DURATION));
        assert_eq!(c.kill.unit, KillUnit::Cgroup);
        assert_eq!(c.cgroups[0].headroom, Amount::Bytes(64 << 20));
        assert_eq!(c.rules[1].adjust, 500);
        assert_eq!(c.rules[0].adjust, 300);
        assert_eq!(c.hooks[0].on, HookEvent::PostKill);
        assert!(c.notify.dbus && !c.notify.notify_send);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = parse(
            "[memory]\nterm_below = \"12 parsecs\"\n",
            "/etc/oomguard/oomguard.toml",
        )
        .unwrap_err()
        .0;
        assert!(e.contains("/etc/oomguard/oomguard.toml line 2"), "{e}");
        assert!(e.contains("unknown unit"), "{e}");
        let e = parse("[memory]\nterm_blow = \"1G\"\n", "f").unwrap_err().0;
        assert!(e.contains("line 2") && e.contains("term_blow"), "{e}");
        let e = parse("[kill]\nunit = \"everything\"\n", "f").unwrap_err().0;
        assert!(e.contains("line 2") && e.contains("process"), "{e}");
        let e = parse("[memory]\nterm_below = \"5%\"\nkill_below = \"10%\"\n", "f")
            .unwrap_err()
            .0;
        assert!(e.contains("kill_below"), "{e}");
        let e = parse("[[rules]]\naction = \"avoid\"\nname = \"(\"\n", "f")
            .unwrap_err()
            .0;
        assert!(
            e.contains("rules[0].name") && e.contains("invalid regex"),
            "{e}"
        );
        let e = parse("[[rules]]\naction = \"avoid\"\n", "f").unwrap_err().0;
        assert!(e.contains("at least one of"), "{e}");
        let e = parse("[psi]\nsome = \"lots\"\n", "f").unwrap_err().0;
        assert!(e.contains("line 2") && e.contains("PCT/DURATION"), "{e}");
        let e = parse("dry_run = \n", "f").unwrap_err().0;
        assert!(e.contains("line 1"), "{e}");
    }
}
