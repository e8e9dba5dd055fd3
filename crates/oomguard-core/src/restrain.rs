//! Actions short of a kill (issue 16), the pure half: the escalation [`Chain`] of one scope
//! (which step of `[thrash] actions` runs, when it ends, when the next one follows), the
//! [`Change`]s those steps make to a workload, and the state file that lists them so that a
//! daemon restarted after a crash can undo them ([`parse_state`], [`render_state`]). Nothing
//! here opens a file, reads a clock or touches a cgroup: the daemon feeds times and the thrash
//! detector's verdicts in, executes the [`Command`]s that come out behind its `Restrainer`
//! trait (`oomguard::act::restrain`), and writes the state file.
//!
//! The chain, per scope (the machine, each guarded cgroup):
//! - idle: a firing of the thrash rule takes the first step;
//! - a step other than `kill` runs for `step_window`, then ends (a freeze is thawed, a
//!   throttle restored: never later than that). The detector is reset when it ends, and the
//!   first whole window measured after the end judges it: still above the bar, the next step
//!   runs at once; below, the scope recovered and the chain is over (the next firing starts it
//!   again at the first step). A step that cannot be taken here (no freezer, a machine scope)
//!   is refused and the next one runs at once;
//! - after a `kill`, a new kill needs a new firing (a whole `duration` of thrashing measured
//!   after it) and the kill's recovery wait to be over; a calm window ends the chain.
//!
//! The last step repeats while the scope keeps thrashing (`["notify"]` notifies again every
//! `step_window`, `["freeze"]` freezes again after a window of running).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ActionStep;

/// Where one scope is in its chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChainState {
    #[default]
    Idle,
    /// Step `idx` (not a kill) runs until `until` (the daemon's monotonic time).
    Running { idx: usize, until: Duration },
    /// Step `idx` ended; waiting for the first window measured after it.
    Judging { idx: usize },
    /// A kill (step `idx`) was done.
    Killed { idx: usize },
}

/// What the daemon must do for a scope now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Take step `idx`. For anything but a kill, report back with [`Chain::refused`] when it
    /// could not be taken.
    Take { idx: usize, step: ActionStep },
    /// End running step `idx` (thaw, restore the limit; nothing for the others), then reset
    /// the scope's detector so the judgement is measured after the end.
    End { idx: usize, step: ActionStep },
    /// The scope was below the bar in the first window after step `idx`: the chain is over.
    Recovered { idx: usize, step: ActionStep },
}

/// One reading's worth of input for [`Chain::tick`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainInput {
    /// The thrash rule fired on this reading.
    pub fired: bool,
    /// The detector's last completed window since its last reset: `Some(true)` above the bar,
    /// `Some(false)` below, `None` no window completed yet (or no reading this tick).
    pub window_above: Option<bool>,
    /// An earlier kill in the scope still waits for memory to recover (the kill path's
    /// recovery wait): no kill step now.
    pub kill_held_back: bool,
}

/// A scope's escalation state; [`Chain::tick`] on every reading (and on deadline wake-ups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub state: ChainState,
}

impl Chain {
    /// Advances the chain; at most one command per call (call again after executing it only
    /// when [`Chain::refused`] says so).
    pub fn tick(
        &mut self,
        steps: &[ActionStep],
        step_window: Duration,
        now: Duration,
        input: ChainInput,
    ) -> Option<Command> {
        match self.state {
            ChainState::Idle if input.fired => self.take(steps, 0, step_window, now, input),
            ChainState::Idle => None,
            ChainState::Running { idx, until } if now >= until => {
                self.state = ChainState::Judging { idx };
                Some(Command::End {
                    idx,
                    step: *steps.get(idx)?,
                })
            }
            ChainState::Running { .. } => None,
            ChainState::Judging { idx } => match input.window_above {
                Some(true) => {
                    let next = (idx + 1).min(steps.len().saturating_sub(1));
                    self.take(steps, next, step_window, now, input)
                }
                Some(false) => {
                    self.state = ChainState::Idle;
                    Some(Command::Recovered {
                        idx,
                        step: *steps.get(idx)?,
                    })
                }
                None => None,
            },
            ChainState::Killed { idx } => match input.window_above {
                _ if input.fired => self.take(steps, idx, step_window, now, input),
                Some(false) => {
                    self.state = ChainState::Idle;
                    Some(Command::Recovered {
                        idx,
                        step: *steps.get(idx)?,
                    })
                }
                _ => None,
            },
        }
    }

