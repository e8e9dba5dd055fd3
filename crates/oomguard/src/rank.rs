//! `oomguard rank`: who the kernel's OOM killer would pick next, most likely victim first.
//!
//! Global scope scores every process against `totalpages = RAM + swap` and shows the kernel's
//! `/proc/PID/oom_score` form; `--cgroup PATH` scores the memcg subtree's processes against that
//! memcg's limit, as a memcg OOM of that cgroup would. The ordering is the kernel's selection rule
//! (`oomguard_core::badness::victim_order`). The oomguard-adjusted score column (policy rules)
//! arrives with the daemon's policy config: [`Candidate::adjusted`] is the slot for it.

use crate::cli::RankArgs;
pub use crate::host::machine::{kernel_era, memcg_totalpages, resolve_cgroup, users, Roots};
use crate::host::scan::{ProcSample, ScanStats, Scanner};
use crate::host::{optional, page_size_bytes, CgroupFs, ProcFs};
use anyhow::Context;
use oomguard_core::badness::{self, Era, KernelVersion, Unkillable, Verdict};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::host::system::{MemInfo, Pressure};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

/// What the ranking is scoped to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// A global OOM (`CONSTRAINT_NONE`).
    Global,
    /// A memcg OOM of this cgroup.
    Memcg {
        path: String,
        version: CgroupVersion,
        limit_bytes: Option<u64>,
    },
}

/// An oomguard policy's adjustment of a candidate (filled once the daemon's policy exists).
#[derive(Debug, Clone, Serialize)]
pub struct Adjusted {
    pub score: i64,
    pub rule: String,
}

/// One process in the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub pid: i32,
    pub user: String,
    pub name: String,
    pub cgroup: Option<String>,
    pub rss_bytes: u64,
    pub swap_bytes: u64,
    pub pgtables_bytes: u64,
    pub oom_score_adj: i16,
    /// The kernel's `oom_badness()` points against this scope's `totalpages`.
    pub badness_points: Option<i64>,
    /// `/proc/PID/oom_score` as the kernel computes it (global `totalpages` always).
    pub oom_score: u64,
    /// rss + swap + page tables as a share of `totalpages`, in percent.
    pub share_pct: f64,
    /// Why the kernel never picks it, if so.
    pub unkillable: Option<Unkillable>,
    /// Already exiting: the kernel would wait for it rather than kill another.
    pub exiting: bool,
    /// Reserved for the policy's adjusted score (`None` until the daemon's policy config exists).
    pub adjusted: Option<Adjusted>,
    /// The next candidate's points are within [`Ranking::counter_drift_pages`] of this one's:
    /// the kernel's per-CPU RSS counters could order the two either way.
    pub too_close_to_call: bool,
}

/// A ranking snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Ranking {
    pub kernel: String,
    pub era: Era,
    pub scope: Scope,
    pub page_size_bytes: u64,
    pub totalpages: u64,
    pub global_totalpages: u64,
    pub meminfo: MemInfo,
    pub pressure: Option<Pressure>,
    /// Most likely victim first.
    pub candidates: Vec<Candidate>,
    /// Candidates before truncation to `-n`.
    pub total_candidates: usize,
    /// How far the kernel's per-CPU RSS counters may be from `/proc/PID/status`, in pages
    /// (`oomguard_core::badness::rss_counter_drift_pages`).
    pub counter_drift_pages: u64,
    pub scan: ScanStats,
}

