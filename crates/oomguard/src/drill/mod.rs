//! `oomguard drill`: proves a deployment end to end on this machine. Against the running daemon
//! (found by its `--config`), it creates a throwaway memory cgroup that the config guards, limits
//! it to [`LIMIT_BYTES`], starts a hog there (oom_score_adj 1000, at most
//! [`hog::MAX_HOG_MIB`] MiB, joined before it allocates) and checks, one line per step, that the
//! daemon killed it before the kernel's memcg OOM killer (the cgroup's `oom_kill` stays 0), that
//! the kill reached the event log and the journal, that the hooks ran without failing, that
//! `/metrics` counted it and (with `--notify`) that a notification went out; then removes the
//! hog and the cgroup.
//!
//! Safe by construction: it refuses (and starts nothing) unless it is root, the cgroup has a
//! limit it set and read back, and the hog confirms `oom_score_adj` 1000 and its cgroup before
//! allocating. It signals only the hog, its own child, by pid.
//!
//! Exit status: 0 every step passed (a step that does not apply says `skip` and why), 1 a step
//! failed (named on its line), 2 usage error.

pub mod hog;
pub mod probe;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oomguard_core::config::{Config, HookEvent};
use oomguard_core::host::cgroup as cg;
use oomguard_core::units::format_mib_whole;

/// The throwaway cgroup's memory limit: well under the hog's cap, so the hog must reach it.
pub const LIMIT_BYTES: u64 = 128 << 20;
/// How long after creating a cgroup the daemon may take to guard it: it looks for new cgroups
/// matching a `[[cgroups]]` glob every 10 s (`watch/daemon.rs`), plus a margin.
const RESCAN_WAIT: Duration = Duration::from_secs(11);

/// `oomguard drill` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The running daemon's config: its guarded cgroups, event log, metrics address, hooks and
    /// notifications are what the drill checks.
    #[arg(
        long,
        value_name = "FILE",
        default_value = crate::watch::DEFAULT_CONFIG
    )]
    pub config: PathBuf,
    /// Put the hog in this existing cgroup (guarded by the config, with a memory limit of at most
    /// 256 MiB) instead of creating one.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Also check that a notification was sent for the kill.
    #[arg(long)]
    pub notify: bool,
    /// How long the daemon has to kill the hog.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub timeout: String,
    /// Hog mode (internal): the cgroup.procs file to join.
    #[arg(long, hide = true, value_name = "FILE")]
    pub hog_procs: Option<PathBuf>,
    /// Hog mode (internal): the cgroup path it must find itself in.
    #[arg(long, hide = true, value_name = "PATH")]
    pub hog_rel: Option<String>,
    /// Hog mode (internal): MiB to allocate (capped).
    #[arg(long, hide = true, default_value_t = hog::MAX_HOG_MIB)]
    pub hog_mib: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
}

/// The drill's lines, printed as they come.
#[derive(Default)]
struct Steps {
    failed: Vec<&'static str>,
}