    fn take(
        &mut self,
        steps: &[ActionStep],
        idx: usize,
        step_window: Duration,
        now: Duration,
        input: ChainInput,
    ) -> Option<Command> {
        let step = *steps.get(idx)?;
        if step == ActionStep::Kill {
            if input.kill_held_back {
                // Stay where the chain is: the kill waits for the last one's recovery.
                return None;
            }
            self.state = ChainState::Killed { idx };
        } else {
            self.state = ChainState::Running {
                idx,
                until: now + step_window,
            };
        }
        Some(Command::Take { idx, step })
    }

    /// Step `idx` could not be taken: the next one runs at once (`None` past the last step:
    /// the chain is over, and the next firing starts it again).
    pub fn refused(
        &mut self,
        steps: &[ActionStep],
        idx: usize,
        step_window: Duration,
        now: Duration,
        kill_held_back: bool,
    ) -> Option<Command> {
        if idx + 1 >= steps.len() {
            self.state = ChainState::Idle;
            return None;
        }
        let input = ChainInput {
            kill_held_back,
            ..ChainInput::default()
        };
        let cmd = self.take(steps, idx + 1, step_window, now, input);
        if cmd.is_none() {
            // A held-back kill: judge again at the next reading, as after a step.
            self.state = ChainState::Judging { idx };
        }
        cmd
    }

    /// When the running step must end (the daemon's loop wakes by then).
    pub fn deadline(&self) -> Option<Duration> {
        match self.state {
            ChainState::Running { until, .. } => Some(until),
            _ => None,
        }
    }
}

/// A step's event field (`step`, docs/event-schema.md): which step, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepInfo {
    /// `notify`, `reclaim`, `throttle`, `freeze`, `restart`, `kill`.
    pub action: &'static str,
    /// 1-based position in `[thrash] actions`, and their number.
    pub index: usize,
    pub of: usize,
    /// `done` (taken), `dry_run` (taken in a dry run: nothing changed), `refused` (not possible
    /// for this scope; the next step follows at once), `failed` (the change was tried and
    /// failed; the next step follows at once), `ended` (its window is over: thawed, restored),
    /// `end_failed` (could not be undone; retried at every reading and at exit),
    /// `recovered` (the scope was below the bar after it: the chain is over), `restored` (undone
    /// at daemon exit, reload or start-up).
    pub outcome: &'static str,
    /// What it changed or would change (`v1 freezer cgroup /x frozen`), or why not.
    pub detail: Option<String>,
}

/// One change a step made to a workload, as the state file lists it. `cgroup` is the guarded
/// scope's path as `/proc/PID/cgroup` shows it (the `[[cgroups]]` match), never a file path:
/// the daemon derives the file from it, so a tampered state file cannot point it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// v1 freezer: `<freezer mount>/<cgroup>/freezer.state` set to `FROZEN`.
    FreezerV1 { cgroup: String },
    /// v2: `<cgroup>/cgroup.freeze` set to `1`.
    FreezeV2 { cgroup: String },
    /// The scope's one process stopped with SIGSTOP (no freezer cgroup holding it).
    Stop {
        cgroup: String,
        pid: i32,
        start_time_ticks: u64,
    },
    /// v2 `memory.high` lowered; `previous` is the file's text before (bytes or `max`).
    MemoryHigh { cgroup: String, previous: String },
}

impl Change {
    pub fn cgroup(&self) -> &str {
        match self {
            Change::FreezerV1 { cgroup }
            | Change::FreezeV2 { cgroup }
            | Change::Stop { cgroup, .. }
            | Change::MemoryHigh { cgroup, .. } => cgroup,
        }
    }

    /// For logs: what was changed.
    pub fn describe(&self) -> String {
        match self {
            Change::FreezerV1 { cgroup } => format!("v1 freezer cgroup {cgroup} frozen"),
            Change::FreezeV2 { cgroup } => format!("cgroup {cgroup} frozen (cgroup.freeze)"),
            Change::Stop {
                cgroup,
                pid,
                start_time_ticks,
            } => format!(
                "pid {pid} (start {start_time_ticks} ticks) of cgroup {cgroup} stopped (SIGSTOP)"
            ),
            Change::MemoryHigh { cgroup, previous } => {
                format!("memory.high of cgroup {cgroup} lowered (was {previous})")
            }
        }
    }
}

