//! The kernel era of a report: from the release a stack-dump line shows, or else from the task
//! dump's columns and the kill line's form (`kernel-oom-formats.md` §2.8). The era picks the
//! badness formula and the tie rule replay uses.

use serde::Serialize;

use crate::badness::{Era, KernelVersion};
use crate::event::{OomEvent, TaskRow};

/// Finds the kernel release in a stack-dump line (`CPU: 1 PID: 7 Comm: x Not tainted 5.10.0-28
/// #1`, `Tainted: G O 3.10.0-229.el7 #1`, `Pid: 6344, comm: sh Not tainted 3.2.32 #1`).
pub fn kernel_release_in_line(line: &str) -> Option<KernelVersion> {
    let at = line.find("ainted")?;
    let rest = &line[at + "ainted".len()..];
    // The taint flags come first ("G           O E ----V-------"); the release is the first
    // token that starts with a digit and has a dot, and it comes before the build number "#N".
    for tok in rest.split_whitespace() {
        if tok.starts_with('#') {
            break;
        }
        if tok.starts_with(|c: char| c.is_ascii_digit()) && tok.contains('.') {
            return KernelVersion::parse(tok);
        }
    }
    None
}

/// How the kernel era was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EraFinding {
    /// `None`: before 2.6.36 (Rik van Riel's heuristic, not computable from a dump).
    pub era: Option<Era>,
    /// The release the log shows, when it shows one.
    pub version: Option<String>,
    /// Whether pre-5.3 tie-breaking applies (the earlier process wins a tie); `None` when the
    /// report cannot tell (then both rules are tried).
    pub earlier_wins_ties: Option<bool>,
    /// Where the era came from, for people.
    pub basis: String,
}

/// The era of a report: from the release in the log when there is one, else from the formats.
pub fn find_era(ev: &OomEvent, version: Option<KernelVersion>) -> EraFinding {
    // Any row, not only the first: rows of a dump pasted without its header get their columns
    // from their own values, and only some rows may say which era they are.
    let has = |f: fn(&TaskRow) -> bool| ev.tasks.iter().any(f);
    let score_col = has(|t| t.oom_score_adj.is_some());
    if let Some(v) = version {
        let era = Era::for_version(v).or_else(|| {
            // RHEL 6's 2.6.32 carries the 2.6.36 rewrite; its dump shows oom_score_adj.
            (score_col && v >= KernelVersion::new(2, 6, 32)).then_some(Era::Normalized2636)
        });
        let backport = era.is_some() && Era::for_version(v).is_none();
        return EraFinding {
            era,
            version: Some(v.to_string()),
            earlier_wins_ties: Some(v < KernelVersion::new(5, 3, 0)),
            basis: if backport {
                format!("kernel {v} in the log; its dump has oom_score_adj, so the 2.6.36 rewrite was backported (RHEL 6)")
            } else {
                format!("kernel {v} in the log")
            },
        };
    }
    // No release: the dump's columns and the kill line's form (docs: kernel-oom-formats 2.8).
    let (era, earlier, basis) = if has(|t| t.rss_anon_pages.is_some()) {
        (Some(Era::Signed59), Some(false), "rss_anon column (6.8+)")
    } else if has(|t| t.pgtables_bytes.is_some()) {
        if ev.pgtables_kb.is_some() {
            // 5.4+ kill line; 5.9 changed the floor. Both eras give the same choice unless
            // scores go below 1, which needs a negative adj: then this is a guess.
            (
                Some(Era::Signed59),
                Some(false),
                "pgtables_bytes column and a 5.4+ kill line (assumed 5.9+)",
            )
        } else if ev.score.is_some() {
            (
                Some(Era::Pages417),
                Some(true),
                "pgtables_bytes column and a Kill process line (4.15-5.0; assumed 4.17+)",
            )
        } else {
            (
                Some(Era::Pages417),
                None,
                "pgtables_bytes column (4.15-5.3; assumed 4.17+)",
            )
        }
    } else if has(|t| t.nr_pmds_pages.is_some()) {
        (Some(Era::Pages314), Some(true), "nr_pmds column (4.0-4.14)")
    } else if has(|t| t.nr_ptes_pages.is_some()) {
        (
            Some(Era::Pages314),
            Some(true),
            "nr_ptes column without nr_pmds (3.7-3.19; assumed 3.14+)",
        )
    } else if score_col {
        (
            Some(Era::Normalized2636),
            Some(true),
            "oom_adj and oom_score_adj columns (2.6.36-3.6)",
        )
    } else {
        (
            None,
            Some(true),
            if ev.tasks.is_empty() {
                "no task dump"
            } else {
                "no oom_score_adj column (before 2.6.36)"
            },
        )
    };
    EraFinding {
        era,
        version: None,
        earlier_wins_ties: earlier,
        basis: basis.to_owned(),
    }
}