impl Steps {
    fn line(&mut self, st: Status, step: &'static str, detail: impl AsRef<str>) {
        let word = match st {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        if st == Status::Fail {
            self.failed.push(step);
        }
        println!(
            "{word} {step}: {}",
            crate::explain::render::safe(detail.as_ref())
        );
    }
    fn pass(&mut self, step: &'static str, d: impl AsRef<str>) {
        self.line(Status::Pass, step, d)
    }
    fn fail(&mut self, step: &'static str, d: impl AsRef<str>) {
        self.line(Status::Fail, step, d)
    }
    fn skip(&mut self, step: &'static str, d: impl AsRef<str>) {
        self.line(Status::Skip, step, format!("skipped: {}", d.as_ref()))
    }
}

/// Where the memory controller is.
#[derive(Debug, Clone)]
enum Hierarchy {
    V1(PathBuf),
    V2(PathBuf),
}

impl Hierarchy {
    fn find(root: &Path) -> Option<Hierarchy> {
        let v1 = root.join("memory");
        if v1.join("memory.usage_in_bytes").exists() {
            return Some(Hierarchy::V1(v1));
        }
        let ctl = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        ctl.split_whitespace()
            .any(|c| c == "memory")
            .then(|| Hierarchy::V2(root.to_owned()))
    }
    fn dir(&self, rel: &str) -> PathBuf {
        let r = match self {
            Hierarchy::V1(r) | Hierarchy::V2(r) => r,
        };
        r.join(rel.trim_start_matches('/'))
    }
    /// The cgroup's own memory limit, `None` when unlimited or unreadable.
    fn limit(&self, dir: &Path) -> Option<u64> {
        let limit = match self {
            Hierarchy::V1(_) => {
                let f = "memory.limit_in_bytes";
                cg::parse_v1_limit(f, &std::fs::read(dir.join(f)).ok()?)
            }
            Hierarchy::V2(_) => {
                let f = "memory.max";
                cg::parse_v2_limit(f, &std::fs::read(dir.join(f)).ok()?)
            }
        };
        limit.ok()?.bytes()
    }
    /// Sets the limit (and no swap beyond it), and reads it back.
    fn set_limit(&self, dir: &Path, bytes: u64) -> std::io::Result<()> {
        match self {
            Hierarchy::V1(_) => {
                std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    std::fs::write(memsw, bytes.to_string())?;
                }
            }
            Hierarchy::V2(_) => {
                std::fs::write(dir.join("memory.max"), bytes.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    std::fs::write(swap, "0")?;
                }
            }
        }
        match self.limit(dir) {
            Some(l) if l <= bytes => Ok(()),
            other => Err(std::io::Error::other(format!(
                "the limit reads back as {other:?}"
            ))),
        }
    }
    /// The kernel's memcg OOM kills in this cgroup.
    fn oom_kills(&self, dir: &Path) -> Option<u64> {
        match self {
            Hierarchy::V1(_) => {
                let t = std::fs::read(dir.join("memory.oom_control")).ok()?;
                cg::parse_v1_oom_control(&t).ok()?.oom_kill
            }
            Hierarchy::V2(_) => {
                let t = std::fs::read(dir.join("memory.events")).ok()?;
                cg::parse_v2_events("memory.events", &t).ok()?.oom_kill
            }
        }
    }
}

/// The process's own memory cgroup path as `/proc/self/cgroup` shows it.
fn own_memcg() -> Option<String> {
    let t = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = oomguard_core::host::process::cgroup_lines(&t)
        .find(|l| l.controllers.is_empty() || l.has_controller("memory"))
        .map(|l| l.path.to_owned());
    own
}

/// The throwaway cgroup for a `[[cgroups]]` glob: the glob's last component with `*` replaced,
/// under its fixed parent. Only a glob in the last component can name a cgroup that does not
/// exist yet.
pub fn throwaway_path(pattern: &str, pid: u32) -> Option<String> {
    let (parent, last) = pattern.trim_end_matches('/').rsplit_once('/')?;
    if parent.contains('*') || !last.contains('*') {
        return None;
    }
    let tag = if last.contains("oomguard-drill") {
        pid.to_string()
    } else {
        format!("oomguard-drill-{pid}")
    };
    Some(format!(
        "{parent}/{}",
        last.replacen('*', &tag, 1).replace('*', "")
    ))
}

fn parse_timeout(s: &str) -> anyhow::Result<Duration> {
    oomguard_core::size::parse_duration(s).map_err(|e| anyhow::anyhow!("--timeout: {e}"))
}

/// The hog, our child, and the cgroup we made: both go at the end whatever happened.
struct Held {
    hog: Option<Child>,
    created: Option<PathBuf>,
}

