//! The `[thrash]` section: the thrash rule's thresholds (`crate::thrash`) and the chain of
//! actions short of a kill it takes (`crate::restrain`). Kept out of `config.rs` so the rule
//! and its keys live together; `config::validate` calls [`validate`].

use std::time::Duration;

use serde::Deserialize;

use super::{de_bytes, de_duration};
use crate::host::zram::DEFAULT_ZRAM_FULL_PCT;
use crate::thrash::{self, ThrashRule};

/// One step of the chain, in the order they escalate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStep {
    /// Only tell (event, log, hooks): nothing is changed.
    Notify,
    /// v2 `memory.reclaim` of `reclaim` bytes from the scope (v2, kernel 5.19+; refused
    /// elsewhere and for the machine).
    Reclaim,
    /// Lower the scope's v2 `memory.high` to `throttle_to_pct` of its usage (never below
    /// `restrain::THROTTLE_FLOOR_BYTES`), restored when the step ends (v2 only; refused on v1
    /// and for the machine).
    Throttle,
    /// Freeze the scope (v2 `cgroup.freeze`, v1 freezer; SIGSTOP for a single process) for at
    /// most the step's window, thawed when it ends.
    Freeze,
    /// Restart the guarded cgroup's systemd service (`systemctl restart --no-block -- UNIT`, an
    /// argv, no shell); refused without a unit in the path, systemctl, or systemd as PID 1.
    Restart,
    /// The victim is killed as the memory rules kill.
    Kill,
}

impl ActionStep {
    pub fn label(self) -> &'static str {
        match self {
            ActionStep::Notify => "notify",
            ActionStep::Reclaim => "reclaim",
            ActionStep::Throttle => "throttle",
            ActionStep::Freeze => "freeze",
            ActionStep::Restart => "restart",
            ActionStep::Kill => "kill",
        }
    }
}

/// `[thrash]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrashConfig {
    /// Off by default: the rule acts while MemAvailable is high, which operators opt into.
    pub enable: bool,
    /// Watch the whole machine (`/proc/vmstat`); a firing there chooses among every candidate.
    pub machine: bool,
    /// Watch each guarded cgroup (`[[cgroups]]`, `memory.stat`); the victim is chosen within it.
    pub cgroups: bool,
    /// Refaults per second as a percentage of the working set (lmkd's measure, default 100).
    pub threshold: f64,
    /// ... held for this long.
    #[serde(deserialize_with = "de_duration")]
    pub duration: Duration,
    /// Rates are taken over windows at least this long.
    #[serde(deserialize_with = "de_duration")]
    pub window: Duration,
    /// ... and only count when the scope refaults at least this much per second.
    #[serde(deserialize_with = "de_bytes")]
    pub min_refault_rate: u64,
    /// SwapFree at or below this percentage of SwapTotal counts as swap full.
    pub swap_free_low_pct: f64,
    /// A zram device this full (percent) counts as swap full.
    pub zram_full_pct: f64,
    /// The chain of actions, first to last; each escalates to the next when the scope still
    /// thrashes (or is still short of memory) after `step_window`.
    pub actions: Vec<ActionStep>,
    /// How long each step has to work before the next one; also the bound of a freeze.
    #[serde(deserialize_with = "de_duration")]
    pub step_window: Duration,
    /// `throttle`: the new limit as a percentage of the scope's usage when it fired.
    pub throttle_to_pct: f64,
    /// `reclaim`: how much to ask the kernel to reclaim.
    #[serde(deserialize_with = "de_bytes")]
    pub reclaim: u64,
    /// What freeze/throttle changed, so a restart after a crash restores it.
    pub state_file: String,
}

impl Default for ThrashConfig {
    fn default() -> Self {
        let rule = ThrashRule::default();
        ThrashConfig {
            enable: false,
            machine: true,
            cgroups: true,
            threshold: rule.refault_pct_per_s,
            duration: rule.duration,
            window: rule.window,
            min_refault_rate: rule.min_refault_bytes_per_s,
            swap_free_low_pct: 10.0,
            zram_full_pct: DEFAULT_ZRAM_FULL_PCT,
            actions: vec![ActionStep::Kill],
            step_window: Duration::from_secs(10),
            throttle_to_pct: 80.0,
            reclaim: 64 << 20,
            state_file: "/run/oomguard/restrain.json".to_owned(),
        }
    }
}

impl ThrashConfig {
    /// The detector's rule.
    pub fn rule(&self) -> ThrashRule {
        ThrashRule {
            refault_pct_per_s: self.threshold,
            duration: self.duration,
            window: self.window,
            min_refault_bytes_per_s: self.min_refault_rate,
        }
    }
}

impl ThrashConfig {
    /// Whether a step changes a workload (and so needs the state file to undo it).
    pub fn changes_workloads(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, ActionStep::Freeze | ActionStep::Throttle))
    }

    /// One line for `watch --check`.
    pub fn describe(&self) -> String {
        if !self.enable {
            return "thrash: off\n".to_owned();
        }
        let scopes = match (self.machine, self.cgroups) {
            (true, true) => "the machine and each guarded cgroup",
            (true, false) => "the machine",
            (false, true) => "each guarded cgroup",
            (false, false) => "no scope (machine and cgroups both off)",
        };
        let steps: Vec<&str> = self.actions.iter().map(|a| a.label()).collect();
        format!(
            "thrash: {scopes}: refaults above {}% of the working set per second (and at least {} B/s) for {:?}, {:?} windows; swap full at {}% free, zram at {}% used; actions {} ({:?} each){}\n",
            self.threshold,
            self.min_refault_rate,
            self.duration,
            self.window,
            self.swap_free_low_pct,
            self.zram_full_pct,
            steps.join(" -> "),
            self.step_window,
            if self.changes_workloads() {
                format!("; changes recorded in {}", self.state_file)
            } else {
                String::new()
            }
        )
    }
}