/// The lowest `memory.high` the `throttle` step ever sets: below a few tens of MiB a cgroup
/// spends its time in reclaim whatever it runs (the kernel's own tests keep `memory.high` at
/// 30 MiB or more), so a smaller bound only turns a throttle into a hang.
pub const THROTTLE_FLOOR_BYTES: u64 = 32 << 20;

/// `memory.high` / `memory.max` text: `Some(None)` for `max`, `Some(Some(bytes))`, `None` when
/// it is neither.
pub fn parse_limit_text(text: &str) -> Option<Option<u64>> {
    // The one v2 limit parser (`memory.max`, `memory.high`); this is its view for the state file.
    crate::host::cgroup::parse_v2_limit("memory.high", text.as_bytes())
        .ok()
        .map(crate::host::cgroup::Limit::bytes)
}

/// The `memory.high` the `throttle` step sets: `throttle_to_pct` of the usage when it fired,
/// rounded down to a page, never below the floor: the larger of [`THROTTLE_FLOOR_BYTES`] and
/// the cgroup's protection (`memory.min`, `memory.low`: a `memory.high` below the memory the
/// cgroup is promised contradicts it). `Err`: why the step is refused (the limit is already
/// at or below the bound: the throttle only ever lowers it).
pub fn throttle_high_bytes(
    usage_bytes: u64,
    throttle_to_pct: f64,
    current_high: Option<u64>,
    protected_bytes: u64,
    page_size: u64,
) -> Result<u64, String> {
    let page = page_size.max(1);
    let want = (usage_bytes as f64 * throttle_to_pct / 100.0) as u64 / page * page;
    let floor = THROTTLE_FLOOR_BYTES.max(protected_bytes);
    let bound = want.max(floor);
    if let Some(h) = current_high {
        if h <= bound {
            return Err(format!(
                "memory.high is already {h} bytes, at or below the throttle bound {bound} bytes ({throttle_to_pct}% of usage {usage_bytes} bytes, floor {floor} bytes)"
            ));
        }
    }
    if bound >= usage_bytes {
        return Err(format!(
            "the throttle bound {bound} bytes (floor {floor} bytes) is not below the usage {usage_bytes} bytes: nothing to throttle"
        ));
    }
    Ok(bound)
}

/// Whether `name` is a systemd unit name (systemd's `unit_name_is_valid`): at most 255
/// bytes, `[A-Za-z0-9:_.\-]` with at most one `@` (a template instance, never empty), a
/// known type suffix, a non-empty prefix. A leading `-` is refused too (never an option).
pub fn valid_unit_name(name: &str) -> bool {
    const SUFFIXES: [&str; 11] = [
        ".service",
        ".socket",
        ".device",
        ".mount",
        ".automount",
        ".swap",
        ".target",
        ".path",
        ".timer",
        ".slice",
        ".scope",
    ];
    if name.is_empty() || name.len() > 255 || name.starts_with('-') {
        return false;
    }
    let Some(suffix) = SUFFIXES.iter().find(|s| name.ends_with(*s)) else {
        return false;
    };
    let stem = &name[..name.len() - suffix.len()];
    if stem.is_empty()
        || !stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.\\-@".contains(&b))
    {
        return false;
    }
    match stem.split_once('@') {
        None => true,
        Some((prefix, instance)) => {
            !prefix.is_empty() && !instance.is_empty() && !instance.contains('@')
        }
    }
}

/// The systemd service that the `restart` step restarts for a guarded cgroup path: the
/// path's innermost unit (`crate::workload`), which must be a valid `.service` name (a scope
/// or a slice cannot be restarted by systemd). `Err`: why not.
pub fn restart_unit(cgroup_path: &str) -> Result<String, String> {
    let unit = crate::workload::parse_cgroup(cgroup_path)
        .and_then(|w| w.unit)
        .ok_or_else(|| format!("cgroup {cgroup_path} is not a systemd unit's cgroup"))?;
    if !valid_unit_name(&unit) {
        return Err(format!("{unit:?} is not a valid systemd unit name"));
    }
    if !unit.ends_with(".service") {
        return Err(format!(
            "the cgroup's unit {unit} is not a service (only a .service can be restarted)"
        ));
    }
    Ok(unit)
}