impl Held {
    /// Kills the hog (by its pid, our own child) if it still runs, then removes the cgroup.
    fn cleanup(&mut self) -> Result<String, String> {
        if let Some(mut c) = self.hog.take() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let Some(dir) = self.created.take() else {
            return Ok("the hog is gone; the cgroup was given (--cgroup), left in place".into());
        };
        // A cgroup whose last task just exited can be busy for a moment.
        let mut last = None;
        for _ in 0..50 {
            match std::fs::remove_dir(&dir) {
                Ok(()) => return Ok(format!("removed the hog and {}", dir.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok("the hog is gone; the cgroup was already removed".into())
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "cannot remove {}: {}",
            dir.display(),
            last.map_or_else(String::new, |e| e.to_string())
        ))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

fn scrape_text(addr: Option<std::net::SocketAddr>) -> Option<Result<String, String>> {
    addr.map(|a| probe::scrape(a).map_err(|e| format!("cannot scrape http://{a}/metrics: {e}")))
}

/// Runs the drill (or, in hog mode, the hog).
pub fn run(args: &DrillArgs) -> anyhow::Result<i32> {
    if let (Some(procs), Some(rel)) = (&args.hog_procs, &args.hog_rel) {
        return Ok(hog::run(procs, rel, args.hog_mib));
    }
    let timeout = parse_timeout(&args.timeout)?;
    let mut st = Steps::default();
    let code = drill(args, timeout, &mut st);
    if st.failed.is_empty() && code == 0 {
        println!("drill passed");
        Ok(0)
    } else {
        println!("drill FAILED: {}", st.failed.join(", "));
        Ok(1)
    }
}

fn drill(args: &DrillArgs, timeout: Duration, st: &mut Steps) -> i32 {
    // 1. The config.
    let cfg: Config = match crate::replay::load_config(Some(&args.config)) {
        Ok(c) => c,
        Err(e) => {
            st.fail("config", format!("{e:#}"));
            return 1;
        }
    };
    let addr = probe::metrics_addr(&cfg.metrics.listen);
    let mut summary = format!(
        "{}: {} guarded cgroup pattern(s), event log {}, metrics {}, {} hook(s)",
        args.config.display(),
        cfg.cgroups.len(),
        if cfg.events.log.is_empty() {
            "off".to_owned()
        } else {
            cfg.events.log.clone()
        },
        addr.map_or("off".to_owned(), |a| a.to_string()),
        cfg.hooks.len()
    );
    if cfg.dry_run {
        summary.push_str("; dry_run = true (the daemon will not kill)");
    }
    st.pass("config", summary);

    // 2. The daemon running with that config.
    let want = std::fs::canonicalize(&args.config).unwrap_or_else(|_| args.config.clone());
    let daemons = probe::find_daemons(Path::new("/proc"));
    let is_default = args.config == Path::new(crate::watch::DEFAULT_CONFIG);
    let ours = daemons.iter().find(|d| match &d.config {
        Some(c) => std::fs::canonicalize(c).unwrap_or_else(|_| c.clone()) == want,
        None => is_default,
    });
    let Some(daemon) = ours else {
        st.fail(
            "daemon",
            format!(
                "no `oomguard watch` is running with config {} ({} other oomguard watch process(es))",
                args.config.display(),
                daemons.len()
            ),
        );
        return 1;
    };
    st.pass(
        "daemon",
        format!(
            "oomguard watch pid {}{}",
            daemon.pid,
            if daemon.dry_run_flag {
                " (started with --dry-run: it will not kill)"
            } else {
                ""
            }
        ),
    );

    // 3. A cgroup the hog cannot outgrow, guarded by the config.
    if !rustix::process::geteuid().is_root() {
        st.fail(
            "cgroup",
            "refused: creating a memory cgroup and joining it needs root",
        );
        return 1;
    }
    let Some(h) = Hierarchy::find(Path::new("/sys/fs/cgroup")) else {
        st.fail(
            "cgroup",
            "refused: no memory controller (v1 or v2) to confine the hog",
        );
        return 1;
    };
    let glob = |p: &str, c: &str| crate::watch::cgroups::glob_match(p, c);
    let mut held = Held {
        hog: None,
        created: None,
    };
    let (rel, dir) = match &args.cgroup {
        Some(rel) => {
            let dir = h.dir(rel);
            let guarded = cfg.cgroups.iter().find(|w| glob(&w.path, rel));
            match (dir.is_dir(), guarded, h.limit(&dir)) {
                (false, _, _) => {
                    st.fail("cgroup", format!("refused: {rel} does not exist"));
                    return 1;
                }
                (_, None, _) => {
                    st.fail(
                        "cgroup",
                        format!("refused: {rel} is not guarded by the config's [[cgroups]]"),
                    );
                    return 1;
                }
                (_, _, None) => {
                    st.fail(
                        "cgroup",
                        format!("refused: {rel} has no memory limit to confine the hog"),
                    );
                    return 1;
                }
                (_, _, Some(l)) if l > hog::MAX_HOG_MIB << 20 => {
                    st.fail(
                        "cgroup",
                        format!("refused: {rel}'s limit ({}) is above the hog's cap ({} MiB): the hog could not reach it", format_mib_whole(l), hog::MAX_HOG_MIB),
                    );
                    return 1;
                }
                (_, Some(w), Some(l)) if w.headroom.resolve(l) == 0 => {
                    st.fail("cgroup", format!("refused: {rel} is guarded with headroom 0 (watch only: the daemon never kills there)"));
                    return 1;
                }
                (_, _, Some(l)) => {
                    st.pass(
                        "cgroup",
                        format!("using {rel} (limit {})", format_mib_whole(l)),
                    );
                    (rel.clone(), dir)
                }
            }
        }
        None => {
            let pick = cfg.cgroups.iter().find_map(|w| {
                let rel = throwaway_path(&w.path, std::process::id())?;
                let parent = h.dir(rel.rsplit_once('/').map_or("/", |p| p.0));
                (parent.is_dir() && w.headroom.resolve(LIMIT_BYTES) > 0).then_some(rel)
            });
            let Some(rel) = pick else {
                st.fail(
                    "cgroup",
                    format!(
                        "refused: no [[cgroups]] glob names a new cgroup under an existing parent (add e.g. path = \"{}/oomguard-drill-*\"), or pass --cgroup",
                        own_memcg().unwrap_or_default().trim_end_matches('/')
                    ),
                );
                return 1;
            };
            let dir = h.dir(&rel);
            if let Err(e) = std::fs::create_dir(&dir) {
                st.fail(
                    "cgroup",
                    format!("refused: cannot create {}: {e}", dir.display()),
                );
                return 1;
            }
            held.created = Some(dir.clone());
            if let Err(e) = h.set_limit(&dir, LIMIT_BYTES) {
                st.fail("cgroup", format!("refused: cannot limit {rel}: {e}"));
                let _ = held.cleanup();
                return 1;
            }
            st.pass(
                "cgroup",
                format!(
                    "created {rel}, limit {}, no swap beyond it",
                    format_mib_whole(LIMIT_BYTES)
                ),
            );
            (rel, dir)
        }
    };
    let kills_before = h.oom_kills(&dir).unwrap_or(0);
    let metrics_before = scrape_text(addr);
    if held.created.is_some() {
        // The daemon finds a new cgroup at its next rescan.
        std::thread::sleep(RESCAN_WAIT);
    }

    // 4. The hog.
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            st.fail(
                "hog",
                format!("cannot find this program to start the hog: {e}"),
            );
            finish(&mut held, st);
            return 1;
        }
    };
    let spawned = Command::new(exe)
        .arg("drill")
        .arg("--hog-procs")
        .arg(dir.join("cgroup.procs"))
        .arg("--hog-rel")
        .arg(&rel)
        .args(["--hog-mib", &hog::MAX_HOG_MIB.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            st.fail("hog", format!("cannot start: {e}"));
            finish(&mut held, st);
            return 1;
        }
    };
    let hog_pid = child.id();
    let ready = child
        .stdout
        .take()
        .map(|o| {
            let mut l = String::new();
            let _ = BufReader::new(o).read_line(&mut l);
            l.trim() == "ready"
        })
        .unwrap_or(false);
    held.hog = Some(child);
    if !ready {
        st.fail("hog", "refused: the hog could not set oom_score_adj 1000 and join the cgroup, so it allocated nothing");
        finish(&mut held, st);
        return 1;
    }
    st.pass(
        "hog",
        format!(
            "pid {hog_pid} in {rel}, oom_score_adj 1000, allocating up to {} MiB at 50 MiB/s",
            hog::MAX_HOG_MIB
        ),
    );
    let started = Instant::now();

    // 5. Killed by the daemon, before the kernel.
    let mut status = None;
    while started.elapsed() < timeout {
        if let Some(Ok(Some(s))) = held.hog.as_mut().map(|c| c.try_wait()) {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let kernel_kills = h.oom_kills(&dir).unwrap_or(0).saturating_sub(kills_before);
    let events_text = if cfg.events.log.is_empty() {
        None
    } else {
        Some(read_for(
            Path::new(&cfg.events.log),
            hog_pid,
            Duration::from_secs(3),
        ))
    };
    let event = events_text
        .as_ref()
        .and_then(|t| probe::kill_event(t, hog_pid));
    let dry = event
        .as_ref()
        .is_some_and(|e| e["action"]["dry_run"] == true);
    {
        use std::os::unix::process::ExitStatusExt;
        let sig = status.and_then(|s| s.signal());
        match (status, kernel_kills) {
            (_, k) if k > 0 => st.fail(
                "kill",
                format!(
                    "the kernel's memcg OOM killer killed the hog (oom_kill +{k}): the daemon did not act first{}",
                    if dry { " (it logged a dry-run decision)" } else { "" }
                ),
            ),
            (None, _) => st.fail(
                "kill",
                format!(
                    "the hog was still alive after {:.0} s: the daemon did not kill it{}",
                    timeout.as_secs_f64(),
                    if dry { " (dry run)" } else { "" }
                ),
            ),
            (Some(_), _) if matches!(sig, Some(libc::SIGTERM | libc::SIGKILL)) => st.pass(
                "kill",
                format!(
                    "the daemon killed the hog ({}) after {:.1} s; the cgroup's oom_kill stayed 0",
                    if sig == Some(libc::SIGTERM) { "SIGTERM" } else { "SIGKILL" },
                    started.elapsed().as_secs_f64()
                ),
            ),
            (Some(s), _) => st.fail("kill", format!("the hog ended by itself ({s}), not by the daemon")),
        }
    }

    // 6. The event log.
    let id = event
        .as_ref()
        .and_then(|e| e["id"].as_str().map(str::to_owned));
    match (&events_text, &event) {
        (None, _) => st.skip("event log", "events.log is off in the config"),
        (Some(_), Some(e)) if e["action"]["dry_run"] == true => st.fail(
            "event log",
            format!("{}: the kill was logged as a dry run", cfg.events.log),
        ),
        (Some(_), Some(e)) => st.pass(
            "event log",
            format!(
                "{}: event {} (trigger {}, outcome {})",
                cfg.events.log,
                id.as_deref().unwrap_or("?"),
                e["trigger"]["reason"].as_str().unwrap_or("?"),
                e["action"]["outcome"].as_str().unwrap_or("?")
            ),
        ),
        (Some(_), None) => st.fail(
            "event log",
            format!("{}: no kill event for pid {hog_pid}", cfg.events.log),
        ),
    }

    // 7. The journal.
    let journald = Path::new("/run/systemd/journal/socket").exists();
    match (journald, cfg.events.journal, &id) {
        (false, _, _) => st.skip("journal", "no journald"),
        (true, false, _) => st.skip("journal", "events.journal = false in the config"),
        (true, true, None) => st.fail(
            "journal",
            "no event id to look for (the event log has no kill event)",
        ),
        (true, true, Some(id)) => {
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut n = probe::journal_entries(id);
            while matches!(n, Ok(0)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                n = probe::journal_entries(id);
            }
            match n {
                Ok(0) => st.fail(
                    "journal",
                    format!("no journal entry with OOMGUARD_EVENT_ID={id}"),
                ),
                Ok(k) => st.pass(
                    "journal",
                    format!(
                        "{k} entr{} with OOMGUARD_EVENT_ID={id}",
                        if k == 1 { "y" } else { "ies" }
                    ),
                ),
                Err(e) => st.skip("journal", format!("journalctl cannot run: {e}")),
            }
        }
    }

    // 8-10. Hooks, metrics, notifications: counters before and after.
    let kill_hooks: Vec<(&'static str, usize)> = [
        (HookEvent::PreKill, "pre_kill"),
        (HookEvent::PostKill, "post_kill"),
    ]
    .iter()
    .map(|(e, n)| (*n, cfg.hooks.iter().filter(|h| h.on == *e).count()))
    .filter(|(_, c)| *c > 0)
    .collect();
    let wait_hooks = cfg
        .hooks
        .iter()
        .map(|h| h.timeout)
        .max()
        .unwrap_or_default()
        .min(Duration::from_secs(20))
        + Duration::from_secs(2);
    let before = metrics_before
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .cloned();
    let delta = |after: &str, name: &str, labels: &[&str]| {
        probe::metric_sum(after, name, labels)
            - before
                .as_deref()
                .map_or(0.0, |b| probe::metric_sum(b, name, labels))
    };
    let hooks_done = |after: &str| {
        kill_hooks.iter().all(|(ev, n)| {
            let l = format!("event=\"{ev}\"");
            delta(after, "oomguard_hook_runs_total", &[&l]) >= *n as f64
        })
    };
    let after = match (&metrics_before, addr) {
        (Some(Ok(_)), Some(a)) => {
            let deadline = Instant::now() + wait_hooks;
            let mut last = probe::scrape(a).ok();
            while Instant::now() < deadline
                && !last.as_deref().is_some_and(|t| {
                    hooks_done(t)
                        && delta(t, "oomguard_kills_total", &[]) >= 1.0
                        && (!args.notify || delta(t, "oomguard_notifications_total", &[]) >= 1.0)
                })
            {
                std::thread::sleep(Duration::from_millis(200));
                last = probe::scrape(a).ok();
            }
            last
        }
        _ => None,
    };
    // Hooks.
    if kill_hooks.is_empty() {
        st.skip("hooks", "no pre_kill or post_kill [[hooks]] in the config");
    } else if let Some(t) = &after {
        let mut bad = String::new();
        for (ev, n) in &kill_hooks {
            let l = format!("event=\"{ev}\"");
            let runs = delta(t, "oomguard_hook_runs_total", &[&l]);
            let fails = delta(t, "oomguard_hook_failures_total", &[&l]);
            if runs < *n as f64 {
                let _ = write!(bad, "{ev}: {runs} of {n} ran; ");
            }
            if fails > 0.0 {
                let _ = write!(bad, "{ev}: {fails} failed (exit status, timeout or exec error; see the daemon's log); ");
            }
        }
        if bad.is_empty() {
            st.pass(
                "hooks",
                kill_hooks
                    .iter()
                    .map(|(e, n)| format!("{n} {e} hook(s) ran and succeeded"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        } else {
            st.fail("hooks", bad.trim_end_matches("; "));
        }
    } else {
        st.skip(
            "hooks",
            "no /metrics to count hook runs from (metrics.listen is off or unreachable)",
        );
    }
    // Metrics.
    match (&metrics_before, &after) {
        (None, _) => st.skip("metrics", "metrics.listen is off in the config"),
        (Some(Err(e)), _) => st.fail("metrics", e),
        (Some(Ok(_)), None) => st.fail("metrics", "/metrics stopped answering after the kill"),
        (Some(Ok(_)), Some(t)) => {
            let d = delta(t, "oomguard_kills_total", &[]);
            if d >= 1.0 {
                st.pass("metrics", format!("oomguard_kills_total rose by {d}"));
            } else {
                st.fail("metrics", "oomguard_kills_total did not rise");
            }
        }
    }
    // Notifications.
    if args.notify {
        match (&after, cfg.notify.dbus || cfg.notify.notify_send) {
            (_, false) => st.fail(
                "notify",
                "--notify given, but [notify] dbus and notify_send are both off",
            ),
            (None, true) => st.skip("notify", "no /metrics to count notifications from"),
            (Some(t), true) => {
                let d = delta(t, "oomguard_notifications_total", &[]);
                if d >= 1.0 {
                    st.pass(
                        "notify",
                        format!("oomguard_notifications_total rose by {d}"),
                    );
                } else {
                    st.fail("notify", "no notification was sent for the kill");
                }
            }
        }
    }
    finish(&mut held, st);
    0
}

/// The event log's text once it mentions `pid` (or after `wait`).
fn read_for(path: &Path, pid: u32, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let t = std::fs::read_to_string(path).unwrap_or_default();
        if probe::kill_event(&t, pid).is_some() || Instant::now() >= deadline {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(held: &mut Held, st: &mut Steps) {
    match held.cleanup() {
        Ok(m) => st.pass("cleanup", m),
        Err(m) => st.fail("cleanup", m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throwaway_paths_come_only_from_a_glob_in_the_last_component() {
        assert_eq!(
            throwaway_path("/system.slice/*.service", 7).as_deref(),
            Some("/system.slice/oomguard-drill-7.service")
        );
        assert_eq!(
            throwaway_path("/a/b/oomguard-drill-*", 7).as_deref(),
            Some("/a/b/oomguard-drill-7")
        );
        assert_eq!(throwaway_path("/a/*/b", 7), None);
        assert_eq!(throwaway_path("/a/b", 7), None);
    }
}
