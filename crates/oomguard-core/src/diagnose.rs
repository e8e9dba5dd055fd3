//! Diagnostics before a kill: the operator's argv (`[kill] diagnose`, or the `diagnose` of the
//! rule that adjusted the victim's score), run once the victim is chosen and pinned and before
//! it is signalled, e.g. `["jcmd", "{pid}", "GC.heap_info"]`; its output is attached to the kill
//! event (`diagnostics`). Pure: which argv, with the pid put in, and how the result reads. The
//! daemon runs it (`watch/daemon/diagnose.rs`) through the hooks' child runner.
//!
//! Rules that keep it safe:
//! - argv, never a shell; `{pid}` is replaced only where it is a whole argument, so nothing
//!   attacker-controlled (a process name) is ever put into the command at all;
//! - bounded in time (`diagnose_timeout`, default 2 s, at most [`MAX_TIMEOUT`]) and output
//!   ([`OUTPUT_CAP_BYTES`], cut with [`TRUNCATED_MARKER`]);
//! - skipped when memory is critical: at the SIGKILL level the kill goes at once, and a
//!   diagnostic still running when memory falls to that level is cut short.

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;

/// The placeholder replaced by the victim's pid (as a whole argument only).
pub const PID_PLACEHOLDER: &str = "{pid}";
/// Output kept (stdout and stderr together).
pub const OUTPUT_CAP_BYTES: usize = 16 * 1024;
/// Appended to output cut at [`OUTPUT_CAP_BYTES`].
pub const TRUNCATED_MARKER: &str = "\n[oomguard: output truncated at 16 KiB]";
/// The longest `diagnose_timeout` accepted: every second of it delays the kill.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);

/// How a diagnostic ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Exited,
    Signaled,
    /// Killed at `diagnose_timeout` (or cut short when memory became critical).
    TimedOut,
    /// It could not be started.
    Failed,
    /// Not run (memory was critical).
    Skipped,
}

/// The `diagnostics` of a kill event (docs/event-schema.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostics {
    /// The argv run, with the pid put in.
    pub argv: Vec<String>,
    pub status: Status,
    /// Its exit code (`exited`).
    pub exit_code: Option<i32>,
    /// The signal that ended it (`signaled`).
    pub signal: Option<i32>,
    /// From start to reap.
    pub runtime_ms: f64,
    /// stdout then stderr as they arrived (lossy UTF-8), at most [`OUTPUT_CAP_BYTES`], then
    /// [`TRUNCATED_MARKER`] when cut.
    pub output: String,
    pub output_truncated: bool,
    /// Why it was skipped, cut short or could not start.
    pub note: Option<String>,
}

impl Diagnostics {
    /// One line for `oomguard events`, the journal and logs: `jcmd exited 0 in 12 ms, 345
    /// bytes of output`.
    pub fn summary(&self) -> String {
        let prog = self
            .argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or("?");
        let how = match self.status {
            Status::Exited => format!("exited {}", self.exit_code.unwrap_or(-1)),
            Status::Signaled => format!("killed by signal {}", self.signal.unwrap_or(0)),
            Status::TimedOut => "timed out".to_owned(),
            Status::Failed => "could not start".to_owned(),
            Status::Skipped => "skipped".to_owned(),
        };
        let mut s = format!("diagnostics: {prog} {how}");
        if self.status != Status::Skipped && self.status != Status::Failed {
            s.push_str(&format!(
                " in {:.0} ms, {} bytes of output{}",
                self.runtime_ms,
                self.output.len(),
                if self.output_truncated {
                    " (truncated)"
                } else {
                    ""
                }
            ));
        }
        if let Some(n) = &self.note {
            s.push_str(&format!(" ({n})"));
        }
        s
    }

    /// A skipped diagnostic: nothing ran.
    pub fn skipped(argv: Vec<String>, why: &str) -> Diagnostics {
        Diagnostics {
            argv,
            status: Status::Skipped,
            exit_code: None,
            signal: None,
            runtime_ms: 0.0,
            output: String::new(),
            output_truncated: false,
            note: Some(why.to_owned()),
        }
    }
}

