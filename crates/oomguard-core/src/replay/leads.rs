//! How long before a kernel OOM kill oomguard's triggers would have fired, judged on the readings
//! the daemon logged (`oomguard replay --events`): pure, on readings taken from the event log.

use serde::Serialize;

/// One reading oomguard logged: the figures of a decision event's `trigger` (the event log
/// holds readings only where the daemon warned or acted; it keeps no periodic series).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    pub unix_time_s: f64,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub psi_some_avg10_pct: Option<f64>,
    pub psi_full_avg10_pct: Option<f64>,
    pub cgroup: Option<String>,
    pub cgroup_usage_bytes: Option<u64>,
    pub cgroup_limit_bytes: Option<u64>,
    /// What the daemon logged then, for people (`warning memory`, `kill psi_some, dry run`).
    pub logged: String,
}

/// A reading at which a trigger fired, and how long before the kernel's kill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub at_unix_s: f64,
    pub lead_s: f64,
    /// `memory`, `swap`, `psi_some`, `psi_full`, `cgroup`; for the logged decision, what the
    /// daemon wrote.
    pub trigger: String,
    pub level: String,
}

/// The readings before one kernel OOM kill, judged with a config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leads {
    pub kernel_at_unix_s: f64,
    /// Readings in the window before the kill.
    pub readings: usize,
    /// The first reading at which the config's triggers fire.
    pub first_fire: Option<Lead>,
    /// The first decision the daemon itself logged in the window (with its own config then).
    pub first_logged: Option<Lead>,
    /// What the data could not show.
    pub note: String,
}

/// Judges the readings logged in the `window_s` seconds before a kernel kill at `kernel_at`
/// with `cfg`'s triggers (`trigger::evaluate`, the daemon's own rules; PSI durations are
/// measured between readings, so sparse readings can only under-report them). `glob` matches
/// a `[[cgroups]]` path pattern against a cgroup path. For a memcg OOM, `memcg` is the
/// cgroup that ran out: readings of unrelated cgroups (neither it, an ancestor nor a
/// descendant) do not count.
pub fn leads(
    readings: &[Reading],
    kernel_at: f64,
    memcg: Option<&str>,
    cfg: &crate::config::Config,
    window_s: f64,
    glob: &dyn Fn(&str, &str) -> bool,
) -> Leads {
    let related = |c: &str| match memcg {
        None => true,
        Some(m) => {
            let under = |a: &str, b: &str| {
                a == b || a.starts_with(&format!("{}/", b.trim_end_matches('/')))
            };
            under(m, c) || under(c, m)
        }
    };
    use crate::trigger::{self, Level, PsiState, Sample, Thresholds};
    let mut rs: Vec<&Reading> = readings
        .iter()
        .filter(|r| r.unix_time_s <= kernel_at && r.unix_time_s >= kernel_at - window_s)
        .filter(|r| r.cgroup.as_deref().is_none_or(related))
        .collect();
    rs.sort_by(|a, b| a.unix_time_s.total_cmp(&b.unix_time_s));
    let mut state = PsiState::default();
    let t0 = rs.first().map_or(kernel_at, |r| r.unix_time_s);
    let mut first_fire = None;
    for r in &rs {
        let lead = |trigger: &str, level: &str| Lead {
            at_unix_s: r.unix_time_s,
            lead_s: kernel_at - r.unix_time_s,
            trigger: trigger.to_owned(),
            level: level.to_owned(),
        };
        if let (Some(lim), Some(use_b), Some(cg)) = (
            r.cgroup_limit_bytes,
            r.cgroup_usage_bytes,
            r.cgroup.as_deref(),
        ) {
            let watched = cfg.cgroups.iter().find(|w| glob(&w.path, cg));
            if let Some(w) = watched {
                let head = w.headroom.resolve(lim);
                if head > 0 && use_b.saturating_add(head) >= lim {
                    first_fire = Some(lead("cgroup", "term"));
                    break;
                }
            }
        }
        let (Some(total), Some(avail)) = (r.mem_total_bytes, r.mem_available_bytes) else {
            continue;
        };
        let s = Sample {
            mem_total_bytes: total,
            mem_available_bytes: avail,
            swap_total_bytes: r.swap_total_bytes.unwrap_or(0),
            swap_free_bytes: r.swap_free_bytes.unwrap_or(0),
            psi_some_avg10_pct: r.psi_some_avg10_pct,
            psi_full_avg10_pct: r.psi_full_avg10_pct,
        };
        let th = Thresholds::from_config(cfg, &s);
        let now = std::time::Duration::from_secs_f64((r.unix_time_s - t0).max(0.0));
        state.observe(&th, &s, now);
        let v = trigger::evaluate(&th, &s, &state, now);
        if v.level != Level::Calm {
            let level = if v.level == Level::Kill {
                "kill"
            } else {
                "term"
            };
            first_fire = Some(lead(v.trigger.map_or("?", |t| t.label()), level));
            break;
        }
    }
    let first_logged = rs.first().map(|r| Lead {
        at_unix_s: r.unix_time_s,
        lead_s: kernel_at - r.unix_time_s,
        trigger: r.logged.clone(),
        level: "logged".to_owned(),
    });
    let note = if rs.is_empty() {
        format!(
            "no oomguard reading in the {window_s:.0} s before this kill: the event log records \
             readings only when the daemon warned or acted, so replay cannot say when a trigger \
             would first have fired"
        )
    } else {
        "readings exist only at the daemon's own decisions (no periodic series is logged): a \
         trigger may have fired earlier than the first logged reading"
            .to_owned()
    };
    Leads {
        kernel_at_unix_s: kernel_at,
        readings: rs.len(),
        first_fire,
        first_logged,
        note,
    }
}