/// Cross-field checks; errors name the key.
pub fn validate(t: &ThrashConfig) -> Result<(), String> {
    if !(t.threshold.is_finite() && t.threshold > 0.0) {
        return Err(format!(
            "thrash.threshold: {} must be above 0 (percent of the working set refaulted per second; lmkd's default is {})",
            t.threshold,
            thrash::DEFAULT_REFAULT_PCT_PER_S
        ));
    }
    if t.window < Duration::from_millis(100) {
        return Err("thrash.window: must be at least 100ms".to_owned());
    }
    if t.duration < t.window {
        return Err(format!(
            "thrash.duration ({:?}) is shorter than thrash.window ({:?}): one window must fit in it",
            t.duration, t.window
        ));
    }
    for (key, v) in [
        ("thrash.swap_free_low_pct", t.swap_free_low_pct),
        ("thrash.zram_full_pct", t.zram_full_pct),
    ] {
        if !(0.0..=100.0).contains(&v) {
            return Err(format!("{key}: {v} must be between 0 and 100"));
        }
    }
    if !(t.throttle_to_pct > 0.0 && t.throttle_to_pct < 100.0) {
        return Err(format!(
            "thrash.throttle_to_pct: {} must be above 0 and below 100",
            t.throttle_to_pct
        ));
    }
    if t.actions.is_empty() {
        return Err("thrash.actions: needs at least one step (e.g. [\"notify\", \"kill\"])".into());
    }
    for (i, a) in t.actions.iter().enumerate() {
        if t.actions[..i].contains(a) {
            return Err(format!(
                "thrash.actions[{i}]: {:?} is listed twice",
                a.label()
            ));
        }
        if *a == ActionStep::Kill && i + 1 != t.actions.len() {
            return Err(format!(
                "thrash.actions[{i}]: \"kill\" must be the last step (nothing escalates past it)"
            ));
        }
    }
    if t.step_window.is_zero() {
        return Err("thrash.step_window: must be above 0".to_owned());
    }
    if t.actions.contains(&ActionStep::Reclaim) && t.reclaim == 0 {
        return Err("thrash.reclaim: must be above 0 bytes for the \"reclaim\" step".to_owned());
    }
    if t.changes_workloads() && !t.state_file.starts_with('/') {
        return Err(format!(
            "thrash.state_file: {:?}: freeze and throttle need a state file, an absolute path (to restore after a crash)",
            t.state_file
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn section_parses_and_defaults_are_valid() {
        let c = parse(
            "[thrash]\nenable = true\nthreshold = 50\nduration = \"5s\"\nactions = [\"notify\", \"kill\"]\nstep_window = \"3s\"\n",
            "x.toml",
        )
        .unwrap();
        assert!(c.thrash.enable);
        assert_eq!(c.thrash.rule().refault_pct_per_s, 50.0);
        assert_eq!(c.thrash.rule().duration, Duration::from_secs(5));
        assert_eq!(c.thrash.actions, vec![ActionStep::Notify, ActionStep::Kill]);
        assert_eq!(validate(&ThrashConfig::default()), Ok(()));
        assert!(!parse("", "x").unwrap().thrash.enable);
    }

    #[test]
    fn errors_name_the_key() {
        let e = |t: &str| parse(t, "f").unwrap_err().0;
        assert!(e("[thrash]\nthreshold = 0\n").contains("thrash.threshold"));
        assert!(e("[thrash]\nduration = \"100ms\"\n").contains("thrash.duration"));
        assert!(e("[thrash]\nactions = [\"kill\", \"notify\"]\n").contains("thrash.actions[0]"));
        assert!(e("[thrash]\nactions = [\"notify\", \"notify\"]\n").contains("listed twice"));
        assert!(e("[thrash]\nactions = []\n").contains("thrash.actions"));
        let bad = e("[thrash]\nactions = [\"nap\"]\n");
        assert!(bad.contains("line 2") && bad.contains("freeze"), "{bad}");
        assert!(e("[thrash]\nzram_full_pct = 101.0\n").contains("thrash.zram_full_pct"));
        assert!(e("[thrash]\nthrottle_to_pct = 100.0\n").contains("thrash.throttle_to_pct"));
        assert!(e("[thrash]\nfreq = 1\n").contains("freq"));
        assert!(
            e("[thrash]\nactions = [\"reclaim\"]\nreclaim = \"0\"\n").contains("thrash.reclaim")
        );
        assert!(
            e("[thrash]\nactions = [\"throttle\"]\nstate_file = \"x\"\n")
                .contains("thrash.state_file")
        );
        let all = parse(
            "[thrash]\nenable = true\nactions = [\"notify\", \"reclaim\", \"throttle\", \"freeze\", \"restart\", \"kill\"]\nreclaim = \"32M\"\nthrottle_to_pct = 50\n",
            "f",
        )
        .unwrap();
        assert_eq!(all.thrash.actions.len(), 6);
        assert_eq!(all.thrash.reclaim, 32 << 20);
        assert!(all.thrash.changes_workloads());
        assert!(all
            .thrash
            .describe()
            .contains("notify -> reclaim -> throttle -> freeze -> restart -> kill"));
        let c = parse(
            "[thrash]\nenable = true\nactions = [\"notify\", \"freeze\", \"kill\"]\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            c.thrash.actions,
            vec![ActionStep::Notify, ActionStep::Freeze, ActionStep::Kill]
        );
        assert!(e("[thrash]\nactions = [\"freeze\"]\nstate_file = \"\"\n")
            .contains("thrash.state_file"));
    }
}