/// Builds the ranking. `limit` truncates the candidate list (all with `None`).
pub fn rank(roots: &Roots, cgroup: Option<&str>, limit: Option<usize>) -> anyhow::Result<Ranking> {
    let (kernel, era) = kernel_era(&roots.proc)?;
    let drift = KernelVersion::parse(&kernel)
        .map_or(0, |v| badness::rss_counter_drift_pages(v, online_cpus()));
    let meminfo = roots.proc.read_meminfo().context("reading meminfo")?;
    let pressure = optional(roots.proc.read_pressure_memory()).ok().flatten();
    let ps = page_size_bytes();
    let global_tp = badness::global_totalpages(
        meminfo.mem_total_bytes.unwrap_or(0),
        meminfo.swap_total_bytes.unwrap_or(0),
        ps,
    );
    let total_swap_pages = meminfo.swap_total_bytes.unwrap_or(0) / ps;
    let mut scanner = Scanner::new(&roots.proc).context("opening /proc")?;
    let mut samples = Vec::new();
    let mut stats = ScanStats::default();
    let (scope, totalpages) = match cgroup {
        None => {
            scanner.scan(&mut samples, &mut stats)?;
            // for_each_process() walks in creation order: start time, then pid.
            samples.sort_by_key(|s| (s.start_time_ticks, s.pid));
            (Scope::Global, global_tp)
        }
        Some(path) => {
            let (version, dir) = resolve_cgroup(&roots.cgroup, path)?;
            let memcg = roots
                .cgroup
                .read_memcg(version, &dir)
                .with_context(|| format!("reading memcg {}", dir.display()))?;
            let swappiness = optional(roots.proc.read_sysctl_vm("swappiness"))
                .ok()
                .flatten()
                .unwrap_or(60)
                .max(0) as u64;
            let (tp, limit_bytes) = memcg_totalpages(&memcg, ps, swappiness, total_swap_pages);
            let mut pids = Vec::new();
            roots.cgroup.subtree_procs(&dir, &mut pids)?;
            scanner.scan_pids(&pids, &mut samples, &mut stats);
            (
                Scope::Memcg {
                    path: path.to_owned(),
                    version,
                    limit_bytes,
                },
                tp,
            )
        }
    };
    let users = users(&roots.passwd);
    let mut scored: Vec<(Verdict, usize, &ProcSample)> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| (badness::badness(era, &s.facts(true), totalpages), i, s))
        .collect();
    scored.sort_by(|a, b| badness::victim_order((a.0, a.1), (b.0, b.1)));
    // Cross-check the likeliest victims with the kernel's own oom_score: a 0 there where the
    // computation says otherwise is an ineligibility /proc does not show (vfork, reaped mm).
    // Only as many as will be shown (plus the ones demoted), to keep the cost at a few reads.
    let want = limit.unwrap_or(usize::MAX);
    let mut confirmed = 0usize;
    for entry in scored.iter_mut() {
        if confirmed >= want {
            break;
        }
        if entry.0.points().is_none() {
            continue;
        }
        let global = badness::oom_score_display(
            era,
            badness::badness(era, &entry.2.facts(true), global_tp),
            global_tp,
        );
        let kernel = scanner.open_pid(entry.2.pid).and_then(|d| {
            let root = roots.proc.root().to_path_buf();
            d.read_oom_score(&root, scanner.buf())
        });
        match kernel
            .ok()
            .and_then(|k| badness::hidden_ineligibility(global, k))
        {
            Some(u) => entry.0 = Verdict::Unkillable(u),
            None => confirmed += 1,
        }
    }
    scored.sort_by(|a, b| badness::victim_order((a.0, a.1), (b.0, b.1)));
    let total_candidates = scored.len();
    let next_points: Vec<Option<i64>> = scored
        .iter()
        .skip(1)
        .map(|s| s.0.points())
        .chain(std::iter::once(None))
        .collect();
    let take = limit.unwrap_or(usize::MAX);
    let mut candidates = Vec::with_capacity(total_candidates.min(take));
    for ((verdict, _, s), next) in scored.into_iter().zip(next_points).take(take) {
        let too_close_to_call = match (verdict.points(), next) {
            (Some(a), Some(b)) => a.abs_diff(b) <= 2 * drift,
            _ => false,
        };
        let mem = s.mem.unwrap_or_default();
        let global_verdict = badness::badness(era, &s.facts(true), global_tp);
        let cgroup = scanner
            .open_pid(s.pid)
            .and_then(|d| {
                let root = roots.proc.root().to_path_buf();
                d.read_memory_cgroup(&root, scanner.buf())
            })
            .ok()
            .flatten()
            .map(|(_, p)| p);
        candidates.push(Candidate {
            pid: s.pid,
            user: users
                .get(&s.uid)
                .cloned()
                .unwrap_or_else(|| s.uid.to_string()),
            name: s.comm.as_str().into_owned(),
            cgroup,
            rss_bytes: mem.rss_pages * ps,
            swap_bytes: mem.swap_pages * ps,
            pgtables_bytes: mem.pgtables_pages * ps,
            oom_score_adj: s.oom_score_adj,
            badness_points: verdict.points(),
            oom_score: match verdict {
                Verdict::Unkillable(_) => 0,
                Verdict::Points(_) => badness::oom_score_display(era, global_verdict, global_tp),
            },
            share_pct: mem.total_pages() as f64 * 100.0 / totalpages.max(1) as f64,
            unkillable: match verdict {
                Verdict::Unkillable(u) => Some(u),
                Verdict::Points(_) => None,
            },
            exiting: s.exiting,
            adjusted: None,
            too_close_to_call,
        });
    }
    Ok(Ranking {
        kernel,
        era,
        scope,
        page_size_bytes: ps,
        totalpages,
        global_totalpages: global_tp,
        meminfo,
        pressure,
        candidates,
        total_candidates,
        counter_drift_pages: drift,
        scan: stats,
    })
}