/// A cgroup path fit to be joined below a mount: absolute, no `.`/`..`/empty components, no
/// NUL, not the root (the root is never a guarded scope to freeze).
pub fn sane_cgroup_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() > 1
        && !p.contains('\0')
        && p[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The state file's first line.
pub const STATE_HEADER: &str =
    "# oomguard: changes made by [thrash] actions, undone at exit, reload and start (one JSON object a line)";

/// The state file's text for `changes` (the header, then one JSON line each).
pub fn render_state(changes: &[Change]) -> String {
    let mut out = String::with_capacity(64 + changes.len() * 96);
    out.push_str(STATE_HEADER);
    out.push('\n');
    for c in changes {
        // Serialising these plain enums cannot fail; a failure would drop the line, never panic.
        if let Ok(line) = serde_json::to_string(c) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Parses a state file: the changes it lists, with their line numbers, and one warning per
/// line that is not one (`line N: ...`; the caller adds the file name). Blank lines and `#`
/// comments are skipped. Never fails: a garbled file is its good lines and warnings.
pub fn parse_state(text: &str) -> (Vec<(usize, Change)>, Vec<String>) {
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match serde_json::from_str::<Change>(l) {
            Ok(Change::MemoryHigh { previous, .. }) if parse_limit_text(&previous).is_none() => {
                warnings.push(format!(
                    "line {line_no}: memory.high {previous:?} to restore is not bytes or max: ignored"
                ))
            }
            Ok(c) if sane_cgroup_path(c.cgroup()) => changes.push((line_no, c)),
            Ok(c) => warnings.push(format!(
                "line {line_no}: cgroup {:?} is not a cgroup path (absolute, no . or ..): ignored",
                c.cgroup()
            )),
            Err(e) => warnings.push(format!("line {line_no}: not a change ({e}): ignored")),
        }
    }
    (changes, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionStep::*;

    const W: Duration = Duration::from_secs(10);
    const fn s(t: u64) -> Duration {
        Duration::from_secs(t)
    }
    fn fired() -> ChainInput {
        ChainInput {
            fired: true,
            window_above: Some(true),
            kill_held_back: false,
        }
    }
    fn window(above: bool) -> ChainInput {
        ChainInput {
            window_above: Some(above),
            ..ChainInput::default()
        }
    }

    #[test]
    fn freeze_then_kill_escalates_when_still_thrashing() {
        let steps = [Freeze, Kill];
        let mut c = Chain::default();
        assert_eq!(c.tick(&steps, W, s(0), ChainInput::default()), None);
        assert_eq!(
            c.tick(&steps, W, s(1), fired()),
            Some(Command::Take {
                idx: 0,
                step: Freeze
            })
        );
        assert_eq!(c.deadline(), Some(s(11)));
        // Firings and windows during the step change nothing; it ends at its deadline.
        assert_eq!(c.tick(&steps, W, s(5), fired()), None);
        assert_eq!(c.tick(&steps, W, s(10), window(true)), None);
        assert_eq!(
            c.tick(&steps, W, s(11), ChainInput::default()),
            Some(Command::End {
                idx: 0,
                step: Freeze
            })
        );
        assert_eq!(c.deadline(), None);
        // No window measured after the end yet: wait.
        assert_eq!(c.tick(&steps, W, s(11), ChainInput::default()), None);
        // Still above after the thaw: the kill, at once.
        assert_eq!(
            c.tick(&steps, W, s(12), window(true)),
            Some(Command::Take { idx: 1, step: Kill })
        );
        assert_eq!(c.state, ChainState::Killed { idx: 1 });
    }

    #[test]
    fn a_calm_window_after_a_step_ends_the_chain() {
        let steps = [Notify, Freeze, Kill];
        let mut c = Chain::default();
        c.tick(&steps, W, s(0), fired());
        assert!(matches!(
            c.tick(&steps, W, s(10), ChainInput::default()),
            Some(Command::End { idx: 0, .. })
        ));
        assert_eq!(
            c.tick(&steps, W, s(11), window(false)),
            Some(Command::Recovered {
                idx: 0,
                step: Notify
            })
        );
        assert_eq!(c.state, ChainState::Idle);
        // The next firing starts over at the first step.
        assert_eq!(
            c.tick(&steps, W, s(30), fired()),
            Some(Command::Take {
                idx: 0,
                step: Notify
            })
        );
    }

    #[test]
    fn a_refused_step_escalates_at_once_and_the_last_repeats() {
        let steps = [Freeze, Kill];
        let mut c = Chain::default();
        c.tick(&steps, W, s(0), fired());
        assert_eq!(
            c.refused(&steps, 0, W, s(0), false),
            Some(Command::Take { idx: 1, step: Kill })
        );
        // Refused past the last step: over.
        let only = [Freeze];
        let mut c = Chain::default();
        c.tick(&only, W, s(0), fired());
        assert_eq!(c.refused(&only, 0, W, s(0), false), None);
        assert_eq!(c.state, ChainState::Idle);
        // The last non-kill step repeats while the scope thrashes.
        let mut c = Chain::default();
        c.tick(&only, W, s(0), fired());
        c.tick(&only, W, s(10), ChainInput::default());
        assert_eq!(
            c.tick(&only, W, s(11), window(true)),
            Some(Command::Take {
                idx: 0,
                step: Freeze
            })
        );
        assert_eq!(c.deadline(), Some(s(21)));
    }

    #[test]
    fn a_kill_waits_for_recovery_and_a_new_firing() {
        let steps = [Kill];
        let mut c = Chain::default();
        assert_eq!(
            c.tick(&steps, W, s(0), fired()),
            Some(Command::Take { idx: 0, step: Kill })
        );
        // Windows above the bar alone do not kill again: a whole new firing is needed.
        assert_eq!(c.tick(&steps, W, s(1), window(true)), None);
        assert_eq!(c.tick(&steps, W, s(2), window(true)), None);
        // A firing while the last kill's recovery wait holds: nothing, and it stays killed.
        let held = ChainInput {
            kill_held_back: true,
            ..fired()
        };
        assert_eq!(c.tick(&steps, W, s(3), held), None);
        assert_eq!(c.state, ChainState::Killed { idx: 0 });
        assert_eq!(
            c.tick(&steps, W, s(4), fired()),
            Some(Command::Take { idx: 0, step: Kill })
        );
        // A calm window: recovered, over.
        assert_eq!(
            c.tick(&steps, W, s(5), window(false)),
            Some(Command::Recovered { idx: 0, step: Kill })
        );
        // From a step to a held-back kill: judged again until the hold ends.
        let steps = [Notify, Kill];
        let mut c = Chain::default();
        c.tick(&steps, W, s(0), fired());
        c.tick(&steps, W, s(10), ChainInput::default());
        let held = ChainInput {
            kill_held_back: true,
            ..window(true)
        };
        assert_eq!(c.tick(&steps, W, s(11), held), None);
        assert_eq!(c.state, ChainState::Judging { idx: 0 });
        assert_eq!(
            c.tick(&steps, W, s(12), window(true)),
            Some(Command::Take { idx: 1, step: Kill })
        );
    }

    #[test]
    fn state_file_round_trips_and_garbled_lines_are_named() {
        let changes = vec![
            Change::FreezerV1 {
                cgroup: "/a/b".into(),
            },
            Change::Stop {
                cgroup: "/c".into(),
                pid: 42,
                start_time_ticks: 7,
            },
            Change::MemoryHigh {
                cgroup: "/d".into(),
                previous: "max".into(),
            },
        ];
        let text = render_state(&changes);
        assert!(text.starts_with("# oomguard"));
        assert!(
            text.contains(r#"{"change":"freezer_v1","cgroup":"/a/b"}"#),
            "{text}"
        );
        let (got, warnings) = parse_state(&text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            got.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            changes
        );
        assert_eq!(got[0].0, 2);
        // Garbled: a torn line, an unknown change, a path that climbs out, a relative one.
        let bad = format!(
            "{}\n{{\"change\":\"freezer_v1\",\"cg\n{{\"change\":\"melt\",\"cgroup\":\"/x\"}}\n\n{{\"change\":\"freeze_v2\",\"cgroup\":\"/a/../../etc\"}}\n{{\"change\":\"freeze_v2\",\"cgroup\":\"x\"}}\n{{\"change\":\"freeze_v2\",\"cgroup\":\"/ok\"}}\n",
            STATE_HEADER
        );
        let (got, warnings) = parse_state(&bad);
        assert_eq!(
            got,
            vec![(
                7,
                Change::FreezeV2 {
                    cgroup: "/ok".into()
                }
            )]
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("line 2: not a change"));
        assert!(warnings[1].starts_with("line 3:"));
        assert!(warnings[2].starts_with("line 5:") && warnings[2].contains("not a cgroup path"));
        assert!(warnings[3].starts_with("line 6:"));
        assert!(!sane_cgroup_path("/") && !sane_cgroup_path("//a") && sane_cgroup_path("/a/b.c"));
        // Binary junk: warnings, no panic.
        let (got, w) = parse_state("\u{0}\u{1}{{{\n]]]\n");
        assert!(got.is_empty() && w.len() == 2);
    }

    #[test]
    fn throttle_bound_is_a_share_of_usage_above_the_floor_and_only_lowers() {
        const P: u64 = 4096;
        // 80% of 200 MiB, page-aligned, from max.
        assert_eq!(
            throttle_high_bytes(200 << 20, 80.0, None, 0, P),
            Ok(160 << 20)
        );
        // An odd usage is rounded down to a page.
        assert_eq!(
            throttle_high_bytes((200 << 20) + 5000, 50.0, None, 0, P),
            Ok(((((200u64 << 20) + 5000) / 2) / P) * P)
        );
        // Never below the floor, nor below memory.min/low.
        assert_eq!(
            throttle_high_bytes(48 << 20, 10.0, None, 0, P),
            Ok(THROTTLE_FLOOR_BYTES)
        );
        assert_eq!(
            throttle_high_bytes(200 << 20, 10.0, None, 100 << 20, P),
            Ok(100 << 20)
        );
        // Usage at or below the floor: nothing to throttle.
        let e = throttle_high_bytes(20 << 20, 80.0, None, 0, P).unwrap_err();
        assert!(e.contains("not below the usage"), "{e}");
        // A memory.high already at or below the bound is never raised.
        let e = throttle_high_bytes(200 << 20, 80.0, Some(150 << 20), 0, P).unwrap_err();
        assert!(e.contains("already"), "{e}");
        assert_eq!(
            throttle_high_bytes(200 << 20, 80.0, Some(180 << 20), 0, P),
            Ok(160 << 20)
        );
        assert_eq!(parse_limit_text("max\n"), Some(None));
        assert_eq!(parse_limit_text("1048576\n"), Some(Some(1 << 20)));
        assert_eq!(parse_limit_text("1M"), None);
    }

    #[test]
    fn unit_names_follow_systemds_rules_and_only_services_restart() {
        for ok in [
            "nginx.service",
            "getty@tty1.service",
            "systemd-nspawn@puppet001.service",
            "a:b_c-d.e\\x2d.service",
            "docker-ab12.scope",
        ] {
            assert!(valid_unit_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".service",
            "nginx",
            "nginx.servic",
            "-x.service",
            "a b.service",
            "a;rm -rf.service",
            "a$(x).service",
            "getty@.service",
            "@x.service",
            "a@b@c.service",
            "é.service",
        ] {
            assert!(!valid_unit_name(bad), "{bad:?}");
        }
        assert!(!valid_unit_name(&format!("{}.service", "a".repeat(250))));
        assert_eq!(
            restart_unit("/system.slice/nginx.service"),
            Ok("nginx.service".to_owned())
        );
        assert_eq!(
            restart_unit("/system.slice/system-getty.slice/getty@tty1.service"),
            Ok("getty@tty1.service".to_owned())
        );
        let scope = restart_unit("/system.slice/docker-ab12cd.scope").unwrap_err();
        assert!(scope.contains("not a service"), "{scope}");
        let none = restart_unit("/oomguard/test").unwrap_err();
        assert!(none.contains("not a systemd unit"), "{none}");
    }

    #[test]
    fn a_memory_high_to_restore_must_be_bytes_or_max() {
        let text = format!(
            "{STATE_HEADER}\n{{\"change\":\"memory_high\",\"cgroup\":\"/a\",\"previous\":\"max\"}}\n{{\"change\":\"memory_high\",\"cgroup\":\"/b\",\"previous\":\"1 2\"}}\n{{\"change\":\"memory_high\",\"cgroup\":\"/c\",\"previous\":\"268435456\"}}\n"
        );
        let (got, w) = parse_state(&text);
        assert_eq!(
            got.iter().map(|(_, c)| c.cgroup()).collect::<Vec<_>>(),
            ["/a", "/c"]
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("line 3:") && w[0].contains("memory.high"),
            "{w:?}"
        );
    }
}