/// The argv template for a victim: the `diagnose` of the rule that adjusted its score (its
/// policy label, `rules[N] ...`), else `[kill] diagnose`; `None` when neither is set.
pub fn template<'a>(cfg: &'a Config, rule_label: Option<&str>) -> Option<&'a [String]> {
    let from_rule = rule_label
        .and_then(crate::policy::rule_index)
        .and_then(|i| cfg.rules.get(i))
        .and_then(|r| r.diagnose.as_deref())
        .filter(|d| !d.is_empty());
    from_rule.or_else(|| Some(cfg.kill.diagnose.as_slice()).filter(|d| !d.is_empty()))
}

/// The argv with `{pid}` replaced where it is a whole argument.
pub fn argv_for(template: &[String], pid: i32) -> Vec<String> {
    template
        .iter()
        .map(|a| {
            if a == PID_PLACEHOLDER {
                pid.to_string()
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Checks one `diagnose` argv (`key` names it in the error): a program, and `{pid}` only as a
/// whole argument.
pub fn validate_argv(key: &str, argv: &[String]) -> Result<(), String> {
    if argv.is_empty() {
        return Ok(());
    }
    if argv[0].is_empty() || argv[0] == PID_PLACEHOLDER {
        return Err(format!("{key}: the first element must be a program"));
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains(PID_PLACEHOLDER) && a != PID_PLACEHOLDER {
            return Err(format!(
                "{key}[{i}]: {a:?}: {{pid}} must be a whole argument (it is not put inside others)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn pid_is_put_in_whole_arguments_only() {
        let t = v(&["jcmd", "{pid}", "GC.heap_info", "x{pid}"]);
        assert_eq!(
            argv_for(&t, 4711),
            v(&["jcmd", "4711", "GC.heap_info", "x{pid}"])
        );
        assert!(validate_argv("kill.diagnose", &t)
            .unwrap_err()
            .contains("kill.diagnose[3]"));
        assert!(validate_argv("kill.diagnose", &t[..3]).is_ok());
        assert!(validate_argv("kill.diagnose", &v(&["{pid}"])).is_err());
        assert!(validate_argv("kill.diagnose", &[]).is_ok());
    }

    #[test]
    fn the_rules_diagnose_comes_before_the_kill_sections() {
        let mut cfg = Config::default();
        assert_eq!(template(&cfg, None), None);
        cfg.kill.diagnose = v(&["/bin/cat", "/proc/{pid}/status"]);
        cfg.rules.push(RuleConfig {
            action: crate::config::RuleAction::Prefer,
            name: Some("^java$".to_owned()),
            cmdline: None,
            exe: None,
            cgroup: None,
            user: None,
            adjust: 0,
            diagnose: Some(v(&["jcmd", "{pid}", "GC.heap_info"])),
        });
        assert_eq!(
            template(&cfg, Some("rules[0] prefer name=^java$")).map(<[String]>::to_vec),
            Some(v(&["jcmd", "{pid}", "GC.heap_info"]))
        );
        assert_eq!(
            template(&cfg, None).map(<[String]>::to_vec),
            Some(cfg.kill.diagnose.clone())
        );
        // A label that names no rule (or another rule without diagnose) falls back.
        assert_eq!(
            template(&cfg, Some("rules[7] avoid")).map(<[String]>::to_vec),
            Some(cfg.kill.diagnose.clone())
        );
    }

    #[test]
    fn summary_reads_as_a_sentence() {
        let mut d = Diagnostics::skipped(v(&["/usr/bin/jcmd", "1"]), "memory at the SIGKILL level");
        assert_eq!(
            d.summary(),
            "diagnostics: jcmd skipped (memory at the SIGKILL level)"
        );
        d.status = Status::Exited;
        d.exit_code = Some(0);
        d.runtime_ms = 12.4;
        d.output = "abc".to_owned();
        d.note = None;
        assert_eq!(
            d.summary(),
            "diagnostics: jcmd exited 0 in 12 ms, 3 bytes of output"
        );
    }
}