/// Online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`), 1 if unknown.
fn online_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

/// Formats bytes for people: `512K`, `12.3M`, `1.2G` (the core's one byte formatter).
pub use oomguard_core::units::format_bytes_compact as human;

fn size(bytes: u64, raw: bool) -> String {
    if raw {
        bytes.to_string()
    } else {
        human(bytes)
    }
}

/// Writes the ranking as a table.
pub fn write_table(r: &Ranking, raw: bool, out: &mut impl Write) -> std::io::Result<()> {
    match &r.scope {
        Scope::Global => writeln!(
            out,
            "global OOM: totalpages {} (RAM + swap), kernel {} ({:?})",
            r.totalpages, r.kernel, r.era
        )?,
        Scope::Memcg {
            path,
            version,
            limit_bytes,
        } => writeln!(
            out,
            "memcg OOM of {path} ({version:?}, limit {}): totalpages {}, kernel {} ({:?})",
            limit_bytes.map_or("none".to_owned(), |b| size(b, raw)),
            r.totalpages,
            r.kernel,
            r.era
        )?,
    }
    if let Scope::Memcg {
        limit_bytes: None, ..
    } = &r.scope
    {
        writeln!(
            out,
            "note: no limit on this cgroup, so it cannot have a memcg OOM of its own; an OOM here \
             would be a limited ancestor's (rank that one) or global"
        )?;
    }
    writeln!(
        out,
        "{:>7} {:<10} {:<16} {:>8} {:>8} {:>7} {:>5} {:>9} {:>6} {:>6}  CGROUP",
        "PID", "USER", "NAME", "RSS", "SWAP", "PGTBL", "ADJ", "SCORE", "SHARE", "RANK"
    )?;
    for (i, c) in r.candidates.iter().enumerate() {
        let rank = match (c.unkillable, c.exiting, c.too_close_to_call) {
            (Some(u), _, _) => format!("never: {}", u.reason()),
            (None, true, _) => format!("{} (exiting)", i + 1),
            (None, false, true) => format!("{}~", i + 1),
            (None, false, false) => (i + 1).to_string(),
        };
        let score = match &r.scope {
            Scope::Global => c.oom_score.to_string(),
            Scope::Memcg { .. } => c.badness_points.map_or("-".to_owned(), |p| p.to_string()),
        };
        writeln!(
            out,
            "{:>7} {:<10} {:<16} {:>8} {:>8} {:>7} {:>5} {:>9} {:>5.1}% {:>6}  {}",
            c.pid,
            truncate(&c.user, 10),
            truncate(&c.name, 16),
            size(c.rss_bytes, raw),
            size(c.swap_bytes, raw),
            size(c.pgtables_bytes, raw),
            c.oom_score_adj,
            score,
            c.share_pct,
            rank,
            c.cgroup.as_deref().unwrap_or("?"),
        )?;
    }
    if r.candidates.iter().any(|c| c.too_close_to_call) {
        writeln!(
            out,
            "~ within {} pages of the next: the kernel's per-CPU RSS counters could swap the two",
            2 * r.counter_drift_pages
        )?;
    }
    if r.total_candidates > r.candidates.len() {
        writeln!(out, "... {} more", r.total_candidates - r.candidates.len())?;
    }
    let s = &r.scan;
    if s.permission_denied + s.malformed + s.io_errors > 0 {
        writeln!(
            out,
            "incomplete: {} unreadable (permission), {} malformed, {} I/O errors; first: {}",
            s.permission_denied,
            s.malformed,
            s.io_errors,
            s.first_errors.first().map_or("", |e| e.as_str())
        )?;
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn header(r: &Ranking, raw: bool) -> String {
    let m = &r.meminfo;
    let psi = r.pressure.map_or("n/a".to_owned(), |p| {
        format!(
            "some {:.2}/{:.2}/{:.2} full {:.2}",
            p.some.avg10_pct,
            p.some.avg60_pct,
            p.some.avg300_pct,
            p.full.map_or(0.0, |f| f.avg10_pct)
        )
    });
    format!(
        "MemAvailable {} of {}  swap {} free of {}  PSI memory {psi}",
        m.mem_available_bytes
            .map_or("?".to_owned(), |b| size(b, raw)),
        m.mem_total_bytes.map_or("?".to_owned(), |b| size(b, raw)),
        m.swap_free_bytes.map_or("?".to_owned(), |b| size(b, raw)),
        m.swap_total_bytes.map_or("?".to_owned(), |b| size(b, raw)),
    )
}

/// The benchmark path: one full scan, every process scored, printed as `pid rss_kib comm`
/// (the same information as `ps -e -o pid,rss,comm`).
fn scan_only(roots: &Roots, out: &mut impl Write) -> anyhow::Result<i32> {
    let (_, era) = kernel_era(&roots.proc)?;
    let meminfo = roots.proc.read_meminfo()?;
    let ps = page_size_bytes();
    let tp = badness::global_totalpages(
        meminfo.mem_total_bytes.unwrap_or(0),
        meminfo.swap_total_bytes.unwrap_or(0),
        ps,
    );
    let mut scanner = Scanner::new(&roots.proc)?;
    let mut samples = Vec::new();
    let mut stats = ScanStats::default();
    scanner.scan(&mut samples, &mut stats)?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, out);
    for s in &samples {
        let v = badness::badness(era, &s.facts(true), tp);
        writeln!(
            w,
            "{} {} {} {}",
            s.pid,
            s.mem.map_or(0, |m| m.rss_pages * ps / 1024),
            badness::oom_score_display(era, v, tp),
            s.comm.as_str()
        )?;
    }
    w.flush()?;
    Ok(0)
}

/// True if the error is a closed stdout (`oomguard rank | head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `oomguard rank`'s body. Returns the exit code.
pub fn run(args: &RankArgs) -> anyhow::Result<i32> {
    match run_inner(args) {
        Err(e) if is_broken_pipe(&e) => Ok(0),
        r => r,
    }
}

fn run_inner(args: &RankArgs) -> anyhow::Result<i32> {
    let roots = Roots {
        proc: ProcFs::new(&args.proc_root),
        cgroup: CgroupFs::new(&args.cgroup_root),
        passwd: PathBuf::from("/etc/passwd"),
    };
    let limit = if args.count == 0 {
        None
    } else {
        Some(args.count)
    };
    let stdout = std::io::stdout();
    if args.scan_only {
        return scan_only(&roots, &mut stdout.lock());
    }
    if args.watch {
        loop {
            let r = rank(&roots, args.cgroup.as_deref(), limit)?;
            let mut out = stdout.lock();
            // Clear screen and home the cursor, like top.
            writeln!(out, "\x1b[H\x1b[2J{}", header(&r, args.bytes))?;
            write_table(&r, args.bytes, &mut out)?;
            out.flush()?;
            drop(out);
            std::thread::sleep(std::time::Duration::from_secs_f64(args.interval.max(0.2)));
        }
    }
    let r = rank(&roots, args.cgroup.as_deref(), limit)?;
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", header(&r, args.bytes))?;
        write_table(&r, args.bytes, &mut out)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1536), "1.5K");
        assert_eq!(human(300 << 20), "300M");
        assert_eq!(human(24 << 30), "24.0G");
    }
}
